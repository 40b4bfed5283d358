//! [`Value`], a dynamically typed Hessian value, and the one-shot [`encode`] / [`decode`].

use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::Result;

/// Any Hessian 2.0 value, for bodies whose types are not known at compile time
/// (generic invocation, exceptions sent by a Java provider, debugging).
///
/// Decoding keeps what the wire says: an `int` stays [`Value::Int`], a `long` stays
/// [`Value::Long`], list and map type names and object class names are kept, and map
/// entries and object fields keep their wire order. Encoding a decoded value therefore gives
/// the bytes a Java writer produces for the same data (see the crate documentation for the
/// exceptions).
#[derive(Debug, Clone)]
pub enum Value {
    /// `N`: Java `null`.
    Null,
    /// `T` / `F`: `boolean`.
    Bool(bool),
    /// A 32-bit `int`.
    Int(i32),
    /// A 64-bit `long`.
    Long(i64),
    /// A 64-bit `double`.
    Double(f64),
    /// A `java.util.Date`: milliseconds since 1970-01-01T00:00:00Z.
    Date(i64),
    /// A `String`.
    String(String),
    /// A `byte[]`.
    Binary(Vec<u8>),
    /// A list or array; `type_name` is the Java type sent on the wire (`None` for untyped
    /// lists such as `java.util.ArrayList`, e.g. `Some("[int")` for `int[]`).
    List {
        /// The list's type as written by the sender, if any.
        type_name: Option<String>,
        /// The elements in order.
        items: Vec<Value>,
    },
    /// A map; `type_name` is `None` for the untyped `H` map (`java.util.HashMap`).
    Map {
        /// The map's type as written by the sender (`M` map), if any.
        type_name: Option<String>,
        /// The entries in wire order.
        entries: Vec<(Value, Value)>,
    },
    /// An object: an instance of a class definition (Java class name and field names).
    Object {
        /// The Java class name, e.g. `java.lang.RuntimeException`.
        class: String,
        /// The fields in the order of the class definition.
        fields: Vec<(String, Value)>,
    },
    /// A back-reference (`Q`) to an enclosing list, map or object that is still being
    /// decoded: the value graph has a cycle (a Java `Throwable` whose `cause` is itself,
    /// for instance). The number is the reference index: lists, maps and objects are
    /// numbered from 0 in the order they start in the message. Other back-references are
    /// resolved while decoding and never appear as `Ref`.
    Ref(u32),
}

impl Value {
    /// Shorthand for a [`Value::String`].
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// An untyped list (what a Java `ArrayList` is written as).
    pub fn list(items: Vec<Value>) -> Value {
        Value::List {
            type_name: None,
            items,
        }
    }

    /// An untyped map (what a Java `HashMap` is written as).
    pub fn map(entries: Vec<(Value, Value)>) -> Value {
        Value::Map {
            type_name: None,
            entries,
        }
    }

    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as `i64`, if this is an [`Value::Int`] or a [`Value::Long`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// For a map or an object: the value stored under the string key / field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v),
            Value::Object { fields, .. } => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Structural equality; doubles compare with `==` except that NaN equals NaN
/// (so `-0.0 == 0.0`, matching the fact that Hessian's compact zero has no sign).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Long(a), Long(b)) => a == b,
            (Double(a), Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Date(a), Date(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Binary(a), Binary(b)) => a == b,
            (
                List {
                    type_name: ta,
                    items: a,
                },
                List {
                    type_name: tb,
                    items: b,
                },
            ) => ta == tb && a == b,
            (
                Map {
                    type_name: ta,
                    entries: a,
                },
                Map {
                    type_name: tb,
                    entries: b,
                },
            ) => ta == tb && a == b,
            (
                Object {
                    class: ca,
                    fields: a,
                },
                Object {
                    class: cb,
                    fields: b,
                },
            ) => ca == cb && a == b,
            (Ref(a), Ref(b)) => a == b,
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Long(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(v)
    }
}

/// Encodes one value as a complete Hessian message (its own class-definition and type tables).
///
/// Fails only for a [`Value::Ref`] that points past the lists, maps and objects written so far.
pub fn encode(value: &Value) -> Result<Vec<u8>> {
    let mut e = Encoder::new();
    e.write_value(value)?;
    Ok(e.into_bytes())
}

/// Decodes exactly one value from `bytes` with the default [`Limits`](crate::Limits);
/// trailing bytes are an error (use [`Decoder`] for a sequence of values).
pub fn decode(bytes: &[u8]) -> Result<Value> {
    let mut d = Decoder::new(bytes);
    let v = d.read_value()?;
    d.end()?;
    Ok(v)
}
