//! The SPI registry: every layer's implementation is a named extension found at run time.
//!
//! An extension point is a trait object type (`dyn LoadBalance`, `dyn Filter`, ...) that
//! implements [`ExtensionPoint`]; it names the URL key that selects an implementation and the
//! default name. Implementations register themselves with [`register!`](crate::register), which
//! wraps `inventory::submit!`: a crate that is linked into the binary contributes its
//! extensions without any call from `main`.
//!
//! ```
//! use std::sync::Arc;
//! use rpc_core::cluster::{CallContext, LoadBalance, ProviderList};
//! use rpc_core::extension;
//!
//! struct First;
//! impl LoadBalance for First {
//!     fn select(&self, providers: &ProviderList, _: &CallContext<'_>) -> rpc_core::Result<Option<usize>> {
//!         Ok((!providers.is_empty()).then_some(0))
//!     }
//! }
//! rpc_core::register!(dyn LoadBalance, "first", || Arc::new(First));
//!
//! let lb = extension::get::<dyn LoadBalance>("first").unwrap();
//! let err = extension::get::<dyn LoadBalance>("frist").err().unwrap();
//! assert!(err.to_string().contains("unknown loadbalance 'frist'"));
//! assert!(err.to_string().contains("did you mean 'first'"));
//! ```
//!
//! **Linking pitfall.** The linker drops a crate that nothing references, and its extensions
//! with it. An application that only wants a plugin's registrations writes
//! `use the_plugin_crate as _;` once (see the README).
//!
//! Instances are created once per name (on first lookup) and shared. "Adaptive" lookup
//! ([`adaptive`]) picks the implementation per invocation from a URL, method-level key first.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::error::{ErrorKind, Result, RpcError};
use crate::url::Url;

/// An extension point: a `dyn Trait` type whose implementations are found by name.
///
/// Implemented with [`extension_point!`](crate::extension_point) next to each layer trait.
pub trait ExtensionPoint: Send + Sync + 'static {
    /// The URL key that selects an implementation (`loadbalance`), also used in messages.
    const KEY: &'static str;
    /// The name used when the URL does not set [`ExtensionPoint::KEY`].
    const DEFAULT: &'static str;
    /// The loader holding every registered implementation of this point.
    fn loader() -> &'static ExtensionLoader<Self>;
}

/// Which side of a call an activated extension (a filter) runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The calling side.
    Consumer,
    /// The serving side.
    Provider,
}

/// When an extension is switched on without being named (used by filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activate {
    /// The sides it runs on by default.
    pub consumer: bool,
    /// See [`Activate::consumer`].
    pub provider: bool,
    /// Lower runs earlier (further from the network on the way out); on the consumer side,
    /// and on the provider side unless [`Activate::provider_order`] says otherwise.
    pub order: i32,
    /// The order on the provider side, for an extension active on both sides at different
    /// places (see [`Activate::sides`]); `None`: [`Activate::order`].
    pub provider_order: Option<i32>,
    /// When set, the extension is active by default only if the URL has this key
    /// (for example the `tps` limiter only when `tps` is configured).
    pub when_key: Option<&'static str>,
}

impl Activate {
    /// Active by default on the consumer side, at `order`.
    pub const fn consumer(order: i32) -> Self {
        Activate {
            consumer: true,
            provider: false,
            order,
            provider_order: None,
            when_key: None,
        }
    }

    /// Active by default on the provider side, at `order`.
    pub const fn provider(order: i32) -> Self {
        Activate {
            consumer: false,
            provider: true,
            order,
            provider_order: None,
            when_key: None,
        }
    }

    /// Active by default on both sides, at `order`.
    pub const fn both(order: i32) -> Self {
        Activate {
            consumer: true,
            provider: true,
            order,
            provider_order: None,
            when_key: None,
        }
    }

    /// Active by default on both sides, at `consumer` on the consumer side and `provider`
    /// on the provider side (a filter whose two sides do different work, such as `context`).
    pub const fn sides(consumer: i32, provider: i32) -> Self {
        Activate {
            consumer: true,
            provider: true,
            order: consumer,
            provider_order: Some(provider),
            when_key: None,
        }
    }

    /// The order on `side`.
    pub const fn order_on(&self, side: Side) -> i32 {
        match (side, self.provider_order) {
            (Side::Provider, Some(o)) => o,
            _ => self.order,
        }
    }

