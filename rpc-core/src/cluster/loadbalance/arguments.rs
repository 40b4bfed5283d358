//! The key of a call's selected arguments, read from the arguments as they are.
//!
//! A typed argument tuple (from a generated proxy) is walked with a serializer that converts
//! only the selected elements; an encoded one (a generic caller's, or a provider's on the
//! wire) is decoded with the selected elements kept and the others skipped. Nothing is
//! encoded again. Each selected element's key text is its JSON text (objects with sorted
//! keys, byte strings as arrays of numbers), so a typed and an encoded call with the same
//! arguments get the same key.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{self, Impossible, Serialize};
use serde_json::{Map, Number, Value as Json};

use crate::error::{Result, RpcError};
use crate::invocation::Value;
use crate::serialize;

/// The selected arguments of one call.
#[derive(Debug, Default)]
pub(crate) struct Selected {
    /// How many arguments the call has (a non-tuple value counts as one).
    pub(crate) count: usize,
    /// The selected elements, in the order asked for; `None` where the call has no such
    /// argument.
    pub(crate) values: Vec<Option<Json>>,
}

impl Selected {
    /// The first asked-for index the call does not have.
    pub(crate) fn missing(&self, indexes: &[usize]) -> Option<usize> {
        indexes
            .iter()
            .zip(&self.values)
            .find(|(_, v)| v.is_none())
            .map(|(i, _)| *i)
    }

    /// The key text: the present elements' JSON texts, joined by `,` (a `,` before each one
    /// but the first asked for).
    pub(crate) fn write_key(&self, key: &mut String) {
        use std::fmt::Write as _;
        for (n, v) in self.values.iter().enumerate() {
            if let Some(v) = v {
                if n > 0 {
                    key.push(',');
                }
                let _ = write!(key, "{v}");
            }
        }
    }
}

/// The arguments at `indexes` of `args` (see the [module docs](self)); an error when encoded
/// arguments cannot be read.
pub(crate) fn select(args: &Value, indexes: &[usize]) -> Result<Selected> {
    let mut out = Selected {
        count: 0,
        values: vec![None; indexes.len()],
    };
    match args {
        Value::Empty => {}
        Value::Typed(v) => {
            let erased: &dyn erased_serde::Serialize = &**v;
            let mut picker = Picker {
                indexes,
                out: &mut out,
                position: 0,
            };
            match erased_serde::serialize(erased, &mut picker) {
                Ok(()) => {}
                Err(PickError::NotASequence) => {
                    let whole = serde_json::to_value(erased).map_err(|e| {
                        RpcError::codec(format!("the call's argument cannot be read: {e}"))
                    })?;
                    out.whole(indexes, whole);
                }
                Err(PickError::Other(e)) => {
                    return Err(RpcError::codec(format!(
                        "the call's arguments cannot be read: {e}"
                    )))
                }
            }
        }
        Value::Encoded(payload) => {
            let ser = serialize::by_id(payload.serialization)?;
            let mut failure = None;
            ser.deserialize(&payload.bytes, &mut |de| match (PickSeed {
                indexes,
                out: &mut out,
            })
            .deserialize(de)
            {
                Ok(()) => Ok(()),
                Err(e) => {
                    failure = Some(e.to_string());
                    Ok(())
                }
            })?;
            if let Some(e) = failure {
                return Err(RpcError::codec(format!(
                    "the call's arguments cannot be read: {e}"
                )));
            }
        }
    }
    Ok(out)
}

impl Selected {
    fn whole(&mut self, indexes: &[usize], value: Json) {
        self.count = 1;
        for (slot, i) in self.values.iter_mut().zip(indexes) {
            if *i == 0 {
                *slot = Some(value.clone());
            }
        }
    }

    fn element(&mut self, indexes: &[usize], position: usize, value: &Json) {
        for (slot, i) in self.values.iter_mut().zip(indexes) {
            if *i == position {
                *slot = Some(value.clone());
            }
        }
    }
}

