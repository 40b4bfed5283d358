//! Fault-tolerance strategies, one file each.

mod failfast;

pub use failfast::Failfast;