    /// Only active by default when the URL carries `key`.
    pub const fn when(mut self, key: &'static str) -> Self {
        self.when_key = Some(key);
        self
    }

    fn applies(&self, side: Side, url: &Url) -> bool {
        let on_side = match side {
            Side::Consumer => self.consumer,
            Side::Provider => self.provider,
        };
        on_side && self.when_key.is_none_or(|k| url.param(k).is_some())
    }
}

/// One registered implementation: const plain data, a name and a factory.
pub struct Extension<T: ?Sized + 'static> {
    /// The name users write in URLs and config (`random`, `p2c`, ...).
    pub name: &'static str,
    /// Where it was registered (`module_path!()`), for duplicate-name messages.
    pub origin: &'static str,
    /// Makes the shared instance; called at most once.
    pub factory: fn() -> Arc<T>,
    /// Default activation, for extension points that activate (filters).
    pub activate: Option<Activate>,
}

impl<T: ?Sized + 'static> Extension<T> {
    /// An entry with no default activation. Used by [`register!`](crate::register).
    pub const fn new(name: &'static str, origin: &'static str, factory: fn() -> Arc<T>) -> Self {
        Extension {
            name,
            origin,
            factory,
            activate: None,
        }
    }

    /// The same entry with a default activation.
    pub const fn activated(mut self, activate: Activate) -> Self {
        self.activate = Some(activate);
        self
    }
}

struct Entry<T: ?Sized + 'static> {
    ext: &'static Extension<T>,
    /// Another registration of the same name, if any: the name is then refused.
    clash: Option<&'static str>,
    instance: OnceLock<Arc<T>>,
}

/// All implementations of one extension point, sorted by name, with cached instances.
pub struct ExtensionLoader<T: ?Sized + 'static> {
    entries: Vec<Entry<T>>,
}

impl<T: ExtensionPoint + ?Sized> ExtensionLoader<T> {
    /// Collects the registrations; called once per point by [`ExtensionPoint::loader`].
    pub fn from_registrations(regs: impl Iterator<Item = &'static Extension<T>>) -> Self {
        let mut all: Vec<&'static Extension<T>> = regs.collect();
        all.sort_by(|a, b| a.name.cmp(b.name).then(a.origin.cmp(b.origin)));
        let mut entries: Vec<Entry<T>> = Vec::with_capacity(all.len());
        for ext in all {
            if let Some(prev) = entries.last_mut().filter(|e| e.ext.name == ext.name) {
                prev.clash = Some(ext.origin);
                continue;
            }
            entries.push(Entry {
                ext,
                clash: None,
                instance: OnceLock::new(),
            });
        }
        ExtensionLoader { entries }
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.ext.name).collect()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    fn find(&self, name: &str) -> std::result::Result<&Entry<T>, usize> {
        self.entries
            .binary_search_by(|e| e.ext.name.cmp(name))
            .map(|i| &self.entries[i])
    }

    /// The shared instance registered under `name`.
    ///
    /// An unknown name is an error listing the names that exist (and the closest one); a
    /// name registered twice is an error naming both registrations.
    pub fn get(&self, name: &str) -> Result<Arc<T>> {
        let entry = self.entry(name)?;
        Ok(entry.instance.get_or_init(entry.ext.factory).clone())
    }

    /// The entry of `name`, or the error [`ExtensionLoader::get`] reports.
    fn entry(&self, name: &str) -> Result<&Entry<T>> {
        let entry = self.find(name).map_err(|_| self.unknown(name))?;
        if let Some(other) = entry.clash {
            return Err(RpcError::new(
                ErrorKind::Config,
                format!(
                    "{} '{name}' is registered twice, by {} and by {other}; link only one of them",
                    T::KEY,
                    entry.ext.origin
                ),
            ));
        }
        Ok(entry)
    }

    /// Checks, without creating anything, every name `url` selects for this point: the
    /// service-level [`ExtensionPoint::KEY`] and each method-level `{method}.{KEY}`. With
    /// `list`, a value is a comma-separated list as filters take it (`a,-b,default`), and
    /// every listed name, removed ones included, must exist.
    ///
    /// Called when a reference or an export is built, so a mistyped name fails there with a
    /// suggestion instead of failing every call.
    pub fn check_url(&self, url: &Url, list: bool) -> Result<()> {
        for (key, value) in url.params() {
            let selects = key == T::KEY
                || key
                    .strip_suffix(T::KEY)
                    .is_some_and(|m| m.len() > 1 && m.ends_with('.'));
            if !selects {
                continue;
            }
            let names: Vec<&str> = if list {
                value
                    .split(',')
                    .map(|t| t.trim().trim_start_matches('-'))
                    .filter(|t| !t.is_empty() && *t != "default")
                    .collect()
            } else {
                vec![value.trim()]
            };
            for name in names {
                self.entry(name)
                    .map_err(|e| RpcError::config(format!("'{key}': {}", e.message())))?;
            }
        }
        Ok(())
    }

