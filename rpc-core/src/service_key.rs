//! Dubbo's service key (`group/interface:version`). A module of its own, depending on nothing
//! else in the crate, so that `url` (which derives a URL's key) does not depend on the
//! invocation model and through it on serialization and the extension registry.

use std::fmt;
use std::sync::Arc;

/// Dubbo's service key: interface plus optional group and version.
///
/// Displayed as `group/interface:version`, omitting empty parts. Cloning shares one block
/// (one reference count); the parts sit at least two cache lines after the count and the
/// text lives in allocations only ever read, so reading a key never waits for the line that
/// the calls' clones and drops keep writing on other cores.
#[derive(Clone)]
pub struct ServiceKey(Arc<Block>);

/// A key's block: the parts, kept [`APART`] bytes away from the reference count in front.
struct Block {
    _apart: [u8; APART],
    parts: Parts,
}

/// Bytes between the reference count and the parts: two 64-byte lines (a plain allocation,
/// where an aligned one would cost a slower allocator path on every new key).
const APART: usize = 128;

#[derive(PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Parts {
    interface: Box<str>,
    group: Option<Box<str>>,
    version: Option<Box<str>>,
}

// Written out only because `PartialEq` is (equal keys hash alike: the same fields, as text).
impl std::hash::Hash for ServiceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.parts.hash(state);
    }
}

/// Two keys are equal when they share one block (the common case: keys are cloned from one
/// made per reference or per export), else when their text is equal.
impl PartialEq for ServiceKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.parts == other.0.parts
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
        self.0.parts.cmp(&other.0.parts)
    }
}

impl ServiceKey {
    /// A key; empty group or version count as absent.
    pub fn new(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        let opt = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(Box::from);
        ServiceKey(Arc::new(Block {
            _apart: [0; APART],
            parts: Parts {
                interface: Box::from(interface),
                group: opt(group),
                version: opt(version),
            },
        }))
    }

    /// The interface name (`org.example.Greeter`).
    pub fn interface(&self) -> &str {
        &self.0.parts.interface
    }

    /// The group, if any.
    pub fn group(&self) -> Option<&str> {
        self.0.parts.group.as_deref()
    }

    /// The version, if any.
    pub fn version(&self) -> Option<&str> {
        self.0.parts.version.as_deref()
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
