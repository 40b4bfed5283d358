//! The call context: deadline, attachments and trace of the call being served, visible to
//! everything the service implementation does while serving it.
//!
//! On the provider, the `context` filter runs the rest of the call inside a task-local
//! [`RpcContext`] built from what the consumer sent: the deadline (from the relative budget in
//! [`TIMEOUT_ATTACHMENT`]), the attachments and the W3C trace context. A call the
//! implementation makes to another service then inherits all of it through the consumer-side
//! `context` filter (consumer side): its deadline can only shrink to the caller's remaining budget,
//! propagated attachments are copied, and the trace id stays the same while each hop gets a
//! new span id.
//!
//! ```
//! use rpc_core::context::RpcContext;
//! use rpc_core::Attachments;
//!
//! # async fn demo() {
//! // Calls made inside the future carry `tenant=blue`.
//! let attachments: Attachments = [("tenant", "blue")].into_iter().collect();
//! RpcContext::scope_with(attachments, async {
//!     assert_eq!(RpcContext::current().get("tenant"), Some("blue"));
//! })
//! .await;
//! # }
//! ```
//!
//! The context is task-local: a task started with `tokio::spawn` inside a call does not see
//! it unless the future is wrapped again (`RpcContext::current().scope(fut)`).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use crate::invocation::{Attachments, ByteString};

/// Attachment carrying the caller's remaining budget in whole milliseconds, measured when the
/// call was sent (a relative duration, so clocks need not agree).
pub const TIMEOUT_ATTACHMENT: &str = "rpc.timeout-ms";
/// Attachment carrying the W3C trace context (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT_ATTACHMENT: &str = "traceparent";
/// Attachment carrying the calling application's name (used by per-application limits).
pub const APPLICATION_ATTACHMENT: &str = "application";
/// Attachment carrying the provider's token (see the `token` filter).
pub const TOKEN_ATTACHMENT: &str = "token";
/// Attachment a provider-side protocol sets to the caller's socket address (`ip:port`), for
/// the access log and the `rpc.server` span. Set by the server, never taken from the wire.
pub const REMOTE_ADDRESS_ATTACHMENT: &str = "rpc.remote-address";

/// Attachment keys that describe one hop and are never copied onto nested calls: ours, and
/// those the Dubbo wire format uses for the target service.
const PER_HOP: &[&str] = &[
    TRACEPARENT_ATTACHMENT,
    APPLICATION_ATTACHMENT,
    TOKEN_ATTACHMENT,
    "path",
    "interface",
    "version",
    "group",
    "dubbo",
    "timeout",
];

/// Whether an incoming attachment is copied onto calls made while serving: everything but
/// the per-hop keys (deadline, trace, token, application, the target service's path, group,
/// version and timeout) and the `rpc.` namespace.
pub fn is_propagated(key: &str) -> bool {
    !(key.starts_with("rpc.") || PER_HOP.contains(&key))
}

/// The application name, read on every consumer call: a lock-free snapshot of a name that
/// lives for the rest of the process, so reading it touches no shared counter or lock.
static APPLICATION: ArcSwapOption<&'static str> = ArcSwapOption::const_empty();

