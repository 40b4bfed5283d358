//! Per-call-site state shared by the governance filters.
//!
//! Each filter is one shared instance (the SPI creates it once), so the state of every
//! service, method and provider lives in a map inside it. [`StateMap`] keys entries by
//! provider address (empty on the provider side), service key and method, finds an entry
//! without allocating or locking (a snapshot is read), and callers get an `Arc` to the entry
//! they can hold across an `.await`.
//!
//! The map is bounded ([`MAX_ENTRIES`]): method names come from the network on the provider
//! side, and a caller inventing names must not grow memory without limit.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use foldhash::fast::RandomState;

use crate::error::{ErrorKind, Result, RpcError};
use crate::invocation::{Invocation, ServiceKey};
use crate::lent::{Lent, Slots};
use crate::padded::Padded;
use crate::service_key::same_text;
use crate::url::Url;

/// Most entries one filter keeps; more distinct call sites are refused.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// Where a call goes: provider host and port (empty and `None` on the provider side),
/// service and method.
#[derive(Clone, Copy)]
pub(crate) struct Site<'a> {
    pub(crate) peer: &'a str,
    pub(crate) port: Option<u16>,
    pub(crate) service: &'a ServiceKey,
    pub(crate) method: &'a str,
}

impl<'a> Site<'a> {
    /// The provider-side site of `invocation` (no peer).
    pub(crate) fn of(invocation: &'a Invocation) -> Self {
        Site {
            peer: "",
            port: None,
            service: invocation.service(),
            method: invocation.method(),
        }
    }

    /// The consumer-side site of `invocation` sent to the provider at `url`.
    pub(crate) fn at(url: &'a Url, invocation: &'a Invocation) -> Self {
        Site {
            peer: url.host(),
            port: url.port(),
            service: invocation.service(),
            method: invocation.method(),
        }
    }

    fn hash(&self, state: &RandomState) -> u64 {
        state.hash_one((self.peer, self.port, self.service, self.method))
    }
}

struct OwnedSite {
    peer: Box<str>,
    port: Option<u16>,
    service: ServiceKey,
    method: Box<str>,
}

impl OwnedSite {
    fn matches(&self, s: &Site<'_>) -> bool {
        same_text(&self.peer, s.peer)
            && self.port == s.port
            && same_text(&self.method, s.method)
            && &self.service == s.service
    }
}

/// A site's state, shared with the calls in flight there.
pub(crate) type Entry<V> = Arc<Padded<V>>;

type Bucket<V> = Vec<(Arc<OwnedSite>, Entry<V>)>;
type Table<V> = HashMap<u64, Bucket<V>, RandomState>;

/// A bounded map from call site to shared state. See the [module docs](self).
///
/// Every call reads it, from every thread, and new sites are rare: readers load a snapshot
/// (no lock, nothing written to a shared cache line but the entry's own count) and a writer
/// publishes a changed copy.
pub(crate) struct StateMap<V> {
    what: &'static str,
    map: ArcSwap<Table<V>>,
    /// Held by a writer from copying the table to publishing it, so that no insert is lost;
    /// counts the entries (bounded by [`MAX_ENTRIES`]).
    write: Mutex<usize>,
    /// Seeded per map (foldhash: fast on these short keys, and the seed keeps peers from
    /// choosing colliding sites).
    hasher: RandomState,
}

impl<V> StateMap<V> {
    /// An empty map; `what` names the filter in the error when the map is full.
    pub(crate) fn new(what: &'static str) -> Self {
        StateMap {
            what,
            map: ArcSwap::from_pointee(HashMap::default()),
            write: Mutex::new(0),
            hasher: RandomState::default(),
        }
    }

    fn find<'t>(table: &'t Table<V>, h: u64, site: &Site<'_>) -> Option<&'t Entry<V>> {
        table
            .get(&h)?
            .iter()
            .find(|(k, _)| k.matches(site))
            .map(|(_, v)| v)
    }

