//! The gRPC wire facts Triple uses: status codes and their mapping to error kinds, the
//! `grpc-timeout` header, length-prefixed messages, `grpc-message` escaping, and Triple's
//! wrapper messages.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use rpc_core::{ErrorKind, RpcError};

/// gRPC status codes (`grpc-status`).
pub mod code {
    /// Success.
    pub const OK: u32 = 0;
    /// The call was cancelled (typically by the caller).
    pub const CANCELLED: u32 = 1;
    /// An unknown error: what a service's own failure is reported as.
    pub const UNKNOWN: u32 = 2;
    /// The caller sent something invalid.
    pub const INVALID_ARGUMENT: u32 = 3;
    /// The deadline expired before the call completed.
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// Some requested entity was not found.
    pub const NOT_FOUND: u32 = 5;
    /// The entity already exists.
    pub const ALREADY_EXISTS: u32 = 6;
    /// The caller may not do this.
    pub const PERMISSION_DENIED: u32 = 7;
    /// A limit (size, rate, concurrency) was hit.
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// The system is not in a state for this call.
    pub const FAILED_PRECONDITION: u32 = 9;
    /// Aborted (concurrency conflict).
    pub const ABORTED: u32 = 10;
    /// Out of the valid range.
    pub const OUT_OF_RANGE: u32 = 11;
    /// No such service or method.
    pub const UNIMPLEMENTED: u32 = 12;
    /// An internal error (including undecodable messages).
    pub const INTERNAL: u32 = 13;
    /// The service is unavailable right now: retrying may help.
    pub const UNAVAILABLE: u32 = 14;
    /// Unrecoverable data loss.
    pub const DATA_LOSS: u32 = 15;
    /// The caller is not authenticated.
    pub const UNAUTHENTICATED: u32 = 16;
}

/// The status a provider sends for an error of `kind`.
pub fn status_of(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::Timeout => code::DEADLINE_EXCEEDED,
        ErrorKind::NoProvider | ErrorKind::Network | ErrorKind::CircuitOpen => code::UNAVAILABLE,
        ErrorKind::Codec | ErrorKind::Internal => code::INTERNAL,
        ErrorKind::ServiceNotFound | ErrorKind::MethodNotFound => code::UNIMPLEMENTED,
        ErrorKind::Unauthorized => code::PERMISSION_DENIED,
        ErrorKind::LimitExceeded => code::RESOURCE_EXHAUSTED,
        ErrorKind::Config => code::FAILED_PRECONDITION,
        _ => code::UNKNOWN,
    }
}

/// The kind a consumer reports for a non-OK status that names no kind of ours (a stock gRPC
/// server's answer).
pub fn kind_of_status(status: u32) -> ErrorKind {
    match status {
        code::CANCELLED | code::UNAVAILABLE => ErrorKind::Network,
        code::INVALID_ARGUMENT | code::DATA_LOSS => ErrorKind::Codec,
        code::DEADLINE_EXCEEDED => ErrorKind::Timeout,
        code::NOT_FOUND => ErrorKind::ServiceNotFound,
        code::UNIMPLEMENTED => ErrorKind::MethodNotFound,
        code::PERMISSION_DENIED | code::UNAUTHENTICATED => ErrorKind::Unauthorized,
        code::RESOURCE_EXHAUSTED => ErrorKind::LimitExceeded,
        code::INTERNAL => ErrorKind::Internal,
        _ => ErrorKind::Biz,
    }
}