/// Names the application this process runs as; consumer calls send it in the
/// [`APPLICATION_ATTACHMENT`] attachment (for the provider's per-application `tps` limit and
/// access log). The bootstrap calls this with the configured `application` name. Without it,
/// the `application` key of the invoker's URL is used.
///
/// Each distinct name is kept for the rest of the process (setting the name in force again
/// keeps nothing more): processes name themselves once or a few times.
pub fn set_application(name: &str) {
    if APPLICATION
        .load()
        .as_deref()
        .is_some_and(|current| **current == *name)
    {
        return;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    APPLICATION.store(Some(Arc::new(kept)));
}

/// The name given to [`set_application`], if any.
pub fn application() -> Option<ByteString> {
    // Each thread keeps the snapshot it last read and checks it is still the one in force
    // with one plain load, cheaper than a fresh snapshot (a guard slot taken and given back).
    type Cached = arc_swap::Cache<&'static ArcSwapOption<&'static str>, Option<Arc<&'static str>>>;
    thread_local!(static CACHED: std::cell::RefCell<Cached> =
        std::cell::RefCell::new(arc_swap::Cache::new(&APPLICATION)));
    CACHED.with(|c| {
        c.borrow_mut()
            .load()
            .as_deref()
            .map(|name| ByteString::from_static(name))
    })
}

tokio::task_local! {
    static CURRENT: Arc<RpcContext>;
}

/// The context of the call in progress. See the [module docs](self).
#[derive(Debug, Default)]
pub struct RpcContext {
    deadline: Option<Instant>,
    attachments: Attachments,
    /// The trace context, once known.
    trace: OnceLock<TraceParent>,
    /// Whether `trace` is the child of the caller's `traceparent` attachment (a new trace
    /// when there is none or it is malformed), worked out on first read: most calls served
    /// never read it, and parsing it costs every call.
    trace_from_caller: bool,
}

impl Clone for RpcContext {
    fn clone(&self) -> Self {
        // Settle the trace first, so that the copy and the original agree on the span id.
        let _ = self.trace();
        RpcContext {
            deadline: self.deadline,
            attachments: self.attachments.clone(),
            trace: self.trace.clone(),
            trace_from_caller: false,
        }
    }
}

impl RpcContext {
    /// An empty context: no deadline, no attachments, no trace.
    pub fn new() -> Self {
        RpcContext::default()
    }

    /// The context of the current task (a copy), or an empty one outside any scope.
    pub fn current() -> RpcContext {
        CURRENT
            .try_with(|c| RpcContext::clone(c))
            .unwrap_or_default()
    }

    /// Runs `f` on the current context without copying it (`None` outside any scope).
    pub fn with_current<R>(f: impl FnOnce(Option<&RpcContext>) -> R) -> R {
        let mut f = Some(f);
        match CURRENT.try_with(|c| (f.take().expect("called once"))(Some(c))) {
            Ok(r) => r,
            Err(_) => (f.take().expect("not called yet"))(None),
        }
    }

    /// Runs `fut` with this context as the current one.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(Arc::new(self), fut)
    }

    /// Runs `f` with `ctx` as the current context (for one poll of a call, say): what
    /// [`RpcContext::scope`] does around each poll of its future.
    pub(crate) fn within<R>(ctx: &Arc<RpcContext>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(ctx.clone(), f)
    }

    /// Runs `fut` with the current context plus `attachments` (replacing equal keys): calls
    /// made inside carry them.
    ///
    /// The current context is read when this is called, not when the future first runs, and an
    /// inner scope replaces the outer one while it runs. To combine attachments and a budget,
    /// build one context (`RpcContext::new()`, `attachments_mut`, `set_deadline`) and `scope` it.
    pub fn scope_with<F: Future>(
        attachments: Attachments,
        fut: F,
    ) -> impl Future<Output = F::Output> {
        let mut ctx = RpcContext::current();
        for (k, v) in attachments.iter() {
            ctx.attachments.insert(k, v);
        }
        ctx.scope(fut)
    }

    /// Runs `fut` with the current context limited to `timeout` from now: calls made inside
    /// get at most that budget.
    pub fn scope_with_timeout<F: Future>(
        timeout: Duration,
        fut: F,
    ) -> impl Future<Output = F::Output> {
        let mut ctx = RpcContext::current();
        ctx.set_deadline(Instant::now() + timeout);
        ctx.scope(fut)
    }

    /// The deadline of the call being served, if the caller sent one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (`None` without one, zero once passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Sets the deadline; an earlier existing one is kept (budgets only shrink).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(match self.deadline {
            Some(d) if d < deadline => d,
            _ => deadline,
        });
    }

    /// The attachments (incoming ones on a provider, plus those added by scopes).
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }

    /// The attachments, to change them before [`RpcContext::scope`].
    pub fn attachments_mut(&mut self) -> &mut Attachments {
        &mut self.attachments
    }

    /// One attachment.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attachments.get(key)
    }

    /// The trace context of the span in progress, if any.
    pub fn trace(&self) -> Option<&TraceParent> {
        if !self.trace_from_caller {
            return self.trace.get();
        }
        Some(self.trace.get_or_init(|| {
            self.attachments
                .get(TRACEPARENT_ATTACHMENT)
                .and_then(TraceParent::parse)
                .map_or_else(TraceParent::new_root, |caller| caller.child())
        }))
    }

    /// Sets the trace context.
    pub fn set_trace(&mut self, trace: TraceParent) {
        self.trace = OnceLock::from(trace);
        self.trace_from_caller = false;
    }

    /// Makes the trace context a child of the caller's: of the `traceparent` attachment, or a
    /// new trace without a valid one. Worked out when first read.
    pub fn set_trace_from_caller(&mut self) {
        self.trace = OnceLock::new();
        self.trace_from_caller = true;
    }
}

