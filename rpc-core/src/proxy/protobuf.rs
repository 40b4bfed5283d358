//! Protobuf messages as method arguments and results.
//!
//! A `#[service]` method whose single argument and whose result (the `T` of `Result<T, E>`)
//! both implement [`prost::Message`] can be called as plain protobuf gRPC by a protocol that
//! encodes by type (Triple). The types still have to be serde types ([`RpcType`]) so that
//! every other protocol and serialization carries them too: generate them with
//! `prost-build` and a `type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")`.
//!
//! The macro cannot see trait implementations, so it records a probe per one-argument method:
//! a function that, compiled with the concrete types, yields a [`MessageCodec`] when both are
//! messages and `None` otherwise (the choice is made by method resolution at the call site,
//! "autoref specialization": [`ProtobufYes`] applies to the probe itself when the bounds hold,
//! [`ProtobufNo`] to a reference to it always).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::error::{Result, RpcError};
use crate::invocation::Value;
use crate::proxy::RpcType;

/// Encodes and decodes one method's argument tuple `(A,)` and result `R` as protobuf.
#[derive(Clone, Copy)]
pub struct MessageCodec {
    argument: &'static str,
    result: &'static str,
    encode_args: fn(&Value, &mut Vec<u8>) -> Result<()>,
    decode_args: fn(&[u8]) -> Result<Value>,
    encode_argument: fn(&Value, &mut Vec<u8>) -> Result<()>,
    decode_argument: fn(&[u8]) -> Result<Value>,
    encode_result: fn(&Value, &mut Vec<u8>) -> Result<()>,
    decode_result: fn(&[u8]) -> Result<Value>,
}

impl fmt::Debug for MessageCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageCodec({} -> {})", self.argument, self.result)
    }
}

impl MessageCodec {
    /// The codec of a method taking `A` and returning `R`.
    pub fn of<A, R>() -> Self
    where
        A: prost::Message + Default + RpcType,
        R: prost::Message + Default + RpcType,
    {
        MessageCodec {
            argument: std::any::type_name::<A>(),
            result: std::any::type_name::<R>(),
            encode_args: |v, out| encode_with(v, out, |t: &(A,)| &t.0),
            decode_args: |b| Ok(Value::typed((decode_message::<A>(b)?,))),
            encode_argument: |v, out| encode_with(v, out, |t: &A| t),
            decode_argument: |b| Ok(Value::typed(decode_message::<A>(b)?)),
            encode_result: |v, out| encode_with(v, out, |t: &R| t),
            decode_result: |b| Ok(Value::typed(decode_message::<R>(b)?)),
        }
    }

    /// Appends the argument message of an argument tuple `(A,)`.
    pub fn encode_args(&self, args: &Value, out: &mut Vec<u8>) -> Result<()> {
        (self.encode_args)(args, out)
    }

    /// Decodes an argument message into the argument tuple `(A,)`.
    pub fn decode_args(&self, bytes: &[u8]) -> Result<Value> {
        (self.decode_args)(bytes)
    }

    /// Appends one argument message `A` (an item of a client stream).
    pub fn encode_argument(&self, item: &Value, out: &mut Vec<u8>) -> Result<()> {
        (self.encode_argument)(item, out)
    }

    /// Decodes one argument message `A` (an item of a client stream).
    pub fn decode_argument(&self, bytes: &[u8]) -> Result<Value> {
        (self.decode_argument)(bytes)
    }

    /// Appends the result message (or an item of a result stream).
    pub fn encode_result(&self, result: &Value, out: &mut Vec<u8>) -> Result<()> {
        (self.encode_result)(result, out)
    }

    /// Decodes a result message.
    pub fn decode_result(&self, bytes: &[u8]) -> Result<Value> {
        (self.decode_result)(bytes)
    }
}

fn decode_message<M: prost::Message + Default>(bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| {
        RpcError::codec(format!(
            "not a valid {} protobuf message: {e}",
            crate::error::type_label::<M>()
        ))
    })
}