    /// The default implementation ([`ExtensionPoint::DEFAULT`]).
    pub fn get_default(&self) -> Result<Arc<T>> {
        self.get(T::DEFAULT)
    }

    fn unknown(&self, name: &str) -> RpcError {
        let names = self.names();
        let mut msg = format!("unknown {} '{name}'; known: {}", T::KEY, names.join(", "));
        if let Some(best) = suggest(&names, name) {
            msg.push_str(&format!(" (did you mean '{best}'?)"));
        }
        RpcError::new(ErrorKind::Config, msg)
    }

    /// The activated extensions for `side` and `url`, in run order, following the list under
    /// the URL key [`ExtensionPoint::KEY`] (`filter=a,-b,default,c`):
    ///
    /// - extensions whose [`Activate`] matches the side (and its `when_key`) are the defaults,
    ///   sorted by order then name;
    /// - a listed name adds that extension, in list order; `default` marks where the defaults
    ///   go (at the front when absent);
    /// - `-name` removes an extension, `-default` removes all defaults;
    /// - an unknown listed name is an error.
    pub fn activated(&self, side: Side, url: &Url) -> Result<Vec<(&'static str, Arc<T>)>> {
        let spec = url.param(T::KEY).unwrap_or("");
        let tokens: Vec<&str> = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        let removed = |name: &str| tokens.iter().any(|t| t.strip_prefix('-') == Some(name));
        let listed = |name: &str| tokens.contains(&name);

        let mut defaults: Vec<(i32, &'static str)> = Vec::new();
        if !removed("default") {
            for e in &self.entries {
                if let Some(act) = e.ext.activate {
                    let name = e.ext.name;
                    if act.applies(side, url) && !removed(name) && !listed(name) {
                        defaults.push((act.order_on(side), name));
                    }
                }
            }
        }
        defaults.sort();

        let mut names: Vec<&'static str> = Vec::new();
        let mut defaults_placed = false;
        for t in &tokens {
            if t.starts_with('-') {
                continue;
            }
            if *t == "default" {
                names.extend(defaults.iter().map(|(_, n)| *n));
                defaults_placed = true;
                continue;
            }
            let entry = self.find(t).map_err(|_| self.unknown(t))?;
            if !removed(t) && !names.contains(&entry.ext.name) {
                names.push(entry.ext.name);
            }
        }
        if !defaults_placed {
            let user = std::mem::take(&mut names);
            names.extend(defaults.iter().map(|(_, n)| *n));
            names.extend(user);
        }
        names.into_iter().map(|n| Ok((n, self.get(n)?))).collect()
    }
}

/// The known name `typed` most likely means: the closest by Jaro-Winkler similarity when it
/// is close, else the one `typed` abbreviates (its letters in order, the first one first:
/// `rr` for `roundrobin`, `lb` for nothing). Also used for configuration keys.
pub fn suggest<'n>(known: &[&'n str], typed: &str) -> Option<&'n str> {
    let close = known
        .iter()
        .map(|n| (strsim::jaro_winkler(n, typed), *n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n);
    close.or_else(|| {
        let abbreviates = |name: &str| {
            let mut rest = name.chars();
            typed.len() >= 2
                && typed.chars().next() == name.chars().next()
                && typed.chars().all(|c| rest.any(|n| n == c))
        };
        let mut found = known.iter().copied().filter(|n| abbreviates(n));
        let first = found.next()?;
        // Only a unique abbreviation is a useful suggestion.
        found.next().is_none().then_some(first)
    })
}

/// The implementation registered under `name` for point `T`.
pub fn get<T: ExtensionPoint + ?Sized>(name: &str) -> Result<Arc<T>> {
    T::loader().get(name)
}

/// The default implementation of point `T`.
pub fn get_default<T: ExtensionPoint + ?Sized>() -> Result<Arc<T>> {
    T::loader().get_default()
}

