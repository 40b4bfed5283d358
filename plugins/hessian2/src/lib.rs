//! Hessian 2.0 serialization, the body format of Dubbo's `dubbo://` protocol
//! (serialization id 2, `hessian2`), written from the Hessian 2.0 specification and checked
//! byte for byte against Java's `Hessian2Output`.
//!
//! * [`to_vec`] / [`to_writer`] / [`from_slice`]: serde for one value.
//! * [`Encoder`] / [`Decoder`]: several consecutive values in one message (a Dubbo body is a
//!   sequence of top-level values), sharing class definitions, type names and references
//!   across them as one Java `Hessian2Output` / `Hessian2Input` does.
//! * [`Value`] with [`encode`] / [`decode`]: values whose types are not known in advance.
//! * [`Limits`]: bounds for untrusted input. Decoding never panics and never allocates by a
//!   wire length alone; every error says what was wrong and at which byte offset.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename = "com.example.Person")] // the Java class name
//! struct Person {
//!     name: String,
//!     age: i32,
//! }
//!
//! let ann = Person { name: "ann".into(), age: 42 };
//! let bytes = rpc_hessian2::to_vec(&ann).unwrap();
//! assert_eq!(bytes[0], b'C'); // class definition, then the instance
//! assert_eq!(rpc_hessian2::from_slice::<Person>(&bytes).unwrap(), ann);
//! ```
//!
//! # Type mapping
//!
//! | Rust (serde)                              | Hessian written                          | Java                     |
//! |-------------------------------------------|------------------------------------------|--------------------------|
//! | `bool`                                    | `T` / `F`                                | `boolean` / `Boolean`    |
//! | `i8`, `i16`, `i32`, `u8`, `u16`           | int (shortest of 1, 2, 3, 5 bytes)       | `int` / `Integer` (`byte`, `short` read fine) |
//! | `i64`, `u32`, `u64` ≤ `i64::MAX`, `i128`/`u128` in range | long (shortest form)     | `long` / `Long`          |
//! | `f32`, `f64`                              | double (shortest form, Java's rules)     | `double` / `Double`      |
//! | `char`, `&str`, `String`                  | string (UTF-16 lengths, CESU-8)          | `String` (`char`)        |
//! | bytes (`serde_bytes`)                     | binary                                   | `byte[]`                 |
//! | `None`, `()`, unit struct                 | `N`                                      | `null`                   |
//! | `Some(x)`, newtype struct                 | the inner value                          | the inner value          |
//! | `Vec<T>`, slices, sets, tuples, tuple structs | untyped fixed-length list (`0x78+n` / `X`) | `java.util.ArrayList` (or any `List` / array parameter) |
//! | maps (`HashMap`, `BTreeMap`, ...)         | untyped map `H` ... `Z`                  | `java.util.HashMap`      |
//! | struct                                    | object: class definition `C` once per message, then `0x60+n` / `O` instances | a class with those fields |
//! | unit enum variant                         | object of class *enum name* with one field `name` = variant name | a Java `enum` |
//! | newtype / tuple / struct enum variant     | `H {"Variant": value}` (value: inner value / list / map of the fields) | a `Map` |
//! | [`Value::Date`] (no serde type)           | date `K` (whole minutes) or `J`          | `java.util.Date`         |
//!
//! **Java class names.** A struct is written as an object whose class is the name serde
//! gives it, which is the Rust struct name unless renamed: use
//! `#[serde(rename = "com.example.Person")]` to set the Java class name (for a Java nested
//! class: `"com.example.Outer$Inner"`). The same applies to enums: `#[serde(rename =
//! "com.example.Color")] enum Color { #[serde(rename = "RED")] Red }` is written like the Java
//! enum constant `Color.RED` (`rename_all = "SCREAMING_SNAKE_CASE"` maps all variants).
//! Field names are the serde field names (`rename` / `rename_all = "camelCase"` as needed).
//!
//! **Reading** is lenient the way Java is: every form of the grammar is accepted (typed and
//! variable-length lists, `M` typed maps, `J`/`K` dates, chunked strings and binaries, type
//! references, long forms of small numbers, 4-byte UTF-8 as well as CESU-8 surrogate pairs).
//! An object deserializes into a struct (by field name; unknown fields are skipped unless the
//! struct denies them) or into a map with string keys; a list into any sequence; a typed or
//! untyped map into a map or a struct; a date into an `i64` of milliseconds; an int, long or
//! double into any Rust number it fits (serde's rules). An enum is read from a Java enum
//! object (field `name`), from a plain string, or from a single-entry map. A back-reference
//! `Q` deserializes as a copy of the value it refers to.
//!
//! # Wire rules worth knowing
//!
//! * Lengths of strings count UTF-16 code units; a character outside the BMP counts 2 and is
//!   written as two 3-byte surrogate sequences (CESU-8), as Java writes it. Java's reader
//!   rejects 4-byte UTF-8, so this is required for interoperability. Strings longer than
//!   0x8000 units are sent as `R` chunks of 0x8000 units (0x7fff when a chunk would split a
//!   surrogate pair) and a final chunk in its shortest form, exactly like Java.
//! * Doubles: integral values in `-32768..32768` use the 1/1/2/3-byte forms; a value `v` with
//!   `0.001 * (int)(v * 1000) == v` (like 1.5) uses the 5-byte `0x5f` form holding
//!   `v * 1000` as an int; anything else (NaN, infinities, most fractions) the 9-byte `D`
//!   form. `-0.0` is written as the zero form and reads back as `0.0` (as in Java).
//! * A list is written untyped and fixed-length, which is how Java writes `ArrayList` (and
//!   how any `List` / array is accepted on the Java side). Maps are written untyped (`H`).
//! * Class definitions are per message: an [`Encoder`] writes one `C` per class (name and
//!   field list) and then instances refer to it by number; a [`Decoder`] keeps the
//!   definitions for all the values it reads. Use one encoder / decoder per Dubbo body.
//! * Binaries over 0x8000 bytes are written as `A` chunks of 0x8000 bytes; Java chunks where
//!   its 8 KiB buffer fills, so long binaries are not byte-identical to Java's (both forms
//!   are valid and read by both sides).
//!
//! # Not supported
//!
//! * Writing back-references: Rust values are trees, so a value appearing twice is written
//!   twice (valid Hessian; a Java reader gets two equal objects). A decoded
//!   [`Value::Ref`] (a cycle) is written back as `Q`.
//! * Cyclic values through serde (e.g. a Java `Throwable`, whose `cause` is itself when unset)
//!   cannot become Rust values: read them as [`Value`], or into a struct that skips the cyclic
//!   field (unknown fields are skipped without expanding references).
//! * The Hessian-over-HTTP call envelope (call / reply / fault messages) is not part of this
//!   crate; Dubbo does not use it. The reserved value tags `0x40`, `0x45` (`E`), `0x47` (`G`)
//!   and `0x50` (`P`) are rejected as unknown.
//! * `Option<Option<T>>`: `Some(None)` and `None` are both `N`.
//! * `#[serde(flatten)]` makes serde write the struct as a map, so such a struct becomes an
//!   untyped map, not an object. The serializer and deserializer report themselves as
//!   human-readable (serde's default), so types such as `IpAddr` or `Uuid` travel as strings,
//!   which is what a Java peer expects.
//! * Typed lists (`[int`, `java.util.LinkedList`, ...), typed maps and `Date` cannot be
//!   produced through serde; build a [`Value`] and use [`Encoder::write_value`] for those.
//! * Java strings may contain unpaired surrogates; Rust strings cannot, so such strings are
//!   a decoding error.

mod de;
mod decoder;
mod encoder;
mod error;
mod ser;
mod tags;
mod value;

#[cfg(test)]
mod tests;

pub use de::{from_slice, from_slice_with_limits, from_value};
pub use decoder::{Decoder, Limits};
pub use encoder::Encoder;
pub use error::{Error, ErrorKind, Result};
pub use ser::{
    to_value, to_vec, to_writer, MapSerializer, SeqSerializer, StructSerializer, ValueSerializer,
};
pub use value::{decode, encode, Value};
