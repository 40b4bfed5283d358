//! `Url`: the one configuration currency of the framework.
//!
//! Every provider, consumer reference, registry and layer choice is described by a URL of the
//! form `protocol://[user[:password]@]host[:port]/path?key=value&...`. Layers pick their
//! implementation by reading a key (`loadbalance=random`), and method-level keys
//! (`greet.timeout=500`) beat service-level ones (`timeout=1000`).
//!
//! A `Url` is immutable and cheap to clone (one reference count); the `with_*` builders return
//! a modified copy. Parameters are kept sorted, so formatting is deterministic and
//! `parse(format(u)) == u`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::keys;
use crate::error::{ErrorKind, RpcError};

/// Characters escaped in a query key or value: the query delimiters, `%`, and anything that
/// is not printable ASCII.
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'=')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in the path: like [`QUERY`] but `/`, `=` and `&` may stand as they are.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Characters escaped in the user name and password.
const USERINFO: &AsciiSet = &QUERY.add(b':').add(b'@').add(b'/');

/// What [`Url::to_full_string`] escapes in a parameter value: `%`, and `&`, which would end
/// the parameter.
const FULL_VALUE: &[u8] = b"%&";

/// What [`Url::to_full_string`] escapes in a parameter name: as in a value, and `=`.
const FULL_KEY: &[u8] = b"%&=";

/// What [`Url::to_full_string`] escapes in the path: `%`, and `?`, which would start the query.
const FULL_PATH: &[u8] = b"%?";

/// What [`Url::to_full_string`] escapes in the user name and password.
const FULL_USERINFO: &[u8] = b"%&:@/?";

/// Appends `s` to `out` with only the ASCII bytes of `escaped` written as `%XX`: the rest,
/// spaces and non-ASCII text included, stays as it is (the whole is URL-encoded later).
fn push_escaped(out: &mut String, s: &str, escaped: &[u8]) {
    for c in s.chars() {
        match u8::try_from(c) {
            Ok(b) if escaped.contains(&b) => {
                out.push_str(&format!("%{b:02X}"));
            }
            _ => out.push(c),
        }
    }
}

/// Everything but the unreserved characters: what a whole URL needs to become one path
/// segment (a ZooKeeper node name, an etcd key part, a file name).
const COMPONENT: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A malformed URL: quotes the input and says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed URL '{input}': {reason}")]
pub struct UrlError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl From<UrlError> for RpcError {
    fn from(e: UrlError) -> Self {
        RpcError::new(ErrorKind::Config, e.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct Inner {
    protocol: String,
    username: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    params: BTreeMap<String, String>,
}

/// A parsed, immutable URL with sorted parameters. See the [module docs](self).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Url(Arc<Inner>);

impl Url {
    /// Parses `protocol://[user[:password]@]host[:port]/path?k=v&...`.
    ///
    /// IPv6 hosts are written in brackets (`[::1]:20880`). Components are percent-decoded.
    pub fn parse(input: &str) -> Result<Url, UrlError> {
        let err = |reason: String| UrlError {
            input: input.to_string(),
            reason,
        };
        let (protocol, rest) = input
            .split_once("://")
            .ok_or_else(|| err("missing '://' after the protocol".into()))?;
        validate_protocol(protocol).map_err(err)?;

        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, p),
            None => (before_query, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let user = decode(user).map_err(|r| err(format!("user name {r}")))?;
                let pass = pass
                    .map(decode)
                    .transpose()
                    .map_err(|r| err(format!("password {r}")))?;
                (Some(user), pass)
            }
        };
        let (host, port) = split_host_port(hostport).map_err(err)?;
        let path = decode(path).map_err(|r| err(format!("path {r}")))?;

        let mut params = BTreeMap::new();
        if let Some(query) = query {
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = decode(k).map_err(|r| err(format!("parameter name {r}")))?;
                if k.is_empty() {
                    return Err(err(format!("parameter '{pair}' has an empty name")));
                }
                let v = decode(v).map_err(|r| err(format!("value of '{k}' {r}")))?;
                params.insert(k, v);
            }
        }
        Ok(Url(Arc::new(Inner {
            protocol: protocol.to_string(),
            username,
            password,
            host,
            port,
            path,
            params,
        })))
    }

