//! How arguments and results become gRPC messages: protobuf mode, wrapper mode, JSON.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes};
use prost::Message;
use rpc_core::extension;
use rpc_core::proxy::{MessageCodec, MethodDescriptor};
use rpc_core::serialize::{self, ids, Serialization};
use rpc_core::{Payload, RpcError, Value};
use serde::ser::{Impossible, Serialize, SerializeTuple, Serializer};

use crate::wire::{TripleRequestWrapper, TripleResponseWrapper};

/// How one call's messages are encoded.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// The argument and result are protobuf messages, sent as themselves.
    Protobuf(MessageCodec),
    /// Triple's wrapper messages around values in a serialization.
    Wrapper,
    /// gRPC framing around JSON (`application/grpc+json`).
    GrpcJson,
    /// A bare JSON body, no gRPC framing (`application/json`, for curl).
    Json,
}

/// Dubbo's name in Triple wrappers for hessian2 (Java peers write `hessian4`).
const HESSIAN_WRAPPER_NAME: &str = "hessian4";

/// The name a wrapper carries for serialization `ser`.
pub(crate) fn wrapper_name(ser: &dyn Serialization) -> Result<&'static str, RpcError> {
    if ser.id() == ids::HESSIAN2 {
        return Ok(HESSIAN_WRAPPER_NAME);
    }
    names()
        .iter()
        .find(|(_, s)| s.id() == ser.id())
        .map(|(n, _)| *n)
        .ok_or_else(|| RpcError::internal(format!("serialization id {} has no name", ser.id())))
}

/// The serialization a wrapper names.
pub(crate) fn by_wrapper_name(name: &str) -> Result<Arc<dyn Serialization>, RpcError> {
    let name = if name == HESSIAN_WRAPPER_NAME {
        "hessian2"
    } else {
        name
    };
    names()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = names().iter().map(|(n, _)| *n).collect();
            RpcError::codec(format!(
                "unknown serializeType '{name}' in the Triple wrapper; linked: {}",
                known.join(", ")
            ))
        })
}

fn names() -> &'static [(&'static str, Arc<dyn Serialization>)] {
    static NAMES: OnceLock<Vec<(&'static str, Arc<dyn Serialization>)>> = OnceLock::new();
    NAMES.get_or_init(|| {
        extension::names::<dyn Serialization>()
            .into_iter()
            .filter_map(|n| extension::get::<dyn Serialization>(n).ok().map(|s| (n, s)))
            .collect()
    })
}

/// The JSON serialization.
pub(crate) fn json() -> Result<&'static dyn Serialization, RpcError> {
    serialize::by_id(ids::JSON)
}

/// The Java class name of a parameter descriptor (`Ljava/lang/String;` → `java.lang.String`).
fn java_class(descriptor: &str) -> String {
    match descriptor {
        "I" => "int".into(),
        "J" => "long".into(),
        "Z" => "boolean".into(),
        "D" => "double".into(),
        "F" => "float".into(),
        "S" => "short".into(),
        "B" => "byte".into(),
        "C" => "char".into(),
        d => match d.strip_prefix('L').and_then(|d| d.strip_suffix(';')) {
            Some(class) => class.replace('/', "."),
            None => d.to_string(),
        },
    }
}

/// Appends the request wrapper for `args` in `ser`.
pub(crate) fn encode_request_wrapper(
    args: &Value,
    ser: &dyn Serialization,
    method: Option<&MethodDescriptor>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let parts = split_args(args, ser)?;
    let arg_types = method
        .map(|m| m.args().iter().map(|a| java_class(a.java_type())).collect())
        .unwrap_or_default();
    let w = TripleRequestWrapper {
        serialize_type: wrapper_name(ser)?.to_string(),
        args: parts,
        arg_types,
    };
    w.encode(out)
        .map_err(|e| RpcError::codec(format!("cannot encode the request wrapper: {e}")))
}

/// The argument tuple of a request wrapper, and the serialization to answer in.
pub(crate) fn decode_request_wrapper(
    msg: &[u8],
) -> Result<(Value, Arc<dyn Serialization>), RpcError> {
    let w = TripleRequestWrapper::decode(msg)
        .map_err(|e| RpcError::codec(format!("not a valid TripleRequestWrapper: {e}")))?;
    let ser = by_wrapper_name(&w.serialize_type)?;
    let args = join_args(&*ser, &w.args)?;
    Ok((Value::Encoded(args), ser))
}

/// One item of a client stream in wrapper mode: a request wrapper of one argument.
pub(crate) fn encode_request_item(
    item: &Value,
    ser: &dyn Serialization,
) -> Result<Vec<u8>, RpcError> {
    let p = item.encode(ser)?;
    Ok(TripleRequestWrapper {
        serialize_type: wrapper_name(ser)?.to_string(),
        args: vec![p.bytes],
        arg_types: Vec::new(),
    }
    .encode_to_vec())
}

