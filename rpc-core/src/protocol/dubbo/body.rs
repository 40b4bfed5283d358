//! Request and response bodies of the `dubbo` protocol (layout in the module docs).

use std::ops::Range;

use bytes::{BufMut, Bytes};

use crate::error::{ErrorKind, Result, RpcError};
use crate::exchange::Frame;
use crate::invocation::{Attachments, ByteString, Invocation, Value};
use crate::serialize::Serialization;

/// Envelope format version written first in every request body.
pub(crate) const BODY_VERSION: u8 = 1;
/// Longest service path, version, group, method name or attachment key.
pub(crate) const MAX_NAME: usize = 1024;
/// Longest attachment value (the u16 length prefix allows no more).
pub(crate) const MAX_VALUE: usize = u16::MAX as usize;
/// Most attachments in one envelope.
pub(crate) const MAX_ATTACHMENTS: usize = 256;

/// Response body kinds (status OK).
pub(crate) const RESPONSE_BIZ_ERROR: u8 = 0;
pub(crate) const RESPONSE_VALUE: u8 = 1;
pub(crate) const RESPONSE_EMPTY: u8 = 2;

/// A decoded request envelope; `args` are still bytes in the header's serialization.
#[derive(Debug)]
pub(crate) struct RequestBody {
    /// The service path, version, group and method name, read in place in the body: they are
    /// only looked up, so no reference to the body is taken for each.
    pub(crate) names: Names,
    pub(crate) timeout_ms: u32,
    pub(crate) attachments: Attachments,
    pub(crate) args: Bytes,
}

/// The names of a request, where they are in its body. Each is checked as UTF-8 when it is
/// read, once: a name that is not fails the request with an error naming the field.
#[derive(Debug)]
pub(crate) struct Names {
    body: Bytes,
    path: Range<usize>,
    version: Range<usize>,
    group: Range<usize>,
    method: Range<usize>,
}

impl Names {
    fn text(&self, at: &Range<usize>, field: &str) -> Result<&str> {
        match self.body.get(at.clone()).map(std::str::from_utf8) {
            Some(Ok(text)) => Ok(text),
            _ => Err(not_utf8("request body", field)),
        }
    }

    /// The service path (its interface name).
    pub(crate) fn path(&self) -> Result<&str> {
        self.text(&self.path, "service path")
    }

    /// The version, empty when none.
    pub(crate) fn version(&self) -> Result<&str> {
        self.text(&self.version, "version")
    }

    /// The group, empty when none.
    pub(crate) fn group(&self) -> Result<&str> {
        self.text(&self.group, "group")
    }

    /// The method name.
    #[cfg(test)]
    pub(crate) fn method(&self) -> Result<&str> {
        self.text(&self.method, "method name")
    }

    /// The service path, version, group and method name as bytes, unchecked: what a lookup
    /// that matches them against known names (which are text) needs.
    pub(crate) fn bytes(&self) -> [&[u8]; 4] {
        [&self.path, &self.version, &self.group, &self.method]
            .map(|at| self.body.get(at.clone()).unwrap_or_default())
    }

    /// The method name as a string of its own (a slice of the body).
    pub(crate) fn method_string(&self) -> Result<ByteString> {
        ByteString::try_from(self.body.slice(self.method.clone()))
            .map_err(|_| not_utf8("request body", "method name"))
    }
}

#[cold]
fn not_utf8(what: &str, field: &str) -> RpcError {
    RpcError::codec(format!("{what} field {field} is not UTF-8"))
}

fn put_str(out: &mut impl BufMut, s: &str, max: usize, what: &str) -> Result<()> {
    if s.len() > max {
        return Err(RpcError::codec(format!(
            "{what} is {} bytes long, over the limit of {max}",
            s.len()
        )));
    }
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
    Ok(())
}

