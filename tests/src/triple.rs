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

pub use proto::{CountRequest, GreetReply, GreetRequest, Number};
use rpc_core::Streaming;

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
    /// A business error for `bob`; for `long:<n>`, one of `n` bytes.
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

/// The `.proto`'s `Streamer`: protobuf messages in streams.
#[rpc_core::service(name = "org.example.Streamer", protocol = "tri")]
pub trait ProtoStreamer {
    /// `1..=n`; `n = 0` counts on every 10 ms until the caller goes away.
    async fn count(&self, request: CountRequest) -> Streaming<Number>;
    /// The sum of the numbers.
    async fn sum(&self, numbers: Streaming<Number>) -> Number;
    /// Each number doubled as it comes; a negative number ends the stream with an error.
    async fn double(&self, numbers: Streaming<Number>) -> Streaming<Number>;
}

/// Serde types in streams (wrapper mode).
#[rpc_core::service(name = "org.example.Words", version = "1.0.0")]
pub trait Words {
    /// The letters of `word`, one item each.
    async fn letters(&self, word: String) -> Streaming<String>;
    /// The items joined with `-`.
    async fn join(&self, parts: Streaming<String>) -> String;
    /// Each item in upper case, as it comes.
    async fn upper(&self, words: Streaming<String>) -> Streaming<String>;
    /// Blobs of `size` bytes without end, as fast as the caller takes them (counted in
    /// `Impl::emitted`).
    async fn blobs(&self, size: u32) -> Streaming<serde_bytes::ByteBuf>;
}

/// Implements every service; `finished` counts calls that ran to their end, `emitted` the
/// items the endless count produced.
#[derive(Clone, Default)]
pub struct Impl {
    /// Calls that completed (a cancelled call does not count).
    pub finished: Arc<AtomicU64>,
    /// Items the endless `count` sent.
    pub emitted: Arc<AtomicU64>,
}

impl ProtoStreamer for Impl {
    async fn count(&self, request: CountRequest) -> Streaming<Number> {
        if request.n > 0 {
            return Streaming::from_iter((1..=i64::from(request.n)).map(|value| Number { value }));
        }
        let (tx, rx) = Streaming::channel(1);
        let emitted = self.emitted.clone();
        tokio::spawn(async move {
            for value in 1.. {
                if tx.send(Number { value }).await.is_err() {
                    return; // the caller went away
                }
                emitted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        rx
    }

    async fn sum(&self, mut numbers: Streaming<Number>) -> Number {
        let mut value = 0;
        while let Some(Ok(n)) = numbers.message().await {
            value += n.value;
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        Number { value }
    }

    async fn double(&self, mut numbers: Streaming<Number>) -> Streaming<Number> {
        let (tx, rx) = Streaming::channel(4);
        tokio::spawn(async move {
            while let Some(item) = numbers.message().await {
                let sent = match item {
                    Ok(n) if n.value < 0 => {
                        let _ = tx
                            .fail(rpc_core::RpcError::codec(format!("negative: {}", n.value)))
                            .await;
                        return;
                    }
                    Ok(n) => tx.send(Number { value: n.value * 2 }).await,
                    Err(_) => return,
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

impl Words for Impl {
    async fn letters(&self, word: String) -> Streaming<String> {
        Streaming::from_iter(word.chars().map(String::from).collect::<Vec<_>>())
    }

    async fn join(&self, parts: Streaming<String>) -> String {
        match parts.collect_all().await {
            Ok(all) => all.join("-"),
            Err(e) => format!("failed: {e}"),
        }
    }

    async fn blobs(&self, size: u32) -> Streaming<serde_bytes::ByteBuf> {
        let (tx, rx) = Streaming::channel(1);
        let emitted = self.emitted.clone();
        tokio::spawn(async move {
            loop {
                let blob = serde_bytes::ByteBuf::from(vec![7u8; size as usize]);
                if tx.send(blob).await.is_err() {
                    return;
                }
                emitted.fetch_add(1, Ordering::SeqCst);
            }
        });
        rx
    }

    async fn upper(&self, words: Streaming<String>) -> Streaming<String> {
        use futures_util::StreamExt;
        Streaming::from_results(words.map(|w| w.map(|w| w.to_uppercase())))
    }
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
        } else if let Some(n) = name.strip_prefix("long:").and_then(|n| n.parse().ok()) {
            Err("x".repeat(n))
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