/// Why a typed value was not walked as an argument tuple.
#[derive(Debug)]
enum PickError {
    /// The top-level value is not a tuple or sequence: it is argument 0 as a whole.
    NotASequence,
    Other(String),
}

impl fmt::Display for PickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickError::NotASequence => f.write_str("not a sequence"),
            PickError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for PickError {}

impl ser::Error for PickError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PickError::Other(msg.to_string())
    }
}

/// Walks the top level of a typed argument tuple, converting the selected elements only.
struct Picker<'a> {
    indexes: &'a [usize],
    out: &'a mut Selected,
    position: usize,
}

impl Picker<'_> {
    fn take<T: ?Sized + Serialize>(&mut self, value: &T) -> std::result::Result<(), PickError> {
        let position = self.position;
        self.position += 1;
        self.out.count = self.position;
        if self.indexes.contains(&position) {
            let v = serde_json::to_value(value).map_err(|e| PickError::Other(e.to_string()))?;
            self.out.element(self.indexes, position, &v);
        }
        Ok(())
    }
}

macro_rules! not_a_sequence {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(self, $(_: $arg),*) -> std::result::Result<(), PickError> {
            Err(PickError::NotASequence)
        })*
    };
}

impl<'a, 'b> ser::Serializer for &'a mut Picker<'b> {
    type Ok = ();
    type Error = PickError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Impossible<(), PickError>;
    type SerializeMap = Impossible<(), PickError>;
    type SerializeStruct = Impossible<(), PickError>;
    type SerializeStructVariant = Impossible<(), PickError>;

    not_a_sequence! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> std::result::Result<(), PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> std::result::Result<(), PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_seq(self, _: Option<usize>) -> std::result::Result<Self, PickError> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> std::result::Result<Self, PickError> {
        Ok(self)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self, PickError> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeTupleVariant, PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_map(self, _: Option<usize>) -> std::result::Result<Self::SerializeMap, PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeStruct, PickError> {
        Err(PickError::NotASequence)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> std::result::Result<Self::SerializeStructVariant, PickError> {
        Err(PickError::NotASequence)
    }
}

impl ser::SerializeSeq for &mut Picker<'_> {
    type Ok = ();
    type Error = PickError;

    fn serialize_element<T: ?Sized + Serialize>(
        &mut self,
        value: &T,
    ) -> std::result::Result<(), PickError> {
        self.take(value)
    }

    fn end(self) -> std::result::Result<(), PickError> {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Picker<'_> {
    type Ok = ();
    type Error = PickError;

    fn serialize_element<T: ?Sized + Serialize>(
        &mut self,
        value: &T,
    ) -> std::result::Result<(), PickError> {
        self.take(value)
    }

    fn end(self) -> std::result::Result<(), PickError> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Picker<'_> {
    type Ok = ();
    type Error = PickError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        value: &T,
    ) -> std::result::Result<(), PickError> {
        self.take(value)
    }

    fn end(self) -> std::result::Result<(), PickError> {
        Ok(())
    }
}

/// Reads the top level of encoded arguments, keeping the selected elements only.
struct PickSeed<'a> {
    indexes: &'a [usize],
    out: &'a mut Selected,
}

impl<'de> DeserializeSeed<'de> for PickSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// Forwards a visit of a non-sequence top level to [`JsonVisitor`]: the value is argument 0.
macro_rules! whole {
    ($($name:ident($ty:ty);)*) => {
        $(fn $name<E: de::Error>(self, v: $ty) -> std::result::Result<(), E> {
            let value = JsonVisitor.$name(v)?;
            self.out.whole(self.indexes, value);
            Ok(())
        })*
    };
}

