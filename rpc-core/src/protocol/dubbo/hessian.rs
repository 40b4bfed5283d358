//! The Dubbo 2.x body used when the serialization is hessian2 (id 2): what stock Java,
//! Node and Python peers read and write. Layout in the module docs of the protocol.

use bytes::Bytes;
use rpc_hessian2::{Decoder, Encoder, Value as H};

use super::body::{MAX_ATTACHMENTS, MAX_NAME, MAX_VALUE};
use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::{Attachments, ByteString, Invocation, Outcome, Payload, Value};
use crate::serialize::{self, ids};

/// The Dubbo protocol version written in requests (and in the `dubbo` response attachment).
pub(crate) const DUBBO_VERSION: &str = "2.0.2";
/// Response flags: the result kind, plus 3 when an attachments map follows.
pub(crate) const FLAG_EXCEPTION: i32 = 0;
pub(crate) const FLAG_VALUE: i32 = 1;
pub(crate) const FLAG_NULL: i32 = 2;
const WITH_ATTACHMENTS: i32 = 3;
/// Most arguments of one call.
pub(crate) const MAX_ARGS: usize = 255;
/// Longest parameter descriptor.
const MAX_DESCRIPTOR: usize = 16 * 1024;
/// The parameter descriptor of `$invoke(String, String[], Object[])`.
pub(crate) const GENERIC_DESCRIPTOR: &str =
    "Ljava/lang/String;[Ljava/lang/String;[Ljava/lang/Object;";
/// The exception class a business error is sent as, unless `hessian2.exception` says
/// otherwise.
pub(crate) const DEFAULT_EXCEPTION: &str = "java.lang.RuntimeException";
/// The field of that exception object carrying the business error as JSON text.
pub(crate) const ERROR_JSON_FIELD: &str = "errorJson";

/// A decoded hessian2 request; the arguments stay encoded.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) dubbo_version: String,
    pub(crate) path: ByteString,
    pub(crate) version: ByteString,
    pub(crate) group: ByteString,
    pub(crate) method: ByteString,
    pub(crate) parameter_types: ByteString,
    pub(crate) timeout_ms: u32,
    pub(crate) attachments: Attachments,
    /// Consecutive top-level values, one per parameter.
    pub(crate) args: Bytes,
}

fn codec(what: &str, e: impl std::fmt::Display) -> RpcError {
    RpcError::codec(format!("hessian2 {what}: {e}"))
}

/// The Java types of a parameter descriptor, one slice per parameter; refuses a malformed
/// descriptor and more than 255 parameters.
pub fn split_descriptor(desc: &str) -> Result<Vec<&str>> {
    let b = desc.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] == b'[' {
            i += 1;
        }
        match b.get(i) {
            Some(b'Z' | b'B' | b'C' | b'S' | b'I' | b'J' | b'F' | b'D') => i += 1,
            Some(b'L') => match b[i..].iter().position(|&c| c == b';') {
                Some(end) if end > 1 => i += end + 1,
                _ => {
                    return Err(RpcError::codec(format!(
                        "parameter descriptor `{desc}`: class name at byte {i} has no `;`"
                    )))
                }
            },
            _ => {
                return Err(RpcError::codec(format!(
                    "parameter descriptor `{desc}` is malformed at byte {i}"
                )))
            }
        }
        out.push(&desc[start..i]);
        if out.len() > MAX_ARGS {
            return Err(RpcError::codec(format!(
                "parameter descriptor has more than {MAX_ARGS} parameters"
            )));
        }
    }
    Ok(out)
}

/// A Java type name as `$invoke` callers write it (`int`, `java.lang.String`,
/// `java.lang.String[]`, `[I`) as a descriptor element.
pub(crate) fn name_to_descriptor(name: &str) -> String {
    let mut base = name.trim();
    let mut dims = 0;
    while let Some(b) = base.strip_suffix("[]") {
        base = b;
        dims += 1;
    }
    let elem = match base {
        "boolean" => "Z".to_string(),
        "byte" => "B".to_string(),
        "char" => "C".to_string(),
        "short" => "S".to_string(),
        "int" => "I".to_string(),
        "long" => "J".to_string(),
        "float" => "F".to_string(),
        "double" => "D".to_string(),
        "void" => "V".to_string(),
        b if b.starts_with('[') => b.replace('.', "/"),
        b => format!("L{};", b.replace('.', "/")),
    };
    format!("{}{elem}", "[".repeat(dims))
}

/// The descriptor a value would have as a Java argument, for callers that give none.
fn descriptor_of(v: &H) -> String {
    match v {
        H::Bool(_) => "Ljava/lang/Boolean;".into(),
        H::Int(_) => "Ljava/lang/Integer;".into(),
        H::Long(_) => "Ljava/lang/Long;".into(),
        H::Double(_) => "Ljava/lang/Double;".into(),
        H::String(_) => "Ljava/lang/String;".into(),
        H::Binary(_) => "[B".into(),
        H::Date(_) => "Ljava/util/Date;".into(),
        H::List { .. } => "Ljava/util/List;".into(),
        H::Map { .. } => "Ljava/util/Map;".into(),
        H::Object { class, .. } => format!("L{};", class.replace('.', "/")),
        H::Null | H::Ref(_) => "Ljava/lang/Object;".into(),
    }
}

