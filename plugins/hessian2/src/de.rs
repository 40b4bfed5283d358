//! serde deserialization straight from the wire (no intermediate [`Value`](crate::Value)).

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

use crate::decoder::{ClassDef, Decoder, Header, Limits};
use crate::error::{Error, ErrorKind, Result};
use crate::value::Value;

/// Deserializes exactly one value from `bytes` (trailing bytes are an error) with the default
/// [`Limits`].
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    from_slice_with_limits(bytes, Limits::default())
}

/// [`from_slice`] with the given limits.
pub fn from_slice_with_limits<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limits: Limits,
) -> Result<T> {
    let mut d = Decoder::with_limits(bytes, limits);
    let v = d.deserialize()?;
    d.end()?;
    Ok(v)
}

/// Converts a [`Value`] into any `Deserialize` type (by encoding it and reading it back).
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T> {
    let bytes = crate::value::encode(value)?;
    from_slice(&bytes)
}

fn cyclic(index: usize, at: usize) -> Error {
    Error::at(
        ErrorKind::Unsupported,
        at,
        format!(
            "reference Q#{index} is a cycle (it points to a value still being read); \
             read it as a Value instead"
        ),
    )
}

impl<'de> Decoder<'de> {
    fn any<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        let at = self.pos();
        let r: Result<V::Value> = match self.header()? {
            Header::Null => visitor.visit_unit(),
            Header::Bool(b) => visitor.visit_bool(b),
            Header::Int(v) => visitor.visit_i32(v),
            Header::Long(v) => visitor.visit_i64(v),
            Header::Double(v) => visitor.visit_f64(v),
            Header::Date(v) => visitor.visit_i64(v),
            Header::String(s) => visitor.visit_string(s),
            Header::Binary(Cow::Borrowed(b)) => visitor.visit_borrowed_bytes(b),
            Header::Binary(Cow::Owned(b)) => visitor.visit_byte_buf(b),
            Header::List { len, slot, .. } => {
                self.enter(at)?;
                let mut seq = SeqAcc {
                    de: self,
                    left: len,
                    ended: false,
                };
                let v = visitor.visit_seq(&mut seq)?;
                seq.finish()?;
                self.leave();
                self.finish(slot);
                Ok(v)
            }
            Header::Map { slot, .. } => {
                self.enter(at)?;
                let mut map = MapAcc {
                    de: self,
                    ended: false,
                };
                let v = visitor.visit_map(&mut map)?;
                if !map.ended && !map.de.at_end_marker()? {
                    return Err(Error::at(
                        ErrorKind::Custom,
                        map.de.pos(),
                        "map has entries the Rust type did not read",
                    ));
                }
                self.leave();
                self.finish(slot);
                Ok(v)
            }
            Header::Object { def, slot } => {
                self.enter(at)?;
                let mut obj = ObjAcc {
                    de: self,
                    def,
                    next: 0,
                };
                let v = visitor.visit_map(&mut obj)?;
                if obj.next < obj.def.fields.len() {
                    return Err(Error::at(
                        ErrorKind::Custom,
                        obj.de.pos(),
                        format!(
                            "object of class {} has fields the Rust type did not read",
                            obj.def.name
                        ),
                    ));
                }
                self.leave();
                self.finish(slot);
                Ok(v)
            }
            Header::Ref(i) => {
                if !self.ref_done(i) {
                    return Err(cyclic(i, at));
                }
                return self.replay(i, at, |d| d.any(visitor));
            }
        };
        r.map_err(|e| e.or_at(at))
    }

    fn enum_value<V: Visitor<'de>>(&mut self, name: &'static str, visitor: V) -> Result<V::Value> {
        let at = self.pos();
        match self.header()? {
            Header::String(s) => visitor.visit_enum(s.into_deserializer()),
            Header::Object { def, slot } => {
                // A Java enum: an object whose `name` field holds the constant's name.
                self.enter(at)?;
                let mut constant = None;
                for field in &def.fields {
                    if field == "name" && constant.is_none() {
                        constant = Some(String::deserialize(&mut *self)?);
                    } else {
                        self.skip()?;
                    }
                }
                self.leave();
                self.finish(slot);
                let constant = constant.ok_or_else(|| {
                    Error::at(
                        ErrorKind::Custom,
                        at,
                        format!(
                            "object of class {} read as enum {name} has no `name` field",
                            def.name
                        ),
                    )
                })?;
                visitor
                    .visit_enum(IntoDeserializer::<Error>::into_deserializer(constant))
                    .map_err(|e| e.or_at(at))
            }
            Header::Map { slot, .. } => {
                self.enter(at)?;
                if self.at_end_marker()? {
                    return Err(Error::at(
                        ErrorKind::Custom,
                        at,
                        format!("empty map read as enum {name}"),
                    ));
                }
                let v = visitor.visit_enum(VariantAcc { de: self })?;
                if !self.at_end_marker()? {
                    return Err(Error::at(
                        ErrorKind::Custom,
                        self.pos(),
                        format!("map read as enum {name} has more than one entry"),
                    ));
                }
                self.leave();
                self.finish(slot);
                Ok(v)
            }
            Header::Ref(i) => {
                if !self.ref_done(i) {
                    return Err(cyclic(i, at));
                }
                self.replay(i, at, |d| d.enum_value(name, visitor))
            }
            _ => Err(Error::at(
                ErrorKind::Custom,
                at,
                format!("expected enum {name} (a string, an enum object or a single-entry map)"),
            )),
        }
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                self.any(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.any(visitor)
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_map deserialize_identifier
    }

    /// A binary read as a sequence gives its bytes, so a `Vec<u8>` without `serde_bytes`
    /// accepts a Java `byte[]`.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let is_binary = matches!(self.peek(), Some(0x20..=0x2f | 0x34..=0x37 | b'A' | b'B'));
        if !is_binary {
            return self.any(visitor);
        }
        let at = self.pos();
        match self.header()? {
            Header::Binary(b) => {
                let mut seq = de::value::SeqDeserializer::<_, Error>::new(b.iter().copied());
                let v = visitor.visit_seq(&mut seq).map_err(|e| e.or_at(at))?;
                seq.end().map_err(|e| e.or_at(at))?;
                Ok(v)
            }
            _ => Err(Error::at(ErrorKind::InvalidData, at, "expected a binary")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek_is_null() {
            self.skip()?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.enum_value(name, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.skip()?;
        visitor.visit_unit()
    }
}

struct SeqAcc<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: Option<usize>,
    ended: bool,
}

impl SeqAcc<'_, '_> {
    fn finish(&mut self) -> Result<()> {
        let unread = match self.left {
            Some(n) => n > 0,
            None => !self.ended && !self.de.at_end_marker()?,
        };
        if unread {
            return Err(Error::at(
                ErrorKind::Custom,
                self.de.pos(),
                "list has more elements than the Rust type reads",
            ));
        }
        Ok(())
    }
}

impl<'de> de::SeqAccess<'de> for SeqAcc<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match &mut self.left {
            Some(0) => return Ok(None),
            Some(n) => *n -= 1,
            None => {
                if self.ended || self.de.at_end_marker()? {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        self.left.map(|n| n.min(self.de.left()))
    }
}

struct MapAcc<'a, 'de> {
    de: &'a mut Decoder<'de>,
    ended: bool,
}

impl<'de> de::MapAccess<'de> for MapAcc<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.ended || self.de.at_end_marker()? {
            self.ended = true;
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }
}

struct ObjAcc<'a, 'de> {
    de: &'a mut Decoder<'de>,
    def: Arc<ClassDef>,
    next: usize,
}

impl<'de> de::MapAccess<'de> for ObjAcc<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.def.fields.get(self.next) {
            Some(name) => seed
                .deserialize(name.as_str().into_deserializer())
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.next += 1;
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.def.fields.len() - self.next.min(self.def.fields.len()))
    }
}

struct VariantAcc<'a, 'de> {
    de: &'a mut Decoder<'de>,
}

impl<'de> de::EnumAccess<'de> for VariantAcc<'_, 'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for VariantAcc<'_, 'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        self.de.skip()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.de.any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.de.any(visitor)
    }
}
