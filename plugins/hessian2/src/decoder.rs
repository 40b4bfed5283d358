//! [`Decoder`]: reads consecutive Hessian values from one buffer, with [`Limits`].

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::tags::*;
use crate::value::Value;

/// Bounds applied while decoding untrusted input.
///
/// Lengths and counts read from the wire are always checked against the bytes actually left
/// in the input (every element takes at least one byte), so no allocation is ever sized by a
/// wire length alone; these limits bound what the input size does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of lists, maps and objects (default 128). Decoding recurses once per
    /// level, so very large values risk exhausting the stack.
    pub max_depth: usize,
    /// Maximum number of class definitions (`C`) in one message (default 4096).
    pub max_class_defs: usize,
    /// Maximum number of fields in one class definition (default 4096).
    pub max_class_fields: usize,
    /// Maximum number of distinct list/map type names in one message (default 4096).
    pub max_type_names: usize,
    /// Maximum number of lists, maps and objects in one message (default 1 048 576).
    pub max_refs: usize,
    /// Maximum number of bytes copied to expand back-references over the whole message
    /// (default 8 MiB): input re-read for a reference to a value (`Q`), and the names a
    /// reference to a definition brings along (an object's class and field names, copied
    /// into each [`Value::Object`](crate::Value::Object); a list's or map's type name).
    /// Bounds the blow-up of inputs in which a few bytes refer to something much larger.
    pub max_ref_expansion: usize,
    /// Maximum number of values [`Decoder::read_value`] builds over the whole message
    /// (default 1 048 576). A [`Value`](crate::Value) takes about 48 bytes however small its
    /// encoding (a null is one byte), so this bounds the tree a message can make. Reading
    /// into Rust types, or skipping, builds none.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 128,
            max_class_defs: 4096,
            max_class_fields: 4096,
            max_type_names: 4096,
            max_refs: 1 << 20,
            max_ref_expansion: 8 << 20,
            max_values: 1 << 20,
        }
    }
}

/// A class definition read from a `C` tag.
#[derive(Debug)]
pub(crate) struct ClassDef {
    pub(crate) name: String,
    pub(crate) fields: Vec<String>,
    /// The bytes of the name and the field names: what each instance read as a
    /// [`Value::Object`](crate::Value::Object) copies.
    pub(crate) names_len: usize,
}

/// The start of one value: scalars complete, containers with what is needed to read their
/// content.
pub(crate) enum Header<'de> {
    Null,
    Bool(bool),
    Int(i32),
    Long(i64),
    Double(f64),
    Date(i64),
    String(String),
    Binary(Cow<'de, [u8]>),
    /// `len` is `None` for a variable-length list (ended by `Z`). `slot` is the reference
    /// index, `None` while re-reading a referenced value.
    List {
        type_name: Option<String>,
        len: Option<usize>,
        slot: Option<usize>,
    },
    Map {
        type_name: Option<String>,
        slot: Option<usize>,
    },
    Object {
        def: Arc<ClassDef>,
        slot: Option<usize>,
    },
    /// `Q`: a back-reference, already checked to be in range.
    Ref(usize),
}

#[derive(Debug, Clone, Copy)]
struct RefSlot {
    start: usize,
    done: bool,
}