/// The implementation chosen by `url` for `method`: the method-level key
/// (`{method}.{KEY}`), else the service-level key, else the default.
pub fn adaptive<T: ExtensionPoint + ?Sized>(url: &Url, method: &str) -> Result<Arc<T>> {
    T::loader().get(url.method_param(method, T::KEY).unwrap_or(T::DEFAULT))
}

/// [`adaptive`] for one fixed URL, resolved once: the implementation chosen by the URL's
/// service-level key (or the default) is kept, and only when the URL has method-level keys
/// (`{method}.{KEY}`) is a call's method looked up each time. For invokers and clusters that
/// choose an implementation on every call.
pub struct AdaptiveCache<T: ?Sized> {
    /// `(shared, per_method)`: the service-level choice (`None` if it failed: the error is
    /// then reported per call), and whether any method-level key exists.
    resolved: OnceLock<(Option<Arc<T>>, bool)>,
}

impl<T: ExtensionPoint + ?Sized> AdaptiveCache<T> {
    /// An empty cache, filled on first use.
    pub const fn new() -> Self {
        AdaptiveCache {
            resolved: OnceLock::new(),
        }
    }

    /// The implementation `url` chooses for `method`, as [`adaptive`] would return it. `url`
    /// must be the same on every call.
    pub fn get<'a>(&'a self, url: &Url, method: &str) -> Result<Cow<'a, Arc<T>>> {
        let (shared, per_method) = self.resolved.get_or_init(|| {
            let per_method = url.params().keys().any(|k| {
                k.strip_suffix(T::KEY)
                    .is_some_and(|m| m.len() > 1 && m.ends_with('.'))
            });
            (adaptive::<T>(url, "").ok(), per_method)
        });
        match shared {
            Some(chosen) if !*per_method => Ok(Cow::Borrowed(chosen)),
            _ => adaptive::<T>(url, method).map(Cow::Owned),
        }
    }
}

impl<T: ExtensionPoint + ?Sized> Default for AdaptiveCache<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Checks every name `url` selects for point `T`; see [`ExtensionLoader::check_url`].
pub fn check_url<T: ExtensionPoint + ?Sized>(url: &Url, list: bool) -> Result<()> {
    T::loader().check_url(url, list)
}

/// The names registered for point `T`, sorted.
pub fn names<T: ExtensionPoint + ?Sized>() -> Vec<&'static str> {
    T::loader().names()
}

/// Declares `dyn Trait` an extension point with its URL key and default name.
///
/// ```ignore
/// rpc_core::extension_point!(dyn LoadBalance, key = "loadbalance", default = "random");
/// ```
#[macro_export]
macro_rules! extension_point {
    ($point:ty, key = $key:expr, default = $default:expr) => {
        $crate::__private::inventory::collect!($crate::extension::Extension<$point>);
        impl $crate::extension::ExtensionPoint for $point {
            const KEY: &'static str = $key;
            const DEFAULT: &'static str = $default;
            fn loader() -> &'static $crate::extension::ExtensionLoader<Self> {
                static LOADER: ::std::sync::OnceLock<$crate::extension::ExtensionLoader<$point>> =
                    ::std::sync::OnceLock::new();
                LOADER.get_or_init(|| {
                    $crate::extension::ExtensionLoader::from_registrations(
                        $crate::__private::inventory::iter::<$crate::extension::Extension<$point>>
                            .into_iter(),
                    )
                })
            }
        }
    };
}

