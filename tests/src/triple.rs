//! Services for the Triple tests: one in protobuf mode (the types of `proto/greeter.proto`),
//! one of serde types (wrapper mode), both counting the calls that ran to their end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The types generated from `proto/greeter.proto` (package `org.example`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/org.example.rs"));
}

pub use proto::{GreetReply, GreetRequest};

/// The `.proto`'s `Greeter` (path `/org.example.Greeter/Greet`): protobuf mode.
#[rpc_core::service(name = "org.example.Greeter", version = "1.0.0")]
pub trait ProtoGreeter {
    /// `hello {name}`; a business error for `bob`; a name `sleep:<ms>` sleeps first.
    async fn greet(&self, request: GreetRequest) -> Result<GreetReply, String>;
}

/// Serde types over Triple (wrapper mode).
#[rpc_core::service(name = "org.example.Echo", version = "1.0.0")]
pub trait Echo {
    /// `hello {name}`.
    async fn greet(&self, name: String) -> String;
    /// `a + b`.
    async fn add(&self, a: i32, b: i64) -> i64;
    /// A business error for `bob`.
    async fn check(&self, name: String) -> Result<String, String>;
    /// Sleeps `ms`, then returns it.
    async fn sleep(&self, ms: u64) -> u64;
    /// No arguments.
    async fn ping(&self) -> String;
    /// Panics.
    async fn boom(&self) -> String;
    /// The bytes, reversed (for size limits).
    async fn reverse(&self, data: Vec<u8>) -> Vec<u8>;
}

/// Implements both services; `finished` counts calls that ran to their end.
#[derive(Clone, Default)]
pub struct Impl {
    /// Calls that completed (a cancelled call does not count).
    pub finished: Arc<AtomicU64>,
}

impl ProtoGreeter for Impl {
    async fn greet(&self, request: GreetRequest) -> Result<GreetReply, String> {
        if let Some(ms) = request.name.strip_prefix("sleep:") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        if request.name == "bob" {
            return Err(format!("no such user: {}", request.name));
        }
        Ok(GreetReply {
            message: format!("hello {}", request.name),
        })
    }
}

impl Echo for Impl {
    async fn greet(&self, name: String) -> String {
        format!("hello {name}")
    }
    async fn add(&self, a: i32, b: i64) -> i64 {
        i64::from(a) + b
    }
    async fn check(&self, name: String) -> Result<String, String> {
        if name == "bob" {
            Err(format!("no such user: {name}"))
        } else {
            Ok(name)
        }
    }
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        ms
    }
    async fn ping(&self) -> String {
        "pong".into()
    }
    async fn boom(&self) -> String {
        panic!("boom on purpose")
    }
    async fn reverse(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }
}