/// Reads a sequence of Hessian 2.0 values from one buffer, such as the values of a Dubbo
/// request or response body.
///
/// Class definitions, type names and back-references are shared by all values read through
/// one decoder, as in Java's `Hessian2Input`. A back-reference (`Q`) to a list, map or object
/// is resolved by decoding the referenced value again, so the result is a copy (bounded by
/// [`Limits::max_ref_expansion`]); a reference to a value that is still being decoded (a cycle)
/// becomes [`Value::Ref`] in [`read_value`](Self::read_value) and an error with serde.
///
/// After an error the decoder's position is unspecified; drop it.
///
/// ```
/// use rpc_hessian2::{Decoder, Value};
/// let body = [0x91, 0x05, b'h', b'e', b'l', b'l', b'o'];
/// let mut d = Decoder::new(&body);
/// assert_eq!(d.read_value().unwrap(), Value::Int(1));
/// assert_eq!(d.deserialize::<String>().unwrap(), "hello");
/// assert!(d.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder<'de> {
    buf: &'de [u8],
    pos: usize,
    limits: Limits,
    depth: usize,
    classes: Vec<Arc<ClassDef>>,
    types: Vec<String>,
    refs: Vec<RefSlot>,
    /// > 0 while re-reading the span of a referenced value: nothing is registered then.
    replaying: usize,
    expanded: usize,
    /// Values built by `read_value` so far.
    built: usize,
}

impl<'de> Decoder<'de> {
    /// A decoder over `buf` with the default [`Limits`].
    pub fn new(buf: &'de [u8]) -> Self {
        Decoder::with_limits(buf, Limits::default())
    }

    /// A decoder over `buf` with the given limits.
    pub fn with_limits(buf: &'de [u8], limits: Limits) -> Self {
        Decoder {
            buf,
            pos: 0,
            limits,
            depth: 0,
            classes: Vec::new(),
            types: Vec::new(),
            refs: Vec::new(),
            replaying: 0,
            expanded: 0,
            built: 0,
        }
    }

