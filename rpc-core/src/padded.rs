//! [`Padded`]: a value alone on its cache lines.

/// A value on cache lines of its own.
///
/// For state that calls write from whichever thread runs them (a reference count, counters,
/// locks). Without the alignment the allocator or an array places other data on the same
/// cache lines (key strings a lookup compares, a neighbouring shard), and every reader on
/// another core then waits for those lines to come back (false sharing).
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

impl<V: Default> Default for Padded<V> {
    fn default() -> Self {
        Padded(V::default())
    }
}
