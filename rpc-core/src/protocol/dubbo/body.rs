//! Request and response bodies of the `dubbo` protocol (layout in the module docs).

use bytes::{Buf, Bytes};

use crate::error::{ErrorKind, Result, RpcError};
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
/// Longest error message sent back (longer ones are cut).
const MAX_MESSAGE: usize = 16 * 1024;

/// Response body kinds (status OK).
pub(crate) const RESPONSE_BIZ_ERROR: u8 = 0;
pub(crate) const RESPONSE_VALUE: u8 = 1;
pub(crate) const RESPONSE_EMPTY: u8 = 2;

/// A decoded request envelope; `args` are still bytes in the header's serialization.
#[derive(Debug)]
pub(crate) struct RequestBody {
    pub(crate) path: ByteString,
    pub(crate) version: ByteString,
    pub(crate) group: ByteString,
    pub(crate) method: ByteString,
    pub(crate) timeout_ms: u32,
    pub(crate) attachments: Attachments,
    pub(crate) args: Bytes,
}

fn put_str(out: &mut Vec<u8>, s: &str, max: usize, what: &str) -> Result<()> {
    if s.len() > max {
        return Err(RpcError::codec(format!(
            "{what} is {} bytes long, over the limit of {max}",
            s.len()
        )));
    }
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_attachments(out: &mut Vec<u8>, a: &Attachments) -> Result<()> {
    if a.len() > MAX_ATTACHMENTS {
        return Err(RpcError::codec(format!(
            "{} attachments, over the limit of {MAX_ATTACHMENTS}",
            a.len()
        )));
    }
    out.extend_from_slice(&(a.len() as u16).to_be_bytes());
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

/// Appends `value` encoded with `ser` as a u32-length-prefixed section.
fn put_value(out: &mut Vec<u8>, value: &Value, ser: &dyn Serialization) -> Result<()> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match value {
        Value::Typed(v) => ser.serialize(&**v, out)?,
        Value::Empty => ser.serialize(&(), out)?,
        Value::Encoded(p) if p.serialization == ser.id() => out.extend_from_slice(&p.bytes),
        other => out.extend_from_slice(&other.encode(ser)?.bytes),
    }
    let len = u32::try_from(out.len() - at - 4)
        .map_err(|_| RpcError::codec("value larger than 4 GiB"))?;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Bytes a request buffer holds for the arguments before it must grow.
const ARGS_ROOM: usize = 128;

/// Encodes a request body for `inv`, arguments in `ser`.
pub(crate) fn encode_request(
    inv: &Invocation,
    ser: &dyn Serialization,
    timeout_ms: u32,
) -> Result<Vec<u8>> {
    let key = inv.service();
    // Sized for everything but the arguments, plus room for small arguments: growing the
    // buffer while the arguments are written would move it (a `realloc`, which takes the
    // allocator's shared lock).
    let names = key.interface().len()
        + key.version().map_or(0, str::len)
        + key.group().map_or(0, str::len)
        + inv.method().len();
    let mut out = Vec::with_capacity(ARGS_ROOM + 32 + names + attachments_len(inv.attachments()));
    out.push(BODY_VERSION);
    put_str(&mut out, key.interface(), MAX_NAME, "service path")?;
    put_str(&mut out, key.version().unwrap_or(""), MAX_NAME, "version")?;
    put_str(&mut out, key.group().unwrap_or(""), MAX_NAME, "group")?;
    put_str(&mut out, inv.method(), MAX_NAME, "method name")?;
    out.extend_from_slice(&timeout_ms.to_be_bytes());
    put_attachments(&mut out, inv.attachments())?;
    put_value(&mut out, inv.args(), ser)?;
    Ok(out)
}

/// Encodes an OK response body: outcome kind, attachments, value in `ser`.
pub(crate) fn encode_response(
    kind: u8,
    value: &Value,
    attachments: &Attachments,
    ser: &dyn Serialization,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ARGS_ROOM + 8 + attachments_len(attachments));
    out.push(kind);
    put_attachments(&mut out, attachments)?;
    if kind == RESPONSE_EMPTY {
        out.extend_from_slice(&[0; 4]);
    } else {
        put_value(&mut out, value, ser)?;
    }
    Ok(out)
}

/// Encodes an error response body: the error kind's name and the message.
pub(crate) fn encode_error(kind: ErrorKind, message: &str) -> Vec<u8> {
    let mut msg = message;
    if msg.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg = &msg[..cut];
    }
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
    buf: Bytes,
    what: &'static str,
}

impl Reader {
    fn short(&self, field: &str) -> RpcError {
        RpcError::codec(format!("{} truncated while reading the {field}", self.what))
    }

    fn u8(&mut self, field: &str) -> Result<u8> {
        if self.buf.remaining() < 1 {
            return Err(self.short(field));
        }
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self, field: &str) -> Result<u16> {
        if self.buf.remaining() < 2 {
            return Err(self.short(field));
        }
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self, field: &str) -> Result<u32> {
        if self.buf.remaining() < 4 {
            return Err(self.short(field));
        }
        Ok(self.buf.get_u32())
    }

    fn bytes(&mut self, len: usize, field: &str) -> Result<Bytes> {
        if self.buf.remaining() < len {
            return Err(self.short(field));
        }
        Ok(self.buf.split_to(len))
    }