fn put_attachments(out: &mut impl BufMut, a: &Attachments) -> Result<()> {
    if a.len() > MAX_ATTACHMENTS {
        return Err(RpcError::codec(format!(
            "{} attachments, over the limit of {MAX_ATTACHMENTS}",
            a.len()
        )));
    }
    out.put_u16(a.len() as u16);
    for (k, v) in a.iter() {
        put_str(out, k, MAX_NAME, "attachment key")?;
        put_str(out, v, MAX_VALUE, "attachment value")?;
    }
    Ok(())
}

/// Bytes [`put_attachments`] writes for `a`'s pairs (without the count).
fn attachments_len(a: &Attachments) -> usize {
    a.iter().map(|(k, v)| 4 + k.len() + v.len()).sum()
}

/// Hands `value` encoded with `ser` to `write`: bytes already in `ser` as they are, others
/// encoded into the calling thread's scratch buffer first, so that the body around them is
/// written once, at its known size (see [`Frame::body_with`]).
fn with_value<R>(
    value: &Value,
    ser: &dyn Serialization,
    write: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    /// A scratch buffer that grew past this is let go after use, not kept by the thread.
    const KEEP_UP_TO: usize = 64 * 1024;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if let Value::Encoded(p) = value {
        if p.serialization == ser.id() {
            return write(&p.bytes);
        }
    }
    let encode = |out: &mut Vec<u8>| -> Result<()> {
        match value {
            Value::Typed(v) => v.encode_in(ser, out),
            Value::Empty => crate::serialize::encode(ser, &(), out),
            other => {
                out.extend_from_slice(&other.encode(ser)?.bytes);
                Ok(())
            }
        }
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let result = encode(&mut scratch).and_then(|()| write(&scratch));
            if scratch.capacity() > KEEP_UP_TO {
                *scratch = Vec::new();
            }
            result
        }
        // In use further up this thread's stack (a serializer that encodes a call): a buffer
        // of its own.
        Err(_) => {
            let mut own = Vec::new();
            encode(&mut own)?;
            write(&own)
        }
    })
}

/// Appends `bytes` as a u32-length-prefixed section.
fn put_section(out: &mut impl BufMut, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| RpcError::codec("value larger than 4 GiB"))?;
    out.put_u32(len);
    out.put_slice(bytes);
    Ok(())
}

/// Encodes a request body for `inv`, arguments in `ser` (see [`Frame::body_with`] for where
/// it is written).
pub(crate) fn encode_request(
    inv: &Invocation,
    ser: &dyn Serialization,
    timeout_ms: u32,
) -> Result<Bytes> {
    let key = inv.service();
    let (version, group) = (key.version().unwrap_or(""), key.group().unwrap_or(""));
    with_value(inv.args(), ser, |args| {
        let size = 1
            + 2 * 4
            + key.interface().len()
            + version.len()
            + group.len()
            + inv.method().len()
            + 4
            + 2
            + attachments_len(inv.attachments())
            + 4
            + args.len();
        Frame::body_with(size, |out| {
            out.put_u8(BODY_VERSION);
            put_str(out, key.interface(), MAX_NAME, "service path")?;
            put_str(out, version, MAX_NAME, "version")?;
            put_str(out, group, MAX_NAME, "group")?;
            put_str(out, inv.method(), MAX_NAME, "method name")?;
            out.put_u32(timeout_ms);
            put_attachments(out, inv.attachments())?;
            put_section(out, args)
        })
    })
}

/// Encodes a response body: `kind`, the attachments, then `value` in `ser` (none for
/// [`RESPONSE_EMPTY`]); written as [`Frame::body_with`] says.
pub(crate) fn encode_response(
    kind: u8,
    value: &Value,
    attachments: &Attachments,
    ser: &dyn Serialization,
) -> Result<Bytes> {
    let body = |value: &[u8]| {
        Frame::body_with(
            1 + 2 + attachments_len(attachments) + 4 + value.len(),
            |out| {
                out.put_u8(kind);
                put_attachments(out, attachments)?;
                put_section(out, value)
            },
        )
    };
    if kind == RESPONSE_EMPTY {
        return body(&[]);
    }
    with_value(value, ser, body)
}

