//! Streams of messages on an HTTP/2 stream, both sides: reading items as the reader asks
//! for them (flow-control credit is returned only for what was read, so a slow reader slows
//! the writer), and writing items only as the peer grants capacity.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use h2::{RecvStream, SendStream};
use rpc_core::proxy::{MessageCodec, MethodDescriptor};
use rpc_core::serialize::Serialization;
use rpc_core::stream::ValueItems;
use rpc_core::{ErrorKind, RpcError, Value};
use tokio::time::Instant;

use crate::codec;
use crate::headers;
use crate::wire;

/// How the items of one stream are encoded.
#[derive(Clone)]
pub(crate) enum ItemCodec {
    /// Protobuf messages: the argument type `A` (requests) or the result type `R`.
    Protobuf { codec: MessageCodec, requests: bool },
    /// Wrapper messages; the serialization of the first request item answers the response
    /// items (until it is known, `fallback`).
    Wrapper {
        serialization: Arc<OnceLock<Arc<dyn Serialization>>>,
        fallback: Arc<dyn Serialization>,
        requests: bool,
        type_name: &'static str,
    },
}

impl ItemCodec {
    pub(crate) fn encode(&self, item: &Value) -> Result<Vec<u8>, RpcError> {
        match self {
            ItemCodec::Protobuf { codec, requests } => {
                let mut out = Vec::new();
                if *requests {
                    codec.encode_argument(item, &mut out)?;
                } else {
                    codec.encode_result(item, &mut out)?;
                }
                Ok(out)
            }
            ItemCodec::Wrapper {
                serialization,
                fallback,
                requests,
                type_name,
            } => {
                let ser = serialization.get().unwrap_or(fallback);
                if *requests {
                    codec::encode_request_item(item, &**ser)
                } else {
                    codec::encode_response_wrapper(item, &**ser, type_name)
                }
            }
        }
    }

    pub(crate) fn decode(&self, message: &[u8]) -> Result<Value, RpcError> {
        match self {
            ItemCodec::Protobuf { codec, requests } => {
                if *requests {
                    codec.decode_argument(message)
                } else {
                    codec.decode_result(message)
                }
            }
            ItemCodec::Wrapper {
                serialization,
                requests,
                ..
            } => {
                if *requests {
                    let (v, ser) = codec::decode_request_item(message)?;
                    let _ = serialization.set(ser);
                    Ok(v)
                } else {
                    codec::decode_response_wrapper(message)
                }
            }
        }
    }

    /// The codec of a method's items.
    pub(crate) fn for_method(
        method: Option<&'static MethodDescriptor>,
        protobuf: Option<MessageCodec>,
        serialization: Arc<OnceLock<Arc<dyn Serialization>>>,
        fallback: Arc<dyn Serialization>,
        requests: bool,
    ) -> ItemCodec {
        match protobuf {
            Some(codec) => ItemCodec::Protobuf { codec, requests },
            None => ItemCodec::Wrapper {
                serialization,
                fallback,
                requests,
                type_name: method.map_or("", |m| m.returns()),
            },
        }
    }
}

struct Reader {
    body: RecvStream,
    buf: BytesMut,
    limit: usize,
    codec: ItemCodec,
    /// Whether the end of the stream carries a gRPC status (a response) to check.
    trailers: bool,
    deadline: Option<Instant>,
    done: bool,
}

