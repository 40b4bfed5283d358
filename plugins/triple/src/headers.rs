//! Triple's and gRPC's header names, and attachments carried as headers.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use rpc_core::context::{APPLICATION_ATTACHMENT, REMOTE_ADDRESS_ATTACHMENT};
use rpc_core::{Attachments, ErrorKind, RpcError};

use crate::wire;

/// The call's deadline (gRPC).
pub(crate) const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The status of a finished call (gRPC).
pub(crate) const GRPC_STATUS: &str = "grpc-status";
/// The status message, percent-encoded (gRPC).
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";
/// The message compression (gRPC); identity only here.
pub(crate) const GRPC_ENCODING: &str = "grpc-encoding";
/// The compressions accepted (gRPC).
pub(crate) const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
/// The service version (Triple).
pub(crate) const SERVICE_VERSION: &str = "tri-service-version";
/// The service group (Triple).
pub(crate) const SERVICE_GROUP: &str = "tri-service-group";
/// The calling application (Triple).
pub(crate) const CONSUMER_APPNAME: &str = "tri-consumer-appname";
/// Ours: the exact [`ErrorKind`] name of a failure, so that our consumer gets back the kind
/// the provider reported (a stock peer's status maps to a close kind).
pub(crate) const ERROR_KIND: &str = "rpc-error-kind";
/// Ours: a business error's value, a `TripleResponseWrapper` (binary metadata, base64).
pub(crate) const BIZ_ERROR: &str = "rpc-biz-error-bin";

/// Headers that are protocol, not attachments.
fn reserved(name: &str) -> bool {
    name.starts_with(':')
        || name.starts_with("grpc-")
        || name.starts_with("tri-service-")
        || name.starts_with("rpc-error-")
        || name.starts_with("rpc-biz-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "te"
                | "user-agent"
                | "host"
                | "accept-encoding"
                | "accept"
                | CONSUMER_APPNAME
        )
        || name == REMOTE_ADDRESS_ATTACHMENT
}

/// The attachments a caller sent as headers (gRPC metadata): every header that is not part
/// of the protocol. Binary (`-bin`) values stay in their base64 text.
pub(crate) fn attachments_of(h: &HeaderMap) -> Attachments {
    let mut a = Attachments::with_capacity(h.len().min(8));
    for (name, value) in h {
        let name = name.as_str();
        if reserved(name) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            a.insert(name, v);
        }
    }
    a
}

/// Adds attachments as headers. Keys that are no valid header name (uppercase, spaces) and
/// values that are no valid header value are left out, with a debug log.
pub(crate) fn put_attachments(h: &mut HeaderMap, a: &Attachments) {
    for (k, v) in a.iter() {
        if k == APPLICATION_ATTACHMENT {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(CONSUMER_APPNAME, v);
            }
            continue;
        }
        if reserved(k) {
            continue;
        }
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(value)) => {
                h.insert(name, value);
            }
            _ => tracing::debug!(key = k, "attachment not sendable as an HTTP/2 header"),
        }
    }
}

/// Adds `grpc-status`, `grpc-message` and the kind.
pub(crate) fn put_status(h: &mut HeaderMap, status: u32, e: &RpcError) {
    h.insert(GRPC_STATUS, HeaderValue::from(status));
    if let Ok(v) = HeaderValue::from_str(&wire::encode_message(e.message())) {
        h.insert(GRPC_MESSAGE, v);
    }
    h.insert(ERROR_KIND, HeaderValue::from_static(e.kind().as_str()));
}

/// The most the trailing metadata of a response (or the headers of a trailers-only answer)
/// may take, counted as HTTP/2 counts a header list: each field's name and value and 32
/// bytes. A peer resets a stream whose header list is over its limit, and closes a
/// connection (every call on it) that goes far over; 8 KiB is grpc-java's default limit,
/// ours is 16 KiB.
pub(crate) const MAX_TRAILERS: usize = 8 << 10;

