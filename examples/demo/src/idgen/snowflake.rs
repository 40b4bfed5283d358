//! Snowflake ids: 64-bit, time-ordered, unique per worker without coordination.
//!
//! Layout (most significant first): 1 unused sign bit, 41 bits of milliseconds since
//! [`EPOCH_MS`] (about 69 years), 10 bits of worker id, 12 bits of per-millisecond sequence.
//!
//! **Clock rollback protection.** If the wall clock steps backwards (NTP correction), a naive
//! generator would repeat ids. This one remembers the last millisecond it used: a step back of
//! at most [`Snowflake::with_max_backward_ms`] (default 5 ms) is waited out; a larger one is an
//! error ([`IdError::ClockMovedBackwards`]) so the caller can fail over to another worker
//! instead of issuing duplicates.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// 2020-01-01T00:00:00Z in Unix milliseconds: the zero of the timestamp field.
pub const EPOCH_MS: u64 = 1_577_836_800_000;
/// Largest worker id (10 bits).
pub const MAX_WORKER: u16 = (1 << 10) - 1;
const SEQUENCE_BITS: u32 = 12;
const WORKER_BITS: u32 = 10;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;

/// Why an id could not be made. Travels to callers as the service's business error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IdError {
    /// The clock went back further than the generator is willing to wait.
    #[error("clock moved backwards by {by_ms} ms; refusing to issue ids that could repeat")]
    ClockMovedBackwards {
        /// How far back, in milliseconds.
        by_ms: u64,
    },
    /// The worker id does not fit in 10 bits.
    #[error("worker id {0} is larger than {MAX_WORKER}")]
    BadWorker(u16),
    /// The segment store could not hand out a new block.
    #[error("segment store failed for '{tag}': {reason}")]
    Store {
        /// The business tag whose block was asked for.
        tag: String,
        /// What went wrong.
        reason: String,
    },
    /// An unknown business tag.
    #[error("unknown business tag '{0}'")]
    UnknownTag(String),
}

/// A source of wall-clock milliseconds (injectable for tests).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

struct State {
    last_ms: u64,
    sequence: u64,
}

/// A snowflake generator for one worker.
pub struct Snowflake<C: Clock = SystemClock> {
    worker: u64,
    clock: C,
    max_backward_ms: u64,
    state: Mutex<State>,
}

/// The parts of an id, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Unix milliseconds the id was made at.
    pub unix_ms: u64,
    /// The worker that made it.
    pub worker: u16,
    /// Its sequence within that millisecond.
    pub sequence: u16,
}

/// Splits an id into its parts.
pub fn parts(id: u64) -> Parts {
    Parts {
        unix_ms: (id >> (SEQUENCE_BITS + WORKER_BITS)) + EPOCH_MS,
        worker: ((id >> SEQUENCE_BITS) & u64::from(MAX_WORKER)) as u16,
        sequence: (id & MAX_SEQUENCE) as u16,
    }
}

impl Snowflake<SystemClock> {
    /// A generator for `worker` on the system clock.
    pub fn new(worker: u16) -> Result<Self, IdError> {
        Self::with_clock(worker, SystemClock)
    }
}

impl<C: Clock> Snowflake<C> {
    /// A generator for `worker` on `clock`.
    pub fn with_clock(worker: u16, clock: C) -> Result<Self, IdError> {
        if worker > MAX_WORKER {
            return Err(IdError::BadWorker(worker));
        }
        Ok(Snowflake {
            worker: u64::from(worker),
            clock,
            max_backward_ms: 5,
            state: Mutex::new(State {
                last_ms: 0,
                sequence: 0,
            }),
        })
    }

    /// Sets how far back the clock may step before [`IdError::ClockMovedBackwards`].
    pub fn with_max_backward_ms(mut self, ms: u64) -> Self {
        self.max_backward_ms = ms;
        self
    }

    /// The next id. Blocks for at most a few milliseconds (sequence exhausted in this
    /// millisecond, or a small clock step back).
    pub fn next_id(&self) -> Result<u64, IdError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = self.clock.now_ms();
        if now < st.last_ms {
            let by_ms = st.last_ms - now;
            if by_ms > self.max_backward_ms {
                return Err(IdError::ClockMovedBackwards { by_ms });
            }
            while now < st.last_ms {
                std::thread::sleep(Duration::from_micros(200));
                now = self.clock.now_ms();
            }
        }
        if now == st.last_ms {
            st.sequence = (st.sequence + 1) & MAX_SEQUENCE;
            if st.sequence == 0 {
                // 4096 ids in this millisecond: wait for the next one.
                while now <= st.last_ms {
                    std::thread::sleep(Duration::from_micros(100));
                    now = self.clock.now_ms();
                }
            }
        } else {
            st.sequence = 0;
        }
        st.last_ms = now;
        let ts = now.saturating_sub(EPOCH_MS);
        Ok((ts << (SEQUENCE_BITS + WORKER_BITS)) | (self.worker << SEQUENCE_BITS) | st.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A clock tests move by hand.
    #[derive(Clone)]
    struct Manual(Arc<AtomicU64>);
    impl Clock for Manual {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn ids_are_unique_and_increasing_and_decode() {
        let g = Snowflake::new(7).expect("worker");
        let ids: Vec<u64> = (0..20_000).map(|_| g.next_id().expect("id")).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        assert_eq!(parts(ids[0]).worker, 7);
    }

    #[test]
    fn unique_across_threads() {
        let g = Arc::new(Snowflake::new(1).expect("worker"));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    (0..5000)
                        .map(|_| g.next_id().expect("id"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().expect("thread") {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
    }

    #[test]
    fn large_clock_rollback_is_refused() {
        let t = Arc::new(AtomicU64::new(EPOCH_MS + 10_000));
        let g = Snowflake::with_clock(3, Manual(t.clone())).expect("worker");
        let first = g.next_id().expect("id");
        t.store(EPOCH_MS + 9_000, Ordering::SeqCst);
        assert_eq!(
            g.next_id(),
            Err(IdError::ClockMovedBackwards { by_ms: 1000 })
        );
        // Once the clock is past the last used millisecond, ids resume and stay ordered.
        t.store(EPOCH_MS + 10_001, Ordering::SeqCst);
        assert!(g.next_id().expect("id") > first);
    }

    #[test]
    fn small_clock_rollback_is_waited_out() {
        let t = Arc::new(AtomicU64::new(EPOCH_MS + 10_000));
        let g = Snowflake::with_clock(3, Manual(t.clone()))
            .expect("worker")
            .with_max_backward_ms(5);
        let first = g.next_id().expect("id");
        t.store(EPOCH_MS + 9_998, Ordering::SeqCst);
        let t2 = t.clone();
        let mover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            t2.store(EPOCH_MS + 10_001, Ordering::SeqCst);
        });
        let next = g.next_id().expect("waited");
        mover.join().expect("mover");
        assert!(next > first);
        assert_eq!(parts(next).unix_ms, EPOCH_MS + 10_001);
    }

    #[test]
    fn bad_worker_is_refused() {
        assert_eq!(Snowflake::new(1024).err(), Some(IdError::BadWorker(1024)));
    }
}
