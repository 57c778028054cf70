//! The pool's shutdown state machine.
//!
//! # States
//!
//! ```text
//!   Open ──shutdown──▶ Draining ──deadline / abort──▶ Stopping
//!     └───────────────────abort───────────────────────────▲
//! ```
//!
//! - **Open**: submits are accepted; workers take jobs until the queue is closed.
//! - **Draining**: the queue is closed (the caller closes it right after the
//!   transition); workers finish everything accepted and leave when their consumer
//!   says the queue is drained.
//! - **Stopping**: the `stop` signal has fired. Workers start nothing new: a job they
//!   receive is handed back unstarted, a running job is interrupted (its future
//!   dropped) and reported, and they leave. What is still queued is collected by the
//!   shutdown caller once every worker has left, or is blocked inside a job's code and
//!   was given up on (see `Shared::wait_stopped`).
//!
//! The state only moves forward (`fetch_max`). `live` counts workers still in their
//! loop; shutdown waits for it to reach zero, which it always does: a worker leaves
//! when its consumer returns `None` (closed and drained) or when `stop` fires, and it
//! waits on both at once.
//!
//! # Races
//!
//! - *Submit vs. shutdown*: a submit checks `is_open` and then pushes; the queue's own
//!   close decides the race (a push either is accepted before close, and so delivered,
//!   or fails with `Closed` and hands the job back). The state check only makes the
//!   common case fail fast.
//! - *A job finishing vs. stop*: the worker polls the job before the stop signal, so a
//!   job that completes in the same poll as `stop` fires is reported done, never both
//!   done and interrupted; one that does not is interrupted. Each job ends up in exactly
//!   one of: finished, interrupted, handed back.

use crate::signal::{Event, Latch, Signal};
use crewpool_core::sync::{AtomicU8, AtomicUsize, Ordering};

const OPEN: u8 = 0;
const DRAINING: u8 = 1;
const STOPPING: u8 = 2;

#[derive(Debug)]
pub(crate) struct Lifecycle {
    state: AtomicU8,
    /// Fired on entering Stopping.
    pub(crate) stop: Signal,
    /// Workers still in their loop.
    pub(crate) live: Latch,
    /// Notified each time a worker leaves its loop (after it counted itself out of
    /// `live`), for a stopping shutdown that waits for all but the blocked ones.
    pub(crate) exited: Event,
}

impl Lifecycle {
    pub(crate) fn new(workers: usize) -> Self {
        Lifecycle {
            state: AtomicU8::new(OPEN),
            stop: Signal::new(),
            live: Latch::new(workers),
            exited: Event::new(),
        }
    }

    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::SeqCst) == OPEN
    }

    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.state.load(Ordering::SeqCst) == STOPPING
    }

    /// Open → Draining. Returns whether this call made the move (so closes the queue).
    pub(crate) fn begin_drain(&self) -> bool {
        self.state
            .compare_exchange(OPEN, DRAINING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Any → Stopping, then fires `stop`.
    pub(crate) fn begin_stop(&self) {
        self.state.fetch_max(STOPPING, Ordering::SeqCst);
        self.stop.fire();
    }
}

/// Resize-down bookkeeping: tokens workers claim to leave.
///
/// # States and races
///
/// `tokens` is how many workers should still leave. A worker holds a listener on
/// `posted` made *before* it tries to claim a token at the top of its loop, so tokens
/// posted while it goes on to wait wake it. It keeps that listener from turn to turn
/// and makes a new one (before the claim) only once a post has notified it: a
/// listener made before an earlier claim is still made before this one. Claiming is a
/// CAS that never goes below zero, so exactly `tokens` workers leave, each after its
/// current job.
#[derive(Debug)]
pub(crate) struct Retire {
    tokens: AtomicUsize,
    pub(crate) posted: Event,
}

impl Retire {
    pub(crate) fn new() -> Self {
        Retire {
            tokens: AtomicUsize::new(0),
            posted: Event::new(),
        }
    }

    /// Claims one token if any is left. A worker asks before each job: with no
    /// resize down under way that is one load, inlined into its loop.
    #[inline]
    pub(crate) fn try_claim(&self) -> bool {
        match self.tokens.load(Ordering::SeqCst) {
            0 => false,
            tokens => self.claim(tokens),
        }
    }

    /// The compare-and-swap loop of [`try_claim`](Retire::try_claim), from the count
    /// it loaded.
    #[cold]
    fn claim(&self, mut tokens: usize) -> bool {
        while tokens > 0 {
            match self.tokens.compare_exchange_weak(
                tokens,
                tokens - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(actual) => tokens = actual,
            }
        }
        false
    }

    /// Takes back up to `count` unclaimed tokens; returns how many it took.
    pub(crate) fn withdraw(&self, count: usize) -> usize {
        let mut tokens = self.tokens.load(Ordering::SeqCst);
        loop {
            let taken = tokens.min(count);
            match self.tokens.compare_exchange_weak(
                tokens,
                tokens - taken,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return taken,
                Err(actual) => tokens = actual,
            }
        }
    }

    pub(crate) fn post(&self, count: usize) {
        self.tokens.fetch_add(count, Ordering::SeqCst);
        self.posted.notify_all();
    }
}