    /// A URL with just a protocol, host and port; add the rest with the `with_*` builders.
    pub fn new(protocol: &str, host: &str, port: u16) -> Url {
        Url(Arc::new(Inner {
            protocol: protocol.to_string(),
            host: host.to_string(),
            port: Some(port),
            ..Inner::default()
        }))
    }

    /// The scheme: `dubbo`, `zookeeper`, `consumer`, ...
    pub fn protocol(&self) -> &str {
        &self.0.protocol
    }

    /// The user name from the authority, if any.
    pub fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }

    /// The password from the authority, if any.
    pub fn password(&self) -> Option<&str> {
        self.0.password.as_deref()
    }

    /// The host without brackets (`::1`, not `[::1]`); may be empty (`file:///tmp/x`).
    pub fn host(&self) -> &str {
        &self.0.host
    }

    /// The port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.0.port
    }

    /// The path without its leading `/`, percent-decoded. For services, the interface name.
    pub fn path(&self) -> &str {
        &self.0.path
    }

    /// `host:port` (`[::1]:20880` for IPv6), the form used to open a connection.
    pub fn address(&self) -> String {
        self.display_address().to_string()
    }

    /// [`Url::address`] written straight into a formatter, for log and span fields: nothing
    /// is built unless the field is actually recorded.
    pub fn display_address(&self) -> impl fmt::Display + '_ {
        struct Address<'a>(&'a Inner);
        impl fmt::Display for Address<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let host = &self.0.host;
                if host.contains(':') {
                    write!(f, "[{host}]")?;
                } else {
                    f.write_str(host)?;
                }
                match self.0.port {
                    Some(p) => write!(f, ":{p}"),
                    None => Ok(()),
                }
            }
        }
        Address(&self.0)
    }

    /// All parameters, sorted by name.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.0.params
    }

    /// A parameter's raw value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.0.params.get(key).map(String::as_str)
    }

    /// A method-level parameter (`{method}.{key}`), else the service-level one (`{key}`).
    pub fn method_param(&self, method: &str, key: &str) -> Option<&str> {
        if !method.is_empty() {
            // Build "method.key" on the stack: this runs on the call path.
            let mut buf = [0u8; 128];
            let len = method.len() + 1 + key.len();
            if len <= buf.len() {
                buf[..method.len()].copy_from_slice(method.as_bytes());
                buf[method.len()] = b'.';
                buf[method.len() + 1..len].copy_from_slice(key.as_bytes());
                if let Ok(k) = std::str::from_utf8(&buf[..len]) {
                    if let Some(v) = self.param(k) {
                        return Some(v);
                    }
                }
            } else if let Some(v) = self.param(&format!("{method}.{key}")) {
                return Some(v);
            }
        }
        self.param(key)
    }

    /// A parameter parsed as `T`, or `default` when absent. A present but unparsable value is
    /// an error naming the key and the value: a typo must not silently do nothing.
    pub fn param_as<T: FromStr>(&self, key: &str, default: T) -> Result<T, RpcError> {
        parse_value(key, self.param(key), default)
    }

    /// Like [`Url::param_as`] for a method-level key with the service-level key as fallback.
    pub fn method_param_as<T: FromStr>(
        &self,
        method: &str,
        key: &str,
        default: T,
    ) -> Result<T, RpcError> {
        parse_value(key, self.method_param(method, key), default)
    }

    /// A boolean parameter (`true`/`false`), or `default` when absent.
    pub fn param_bool(&self, key: &str, default: bool) -> Result<bool, RpcError> {
        self.param_as(key, default)
    }

    /// The interface this URL is about: the `interface` parameter, else the path.
    pub fn interface(&self) -> &str {
        self.param(keys::INTERFACE).unwrap_or(self.path())
    }

    /// Dubbo's service key `group/interface:version` (group and version omitted when empty).
    pub fn service_key(&self) -> String {
        crate::service_key::ServiceKey::new(
            self.interface(),
            self.param(keys::GROUP),
            self.param(keys::VERSION),
        )
        .to_string()
    }

    /// The whole URL percent-encoded as one path segment (no `/`, `:`, `?` or `&` left), the
    /// form used as a ZooKeeper node name or etcd key part. [`Url::decode_component`] reverses it.
    pub fn encoded(&self) -> String {
        encode_component(&self.to_string())
    }

    /// Parses a URL from its [`Url::encoded`] form.
    pub fn decode_component(encoded: &str) -> Result<Url, UrlError> {
        let text = percent_decode_str(encoded)
            .decode_utf8()
            .map_err(|_| UrlError {
                input: encoded.to_string(),
                reason: "percent-decoding does not give UTF-8".into(),
            })?;
        Url::parse(&text)
    }

    /// The URL as Apache Dubbo's `URL.toFullString()` writes it: parameters sorted, keys and
    /// values as they are (a space stays a space), the port left out when it is 0 or absent.
    ///
    /// Java does not escape anything there; a value holding `&` (or a key holding `=`) would
    /// then be cut in two by every reader, so those, and `%` itself, are percent-encoded
    /// (`%26`, `%3D`, `%25`), which is what Dubbo's own writers do for such values
    /// (`URL.encode`). [`Url::parse`] reads this form back.
    pub fn to_full_string(&self) -> String {
        use std::fmt::Write;
        let i = &*self.0;
        let mut out = String::with_capacity(64 + i.params.len() * 24);
        out.push_str(&i.protocol);
        out.push_str("://");
        if let Some(user) = &i.username {
            push_escaped(&mut out, user, FULL_USERINFO);
            if let Some(pass) = &i.password {
                out.push(':');
                push_escaped(&mut out, pass, FULL_USERINFO);
            }
            out.push('@');
        }
        if i.host.contains(':') {
            let _ = write!(out, "[{}]", i.host);
        } else {
            out.push_str(&i.host);
        }
        if let Some(port) = i.port.filter(|p| *p > 0) {
            let _ = write!(out, ":{port}");
        }
        if !i.path.is_empty() {
            out.push('/');
            push_escaped(&mut out, &i.path, FULL_PATH);
        }
        let mut sep = '?';
        for (k, v) in &i.params {
            out.push(sep);
            push_escaped(&mut out, k, FULL_KEY);
            out.push('=');
            push_escaped(&mut out, v, FULL_VALUE);
            sep = '&';
        }
        out
    }

    /// The name Apache Dubbo gives this URL's node in ZooKeeper and its key part in etcd:
    /// `URLEncoder.encode(url.toFullString(), "UTF-8")` ([`Url::to_full_string`] then
    /// [`java_url_encode`]). [`Url::decode_dubbo_component`] reverses it.
    pub fn dubbo_encoded(&self) -> String {
        java_url_encode(&self.to_full_string())
    }

    /// Parses a node name or key part as Dubbo writes them ([`Url::dubbo_encoded`], or any
    /// Dubbo 2.7/3.x, dubbo2.js or dubbo-go writer): URL-decoded once as `URLDecoder` does
    /// (`+` is a space), then read with [`Url::parse`], which keeps every parameter, known or
    /// not. Names written by this project's older [`Url::encoded`] form read the same way.
    pub fn decode_dubbo_component(encoded: &str) -> Result<Url, UrlError> {
        let text = java_url_decode(encoded).ok_or_else(|| UrlError {
            input: encoded.to_string(),
            reason: "not URL-encoded UTF-8 (a '%' not followed by two hex digits, or not UTF-8)"
                .into(),
        })?;
        Url::parse(&text)
    }

    fn edit(&self, f: impl FnOnce(&mut Inner)) -> Url {
        let mut inner = (*self.0).clone();
        f(&mut inner);
        Url(Arc::new(inner))
    }

    /// A copy with `key=value` set (replacing any previous value).
    pub fn with_param(&self, key: impl Into<String>, value: impl ToString) -> Url {
        self.edit(|i| {
            i.params.insert(key.into(), value.to_string());
        })
    }

    /// A copy with every pair of `params` set.
    pub fn with_params<K: Into<String>, V: ToString>(
        &self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Url {
        self.edit(|i| {
            for (k, v) in params {
                i.params.insert(k.into(), v.to_string());
            }
        })
    }

    /// A copy with each key of `params` set only where it is not set yet.
    pub fn with_defaults<K: Into<String>, V: ToString>(
        &self,
        params: impl IntoIterator<Item = (K, V)>,
    ) -> Url {
        self.edit(|i| {
            for (k, v) in params {
                i.params.entry(k.into()).or_insert_with(|| v.to_string());
            }
        })
    }

    /// A copy without `key`.
    pub fn without_param(&self, key: &str) -> Url {
        self.edit(|i| {
            i.params.remove(key);
        })
    }

    /// A copy with another protocol.
    pub fn with_protocol(&self, protocol: &str) -> Url {
        self.edit(|i| i.protocol = protocol.to_string())
    }

    /// A copy with another host.
    pub fn with_host(&self, host: &str) -> Url {
        self.edit(|i| i.host = host.to_string())
    }

    /// A copy with another port.
    pub fn with_port(&self, port: u16) -> Url {
        self.edit(|i| i.port = Some(port))
    }

    /// A copy with another path (given without the leading `/`).
    pub fn with_path(&self, path: &str) -> Url {
        self.edit(|i| i.path = path.trim_start_matches('/').to_string())
    }

    /// A copy with a user name and optional password.
    pub fn with_credentials(&self, user: &str, password: Option<&str>) -> Url {
        self.edit(|i| {
            i.username = Some(user.to_string());
            i.password = password.map(str::to_string);
        })
    }
}