/// The value of one client-stream item in wrapper mode, and its serialization.
pub(crate) fn decode_request_item(msg: &[u8]) -> Result<(Value, Arc<dyn Serialization>), RpcError> {
    let w = TripleRequestWrapper::decode(msg)
        .map_err(|e| RpcError::codec(format!("not a valid TripleRequestWrapper: {e}")))?;
    let ser = by_wrapper_name(&w.serialize_type)?;
    let [item] = <[Bytes; 1]>::try_from(w.args).map_err(|a| {
        RpcError::codec(format!(
            "a stream item's wrapper holds {} values, not one",
            a.len()
        ))
    })?;
    Ok((
        Value::Encoded(Payload {
            serialization: ser.id(),
            bytes: item,
        }),
        ser,
    ))
}

/// The response wrapper for `value` in `ser`.
pub(crate) fn encode_response_wrapper(
    value: &Value,
    ser: &dyn Serialization,
    type_name: &str,
) -> Result<Vec<u8>, RpcError> {
    let mut out = Vec::new();
    append_response_wrapper(value, ser, type_name, &mut out)?;
    Ok(out)
}

/// Appends the response wrapper for `value` in `ser`.
pub(crate) fn append_response_wrapper(
    value: &Value,
    ser: &dyn Serialization,
    type_name: &str,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let p = value.encode(ser)?;
    TripleResponseWrapper {
        serialize_type: wrapper_name(ser)?.to_string(),
        data: p.bytes,
        r#type: type_name.to_string(),
    }
    .encode(out)
    .map_err(|e| RpcError::codec(format!("cannot encode the response wrapper: {e}")))
}

/// The value in a response wrapper.
pub(crate) fn decode_response_wrapper(msg: &[u8]) -> Result<Value, RpcError> {
    let w = TripleResponseWrapper::decode(msg)
        .map_err(|e| RpcError::codec(format!("not a valid TripleResponseWrapper: {e}")))?;
    let ser = by_wrapper_name(&w.serialize_type)?;
    Ok(Value::Encoded(Payload {
        serialization: ser.id(),
        bytes: w.data,
    }))
}

/// The argument tuple of a JSON body: an array of the arguments, or for a method of one
/// argument that value alone.
pub(crate) fn json_args(body: Bytes, arity: Option<usize>) -> Result<Value, RpcError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let bytes = match (first, arity) {
        // A method without arguments takes `()`.
        (None, Some(0)) => Bytes::from_static(b"null"),
        (Some(b'['), Some(0)) if body.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"[]") => {
            Bytes::from_static(b"null")
        }
        (Some(b'['), _) => body,
        (Some(_), Some(1)) => {
            let mut v = Vec::with_capacity(body.len() + 2);
            v.push(b'[');
            v.extend_from_slice(&body);
            v.push(b']');
            Bytes::from(v)
        }
        _ => {
            return Err(RpcError::codec(
                "the JSON body must be an array of the arguments (or, for a method of one \
                 argument, that argument)",
            ))
        }
    };
    Ok(Value::Encoded(Payload {
        serialization: ids::JSON,
        bytes,
    }))
}

/// One encoded value per element of an argument tuple.
fn split_args(args: &Value, ser: &dyn Serialization) -> Result<Vec<Bytes>, RpcError> {
    match args {
        Value::Typed(v) => {
            let mut s = Splitter {
                ser,
                parts: Vec::new(),
            };
            let erased: &dyn erased_serde::Serialize = &**v;
            erased.serialize(&mut s).map_err(|e| RpcError::codec(e.0))?;
            Ok(s.parts)
        }
        Value::Empty => Ok(Vec::new()),
        Value::Encoded(p) => {
            // A generic caller's tuple: through a self-describing value.
            let from = serialize::by_id(p.serialization)?;
            let items: Vec<serde_json::Value> = serialize::decode(from, &p.bytes)?;
            items
                .iter()
                .map(|item| {
                    let mut out = Vec::new();
                    ser.serialize(item, &mut out)?;
                    Ok(Bytes::from(out))
                })
                .collect()
        }
    }
}

/// The tuple of `parts` (one encoded value each) in `ser`, as the skeleton decodes it.
fn join_args(ser: &dyn Serialization, parts: &[Bytes]) -> Result<Payload, RpcError> {
    if parts.is_empty() && ser.id() != ids::HESSIAN2 {
        // A method without arguments takes `()`.
        let mut out = Vec::new();
        ser.serialize(&(), &mut out)?;
        return Ok(Payload {
            serialization: ser.id(),
            bytes: Bytes::from(out),
        });
    }
    let total: usize = parts.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(total + parts.len() + 5);
    let serialization = match ser.id() {
        ids::MSGPACK => {
            let n = parts.len();
            if n < 16 {
                out.push(0x90 | n as u8);
            } else if let Ok(n) = u16::try_from(n) {
                out.push(0xdc);
                out.put_u16(n);
            } else {
                out.push(0xdd);
                out.put_u32(u32::try_from(n).map_err(|_| RpcError::codec("too many arguments"))?);
            }
            parts.iter().for_each(|p| out.extend_from_slice(p));
            ids::MSGPACK
        }
        ids::JSON => {
            out.push(b'[');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(p);
            }
            out.push(b']');
            ids::JSON
        }
        // A hessian2 call's arguments are consecutive top-level values.
        ids::HESSIAN2 => {
            parts.iter().for_each(|p| out.extend_from_slice(p));
            ids::HESSIAN2_ARGS
        }
        // Formats whose tuples are their elements back to back (bincode).
        id if !ser.self_describing() => {
            parts.iter().for_each(|p| out.extend_from_slice(p));
            id
        }
        id => {
            return Err(RpcError::codec(format!(
                "Triple wrapper arguments in serialization {id} cannot be joined"
            )))
        }
    };
    Ok(Payload {
        serialization,
        bytes: Bytes::from(out),
    })
}