/// A W3C trace context (`traceparent` header, version 00): 16-byte trace id, 8-byte parent
/// span id and flags. See <https://www.w3.org/TR/trace-context/>.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Identifies the whole trace; the same on every hop.
    pub trace_id: u128,
    /// Identifies the span that sent this context; new on every hop.
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// A new trace with random ids, marked sampled.
    pub fn new_root() -> Self {
        TraceParent {
            trace_id: nonzero(|| fastrand::u128(..)),
            span_id: nonzero(|| fastrand::u64(..)),
            flags: 1,
        }
    }

    /// The context of a child span: same trace and flags, a new span id.
    pub fn child(&self) -> Self {
        TraceParent {
            span_id: nonzero(|| fastrand::u64(..)),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Parses a `traceparent` value; `None` when it is malformed (wrong length, upper-case or
    /// non-hex digits, version `ff`, all-zero ids). Unknown future versions are read by their
    /// version-00 prefix, as the specification asks.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 55 || (b.len() > 55 && (s.starts_with("00") || b[55] != b'-')) {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex_value(&b[0..2])?;
        let trace_id = u128::from(hex_value(&b[3..19])?) << 64 | u128::from(hex_value(&b[19..35])?);
        let span_id = hex_value(&b[36..52])?;
        let flags = u8::try_from(hex_value(&b[53..55])?).ok()?;
        if version == 0xff || trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }
}

fn nonzero<T: PartialEq + Default>(mut f: impl FnMut() -> T) -> T {
    loop {
        let v = f();
        if v != T::default() {
            return v;
        }
    }
}

/// The value of at most 16 lowercase hex digits; `None` for any other character. (Runs on
/// every served call: one pass over the bytes, no UTF-8 or radix machinery, no branch per
/// digit on the accumulator.)
fn hex_value(digits: &[u8]) -> Option<u64> {
    if digits.len() > 16 {
        return None;
    }
    let mut value = 0u64;
    let mut bad = false;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => {
                bad = true;
                0
            }
        };
        value = value << 4 | u64::from(d);
    }
    (!bad).then_some(value)
}

