//! Streams of values as method arguments and results (`#[service]` streaming methods).
//!
//! A method taking a [`Streaming<T>`] is client streaming, one returning a `Streaming<T>` is
//! server streaming, one doing both is bidirectional:
//!
//! ```
//! use rpc_core::Streaming;
//!
//! #[rpc_core::service(name = "org.example.Counter", protocol = "tri")]
//! pub trait Counter {
//!     /// 1..=n, one item at a time.
//!     async fn count(&self, n: u32) -> Streaming<u32>;
//!     /// The sum of the items.
//!     async fn sum(&self, xs: Streaming<i64>) -> i64;
//!     /// Each item doubled, as it comes.
//!     async fn double(&self, xs: Streaming<i64>) -> Streaming<i64>;
//! }
//! ```
//!
//! Only a protocol that carries streams can call them (`tri`, and `injvm` in process; see
//! [`Protocol::carries_streams`](crate::protocol::Protocol::carries_streams)): exporting or
//! referring such a service over another is a `Config` error, and `#[service(protocol =
//! "dubbo")]` on a trait with a streaming method does not compile.
//!
//! Below the proxy a stream is a [`Value`] holding a [`ValueStream`]: items are values like
//! arguments and results, encoded one by one by the protocol. Dropping a stream on one side
//! ends it on the other: a protocol resets the call, and the producer's next
//! [`StreamSender::send`] fails.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::{Stream, StreamExt};

use crate::error::{Result, RpcError};
use crate::invocation::Value;
use crate::proxy::RpcType;

/// The items of a stream below the proxy: values, or the error that ended the stream.
pub type ValueItems = Pin<Box<dyn Stream<Item = Result<Value>> + Send>>;

/// A stream of `T`s: a streaming method's argument or result.
///
/// Build one from any [`Stream`] ([`Streaming::new`]), an iterator
/// ([`Streaming::from_iter`]) or a channel ([`Streaming::channel`]); read it as a `Stream` of
/// `Result<T, RpcError>` or with [`Streaming::message`]. An `Err` item ends the stream.
pub struct Streaming<T> {
    items: ValueItems,
    _item: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Streaming<{}>", crate::error::type_label::<T>())
    }
}

impl<T: RpcType> Streaming<T> {
    /// The items of `stream`.
    pub fn new<S: Stream<Item = T> + Send + 'static>(stream: S) -> Self {
        Self::from_values(Box::pin(stream.map(|t| Ok(Value::typed(t)))))
    }

    /// The items of `stream`; an `Err` ends the stream with that error on the other side.
    pub fn from_results<S: Stream<Item = Result<T>> + Send + 'static>(stream: S) -> Self {
        Self::from_values(Box::pin(stream.map(|r| r.map(Value::typed))))
    }

    /// The items of `iter`.
    #[allow(clippy::should_implement_trait)] // `FromIterator` would need `I::IntoIter: Send`.
    pub fn from_iter<I>(iter: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        Self::new(futures_util::stream::iter(iter))
    }

    /// A stream fed through the returned sender, holding at most `capacity` unread items:
    /// [`StreamSender::send`] waits while it is full (back pressure), and fails once the
    /// stream was dropped (the other side cancelled). The stream ends when every sender is
    /// dropped.
    pub fn channel(capacity: usize) -> (StreamSender<T>, Self) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Value>>(capacity.max(1));
        let items = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        (
            StreamSender {
                tx,
                _item: PhantomData,
            },
            Self::from_values(Box::pin(items)),
        )
    }

    /// The next item (`None` at the end).
    pub async fn message(&mut self) -> Option<Result<T>> {
        self.next().await
    }

    /// Every item, or the first error.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        while let Some(item) = self.next().await {
            out.push(item?);
        }
        Ok(out)
    }

    /// The stream a generated skeleton or client receives as a [`Value`] (see
    /// [`Streaming::into_value`]).
    pub fn from_value(value: Value) -> Result<Self> {
        Ok(Self::from_values(ValueStream::take_from(value)?))
    }
}

impl<T> Streaming<T> {
    /// A stream of values (what a protocol decodes); items are decoded into `T` when read.
    pub fn from_values(items: ValueItems) -> Self {
        Streaming {
            items,
            _item: PhantomData,
        }
    }

    /// The items as values, for a protocol to encode.
    pub fn into_values(self) -> ValueItems {
        self.items
    }

    /// The stream as a [`Value`] travelling through the layers below the proxy.
    pub fn into_value(self) -> Value {
        Value::Typed(Arc::new(ValueStream::new(self.items)))
    }
}

