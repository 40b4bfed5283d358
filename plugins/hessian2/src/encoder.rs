//! [`Encoder`]: writes consecutive Hessian values into one message.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::tags::*;
use crate::value::Value;

/// Strings and binaries longer than this many UTF-16 code units / bytes are split into
/// chunks of this size (Java's `Hessian2Output` uses 0x8000 code units for strings).
const CHUNK: usize = 0x8000;

/// Writes a sequence of Hessian 2.0 values into one buffer.
///
/// All values written through one encoder form one message: a class definition (`C`) is
/// written the first time a class (name and field list) is used and later instances refer to
/// it, and list/map type names are written once and then referred to by number, exactly as
/// one Java `Hessian2Output` does for a whole Dubbo request or response body. Start a new
/// encoder for every message.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    /// class name -> (field list, definition index) for every definition written.
    classes: HashMap<String, Vec<(Vec<String>, usize)>>,
    class_count: usize,
    /// list / map type name -> type reference index.
    types: HashMap<String, usize>,
    /// How many lists, maps and objects have been written (the numbering `Q` refers to).
    refs: usize,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the encoder and returns the message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Serializes a value through serde (see the crate documentation for the mapping).
    pub fn serialize<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let v = crate::ser::to_value(value)?;
        self.write_value(&v)
    }

    /// Writes a dynamic value.
    ///
    /// Fails only for a [`Value::Ref`] to a list, map or object not yet written.
    pub fn write_value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Null => self.write_null(),
            Value::Bool(b) => self.write_bool(*b),
            Value::Int(v) => self.write_int(*v),
            Value::Long(v) => self.write_long(*v),
            Value::Double(v) => self.write_double(*v),
            Value::Date(v) => self.write_date(*v),
            Value::String(s) => self.write_string(s),
            Value::Binary(b) => self.write_binary(b),
            Value::List { type_name, items } => {
                self.write_list_begin(items.len(), type_name.as_deref());
                for item in items {
                    self.write_value(item)?;
                }
            }
            Value::Map { type_name, entries } => {
                self.write_map_begin(type_name.as_deref());
                for (k, v) in entries {
                    self.write_value(k)?;
                    self.write_value(v)?;
                }
                self.write_end();
            }
            Value::Object { class, fields } => {
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                self.write_object_begin(class, &names);
                for (_, v) in fields {
                    self.write_value(v)?;
                }
            }
            Value::Ref(r) => self.write_ref(*r)?,
        }
        Ok(())
    }

    /// Writes `N`.
    pub fn write_null(&mut self) {
        self.buf.push(b'N');
    }

    /// Writes `T` or `F`.
    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(if v { b'T' } else { b'F' });
    }

    /// Writes an `int` in its shortest form.
    pub fn write_int(&mut self, v: i32) {
        if (INT_DIRECT_MIN..=INT_DIRECT_MAX).contains(&v) {
            self.buf.push((BC_INT_ZERO as i32 + v) as u8);
        } else if (INT_BYTE_MIN..=INT_BYTE_MAX).contains(&v) {
            self.buf
                .extend_from_slice(&[(BC_INT_BYTE_ZERO as i32 + (v >> 8)) as u8, v as u8]);
        } else if (INT_SHORT_MIN..=INT_SHORT_MAX).contains(&v) {
            self.buf.extend_from_slice(&[
                (BC_INT_SHORT_ZERO as i32 + (v >> 16)) as u8,
                (v >> 8) as u8,
                v as u8,
            ]);
        } else {
            self.buf.push(b'I');
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes a `long` in its shortest form.
    pub fn write_long(&mut self, v: i64) {
        if (LONG_DIRECT_MIN..=LONG_DIRECT_MAX).contains(&v) {
            self.buf.push((BC_LONG_ZERO as i64 + v) as u8);
        } else if (LONG_BYTE_MIN..=LONG_BYTE_MAX).contains(&v) {
            self.buf
                .extend_from_slice(&[(BC_LONG_BYTE_ZERO as i64 + (v >> 8)) as u8, v as u8]);
        } else if (LONG_SHORT_MIN..=LONG_SHORT_MAX).contains(&v) {
            self.buf.extend_from_slice(&[
                (BC_LONG_SHORT_ZERO as i64 + (v >> 16)) as u8,
                (v >> 8) as u8,
                v as u8,
            ]);
        } else if let Ok(small) = i32::try_from(v) {
            self.buf.push(BC_LONG_INT);
            self.buf.extend_from_slice(&small.to_be_bytes());
        } else {
            self.buf.push(b'L');
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes a `double` in its shortest form, with Java's rules: integral values in the
    /// `short` range use the zero / one / byte / short forms, values that are an exact
    /// multiple of 0.001 (`0.001 * m == v` for `m = (int)(v * 1000)`) use the 32-bit
    /// milli form, everything else (including NaN and infinities) the 64-bit form.
    pub fn write_double(&mut self, v: f64) {
        // `as` saturates and maps NaN to 0, like Java's (int) cast.
        let int_value = v as i32;
        if f64::from(int_value) == v {
            if int_value == 0 {
                self.buf.push(BC_DOUBLE_ZERO);
                return;
            }
            if int_value == 1 {
                self.buf.push(BC_DOUBLE_ONE);
                return;
            }
            if (-0x80..0x80).contains(&int_value) {
                self.buf
                    .extend_from_slice(&[BC_DOUBLE_BYTE, int_value as u8]);
                return;
            }
            if (-0x8000..0x8000).contains(&int_value) {
                self.buf.push(BC_DOUBLE_SHORT);
                self.buf
                    .extend_from_slice(&(int_value as i16).to_be_bytes());
                return;
            }
        }
        let mills = (v * 1000.0) as i32;
        if 0.001 * f64::from(mills) == v {
            self.buf.push(BC_DOUBLE_MILL);
            self.buf.extend_from_slice(&mills.to_be_bytes());
            return;
        }
        // Java's doubleToLongBits: every NaN becomes the canonical one.
        let bits = if v.is_nan() {
            0x7ff8_0000_0000_0000
        } else {
            v.to_bits()
        };
        self.buf.push(b'D');
        self.buf.extend_from_slice(&bits.to_be_bytes());
    }

    /// Writes a `java.util.Date` given in milliseconds since the epoch: whole minutes that fit
    /// 32 bits use the compact `K` form, the rest `J`.
    pub fn write_date(&mut self, millis: i64) {
        if millis % 60_000 == 0 {
            if let Ok(minutes) = i32::try_from(millis / 60_000) {
                self.buf.push(BC_DATE_MINUTE);
                self.buf.extend_from_slice(&minutes.to_be_bytes());
                return;
            }
        }
        self.buf.push(BC_DATE);
        self.buf.extend_from_slice(&millis.to_be_bytes());
    }

    /// Writes a string. Lengths count UTF-16 code units; characters outside the Basic
    /// Multilingual Plane are written as two 3-byte surrogate sequences (CESU-8), as Java
    /// does, because Java's reader rejects 4-byte UTF-8. Strings over 0x8000 code units are
    /// split into `R` chunks of 0x8000 units (one less when a chunk would end between the
    /// two halves of a surrogate pair), the last chunk using the shortest form.
    pub fn write_string(&mut self, s: &str) {
        let bmp_only = !s.bytes().any(|b| b >= 0xf0);
        let units = if s.is_ascii() {
            s.len()
        } else {
            s.chars().map(char::len_utf16).sum()
        };
        if units <= CHUNK && bmp_only {
            self.write_string_header(units);
            self.buf.extend_from_slice(s.as_bytes());
            return;
        }
        let mut remaining = units;
        let mut rest = s;
        while remaining > CHUNK {
            // Take whole characters up to CHUNK code units.
            let mut taken_units = 0;
            let mut split = rest.len();
            for (i, c) in rest.char_indices() {
                let u = c.len_utf16();
                if taken_units + u > CHUNK {
                    split = i;
                    break;
                }
                taken_units += u;
            }
            let (chunk, tail) = rest.split_at(split);
            self.buf.push(BC_STRING_CHUNK);
            self.buf
                .extend_from_slice(&(taken_units as u16).to_be_bytes());
            self.write_cesu8(chunk);
            remaining -= taken_units;
            rest = tail;
        }
        self.write_string_header(remaining);
        self.write_cesu8(rest);
    }

    fn write_string_header(&mut self, units: usize) {
        if units <= STRING_DIRECT_MAX {
            self.buf.push(units as u8);
        } else if units <= STRING_SHORT_MAX {
            self.buf
                .extend_from_slice(&[BC_STRING_SHORT + (units >> 8) as u8, units as u8]);
        } else {
            self.buf.push(b'S');
            self.buf.extend_from_slice(&(units as u16).to_be_bytes());
        }
    }

    fn write_cesu8(&mut self, s: &str) {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            if c.len_utf8() == 4 {
                self.buf.extend_from_slice(&s.as_bytes()[start..i]);
                let mut pair = [0u16; 2];
                for unit in c.encode_utf16(&mut pair).iter() {
                    let u = *unit;
                    self.buf.extend_from_slice(&[
                        0xe0 | (u >> 12) as u8,
                        0x80 | ((u >> 6) & 0x3f) as u8,
                        0x80 | (u & 0x3f) as u8,
                    ]);
                }
                start = i + 4;
            }
        }
        self.buf.extend_from_slice(&s.as_bytes()[start..]);
    }

    /// Writes a `byte[]`: up to 15 bytes in the 1-byte-header form, up to 1023 in the
    /// 2-byte-header form, longer ones as `A` chunks of 0x8000 bytes followed by a final
    /// chunk. (Java splits long binaries where its output buffer fills, which depends on
    /// what was written before; any split is valid on the wire.)
    pub fn write_binary(&mut self, b: &[u8]) {
        let mut rest = b;
        while rest.len() > CHUNK {
            let (chunk, tail) = rest.split_at(CHUNK);
            self.buf.push(BC_BINARY_CHUNK);
            self.buf.extend_from_slice(&(CHUNK as u16).to_be_bytes());
            self.buf.extend_from_slice(chunk);
            rest = tail;
        }
        let n = rest.len();
        if n <= BINARY_DIRECT_MAX {
            self.buf.push(BC_BINARY_DIRECT + n as u8);
        } else if n <= BINARY_SHORT_MAX {
            self.buf
                .extend_from_slice(&[BC_BINARY_SHORT + (n >> 8) as u8, n as u8]);
        } else {
            self.buf.push(b'B');
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        }
        self.buf.extend_from_slice(rest);
    }

    /// Starts a list of `len` elements, typed or untyped, in the fixed-length form Java uses
    /// for collections and arrays (`0x78+len` / `X` untyped, `0x70+len` / `V` typed); the
    /// caller then writes exactly `len` values and no end marker.
    pub fn write_list_begin(&mut self, len: usize, type_name: Option<&str>) {
        self.refs += 1;
        match type_name {
            None if len <= LIST_DIRECT_MAX => self.buf.push(BC_LIST_DIRECT_UNTYPED + len as u8),
            None => {
                self.buf.push(BC_LIST_FIXED_UNTYPED);
                self.write_int(len_i32(len));
            }
            Some(t) if len <= LIST_DIRECT_MAX => {
                self.buf.push(BC_LIST_DIRECT + len as u8);
                self.write_type(t);
            }
            Some(t) => {
                self.buf.push(BC_LIST_FIXED);
                self.write_type(t);
                self.write_int(len_i32(len));
            }
        }
    }

    /// Starts a map: `H` when untyped, `M` + type otherwise. The caller writes keys and values
    /// alternately, then [`write_end`](Self::write_end).
    pub fn write_map_begin(&mut self, type_name: Option<&str>) {
        self.refs += 1;
        match type_name {
            None => self.buf.push(b'H'),
            Some(t) => {
                self.buf.push(b'M');
                self.write_type(t);
            }
        }
    }

    /// Writes `Z`, the end of a map (or of a variable-length list).
    pub fn write_end(&mut self) {
        self.buf.push(BC_END);
    }

    /// Starts an object of class `class` with the given fields: writes the class definition
    /// (`C`) if this class and field list were not used yet in this message, then the instance
    /// header (`0x60+n` for the first 16 definitions, `O` + n after). The caller then writes one
    /// value per field, in order.
    pub fn write_object_begin(&mut self, class: &str, fields: &[&str]) {
        self.refs += 1;
        let known = self.classes.get(class).and_then(|defs| {
            defs.iter()
                .find(|(names, _)| names.iter().map(String::as_str).eq(fields.iter().copied()))
                .map(|(_, i)| *i)
        });
        let index = match known {
            Some(i) => i,
            None => {
                let i = self.class_count;
                self.class_count += 1;
                self.buf.push(b'C');
                self.write_string(class);
                self.write_int(len_i32(fields.len()));
                for f in fields {
                    self.write_string(f);
                }
                self.classes
                    .entry(class.to_owned())
                    .or_default()
                    .push((fields.iter().map(|f| (*f).to_owned()).collect(), i));
                i
            }
        };
        if index <= OBJECT_DIRECT_MAX {
            self.buf.push(BC_OBJECT_DIRECT + index as u8);
        } else {
            self.buf.push(b'O');
            self.write_int(len_i32(index));
        }
    }

    /// Writes `Q` + `index`, a back-reference to the `index`-th list, map or object of this
    /// message (counting from 0 in the order they were started).
    pub fn write_ref(&mut self, index: u32) -> Result<()> {
        if index as usize >= self.refs {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "reference Q#{index} points past the {} lists, maps and objects written",
                    self.refs
                ),
            ));
        }
        self.buf.push(BC_REF);
        self.write_int(index as i32);
        Ok(())
    }

    /// A type name: the string the first time, its index afterwards (Java's `writeType`).
    fn write_type(&mut self, t: &str) {
        if let Some(&i) = self.types.get(t) {
            self.write_int(len_i32(i));
        } else {
            let i = self.types.len();
            self.types.insert(t.to_owned(), i);
            self.write_string(t);
        }
    }
}

/// Lengths and indices are `int` on the wire; a Rust collection cannot realistically exceed it.
fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