fn list_size(h: &HeaderMap) -> usize {
    h.iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Keeps the trailing metadata `h` within [`MAX_TRAILERS`]: when it is over, a business
/// error's value is left out first (the call still ends in a business error, with its
/// message, which the caller cannot decode into its type), then the attachments. What is
/// left (the status, its bounded message, the kind) always fits.
pub(crate) fn bound_trailers(h: &mut HeaderMap) {
    let size = list_size(h);
    if size <= MAX_TRAILERS {
        return;
    }
    if h.remove(BIZ_ERROR).is_some() {
        tracing::warn!(
            size,
            limit = MAX_TRAILERS,
            "a business error's value left out of the trailers: over their bound"
        );
        if list_size(h) <= MAX_TRAILERS {
            return;
        }
    }
    let attachments: Vec<HeaderName> = h
        .keys()
        .filter(|name| !reserved(name.as_str()))
        .cloned()
        .collect();
    for name in &attachments {
        h.remove(name);
    }
    tracing::warn!(
        size,
        limit = MAX_TRAILERS,
        left_out = attachments.len(),
        "response attachments left out of the trailers: over their bound"
    );
}

/// Adds a business error's wrapper.
pub(crate) fn put_biz_error(h: &mut HeaderMap, wrapper: &[u8]) {
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(wrapper);
    if let Ok(v) = HeaderValue::from_str(&text) {
        h.insert(BIZ_ERROR, v);
    }
}

/// The business error wrapper in `h`, if any.
pub(crate) fn biz_error(h: &HeaderMap) -> Option<Result<Vec<u8>, RpcError>> {
    let v = h.get(BIZ_ERROR)?;
    let text = v.as_bytes();
    // Senders may pad or not.
    let text = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    Some(
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .map_err(|e| RpcError::codec(format!("{BIZ_ERROR} is not base64: {e}"))),
    )
}

/// The error a non-OK `grpc-status` in `h` stands for (`None` for OK or no status).
pub(crate) fn error_of(h: &HeaderMap) -> Option<Result<(u32, RpcError), RpcError>> {
    let status = h.get(GRPC_STATUS)?;
    let status: u32 = match status.to_str().ok().and_then(|s| s.parse().ok()) {
        Some(s) => s,
        None => {
            return Some(Err(RpcError::codec(format!(
                "malformed grpc-status {status:?}"
            ))))
        }
    };
    if status == wire::code::OK {
        return None;
    }
    let message = h
        .get(GRPC_MESSAGE)
        .and_then(|m| m.to_str().ok())
        .map(wire::decode_message)
        .unwrap_or_default();
    let kind = h
        .get(ERROR_KIND)
        .and_then(|k| k.to_str().ok())
        .and_then(ErrorKind::from_name)
        .unwrap_or_else(|| wire::kind_of_status(status));
    let message = if message.is_empty() {
        format!("the provider answered grpc-status {status}")
    } else {
        message
    };
    Some(Ok((status, RpcError::new(kind, message))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_travel_as_headers_and_protocol_headers_do_not() {
        let mut a = Attachments::new();
        a.insert("traceparent", "00-abc-01");
        a.insert("application", "shop");
        a.insert("Bad Key", "x");
        a.insert("grpc-status", "0");
        let mut h = HeaderMap::new();
        put_attachments(&mut h, &a);
        assert_eq!(h.get("traceparent").expect("trace"), "00-abc-01");
        assert_eq!(h.get(CONSUMER_APPNAME).expect("app"), "shop");
        assert!(h.get("grpc-status").is_none());
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert(SERVICE_VERSION, HeaderValue::from_static("1.0.0"));
        let back = attachments_of(&h);
        assert_eq!(back.get("traceparent"), Some("00-abc-01"));
        assert_eq!(back.len(), 1, "{back:?}");
    }

    #[test]
    fn status_round_trips_with_kind_and_falls_back_to_the_code() {
        for kind in ErrorKind::ALL {
            let mut h = HeaderMap::new();
            put_status(
                &mut h,
                wire::status_of(kind),
                &RpcError::new(kind, "why: 100%"),
            );
            let (_, e) = error_of(&h).expect("error").expect("parsed");
            assert_eq!(e.kind(), kind);
            assert_eq!(e.message(), "why: 100%");
        }
        let mut h = HeaderMap::new();
        h.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        let (s, e) = error_of(&h).expect("error").expect("parsed");
        assert_eq!((s, e.kind()), (14, ErrorKind::Network));
        h.insert(GRPC_STATUS, HeaderValue::from_static("x"));
        assert!(error_of(&h).expect("error").is_err());
        h.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert!(error_of(&h).is_none());
    }

    #[test]
    fn binary_business_errors_round_trip_padded_or_not() {
        let mut h = HeaderMap::new();
        put_biz_error(&mut h, b"\x0a\x04json");
        assert_eq!(biz_error(&h).expect("some").expect("b64"), b"\x0a\x04json");
        h.insert(BIZ_ERROR, HeaderValue::from_static("CgRqc29u"));
        assert_eq!(biz_error(&h).expect("some").expect("b64"), b"\x0a\x04json");
        h.insert(BIZ_ERROR, HeaderValue::from_static("!!"));
        assert!(biz_error(&h).expect("some").is_err());
    }
}
