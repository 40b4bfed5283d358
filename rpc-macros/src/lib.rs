//! Procedural macros of the RPC framework. Use them through `rpc-core`
//! (`#[rpc_core::service]`), which re-exports them and provides the runtime they call.
//!
//! The macro is thin: it parses the trait, validates every method (reporting all problems at
//! once, each at its span, saying what to write instead), and generates code that only calls
//! `::rpc_core::__private::*` items. See `rpc_core::proxy` for the runtime side.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod generate;
mod model;

/// Turns a trait of `async fn` methods into an RPC service. See `rpc_core::service` for the
/// documentation and an example.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match model::Options::parse(attr.into()) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let item = match syn::parse::<syn::ItemTrait>(item) {
        Ok(t) => t,
        Err(e) => {
            return syn::Error::new(
                e.span(),
                "#[service] goes on a trait: `#[service] pub trait Greeter { async fn greet(&self, name: String) -> String; }`",
            )
            .to_compile_error()
            .into()
        }
    };
    match model::Service::from_trait(options, item) {
        Ok(service) => generate::service(&service).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