fn string(d: &mut Decoder<'_>, field: &str, max: usize) -> Result<String> {
    match d.read_value().map_err(|e| codec(field, e))? {
        H::String(s) if s.len() <= max => Ok(s),
        H::String(s) => Err(RpcError::codec(format!(
            "hessian2 {field} is {} bytes, over the limit of {max}",
            s.len()
        ))),
        H::Null => Ok(String::new()),
        other => Err(RpcError::codec(format!(
            "hessian2 {field} is a {}, not a string",
            kind_name(&other)
        ))),
    }
}

fn kind_name(v: &H) -> &'static str {
    match v {
        H::Null => "null",
        H::Bool(_) => "boolean",
        H::Int(_) => "int",
        H::Long(_) => "long",
        H::Double(_) => "double",
        H::Date(_) => "date",
        H::String(_) => "string",
        H::Binary(_) => "binary",
        H::List { .. } => "list",
        H::Map { .. } => "map",
        H::Object { .. } => "object",
        H::Ref(_) => "reference",
    }
}

/// Reads an attachments map: string values kept, `N` treated as absent, numbers and
/// booleans as their text, anything else skipped.
/// The attachment map, with room for `extra` more pairs (a provider adds the caller's
/// address to a request's).
fn read_attachments(d: &mut Decoder<'_>, extra: usize) -> Result<Attachments> {
    let entries = match d.read_value().map_err(|e| codec("attachments", e))? {
        H::Map { entries, .. } => entries,
        H::Null => return Ok(Attachments::new()),
        other => {
            return Err(RpcError::codec(format!(
                "hessian2 attachments are a {}, not a map",
                kind_name(&other)
            )))
        }
    };
    if entries.len() > MAX_ATTACHMENTS {
        return Err(RpcError::codec(format!(
            "{} attachments, over the limit of {MAX_ATTACHMENTS}",
            entries.len()
        )));
    }
    let mut a = Attachments::with_capacity(entries.len() + extra);
    for (k, v) in entries {
        let H::String(k) = k else { continue };
        if k.len() > MAX_NAME {
            return Err(RpcError::codec(format!(
                "attachment key of {} bytes, over the limit of {MAX_NAME}",
                k.len()
            )));
        }
        let text = match v {
            H::String(s) => s,
            H::Bool(b) => b.to_string(),
            H::Int(i) => i.to_string(),
            H::Long(i) => i.to_string(),
            H::Double(x) => x.to_string(),
            _ => continue,
        };
        if text.len() > MAX_VALUE {
            return Err(RpcError::codec(format!(
                "attachment `{k}` is {} bytes, over the limit of {MAX_VALUE}",
                text.len()
            )));
        }
        a.insert(k, text);
    }
    Ok(a)
}

fn write_attachments<'a>(e: &mut Encoder, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    e.write_map_begin(None);
    for (k, v) in pairs {
        e.write_string(k);
        e.write_string(v);
    }
    e.write_end();
}

