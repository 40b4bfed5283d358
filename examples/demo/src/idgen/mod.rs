//! The example domain: a distributed id service.
//!
//! Two generators a real id service offers: [`snowflake`] (time-ordered 64-bit ids, no
//! coordination, with clock-rollback protection) and [`segment`] (dense increasing ids per
//! business tag from pre-fetched blocks).

pub mod segment;
pub mod snowflake;

pub use segment::{FileStore, MemoryStore, SegmentAllocator, SegmentStore};
pub use snowflake::{parts, IdError, Snowflake};
