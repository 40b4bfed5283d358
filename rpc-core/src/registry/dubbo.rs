//! The keys Apache Dubbo's consumers and tools expect on the URLs they find in a registry.
//!
//! A stock Dubbo 2.7/3.x consumer, dubbo2.js or dubbo-ssl-python reads more from a provider
//! URL than this framework needs itself: the Dubbo protocol version (`dubbo`), the release
//! and revision, `anyhost`, `deprecated`, `dynamic`, `generic`, `interface`, `methods`,
//! `pid`, `side` and `timestamp`. The bootstrap adds them with [`provider_keys`] when it
//! exports a service (a key set in the configuration wins), and registers its consumers with
//! [`consumer_registration`]. Keys Dubbo does not know stay as they are: method-level keys
//! (`greet.timeout`, `greet.idempotent`) follow Dubbo's own `{method}.{key}` convention, and
//! `idempotent` is no Dubbo key, so Dubbo readers keep and ignore it.
//!
//! # Serialization
//!
//! A Dubbo consumer uses the `serialization` a provider URL names (hessian2 when there is
//! none). Java's `msgpack` (Dubbo id 27) is not this framework's msgpack, so a provider
//! whose own serialization Dubbo cannot speak publishes `serialization=hessian2` (which every
//! provider of ours also serves) and its own choice under [`NATIVE_SERIALIZATION`];
//! [`consumer_serialization`] picks that one back for a consumer of ours that links it.

use crate::config::keys;
use crate::url::Url;

pub use crate::config::keys::NATIVE_SERIALIZATION;

/// The serialization every Dubbo peer speaks, and what a `dubbo://` URL without
/// `serialization` means.
pub const DUBBO_SERIALIZATION: &str = "hessian2";

/// `url` (a `dubbo://` provider URL) as it is published: its configured serialization
/// (`default` when none is set) moves to [`NATIVE_SERIALIZATION`] and `serialization` says
/// hessian2, unless it is hessian2 already. Other protocols are returned unchanged.
pub fn advertise_serialization(url: &Url, default: &str) -> Url {
    if url.protocol() != "dubbo" {
        return url.clone();
    }
    let own = url
        .param(keys::SERIALIZATION)
        .unwrap_or(default)
        .to_string();
    let url = url.with_param(keys::SERIALIZATION, DUBBO_SERIALIZATION);
    if own == DUBBO_SERIALIZATION {
        url
    } else {
        url.with_param(NATIVE_SERIALIZATION, own)
    }
}

/// The serialization a consumer of this framework uses for `provider` (a `dubbo://` URL
/// from a registry) when its reference names none: the provider's
/// [`NATIVE_SERIALIZATION`] when `linked` says this process has it, else the provider's
/// `serialization`, else hessian2 (a Java provider's URL names none). `None` for other
/// protocols.
pub fn consumer_serialization(provider: &Url, linked: impl Fn(&str) -> bool) -> Option<String> {
    if provider.protocol() != "dubbo" {
        return None;
    }
    if let Some(own) = provider.param(NATIVE_SERIALIZATION).filter(|s| linked(s)) {
        return Some(own.to_string());
    }
    Some(
        provider
            .param(keys::SERIALIZATION)
            .unwrap_or(DUBBO_SERIALIZATION)
            .to_string(),
    )
}

/// The Dubbo protocol version written as `dubbo=` (the one Dubbo 2.7 and 3.x write).
pub const PROTOCOL_VERSION: &str = "2.0.2";

/// This framework's release, written as `release=` (Dubbo writes its own release there;
/// readers only show it).
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// `url` (a provider URL) with the keys Dubbo consumers read, where `url` does not set them:
/// `anyhost=false`, `deprecated=false`, `dubbo`, `dynamic=true`, `generic=false`,
/// `interface` (the path), `release`, `revision` (the `version`, else the release) and
/// `side=provider`.
pub fn provider_keys(url: &Url) -> Url {
    let revision = url
        .param(keys::VERSION)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(RELEASE)
        .to_string();
    let interface = url.interface().to_string();
    url.with_defaults([
        (keys::ANYHOST, "false".to_string()),
        (keys::DEPRECATED, "false".to_string()),
        (keys::DUBBO, PROTOCOL_VERSION.to_string()),
        (keys::DYNAMIC, "true".to_string()),
        (keys::GENERIC, "false".to_string()),
        (keys::INTERFACE, interface),
        (keys::RELEASE, RELEASE.to_string()),
        (keys::REVISION, revision),
        (keys::SIDE, "provider".to_string()),
    ])
}