/// Decodes a request body.
pub(crate) fn decode_request(body: Bytes) -> Result<Request> {
    let mut d = Decoder::with_limits(&body, serialize::hessian_limits());
    let dubbo_version = string(&mut d, "dubbo version", MAX_NAME)?;
    let path = string(&mut d, "service path", MAX_NAME)?;
    let version = string(&mut d, "service version", MAX_NAME)?;
    let method = string(&mut d, "method name", MAX_NAME)?;
    let parameter_types = string(&mut d, "parameter types", MAX_DESCRIPTOR)?;
    if path.is_empty() || method.is_empty() {
        return Err(RpcError::codec(
            "hessian2 request without a service path or method name",
        ));
    }
    let count = split_descriptor(&parameter_types)?.len();
    let start = d.position();
    for i in 0..count {
        if d.is_empty() {
            return Err(RpcError::codec(format!(
                "hessian2 request ends after {i} of the {count} arguments `{parameter_types}` describes"
            )));
        }
        // Only where the arguments end is needed here: they are decoded once, by the
        // skeleton, into the method's types.
        d.skip_value()
            .map_err(|e| codec(&format!("argument {i}"), e))?;
    }
    let end = d.position();
    let attachments = if d.is_empty() {
        Attachments::new()
    } else {
        read_attachments(&mut d, 1)?
    };
    d.end().map_err(|e| codec("request", e))?;
    let group = attachments.get("group").unwrap_or("").to_string();
    let timeout_ms = attachments
        .get("timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
    let version = if version == "0.0.0" {
        String::new()
    } else {
        version
    };
    Ok(Request {
        dubbo_version,
        path: path.into(),
        version: version.into(),
        group: group.into(),
        method: method.into(),
        parameter_types: parameter_types.into(),
        timeout_ms,
        attachments,
        args: body.slice(start..end),
    })
}

/// The arguments of `inv` as Hessian values, one per parameter.
fn argument_values(args: &Value) -> Result<Vec<H>> {
    let v = match args {
        Value::Empty => return Ok(Vec::new()),
        Value::Typed(v) => rpc_hessian2::to_value::<dyn erased_serde::Serialize>(&**v)
            .map_err(|e| codec("encode", e))?,
        Value::Encoded(p) if p.serialization == ids::HESSIAN2_ARGS => {
            let mut d = Decoder::with_limits(&p.bytes, serialize::hessian_limits());
            let mut out = Vec::new();
            while !d.is_empty() {
                out.push(d.read_value().map_err(|e| codec("arguments", e))?);
            }
            return Ok(out);
        }
        Value::Encoded(p) if p.serialization == ids::HESSIAN2 => {
            serialize::decode_hessian_value(&p.bytes)?
        }
        Value::Encoded(p) => {
            let from = serialize::by_id(p.serialization)?;
            let json: serde_json::Value = serialize::decode(from, &p.bytes)?;
            rpc_hessian2::to_value(&json).map_err(|e| codec("encode", e))?
        }
    };
    Ok(match v {
        H::List { items, .. } => items,
        H::Null => Vec::new(),
        other => vec![other],
    })
}

/// A list of small ints where the descriptor says `byte[]` (a `Vec<u8>` without
/// `serde_bytes`) is sent as a binary, as Java expects.
fn fit_to(desc: &str, v: H) -> H {
    match (desc, v) {
        ("[B", H::List { items, type_name }) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|i| match i {
                    H::Int(x) => u8::try_from(*x)
                        .ok()
                        .or_else(|| i8::try_from(*x).ok().map(|b| b as u8)),
                    _ => None,
                })
                .collect();
            match bytes {
                Some(b) => H::Binary(b),
                None => H::List { items, type_name },
            }
        }
        (_, v) => v,
    }
}

/// Encodes a request body for `inv`; `timeout_ms` (0 = none) travels as the `timeout`
/// attachment.
pub(crate) fn encode_request(inv: &Invocation, timeout_ms: u32) -> Result<Vec<u8>> {
    let key = inv.service();
    let values = argument_values(inv.args())?;
    let descriptor = match inv.parameter_types() {
        Some(d) => {
            let types = split_descriptor(d)?;
            if types.len() != values.len() {
                return Err(RpcError::codec(format!(
                    "parameter types `{d}` describe {} arguments, the call has {}",
                    types.len(),
                    values.len()
                )));
            }
            d.to_string()
        }
        None => values.iter().map(descriptor_of).collect(),
    };
    let types = split_descriptor(&descriptor)?;
    let version = key.version().unwrap_or("0.0.0");
    let mut e = Encoder::new();
    e.write_string(DUBBO_VERSION);
    e.write_string(key.interface());
    e.write_string(version);
    e.write_string(inv.method());
    e.write_string(&descriptor);
    for (v, t) in values.into_iter().zip(types) {
        e.write_value(&fit_to(t, v))
            .map_err(|e| codec("encode", e))?;
    }
    let timeout = timeout_ms.to_string();
    let fixed = [
        ("path", key.interface()),
        ("interface", key.interface()),
        ("version", version),
        ("group", key.group().unwrap_or("")),
    ];
    let fixed_keys = ["path", "interface", "version", "group", "timeout"];
    let pairs = fixed
        .into_iter()
        .chain((timeout_ms > 0).then_some(("timeout", timeout.as_str())))
        .chain(
            inv.attachments()
                .iter()
                .filter(|(k, _)| !fixed_keys.contains(k)),
        );
    write_attachments(&mut e, pairs);
    Ok(e.into_bytes())
}

/// Whether a caller speaking Dubbo protocol version `v` reads response attachments (Dubbo's
/// rule: versions 2.0.2 up to 2.0.99; releases such as `2.6.5` sent by old clients do not).
pub(crate) fn supports_response_attachments(v: &str) -> bool {
    let mut parts = v.trim().split('.').map(|p| p.parse::<u32>().ok());
    let (Some(Some(a)), Some(Some(b)), Some(Some(c))) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    (a, b) == (2, 0) && (2..=99).contains(&c)
}

/// When a provider sends the with-attachments form of a response (URL key
/// `response.attachments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttachmentsMode {
    /// Only when there are attachments to send and the caller's version reads them.
    Auto,
    /// Whenever the caller's version reads them, with the `dubbo` version added (Java's
    /// behaviour).
    Always,
    /// Never (for clients that only read the plain form).
    Never,
}