    /// Whether all input has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The input not read yet.
    pub fn remaining(&self) -> &'de [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    /// Fails if input is left.
    pub fn end(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::at(
                ErrorKind::InvalidData,
                self.pos,
                format!(
                    "{} trailing bytes after the value",
                    self.buf.len() - self.pos
                ),
            ))
        }
    }

    /// Reads the next value as a dynamic [`Value`].
    pub fn read_value(&mut self) -> Result<Value> {
        self.value()
    }

    /// Reads past the next value without building it: what [`read_value`](Self::read_value)
    /// checks and registers (class definitions, type names, references for the values after
    /// it) without its allocations, for a reader that only needs to know where a value ends.
    pub fn skip_value(&mut self) -> Result<()> {
        self.skip()
    }

    /// Reads the next value into any `Deserialize` type (see the crate documentation for
    /// the mapping).
    pub fn deserialize<T: Deserialize<'de>>(&mut self) -> Result<T> {
        let at = self.pos;
        T::deserialize(&mut *self).map_err(|e| e.or_at(at))
    }

    /// Whether the next byte is `N` (null).
    pub fn peek_is_null(&self) -> bool {
        self.peek() == Some(b'N')
    }

    // ----- low level ----------------------------------------------------------------------

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn eof(&self, what: &str) -> Error {
        Error::at(
            ErrorKind::UnexpectedEof,
            self.pos,
            format!("input ends inside {what}"),
        )
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => Err(self.eof(what)),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'de [u8]> {
        if n > self.left() {
            return Err(self.eof(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u16_len(&mut self, what: &str) -> Result<usize> {
        Ok(usize::from(u16::from_be_bytes(self.array::<2>(what)?)))
    }

    /// Enters the list, map or object starting at `at`.
    pub(crate) fn enter(&mut self, at: usize) -> Result<()> {
        if self.depth >= self.limits.max_depth {
            return Err(Error::at(
                ErrorKind::LimitExceeded,
                at,
                format!("nesting deeper than {} levels", self.limits.max_depth),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Marks a list, map or object as completely read: references to it are copies from now on.
    pub(crate) fn finish(&mut self, slot: Option<usize>) {
        if let Some(s) = slot.and_then(|i| self.refs.get_mut(i)) {
            s.done = true;
        }
    }

    /// Consumes `Z` if it is next; fails at the end of input.
    pub(crate) fn at_end_marker(&mut self) -> Result<bool> {
        match self.peek() {
            Some(BC_END) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(self.eof("a list or map (no end marker 'Z')")),
        }
    }

    /// Whether the referenced value has been completely read (otherwise the reference is a
    /// cycle).
    pub(crate) fn ref_done(&self, index: usize) -> bool {
        self.refs.get(index).is_some_and(|s| s.done)
    }

    /// Runs `f` on the span of the referenced value, then continues after the reference.
    pub(crate) fn replay<R>(
        &mut self,
        index: usize,
        at: usize,
        f: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        let start = match self.refs.get(index) {
            Some(s) => s.start,
            None => {
                return Err(Error::at(
                    ErrorKind::InvalidData,
                    at,
                    format!("undefined reference Q#{index}"),
                ))
            }
        };
        self.charge(0, at)?;
        let saved = self.pos;
        self.pos = start;
        self.replaying += 1;
        let r = f(self);
        self.replaying -= 1;
        let replayed = self.pos.saturating_sub(start);
        self.pos = saved;
        let r = r?;
        self.charge(replayed, at)?;
        Ok(r)
    }

    /// Counts `bytes` copied to expand a back-reference (at offset `at`) against
    /// [`Limits::max_ref_expansion`].
    fn charge(&mut self, bytes: usize, at: usize) -> Result<()> {
        self.expanded = self.expanded.saturating_add(bytes);
        if self.expanded > self.limits.max_ref_expansion {
            return Err(Error::at(
                ErrorKind::LimitExceeded,
                at,
                format!(
                    "back-references expand to more than {} bytes (copies of referenced values, \
                     class names, field names and type names)",
                    self.limits.max_ref_expansion
                ),
            ));
        }
        Ok(())
    }

    /// Reads an `int` in any of its forms (lengths, indices).
    fn wire_int(&mut self, what: &str) -> Result<i32> {
        let at = self.pos;
        let tag = self.byte(what)?;
        Ok(match tag {
            0x80..=0xbf => i32::from(tag) - i32::from(BC_INT_ZERO),
            0xc0..=0xcf => {
                let b0 = self.byte(what)?;
                ((i32::from(tag) - i32::from(BC_INT_BYTE_ZERO)) << 8) + i32::from(b0)
            }
            0xd0..=0xd7 => {
                let [b1, b0] = self.array::<2>(what)?;
                ((i32::from(tag) - i32::from(BC_INT_SHORT_ZERO)) << 16)
                    + (i32::from(b1) << 8)
                    + i32::from(b0)
            }
            b'I' => i32::from_be_bytes(self.array::<4>(what)?),
            _ => {
                return Err(Error::at(
                    ErrorKind::UnexpectedTag,
                    at,
                    format!("expected an int ({what}), found tag {}", tag_name(tag)),
                ))
            }
        })
    }

    /// A non-negative count that cannot exceed the bytes left (each item takes one byte or more).
    fn wire_count(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.wire_int(what)?;
        let n = usize::try_from(n)
            .map_err(|_| Error::at(ErrorKind::InvalidData, at, format!("negative {what} {n}")))?;
        if n > self.left() {
            return Err(Error::at(
                ErrorKind::InvalidData,
                at,
                format!("{what} {n} exceeds the {} bytes left", self.left()),
            ));
        }
        Ok(n)
    }

    fn index(&mut self, what: &str) -> Result<(usize, usize)> {
        let at = self.pos;
        let n = self.wire_int(what)?;
        let n = usize::try_from(n)
            .map_err(|_| Error::at(ErrorKind::InvalidData, at, format!("negative {what} {n}")))?;
        Ok((n, at))
    }

    /// The type of a typed list or map: a string (registered) or a reference to an earlier one.
    fn type_name(&mut self) -> Result<String> {
        let at = self.pos;
        match self.peek() {
            Some(0x00..=0x1f | 0x30..=0x33 | b'S' | BC_STRING_CHUNK) => {
                let tag = self.byte("a type name")?;
                let t = self.string_after_tag(tag, at)?;
                if self.replaying == 0 {
                    if self.types.len() >= self.limits.max_type_names {
                        return Err(Error::at(
                            ErrorKind::LimitExceeded,
                            at,
                            format!("more than {} type names", self.limits.max_type_names),
                        ));
                    }
                    self.types.push(t.clone());
                }
                Ok(t)
            }
            Some(0x80..=0xd7 | b'I') => {
                let (i, at) = self.index("type reference")?;
                let t = self.types.get(i).cloned().ok_or_else(|| {
                    Error::at(
                        ErrorKind::InvalidData,
                        at,
                        format!(
                            "undefined type reference #{i} ({} type names defined)",
                            self.types.len()
                        ),
                    )
                })?;
                self.charge(t.len(), at)?;
                Ok(t)
            }
            Some(tag) => Err(Error::at(
                ErrorKind::UnexpectedTag,
                at,
                format!("expected a type name, found tag {}", tag_name(tag)),
            )),
            None => Err(self.eof("a type name")),
        }
    }

    /// `C` already consumed: class name, field count, field names.
    fn class_def(&mut self, at: usize) -> Result<()> {
        let name_at = self.pos;
        let name = match self.byte("a class definition")? {
            tag @ (0x00..=0x1f | 0x30..=0x33 | b'S' | BC_STRING_CHUNK) => {
                self.string_after_tag(tag, name_at)?
            }
            tag => {
                return Err(Error::at(
                    ErrorKind::UnexpectedTag,
                    name_at,
                    format!("expected a class name string, found tag {}", tag_name(tag)),
                ))
            }
        };
        let count_at = self.pos;
        let count = self.wire_count("class field count")?;
        if count > self.limits.max_class_fields {
            return Err(Error::at(
                ErrorKind::LimitExceeded,
                count_at,
                format!(
                    "class {name} has {count} fields, more than {}",
                    self.limits.max_class_fields
                ),
            ));
        }
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let f_at = self.pos;
            match self.byte("a class definition")? {
                tag @ (0x00..=0x1f | 0x30..=0x33 | b'S' | BC_STRING_CHUNK) => {
                    fields.push(self.string_after_tag(tag, f_at)?)
                }
                tag => {
                    return Err(Error::at(
                        ErrorKind::UnexpectedTag,
                        f_at,
                        format!(
                            "expected a field name string in class {name}, found tag {}",
                            tag_name(tag)
                        ),
                    ))
                }
            }
        }
        if self.replaying == 0 {
            if self.classes.len() >= self.limits.max_class_defs {
                return Err(Error::at(
                    ErrorKind::LimitExceeded,
                    at,
                    format!("more than {} class definitions", self.limits.max_class_defs),
                ));
            }
            let names_len = fields
                .iter()
                .fold(name.len(), |n, f| n.saturating_add(f.len()));
            self.classes.push(Arc::new(ClassDef {
                name,
                fields,
                names_len,
            }));
        }
        Ok(())
    }

    fn class_ref(&self, index: usize, at: usize) -> Result<Arc<ClassDef>> {
        self.classes.get(index).cloned().ok_or_else(|| {
            Error::at(
                ErrorKind::InvalidData,
                at,
                format!(
                    "object refers to undefined class definition #{index} ({} defined)",
                    self.classes.len()
                ),
            )
        })
    }

    /// A string whose first tag (at offset `at`) has been consumed.
    fn string_after_tag(&mut self, first: u8, at: usize) -> Result<String> {
        let mut out = String::new();
        let mut pending: Option<(u32, usize)> = None; // high surrogate and its offset
        let mut tag = first;
        let mut chunk_at = at;
        loop {
            let (units, last) = match tag {
                0x00..=0x1f => (usize::from(tag), true),
                0x30..=0x33 => {
                    let b0 = self.byte("a string length")?;
                    (
                        usize::from(tag - BC_STRING_SHORT) * 256 + usize::from(b0),
                        true,
                    )
                }
                b'S' => (self.u16_len("a string length")?, true),
                BC_STRING_CHUNK => (self.u16_len("a string length")?, false),
                _ => {
                    return Err(Error::at(
                        ErrorKind::UnexpectedTag,
                        chunk_at,
                        format!(
                            "expected the next string chunk, found tag {}",
                            tag_name(tag)
                        ),
                    ))
                }
            };
            if units > self.left() {
                return Err(Error::at(
                    ErrorKind::InvalidData,
                    chunk_at,
                    format!(
                        "string length {units} exceeds the {} bytes left",
                        self.left()
                    ),
                ));
            }
            out.reserve(units);
            self.utf16_units(units, &mut out, &mut pending)?;
            if last {
                break;
            }
            chunk_at = self.pos;
            tag = self.byte("a chunked string")?;
        }
        if let Some((_, p)) = pending {
            return Err(unpaired(p));
        }
        Ok(out)
    }

    /// Decodes `units` UTF-16 code units of (CESU-8 or UTF-8) text.
    fn utf16_units(
        &mut self,
        mut units: usize,
        out: &mut String,
        pending: &mut Option<(u32, usize)>,
    ) -> Result<()> {
        while units > 0 {
            let rest = &self.buf[self.pos..];
            let ascii = rest.iter().take(units).take_while(|b| **b < 0x80).count();
            if ascii > 0 {
                if let Some((_, p)) = pending.take() {
                    return Err(unpaired(p));
                }
                out.extend(rest[..ascii].iter().map(|&b| char::from(b)));
                self.pos += ascii;
                units -= ascii;
                continue;
            }
            let at = self.pos;
            let b0 = self.byte("a string")?;
            let (cp, n_units) = if b0 & 0xe0 == 0xc0 {
                let b1 = self.continuation(at)?;
                ((u32::from(b0 & 0x1f) << 6) | b1, 1)
            } else if b0 & 0xf0 == 0xe0 {
                let b1 = self.continuation(at)?;
                let b2 = self.continuation(at)?;
                ((u32::from(b0 & 0x0f) << 12) | (b1 << 6) | b2, 1)
            } else if b0 & 0xf8 == 0xf0 {
                let b1 = self.continuation(at)?;
                let b2 = self.continuation(at)?;
                let b3 = self.continuation(at)?;
                let cp = (u32::from(b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3;
                if !(0x10000..=0x10ffff).contains(&cp) {
                    return Err(Error::at(
                        ErrorKind::InvalidData,
                        at,
                        format!("invalid 4-byte UTF-8 sequence (U+{cp:X})"),
                    ));
                }
                if units < 2 {
                    return Err(Error::at(
                        ErrorKind::InvalidData,
                        at,
                        "4-byte UTF-8 character (2 UTF-16 code units) crosses the string length",
                    ));
                }
                (cp, 2)
            } else {
                return Err(Error::at(
                    ErrorKind::InvalidData,
                    at,
                    format!("invalid UTF-8 lead byte 0x{b0:02x} in string"),
                ));
            };
            units -= n_units;
            let c = match cp {
                0xd800..=0xdbff => {
                    if let Some((_, p)) = pending.take() {
                        return Err(unpaired(p));
                    }
                    *pending = Some((cp, at));
                    continue;
                }
                0xdc00..=0xdfff => match pending.take() {
                    Some((hi, _)) => 0x10000 + ((hi - 0xd800) << 10) + (cp - 0xdc00),
                    None => return Err(unpaired(at)),
                },
                _ => {
                    if let Some((_, p)) = pending.take() {
                        return Err(unpaired(p));
                    }
                    cp
                }
            };
            match char::from_u32(c) {
                Some(c) => out.push(c),
                None => return Err(unpaired(at)),
            }
        }
        Ok(())
    }

    fn continuation(&mut self, at: usize) -> Result<u32> {
        let b = self.byte("a UTF-8 sequence")?;
        if b & 0xc0 != 0x80 {
            return Err(Error::at(
                ErrorKind::InvalidData,
                at,
                format!("invalid UTF-8 sequence in string (byte 0x{b:02x} is not a continuation)"),
            ));
        }
        Ok(u32::from(b & 0x3f))
    }

    /// A binary whose first tag has been consumed.
    fn binary_after_tag(&mut self, first: u8) -> Result<Cow<'de, [u8]>> {
        let mut owned: Option<Vec<u8>> = None;
        let mut tag = first;
        let mut chunk_at = self.pos - 1;
        loop {
            let (len, last) = match tag {
                0x20..=0x2f => (usize::from(tag - BC_BINARY_DIRECT), true),
                0x34..=0x37 => {
                    let b0 = self.byte("a binary length")?;
                    (
                        usize::from(tag - BC_BINARY_SHORT) * 256 + usize::from(b0),
                        true,
                    )
                }
                b'B' => (self.u16_len("a binary length")?, true),
                BC_BINARY_CHUNK => (self.u16_len("a binary length")?, false),
                _ => {
                    return Err(Error::at(
                        ErrorKind::UnexpectedTag,
                        chunk_at,
                        format!(
                            "expected the next binary chunk, found tag {}",
                            tag_name(tag)
                        ),
                    ))
                }
            };
            if len > self.left() {
                return Err(Error::at(
                    ErrorKind::InvalidData,
                    chunk_at,
                    format!("binary length {len} exceeds the {} bytes left", self.left()),
                ));
            }
            let data = self.take(len, "a binary")?;
            if last && owned.is_none() {
                return Ok(Cow::Borrowed(data));
            }
            owned.get_or_insert_with(Vec::new).extend_from_slice(data);
            if last {
                break;
            }
            chunk_at = self.pos;
            tag = self.byte("a chunked binary")?;
        }
        Ok(Cow::Owned(owned.unwrap_or_default()))
    }

    fn register(&mut self, start: usize) -> Result<Option<usize>> {
        if self.replaying > 0 {
            return Ok(None);
        }
        if self.refs.len() >= self.limits.max_refs {
            return Err(Error::at(
                ErrorKind::LimitExceeded,
                start,
                format!("more than {} lists, maps and objects", self.limits.max_refs),
            ));
        }
        self.refs.push(RefSlot { start, done: false });
        Ok(Some(self.refs.len() - 1))
    }

    /// Reads the start of the next value; class definitions before it are consumed.
    pub(crate) fn header(&mut self) -> Result<Header<'de>> {
        loop {
            let at = self.pos;
            let tag = self.byte("a value")?;
            let h = match tag {
                b'N' => Header::Null,
                b'T' => Header::Bool(true),
                b'F' => Header::Bool(false),
                0x80..=0xd7 | b'I' => {
                    self.pos = at;
                    Header::Int(self.wire_int("an int")?)
                }
                0xd8..=0xef => Header::Long(i64::from(tag) - i64::from(BC_LONG_ZERO)),
                0xf0..=0xff => {
                    let b0 = self.byte("a long")?;
                    Header::Long(
                        ((i64::from(tag) - i64::from(BC_LONG_BYTE_ZERO)) << 8) + i64::from(b0),
                    )
                }
                0x38..=0x3f => {
                    let [b1, b0] = self.array::<2>("a long")?;
                    Header::Long(
                        ((i64::from(tag) - i64::from(BC_LONG_SHORT_ZERO)) << 16)
                            + (i64::from(b1) << 8)
                            + i64::from(b0),
                    )
                }
                BC_LONG_INT => {
                    Header::Long(i64::from(i32::from_be_bytes(self.array::<4>("a long")?)))
                }
                b'L' => Header::Long(i64::from_be_bytes(self.array::<8>("a long")?)),
                BC_DOUBLE_ZERO => Header::Double(0.0),
                BC_DOUBLE_ONE => Header::Double(1.0),
                BC_DOUBLE_BYTE => Header::Double(f64::from(self.byte("a double")? as i8)),
                BC_DOUBLE_SHORT => {
                    Header::Double(f64::from(i16::from_be_bytes(self.array::<2>("a double")?)))
                }
                BC_DOUBLE_MILL => Header::Double(
                    0.001 * f64::from(i32::from_be_bytes(self.array::<4>("a double")?)),
                ),
                b'D' => Header::Double(f64::from_bits(u64::from_be_bytes(
                    self.array::<8>("a double")?,
                ))),
                BC_DATE => Header::Date(i64::from_be_bytes(self.array::<8>("a date")?)),
                BC_DATE_MINUTE => {
                    Header::Date(i64::from(i32::from_be_bytes(self.array::<4>("a date")?)) * 60_000)
                }
                0x00..=0x1f | 0x30..=0x33 | b'S' | BC_STRING_CHUNK => {
                    Header::String(self.string_after_tag(tag, at)?)
                }
                0x20..=0x2f | 0x34..=0x37 | b'B' | BC_BINARY_CHUNK => {
                    Header::Binary(self.binary_after_tag(tag)?)
                }
                BC_LIST_VARIABLE => {
                    let type_name = Some(self.type_name()?);
                    Header::List {
                        type_name,
                        len: None,
                        slot: self.register(at)?,
                    }
                }
                BC_LIST_FIXED => {
                    let type_name = Some(self.type_name()?);
                    let len = Some(self.wire_count("list length")?);
                    Header::List {
                        type_name,
                        len,
                        slot: self.register(at)?,
                    }
                }
                BC_LIST_VARIABLE_UNTYPED => Header::List {
                    type_name: None,
                    len: None,
                    slot: self.register(at)?,
                },
                BC_LIST_FIXED_UNTYPED => {
                    let len = Some(self.wire_count("list length")?);
                    Header::List {
                        type_name: None,
                        len,
                        slot: self.register(at)?,
                    }
                }
                0x70..=0x77 => {
                    let type_name = Some(self.type_name()?);
                    Header::List {
                        type_name,
                        len: Some(usize::from(tag - BC_LIST_DIRECT)),
                        slot: self.register(at)?,
                    }
                }
                0x78..=0x7f => Header::List {
                    type_name: None,
                    len: Some(usize::from(tag - BC_LIST_DIRECT_UNTYPED)),
                    slot: self.register(at)?,
                },
                b'H' => Header::Map {
                    type_name: None,
                    slot: self.register(at)?,
                },
                b'M' => {
                    let type_name = Some(self.type_name()?);
                    Header::Map {
                        type_name,
                        slot: self.register(at)?,
                    }
                }
                b'C' => {
                    self.class_def(at)?;
                    continue;
                }
                0x60..=0x6f => {
                    let def = self.class_ref(usize::from(tag - BC_OBJECT_DIRECT), at)?;
                    Header::Object {
                        def,
                        slot: self.register(at)?,
                    }
                }
                b'O' => {
                    let (i, i_at) = self.index("class definition index")?;
                    let def = self.class_ref(i, i_at)?;
                    Header::Object {
                        def,
                        slot: self.register(at)?,
                    }
                }
                BC_REF => {
                    let (i, i_at) = self.index("reference index")?;
                    if i >= self.refs.len() {
                        return Err(Error::at(
                            ErrorKind::InvalidData,
                            i_at,
                            format!(
                                "undefined reference Q#{i} (only {} lists, maps and objects precede it)",
                                self.refs.len()
                            ),
                        ));
                    }
                    Header::Ref(i)
                }
                BC_END => {
                    return Err(Error::at(
                        ErrorKind::UnexpectedTag,
                        at,
                        "unexpected end marker 'Z' where a value was expected",
                    ))
                }
                _ => {
                    return Err(Error::at(
                        ErrorKind::UnexpectedTag,
                        at,
                        format!("unknown tag {} where a value was expected", tag_name(tag)),
                    ))
                }
            };
            return Ok(h);
        }
    }

    fn value(&mut self) -> Result<Value> {
        let at = self.pos;
        self.built += 1;
        if self.built > self.limits.max_values {
            return Err(Error::at(
                ErrorKind::LimitExceeded,
                at,
                format!("more than {} values in one message", self.limits.max_values),
            ));
        }
        Ok(match self.header()? {
            Header::Null => Value::Null,
            Header::Bool(b) => Value::Bool(b),
            Header::Int(v) => Value::Int(v),
            Header::Long(v) => Value::Long(v),
            Header::Double(v) => Value::Double(v),
            Header::Date(v) => Value::Date(v),
            Header::String(s) => Value::String(s),
            Header::Binary(b) => Value::Binary(b.into_owned()),
            Header::List {
                type_name,
                len,
                slot,
            } => {
                self.enter(at)?;
                let mut items = Vec::new();
                match len {
                    Some(n) => {
                        items.reserve(n.min(self.left()));
                        for _ in 0..n {
                            items.push(self.value()?);
                        }
                    }
                    None => {
                        while !self.at_end_marker()? {
                            items.push(self.value()?);
                        }
                    }
                }
                self.leave();
                self.finish(slot);
                Value::List { type_name, items }
            }
            Header::Map { type_name, slot } => {
                self.enter(at)?;
                let mut entries = Vec::new();
                while !self.at_end_marker()? {
                    let k = self.value()?;
                    let v = self.value()?;
                    entries.push((k, v));
                }
                self.leave();
                self.finish(slot);
                Value::Map { type_name, entries }
            }
            Header::Object { def, slot } => {
                self.charge(def.names_len, at)?;
                self.enter(at)?;
                let mut fields = Vec::with_capacity(def.fields.len());
                for name in &def.fields {
                    fields.push((name.clone(), self.value()?));
                }
                self.leave();
                self.finish(slot);
                Value::Object {
                    class: def.name.clone(),
                    fields,
                }
            }
            Header::Ref(i) => {
                if self.ref_done(i) {
                    self.replay(i, at, |d| d.value())?
                } else {
                    Value::Ref(u32::try_from(i).unwrap_or(u32::MAX))
                }
            }
        })
    }

    /// Reads and discards one value; back-references are not expanded.
    pub(crate) fn skip(&mut self) -> Result<()> {
        let at = self.pos;
        match self.header()? {
            Header::List { len, slot, .. } => {
                self.enter(at)?;
                match len {
                    Some(n) => {
                        for _ in 0..n {
                            self.skip()?;
                        }
                    }
                    None => {
                        while !self.at_end_marker()? {
                            self.skip()?;
                        }
                    }
                }
                self.leave();
                self.finish(slot);
            }
            Header::Map { slot, .. } => {
                self.enter(at)?;
                while !self.at_end_marker()? {
                    self.skip()?;
                    self.skip()?;
                }
                self.leave();
                self.finish(slot);
            }
            Header::Object { def, slot } => {
                self.enter(at)?;
                for _ in 0..def.fields.len() {
                    self.skip()?;
                }
                self.leave();
                self.finish(slot);
            }
            _ => {}
        }
        Ok(())
    }
}

fn unpaired(at: usize) -> Error {
    Error::at(
        ErrorKind::InvalidData,
        at,
        "unpaired UTF-16 surrogate in string",
    )
}

/// `0x41 ('A')` for printable tags, `0x9c` otherwise.
pub(crate) fn tag_name(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("0x{tag:02x} ('{}')", char::from(tag))
    } else {
        format!("0x{tag:02x}")
    }
}