/// Registers an implementation of an extension point under a name.
///
/// ```ignore
/// rpc_core::register!(dyn LoadBalance, "p2c", || Arc::new(P2c::default()));
/// rpc_core::register!(dyn Filter, "token", || Arc::new(Token), activate = Activate::provider(-100).when("token"));
/// ```
///
/// The factory is a function or a closure that captures nothing; it runs once, on first lookup.
#[macro_export]
macro_rules! register {
    ($point:ty, $name:expr, $factory:expr) => {
        $crate::__private::inventory::submit! {
            $crate::extension::Extension::<$point>::new($name, ::core::module_path!(), $factory)
        }
    };
    ($point:ty, $name:expr, $factory:expr, activate = $activate:expr) => {
        $crate::__private::inventory::submit! {
            $crate::extension::Extension::<$point>::new($name, ::core::module_path!(), $factory)
                .activated($activate)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys;

    #[test]
    fn an_extension_on_both_sides_can_take_a_place_per_side() {
        let a = Activate::sides(-15, -19).when("k");
        assert_eq!(
            (a.order_on(Side::Consumer), a.order_on(Side::Provider)),
            (-15, -19)
        );
        assert!(a.consumer && a.provider && a.when_key == Some("k"));
        let b = Activate::both(7);
        assert_eq!(
            (b.order_on(Side::Consumer), b.order_on(Side::Provider)),
            (7, 7)
        );
    }

    /// A test-only extension point, so these tests do not depend on the real layers.
    trait Greeting: Send + Sync {
        fn word(&self) -> &'static str;
    }
    crate::extension_point!(dyn Greeting, key = "greeting", default = "hello");

    struct Word(&'static str);
    impl Greeting for Word {
        fn word(&self) -> &'static str {
            self.0
        }
    }

    crate::register!(dyn Greeting, "hello", || Arc::new(Word("hello")));
    crate::register!(dyn Greeting, "hi", || Arc::new(Word("hi")));
    crate::register!(dyn Greeting, "twice", || Arc::new(Word("one")));
    crate::register!(dyn Greeting, "twice", || Arc::new(Word("two")));
    crate::register!(
        dyn Greeting,
        "outer",
        || Arc::new(Word("outer")),
        activate = Activate::consumer(-10)
    );
    crate::register!(
        dyn Greeting,
        "inner",
        || Arc::new(Word("inner")),
        activate = Activate::both(10)
    );
    crate::register!(
        dyn Greeting,
        "prov",
        || Arc::new(Word("prov")),
        activate = Activate::provider(0)
    );
    crate::register!(
        dyn Greeting,
        "keyed",
        || Arc::new(Word("keyed")),
        activate = Activate::consumer(0).when(keys::TPS)
    );

    fn url(q: &str) -> Url {
        Url::parse(&format!("consumer://h/S?{q}")).expect("valid url")
    }

    fn words(side: Side, q: &str) -> Vec<&'static str> {
        <dyn Greeting>::loader()
            .activated(side, &url(q))
            .expect("activation")
            .into_iter()
            .map(|(_, g)| g.word())
            .collect()
    }

    #[test]
    fn lookup_by_name_and_default() {
        assert_eq!(get::<dyn Greeting>("hi").expect("hi").word(), "hi");
        assert_eq!(
            get_default::<dyn Greeting>().expect("default").word(),
            "hello"
        );
    }

    #[test]
    fn instances_are_cached() {
        let a = get::<dyn Greeting>("hi").expect("hi");
        let b = get::<dyn Greeting>("hi").expect("hi");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn unknown_name_lists_known_names() {
        let e = get::<dyn Greeting>("hallo").err().expect("unknown");
        let msg = e.to_string();
        assert!(
            msg.contains(
                "unknown greeting 'hallo'; known: hello, hi, inner, keyed, outer, prov, twice"
            ),
            "{msg}"
        );
        assert!(msg.contains("did you mean 'hello'"), "{msg}");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn suggestions_cover_typos_and_unique_abbreviations() {
        let lbs = [
            "consistenthash",
            "leastactive",
            "p2c",
            "random",
            "roundrobin",
        ];
        assert_eq!(suggest(&lbs, "rr"), Some("roundrobin"));
        assert_eq!(suggest(&lbs, "randon"), Some("random"));
        assert_eq!(suggest(&lbs, "la"), Some("leastactive"));
        assert_eq!(suggest(&lbs, "ch"), Some("consistenthash"));
        // 'r' alone abbreviates two names, and 'xyz' nothing: no guess.
        assert_eq!(suggest(&lbs, "r"), None);
        assert_eq!(suggest(&lbs, "xyz"), None);
        assert_eq!(suggest(&lbs, "rdm"), Some("random"));
    }

    #[test]
    fn check_url_names_the_key_and_suggests_without_creating_anything() {
        let loader = <dyn Greeting>::loader();
        loader
            .check_url(&url("greeting=hi&greet.greeting=hello"), false)
            .expect("known");
        let e = loader
            .check_url(&url("greeting=hii"), false)
            .expect_err("typo");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message()
                .starts_with("'greeting': unknown greeting 'hii'"),
            "{e}"
        );
        assert!(e.message().contains("did you mean 'hi'"), "{e}");
        let e = loader
            .check_url(&url("greet.greeting=nope"), false)
            .expect_err("method level");
        assert!(e.message().starts_with("'greet.greeting': unknown"), "{e}");
        // Lists: every name, removed ones too; `default` is not a name.
        loader
            .check_url(&url("greeting=default,-outer,hi"), true)
            .expect("list");
        let e = loader
            .check_url(&url("greeting=default,-outr"), true)
            .expect_err("removed typo");
        assert!(e.message().contains("unknown greeting 'outr'"), "{e}");
        assert!(e.message().contains("did you mean 'outer'"), "{e}");
        // A name registered twice is refused here too.
        assert!(loader.check_url(&url("greeting=twice"), false).is_err());
        // Keys that only end like the point's key are not selections.
        loader
            .check_url(&url("xgreeting=zzz"), false)
            .expect("other key");
    }

    #[test]
    fn duplicate_name_is_refused_naming_both() {
        let msg = get::<dyn Greeting>("twice")
            .err()
            .expect("clash")
            .to_string();
        assert!(msg.contains("registered twice"), "{msg}");
        assert!(
            msg.matches("rpc_core::extension::tests").count() == 2,
            "{msg}"
        );
    }

    /// The cache answers as `adaptive` does, method-level keys included, and an unknown
    /// name stays an error on every call rather than a silent default.
    #[test]
    fn adaptive_cache_answers_like_adaptive() {
        let u = url("greeting=hi&shout.greeting=hello");
        let cache = AdaptiveCache::<dyn Greeting>::new();
        for (method, word) in [("shout", "hello"), ("other", "hi"), ("shout", "hello")] {
            assert_eq!(cache.get(&u, method).expect("ok").word(), word);
        }
        let plain = AdaptiveCache::<dyn Greeting>::new();
        let first = plain
            .get(&url("greeting=hi"), "a")
            .expect("ok")
            .into_owned();
        let again = plain
            .get(&url("greeting=hi"), "b")
            .expect("ok")
            .into_owned();
        assert!(Arc::ptr_eq(&first, &again));
        let bad = AdaptiveCache::<dyn Greeting>::new();
        for _ in 0..2 {
            let e = bad.get(&url("greeting=nope"), "x").err().expect("unknown");
            assert!(e.to_string().contains("unknown greeting 'nope'"), "{e}");
        }
    }

    #[test]
    fn adaptive_prefers_method_level_key() {
        let u = url("greeting=hi&shout.greeting=hello");
        assert_eq!(
            adaptive::<dyn Greeting>(&u, "shout").expect("ok").word(),
            "hello"
        );
        assert_eq!(
            adaptive::<dyn Greeting>(&u, "other").expect("ok").word(),
            "hi"
        );
        assert_eq!(
            adaptive::<dyn Greeting>(&url(""), "x").expect("ok").word(),
            "hello"
        );
        assert!(adaptive::<dyn Greeting>(&url("greeting=nope"), "x").is_err());
    }

    #[test]
    fn activation_by_side_and_order() {
        assert_eq!(words(Side::Consumer, ""), ["outer", "inner"]);
        assert_eq!(words(Side::Provider, ""), ["prov", "inner"]);
    }

    #[test]
    fn activation_when_key_present() {
        assert_eq!(words(Side::Consumer, "tps=10"), ["outer", "keyed", "inner"]);
    }

    #[test]
    fn listed_names_follow_defaults_unless_placed() {
        assert_eq!(
            words(Side::Consumer, "greeting=hi"),
            ["outer", "inner", "hi"]
        );
        assert_eq!(
            words(Side::Consumer, "greeting=hi,default"),
            ["hi", "outer", "inner"]
        );
        // Naming a default filter moves it to where it is listed.
        assert_eq!(
            words(Side::Consumer, "greeting=inner,default"),
            ["inner", "outer"]
        );
    }

    #[test]
    fn minus_removes_and_minus_default_removes_all_defaults() {
        assert_eq!(words(Side::Consumer, "greeting=-outer"), ["inner"]);
        assert_eq!(words(Side::Consumer, "greeting=-default,hi"), ["hi"]);
        assert!(words(Side::Consumer, "greeting=-default,hi,-hi").is_empty());
    }

    #[test]
    fn unknown_listed_name_is_an_error() {
        let e = <dyn Greeting>::loader()
            .activated(Side::Consumer, &url("greeting=nope"))
            .err()
            .expect("unknown");
        assert!(e.to_string().contains("unknown greeting 'nope'"), "{e}");
    }
}