impl<T: RpcType> Stream for Streaming<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        self.items
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(|r| r.and_then(Value::decode)))
    }
}

/// Feeds a [`Streaming::channel`].
pub struct StreamSender<T> {
    tx: tokio::sync::mpsc::Sender<Result<Value>>,
    _item: PhantomData<fn(T)>,
}

impl<T> Clone for StreamSender<T> {
    fn clone(&self) -> Self {
        StreamSender {
            tx: self.tx.clone(),
            _item: PhantomData,
        }
    }
}

impl<T: RpcType> StreamSender<T> {
    /// Sends one item, waiting while the stream is full; fails once the stream was dropped.
    pub async fn send(&self, item: T) -> Result<()> {
        self.tx
            .send(Ok(Value::typed(item)))
            .await
            .map_err(|_| RpcError::network("the stream was closed by its reader"))
    }

    /// Ends the stream with `error` (the other side reads it as the last item).
    pub async fn fail(&self, error: RpcError) -> Result<()> {
        self.tx
            .send(Err(error))
            .await
            .map_err(|_| RpcError::network("the stream was closed by its reader"))
    }

    /// Whether the reader is gone (the call was cancelled).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A stream inside a [`Value`]: taken once by the protocol or skeleton that consumes it.
///
/// It serializes as an error: a protocol that encodes values without knowing streams cannot
/// send it.
pub struct ValueStream(Mutex<Option<ValueItems>>);

impl ValueStream {
    /// Wraps `items`.
    pub fn new(items: ValueItems) -> Self {
        ValueStream(Mutex::new(Some(items)))
    }

    /// Takes the items out (`None` once taken).
    pub fn take(&self) -> Option<ValueItems> {
        self.0.lock().ok()?.take()
    }

    /// Whether `value` holds a stream.
    pub fn is_stream(value: &Value) -> bool {
        Self::find(value).is_some()
    }

    fn find(value: &Value) -> Option<&ValueStream> {
        match value {
            Value::Typed(v) => {
                let any: &dyn std::any::Any = &**v;
                any.downcast_ref::<ValueStream>()
            }
            _ => None,
        }
    }

    /// The items of the stream in `value`; an error if `value` is no stream or its items
    /// were taken already (a stream is sent once: streaming calls are not retried).
    pub fn take_from(value: Value) -> Result<ValueItems> {
        let found = Self::find(&value).ok_or_else(|| {
            RpcError::codec(format!(
                "expected a stream, got {value:?}: the protocol does not carry streams"
            ))
        })?;
        found.take().ok_or_else(|| {
            RpcError::codec("the stream was consumed already: a stream is sent once, so streaming calls are not retried")
        })
    }
}

impl serde::Serialize for ValueStream {
    fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "a stream cannot be serialized: call streaming methods over a protocol that carries streams (tri)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_travel_as_values_and_decode_item_by_item() {
        let s = Streaming::from_iter(vec![1u32, 2, 3]);
        let v = s.into_value();
        assert!(ValueStream::is_stream(&v));
        let back: Streaming<u32> = Streaming::from_value(v.clone()).expect("stream");
        assert_eq!(back.collect_all().await.expect("items"), vec![1, 2, 3]);
        let again = Streaming::<u32>::from_value(v).expect_err("taken");
        assert!(again.message().contains("sent once"), "{again}");
        let e = Streaming::<u32>::from_value(Value::typed(1u8)).expect_err("no stream");
        assert!(e.message().contains("expected a stream"), "{e}");
        let ser = crate::serialize::default_serialization().expect("msgpack");
        let e = Streaming::from_iter(vec![1u8])
            .into_value()
            .encode(&*ser)
            .expect_err("not serializable");
        assert!(e.message().contains("cannot be serialized"), "{e}");
    }

    #[tokio::test]
    async fn a_channel_applies_back_pressure_and_sees_its_reader_go() {
        let (tx, mut rx) = Streaming::<u32>::channel(1);
        tx.send(1).await.expect("room for one");
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), tx.send(2)).await;
        assert!(blocked.is_err(), "a full stream makes the sender wait");
        assert_eq!(rx.message().await.expect("item").expect("ok"), 1);
        tx.fail(RpcError::timeout("late")).await.expect("room");
        let e = rx.message().await.expect("item").expect_err("error item");
        assert_eq!(e.kind(), crate::ErrorKind::Timeout);
        drop(rx);
        assert!(tx.is_closed());
        assert!(tx.send(3).await.is_err(), "the reader is gone");
    }
}