    /// A length-prefixed UTF-8 string: a slice of the body, not a copy.
    fn string(&mut self, max: usize, field: &str) -> Result<ByteString> {
        self.string_or(&[], max, field)
    }

    /// Like [`Reader::string`], but a string equal to one of `known` is that static string:
    /// no reference to the body is taken (each is a count written when taken and dropped).
    fn string_or(&mut self, known: &[&'static str], max: usize, field: &str) -> Result<ByteString> {
        let len = self.u16(field)? as usize;
        if len > max {
            return Err(RpcError::codec(format!(
                "{} field {field} is {len} bytes, over the limit of {max}",
                self.what
            )));
        }
        if let Some(text) = self
            .buf
            .get(..len)
            .and_then(|b| known.iter().find(|k| k.len() == len && k.as_bytes() == b))
        {
            self.buf.advance(len);
            return Ok(ByteString::from_static(text));
        }
        let b = self.bytes(len, field)?;
        ByteString::try_from(b)
            .map_err(|_| RpcError::codec(format!("{} field {field} is not UTF-8", self.what)))
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
        let mut a = Attachments::with_capacity(if n == 0 { 0 } else { n + extra });
        for _ in 0..n {
            let k = self.string_or(KNOWN_KEYS, MAX_NAME, "attachment key")?;
            let v = self.string(MAX_VALUE, "attachment value")?;
            a.insert(k, v);
        }
        Ok(a)
    }

    fn section(&mut self, field: &str) -> Result<Bytes> {
        let len = self.u32(field)? as usize;
        self.bytes(len, field)
    }

    fn end(self) -> Result<()> {
        if self.buf.has_remaining() {
            return Err(RpcError::codec(format!(
                "{} has {} unexpected trailing bytes",
                self.what,
                self.buf.remaining()
            )));
        }
        Ok(())
    }
}

/// Decodes a request envelope; arguments stay encoded.
pub(crate) fn decode_request(body: Bytes) -> Result<RequestBody> {
    let mut r = Reader {
        buf: body,
        what: "request body",
    };
    let v = r.u8("body version")?;
    if v != BODY_VERSION {
        return Err(RpcError::codec(format!(
            "request body version {v} is not supported (expected {BODY_VERSION})"
        )));
    }
    let req = RequestBody {
        path: r.string(MAX_NAME, "service path")?,
        version: r.string(MAX_NAME, "version")?,
        group: r.string(MAX_NAME, "group")?,
        method: r.string(MAX_NAME, "method name")?,
        timeout_ms: r.u32("timeout")?,
        attachments: r.attachments(1)?,
        args: r.section("arguments")?,
    };
    r.end()?;
    Ok(req)
}

/// Decodes an OK response body into (kind, attachments, value bytes).
pub(crate) fn decode_response(body: Bytes) -> Result<(u8, Attachments, Bytes)> {
    let mut r = Reader {
        buf: body,
        what: "response body",
    };
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
    let mut r = Reader {
        buf: body,
        what: "error body",
    };
    let name = r.string(64, "error kind")?;
    let msg = r.section("message")?;
    Ok((name, String::from_utf8_lossy(&msg).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{Payload, ServiceKey};
    use crate::serialize::MsgPack;

    #[test]
    fn a_request_with_small_arguments_is_written_without_growing_its_buffer() {
        let mut inv = Invocation::new(
            ServiceKey::new("a.Calc", Some("g"), Some("1.0")),
            "add",
            Value::typed((vec![7u8; 100],)),
        );
        // What the default consumer filters add, and then some.
        inv.attachments_mut().insert("traceparent", "0".repeat(55));
        inv.attachments_mut().insert("application", "a".repeat(200));
        let body = encode_request(&inv, &MsgPack, 900).expect("encode");
        let sized = ARGS_ROOM + 32 + "a.Calc1.0gadd".len() + attachments_len(inv.attachments());
        assert_eq!(body.capacity(), sized, "{} bytes written", body.len());
        let reply = encode_response(RESPONSE_VALUE, inv.args(), inv.attachments(), &MsgPack)
            .expect("encode");
        assert_eq!(
            reply.capacity(),
            ARGS_ROOM + 8 + attachments_len(inv.attachments())
        );
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
        let req = decode_request(Bytes::from(body)).expect("decode");
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
        let req = decode_request(Bytes::from(body)).expect("decode");
        assert_eq!(
            (
                &*req.path,
                &*req.version,
                &*req.group,
                &*req.method,
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
        let mut long = body.clone();
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
        let body = encode_error(ErrorKind::MethodNotFound, &"é".repeat(MAX_MESSAGE));
        let (name, msg) = decode_error(Bytes::from(body)).expect("decode");
        assert_eq!(name, "method_not_found");
        assert!(msg.len() <= MAX_MESSAGE);
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let b = Bytes::from(data);
            if let Ok(req) = decode_request(b.clone()) {
                proptest::prop_assert!(req.attachments.len() <= MAX_ATTACHMENTS);
                proptest::prop_assert!(req.method.len() <= MAX_NAME);
            }
            let _ = decode_response(b.clone());
            let _ = decode_error(b);
        }
    }
}
