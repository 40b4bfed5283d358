//! Dubbo's service key (`group/interface:version`). A module of its own, depending on nothing
//! else in the crate, so that `url` (which derives a URL's key) does not depend on the
//! invocation model and through it on serialization and the extension registry.

use std::fmt;
use std::sync::Arc;

/// Dubbo's service key: interface plus optional group and version.
///
/// Displayed as `group/interface:version`, omitting empty parts. A key made for a reference
/// or an export ([`ServiceKey::interned`]) is kept for the life of the process and cloned
/// without a reference count; one made otherwise ([`ServiceKey::new`]) is shared through
/// one, whose parts sit at least two cache lines after the count, so that reading a key
/// never waits for the line that other cores' clones and drops keep writing.
#[derive(Clone)]
pub struct ServiceKey(Repr);

#[derive(Clone)]
enum Repr {
    Interned(&'static Block),
    Shared(Arc<Block>),
}

/// A key's block: the parts, kept [`APART`] bytes away from the reference count in front.
struct Block {
    _apart: [u8; APART],
    parts: Parts,
}

/// Bytes between the reference count and the parts: two 64-byte lines (a plain allocation,
/// where an aligned one would cost a slower allocator path on every new key).
const APART: usize = 128;

/// Most keys [`ServiceKey::interned`] keeps for the life of the process; past it, interned
/// keys are shared like [`ServiceKey::new`]'s (a process that makes references for service
/// names it is sent must not grow without bound).
const MAX_INTERNED: usize = 4096;

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash, Clone)]
struct Parts {
    interface: Box<str>,
    group: Option<Box<str>>,
    version: Option<Box<str>>,
}

impl Parts {
    fn new(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        let opt = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(Box::from);
        Parts {
            interface: Box::from(interface),
            group: opt(group),
            version: opt(version),
        }
    }
}

// Written out only because `PartialEq` is (equal keys hash alike: the same fields, as text).
impl std::hash::Hash for ServiceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// Two keys are equal when they are one block (the common case: keys are cloned from one
/// made per reference or per export), else when their text is equal.
impl PartialEq for ServiceKey {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.block(), other.block()) || self.parts() == other.parts()
    }
}

impl Eq for ServiceKey {}

impl PartialOrd for ServiceKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServiceKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(other.parts())
    }
}

impl ServiceKey {
    /// A key; empty group or version count as absent.
    pub fn new(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        ServiceKey(Repr::Shared(Arc::new(Block {
            _apart: [0; APART],
            parts: Parts::new(interface, group, version),
        })))
    }

    /// The same key as [`ServiceKey::new`], kept for the life of the process (one copy per
    /// distinct key, up to a bound) so that its clones, one or more per call, write no shared
    /// reference count: for the keys of references and exports, which live as long.
    pub fn interned(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        use std::collections::HashMap;
        use std::sync::{Mutex, PoisonError};
        static KEPT: Mutex<Option<HashMap<Parts, &'static Block>>> = Mutex::new(None);
        let parts = Parts::new(interface, group, version);
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = kept.get_or_insert_with(HashMap::new);
        if let Some(block) = kept.get(&parts) {
            return ServiceKey(Repr::Interned(block));
        }
        let block = Block {
            _apart: [0; APART],
            parts: parts.clone(),
        };
        if kept.len() >= MAX_INTERNED {
            return ServiceKey(Repr::Shared(Arc::new(block)));
        }
        let block: &'static Block = Box::leak(Box::new(block));
        kept.insert(parts, block);
        ServiceKey(Repr::Interned(block))
    }

    fn block(&self) -> &Block {
        match &self.0 {
            Repr::Interned(b) => b,
            Repr::Shared(b) => b,
        }
    }

    fn parts(&self) -> &Parts {
        &self.block().parts
    }

    /// The interface name (`org.example.Greeter`).
    pub fn interface(&self) -> &str {
        &self.parts().interface
    }

    /// The group, if any.
    pub fn group(&self) -> Option<&str> {
        self.parts().group.as_deref()
    }

    /// The version, if any.
    pub fn version(&self) -> Option<&str> {
        self.parts().version.as_deref()
    }
}

/// Whether two texts are equal, without handing empty ones to the byte comparison: the C
/// library's vector code reads an empty string's dangling address through a masked load,
/// which on some processors is a slow microcode assist, and empty texts (no peer on the
/// provider side, no group) are compared on every call.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = self.group() {
            write!(f, "{g}/")?;
        }
        f.write_str(self.interface())?;
        if let Some(v) = self.version() {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_is_text_equality() {
        assert!(same_text("", ""));
        assert!(same_text("a.B", "a.B"));
        assert!(!same_text("", "a"));
        assert!(!same_text("a.B", "a.C"));
        assert!(!same_text("a.B", "a.Bc"));
    }

    #[test]
    fn an_interned_key_is_one_copy_equal_to_the_shared_one() {
        let a = ServiceKey::interned("sk.Interned", Some("g"), Some(""));
        let b = ServiceKey::interned("sk.Interned", Some("g"), None);
        assert!(
            std::ptr::eq(a.block(), b.block()),
            "one copy per distinct key"
        );
        let shared = ServiceKey::new("sk.Interned", Some("g"), None);
        assert_eq!(a, shared);
        assert_eq!(a.to_string(), "g/sk.Interned");
        let state = std::collections::hash_map::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(state.hash_one(&a), state.hash_one(&shared));
        assert_ne!(a, ServiceKey::interned("sk.Interned", None, None));
    }

    #[test]
    fn past_the_bound_keys_are_shared_not_kept() {
        for i in 0..MAX_INTERNED + 10 {
            let name = format!("sk.Many{i}");
            let k = ServiceKey::interned(&name, None, None);
            assert_eq!(k.interface(), name);
        }
        let late = ServiceKey::interned("sk.TooLate", None, None);
        assert!(matches!(late.0, Repr::Shared(_)), "the bound holds");
        assert_eq!(late, ServiceKey::new("sk.TooLate", None, None));
    }

    #[test]
    fn keys_compare_and_order_by_their_text() {
        let a = ServiceKey::new("a.B", Some("g"), Some("1"));
        assert_eq!(a, a.clone());
        assert_eq!(a, ServiceKey::new("a.B", Some("g"), Some("1")));
        assert_eq!(
            ServiceKey::new("a.B", Some(""), None),
            ServiceKey::new("a.B", None, Some(""))
        );
        assert!(ServiceKey::new("a.A", None, None) < ServiceKey::new("a.B", None, None));
        let state = std::collections::hash_map::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(
            state.hash_one(&a),
            state.hash_one(ServiceKey::new("a.B", Some("g"), Some("1")))
        );
    }
}
