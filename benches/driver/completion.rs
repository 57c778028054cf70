//! Knowing when the last job finished, and what a run allocated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a run may take before the driver calls it hung. A hang guard only: a
/// healthy run of any workload takes seconds.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(300);

/// Reads the binary's heap-allocation count; set by a binary with a counting global
/// allocator (`benches/allocs.rs`).
static ALLOCATION_COUNTER: OnceLock<fn() -> u64> = OnceLock::new();

/// Installs the allocation counter read at the start and the end of each timed window.
pub(crate) fn set_allocation_counter(counter: fn() -> u64) {
    // Set once per process; a second call is the same function and may be ignored.
    let _ = ALLOCATION_COUNTER.set(counter);
}

fn allocations_now() -> Option<u64> {
    ALLOCATION_COUNTER.get().map(|counter| counter())
}

/// The start of a timed window: the clock, and the allocation count if there is one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    at: Instant,
    allocations: Option<u64>,
}

impl Start {
    /// Starts the clock now.
    pub(crate) fn now() -> Self {
        // Allocations first, so the clock does not include reading them.
        let allocations = allocations_now();
        Start {
            at: Instant::now(),
            allocations,
        }
    }
}

impl Start {
    /// Stops the clock now: the time and allocations since the start.
    pub(crate) fn finish(self) -> (Duration, Option<u64>) {
        let at = Instant::now();
        let allocations = allocations_now()
            .zip(self.allocations)
            .map(|(after, before)| after.saturating_sub(before));
        (at.duration_since(self.at), allocations)
    }
}

/// The end of a timed window, recorded by the job that finished last.
#[derive(Clone, Copy, Debug)]
struct End {
    at: Instant,
    allocations: Option<u64>,
}

/// Counts jobs down to zero; the job that reaches zero stops the clock and wakes the
/// waiter.
///
/// # States and races
///
/// `remaining` goes from the job count to 0; each job's `finish_one` is one
/// decrement. Exactly one decrement sees 1 (read-modify-writes of one atomic are
/// totally ordered even when `Relaxed`), and only that job records the end and sets
/// `done` under the mutex, so the waiter cannot miss it: it checks `done` under the
/// same mutex before sleeping. `fail` sets `done` too, so a run that cannot finish
/// (a sub-job refused) wakes the waiter with an error instead of hanging.
#[derive(Debug)]
pub(crate) struct Completion {
    remaining: AtomicU64,
    end: OnceLock<End>,
    failure: OnceLock<String>,
    done: Mutex<bool>,
    wake: Condvar,
}

impl Completion {
    /// A counter expecting `jobs` completions.
    pub(crate) fn new(jobs: u64) -> Self {
        Completion {
            remaining: AtomicU64::new(jobs),
            end: OnceLock::new(),
            failure: OnceLock::new(),
            done: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// A counter that lives for the rest of the process, for baselines whose jobs must
    /// be `'static` (`rayon::spawn`, `tokio::spawn`, `std::thread::spawn`): a
    /// reference costs their jobs nothing, where an `Arc` would cost a contended
    /// reference count per job. One small leak per run.
    pub(crate) fn leak(jobs: u64) -> &'static Self {
        Box::leak(Box::new(Self::new(jobs)))
    }

    /// Records one finished job.
    #[inline]
    pub(crate) fn finish_one(&self) {
        // Relaxed: see "States and races"; the end is published through the mutex.
        if self.remaining.fetch_sub(1, Ordering::Relaxed) == 1 {
            let end = End {
                at: Instant::now(),
                allocations: allocations_now(),
            };
            let _ = self.end.set(end);
            self.signal();
        }
    }

    /// Gives up on the run: the waiter wakes with `why`.
    pub(crate) fn fail(&self, why: String) {
        let _ = self.failure.set(why);
        self.signal();
    }

    fn signal(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Waits for the last job; returns the time and allocations since `start`.
    ///
    /// # Errors
    ///
    /// When a job called [`fail`](Completion::fail), or nothing finished within
    /// [`HANG_GUARD`].
    pub(crate) fn wait(&self, start: Start) -> Result<(Duration, Option<u64>), String> {
        self.wait_for(start, HANG_GUARD)
    }

    /// Like [`wait`](Completion::wait), giving up after `limit` instead of
    /// [`HANG_GUARD`].
    ///
    /// # Errors
    ///
    /// As for [`wait`](Completion::wait).
    pub(crate) fn wait_for(
        &self,
        start: Start,
        limit: Duration,
    ) -> Result<(Duration, Option<u64>), String> {
        let guard = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, timeout) = self
            .wake
            .wait_timeout_while(guard, limit, |done| !*done)
            .unwrap_or_else(PoisonError::into_inner);
        drop(guard);
        if let Some(why) = self.failure.get() {
            return Err(why.clone());
        }
        match self.end.get() {
            Some(end) => {
                let allocations = match (start.allocations, end.allocations) {
                    (Some(before), Some(after)) => Some(after.saturating_sub(before)),
                    _ => None,
                };
                Ok((end.at.duration_since(start.at), allocations))
            }
            None if timeout.timed_out() => Err(format!(
                "{} jobs still unfinished after {limit:?}",
                self.remaining.load(Ordering::Relaxed)
            )),
            None => Err("woken without an end or a failure".to_owned()),
        }
    }
}

/// A door that blocks workers until it opens, to hold queued jobs unstarted while the
/// resident set is measured (`queued-1m`).
///
/// States: closed (workers that `enter` count themselves in and block) → open (they
/// return). `wait_entered` blocks the measuring thread until `n` workers are inside,
/// so no queued job can start before the measurement.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Counts a worker in and blocks it until the gate opens.
    pub(crate) fn enter(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        self.changed.notify_all();
        let _state = self
            .changed
            .wait_timeout_while(state, HANG_GUARD, |(_, open)| !*open)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Waits until `n` workers are inside.
    ///
    /// # Errors
    ///
    /// When fewer came within [`HANG_GUARD`].
    pub(crate) fn wait_entered(&self, n: usize) -> Result<(), String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, HANG_GUARD, |(entered, _)| *entered < n)
            .unwrap_or_else(PoisonError::into_inner);
        if state.0 < n {
            return Err(format!(
                "hung: only {} of {n} workers reached the gate",
                state.0
            ));
        }
        Ok(())
    }

    /// Lets every worker through, now and later.
    pub(crate) fn open(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_all();
    }
}