impl AttachmentsMode {
    pub(crate) fn from_param(v: Option<&str>) -> Result<Self> {
        match v.map(str::trim) {
            None | Some("auto") | Some("") => Ok(AttachmentsMode::Auto),
            Some("always") | Some("true") => Ok(AttachmentsMode::Always),
            Some("never") | Some("false") => Ok(AttachmentsMode::Never),
            Some(other) => Err(RpcError::config(format!(
                "response.attachments={other}: expected auto, always or never"
            ))),
        }
    }
}

/// How a provider answers one hessian2 request.
#[derive(Debug, Clone)]
pub(crate) struct ReplyStyle {
    /// The caller's Dubbo protocol version (from the request).
    pub(crate) dubbo_version: String,
    pub(crate) attachments: AttachmentsMode,
    /// The Java class a business error is sent as.
    pub(crate) exception_class: String,
    /// A generic (`$invoke`) call: objects in the result become maps.
    pub(crate) generic: bool,
}

/// A value as the Hessian value to send.
fn hessian_value(v: &Value) -> Result<H> {
    match v {
        Value::Empty => Ok(H::Null),
        Value::Typed(t) => rpc_hessian2::to_value::<dyn erased_serde::Serialize>(&**t)
            .map_err(|e| codec("encode", e)),
        Value::Encoded(p) if p.serialization == ids::HESSIAN2 => {
            serialize::decode_hessian_value(&p.bytes)
        }
        Value::Encoded(p) => {
            let from = serialize::by_id(p.serialization)?;
            let json: serde_json::Value = serialize::decode(from, &p.bytes)?;
            rpc_hessian2::to_value(&json).map_err(|e| codec("encode", e))
        }
    }
}

