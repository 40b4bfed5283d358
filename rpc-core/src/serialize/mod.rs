//! Serialization: how argument tuples and results become bytes.
//!
//! The `serialization=` URL key picks an implementation (default `msgpack`); its one-byte
//! [`Serialization::id`] travels in every frame header so the provider decodes with it and
//! answers in kind. Values are erased with `erased_serde`, so the trait is object safe and no
//! layer below the proxy is generic over user types.
//!
//! Built in: `msgpack` (rmp-serde, structs as maps, so a provider that adds a
//! `#[serde(default)]` field keeps serving old consumers), `json` (serde_json, the form a
//! command-line caller writes) and `hessian2` (the serialization of stock Java Dubbo peers,
//! wire id 2; see [`hessian2`](Hessian2)). `bincode` lives in its own plugin crate.
//!
//! Wire ids never collide with the ones Apache Dubbo assigned (2 hessian2, 3 java,
//! 4 compactedjava, 6 fastjson, 7 nativejava, 8 kryo, 9 fst, 10 native-hessian, 11 avro,
//! 12 protostuff, 16 gson, 18 jackson, 21 protobuf-json, 22 protobuf, 23 fastjson2, 25 kryo2,
//! 27 msgpack (Java's), 28 fury, 31 custom msgpack): ours are 24 msgpack, 26 json and
//! 29 bincode.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;

use crate::config::keys;
use crate::error::{Result, RpcError};
use crate::extension::{self, ExtensionPoint};

mod hessian2;
mod json;
mod msgpack;

pub(crate) use hessian2::{decode_value as decode_hessian_value, limits as hessian_limits};
pub use hessian2::{generalize, hessian_to_json, Hessian2, Hessian2Args};
pub use json::Json;
pub use msgpack::MsgPack;

/// Wire ids of the serializations this workspace ships (5 bits in the header flag byte).
pub mod ids {
    /// Hessian 2.0, Dubbo's own id for it (the default of Java peers).
    pub const HESSIAN2: u8 = 2;
    /// MessagePack, the default.
    pub const MSGPACK: u8 = 24;
    /// bincode 2.x (plugin crate). Was 25 before 0.2, which Dubbo assigns to kryo2.
    pub const BINCODE: u8 = 29;
    /// JSON text.
    pub const JSON: u8 = 26;
    /// Not a wire id (above the 5 bits of the header): the arguments of a hessian2 call, a
    /// sequence of top-level Hessian values ([`Hessian2Args`](super::Hessian2Args)).
    pub const HESSIAN2_ARGS: u8 = 0x80 | HESSIAN2;
}

/// A visitor handed the erased deserializer over some bytes; see [`Serialization::deserialize`].
pub type DeserializeSink<'s> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 's;

/// An encoding of values as bytes, selected by the `serialization` key.
pub trait Serialization: Any + Send + Sync {
    /// The id sent in the frame header (0..=31, unique among linked serializations).
    fn id(&self) -> u8;

    /// Whether the bytes describe their own structure (field names, types), so that they can
    /// be decoded without the Rust type (generic invocation, transcoding).
    fn self_describing(&self) -> bool;

    /// Appends the encoding of `value` to `out`.
    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()>;

    /// Runs `sink` with a deserializer reading `bytes`; fails if `sink` fails or if bytes are
    /// left over.
    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()>;
}

fn _assert_object_safe(_: &dyn Serialization) {}

crate::extension_point!(
    dyn Serialization,
    key = keys::SERIALIZATION,
    default = "msgpack"
);

/// The default serialization (used to copy shared in-process values).
pub fn default_serialization() -> Result<Arc<dyn Serialization>> {
    extension::get_default::<dyn Serialization>()
}