/// Encodes an error response body: the error kind's name and the message.
pub(crate) fn encode_error(kind: ErrorKind, message: &str) -> Vec<u8> {
    let msg = super::cut_message(message);
    let name = kind.as_str();
    let mut out = Vec::with_capacity(8 + name.len() + msg.len());
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg.as_bytes());
    out
}

/// Attachment keys the framework itself sends, read as static strings.
static KNOWN_KEYS: &[&str] = &[
    crate::context::TRACEPARENT_ATTACHMENT,
    crate::context::APPLICATION_ATTACHMENT,
    crate::context::TIMEOUT_ATTACHMENT,
    crate::context::TOKEN_ATTACHMENT,
    crate::idempotency::KEY_ATTACHMENT,
    crate::idempotency::REPLAYED_ATTACHMENT,
];

/// A bounds-checked cursor over a body.
struct Reader {
    body: Bytes,
    pos: usize,
    what: &'static str,
}

impl Reader {
    fn new(body: Bytes, what: &'static str) -> Reader {
        Reader { body, pos: 0, what }
    }

    #[cold]
    fn short(&self, field: &str) -> RpcError {
        RpcError::codec(format!("{} truncated while reading the {field}", self.what))
    }

    fn remaining(&self) -> usize {
        self.body.len() - self.pos
    }

    /// The next `len` bytes' place in the body.
    #[inline]
    fn take(&mut self, len: usize, field: &str) -> Result<Range<usize>> {
        if self.remaining() < len {
            return Err(self.short(field));
        }
        let at = self.pos..self.pos + len;
        self.pos += len;
        Ok(at)
    }

    /// The next `N` bytes.
    #[inline]
    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        match self
            .body
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
            Some(bytes) => {
                self.pos += N;
                Ok(*bytes)
            }
            None => Err(self.short(field)),
        }
    }

    #[inline]
    fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }

    #[inline]
    fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    #[inline]
    fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn bytes(&mut self, len: usize, field: &str) -> Result<Bytes> {
        let at = self.take(len, field)?;
        Ok(self.body.slice(at))
    }

    /// The place of a length-prefixed string of at most `max` bytes, not yet checked.
    #[inline]
    fn string_at(&mut self, max: usize, field: &str) -> Result<Range<usize>> {
        let len = self.u16(field)? as usize;
        if len > max {
            return Err(RpcError::codec(format!(
                "{} field {field} is {len} bytes, over the limit of {max}",
                self.what
            )));
        }
        self.take(len, field)
    }

    /// A length-prefixed UTF-8 string: a slice of the body, not a copy.
    fn string(&mut self, max: usize, field: &str) -> Result<ByteString> {
        self.string_or(&[], max, field)
    }

    /// Like [`Reader::string`], but a string equal to one of `known` is that static string:
    /// no reference to the body is taken (each is a count written when taken and dropped).
    fn string_or(&mut self, known: &[&'static str], max: usize, field: &str) -> Result<ByteString> {
        let at = self.string_at(max, field)?;
        if let Some(text) = self
            .body
            .get(at.clone())
            .and_then(|b| known.iter().find(|k| k.as_bytes() == b))
        {
            return Ok(ByteString::from_static(text));
        }
        ByteString::try_from(self.body.slice(at)).map_err(|_| not_utf8(self.what, field))
    }

    /// The attachments, with room for `extra` more pairs (a provider adds the caller's
    /// address to a request's).
    fn attachments(&mut self, extra: usize) -> Result<Attachments> {
        let n = self.u16("attachment count")? as usize;
        if n > MAX_ATTACHMENTS {
            return Err(RpcError::codec(format!(
                "{} carries {n} attachments, over the limit of {MAX_ATTACHMENTS}",
                self.what
            )));
        }
        Attachments::from_pairs(n, extra, || {
            let k = self.string_or(KNOWN_KEYS, MAX_NAME, "attachment key")?;
            let v = self.string(MAX_VALUE, "attachment value")?;
            Ok((k, v))
        })
    }

    fn section(&mut self, field: &str) -> Result<Bytes> {
        let len = self.u32(field)? as usize;
        self.bytes(len, field)
    }

    /// Checks that the whole body was read; gives the body back.
    fn end(self) -> Result<Bytes> {
        if self.remaining() > 0 {
            return Err(RpcError::codec(format!(
                "{} has {} unexpected trailing bytes",
                self.what,
                self.remaining()
            )));
        }
        Ok(self.body)
    }
}

