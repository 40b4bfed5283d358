//! The code `#[service]` generates names everything by absolute path: it compiles in a crate
//! without the prelude, next to user items that shadow common names.

#![no_implicit_prelude]

use ::rpc_tests as _;

/// Shadows the prelude's `Result` with something unrelated.
#[allow(dead_code)]
struct Result;
/// Shadows `Option`.
#[allow(dead_code)]
struct Option;
/// Shadows `Send`.
#[allow(dead_code)]
trait Send {}
/// Shadows `Arc`.
#[allow(dead_code)]
struct Arc;
/// Shadows the runtime module name.
#[allow(dead_code)]
mod __private {}

/// A service declared without the prelude.
#[::rpc_core::service(name = "hygiene.Echo")]
pub trait Echo {
    /// Echoes.
    async fn echo(&self, text: ::std::string::String) -> ::std::string::String;

    /// Divides, with a business error.
    async fn div(&self, a: u32, b: u32) -> ::std::result::Result<u32, ::std::string::String>;

    /// Fire and forget.
    #[oneway]
    async fn poke(&self);
}

struct Impl;

impl Echo for Impl {
    async fn echo(&self, text: ::std::string::String) -> ::std::string::String {
        text
    }

    async fn div(&self, a: u32, b: u32) -> ::std::result::Result<u32, ::std::string::String> {
        a.checked_div(b)
            .ok_or_else(|| ::std::string::ToString::to_string("division by zero"))
    }

    async fn poke(&self) {}
}

#[test]
fn generated_code_needs_no_prelude() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = EchoClient::new(EchoServer::new(Impl).into_invoker());
        let text = client
            .echo(::std::string::ToString::to_string("hi"))
            .await
            .expect("echo");
        ::std::assert_eq!(text, "hi");
        ::std::assert_eq!(
            client.div(6, 3).await.expect("div"),
            ::std::result::Result::Ok(2)
        );
        ::std::assert!(client.div(1, 0).await.expect("div").is_err());
        client.poke().await.expect("poke");
    });
}

/// A service with no methods yet.
#[::rpc_core::service]
pub trait Nothing {}

impl Nothing for Impl {}

#[test]
fn a_service_without_methods_answers_method_not_found() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let skeleton = NothingServer::new(Impl).into_invoker();
    let inv = ::rpc_core::Invocation::new(
        NothingClient::DESCRIPTOR.service_key(),
        "any",
        ::rpc_core::Value::Empty,
    );
    let e = rt
        .block_on(skeleton.invoke(inv))
        .expect_err("nothing to call");
    ::std::assert_eq!(e.kind(), ::rpc_core::ErrorKind::MethodNotFound);
    ::std::assert_eq!(NothingClient::DESCRIPTOR.interface(), "Nothing");
}
