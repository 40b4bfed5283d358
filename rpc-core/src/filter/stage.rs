//! Stages: filters whose work is all before and after the call, none around its wait.
//!
//! Most of a consumer's default filters only look at a call on its way in (set a deadline,
//! add attachments, admit it through a breaker, start a clock) and at its result on the way
//! out. Written as [`Filter::invoke`](super::Filter::invoke), each is a layer of its own: one
//! boxed future per layer, the invocation moved into each, every poll passing through each.
//! A filter that is also a [`Stage`] says what it does in two plain functions instead, and a
//! chain runs adjacent stages in one layer ([`super::wrap`]): their `before`s in order, the
//! call, their `after`s in reverse — what nesting them would do, with one future.
//!
//! A stage may need three things the layer does for it: a `tracing` span entered around
//! everything inside it ([`Ticket::span`]); for the provider's `context`, an [`RpcContext`]
//! that is the task's current context inside it; and, for the `timeout` filter, a timer that
//! ends the call at its deadline when the invoker inside does not.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smallvec::SmallVec;
use tokio::time::Instant;

use crate::context::RpcContext;
use crate::error::{Result, RpcError};
use crate::invocation::{BoxedCall, Invocation, Invoker, Response};

/// A filter's work before and after the call it wraps; see the [module docs](self).
///
/// `before` and `after` never wait, so a stage never holds a call past its deadline. A
/// filter that is a stage returns itself from [`Filter::as_stage`](super::Filter::as_stage)
/// and can implement [`Filter::invoke`](super::Filter::invoke) with [`run`].
pub trait Stage: Send + Sync {
    /// On the call's way in, before the stages inside this one: may change the invocation,
    /// or fail the call with an error (the stages outside this one then see that error as
    /// the call's result, and the stages inside it never run). The ticket comes back to
    /// [`Stage::after`]. `next` is the invoker the chain calls in the end; `now` is when the
    /// layer started the call (read once for all its stages).
    fn before<'s>(
        &'s self,
        next: &dyn Invoker,
        invocation: &mut Invocation,
        now: Instant,
    ) -> Result<Ticket<'s>>;

    /// On the way out, after the stages inside this one: `result` is the call's result, or
    /// `None` when its future was dropped before it had one (the caller gave up, or a panic
    /// is unwinding through it: [`std::thread::panicking`]). `now` is when the call ended
    /// (read once for all the layer's stages).
    fn after(&self, ticket: Ticket<'_>, result: Option<&Result<Response>>, now: Instant);
}

/// What a stage's [`Stage::before`] hands its [`Stage::after`].
pub struct Ticket<'s>(pub(crate) Kind<'s>);