/// Decodes a request envelope; arguments stay encoded.
pub(crate) fn decode_request(body: Bytes) -> Result<RequestBody> {
    let mut r = Reader::new(body, "request body");
    let v = r.u8("body version")?;
    if v != BODY_VERSION {
        return Err(RpcError::codec(format!(
            "request body version {v} is not supported (expected {BODY_VERSION})"
        )));
    }
    let path = r.string_at(MAX_NAME, "service path")?;
    let version = r.string_at(MAX_NAME, "version")?;
    let group = r.string_at(MAX_NAME, "group")?;
    let method = r.string_at(MAX_NAME, "method name")?;
    let timeout_ms = r.u32("timeout")?;
    let attachments = r.attachments(1)?;
    let args = r.section("arguments")?;
    let body = r.end()?;
    Ok(RequestBody {
        names: Names {
            body,
            path,
            version,
            group,
            method,
        },
        timeout_ms,
        attachments,
        args,
    })
}

/// Decodes an OK response body into (kind, attachments, value bytes).
pub(crate) fn decode_response(body: Bytes) -> Result<(u8, Attachments, Bytes)> {
    let mut r = Reader::new(body, "response body");
    let kind = r.u8("result kind")?;
    if kind > RESPONSE_EMPTY {
        return Err(RpcError::codec(format!("unknown response kind {kind}")));
    }
    let att = r.attachments(0)?;
    let value = r.section("value")?;
    r.end()?;
    Ok((kind, att, value))
}

