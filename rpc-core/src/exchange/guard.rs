//! Protection of a connection's reader against slow, stalled and greedy peers: the deadline
//! for finishing a frame once it began, the process-wide budget for partly received large
//! frames, and the one place that reports why a connection was closed or a call refused
//! (a metric every time, a log line once per cause and interval, never a flood).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::HEADER_LEN;

/// Why a connection was closed or a request refused by the exchange's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A frame was not completed within `frame.timeout` after its first byte (slow-loris,
    /// or a peer that stopped in the middle of a frame).
    SlowFrame,
    /// Nothing arrived for `idle.timeout` (not even a heartbeat).
    Idle,
    /// The server already had `accepts` connections open.
    TooManyConnections,
    /// The connection already had `connection.inflight` requests executing.
    TooManyInflight,
    /// The process-wide `payload.budget` for partly received large frames stayed exhausted
    /// until the frame's deadline.
    PayloadBudget,
    /// Bytes that are not a frame (bad magic).
    BadFrame,
}

impl Cause {
    /// Every cause, in a fixed order.
    pub const ALL: [Cause; 6] = [
        Cause::SlowFrame,
        Cause::Idle,
        Cause::TooManyConnections,
        Cause::TooManyInflight,
        Cause::PayloadBudget,
        Cause::BadFrame,
    ];

    /// The `reason` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::SlowFrame => "slow_frame",
            Cause::Idle => "idle",
            Cause::TooManyConnections => "too_many_connections",
            Cause::TooManyInflight => "too_many_inflight",
            Cause::PayloadBudget => "payload_budget",
            Cause::BadFrame => "bad_frame",
        }
    }

    fn index(self) -> usize {
        Cause::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// How often one cause is logged at most; occurrences in between are counted and named in
/// the next line.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

struct Tally {
    /// Milliseconds since [`epoch`] of the last line logged, plus one (0: never).
    last_logged: AtomicU64,
    /// Occurrences since the last line.
    unlogged: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn tallies() -> &'static [[Tally; 6]; 2] {
    static T: OnceLock<[[Tally; 6]; 2]> = OnceLock::new();
    T.get_or_init(|| {
        std::array::from_fn(|_| {
            std::array::from_fn(|_| Tally {
                last_logged: AtomicU64::new(0),
                unlogged: AtomicU64::new(0),
            })
        })
    })
}

/// Whether the line for an occurrence of `cause` on `side` should be logged now; returns the
/// occurrences folded into it (this one included).
fn take_log_turn(side: &'static str, cause: Cause) -> Option<u64> {
    let row = usize::from(side == "consumer");
    let tally = &tallies()[row][cause.index()];
    let unlogged = tally.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
    let now = epoch().elapsed().as_millis() as u64 + 1;
    let last = tally.last_logged.load(Ordering::Relaxed);
    let due = last == 0 || now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
    if due
        && tally
            .last_logged
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tally.unlogged.store(0, Ordering::Relaxed);
        return Some(unlogged);
    }
    None
}

/// Records that a limit acted: the counter `rpc_connection_limits_total{side, reason}` is
/// incremented every time, and a warning naming the peer and `detail` is logged once per
/// cause and [`LOG_EVERY`] (with the count of the occurrences it stands for).
#[cold]
pub fn report(side: &'static str, cause: Cause, peer: &str, detail: &str) {
    metrics::counter!(
        "rpc_connection_limits_total",
        "side" => side,
        "reason" => cause.as_str()
    )
    .increment(1);
    if let Some(count) = take_log_turn(side, cause) {
        tracing::warn!(
            side,
            reason = cause.as_str(),
            %peer,
            occurrences = count,
            "{detail}"
        );
    }
}

/// The default `frame.timeout`: a frame must be complete this long after its first byte.
pub const DEFAULT_FRAME_TIMEOUT_MS: u64 = 10_000;

/// Frames up to this size (header included) need no share of the payload budget: every
/// connection may buffer one without asking.
pub const SMALL_FRAME: usize = 64 * 1024;

/// The deadline of the frame being received on one connection.
#[derive(Debug)]
pub struct FrameClock {
    limit: Duration,
    started: Option<Instant>,
}

impl FrameClock {
    /// A clock for frames that must complete within `limit`.
    pub fn new(limit: Duration) -> Self {
        FrameClock {
            limit,
            started: None,
        }
    }

    /// Updates the clock after decoding: `busy` is whether part of a frame is buffered or
    /// being skipped; `completed` whether at least one frame was just taken out.
    pub fn update(&mut self, busy: bool, completed: bool) {
        if !busy {
            self.started = None;
        } else if completed || self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// The time left for the frame in progress, `None` when no frame is in progress.
    pub fn remaining(&self) -> Option<Duration> {
        self.started.map(|s| self.limit.saturating_sub(s.elapsed()))
    }

    /// When the frame in progress must be complete, `None` when no frame is in progress.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|s| later_by(s, self.limit))
    }