/// The linked serialization with wire id `id`: one instance for the life of the process,
/// lent (every call that decodes or encodes a value asks, and a shared reference count
/// would be written by each).
pub fn by_id(id: u8) -> Result<&'static dyn Serialization> {
    static HESSIAN2_ARGS: Hessian2Args = Hessian2Args;
    if id == ids::HESSIAN2_ARGS {
        return Ok(&HESSIAN2_ARGS);
    }
    /// Every linked serialization, at the index of its id: a lookup is one load.
    static TABLE: OnceLock<Vec<Option<Arc<dyn Serialization>>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table: Vec<Option<Arc<dyn Serialization>>> = vec![None; 256];
        for s in <dyn Serialization>::loader()
            .names()
            .into_iter()
            .filter_map(|n| extension::get::<dyn Serialization>(n).ok())
        {
            let slot = &mut table[usize::from(s.id())];
            if slot.is_none() {
                *slot = Some(s);
            }
        }
        table
    });
    match table.get(usize::from(id)).and_then(Option::as_deref) {
        Some(s) => Ok(s),
        None => Err(RpcError::codec(format!(
            "unknown serialization id {id}; linked: {}",
            table
                .iter()
                .flatten()
                .map(|s| s.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Appends `value` encoded in `ser` to `out`.
///
/// The built-in formats encode `T` as its own type; others go through `erased_serde`, a
/// dynamic call for every field. Either way the bytes are the same.
pub fn encode<T: serde::Serialize + ?Sized>(
    ser: &dyn Serialization,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<()> {
    let any: &dyn Any = ser;
    if any.is::<MsgPack>() {
        MsgPack::encode(value, out)
    } else if any.is::<Json>() {
        Json::encode(value, out)
    } else {
        ser.serialize(&value, out)
    }
}

/// Decodes a `T` from `bytes` in `ser`.
///
/// The built-in formats decode straight into `T`; others go through `erased_serde`, which
/// allocates for each value it hands across the erased boundary.
pub fn decode<T: DeserializeOwned>(ser: &dyn Serialization, bytes: &[u8]) -> Result<T> {
    let any: &dyn Any = ser;
    let decoded = if any.is::<MsgPack>() {
        MsgPack::decode::<T>(bytes)
    } else if any.is::<Json>() {
        Json::decode::<T>(bytes)
    } else {
        let mut out: Option<T> = None;
        ser.deserialize(bytes, &mut |de| {
            out = Some(erased_serde::deserialize::<T>(de)?);
            Ok(())
        })
        .and_then(|()| out.ok_or_else(|| RpcError::internal("deserializer did not run its sink")))
    };
    decoded.map_err(|e| {
        RpcError::codec(format!(
            "cannot decode a {}: {}",
            crate::error::type_label::<T>(),
            e.message()
        ))
    })
}

/// Decodes a `T` from "no value": works for `()` and `Option<_>` (as `None`).
pub fn decode_unit<T: DeserializeOwned>() -> Result<T> {
    let de = serde::de::value::UnitDeserializer::<serde::de::value::Error>::new();
    T::deserialize(de).map_err(|e| {
        RpcError::codec(format!(
            "an empty result cannot be read as a {}: {e}",
            crate::error::type_label::<T>()
        ))
    })
}

/// Re-encodes `bytes` from serialization `from` into `to`, through a self-describing
/// intermediate value (used when a generic caller's JSON must reach a msgpack provider).
pub fn transcode(
    from: &dyn Serialization,
    bytes: &[u8],
    to: &dyn Serialization,
    out: &mut Vec<u8>,
) -> Result<()> {
    if !from.self_describing() {
        return Err(RpcError::codec(format!(
            "serialization {} is not self-describing and cannot be transcoded",
            from.id()
        )));
    }
    let value: serde_json::Value = decode(from, bytes)?;
    to.serialize(&value, out)
}

/// Wraps a serializer error as a codec error.
pub(crate) fn codec_err(what: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::codec(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Shape {
        Unit,
        Circle(f64),
        Rect { w: u32, h: u32 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Everything {
        name: String,
        maybe: Option<u64>,
        list: Vec<i16>,
        map: BTreeMap<String, bool>,
        shapes: Vec<Shape>,
        bytes: Vec<u8>,
    }

    fn sample() -> Everything {
        Everything {
            name: "ünïcode".into(),
            maybe: Some(u64::MAX),
            list: vec![-1, 0, 1],
            map: [("a".to_string(), true)].into_iter().collect(),
            shapes: vec![Shape::Unit, Shape::Circle(1.5), Shape::Rect { w: 2, h: 3 }],
            bytes: vec![0, 255],
        }
    }

    #[test]
    fn builtins_round_trip_rich_values() {
        for name in ["msgpack", "json"] {
            let ser = extension::get::<dyn Serialization>(name).expect(name);
            let mut out = Vec::new();
            ser.serialize(&sample(), &mut out).expect("serialize");
            let back: Everything = decode(&*ser, &out).expect("decode");
            assert_eq!(back, sample(), "{name}");
        }
    }

    /// Serialized as a byte string (what `serde_bytes` does for a service's `Vec<u8>`).
    struct Raw(Vec<u8>);

    impl Serialize for Raw {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    /// A typed value encodes as its own type in the built-in formats and through
    /// `erased_serde` in the others; a peer cannot tell which: the bytes are the same.
    #[test]
    fn typed_and_erased_encodings_are_the_same_bytes() {
        use crate::invocation::AnyValue;
        for name in extension::names::<dyn Serialization>() {
            let ser = extension::get::<dyn Serialization>(name).expect(name);
            let check = |typed: &dyn AnyValue, what: &str| {
                let mut erased = Vec::new();
                let erased_result = ser.serialize(typed, &mut erased);
                let mut direct = Vec::new();
                let direct_result = typed.encode_in(&*ser, &mut direct);
                // A format that cannot write a shape (hessian2's enums) fails both ways.
                assert_eq!(
                    erased_result.is_ok(),
                    direct_result.is_ok(),
                    "{name}, {what}: {erased_result:?} / {direct_result:?}"
                );
                assert_eq!(erased, direct, "{name}, {what}");
            };
            check(&sample(), "a struct of everything");
            check(&(7u32, "two".to_string(), vec![1u8, 2, 3]), "a tuple");
            check(&(Raw(vec![9u8; 20]),), "bytes");
            check(&Shape::Rect { w: 1, h: 2 }, "an enum");
            check(&None::<String>, "nothing");
        }
        // The built-in formats take the direct path, and it reads back.
        let mut out = Vec::new();
        encode(&MsgPack, &sample(), &mut out).expect("msgpack");
        assert_eq!(
            decode::<Everything>(&MsgPack, &out).expect("back"),
            sample()
        );
        let mut out = Vec::new();
        encode(&Json, &sample(), &mut out).expect("json");
        assert_eq!(decode::<Everything>(&Json, &out).expect("back"), sample());
    }

    #[test]
    fn ids_are_unique_and_found() {
        for name in extension::names::<dyn Serialization>() {
            let ser = extension::get::<dyn Serialization>(name).expect(name);
            assert_eq!(by_id(ser.id()).expect("by id").id(), ser.id());
        }
        let e = by_id(31).err().expect("unknown id");
        assert!(e.to_string().contains("unknown serialization id 31"), "{e}");
    }

    #[test]
    fn garbage_and_trailing_bytes_are_codec_errors() {
        for name in ["msgpack", "json"] {
            let ser = extension::get::<dyn Serialization>(name).expect(name);
            let e = decode::<Everything>(&*ser, b"\xc1\xff garbage").expect_err("garbage");
            assert_eq!(e.kind(), crate::ErrorKind::Codec, "{name}");
            assert!(e.to_string().contains("Everything"), "{e}");
            let mut out = Vec::new();
            ser.serialize(&1u8, &mut out).expect("ser");
            out.extend_from_slice(b" \x01x");
            assert!(
                decode::<u8>(&*ser, &out).is_err(),
                "{name} accepted trailing bytes"
            );
        }
    }

    #[test]
    fn msgpack_structs_are_maps_so_new_defaulted_fields_are_compatible() {
        #[derive(Serialize)]
        struct V1 {
            id: u32,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        struct V2 {
            id: u32,
            #[serde(default)]
            note: String,
        }
        let ser = MsgPack;
        let mut out = Vec::new();
        ser.serialize(&V1 { id: 9 }, &mut out).expect("ser");
        let v2: V2 = decode(&ser, &out).expect("old bytes, new type");
        assert_eq!(
            v2,
            V2 {
                id: 9,
                note: String::new()
            }
        );
    }
}