/// `x` as 16 lowercase hex digits, most significant first, worked out in registers: each
/// nibble is spread into a byte of its own, then all sixteen become digits at once (a table
/// lookup per nibble took most of the header's cost, written on every outgoing call).
fn hex16(x: u64) -> [u8; 16] {
    const ONES: u128 = u128::from_ne_bytes([1; 16]);
    let mut v = u128::from(x);
    // Halves apart, then quarters, ... until nibble i sits in byte i.
    v = (v | (v << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & (ONES * 0x0f);
    // A nibble over 9 carries into bit 4 when 6 is added: those digits are letters, which
    // start 39 after '9' + 1.
    let letters = ((v + ONES * 6) >> 4) & ONES;
    (v + ONES * u128::from(b'0') + letters * 39).to_be_bytes()
}

impl TraceParent {
    /// The header value, `00-{trace id}-{span id}-{flags}`, formatted on the stack (it is
    /// written on every outgoing call).
    fn encode(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        // The trace id's high half, its low half (truncation intended), the span id.
        out[3..19].copy_from_slice(&hex16((self.trace_id >> 64) as u64));
        out[19..35].copy_from_slice(&hex16(self.trace_id as u64));
        out[36..52].copy_from_slice(&hex16(self.span_id));
        out[53..55].copy_from_slice(&hex16(u64::from(self.flags))[14..]);
        out
    }
}

impl TraceParent {
    /// The header value as an attachment value: one copy of the stack buffer, carved from
    /// the calling thread's block ([`Frame::carved`](crate::exchange::Frame::carved)), as it
    /// is written on every outgoing call.
    pub fn header(&self) -> ByteString {
        let header = self.encode();
        // `encode` writes only ASCII; the empty fallback is unreachable.
        ByteString::try_from(crate::exchange::Frame::carved(&header)).unwrap_or_default()
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = self.encode();
        f.write_str(std::str::from_utf8(&header).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// Held by the tests that set the process's application name, one at a time.
#[cfg(test)]
pub(crate) static APPLICATION_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_reads_the_application_name_in_force() {
        let _one = APPLICATION_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        set_application("first");
        assert_eq!(application().as_deref(), Some("first"));
        // A thread that read the name before it changed reads the new one after.
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            tell.send(application()).expect("send");
            asked.recv().expect("asked again");
            tell.send(application()).expect("send");
        });
        assert_eq!(told.recv().expect("first read").as_deref(), Some("first"));
        set_application("second");
        assert_eq!(application().as_deref(), Some("second"));
        ask.send(()).expect("ask");
        assert_eq!(told.recv().expect("second read").as_deref(), Some("second"));
        reader.join().expect("reader");
    }

    #[test]
    fn hex_digits_are_the_formatters() {
        let mut values = vec![0, 1, 9, 10, 15, 16, 0xa5, u64::MAX, 0x0123_4567_89ab_cdef];
        values.extend((0..64).map(|i| 1u64 << i));
        values.extend((0..200).map(|_| fastrand::u64(..)));
        for x in values {
            assert_eq!(hex16(x), *format!("{x:016x}").as_bytes(), "{x:#x}");
        }
        let t = TraceParent {
            trace_id: 0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
            span_id: 0xb7ad_6b71_6920_3331,
            flags: 1,
        };
        assert_eq!(
            t.to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn a_trace_from_the_caller_is_worked_out_once_and_shared_by_copies() {
        let caller = TraceParent::new_root();
        let mut ctx = RpcContext::new();
        ctx.attachments_mut()
            .insert(TRACEPARENT_ATTACHMENT, caller.to_string());
        ctx.set_trace_from_caller();
        let first = *ctx.trace().expect("a trace");
        assert_eq!(first.trace_id, caller.trace_id, "same trace");
        assert_ne!(first.span_id, caller.span_id, "a child span");
        assert_eq!(ctx.trace(), Some(&first), "stable across reads");
        assert_eq!(ctx.clone().trace(), Some(&first), "copies agree");

        // Unread before the copy: the copy still agrees with the original.
        let mut lazy = RpcContext::new();
        lazy.attachments_mut()
            .insert(TRACEPARENT_ATTACHMENT, caller.to_string());
        lazy.set_trace_from_caller();
        let copy = lazy.clone();
        assert_eq!(copy.trace(), lazy.trace());

        // No or a malformed header: a new trace, also stable.
        let mut fresh = RpcContext::new();
        fresh
            .attachments_mut()
            .insert(TRACEPARENT_ATTACHMENT, "garbage");
        fresh.set_trace_from_caller();
        let root = *fresh.trace().expect("a new trace");
        assert_ne!(root.trace_id, caller.trace_id);
        assert_eq!(fresh.trace(), Some(&root));
        assert_eq!(RpcContext::new().trace(), None, "no trace unless asked for");
    }

    /// Written on every outgoing call, header values are carved side by side from the
    /// thread's block, not allocated one by one.
    #[test]
    fn traceparent_headers_are_carved_side_by_side() {
        std::thread::spawn(|| {
            let a = TraceParent::new_root().header();
            let b = TraceParent::new_root().header();
            assert_eq!(a.as_ptr() as usize + a.len(), b.as_ptr() as usize);
            assert_ne!(a, b);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let t = TraceParent::new_root();
        let text = t.to_string();
        assert_eq!(text.len(), 55);
        assert_eq!(&*t.header(), text);
        assert_eq!(TraceParent::parse(&text), Some(t));
        let spec = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = TraceParent::parse(spec).expect("spec example");
        assert_eq!(p.to_string(), spec);
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let child = p.child();
        assert_eq!(child.trace_id, p.trace_id);
        assert_ne!(child.span_id, p.span_id);
    }

    #[tokio::test]
    async fn scopes_nest_and_end() {
        assert!(RpcContext::current().attachments().is_empty());
        let a: Attachments = [("k", "1"), ("x", "y")].into_iter().collect();
        RpcContext::scope_with(a, async {
            let b: Attachments = [("k", "2")].into_iter().collect();
            RpcContext::scope_with(b, async {
                let c = RpcContext::current();
                assert_eq!(c.get("k"), Some("2"));
                assert_eq!(c.get("x"), Some("y"));
            })
            .await;
            assert_eq!(RpcContext::current().get("k"), Some("1"));
        })
        .await;
        assert_eq!(RpcContext::current().get("k"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_scope_only_shrinks() {
        RpcContext::scope_with_timeout(Duration::from_millis(100), async {
            RpcContext::scope_with_timeout(Duration::from_secs(10), async {
                let left = RpcContext::current().remaining().expect("deadline");
                assert!(left <= Duration::from_millis(100), "{left:?}");
            })
            .await;
        })
        .await;
    }

    #[test]
    fn per_hop_keys_are_not_propagated() {
        assert!(is_propagated("tenant"));
        for k in [
            "rpc.timeout-ms",
            "traceparent",
            "token",
            "application",
            "version",
            "path",
        ] {
            assert!(!is_propagated(k), "{k}");
        }
    }
}