/// `raw` (the value found under `key`) parsed as `T`, or `default` when absent; the error for
/// an unparsable value names the key and the value. What [`Url::param_as`] does after the
/// lookup, for a caller that also needs to know whether the key was there.
pub(crate) fn parse_value<T: FromStr>(
    key: &str,
    raw: Option<&str>,
    default: T,
) -> Result<T, RpcError> {
    match raw {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            RpcError::new(
                ErrorKind::Config,
                format!(
                    "parameter '{key}' has value '{v}', which is not a valid {}",
                    crate::error::type_label::<T>()
                ),
            )
        }),
    }
}

fn validate_protocol(p: &str) -> Result<(), String> {
    let mut chars = p.chars();
    match chars.next() {
        None => return Err("the protocol is empty".into()),
        Some(c) if !c.is_ascii_alphabetic() => {
            return Err(format!("the protocol '{p}' must start with a letter"))
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))) {
        return Err(format!("the protocol '{p}' contains '{c}'"));
    }
    Ok(())
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("IPv6 host '{hostport}' lacks its closing ']'"))?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("'{host}' is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected '{p}' after the IPv6 host"))?,
            ),
        };
        (host, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) if p.contains(':') => {
                return Err(format!(
                "host '{h}' is followed by '{p}': write IPv6 hosts in brackets, like [::1]:20880"
            ))
            }
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!("host '{host}' contains '{c}'"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("port '{p}' is not a number from 0 to 65535"))?,
        ),
    };
    Ok((host.to_string(), port))
}

fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("'{s}' is not UTF-8 after percent-decoding"))
}

/// `java.net.URLEncoder.encode(s, "UTF-8")`: `A-Z a-z 0-9 . - * _` stay, a space becomes
/// `+`, every other byte of the UTF-8 text becomes `%XX` (upper-case hex).
pub fn java_url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out
}

/// `java.net.URLDecoder.decode(s, "UTF-8")`: `+` is a space, `%XX` a byte. `None` where Java
/// throws: a `%` without two hex digits after it, or bytes that are not UTF-8.
pub fn java_url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~`.
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.0;
        write!(f, "{}://", i.protocol)?;
        if let Some(user) = &i.username {
            write!(f, "{}", utf8_percent_encode(user, USERINFO))?;
            if let Some(pass) = &i.password {
                write!(f, ":{}", utf8_percent_encode(pass, USERINFO))?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.display_address())?;
        if !i.path.is_empty() {
            write!(f, "/{}", utf8_percent_encode(&i.path, PATH))?;
        }
        let mut sep = '?';
        for (k, v) in &i.params {
            write!(
                f,
                "{sep}{}={}",
                utf8_percent_encode(k, QUERY),
                utf8_percent_encode(v, QUERY)
            )?;
            sep = '&';
        }
        Ok(())
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({self})")
    }
}

impl FromStr for Url {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Url::parse(s)
    }
}

impl serde::Serialize for Url {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Url {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Url::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_part() {
        let u = Url::parse(
            "dubbo://admin:s%3Acret@10.0.0.5:20880/org.example.Greeter?version=1.0.0&timeout=1000&greet.timeout=500",
        )
        .expect("valid");
        assert_eq!(u.protocol(), "dubbo");
        assert_eq!(u.username(), Some("admin"));
        assert_eq!(u.password(), Some("s:cret"));
        assert_eq!(u.host(), "10.0.0.5");
        assert_eq!(u.port(), Some(20880));
        assert_eq!(u.path(), "org.example.Greeter");
        assert_eq!(u.address(), "10.0.0.5:20880");
        assert_eq!(u.param("version"), Some("1.0.0"));
        assert_eq!(u.service_key(), "org.example.Greeter:1.0.0");
    }

    #[test]
    fn ipv6_hosts_keep_brackets_only_in_text() {
        let u = Url::parse("dubbo://[::1]:20880/a.B").expect("valid");
        assert_eq!(u.host(), "::1");
        assert_eq!(u.address(), "[::1]:20880");
        assert_eq!(u.to_string(), "dubbo://[::1]:20880/a.B");
    }

    #[test]
    fn empty_host_and_path_are_allowed() {
        let u = Url::parse("file:///tmp/registry").expect("valid");
        assert_eq!(u.host(), "");
        assert_eq!(u.path(), "tmp/registry");
        assert_eq!(u.to_string(), "file:///tmp/registry");
    }

    #[test]
    fn method_level_parameter_beats_service_level() {
        let u = Url::parse("dubbo://h:1/S?timeout=1000&greet.timeout=500").expect("valid");
        assert_eq!(u.method_param("greet", "timeout"), Some("500"));
        assert_eq!(u.method_param("other", "timeout"), Some("1000"));
        assert_eq!(
            u.method_param_as("greet", "timeout", 0u64).expect("num"),
            500
        );
        assert_eq!(u.method_param_as("x", "retries", 2u32).expect("num"), 2);
        let long = "m".repeat(200);
        let u = u.with_param(format!("{long}.timeout"), 7);
        assert_eq!(u.method_param(&long, "timeout"), Some("7"));
    }

    #[test]
    fn typed_getter_rejects_garbage_naming_key_and_value() {
        let u = Url::parse("dubbo://h:1/S?timeout=soon").expect("valid");
        let e = u.param_as("timeout", 1000u64).expect_err("not a number");
        assert!(e.to_string().contains("'timeout'"), "{e}");
        assert!(e.to_string().contains("'soon'"), "{e}");
        assert!(u.param_bool("missing", true).expect("default"));
    }

    #[test]
    fn builders_return_modified_copies() {
        let a = Url::new("dubbo", "h", 1);
        let b = a.with_param("k", "v").with_path("/x.Y").with_port(2);
        assert_eq!(a.to_string(), "dubbo://h:1");
        assert_eq!(b.to_string(), "dubbo://h:2/x.Y?k=v");
        assert_eq!(b.without_param("k").to_string(), "dubbo://h:2/x.Y");
        let c = b.with_defaults([("k", "other"), ("n", "1")]);
        assert_eq!(c.param("k"), Some("v"));
        assert_eq!(c.param("n"), Some("1"));
    }

    #[test]
    fn special_characters_are_escaped_and_restored() {
        let u = Url::new("dubbo", "h", 1).with_param("rule", "a = b & c => d?#%");
        let text = u.to_string();
        assert!(!text.contains(' '), "{text}");
        let back = Url::parse(&text).expect("round trip");
        assert_eq!(back.param("rule"), Some("a = b & c => d?#%"));
    }

    #[test]
    fn encoded_form_is_one_path_segment() {
        let u = Url::parse("dubbo://[::1]:20880/a.B?x=1&y=a/b").expect("valid");
        let enc = u.encoded();
        assert!(
            !enc.contains('/') && !enc.contains(':') && !enc.contains('&'),
            "{enc}"
        );
        assert_eq!(Url::decode_component(&enc).expect("decodes"), u);
    }

    #[test]
    fn bad_urls_quote_the_input_and_say_why() {
        let cases = [
            ("no-scheme", "missing '://'"),
            ("://h:1", "protocol is empty"),
            ("1abc://h", "must start with a letter"),
            ("dubbo://h:99999", "port '99999'"),
            ("dubbo://h:abc/x", "port 'abc'"),
            ("dubbo://::1:80/x", "IPv6 hosts in brackets"),
            ("dubbo://[::1/x", "closing ']'"),
            ("dubbo://[zz]:1/x", "not an IPv6 address"),
            ("dubbo://h o/x", "contains ' '"),
            ("dubbo://h/x?=v", "empty name"),
            ("dubbo://h/x?a=%FF", "not UTF-8"),
        ];
        for (input, why) in cases {
            let e = Url::parse(input).expect_err(input);
            let msg = e.to_string();
            assert!(msg.contains(&format!("'{input}'")), "{msg}");
            assert!(msg.contains(why), "{input}: {msg}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let u = Url::parse("dubbo://h:1/S?a=b").expect("valid");
        let json = serde_json::to_string(&u).expect("ser");
        assert_eq!(json, "\"dubbo://h:1/S?a=b\"");
        let back: Url = serde_json::from_str(&json).expect("de");
        assert_eq!(back, u);
    }

    /// A provider node name as Java Dubbo writes it (`URLEncoder.encode(url.toFullString())`),
    /// captured from ZooKeeper.
    const JAVA_PROVIDER_NODE: &str = "dubbo%3A%2F%2F127.0.0.1%3A20997%2Forg.example.Greeter%3Fanyhost%3Dtrue%26application%3Djava-like%26deprecated%3Dfalse%26dubbo%3D2.0.2%26dynamic%3Dtrue%26generic%3Dfalse%26interface%3Dorg.example.Greeter%26methods%3Dgreet%26pid%3D1234%26release%3D3.2.0%26revision%3D1.0.0%26side%3Dprovider%26timestamp%3D1700000000000%26version%3D1.0.0";

    #[test]
    fn java_url_encoder_golden() {
        assert_eq!(java_url_encode("a b~*-._"), "a+b%7E*-._");
        assert_eq!(java_url_encode("ä/中"), "%C3%A4%2F%E4%B8%AD");
        assert_eq!(java_url_decode("a+b%7E*-._").as_deref(), Some("a b~*-._"));
        assert_eq!(java_url_decode("%c3%a4").as_deref(), Some("ä"));
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert_eq!(java_url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn provider_node_name_is_byte_exact_with_java() {
        let decoded = java_url_decode(JAVA_PROVIDER_NODE).expect("decodes");
        let u = Url::decode_dubbo_component(JAVA_PROVIDER_NODE).expect("a URL");
        assert_eq!(u.address(), "127.0.0.1:20997");
        assert_eq!(u.path(), "org.example.Greeter");
        assert_eq!(u.param("dubbo"), Some("2.0.2"));
        assert_eq!(u.param("release"), Some("3.2.0"));
        assert_eq!(u.params().len(), 14);
        assert_eq!(u.to_full_string(), decoded);
        assert_eq!(u.dubbo_encoded(), JAVA_PROVIDER_NODE);
        // Built rather than parsed, the same bytes.
        let built = Url::new("dubbo", "127.0.0.1", 20997)
            .with_path("org.example.Greeter")
            .with_params([
                ("anyhost", "true"),
                ("application", "java-like"),
                ("deprecated", "false"),
                ("dubbo", "2.0.2"),
                ("dynamic", "true"),
                ("generic", "false"),
                ("interface", "org.example.Greeter"),
                ("methods", "greet"),
                ("pid", "1234"),
                ("release", "3.2.0"),
                ("revision", "1.0.0"),
                ("side", "provider"),
                ("timestamp", "1700000000000"),
                ("version", "1.0.0"),
            ]);
        assert_eq!(built.dubbo_encoded(), JAVA_PROVIDER_NODE);
    }

    #[test]
    fn values_are_encoded_once_like_java() {
        let u = Url::new("dubbo", "h", 1).with_param("note", "a b+c=d~*");
        assert_eq!(u.to_full_string(), "dubbo://h:1?note=a b+c=d~*");
        assert_eq!(
            u.dubbo_encoded(),
            "dubbo%3A%2F%2Fh%3A1%3Fnote%3Da+b%2Bc%3Dd%7E*"
        );
        // `&` and `%` would break every reader: escaped once, as Dubbo's URL.encode would.
        let v = Url::new("dubbo", "h", 1).with_param("rule", "a & b 100%");
        assert_eq!(v.to_full_string(), "dubbo://h:1?rule=a %26 b 100%25");
        let back = Url::decode_dubbo_component(&v.dubbo_encoded()).expect("round trip");
        assert_eq!(back.param("rule"), Some("a & b 100%"));
    }

    #[test]
    fn foreign_and_older_node_names_are_read() {
        // dubbo2.js: no port, empty values, keys in its own order.
        let js = "consumer://192.0.2.2/org.example.Greeter?interface=org.example.Greeter&application=node-consumer&category=consumers&method=&revision=&version=1.0.0&group=&side=consumer&check=false";
        let u = Url::decode_dubbo_component(&java_url_encode(js)).expect("dubbo2.js URL");
        assert_eq!(u.port(), None);
        assert_eq!(u.param("category"), Some("consumers"));
        assert_eq!(u.param("group"), Some(""));
        assert_eq!(u.params().len(), 9);
        // What this project wrote before (values percent-encoded, then the whole URL again).
        let old = "dubbo%3A%2F%2F127.0.0.1%3A20880%2Forg.example.Greeter%3Fapplication%3Drust-provider%26greet.idempotent%3Dtrue%26interface%3Dorg.example.Greeter%26methods%3Dgreet%26pid%3D22731%26side%3Dprovider%26timestamp%3D1796166247734%26version%3D1.0.0";
        let u = Url::decode_dubbo_component(old).expect("old node name");
        assert_eq!(u.param("greet.idempotent"), Some("true"));
        let spaced = Url::new("dubbo", "h", 1).with_param("note", "a b+c");
        assert_eq!(
            Url::decode_dubbo_component(&spaced.encoded()).expect("old form"),
            spaced
        );
        // Consumer URLs lose a zero port, as in Java.
        let c = Url::new("consumer", "10.0.0.1", 0).with_path("a.B");
        assert_eq!(c.to_full_string(), "consumer://10.0.0.1/a.B");
    }

    fn arb_text() -> impl Strategy<Value = String> {
        // Any printable text, including the delimiters and non-ASCII.
        "[ -~äö中]{0,12}"
    }

    fn arb_url() -> impl Strategy<Value = Url> {
        (
            "[a-z][a-z0-9+.-]{0,8}",
            proptest::option::of((arb_text(), proptest::option::of(arb_text()))),
            prop_oneof![
                "[a-z0-9][a-z0-9.-]{0,15}",
                Just("::1".to_string()),
                Just("fe80::1:2".to_string()),
                Just(String::new()),
            ],
            proptest::option::of(any::<u16>()),
            "[a-zA-Z0-9./ _%?#-]{0,20}",
            proptest::collection::btree_map("[ -~]{1,8}", arb_text(), 0..6),
        )
            .prop_map(|(protocol, creds, host, port, path, params)| {
                let (username, password) = match creds {
                    Some((u, p)) => (Some(u), p),
                    None => (None, None),
                };
                Url(Arc::new(Inner {
                    protocol,
                    username,
                    password,
                    host,
                    port,
                    path: path.trim_start_matches('/').to_string(),
                    params,
                }))
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(u in arb_url()) {
            let text = u.to_string();
            let back = Url::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &u, "text was {}", text);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn encoded_round_trips(u in arb_url()) {
            let back = Url::decode_component(&u.encoded()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, u);
        }

        #[test]
        fn dubbo_encoded_round_trips(u in arb_url()) {
            prop_assume!(u.port() != Some(0));
            let name = u.dubbo_encoded();
            let back = Url::decode_dubbo_component(&name).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, u, "name was {}", name);
        }

        #[test]
        fn dubbo_decoding_never_panics(s in "\\PC{0,64}") {
            let _ = Url::decode_dubbo_component(&s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,64}") {
            let _ = Url::parse(&s);
        }
    }
}