/// The status a gRPC client derives from a non-200 HTTP status (gRPC's HTTP to status
/// mapping).
pub fn status_of_http(http: u16) -> u32 {
    match http {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502..=504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// Parses a `grpc-timeout` value: at most 8 ASCII digits and a unit (`H M S m u n`).
pub fn parse_timeout(v: &str) -> Result<Duration, RpcError> {
    let bad = || {
        RpcError::codec(format!(
            "malformed grpc-timeout '{v}': expected 1 to 8 digits and a unit of H, M, S, m, u or n"
        ))
    };
    if v.len() < 2 || v.len() > 9 || !v.is_ascii() {
        return Err(bad());
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Formats a budget as a `grpc-timeout` value in the finest unit that fits 8 digits.
pub fn format_timeout(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let candidates = [
        (d.as_nanos(), "n"),
        (d.as_micros(), "u"),
        (d.as_millis(), "m"),
        (u128::from(d.as_secs()), "S"),
        (u128::from(d.as_secs() / 60), "M"),
    ];
    for (n, unit) in candidates {
        if n <= MAX {
            return format!("{n}{unit}");
        }
    }
    format!("{}H", (d.as_secs() / 3600).min(99_999_999))
}

/// What `grpc-message` percent-encodes: everything outside printable ASCII, and `%`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// Escapes a status message for `grpc-message`.
pub fn encode_message(m: &str) -> String {
    // Bounded once escaped (a status message is for humans, and headers have a size limit),
    // at a character's end. Non-ASCII bytes are always escaped, so the result is printable
    // ASCII.
    let mut escaped = 0;
    let mut end = 0;
    for (i, c) in m.char_indices() {
        let width: usize = utf8_percent_encode(c.encode_utf8(&mut [0; 4]), MESSAGE)
            .map(str::len)
            .sum();
        if escaped + width > MAX_MESSAGE {
            break;
        }
        escaped += width;
        end = i + c.len_utf8();
    }
    utf8_percent_encode(&m[..end], MESSAGE).to_string()
}

/// The most bytes a `grpc-message` takes, escaped.
pub const MAX_MESSAGE: usize = 4096;

/// Unescapes a `grpc-message` value (invalid escapes are kept as they are).
pub fn decode_message(m: &str) -> String {
    percent_decode_str(m).decode_utf8_lossy().into_owned()
}

/// The 5-byte prefix of every gRPC message: compressed flag and big-endian length.
pub const PREFIX: usize = 5;

/// Appends one uncompressed length-prefixed message.
pub fn frame(message: &[u8], out: &mut BytesMut) {
    out.reserve(PREFIX + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
}

/// A buffer holding a zeroed prefix, for a message to be encoded right after it (no copy
/// into a frame afterwards); [`finish_frame`] writes the length.
pub fn frame_buffer(capacity: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(PREFIX + capacity);
    v.extend_from_slice(&[0; PREFIX]);
    v
}

/// The frame of a [`frame_buffer`] whose message was appended.
pub fn finish_frame(mut v: Vec<u8>) -> Bytes {
    let len = u32::try_from(v.len().saturating_sub(PREFIX)).unwrap_or(u32::MAX);
    if v.len() >= PREFIX {
        v[1..PREFIX].copy_from_slice(&len.to_be_bytes());
    }
    Bytes::from(v)
}

/// The message of `chunk` when the chunk is exactly one whole message (the common case for
/// small messages): a slice, no copy. `None` when it is not.
pub fn whole_message(chunk: &Bytes, limit: usize) -> Option<Result<Bytes, FrameError>> {
    if chunk.len() < PREFIX {
        return None;
    }
    let len = u32::from_be_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]) as usize;
    if PREFIX + len != chunk.len() {
        return None;
    }
    Some(match chunk[0] {
        0 if len > limit => Err(FrameError::TooLarge { len, limit }),
        0 => Ok(chunk.slice(PREFIX..)),
        1 => Err(FrameError::Compressed),
        f => Err(FrameError::BadFlag(f)),
    })
}

/// Why a length-prefixed message could not be taken from a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The compressed flag is set: this side supports identity only.
    Compressed,
    /// A flag byte other than 0 or 1.
    BadFlag(u8),
    /// The declared length is over the limit.
    TooLarge {
        /// The declared length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

impl FrameError {
    /// The error as a status and message.
    pub fn to_error(&self) -> RpcError {
        match self {
            FrameError::Compressed => RpcError::new(
                ErrorKind::Codec,
                "compressed message, but no grpc-encoding was agreed (identity only)",
            ),
            FrameError::BadFlag(f) => {
                RpcError::codec(format!("invalid message flag {f} (expected 0 or 1)"))
            }
            FrameError::TooLarge { len, limit } => RpcError::new(
                ErrorKind::LimitExceeded,
                format!("message of {len} bytes is over the limit of {limit} bytes"),
            ),
        }
    }
}

/// Takes one whole message from the front of `buf`: `Ok(None)` while it is incomplete.
pub fn take_message(buf: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < PREFIX {
        return Ok(None);
    }
    match buf[0] {
        0 => {}
        1 => return Err(FrameError::Compressed),
        f => return Err(FrameError::BadFlag(f)),
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    if buf.len() < PREFIX + len {
        return Ok(None);
    }
    buf.advance(PREFIX);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Triple's request wrapper (wrapper mode): the serialization's name and one encoded value
/// per argument, with the arguments' type names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TripleRequestWrapper {
    /// The serialization the arguments are in (`msgpack`, `json`, `hessian4` for hessian2).
    #[prost(string, tag = "1")]
    pub serialize_type: String,
    /// One encoded value per argument.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub args: Vec<Bytes>,
    /// The arguments' type names (Java class names for Java peers).
    #[prost(string, repeated, tag = "3")]
    pub arg_types: Vec<String>,
}

/// Triple's response wrapper (wrapper mode): the serialization's name and the encoded value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TripleResponseWrapper {
    /// The serialization the value is in.
    #[prost(string, tag = "1")]
    pub serialize_type: String,
    /// The encoded value.
    #[prost(bytes = "bytes", tag = "2")]
    pub data: Bytes,
    /// The value's type name.
    #[prost(string, tag = "3")]
    pub r#type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_format() {
        assert_eq!(
            parse_timeout("100m").expect("ms"),
            Duration::from_millis(100)
        );
        assert_eq!(parse_timeout("2S").expect("s"), Duration::from_secs(2));
        assert_eq!(parse_timeout("1H").expect("h"), Duration::from_secs(3600));
        assert_eq!(
            parse_timeout("99999999n").expect("n"),
            Duration::from_nanos(99_999_999)
        );
        for bad in ["", "m", "100", "123456789m", "10x", "-1m", "1.5S", "１m"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format_timeout(Duration::from_millis(25)), "25000000n");
        assert_eq!(format_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(format_timeout(Duration::from_secs(3)), "3000000u");
        assert_eq!(format_timeout(Duration::from_secs(100_000)), "100000S");
        for ms in [1u64, 999, 30_000, 86_400_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_timeout(&format_timeout(d)).expect("round trip"), d);
        }
    }

    #[test]
    fn every_kind_maps_to_a_status() {
        for kind in ErrorKind::ALL {
            assert_ne!(status_of(kind), code::OK, "{kind:?}");
        }
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Network,
            ErrorKind::Internal,
            ErrorKind::LimitExceeded,
            ErrorKind::Unauthorized,
            ErrorKind::MethodNotFound,
        ] {
            assert_eq!(kind_of_status(status_of(kind)), kind);
        }
        assert_eq!(status_of(ErrorKind::Timeout), code::DEADLINE_EXCEEDED);
        assert_eq!(
            kind_of_status(code::UNIMPLEMENTED),
            ErrorKind::MethodNotFound
        );
        assert_eq!(kind_of_status(code::UNKNOWN), ErrorKind::Biz);
        assert_eq!(status_of_http(404), code::UNIMPLEMENTED);
        assert_eq!(status_of_http(503), code::UNAVAILABLE);
    }

    #[test]
    fn messages_are_escaped_and_unescaped() {
        let m = "no such user: bob 100% sure\nünï";
        let e = encode_message(m);
        assert!(e.is_ascii() && !e.contains('\n'), "{e}");
        assert_eq!(decode_message(&e), m);
        assert_eq!(decode_message("bad %zz escape"), "bad %zz escape");
        // Bounded once escaped, and never cut inside an escape.
        for long in [
            "ü".repeat(5000),
            format!("a{}", "ü".repeat(5000)),
            "a".repeat(9000),
        ] {
            let e = encode_message(&long);
            assert!(
                e.len() <= MAX_MESSAGE && e.len() > MAX_MESSAGE - 6,
                "{}",
                e.len()
            );
            let back = decode_message(&e);
            assert!(long.starts_with(&back) && !back.contains('%'), "{back}");
        }
    }

    #[test]
    fn messages_are_framed_and_bounded() {
        let mut b = BytesMut::new();
        frame(b"\x0a\x03ann", &mut b);
        assert_eq!(&b[..], b"\x00\x00\x00\x00\x05\x0a\x03ann");
        let mut partial = BytesMut::from(&b[..6]);
        assert_eq!(take_message(&mut partial, 100), Ok(None));
        assert_eq!(
            take_message(&mut b, 100),
            Ok(Some(Bytes::from_static(b"\x0a\x03ann")))
        );
        assert!(b.is_empty());
        let mut big = BytesMut::from(&b"\x00\x00\x10\x00\x00"[..]);
        assert_eq!(
            take_message(&mut big, 1024),
            Err(FrameError::TooLarge {
                len: 0x100000,
                limit: 1024
            })
        );
        let mut z = BytesMut::from(&b"\x01\x00\x00\x00\x00"[..]);
        assert_eq!(take_message(&mut z, 1024), Err(FrameError::Compressed));
        let mut f = BytesMut::from(&b"\x07\x00\x00\x00\x00"[..]);
        assert_eq!(take_message(&mut f, 1024), Err(FrameError::BadFlag(7)));
        let mut v = frame_buffer(3);
        v.extend_from_slice(b"abc");
        let framed = finish_frame(v);
        assert_eq!(&framed[..], b"\x00\x00\x00\x00\x03abc");
        assert_eq!(
            whole_message(&framed, 10),
            Some(Ok(Bytes::from_static(b"abc")))
        );
        assert_eq!(
            whole_message(&framed, 2),
            Some(Err(FrameError::TooLarge { len: 3, limit: 2 }))
        );
        assert_eq!(whole_message(&framed.slice(..6), 10), None);
    }
}