/// The built-in stages' tickets, kept inline; another stage's is boxed.
pub(crate) enum Kind<'s> {
    Nothing,
    Metrics(super::metrics::Started<'s>),
    Breaker(super::circuitbreaker::Admitted<'s>),
    Span(tracing::Span),
    Scope(Arc<RpcContext>, tracing::Span),
    /// Boxed: the rarer ticket (an invoker that keeps deadlines itself needs none), and the
    /// largest; inline, it would grow every ticket of every call.
    Deadline(Box<super::timeout::Timer>),
    Other(Box<dyn Any + Send>),
}

impl<'s> Ticket<'s> {
    /// A ticket that carries nothing.
    pub fn none() -> Self {
        Ticket(Kind::Nothing)
    }

    /// A ticket carrying `value` (boxed).
    pub fn new<T: Any + Send>(value: T) -> Self {
        Ticket(Kind::Other(Box::new(value)))
    }

    /// The value [`Ticket::new`] was given, if it is a `T`.
    pub fn take<T: Any>(self) -> Option<T> {
        match self.0 {
            Kind::Other(b) => b.downcast::<T>().ok().map(|b| *b),
            _ => None,
        }
    }

    /// A ticket that has the layer enter `span` around everything inside its stage: the
    /// stages inside it, the call and its wait.
    pub fn span(span: tracing::Span) -> Self {
        Ticket(Kind::Span(span))
    }

    /// A ticket that has the layer run everything inside its stage (the `before`s of the
    /// stages inside it, the call and its wait; not their `after`s, which may run outside a
    /// poll) with `context` as the task's current [`RpcContext`], and `span` entered: what
    /// the provider's `context` filter hands on to the service.
    pub(crate) fn scope(context: RpcContext, span: tracing::Span) -> Self {
        Ticket(Kind::Scope(Arc::new(context), span))
    }

    fn entered_span(&self) -> Option<&tracing::Span> {
        match &self.0 {
            Kind::Span(s) | Kind::Scope(_, s) => Some(s),
            _ => None,
        }
    }

    fn context(&self) -> Option<&Arc<RpcContext>> {
        match &self.0 {
            Kind::Scope(c, _) => Some(c),
            _ => None,
        }
    }

    /// Whether what runs inside this ticket's stage runs in something of its: a span that
    /// is recorded, or a context.
    fn encloses(&self) -> bool {
        match &self.0 {
            Kind::Span(s) => !s.is_disabled(),
            Kind::Scope(..) => true,
            _ => false,
        }
    }
}

/// The innermost span of `tickets`, entered for as long as the guard lives. Entering the
/// innermost is enough: a span knows its parents (the spans current where it was made), so
/// what runs inside is seen inside all of them.
fn enter<'t>(tickets: &'t [Ticket<'_>]) -> Option<tracing::span::Entered<'t>> {
    tickets
        .iter()
        .rev()
        .find_map(Ticket::entered_span)
        // A disabled span (no subscriber wants it) is not entered: entering one still costs
        // a call per poll, more when `tracing`'s `log` feature is on in the build.
        .filter(|s| !s.is_disabled())
        .map(tracing::Span::enter)
}

/// Runs `f` inside what the stages of `tickets` asked for: their span entered ([`enter`])
/// and the innermost context current; when none of them `enclosed` anything, just `f`. Only
/// within a poll: the context is a task-local.
fn inside<R>(enclosed: bool, tickets: &[Ticket<'_>], f: impl FnOnce() -> R) -> R {
    if !enclosed {
        return f();
    }
    let _span = enter(tickets);
    match tickets.iter().rev().find_map(Ticket::context) {
        Some(ctx) => RpcContext::within(ctx, f),
        None => f(),
    }
}

/// The stages a layer runs, outermost first.
#[derive(Clone, Copy)]
enum Stages<'f> {
    One(&'f dyn Stage),
    Many(&'f [Arc<dyn Stage>]),
}

impl<'f> Stages<'f> {
    fn get(self, i: usize) -> Option<&'f dyn Stage> {
        match self {
            Stages::One(s) => (i == 0).then_some(s),
            Stages::Many(all) => all.get(i).map(|s| &**s),
        }
    }
}

/// One call through a run of stages: their tickets and the call inside.
///
/// Nothing runs until the first poll, as with a filter's `async fn`: a stage that reads
/// the task's context (the consumer's `context`) reads it where the call is awaited.
pub(crate) struct Staged<'f> {
    stages: Stages<'f>,
    next: &'f dyn Invoker,
    /// The tickets of the stages whose `before` ran, outermost first.
    tickets: SmallVec<[Ticket<'f>; 4]>,
    /// Whether a ticket [encloses](Ticket::encloses) what runs inside its stage; when none
    /// does (no subscriber records the spans), nothing is looked up around each step.
    enclosed: bool,
    state: State<'f>,
    /// Set once the `after`s ran.
    done: bool,
}

enum State<'f> {
    /// Not polled yet.
    Ready(Invocation),
    /// The call inside is running.
    Running(BoxedCall<'f>),
    /// Over: it had its result, or a stage failed it.
    Over,
}

impl<'f> Staged<'f> {
    /// One call through adjacent `stages` (outermost first) around `next`, unboxed: for a
    /// layer that runs it inside a future of its own.
    pub(crate) fn many(
        stages: &'f [Arc<dyn Stage>],
        next: &'f dyn Invoker,
        invocation: Invocation,
    ) -> Self {
        Staged::new(Stages::Many(stages), next, invocation)
    }

    fn new(stages: Stages<'f>, next: &'f dyn Invoker, invocation: Invocation) -> Self {
        Staged {
            stages,
            next,
            tickets: SmallVec::new(),
            enclosed: false,
            state: State::Ready(invocation),
            done: false,
        }
    }

    /// Runs the stages' `before`s, then starts the call and polls it once, both inside what
    /// the tickets ask for (one entry into a context, not two); the first poll's result.
    fn start(
        &mut self,
        mut invocation: Invocation,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response>> {
        let mut timer = None;
        let now = Instant::now();
        while let Some(stage) = self.stages.get(self.tickets.len()) {
            let before = inside(self.enclosed, &self.tickets, || {
                stage.before(self.next, &mut invocation, now)
            });
            match before {
                Ok(Ticket(Kind::Deadline(t))) => {
                    timer = Some(*t);
                    self.tickets.push(Ticket::none());
                }
                Ok(ticket) => {
                    self.enclosed |= ticket.encloses();
                    self.tickets.push(ticket);
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let next = self.next;
        let (call, first) = inside(self.enclosed, &self.tickets, || {
            let mut call = match timer {
                Some(timer) => timer.run(next, invocation),
                None => next.invoke(invocation),
            };
            let first = call.as_mut().poll(cx);
            (call, first)
        });
        if first.is_pending() {
            self.state = State::Running(call);
        }
        first
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response>> {
        // A running call is polled where it lies (the state is as large as an invocation:
        // moving it out and back would copy that on every poll).
        let polled = if let State::Running(call) = &mut self.state {
            inside(self.enclosed, &self.tickets, || call.as_mut().poll(cx))
        } else if let State::Ready(invocation) = std::mem::replace(&mut self.state, State::Over) {
            self.start(invocation, cx)
        } else {
            Poll::Ready(Err(RpcError::internal(
                "a staged call was polled after its end",
            )))
        };
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        self.finish(Some(&result));
        Poll::Ready(result)
    }

    /// Drops the call inside (as a nested filter's would be, before the filters outside it
    /// go on), then runs the `after`s of the stages that ran, innermost first, each inside
    /// the spans of the stages outside it (not their context: see [`Ticket::scope`]).
    fn finish(&mut self, result: Option<&Result<Response>>) {
        if self.done {
            return;
        }
        self.done = true;
        self.state = State::Over;
        if self.tickets.is_empty() {
            return;
        }
        let now = Instant::now();
        for i in (0..self.tickets.len()).rev() {
            let Some(stage) = self.stages.get(i) else {
                continue;
            };
            let (outer, rest) = self.tickets.split_at_mut(i);
            let ticket = std::mem::replace(&mut rest[0], Ticket::none());
            // Spans only: this also runs where a dropped call is dropped, outside any poll,
            // where a task-local context cannot be set.
            let _spans = if self.enclosed { enter(outer) } else { None };
            stage.after(ticket, result, now);
        }
    }
}

/// Runs the `after`s of a call a panic is unwinding through, while it unwinds (so that they
/// see [`std::thread::panicking`]).
struct Unwinding<'a, 'f>(&'a mut Staged<'f>);

impl Drop for Unwinding<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.finish(None);
        }
    }
}

impl Future for Staged<'_> {
    type Output = Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Response>> {
        let guard = Unwinding(self.get_mut());
        guard.0.step(cx)
    }
}

impl Drop for Staged<'_> {
    /// A call dropped before its result: the stages that ran hear so.
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The two [`Filter`](super::Filter) methods of a filter that is a stage: it is its own
/// stage, and called on its own it runs as one ([`run`]). Used inside the filter's
/// `impl Filter` block.
macro_rules! stage_filter {
    () => {
        fn as_stage(
            self: std::sync::Arc<Self>,
        ) -> Option<std::sync::Arc<dyn $crate::filter::Stage>> {
            Some(self)
        }

        fn invoke<'s, 'n, 'f>(
            &'s self,
            next: &'n dyn $crate::invocation::Invoker,
            invocation: $crate::invocation::Invocation,
        ) -> $crate::invocation::BoxedCall<'f>
        where
            's: 'f,
            'n: 'f,
            Self: 'f,
        {
            $crate::filter::stage::run(self, next, invocation)
        }
    };
}
pub(crate) use stage_filter;

/// Runs one stage around `next`: what a stage's [`Filter::invoke`](super::Filter::invoke)
/// does when it is called on its own.
pub fn run<'f>(
    stage: &'f dyn Stage,
    next: &'f dyn Invoker,
    invocation: Invocation,
) -> BoxedCall<'f> {
    Box::pin(Staged::new(Stages::One(stage), next, invocation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::filter::testing::{call, Mock};
    use crate::filter::{wrap, Filter};
    use std::sync::Mutex;
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<String>>>;

    /// A stage that logs what it sees; fails the call in `before` when told to.
    struct Logged {
        name: &'static str,
        log: Log,
        refuse: bool,
    }

    impl Logged {
        fn filter(name: &'static str, log: &Log, refuse: bool) -> (&'static str, Arc<dyn Filter>) {
            (
                name,
                Arc::new(Logged {
                    name,
                    log: log.clone(),
                    refuse,
                }),
            )
        }
    }

    #[async_trait::async_trait]
    impl Filter for Logged {
        fn as_stage(self: Arc<Self>) -> Option<Arc<dyn Stage>> {
            Some(self)
        }

        async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
            run(self, next, invocation).await
        }
    }

    impl Stage for Logged {
        fn before<'s>(
            &'s self,
            _next: &dyn Invoker,
            invocation: &mut Invocation,
            _now: Instant,
        ) -> Result<Ticket<'s>> {
            self.log
                .lock()
                .expect("log")
                .push(format!("{} before", self.name));
            if self.refuse {
                return Err(RpcError::new(ErrorKind::LimitExceeded, self.name));
            }
            invocation.attachments_mut().insert(self.name, "seen");
            Ok(Ticket::new(self.name.len()))
        }

        fn after(&self, ticket: Ticket<'_>, result: Option<&Result<Response>>, _now: Instant) {
            assert_eq!(
                ticket.take::<usize>(),
                Some(self.name.len()),
                "its own ticket"
            );
            let seen = match result {
                None if std::thread::panicking() => "panicking".to_string(),
                None => "dropped".to_string(),
                Some(Ok(_)) => "ok".to_string(),
                Some(Err(e)) => format!("error {}", e.kind().as_str()),
            };
            self.log
                .lock()
                .expect("log")
                .push(format!("{} after: {seen}", self.name));
        }
    }

    /// A filter that is not a stage: a layer of its own.
    struct Plain(Log);

    #[async_trait::async_trait]
    impl Filter for Plain {
        async fn invoke(&self, next: &dyn Invoker, invocation: Invocation) -> Result<Response> {
            self.0.lock().expect("log").push("plain in".into());
            let r = next.invoke(invocation).await;
            self.0.lock().expect("log").push("plain out".into());
            r
        }
    }

    fn taken(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.lock().expect("log"))
    }

    #[tokio::test]
    async fn adjacent_stages_run_in_one_layer_as_nesting_would() {
        let log = Log::default();
        let p = Mock::ok("dubbo://h:1/S");
        let chain = wrap(
            p.clone(),
            vec![
                Logged::filter("a", &log, false),
                Logged::filter("b", &log, false),
            ],
        );
        let staged = chain.invoke(call("S", "m"));
        assert!(taken(&log).is_empty(), "nothing runs before the first poll");
        staged.await.expect("ok");
        assert_eq!(
            taken(&log),
            ["a before", "b before", "b after: ok", "a after: ok"]
        );
        let sent = p.last().expect("called");
        assert_eq!(sent.attachments().get("a"), Some("seen"));
        assert_eq!(sent.attachments().get("b"), Some("seen"));
    }

    #[tokio::test]
    async fn a_stage_that_fails_the_call_stops_it_and_the_outer_stages_see_the_error() {
        let log = Log::default();
        let p = Mock::ok("dubbo://h:1/S");
        let chain = wrap(
            p.clone(),
            vec![
                Logged::filter("outer", &log, false),
                Logged::filter("gate", &log, true),
                Logged::filter("inner", &log, false),
            ],
        );
        let e = chain.invoke(call("S", "m")).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        assert_eq!(p.calls(), 0);
        assert_eq!(
            taken(&log),
            [
                "outer before",
                "gate before",
                "outer after: error limit_exceeded"
            ]
        );
    }

    #[tokio::test]
    async fn a_layer_that_is_not_a_stage_splits_the_run_and_keeps_its_place() {
        let log = Log::default();
        let p = Mock::ok("dubbo://h:1/S");
        let chain = wrap(
            p,
            vec![
                Logged::filter("a", &log, false),
                ("plain", Arc::new(Plain(log.clone())) as Arc<dyn Filter>),
                Logged::filter("b", &log, false),
            ],
        );
        chain.invoke(call("S", "m")).await.expect("ok");
        assert_eq!(
            taken(&log),
            [
                "a before",
                "plain in",
                "b before",
                "b after: ok",
                "plain out",
                "a after: ok"
            ]
        );
    }

    #[tokio::test]
    async fn a_call_dropped_or_panicking_tells_the_stages_that_ran() {
        let log = Log::default();
        let hang = Mock::new("dubbo://h:1/S", |_| std::future::pending());
        let chain = wrap(
            hang,
            vec![
                Logged::filter("a", &log, false),
                Logged::filter("b", &log, false),
            ],
        );
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), chain.invoke(call("S", "m"))).await;
        assert!(gave_up.is_err());
        assert_eq!(
            taken(&log),
            [
                "a before",
                "b before",
                "b after: dropped",
                "a after: dropped"
            ]
        );

        let boom = Mock::new("dubbo://h:1/S", |_| async { panic!("boom") });
        let chain = wrap(boom, vec![Logged::filter("a", &log, false)]);
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            chain.invoke(call("S", "m")),
        ))
        .await;
        assert!(caught.is_err());
        assert_eq!(taken(&log), ["a before", "a after: panicking"]);
    }

    /// Stages `a` and `b` around a provider that refuses every call (after yielding once,
    /// so that the call waits).
    fn refusing_chain(log: &Log) -> Arc<dyn Invoker> {
        let refused = Mock::new("dubbo://h:1/S", |_| async {
            tokio::task::yield_now().await;
            Err(RpcError::network("connection reset"))
        });
        wrap(
            refused,
            vec![
                Logged::filter("a", log, false),
                Logged::filter("b", log, false),
            ],
        )
    }

    /// What the stages of [`refusing_chain`] see of one call.
    const REFUSED_IN_ORDER: [&str; 4] = [
        "a before",
        "b before",
        "b after: error network",
        "a after: error network",
    ];

    #[tokio::test]
    async fn a_member_call_runs_the_stages_in_its_own_future_and_names_its_provider() {
        let log = Log::default();
        let chain = refusing_chain(&log);
        let e = chain
            .clone()
            .invoke_as_member(call("S", "m"))
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert_eq!(e.provider(), Some("h:1"));
        assert_eq!(e.service(), Some("S"));
        assert_eq!(e.method(), Some("m"));
        assert_eq!(taken(&log), REFUSED_IN_ORDER);

        // Dropped before its end: the stages that ran hear so, and the future held the
        // only other handle on the chain.
        let hang = wrap(
            Mock::new("dubbo://h:1/S", |_| std::future::pending()),
            vec![Logged::filter("a", &log, false)],
        );
        let member = hang.clone().invoke_as_member(call("S", "m"));
        assert_eq!(Arc::strong_count(&hang), 2);
        let gave_up = tokio::time::timeout(Duration::from_millis(10), member).await;
        assert!(gave_up.is_err());
        assert_eq!(taken(&log), ["a before", "a after: dropped"]);
        assert_eq!(Arc::strong_count(&hang), 1);
    }

    /// An owned call (what a protocol server starts) runs the stages as a plain call does, in
    /// a future that can move to a task of its own, and its error is the chain's own: a
    /// provider does not name itself as a cluster member would.
    #[tokio::test]
    async fn an_owned_call_runs_the_stages_in_its_own_future_and_keeps_its_error_as_it_is() {
        let log = Log::default();
        let chain = refusing_chain(&log);
        let owned = chain.clone().invoke_owned(call("S", "m"));
        assert_eq!(Arc::strong_count(&chain), 2, "the call holds the chain");
        let e = tokio::spawn(owned)
            .await
            .expect("ran in a task of its own")
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Network);
        assert_eq!(e.provider(), None);
        assert_eq!(taken(&log), REFUSED_IN_ORDER);
        assert_eq!(Arc::strong_count(&chain), 1);
    }

    #[tokio::test]
    async fn a_stage_called_on_its_own_runs_the_same_way() {
        let log = Log::default();
        let p = Mock::ok("dubbo://h:1/S");
        let (_, a) = Logged::filter("a", &log, false);
        a.invoke(&*p, call("S", "m")).await.expect("ok");
        assert_eq!(taken(&log), ["a before", "a after: ok"]);
    }

    /// Every call's future holds a ticket per stage inline, and moves with the call: a
    /// ticket stays within a cache line (the rare, larger ones are boxed).
    #[test]
    fn a_ticket_fits_a_cache_line() {
        assert!(std::mem::size_of::<Ticket<'static>>() <= 64);
    }

    /// The consumer's default stages run in one future per call, kept under the size the C
    /// allocator serves from its per-thread cache (about 1 KiB).
    #[test]
    fn the_default_consumer_stages_are_one_small_future() {
        use crate::filter::{
            CircuitBreakerFilter, ConsumerContextFilter, MetricsFilter, TimeoutFilter,
        };
        let chain = wrap(
            Mock::ok("dubbo://h:1/S"),
            vec![
                (
                    "metrics",
                    Arc::new(MetricsFilter::consumer()) as Arc<dyn Filter>,
                ),
                ("context", Arc::new(ConsumerContextFilter)),
                ("timeout", Arc::new(TimeoutFilter::default())),
                ("circuitbreaker", Arc::new(CircuitBreakerFilter::default())),
            ],
        );
        let size = std::mem::size_of_val(&*chain.invoke(call("S", "m")));
        assert!(size <= 1024, "{size} bytes");
        // Also as a cluster's call of a provider, which holds the chain.
        let size = std::mem::size_of_val(&*chain.clone().invoke_as_member(call("S", "m")));
        assert!(size <= 1024, "{size} bytes as a member");
    }

    /// So do the provider's (`metrics` and `context`).
    #[test]
    fn the_default_provider_stages_are_one_small_future() {
        use crate::filter::{ContextFilter, MetricsFilter};
        let chain = wrap(
            Mock::ok("dubbo://h:1/S"),
            vec![
                (
                    "metrics",
                    Arc::new(MetricsFilter::provider()) as Arc<dyn Filter>,
                ),
                ("context", Arc::new(ContextFilter)),
            ],
        );
        let size = std::mem::size_of_val(&*chain.invoke(call("S", "m")));
        assert!(size <= 1024, "{size} bytes");
        // Also as the protocol server starts it, holding the chain.
        let size = std::mem::size_of_val(&*chain.clone().invoke_owned(call("S", "m")));
        assert!(size <= 1024, "{size} bytes owned");
    }
}