/// Encodes the message `pick` finds in `value` (typed as `T`); a value that is not a `T`
/// (bytes from a generic caller or a mock) is decoded into one first.
fn encode_with<T, M>(value: &Value, out: &mut Vec<u8>, pick: fn(&T) -> &M) -> Result<()>
where
    T: RpcType,
    M: prost::Message,
{
    let encode = |t: &T, out: &mut Vec<u8>| {
        pick(t)
            .encode(out)
            .map_err(|e| RpcError::codec(format!("protobuf encoding failed: {e}")))
    };
    if let Value::Typed(v) = value {
        let any: &dyn Any = &**v;
        if let Some(t) = any.downcast_ref::<T>() {
            return encode(t, out);
        }
    }
    let t: T = value.clone().decode()?;
    encode(&t, out)
}

/// Whether `T` is one of the plain types prost implements `Message` for (as the well-known
/// wrappers `StringValue`, `UInt32Value`, ...): those are serde values of an ordinary method,
/// not messages of a `.proto`.
fn is_builtin<T: Any>() -> bool {
    use std::any::TypeId;
    let t = TypeId::of::<T>();
    [
        TypeId::of::<()>(),
        TypeId::of::<bool>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
        TypeId::of::<String>(),
        TypeId::of::<Vec<u8>>(),
        TypeId::of::<bytes::Bytes>(),
    ]
    .contains(&t)
}

/// The probe `#[service]` records: see the [module docs](self).
pub struct ProtobufProbe<A, R>(PhantomData<fn() -> (A, R)>);

impl<A, R> ProtobufProbe<A, R> {
    /// A probe for argument `A` and result `R`.
    pub const fn new() -> Self {
        ProtobufProbe(PhantomData)
    }
}

impl<A, R> Default for ProtobufProbe<A, R> {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies when both types are protobuf messages.
pub trait ProtobufYes {
    /// The codec.
    fn codec(&self) -> Option<MessageCodec>;
}

impl<A, R> ProtobufYes for ProtobufProbe<A, R>
where
    A: prost::Message + Default + RpcType,
    R: prost::Message + Default + RpcType,
{
    fn codec(&self) -> Option<MessageCodec> {
        (!is_builtin::<A>() && !is_builtin::<R>()).then(MessageCodec::of::<A, R>)
    }
}

/// Applies always, one reference further away.
pub trait ProtobufNo {
    /// No codec.
    fn codec(&self) -> Option<MessageCodec>;
}

impl<A, R> ProtobufNo for &ProtobufProbe<A, R> {
    fn codec(&self) -> Option<MessageCodec> {
        None
    }
}

/// The probe as stored in a [`MethodDescriptor`](super::MethodDescriptor): all probes compare
/// equal (the descriptor's type names already tell methods apart).
#[derive(Clone, Copy)]
pub(crate) struct ProtobufHook(pub(crate) fn() -> Option<MessageCodec>);

impl PartialEq for ProtobufHook {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ProtobufHook {}

impl fmt::Debug for ProtobufHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtobufHook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Req {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrow selects the impl
    fn probe_tells_messages_from_other_types() {
        // Concrete types at the call site, as in generated code.
        assert!((&ProtobufProbe::<String, Req>::new()).codec().is_none());
        assert!((&ProtobufProbe::<Req, u32>::new()).codec().is_none());
        assert!((&ProtobufProbe::<Req, ()>::new()).codec().is_none());
        assert!((&ProtobufProbe::<Vec<Req>, Req>::new()).codec().is_none());
        assert!((&ProtobufProbe::<Req, Req>::new()).codec().is_some());
    }

    #[test]
    fn codec_round_trips_typed_and_encoded_values() {
        let codec = MessageCodec::of::<Req, Req>();
        let mut out = Vec::new();
        codec
            .encode_args(&Value::typed((Req { name: "ann".into() },)), &mut out)
            .expect("encode");
        assert_eq!(out, b"\x0a\x03ann");
        let (back,): (Req,) = codec
            .decode_args(&out)
            .expect("decode")
            .decode()
            .expect("typed");
        assert_eq!(back.name, "ann");
        // A JSON value of the same shape (a generic caller) is converted.
        let json = Value::Encoded(crate::Payload {
            serialization: crate::serialize::ids::JSON,
            bytes: bytes::Bytes::from_static(br#"{"name":"bo"}"#),
        });
        let mut out = Vec::new();
        codec.encode_result(&json, &mut out).expect("encode json");
        assert_eq!(out, b"\x0a\x02bo");
        let e = codec.decode_result(b"\x0a\x09ab").expect_err("truncated");
        assert!(e.message().contains("Req"), "{e}");
    }
}