/// The exception object a business error travels as: `detailMessage` is the error's text
/// (a string error as is, anything else as JSON), `errorJson` its JSON form.
fn exception_object(class: &str, error: &Value) -> Result<H> {
    let json: serde_json::Value = match error {
        Value::Empty => serde_json::Value::Null,
        Value::Typed(t) => {
            let mut out = Vec::new();
            t.encode_in(&serialize::Json, &mut out)?;
            serialize::decode(&serialize::Json, &out)?
        }
        Value::Encoded(p) => {
            let from = serialize::by_id(p.serialization)?;
            serialize::decode(from, &p.bytes)?
        }
    };
    let text = match &json {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(H::Object {
        class: class.to_string(),
        fields: vec![
            ("detailMessage".into(), H::String(text)),
            // Empty, but present: clients print it (dubbo-ssl-python requires it).
            (
                "stackTrace".into(),
                H::List {
                    type_name: Some("[java.lang.StackTraceElement".into()),
                    items: Vec::new(),
                },
            ),
            (ERROR_JSON_FIELD.into(), H::String(json.to_string())),
        ],
    })
}

/// Encodes an OK response body.
pub(crate) fn encode_response(
    outcome: &Outcome,
    attachments: &Attachments,
    style: &ReplyStyle,
) -> Result<Vec<u8>> {
    let readable = supports_response_attachments(&style.dubbo_version);
    let with = readable
        && match style.attachments {
            AttachmentsMode::Always => true,
            AttachmentsMode::Never => false,
            AttachmentsMode::Auto => !attachments.is_empty(),
        };
    let (flag, value) = match outcome {
        Outcome::Value(Value::Empty) => (FLAG_NULL, None),
        Outcome::Value(v) => {
            let h = hessian_value(v)?;
            (
                FLAG_VALUE,
                Some(if style.generic {
                    serialize::generalize(h)
                } else {
                    h
                }),
            )
        }
        Outcome::BizError(v) => (
            FLAG_EXCEPTION,
            Some(exception_object(&style.exception_class, v)?),
        ),
    };
    let mut e = Encoder::new();
    e.write_int(flag + if with { WITH_ATTACHMENTS } else { 0 });
    if let Some(v) = &value {
        e.write_value(v).map_err(|e| codec("encode", e))?;
    }
    if with {
        let version =
            (style.attachments == AttachmentsMode::Always).then_some(("dubbo", DUBBO_VERSION));
        write_attachments(
            &mut e,
            version
                .into_iter()
                .chain(attachments.iter().filter(|(k, _)| *k != "dubbo")),
        );
    }
    Ok(e.into_bytes())
}

/// The body of a non-OK response: the error text as a Hessian string.
pub(crate) fn encode_error(message: &str) -> Vec<u8> {
    let mut e = Encoder::new();
    e.write_string(super::cut_message(message));
    e.into_bytes()
}

/// The text of a non-OK response body (lenient: any value is shown).
pub(crate) fn decode_error(body: &[u8]) -> String {
    let mut text = match serialize::decode_hessian_value(body) {
        Ok(H::String(s)) => s,
        Ok(other) => serialize::hessian_to_json(&other).to_string(),
        Err(_) => {
            String::from_utf8_lossy(&body[..body.len().min(super::MAX_ERROR_MESSAGE)]).into_owned()
        }
    };
    let kept = super::cut_message(&text).len();
    text.truncate(kept);
    text
}

/// A decoded OK response.
pub(crate) struct Answer {
    pub(crate) outcome: Outcome,
    pub(crate) attachments: Attachments,
}

/// The error a Java exception object becomes: its class and message.
fn java_exception(v: &H) -> RpcError {
    match v {
        H::Object { class, .. } => {
            let msg = v.get("detailMessage").and_then(H::as_str).unwrap_or("");
            let msg = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            RpcError::new(
                ErrorKind::Biz,
                format!("the provider threw {class}{}", super::cut_message(&msg)),
            )
        }
        other => RpcError::new(
            ErrorKind::Biz,
            format!(
                "the provider threw {}",
                super::cut_message(&serialize::hessian_to_json(other).to_string())
            ),
        ),
    }
}

/// Decodes an OK response body. A business error of ours (an exception carrying
/// `errorJson`) becomes [`Outcome::BizError`] in JSON; any other exception an error naming
/// its class and message.
pub(crate) fn decode_response(body: Bytes) -> Result<Answer> {
    let mut d = Decoder::with_limits(&body, serialize::hessian_limits());
    let flag = match d.read_value().map_err(|e| codec("response flag", e))? {
        H::Int(f) if (0..=5).contains(&f) => f,
        other => {
            return Err(RpcError::codec(format!(
                "hessian2 response flag {other:?} is not 0..5"
            )))
        }
    };
    let outcome = match flag % WITH_ATTACHMENTS {
        FLAG_NULL => Outcome::Value(Value::Empty),
        FLAG_VALUE => {
            let start = d.position();
            d.skip_value().map_err(|e| codec("result", e))?;
            Outcome::Value(Value::Encoded(Payload {
                serialization: ids::HESSIAN2,
                bytes: body.slice(start..d.position()),
            }))
        }
        _ => {
            let ex = d.read_value().map_err(|e| codec("exception", e))?;
            match ex.get(ERROR_JSON_FIELD).and_then(H::as_str) {
                Some(json) if matches!(ex, H::Object { .. }) => {
                    Outcome::BizError(Value::Encoded(Payload {
                        serialization: ids::JSON,
                        bytes: Bytes::copy_from_slice(json.as_bytes()),
                    }))
                }
                _ => return Err(java_exception(&ex)),
            }
        }
    };
    let attachments = if flag >= WITH_ATTACHMENTS {
        read_attachments(&mut d, 0)?
    } else {
        Attachments::new()
    };
    d.end().map_err(|e| codec("response", e))?;
    Ok(Answer {
        outcome,
        attachments,
    })
}

/// The arguments of a generic call `$invoke(String method, String[] types, Object[] args)`:
/// the target method, its descriptor and the arguments as a JSON array.
pub(crate) fn decode_generic(args: &[u8]) -> Result<(String, String, Vec<u8>)> {
    let mut d = Decoder::with_limits(args, serialize::hessian_limits());
    let method = string(&mut d, "generic method name", MAX_NAME)?;
    let types = match d
        .read_value()
        .map_err(|e| codec("generic parameter types", e))?
    {
        H::List { items, .. } => items,
        H::Null => Vec::new(),
        other => {
            return Err(RpcError::codec(format!(
                "generic parameter types are a {}, not a list",
                kind_name(&other)
            )))
        }
    };
    let values = match d.read_value().map_err(|e| codec("generic arguments", e))? {
        H::List { items, .. } => items,
        H::Null => Vec::new(),
        other => vec![other],
    };
    d.end().map_err(|e| codec("generic call", e))?;
    if types.len() != values.len() {
        return Err(RpcError::codec(format!(
            "generic call of {method}: {} parameter types but {} arguments",
            types.len(),
            values.len()
        )));
    }
    let mut descriptor = String::new();
    for t in &types {
        let name = t.as_str().ok_or_else(|| {
            RpcError::codec("generic parameter types must be strings (Java class names)")
        })?;
        descriptor.push_str(&name_to_descriptor(name));
    }
    split_descriptor(&descriptor)?;
    let json = serde_json::Value::Array(values.iter().map(serialize::hessian_to_json).collect());
    let bytes = serde_json::to_vec(&json).map_err(|e| codec("generic arguments", e))?;
    Ok((method, descriptor, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::ServiceKey;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Frames captured from stock peers (header + body), see the protocol docs.
    const PY_GREET: &str = "dabbc20000000000000000000000008b05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480470617468136f72672e6578616d706c652e4772656574657209696e74657266616365136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e300567726f7570005a";
    const PY_GREET_NULL_GROUP: &str = "dabbc20000000000000000000000008b05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480470617468136f72672e6578616d706c652e4772656574657209696e74657266616365136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e300567726f75704e5a";
    const JS_GREET: &str = "dabbc20000000000000000010000009a05322e302e32136f72672e6578616d706c652e4772656574657205312e302e30056772656574124c6a6176612f6c616e672f537472696e673b03616e6e480b6170706c69636174696f6e09647562626f322e6a7309696e74657266616365136f72672e6578616d706c652e477265657465720470617468136f72672e6578616d706c652e477265657465720776657273696f6e05312e302e305a";
    const NODE_GREET_RESPONSE: &str =
        "dabb0214000000000000000000000019940968656c6c6f20616e6e4805647562626f05322e302e325a";
    const JAVA_RESPONSE_VALUE: &str = "dabb021400000000000000000000000b910968656c6c6f20616e6e";
    const JAVA_RESPONSE_NULL_WITH_ATTACHMENTS: &str =
        "dabb021400000000000000000000000f954805647562626f05322e302e325a";
    const JAVA_ERROR_STATUS_70: &str = "dabb024600000000000000000000000504626f6f6d";

    fn body(frame: &str) -> Bytes {
        Bytes::from(hex(frame)[16..].to_vec())
    }

    fn greet() -> Invocation {
        let mut inv = Invocation::new(
            ServiceKey::new("org.example.Greeter", None, Some("1.0.0")),
            "greet",
            Value::typed(("ann".to_string(),)),
        );
        inv.set_parameter_types("Ljava/lang/String;");
        inv
    }

    #[test]
    fn our_greet_request_is_the_stock_python_and_java_one() {
        assert_eq!(encode_request(&greet(), 0).expect("encode"), body(PY_GREET));
        // Without a declared descriptor, the value's type gives the same one.
        let bare = Invocation::new(
            ServiceKey::new("org.example.Greeter", None, Some("1.0.0")),
            "greet",
            Value::typed(("ann".to_string(),)),
        );
        assert_eq!(encode_request(&bare, 0).expect("encode"), body(PY_GREET));
    }

    #[test]
    fn stock_requests_decode_with_arguments_left_encoded() {
        for frame in [PY_GREET, PY_GREET_NULL_GROUP, JS_GREET] {
            let r = decode_request(body(frame)).expect("decode");
            assert_eq!(r.dubbo_version, "2.0.2");
            assert_eq!(
                (&*r.path, &*r.version, &*r.group, &*r.method),
                ("org.example.Greeter", "1.0.0", "", "greet")
            );
            assert_eq!(&*r.parameter_types, "Ljava/lang/String;");
            assert_eq!(r.attachments.get("interface"), Some("org.example.Greeter"));
            let (name,): (String,) = Value::Encoded(Payload {
                serialization: ids::HESSIAN2_ARGS,
                bytes: r.args,
            })
            .decode()
            .expect("args");
            assert_eq!(name, "ann");
        }
        let js = decode_request(body(JS_GREET)).expect("decode");
        assert_eq!(js.attachments.get("application"), Some("dubbo2.js"));
        let null_group = decode_request(body(PY_GREET_NULL_GROUP)).expect("decode");
        assert_eq!(null_group.attachments.get("group"), None);
    }

    fn style(version: &str, attachments: AttachmentsMode) -> ReplyStyle {
        ReplyStyle {
            dubbo_version: version.into(),
            attachments,
            exception_class: DEFAULT_EXCEPTION.into(),
            generic: false,
        }
    }

    #[test]
    fn our_responses_are_the_stock_ones() {
        let hello = Outcome::Value(Value::typed("hello ann".to_string()));
        let none = Attachments::new();
        let always = style("2.0.2", AttachmentsMode::Always);
        assert_eq!(
            encode_response(&hello, &none, &always).expect("encode"),
            body(NODE_GREET_RESPONSE)
        );
        for plain in [
            style("2.0.2", AttachmentsMode::Auto),
            style("2.0.2", AttachmentsMode::Never),
            style("2.0.0", AttachmentsMode::Always),
            style("2.6.5", AttachmentsMode::Always),
        ] {
            assert_eq!(
                encode_response(&hello, &none, &plain).expect("encode"),
                body(JAVA_RESPONSE_VALUE),
                "{plain:?}"
            );
        }
        assert_eq!(
            encode_response(&Outcome::Value(Value::Empty), &none, &always).expect("encode"),
            body(JAVA_RESPONSE_NULL_WITH_ATTACHMENTS)
        );
        assert_eq!(encode_error("boom"), body(JAVA_ERROR_STATUS_70).to_vec());
        assert_eq!(decode_error(&body(JAVA_ERROR_STATUS_70)), "boom");
    }

    #[test]
    fn stock_responses_decode() {
        for frame in [NODE_GREET_RESPONSE, JAVA_RESPONSE_VALUE] {
            let a = decode_response(body(frame)).expect("decode");
            let Outcome::Value(v) = a.outcome else {
                panic!("value expected")
            };
            assert_eq!(v.decode::<String>().expect("string"), "hello ann");
        }
        let a = decode_response(body(NODE_GREET_RESPONSE)).expect("decode");
        assert_eq!(a.attachments.get("dubbo"), Some("2.0.2"));
        let a = decode_response(body(JAVA_RESPONSE_NULL_WITH_ATTACHMENTS)).expect("decode");
        assert!(matches!(a.outcome, Outcome::Value(Value::Empty)));
    }

    #[test]
    fn a_java_exception_names_its_class_and_message() {
        // A Throwable as Java writes it: `cause` refers to the object itself.
        let ex = H::Object {
            class: "java.lang.IllegalStateException".into(),
            fields: vec![
                ("detailMessage".into(), H::string("no greeting today")),
                ("cause".into(), H::Ref(0)),
            ],
        };
        let mut e = Encoder::new();
        e.write_int(FLAG_EXCEPTION);
        e.write_value(&ex).expect("encode");
        let err = match decode_response(Bytes::from(e.into_bytes())) {
            Err(err) => err,
            Ok(_) => panic!("an exception is an error"),
        };
        assert_eq!(err.kind(), ErrorKind::Biz);
        assert!(
            err.message()
                .contains("java.lang.IllegalStateException: no greeting today"),
            "{err}"
        );
    }

    #[test]
    fn our_business_error_round_trips_and_reads_as_a_java_exception() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Denied {
            code: u32,
        }
        let out = encode_response(
            &Outcome::BizError(Value::typed(Denied { code: 7 })),
            &Attachments::new(),
            &style("2.0.2", AttachmentsMode::Auto),
        )
        .expect("encode");
        let v = rpc_hessian2::Decoder::new(&out[1..])
            .read_value()
            .expect("object");
        assert!(matches!(&v, H::Object { class, .. } if class == DEFAULT_EXCEPTION));
        assert_eq!(
            v.get("detailMessage").and_then(H::as_str),
            Some(r#"{"code":7}"#)
        );
        let a = decode_response(Bytes::from(out)).expect("decode");
        let Outcome::BizError(e) = a.outcome else {
            panic!("business error expected")
        };
        assert_eq!(e.decode::<Denied>().expect("typed"), Denied { code: 7 });
    }

    #[test]
    fn descriptors_split_and_convert() {
        assert_eq!(
            split_descriptor("Ljava/lang/String;IJ[B[[Ljava/util/List;Z").expect("ok"),
            vec![
                "Ljava/lang/String;",
                "I",
                "J",
                "[B",
                "[[Ljava/util/List;",
                "Z"
            ]
        );
        assert!(split_descriptor("").expect("none").is_empty());
        for bad in ["X", "Ljava/lang/String", "[", "L;", "I[", "Q"] {
            assert!(split_descriptor(bad).is_err(), "{bad}");
        }
        assert!(split_descriptor(&"I".repeat(MAX_ARGS + 1)).is_err());
        assert_eq!(name_to_descriptor("int"), "I");
        assert_eq!(name_to_descriptor("java.lang.String"), "Ljava/lang/String;");
        assert_eq!(
            name_to_descriptor("java.lang.String[]"),
            "[Ljava/lang/String;"
        );
        assert_eq!(name_to_descriptor("[I"), "[I");
        assert!(supports_response_attachments("2.0.2"));
        assert!(supports_response_attachments("2.0.10"));
        assert!(!supports_response_attachments("2.0.0"));
        assert!(!supports_response_attachments("2.6.5"));
        assert!(!supports_response_attachments(""));
    }

    #[test]
    fn typed_arguments_are_consecutive_values_and_bytes_are_binary() {
        let mut inv = Invocation::new(
            ServiceKey::new("S", None, None),
            "m",
            Value::typed(("ann".to_string(), 42i32, vec![1u8, 2, 3])),
        );
        inv.set_parameter_types("Ljava/lang/String;I[B");
        let b = encode_request(&inv, 250).expect("encode");
        let r = decode_request(Bytes::from(b)).expect("decode");
        assert_eq!(r.timeout_ms, 250);
        assert_eq!(&r.args[..], &hex("03616e6eba23010203")[..]);
        let wrong = {
            let mut w = inv.clone();
            w.set_parameter_types("I");
            w
        };
        assert!(encode_request(&wrong, 0).is_err());
    }

    /// A provider's error text is bounded on receipt, as ours is when sent.
    #[test]
    fn a_long_error_text_is_cut_on_receipt() {
        let mut e = Encoder::new();
        e.write_string(&"y".repeat(1 << 20));
        assert_eq!(
            decode_error(&e.into_bytes()).len(),
            super::super::MAX_ERROR_MESSAGE
        );
        let garbage = vec![0xffu8; 1 << 20];
        assert!(decode_error(&garbage).len() <= super::super::MAX_ERROR_MESSAGE);
    }

    /// A request for `m(List)` whose argument is `arg`, as raw Hessian bytes.
    fn request_with_argument(arg: &[u8]) -> Bytes {
        let mut e = Encoder::new();
        for s in ["2.0.2", "S", "0.0.0", "m", "Ljava/util/List;"] {
            e.write_string(s);
        }
        let mut b = e.into_bytes();
        b.extend_from_slice(arg);
        Bytes::from(b)
    }

    /// A hostile request: a few bytes that refer, again and again, to a long class or type
    /// name defined once. Finding where the arguments end builds nothing from them, and what
    /// the names would expand to is bounded.
    #[test]
    fn arguments_that_refer_to_long_names_are_bounded() {
        let name = |b: &mut Vec<u8>| {
            b.extend([b'S', 0x75, 0x30]);
            b.extend([b'a'; 30_000]);
        };
        // 30,000 instances of a class with a 30 KB name: 900 MB as values. Skipped, the
        // request decodes, and the arguments are left as the bytes they came as.
        let mut objects = vec![b'C'];
        name(&mut objects);
        objects.extend([0x90, b'X', 0xd4, 0x75, 0x30]);
        objects.extend([0x60; 30_000]);
        let r = decode_request(request_with_argument(&objects)).expect("decoded");
        assert_eq!(&r.args[..], &objects[..]);
        // 300 lists that each name a 30 KB type by reference: 9 MB of copied names.
        let mut types = vec![b'X', 0xc9, 0x2d, 0x70];
        name(&mut types);
        for _ in 0..300 {
            types.extend([0x70, 0x90]);
        }
        let e = decode_request(request_with_argument(&types)).expect_err("over the bound");
        assert_eq!(e.kind(), ErrorKind::Codec, "{e}");
        assert!(e.message().contains("argument 0"), "{e}");
        assert!(e.message().contains("expand to more than"), "{e}");
    }

    fn frame_bytes(f: crate::exchange::Frame) -> Vec<u8> {
        use tokio_util::codec::Encoder as _;
        let mut out = bytes::BytesMut::new();
        crate::exchange::FrameCodec::new(1 << 20)
            .encode(f, &mut out)
            .expect("frame");
        out.to_vec()
    }

    #[test]
    fn heartbeats_are_the_stock_ones() {
        use crate::exchange::Frame;
        // dubbo2.js's heartbeat, and the reply Java (Caucho-encoded) gives to it.
        let request = Frame::heartbeat(0, ids::HESSIAN2);
        assert_eq!(
            frame_bytes(request.clone()),
            hex("dabbe2000000000000000000000000014e")
        );
        assert_eq!(
            frame_bytes(request.heartbeat_reply()),
            hex("dabb22140000000000000000000000014e")
        );
        // Other serializations keep the empty body.
        assert!(Frame::heartbeat(0, ids::MSGPACK).body.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn random_bodies_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let b = Bytes::from(data);
            if let Ok(r) = decode_request(b.clone()) {
                proptest::prop_assert!(r.attachments.len() <= MAX_ATTACHMENTS);
            }
            let _ = decode_response(b.clone());
            let _ = decode_error(&b);
            let _ = decode_generic(&b);
        }

        /// Stock request and response bodies (and ours) with bytes replaced, inserted,
        /// removed or cut off: every decoder fails cleanly or decodes, never panics.
        #[test]
        fn mutated_bodies_never_panic(
            which in 0usize..7,
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>(), 0u8..4),
                1..6,
            ),
        ) {
            let mut data = match which {
                0 => body(PY_GREET).to_vec(),
                1 => body(PY_GREET_NULL_GROUP).to_vec(),
                2 => body(JS_GREET).to_vec(),
                3 => body(NODE_GREET_RESPONSE).to_vec(),
                4 => body(JAVA_RESPONSE_VALUE).to_vec(),
                5 => body(JAVA_RESPONSE_NULL_WITH_ATTACHMENTS).to_vec(),
                _ => encode_request(&greet(), 3000).expect("encode"),
            };
            for (at, byte, op) in edits {
                if data.is_empty() {
                    break;
                }
                let i = at.index(data.len());
                match op {
                    0 => data[i] = byte,
                    1 => data.insert(i, byte),
                    2 => {
                        data.remove(i);
                    }
                    _ => data.truncate(i),
                }
            }
            let b = Bytes::from(data);
            if let Ok(r) = decode_request(b.clone()) {
                proptest::prop_assert!(r.attachments.len() <= MAX_ATTACHMENTS);
                let args = Value::Encoded(Payload {
                    serialization: ids::HESSIAN2_ARGS,
                    bytes: r.args.clone(),
                });
                let _ = args.clone().decode::<(String,)>();
                let _ = args.decode::<Vec<serde_json::Value>>();
                let _ = decode_generic(&r.args);
            }
            if let Ok(Answer { outcome: Outcome::Value(v), .. }) = decode_response(b.clone()) {
                let _ = v.clone().decode::<String>();
                let _ = v.decode::<serde_json::Value>();
            }
            let _ = decode_error(&b);
            let _ = decode_generic(&b);
        }
    }
}
