//! [`Lent`]: a value a call borrows from its long-lived owner when it can, so that the call
//! takes no reference count on a line other cores' calls write too, and shares otherwise.

use std::sync::Arc;

/// A value lent for as long as its owner lives, or shared when it could not be.
pub enum Lent<'a, T> {
    /// Kept by the owner.
    Borrowed(&'a T),
    /// Shared with the owner, or the caller's alone.
    Shared(Arc<T>),
}

impl<T> std::ops::Deref for Lent<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Lent::Borrowed(v) => v,
            Lent::Shared(v) => v,
        }
    }
}

/// A few values kept for the life of their owner: each slot is filled once, on first use, and
/// never replaced or emptied, so a value found in one can be lent for as long as the owner
/// lives. Past its `N` slots a value is not kept (the caller shares or reads it instead).
pub(crate) struct Slots<T, const N: usize>(std::sync::OnceLock<Box<[std::sync::OnceLock<T>; N]>>);

impl<T, const N: usize> Slots<T, N> {
    /// No value kept yet (the slots themselves are allocated on first use).
    pub(crate) const fn new() -> Self {
        Slots(std::sync::OnceLock::new())
    }

    /// The kept value that `is` accepts.
    pub(crate) fn find(&self, is: impl Fn(&T) -> bool) -> Option<&T> {
        self.0
            .get()?
            .iter()
            .map_while(std::sync::OnceLock::get)
            .find(|kept| is(kept))
    }

    /// The kept value that `is` accepts, else `value` kept in the first free slot (`is` must
    /// accept `value`); `value` back when every slot holds another value (or, rarely, a
    /// concurrent caller filled the free slot with another one first).
    pub(crate) fn keep(&self, value: T, is: impl Fn(&T) -> bool) -> Result<&T, T> {
        let slots = self
            .0
            .get_or_init(|| Box::new(std::array::from_fn(|_| std::sync::OnceLock::new())));
        // Slots fill in order, so the first that is free or accepted is the one.
        let Some(slot) = slots.iter().find(|s| s.get().is_none_or(&is)) else {
            return Err(value);
        };
        let mut offered = Some(value);
        let kept = slot.get_or_init(|| match offered.take() {
            Some(value) => value,
            None => unreachable!("a slot is filled once"),
        });
        match offered {
            // Filled by a concurrent caller first.
            Some(value) if !is(kept) => Err(value),
            _ => Ok(kept),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_keep_values_in_order_and_refuse_past_their_number() {
        let slots: Slots<u32, 2> = Slots::new();
        assert!(slots.find(|&v| v == 1).is_none());
        assert_eq!(slots.keep(1, |&v| v == 1), Ok(&1));
        assert_eq!(slots.keep(1, |&v| v == 1), Ok(&1), "kept once");
        assert_eq!(slots.keep(2, |&v| v == 2), Ok(&2));
        assert_eq!(slots.keep(3, |&v| v == 3), Err(3), "no free slot");
        assert_eq!(slots.find(|&v| v == 2), Some(&2));
        assert!(slots.find(|&v| v == 3).is_none());
    }
}