impl<'de> Visitor<'de> for PickSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("call arguments")
    }

    whole! {
        visit_bool(bool);
        visit_i64(i64);
        visit_u64(u64);
        visit_f64(f64);
        visit_str(&str);
        visit_bytes(&[u8]);
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        self.out.whole(self.indexes, Json::Null);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        let value = d.deserialize_any(JsonVisitor)?;
        self.out.whole(self.indexes, value);
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> std::result::Result<(), A::Error> {
        let value = JsonVisitor.visit_map(map)?;
        self.out.whole(self.indexes, value);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut position = 0;
        loop {
            if self.indexes.contains(&position) {
                match seq.next_element_seed(JsonSeed)? {
                    Some(v) => self.out.element(self.indexes, position, &v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            position += 1;
        }
        self.out.count = position;
        Ok(())
    }
}

/// Decodes one value as JSON, byte strings as arrays of numbers (as `serde_json` writes a
/// typed value's bytes).
struct JsonSeed;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = Json;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Json, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Json, E> {
        Ok(Json::Array(
            v.iter().map(|b| Json::Number((*b).into())).collect(),
        ))
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(JsonSeed)? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key_seed(JsonSeed)? {
            let key = match k {
                Json::String(s) => s,
                other => other.to_string(),
            };
            let v = map.next_value_seed(JsonSeed)?;
            out.insert(key, v);
        }
        Ok(Json::Object(out))
    }
}

/// The key text of the arguments at `indexes` (see the [module docs](self)): also the
/// ordering and idempotency key of a method keyed by an argument, so that calls with equal
/// arguments share one. Arguments that cannot be read give the key `null`; an index the
/// call does not have is left out.
pub(crate) fn argument_key(args: &Value, indexes: &[usize]) -> String {
    let mut key = String::new();
    match select(args, indexes) {
        Ok(selected) => selected.write_key(&mut key),
        Err(_) if matches!(args, Value::Empty) => {}
        Err(_) => {
            // Unreadable arguments count as one `null` argument, as they always have.
            if let Some(n) = indexes.iter().position(|i| *i == 0) {
                if n > 0 {
                    key.push(',');
                }
                key.push_str("null");
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A byte string (serialized as bytes, not as a sequence).
    struct ByteBuf(Vec<u8>);

    impl ByteBuf {
        fn from(v: Vec<u8>) -> Self {
            ByteBuf(v)
        }
    }

    impl Serialize for ByteBuf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[derive(Serialize, Deserialize)]
    struct User {
        name: String,
        id: u64,
        tags: BTreeMap<String, bool>,
    }

    fn user() -> User {
        User {
            name: "ann".into(),
            id: 7,
            tags: [("vip".to_string(), true)].into_iter().collect(),
        }
    }

    /// Typed arguments and the same arguments encoded in each self-describing serialization
    /// give one key, read without encoding them again; a byte string is an array of numbers.
    #[test]
    fn typed_and_encoded_arguments_give_the_same_key() {
        let typed = Value::typed((user(), ByteBuf::from(vec![1u8, 2]), -3i32, 2.5f64));
        let want = argument_key(&typed, &[0, 1, 2, 3]);
        assert_eq!(
            want,
            r#"{"id":7,"name":"ann","tags":{"vip":true}},[1,2],-3,2.5"#
        );
        for name in ["msgpack", "json"] {
            let ser =
                crate::extension::get::<dyn crate::serialize::Serialization>(name).expect("linked");
            let encoded = Value::Encoded(typed.encode(&*ser).expect("encode"));
            assert_eq!(argument_key(&encoded, &[0, 1, 2, 3]), want, "{name}");
        }
        assert_eq!(argument_key(&typed, &[2]), "-3");
        assert_eq!(argument_key(&Value::typed("solo"), &[0]), r#""solo""#);
    }

    #[test]
    fn missing_arguments_are_counted_and_named() {
        let typed = Value::typed((1u8, "b"));
        let s = select(&typed, &[1, 5]).expect("readable");
        assert_eq!(s.count, 2);
        assert_eq!(s.missing(&[1, 5]), Some(5));
        assert_eq!(argument_key(&typed, &[5, 1]), r#","b""#);
        let none = select(&Value::Empty, &[0]).expect("empty");
        assert_eq!((none.count, none.missing(&[0])), (0, Some(0)));
    }
}