impl Reader {
    async fn next_item(&mut self) -> Option<Result<Value, RpcError>> {
        if self.done {
            return None;
        }
        let r = match self.deadline {
            Some(d) => match tokio::time::timeout_at(d, self.step()).await {
                Ok(r) => r,
                Err(_) => Some(Err(RpcError::timeout(
                    "the stream did not end before the deadline",
                ))),
            },
            None => self.step().await,
        };
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    async fn step(&mut self) -> Option<Result<Value, RpcError>> {
        loop {
            match wire::take_message(&mut self.buf, self.limit) {
                Ok(Some(m)) => return Some(self.codec.decode(&m)),
                Ok(None) => {}
                Err(e) => return Some(Err(e.to_error())),
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    if self.buf.is_empty() {
                        if let Some(m) = wire::whole_message(&chunk, self.limit) {
                            return Some(
                                m.map_err(|e| e.to_error())
                                    .and_then(|m| self.codec.decode(&m)),
                            );
                        }
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    return Some(Err(RpcError::network(format!("the stream was reset: {e}"))))
                }
                None => break,
            }
        }
        if !self.buf.is_empty() {
            return Some(Err(RpcError::codec(format!(
                "truncated message: the stream ended {} byte(s) into a message",
                self.buf.len()
            ))));
        }
        if !self.trailers {
            return None;
        }
        match self.body.trailers().await {
            Ok(Some(t)) => match headers::error_of(&t) {
                None if t.get(headers::GRPC_STATUS).is_some() => None,
                None => Some(Err(RpcError::network(
                    "the stream ended without a grpc-status",
                ))),
                Some(Ok((_, e))) => Some(Err(e)),
                Some(Err(e)) => Some(Err(e)),
            },
            Ok(None) => Some(Err(RpcError::network("the stream ended without trailers"))),
            Err(e) => Some(Err(RpcError::network(format!("the stream was reset: {e}")))),
        }
    }
}

/// The items of `body` as values, read as the consumer of the stream asks for them.
/// `keep` is held as long as the stream (a guard that must live as long as the reading).
pub(crate) fn read_items<K: Send + 'static>(
    body: RecvStream,
    limit: usize,
    codec: ItemCodec,
    trailers: bool,
    deadline: Option<Instant>,
    keep: K,
) -> ValueItems {
    let reader = Reader {
        body,
        buf: BytesMut::new(),
        limit,
        codec,
        trailers,
        deadline,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        (reader, keep),
        |(mut r, keep)| async move {
            let item = r.next_item().await?;
            Some((item, (r, keep)))
        },
    ))
}

/// Sends `data` as the peer grants capacity (HTTP/2 flow control), then `end`s the stream
/// if asked.
pub(crate) async fn send_flow(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), RpcError> {
    let closed = |e: h2::Error| RpcError::network(format!("the stream was closed: {e}"));
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(closed(e)),
            None => return Err(RpcError::network("the stream was closed")),
        };
        if granted == 0 {
            tokio::task::yield_now().await;
            continue;
        }
        let chunk = data.split_to(granted.min(data.len()));
        send.send_data(chunk, false).map_err(closed)?;
    }
    if end {
        send.send_data(Bytes::new(), true).map_err(closed)?;
    }
    Ok(())
}

/// How a stream of items being written ended.
pub(crate) enum Written {
    /// Every item was sent.
    Done,
    /// An item was an error: it ends the stream with that error.
    Failed(RpcError),
    /// The peer reset the stream (it cancelled): the items were dropped.
    Reset,
}

/// Writes `items` one message each; the peer resetting the stream drops them (which
/// cancels whoever produces them); `deadline` ends the stream with a timeout.
pub(crate) async fn write_items(
    send: &mut SendStream<Bytes>,
    mut items: ValueItems,
    codec: &ItemCodec,
    limit: usize,
    deadline: Option<Instant>,
) -> Written {
    loop {
        let next = {
            let reset = std::future::poll_fn(|cx| send.poll_reset(cx));
            let late = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = items.next() => item,
                _ = reset => return Written::Reset,
                _ = late => Some(Err(RpcError::timeout("the stream did not end before the deadline"))),
            }
        };
        let item = match next {
            None => return Written::Done,
            Some(Err(e)) => return Written::Failed(e),
            Some(Ok(v)) => v,
        };
        let message = match codec.encode(&item) {
            Ok(m) if m.len() > limit => {
                return Written::Failed(RpcError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "stream item of {} bytes is over the payload limit of {limit}",
                        m.len()
                    ),
                ))
            }
            Ok(m) => m,
            Err(e) => return Written::Failed(e),
        };
        let mut framed = BytesMut::with_capacity(wire::PREFIX + message.len());
        wire::frame(&message, &mut framed);
        // A peer that grants no room to send in does not hold the stream past its deadline.
        let sent = match deadline {
            Some(d) => {
                match tokio::time::timeout_at(d, send_flow(send, framed.freeze(), false)).await {
                    Ok(sent) => sent,
                    Err(_) => {
                        return Written::Failed(RpcError::timeout(
                            "the stream did not end before the deadline (the caller took no more)",
                        ))
                    }
                }
            }
            None => send_flow(send, framed.freeze(), false).await,
        };
        if sent.is_err() {
            return Written::Reset;
        }
    }
}