/// A serde serializer that takes a tuple apart: each element is encoded on its own.
struct Splitter<'a> {
    ser: &'a dyn Serialization,
    parts: Vec<Bytes>,
}

#[derive(Debug)]
struct SplitError(String);

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SplitError {}

impl serde::ser::Error for SplitError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SplitError(msg.to_string())
    }
}

/// An element, sized so that it can be handed to the erased serialization.
struct Element<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Element<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl SerializeTuple for &mut Splitter<'_> {
    type Ok = ();
    type Error = SplitError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SplitError> {
        let mut out = Vec::new();
        self.ser
            .serialize(&Element(value), &mut out)
            .map_err(|e| SplitError(e.message().to_string()))?;
        self.parts.push(Bytes::from(out));
        Ok(())
    }

    fn end(self) -> Result<(), SplitError> {
        Ok(())
    }
}

fn not_a_tuple() -> SplitError {
    SplitError("the arguments are not a tuple".into())
}

macro_rules! refuse {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<(), SplitError> { Err(not_a_tuple()) })*
    };
}

impl<'a> Serializer for &mut Splitter<'a> {
    type Ok = ();
    type Error = SplitError;
    type SerializeSeq = Impossible<(), SplitError>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), SplitError>;
    type SerializeTupleVariant = Impossible<(), SplitError>;
    type SerializeMap = Impossible<(), SplitError>;
    type SerializeStruct = Impossible<(), SplitError>;
    type SerializeStructVariant = Impossible<(), SplitError>;

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    /// `()`: a method without arguments.
    fn serialize_unit(self) -> Result<(), SplitError> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, SplitError> {
        Ok(self)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SplitError> {
        Err(not_a_tuple())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SplitError> {
        Err(not_a_tuple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_arguments_split_and_join_in_each_serialization() {
        for name in ["msgpack", "json", "hessian2"] {
            let ser = extension::get::<dyn Serialization>(name).expect(name);
            let args = Value::typed(("ann".to_string(), 41i32, vec![1u8, 2]));
            let mut msg = Vec::new();
            encode_request_wrapper(&args, &*ser, None, &mut msg).expect("encode");
            let w = TripleRequestWrapper::decode(&msg[..]).expect("wrapper");
            assert_eq!(w.args.len(), 3, "{name}");
            let (back, answer_in) = decode_request_wrapper(&msg).expect("decode");
            assert_eq!(answer_in.id(), ser.id());
            let (s, n, v): (String, i32, Vec<u8>) = back.decode().expect(name);
            assert_eq!((s.as_str(), n, v), ("ann", 41, vec![1, 2]), "{name}");
        }
        // No arguments.
        let ser = extension::get::<dyn Serialization>("msgpack").expect("msgpack");
        let mut msg = Vec::new();
        encode_request_wrapper(&Value::typed(()), &*ser, None, &mut msg).expect("unit");
        let (back, _) = decode_request_wrapper(&msg).expect("decode");
        let () = back.decode().expect("unit tuple");
    }

    #[test]
    fn hessian2_is_named_hessian4_and_unknown_names_are_refused() {
        let ser = extension::get::<dyn Serialization>("hessian2").expect("hessian2");
        assert_eq!(wrapper_name(&*ser).expect("name"), "hessian4");
        let w = TripleRequestWrapper {
            serialize_type: "kryo".into(),
            args: vec![],
            arg_types: vec![],
        };
        let e = decode_request_wrapper(&w.encode_to_vec())
            .err()
            .expect("unknown");
        assert!(e.message().contains("unknown serializeType 'kryo'"), "{e}");
        let e = decode_request_wrapper(b"\x0a\xff").err().expect("garbage");
        assert!(e.message().contains("TripleRequestWrapper"), "{e}");
        assert_eq!(java_class("Ljava/lang/String;"), "java.lang.String");
        assert_eq!(java_class("I"), "int");
    }

    #[test]
    fn json_bodies_are_arrays_or_the_single_argument() {
        let (a,): (String,) = json_args(Bytes::from_static(b" \"ann\""), Some(1))
            .expect("single")
            .decode()
            .expect("decode");
        assert_eq!(a, "ann");
        let (a, b): (i32, i32) = json_args(Bytes::from_static(b"[1,2]"), Some(2))
            .expect("array")
            .decode()
            .expect("decode");
        assert_eq!((a, b), (1, 2));
        assert!(json_args(Bytes::from_static(b"{}"), Some(2)).is_err());
        let () = json_args(Bytes::new(), Some(0))
            .expect("empty")
            .decode()
            .expect("unit");
    }
}
