//! Hessian 2.0 through the `rpc-hessian2` crate: the serialization of stock Dubbo peers
//! (wire id 2, `serialization=hessian2`).
//!
//! A Dubbo body is a sequence of top-level Hessian values sharing one set of class
//! definitions, so this module has two views of the same bytes:
//!
//! - [`Hessian2`]: exactly one value (results, business errors);
//! - the argument list ([`ids::HESSIAN2_ARGS`], never on the wire): every element of the
//!   argument tuple is written as its own top-level value, and consecutive top-level values
//!   are presented to serde as one sequence, so `(String, i32)` decodes from `"ann" 42`.
//!   The `dubbo` protocol tags the argument bytes of a hessian2 request with this id.

use std::sync::Arc;

use rpc_hessian2::{Decoder, Encoder, Limits};
use serde::de::{self, DeserializeSeed, Visitor};

use super::{codec_err, ids, DeserializeSink, Serialization};
use crate::error::Result;

/// Bounds for values read from the wire: nesting is kept well inside the stack.
pub(crate) fn limits() -> Limits {
    Limits {
        max_depth: 64,
        ..Limits::default()
    }
}

/// Hessian 2.0, one value per payload: the default of Java Dubbo.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hessian2;

impl Serialization for Hessian2 {
    fn id(&self) -> u8 {
        ids::HESSIAN2
    }

    fn self_describing(&self) -> bool {
        true
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()> {
        let mut enc = Encoder::new();
        enc.serialize(value)
            .map_err(|e| codec_err("hessian2 encode", e))?;
        out.extend_from_slice(enc.as_bytes());
        Ok(())
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        let mut d = Decoder::with_limits(bytes, limits());
        sink(&mut <dyn erased_serde::Deserializer>::erase(&mut d))
            .map_err(|e| codec_err("hessian2 decode", e))?;
        d.end().map_err(|e| codec_err("hessian2 decode", e))
    }
}

/// The argument list of a hessian2 call: consecutive top-level values (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Hessian2Args;

impl Hessian2Args {
    /// Writes `value` as consecutive top-level values: each element of a tuple (or of any
    /// sequence) on its own, anything else as one value.
    pub fn write(value: &dyn erased_serde::Serialize, enc: &mut Encoder) -> Result<()> {
        let v = rpc_hessian2::to_value(value).map_err(|e| codec_err("hessian2 encode", e))?;
        write_items(v, enc)
    }
}

/// Writes a decoded argument list (a Hessian list) as consecutive values.
pub(crate) fn write_items(v: rpc_hessian2::Value, enc: &mut Encoder) -> Result<()> {
    match v {
        rpc_hessian2::Value::List { items, .. } => {
            for item in &items {
                enc.write_value(item)
                    .map_err(|e| codec_err("hessian2 encode", e))?;
            }
            Ok(())
        }
        rpc_hessian2::Value::Null => Ok(()),
        other => enc
            .write_value(&other)
            .map_err(|e| codec_err("hessian2 encode", e)),
    }
}

impl Serialization for Hessian2Args {
    fn id(&self) -> u8 {
        ids::HESSIAN2_ARGS
    }

    fn self_describing(&self) -> bool {
        true
    }

    fn serialize(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<()> {
        let mut enc = Encoder::new();
        Self::write(value, &mut enc)?;
        out.extend_from_slice(enc.as_bytes());
        Ok(())
    }

    fn deserialize(&self, bytes: &[u8], sink: &mut DeserializeSink<'_>) -> Result<()> {
        let mut d = Decoder::with_limits(bytes, limits());
        sink(&mut <dyn erased_serde::Deserializer>::erase(Consecutive(
            &mut d,
        )))
        .map_err(|e| codec_err("hessian2 decode", e))?;
        d.end().map_err(|e| codec_err("hessian2 decode", e))
    }
}

/// A deserializer presenting the remaining top-level values of a decoder as one sequence
/// (and an empty input as a unit too, for methods without arguments).
struct Consecutive<'a, 'de>(&'a mut Decoder<'de>);

struct Items<'a, 'de>(&'a mut Decoder<'de>);

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = rpc_hessian2::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<Option<T::Value>, Self::Error> {
        if self.0.is_empty() {
            return Ok(None);
        }
        seed.deserialize(&mut *self.0).map(Some)
    }
}

impl<'de> de::Deserializer<'de> for Consecutive<'_, 'de> {
    type Error = rpc_hessian2::Error;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        visitor.visit_seq(Items(self.0))
    }

