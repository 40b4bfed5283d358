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
        &*self.peer == s.peer
            && self.port == s.port
            && &*self.method == s.method
            && &self.service == s.service
    }
}

/// A map entry's state on cache lines of its own.
///
/// Every call through a site writes its entry (the `Arc`'s count, counters, locks) from
/// whichever thread runs it. Without the alignment the allocator places small allocations,
/// such as the key strings each lookup compares, on the same cache lines, and every lookup
/// from another core then waits for those lines to come back (false sharing).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Padded<V>(V);

impl<V> Padded<V> {
    /// `value` on its own cache lines.
    pub(crate) fn new(value: V) -> Self {
        Padded(value)
    }
}

impl<V> std::ops::Deref for Padded<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.0
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