/// The URL a consumer registers for its `reference` (informational: Dubbo's tools list it),
/// as Dubbo writes its consumers: `category=consumers`, `side=consumer`, `check=false` (in
/// Dubbo a boolean; this framework's own `check`, a wait in ms, never fails a reference),
/// plus `dubbo`, `interface`, `release`, `pid` and `timestamp` (`now_ms`) where unset. The
/// reference itself keeps its keys: this is a copy for the registry only (a subscription
/// with `category=consumers` would watch the consumers).
pub fn consumer_registration(reference: &Url, now_ms: u64) -> Url {
    let interface = reference.interface().to_string();
    reference
        .with_defaults([
            (keys::DUBBO, PROTOCOL_VERSION.to_string()),
            (keys::INTERFACE, interface),
            (keys::RELEASE, RELEASE.to_string()),
            (keys::PID, std::process::id().to_string()),
            (keys::TIMESTAMP, now_ms.to_string()),
        ])
        .with_params([
            (keys::CATEGORY, "consumers"),
            (keys::CHECK, "false"),
            (keys::SIDE, "consumer"),
        ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Category;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn providers_get_the_keys_dubbo_readers_need_without_losing_their_own() {
        let p = provider_keys(&url(
            "dubbo://10.0.0.1:20880/org.example.Greeter?side=provider&version=1.0.0&methods=greet&greet.idempotent=true&anyhost=true",
        ));
        for (k, v) in [
            ("anyhost", "true"),
            ("deprecated", "false"),
            ("dubbo", "2.0.2"),
            ("dynamic", "true"),
            ("generic", "false"),
            ("interface", "org.example.Greeter"),
            ("release", RELEASE),
            ("revision", "1.0.0"),
            ("greet.idempotent", "true"),
        ] {
            assert_eq!(p.param(k), Some(v), "{k}");
        }
        assert_eq!(Category::of(&p), Category::Providers);
        let unversioned = provider_keys(&url("dubbo://h:1/a.B"));
        assert_eq!(unversioned.param("revision"), Some(RELEASE));
        assert_eq!(unversioned.param("side"), Some("provider"));
    }

    #[test]
    fn providers_advertise_hessian2_and_keep_their_own_choice_under_a_private_key() {
        let ours = advertise_serialization(&url("dubbo://h:1/a.B"), "msgpack");
        assert_eq!(ours.param("serialization"), Some("hessian2"));
        assert_eq!(ours.param(NATIVE_SERIALIZATION), Some("msgpack"));
        let bincode =
            advertise_serialization(&url("dubbo://h:1/a.B?serialization=bincode"), "msgpack");
        assert_eq!(bincode.param(NATIVE_SERIALIZATION), Some("bincode"));
        let java =
            advertise_serialization(&url("dubbo://h:1/a.B?serialization=hessian2"), "msgpack");
        assert_eq!(java.param("serialization"), Some("hessian2"));
        assert_eq!(java.param(NATIVE_SERIALIZATION), None);
        let tri = url("tri://h:1/a.B");
        assert_eq!(advertise_serialization(&tri, "msgpack"), tri);
    }

    #[test]
    fn consumers_use_the_native_serialization_only_when_they_link_it() {
        let ours =
            advertise_serialization(&url("dubbo://h:1/a.B?serialization=bincode"), "msgpack");
        assert_eq!(
            consumer_serialization(&ours, |s| s == "bincode").as_deref(),
            Some("bincode")
        );
        assert_eq!(
            consumer_serialization(&ours, |s| s == "msgpack").as_deref(),
            Some("hessian2")
        );
        // A Java provider names none: hessian2.
        let java = url("dubbo://h:1/a.B?dubbo=2.0.2&side=provider");
        assert_eq!(
            consumer_serialization(&java, |_| true).as_deref(),
            Some("hessian2")
        );
        // An older provider of ours that published msgpack itself.
        let old = url("dubbo://h:1/a.B?serialization=msgpack");
        assert_eq!(
            consumer_serialization(&old, |_| true).as_deref(),
            Some("msgpack")
        );
        assert_eq!(
            consumer_serialization(&url("injvm://h/a.B"), |_| true),
            None
        );
    }

    #[test]
    fn consumers_are_registered_as_dubbo_writes_them() {
        let reference =
            url("consumer://10.0.0.2:0/org.example.Greeter?side=consumer&check=3000&version=1.0.0");
        let c = consumer_registration(&reference, 1_700_000_000_000);
        assert_eq!(c.param("category"), Some("consumers"));
        assert_eq!(c.param("check"), Some("false"));
        assert_eq!(c.param("dubbo"), Some("2.0.2"));
        assert_eq!(c.param("interface"), Some("org.example.Greeter"));
        assert_eq!(c.param("timestamp"), Some("1700000000000"));
        assert!(c.param("pid").is_some());
        assert_eq!(Category::of(&c), Category::Consumers);
        assert!(c.to_full_string().starts_with(
            "consumer://10.0.0.2/org.example.Greeter?category=consumers&check=false&"
        ));
        assert_eq!(
            reference.param("check"),
            Some("3000"),
            "the reference keeps its keys"
        );
    }
}
