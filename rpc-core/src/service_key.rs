//! Dubbo's service key (`group/interface:version`). A module of its own, depending on nothing
//! else in the crate, so that `url` (which derives a URL's key) does not depend on the
//! invocation model and through it on serialization and the extension registry.

use std::fmt;
use std::sync::Arc;

/// Dubbo's service key: interface plus optional group and version.
///
/// Displayed as `group/interface:version`, omitting empty parts.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct ServiceKey {
    interface: Arc<str>,
    group: Option<Arc<str>>,
    version: Option<Arc<str>>,
}

/// Two parts are equal when they are the same shared string (the common case: keys are
/// cloned from one made per reference or per export), else when their text is equal.
fn same_text(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

// Written out only because `PartialEq` is (equal keys hash alike: the same fields, as text).
impl std::hash::Hash for ServiceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.interface.hash(state);
        self.group.hash(state);
        self.version.hash(state);
    }
}

impl PartialEq for ServiceKey {
    fn eq(&self, other: &Self) -> bool {
        let same_opt = |a: &Option<Arc<str>>, b: &Option<Arc<str>>| match (a, b) {
            (Some(a), Some(b)) => same_text(a, b),
            (None, None) => true,
            _ => false,
        };
        same_text(&self.interface, &other.interface)
            && same_opt(&self.group, &other.group)
            && same_opt(&self.version, &other.version)
    }
}

impl ServiceKey {
    /// A key; empty group or version count as absent.
    pub fn new(interface: &str, group: Option<&str>, version: Option<&str>) -> Self {
        let opt = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(Arc::from);
        ServiceKey {
            interface: Arc::from(interface),
            group: opt(group),
            version: opt(version),
        }
    }

    /// The interface name (`org.example.Greeter`).
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The group, if any.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The version, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = &self.group {
            write!(f, "{g}/")?;
        }
        f.write_str(&self.interface)?;
        if let Some(v) = &self.version {
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
