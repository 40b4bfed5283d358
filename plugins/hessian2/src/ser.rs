//! serde serialization: any `Serialize` type to a [`Value`], then to bytes.

use serde::ser::{self, Serialize};

use crate::encoder::Encoder;
use crate::error::{Error, ErrorKind, Result};
use crate::value::Value;

/// Serializes `value` as one Hessian message.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut e = Encoder::new();
    e.serialize(value)?;
    Ok(e.into_bytes())
}

/// Serializes `value` as one Hessian message into `writer`.
pub fn to_writer<W: std::io::Write, T: Serialize + ?Sized>(mut writer: W, value: &T) -> Result<()> {
    let bytes = to_vec(value)?;
    writer.write_all(&bytes)?;
    Ok(())
}

/// Converts any `Serialize` type into a [`Value`] with the mapping of the crate documentation.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    value.serialize(ValueSerializer)
}

/// The serde `Serializer` producing [`Value`]s; [`to_value`] is the usual entry point.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValueSerializer;

fn unit_variant(enum_name: &str, variant: &str) -> Value {
    Value::Object {
        class: enum_name.to_owned(),
        fields: vec![("name".to_owned(), Value::String(variant.to_owned()))],
    }
}

fn tagged(variant: &str, value: Value) -> Value {
    Value::map(vec![(Value::String(variant.to_owned()), value)])
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = SeqSerializer;
    type SerializeTuple = SeqSerializer;
    type SerializeTupleStruct = SeqSerializer;
    type SerializeTupleVariant = SeqSerializer;
    type SerializeMap = MapSerializer;
    type SerializeStruct = StructSerializer;
    type SerializeStructVariant = StructSerializer;

    fn serialize_bool(self, v: bool) -> Result<Value> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value> {
        Ok(Value::Int(i32::from(v)))
    }
    fn serialize_i16(self, v: i16) -> Result<Value> {
        Ok(Value::Int(i32::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<Value> {
        Ok(Value::Int(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value> {
        Ok(Value::Long(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value> {
        i64::try_from(v).map(Value::Long).map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                format!("i128 {v} does not fit a Java long"),
            )
        })
    }
    fn serialize_u8(self, v: u8) -> Result<Value> {
        Ok(Value::Int(i32::from(v)))
    }
    fn serialize_u16(self, v: u16) -> Result<Value> {
        Ok(Value::Int(i32::from(v)))
    }
    fn serialize_u32(self, v: u32) -> Result<Value> {
        Ok(Value::Long(i64::from(v)))
    }
    fn serialize_u64(self, v: u64) -> Result<Value> {
        i64::try_from(v).map(Value::Long).map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                format!("u64 {v} is above i64::MAX and does not fit a Java long"),
            )
        })
    }
    fn serialize_u128(self, v: u128) -> Result<Value> {
        i64::try_from(v).map(Value::Long).map_err(|_| {
            Error::new(
                ErrorKind::Unsupported,
                format!("u128 {v} does not fit a Java long"),
            )
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value> {
        Ok(Value::Double(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value> {
        Ok(Value::Double(v))
    }
    fn serialize_char(self, v: char) -> Result<Value> {
        Ok(Value::String(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value> {
        Ok(Value::String(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value> {
        Ok(Value::Binary(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value> {
        Ok(unit_variant(name, variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value> {
        Ok(tagged(variant, value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSerializer> {
        Ok(SeqSerializer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<SeqSerializer> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqSerializer> {
        let mut s = self.serialize_seq(Some(len))?;
        s.variant = Some(variant);
        Ok(s)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapSerializer> {
        Ok(MapSerializer {
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<StructSerializer> {
        Ok(StructSerializer {
            class: name,
            fields: Vec::with_capacity(len.min(4096)),
            variant: None,
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<StructSerializer> {
        let mut s = self.serialize_struct(name, len)?;
        s.variant = Some(variant);
        Ok(s)
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<Value> {
        Ok(Value::String(value.to_string()))
    }
}

/// Builds a list (sequences, tuples, tuple structs, tuple variants).
#[derive(Debug)]
pub struct SeqSerializer {
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl SeqSerializer {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.items.push(value.serialize(ValueSerializer)?);
        Ok(())
    }
    fn finish(self) -> Value {
        let list = Value::list(self.items);
        match self.variant {
            Some(v) => tagged(v, list),
            None => list,
        }
    }
}

impl ser::SerializeSeq for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SeqSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(self.finish())
    }
}

/// Builds an untyped map.
#[derive(Debug)]
pub struct MapSerializer {
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
}

impl ser::SerializeMap for MapSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Custom, "map value serialized before its key"))?;
        self.entries.push((key, value.serialize(ValueSerializer)?));
        Ok(())
    }
    fn end(self) -> Result<Value> {
        Ok(Value::map(self.entries))
    }
}

/// Builds an object (structs) or a single-entry map holding a map (struct variants).
#[derive(Debug)]
pub struct StructSerializer {
    class: &'static str,
    fields: Vec<(String, Value)>,
    variant: Option<&'static str>,
}

impl StructSerializer {
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        self.fields
            .push((key.to_owned(), value.serialize(ValueSerializer)?));
        Ok(())
    }
}

impl ser::SerializeStruct for StructSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value> {
        Ok(Value::Object {
            class: self.class.to_owned(),
            fields: self.fields,
        })
    }
}

impl ser::SerializeStructVariant for StructSerializer {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<Value> {
        let fields = self
            .fields
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect();
        Ok(tagged(
            self.variant.unwrap_or(self.class),
            Value::map(fields),
        ))
    }
}