/// Decodes an error body into (kind name, message); lenient, since it only feeds a message.
pub(crate) fn decode_error(body: Bytes) -> Result<(ByteString, String)> {
    let mut r = Reader::new(body, "error body");
    let name = r.string(64, "error kind")?;
    let msg = r.section("message")?;
    // As bounded as what a provider of ours sends (a character cut at the end shows as one
    // replacement character).
    let msg = String::from_utf8_lossy(&msg[..msg.len().min(super::MAX_ERROR_MESSAGE)]);
    Ok((name, msg.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{Payload, ServiceKey};
    use crate::serialize::MsgPack;

    #[test]
    fn bodies_are_carved_side_by_side_at_their_exact_size() {
        let mut inv = Invocation::new(
            ServiceKey::new("a.Calc", Some("g"), Some("1.0")),
            "add",
            Value::typed((vec![7u8; 100],)),
        );
        // What the default consumer filters add, and then some.
        inv.attachments_mut().insert("traceparent", "0".repeat(55));
        inv.attachments_mut().insert("application", "a".repeat(200));
        let body = encode_request(&inv, &MsgPack, 900).expect("encode");
        let reply = encode_response(RESPONSE_VALUE, inv.args(), inv.attachments(), &MsgPack)
            .expect("encode");
        let empty = encode_response(RESPONSE_EMPTY, &Value::Empty, inv.attachments(), &MsgPack)
            .expect("encode");
        // One after the other in the thread's block: each exactly as long as it is, no
        // allocation of its own.
        for (a, b) in [(&body, &reply), (&reply, &empty)] {
            assert_eq!(a.as_ptr() as usize + a.len(), b.as_ptr() as usize);
        }
        let end = empty.as_ptr() as usize + empty.len();
        let req = decode_request(body.clone()).expect("decode");
        assert_eq!(req.names.method().expect("method"), "add");
        let (kind, attachments, _) = decode_response(empty).expect("decode");
        assert_eq!((kind, attachments.len()), (RESPONSE_EMPTY, 2));
        // A body that fails to encode leaves nothing behind: the next starts where it would.
        let mut long = inv.clone();
        long.attachments_mut()
            .insert("k", "v".repeat(MAX_VALUE + 1));
        assert!(encode_request(&long, &MsgPack, 0).is_err());
        let next = encode_request(&inv, &MsgPack, 900).expect("encode");
        assert_eq!(next.as_ptr() as usize, end);
        assert_eq!(next, body);
        // Large arguments get a body of their own and round-trip.
        let big = Invocation::new(
            ServiceKey::new("a.Calc", None, None),
            "add",
            Value::typed((vec![7u8; 200_000],)),
        );
        let body = encode_request(&big, &MsgPack, 900).expect("encode");
        let decoded = decode_request(body).expect("decode");
        let args: (Vec<u8>,) = Value::Encoded(Payload {
            serialization: crate::serialize::ids::MSGPACK,
            bytes: decoded.args,
        })
        .decode()
        .expect("args");
        assert_eq!(args.0.len(), 200_000);
    }

    #[test]
    fn known_attachment_keys_are_read_as_static_strings_and_others_as_sent() {
        use crate::context::{APPLICATION_ATTACHMENT, TRACEPARENT_ATTACHMENT};
        let mut inv = Invocation::new(ServiceKey::new("a.Calc", None, None), "add", Value::Empty);
        inv.attachments_mut().insert(TRACEPARENT_ATTACHMENT, "t");
        inv.attachments_mut().insert(APPLICATION_ATTACHMENT, "shop");
        // As long as a known key, one byte off.
        inv.attachments_mut().insert("traceparenx", "u");
        let body = encode_request(&inv, &MsgPack, 0).expect("encode");
        let req = decode_request(body).expect("decode");
        let keys: Vec<&str> = req.attachments.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                TRACEPARENT_ATTACHMENT,
                APPLICATION_ATTACHMENT,
                "traceparenx"
            ]
        );
        // Not slices of the body: the static texts themselves.
        let is_static = |k: &str| {
            KNOWN_KEYS
                .iter()
                .any(|s| std::ptr::eq(s.as_ptr(), k.as_ptr()))
        };
        assert!(is_static(keys[0]) && is_static(keys[1]));
        assert!(!is_static(keys[2]));
        assert_eq!(req.attachments.get("traceparenx"), Some("u"));
        assert_eq!(req.attachments.get(APPLICATION_ATTACHMENT), Some("shop"));
    }

    #[test]
    fn request_round_trips_with_args_left_encoded() {
        let mut inv = Invocation::new(
            ServiceKey::new("a.Calc", Some("g"), Some("1.0")),
            "add",
            Value::typed((2u32, 3u32)),
        );
        inv.attachments_mut().insert("trace", "t-1");
        let body = encode_request(&inv, &MsgPack, 900).expect("encode");
        let req = decode_request(body).expect("decode");
        assert_eq!(
            (
                req.names.path().expect("path"),
                req.names.version().expect("version"),
                req.names.group().expect("group"),
                req.names.method().expect("method"),
                req.timeout_ms
            ),
            ("a.Calc", "1.0", "g", "add", 900)
        );
        assert_eq!(req.attachments.get("trace"), Some("t-1"));
        let args: (u32, u32) = Value::Encoded(Payload {
            serialization: crate::serialize::ids::MSGPACK,
            bytes: req.args,
        })
        .decode()
        .expect("args");
        assert_eq!(args, (2, 3));
    }

    #[test]
    fn every_truncation_of_a_request_is_a_codec_error() {
        let inv = Invocation::new(ServiceKey::new("S", None, None), "m", Value::typed((1u8,)));
        let body = encode_request(&inv, &MsgPack, 0).expect("encode");
        for cut in 0..body.len() {
            let e = decode_request(Bytes::copy_from_slice(&body[..cut])).expect_err("short");
            assert_eq!(e.kind(), ErrorKind::Codec);
        }
        let mut long = body.to_vec();
        long.push(0);
        assert!(decode_request(Bytes::from(long)).is_err());
    }

    #[test]
    fn oversized_names_and_attachment_counts_are_refused() {
        let long = "x".repeat(MAX_NAME + 1);
        let inv = Invocation::new(ServiceKey::new(&long, None, None), "m", Value::Empty);
        assert!(encode_request(&inv, &MsgPack, 0).is_err());
        // Hand-made body announcing too many attachments.
        let mut b = vec![BODY_VERSION];
        for _ in 0..4 {
            b.extend_from_slice(&[0, 1, b'a']);
        }
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&u16::MAX.to_be_bytes());
        let e = decode_request(Bytes::from(b)).expect_err("too many");
        assert!(e.to_string().contains("attachments"), "{e}");
    }

    #[test]
    fn error_body_round_trips_and_long_messages_are_cut() {
        let max = super::super::MAX_ERROR_MESSAGE;
        let body = encode_error(ErrorKind::MethodNotFound, &"é".repeat(max));
        let (name, msg) = decode_error(Bytes::from(body)).expect("decode");
        assert_eq!(name, "method_not_found");
        assert!(msg.len() <= max);
        // A peer's longer message is cut on receipt too.
        let mut long = encode_error(ErrorKind::Biz, "");
        long.truncate(long.len() - 4);
        long.extend_from_slice(&(1u32 << 20).to_be_bytes());
        long.extend(std::iter::repeat_n(b'x', 1 << 20));
        let (_, msg) = decode_error(Bytes::from(long)).expect("decode");
        assert_eq!(msg.len(), max);
    }

    /// A name that is not UTF-8 is refused, naming the field, whether it is read in place
    /// (the service path, the method) or as a string of its own (an attachment value).
    #[test]
    fn names_that_are_not_utf8_are_refused_by_field() {
        let inv = Invocation::new(ServiceKey::new("a.Calc", None, None), "add", Value::Empty);
        let good = encode_request(&inv, &MsgPack, 100).expect("encode");
        let req = decode_request(good.clone()).expect("decode");
        let names = &req.names;
        assert_eq!(
            (names.path().ok(), names.method().ok()),
            (Some("a.Calc"), Some("add"))
        );
        assert_eq!(names.method_string().ok().as_deref(), Some("add"));
        // The body: version, then the path's length and text.
        let mut bad_path = good.to_vec();
        bad_path[3] = 0xff;
        let req = decode_request(Bytes::from(bad_path)).expect("read in place");
        let e = req.names.path().expect_err("bad path");
        assert!(e.to_string().contains("service path is not UTF-8"), "{e}");
        let mut bad_method = good.to_vec();
        let at = 1 + 2 + "a.Calc".len() + 2 + 2 + 2;
        bad_method[at] = 0xc3;
        let req = decode_request(Bytes::from(bad_method)).expect("read in place");
        let e = req.names.method().expect_err("bad method");
        assert!(e.to_string().contains("method name is not UTF-8"), "{e}");
        let e = req.names.method_string().expect_err("bad method");
        assert!(e.to_string().contains("method name is not UTF-8"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let b = Bytes::from(data);
            if let Ok(req) = decode_request(b.clone()) {
                proptest::prop_assert!(req.attachments.len() <= MAX_ATTACHMENTS);
                proptest::prop_assert!(req.names.method().map_or(0, str::len) <= MAX_NAME);
            }
            let _ = decode_response(b.clone());
            let _ = decode_error(b);
        }
    }
}
