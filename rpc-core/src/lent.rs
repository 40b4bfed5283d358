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