    /// The configured limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// `at + wait`, or a time decades away when a configured wait is too long for the clock (a
/// deadline then that never comes, not a panic).
pub(crate) fn later_by(at: Instant, wait: Duration) -> Instant {
    const DECADES: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    at.checked_add(wait)
        .or_else(|| at.checked_add(DECADES))
        .unwrap_or(at)
}

/// Bytes of partly received large frames all connections of a server may hold at once.
#[derive(Debug, Clone)]
pub struct PayloadBudget {
    /// Permits are KiB.
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl PayloadBudget {
    /// A budget of `bytes` (at least one maximal small frame).
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(64, Semaphore::MAX_PERMITS.min(u32::MAX as usize) as u32);
        PayloadBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// The share a frame of `frame_len` bytes needs, in KiB (0 for a small frame); never
    /// more than the whole budget, so one frame as large as the budget can still pass.
    fn share(&self, frame_len: usize) -> u32 {
        if frame_len <= SMALL_FRAME {
            return 0;
        }
        u32::try_from(frame_len.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib)
    }

    /// KiB not held by any frame now (for tests and metrics).
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

/// The announced length (header included) of the frame at the start of `buf`, once its
/// header is complete.
pub fn announced_len(buf: &BytesMut) -> Option<usize> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let body = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
    Some(HEADER_LEN + body)
}

/// The share of the budget held for the large frame being received on one connection.
#[derive(Debug, Default)]
pub struct BudgetHold {
    permit: Option<OwnedSemaphorePermit>,
}

impl BudgetHold {
    /// Makes sure the frame of `frame_len` bytes at the head of the buffer holds its share,
    /// waiting up to `wait` for it. `false` when the share could not be had in time.
    pub async fn ensure(
        &mut self,
        budget: &PayloadBudget,
        frame_len: usize,
        wait: Duration,
    ) -> bool {
        let need = budget.share(frame_len);
        if need == 0
            || self
                .permit
                .as_ref()
                .is_some_and(|p| p.num_permits() >= need as usize)
        {
            return true;
        }
        self.permit = None;
        let acquire = budget.kib.clone().acquire_many_owned(need);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(p)) => {
                self.permit = Some(p);
                true
            }
            _ => false,
        }
    }

    /// Gives the share back (the frame was taken out of the buffer, or dropped).
    pub fn release(&mut self) {
        self.permit = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_logged_once_per_interval_and_counted() {
        // First occurrence: logged, standing for itself.
        assert_eq!(take_log_turn("provider", Cause::PayloadBudget), Some(1));
        // The next ones within the interval are folded into a later line.
        assert_eq!(take_log_turn("provider", Cause::PayloadBudget), None);
        assert_eq!(take_log_turn("provider", Cause::PayloadBudget), None);
        // Another side or cause has its own turn.
        assert_eq!(take_log_turn("consumer", Cause::PayloadBudget), Some(1));
    }

    #[test]
    fn a_wait_too_long_for_the_clock_is_a_deadline_decades_away() {
        let now = Instant::now();
        assert_eq!(
            later_by(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let never = later_by(now, Duration::from_millis(u64::MAX));
        assert!(never > now + Duration::from_secs(10 * 365 * 24 * 3600));
    }

    #[tokio::test(start_paused = true)]
    async fn the_frame_clock_runs_from_the_first_byte_and_restarts_per_frame() {
        let mut clock = FrameClock::new(Duration::from_secs(10));
        assert_eq!(clock.remaining(), None);
        clock.update(true, false);
        tokio::time::advance(Duration::from_secs(4)).await;
        clock.update(true, false);
        assert_eq!(clock.remaining(), Some(Duration::from_secs(6)));
        assert_eq!(
            clock.deadline(),
            Some(Instant::now() + Duration::from_secs(6))
        );
        // A frame completed and the next one began: a new deadline.
        clock.update(true, true);
        assert_eq!(clock.remaining(), Some(Duration::from_secs(10)));
        clock.update(false, true);
        assert_eq!(clock.remaining(), None);
        assert_eq!(clock.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn large_frames_share_the_budget_and_wait_for_it() {
        let budget = PayloadBudget::new(1024 * 1024);
        let mut a = BudgetHold::default();
        let mut b = BudgetHold::default();
        assert!(
            a.ensure(&budget, 1000, Duration::ZERO).await,
            "small frames are free"
        );
        assert!(a.ensure(&budget, 700 * 1024, Duration::ZERO).await);
        assert_eq!(budget.available_kib(), 1024 - 700);
        assert!(
            !b.ensure(&budget, 700 * 1024, Duration::from_secs(1)).await,
            "no room until the first frame is done"
        );
        a.release();
        assert!(b.ensure(&budget, 700 * 1024, Duration::ZERO).await);
        // A frame larger than the whole budget takes all of it, and can still pass.
        b.release();
        assert!(a.ensure(&budget, 5 * 1024 * 1024, Duration::ZERO).await);
        assert_eq!(budget.available_kib(), 0);
    }

    #[test]
    fn the_announced_length_needs_a_whole_header() {
        let mut buf = BytesMut::from(&[0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1][..]);
        assert_eq!(announced_len(&buf), None);
        buf.extend_from_slice(&[0]);
        assert_eq!(announced_len(&buf), Some(HEADER_LEN + 256));
    }
}