    /// The entry of `site` if it exists and `keep` accepts it, else a new one from `make`
    /// (replacing a rejected entry, for example after the configured limit changed).
    pub(crate) fn get_or_insert(
        &self,
        site: Site<'_>,
        keep: impl Fn(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> Result<Entry<V>> {
        let h = site.hash(&self.hasher);
        if let Some(v) = Self::find(&self.map.load(), h, &site).filter(|v| keep(v)) {
            return Ok(v.clone());
        }
        let mut len = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        let found = Self::find(&current, h, &site);
        if let Some(v) = found.filter(|v| keep(v)) {
            return Ok(v.clone());
        }
        let is_new = found.is_none();
        if is_new && *len >= MAX_ENTRIES {
            return Err(RpcError::new(
                ErrorKind::LimitExceeded,
                format!(
                    "{} tracks {MAX_ENTRIES} call sites already; refusing method '{}'",
                    self.what, site.method
                ),
            ));
        }
        let v = Arc::new(Padded::new(make()));
        let mut table: Table<V> = (*current).clone();
        let bucket = table.entry(h).or_default();
        match bucket.iter_mut().find(|(k, _)| k.matches(&site)) {
            Some(slot) => slot.1 = v.clone(),
            None => bucket.push((
                Arc::new(OwnedSite {
                    peer: site.peer.into(),
                    port: site.port,
                    service: site.service.clone(),
                    method: site.method.into(),
                }),
                v.clone(),
            )),
        }
        self.map.store(Arc::new(table));
        if is_new {
            *len += 1;
        }
        Ok(v)
    }
}

/// How many (service, method) entries a filter layer bound to one chain keeps at hand
/// ([`Sites::bind`]); the calls of further methods find theirs in the shared map.
const BOUND_SLOTS: usize = 8;

/// A filter's state for its call sites: the map shared by every chain the filter is in, and,
/// for a filter layer bound to one chain ([`Sites::bind`]), the entries its own calls used.
///
/// A bound layer's provider (consumer side) is fixed by its chain, so it finds an entry by
/// service and method among a few slots filled on first use, and lends it for the call
/// without touching its reference count; entries stay shared with every other chain through
/// the map (two references to one provider share its circuit breaker, for example).
pub(crate) struct Sites<V> {
    shared: Arc<StateMap<V>>,
    bound: Option<Bound<V>>,
}

struct Bound<V> {
    peer: Box<str>,
    port: Option<u16>,
    /// The entries of its sites: service, method and entry.
    slots: Slots<(ServiceKey, Box<str>, Entry<V>), BOUND_SLOTS>,
}

/// An entry for one call: lent by a bound layer, or shared from the map.
pub(crate) type SiteRef<'a, V> = Lent<'a, Padded<V>>;

impl<V> Sites<V> {
    /// The state of a filter not yet bound to a chain; `what` names the filter in the error
    /// when its map is full.
    pub(crate) fn new(what: &'static str) -> Self {
        Sites {
            shared: Arc::new(StateMap::new(what)),
            bound: None,
        }
    }

    /// The same state for a layer in the chain around the provider at `peer` (`None` on the
    /// provider side): calls through it find their entries without a shared lookup.
    pub(crate) fn bind(&self, peer: Option<&Url>) -> Self {
        Sites {
            shared: self.shared.clone(),
            bound: Some(Bound {
                peer: peer.map_or("", Url::host).into(),
                port: peer.and_then(Url::port),
                slots: Slots::new(),
            }),
        }
    }

    /// The entry of `site`, as [`StateMap::get_or_insert`] gives it; a bound layer keeps the
    /// first entries of its chain's sites at hand and lends them.
    pub(crate) fn get(
        &self,
        site: Site<'_>,
        keep: impl Fn(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> Result<SiteRef<'_, V>> {
        let Some(bound) = self
            .bound
            .as_ref()
            .filter(|b| same_text(&b.peer, site.peer) && b.port == site.port)
        else {
            return self
                .shared
                .get_or_insert(site, keep, make)
                .map(Lent::Shared);
        };
        let is_site = |(service, method, _): &(ServiceKey, Box<str>, Entry<V>)| {
            same_text(method, site.method) && service == site.service
        };
        if let Some((_, _, entry)) = bound.slots.find(is_site) {
            if keep(entry) {
                return Ok(Lent::Borrowed(entry));
            }
            // Replaced in the map since (a changed limit): the slot stays stale.
            return self
                .shared
                .get_or_insert(site, keep, make)
                .map(Lent::Shared);
        }
        let entry = self.shared.get_or_insert(site, keep, make)?;
        match bound
            .slots
            .keep((site.service.clone(), site.method.into(), entry), is_site)
        {
            Ok((_, _, kept)) => Ok(Lent::Borrowed(kept)),
            Err((_, _, entry)) => Ok(Lent::Shared(entry)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::Value;

    #[test]
    fn entries_are_per_peer_service_and_method() {
        let m: StateMap<u32> = StateMap::new("test");
        let a = Invocation::new(ServiceKey::new("A", None, None), "m", Value::Empty);
        let b = Invocation::new(ServiceKey::new("B", None, None), "m", Value::Empty);
        let x = m.get_or_insert(Site::of(&a), |_| true, || 1).expect("a");
        let y = m
            .get_or_insert(Site::of(&a), |_| true, || 2)
            .expect("a again");
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(
            **m.get_or_insert(Site::of(&b), |_| true, || 3).expect("b"),
            3
        );
        assert_eq!(
            **m.get_or_insert(Site::at(&Url::new("dubbo", "h", 1), &a), |_| true, || 4)
                .expect("peer"),
            4
        );
        // A replaced entry does not count twice.
        assert_eq!(
            **m.get_or_insert(Site::of(&a), |v| *v == 9, || 9)
                .expect("replaced"),
            9
        );
    }

    /// Layers bound to chains lend the entries of the shared map: one entry per site whatever
    /// the layer, another provider its own, methods past the slots still served, and an entry
    /// the map replaced is not lent again.
    #[test]
    fn bound_layers_lend_the_shared_entries() {
        let sites: Sites<u32> = Sites::new("test");
        let a = Url::new("dubbo", "10.0.0.1", 1);
        let b = Url::new("dubbo", "10.0.0.2", 1);
        let (to_a, again_a, to_b) = (
            sites.bind(Some(&a)),
            sites.bind(Some(&a)),
            sites.bind(Some(&b)),
        );
        let inv = |m: &str| {
            Invocation::new(
                ServiceKey::new("S", None, None),
                m.to_string(),
                Value::Empty,
            )
        };
        let addr = |r: &SiteRef<'_, u32>| &***r as *const u32;
        let m = inv("m");
        let first = to_a.get(Site::at(&a, &m), |_| true, || 1).expect("a");
        assert!(matches!(first, Lent::Borrowed(_)));
        let lent = to_a.get(Site::at(&a, &m), |_| true, || 2).expect("a again");
        assert!(matches!(lent, Lent::Borrowed(_)));
        assert_eq!(addr(&first), addr(&lent));
        let other_layer = again_a
            .get(Site::at(&a, &m), |_| true, || 3)
            .expect("same peer");
        let unbound = sites
            .get(Site::at(&a, &m), |_| true, || 4)
            .expect("unbound");
        assert!(matches!(unbound, Lent::Shared(_)));
        assert_eq!(addr(&other_layer), addr(&first));
        assert_eq!(addr(&unbound), addr(&first));
        assert_eq!(**to_b.get(Site::at(&b, &m), |_| true, || 5).expect("b"), 5);
        // A site of another peer through a bound layer goes to the map.
        assert_eq!(
            **to_a.get(Site::at(&b, &m), |_| true, || 6).expect("b via a"),
            5
        );
        for i in 0..2 * BOUND_SLOTS as u32 {
            let call = inv(&format!("m{i}"));
            assert_eq!(
                **to_a
                    .get(Site::at(&a, &call), |_| true, || i)
                    .expect("method"),
                i
            );
            assert_eq!(
                **to_a
                    .get(Site::at(&a, &call), |_| true, || 99)
                    .expect("kept"),
                i
            );
        }
        let replaced = to_a
            .get(Site::at(&a, &m), |v| *v == 7, || 7)
            .expect("replaced");
        assert!(matches!(replaced, Lent::Shared(_)));
        assert_eq!(**replaced, 7);
        assert_eq!(
            **sites.get(Site::at(&a, &m), |_| true, || 8).expect("map"),
            7
        );
    }

    #[test]
    fn the_map_is_bounded() {
        let m: StateMap<()> = StateMap::new("executes");
        let service = ServiceKey::new("S", None, None);
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("m{i}")).collect();
        let site = |method: &str| {
            m.get_or_insert(
                Site {
                    peer: "",
                    port: None,
                    service: &service,
                    method,
                },
                |_| true,
                || (),
            )
        };
        for n in &names[..MAX_ENTRIES] {
            site(n).expect("within the bound");
        }
        let e = site(&names[MAX_ENTRIES]).expect_err("over the bound");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert!(
            e.to_string().contains("executes tracks 10000 call sites"),
            "{e}"
        );
        site(&names[0]).expect("known sites still work");
    }
}