    fn deserialize_unit<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        if self.0.is_empty() {
            visitor.visit_unit()
        } else {
            visitor.visit_seq(Items(self.0))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// Decodes one Hessian value as a dynamic [`rpc_hessian2::Value`], with this crate's limits.
pub(crate) fn decode_value(bytes: &[u8]) -> Result<rpc_hessian2::Value> {
    let mut d = Decoder::with_limits(bytes, limits());
    let v = d
        .read_value()
        .map_err(|e| codec_err("hessian2 decode", e))?;
    d.end().map_err(|e| codec_err("hessian2 decode", e))?;
    Ok(v)
}

/// A dynamic Hessian value as JSON: objects become maps of their fields, binaries arrays of
/// numbers, dates milliseconds, cycles `null`. Bounded by the depth the decoder allowed.
pub fn hessian_to_json(v: &rpc_hessian2::Value) -> serde_json::Value {
    use rpc_hessian2::Value as H;
    use serde_json::Value as J;
    match v {
        H::Null | H::Ref(_) => J::Null,
        H::Bool(b) => J::Bool(*b),
        H::Int(i) => J::from(*i),
        H::Long(i) | H::Date(i) => J::from(*i),
        H::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        H::String(s) => J::String(s.clone()),
        H::Binary(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        H::List { items, .. } => J::Array(items.iter().map(hessian_to_json).collect()),
        H::Map { entries, .. } => J::Object(
            entries
                .iter()
                .map(|(k, v)| (key_text(k), hessian_to_json(v)))
                .collect(),
        ),
        H::Object { fields, .. } => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), hessian_to_json(v)))
                .collect(),
        ),
    }
}

fn key_text(k: &rpc_hessian2::Value) -> String {
    match k {
        rpc_hessian2::Value::String(s) => s.clone(),
        other => match hessian_to_json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// `v` with every object replaced by a map of its fields plus a `class` entry naming the
/// class: the "generalized" form Dubbo's generic invocation returns.
pub fn generalize(v: rpc_hessian2::Value) -> rpc_hessian2::Value {
    use rpc_hessian2::Value as H;
    match v {
        H::Object { class, fields } => {
            let mut entries: Vec<(H, H)> = fields
                .into_iter()
                .map(|(k, v)| (H::String(k), generalize(v)))
                .collect();
            entries.push((H::string("class"), H::String(class)));
            H::map(entries)
        }
        H::List { type_name, items } => H::List {
            type_name,
            items: items.into_iter().map(generalize).collect(),
        },
        H::Map { type_name, entries } => H::Map {
            type_name,
            entries: entries
                .into_iter()
                .map(|(k, v)| (generalize(k), generalize(v)))
                .collect(),
        },
        other => other,
    }
}

crate::register!(dyn Serialization, "hessian2", || Arc::new(Hessian2));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{Payload, Value};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(rename = "com.example.Person")]
    struct Person {
        name: String,
        age: i32,
    }

    fn args(bytes: &[u8]) -> Value {
        Value::Encoded(Payload {
            serialization: ids::HESSIAN2_ARGS,
            bytes: bytes::Bytes::copy_from_slice(bytes),
        })
    }

    #[test]
    fn consecutive_values_decode_as_the_argument_tuple() {
        // "ann" 42, as a Java caller writes greet(String, int).
        let (name, n): (String, i32) = args(b"\x03ann\xba").decode().expect("tuple");
        assert_eq!((name.as_str(), n), ("ann", 42));
        // Two structs share one class definition across the values.
        let mut out = Vec::new();
        let two = (
            Person {
                name: "ann".into(),
                age: 42,
            },
            Person {
                name: "bob".into(),
                age: 7,
            },
        );
        Hessian2Args.serialize(&two, &mut out).expect("encode");
        assert_eq!(out.iter().filter(|b| **b == b'C').count(), 1);
        let back: (Person, Person) = args(&out).decode().expect("decode");
        assert_eq!(back, two);
        // No arguments at all.
        args(b"").decode::<()>().expect("unit");
        // Too few and too many values are codec errors, never panics.
        assert!(args(b"\x03ann").decode::<(String, i32)>().is_err());
        assert!(args(b"\x03ann\xba\xba").decode::<(String, i32)>().is_err());
        // A Java byte[] reads as a Vec<u8>.
        let (b,): (Vec<u8>,) = args(b"\x23\x01\x02\x03").decode().expect("bytes");
        assert_eq!(b, vec![1, 2, 3]);
    }

    #[test]
    fn one_value_round_trips_and_transcodes_to_json() {
        let p = Value::typed(Person {
            name: "ann".into(),
            age: 42,
        })
        .encode(&Hessian2)
        .expect("encode");
        assert_eq!(p.serialization, 2);
        let json = Value::Encoded(p.clone())
            .encode(&super::super::Json)
            .expect("transcode");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json.bytes).expect("json"),
            serde_json::json!({"name": "ann", "age": 42})
        );
        let back: Person = Value::Encoded(p).decode().expect("decode");
        assert_eq!(back.age, 42);
        let as_json = Value::Encoded(
            args(b"\x03ann\xba")
                .encode(&super::super::Json)
                .expect("args to json"),
        );
        assert_eq!(
            as_json.decode::<serde_json::Value>().expect("json"),
            serde_json::json!(["ann", 42])
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut deep = vec![0x57u8; 200]; // 200 nested variable-length lists
        deep.extend(std::iter::repeat_n(b'Z', 200));
        assert!(decode_value(&deep).is_err());
    }
}
