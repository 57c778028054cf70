//! Which pool worker, if any, the current thread is running a job for.
//!
//! A worker marks the thread while it polls a job (and while it calls the worker
//! function that makes the job's future), so that a submit made from inside the job,
//! to the job's own pool, is recognised: such a submit never waits for room, because
//! room in the pool's queue is made by the pool's own workers, one of which is waiting
//! in it (see `Pool::submit`, "Submitting from inside a job").
//!
//! The mark is a worker's identity (the address of its context support), so two pools,
//! or two workers of one pool sharing a runtime thread, never see each other's. Only
//! code polled *inside* the job's own poll sees it: a task the job spawns runs
//! unmarked.

use std::cell::Cell;

#[cfg(not(crewpool_loom))]
std::thread_local! {
    static POLLING: Cell<usize> = const { Cell::new(0) };
}

// loom runs model threads as coroutines on one OS thread: a plain thread-local would
// be shared between them.
#[cfg(crewpool_loom)]
loom::thread_local! {
    static POLLING: Cell<usize> = Cell::new(0);
}

/// The mark of one worker's job poll, removed (restoring the previous mark) on drop.
#[derive(Debug)]
pub(crate) struct Polling {
    previous: usize,
}

impl Polling {
    /// Marks the thread as polling a job of worker `worker` (non-zero).
    #[inline]
    pub(crate) fn enter(worker: usize) -> Self {
        Polling {
            previous: POLLING.with(|mark| mark.replace(worker)),
        }
    }
}

impl Drop for Polling {
    #[inline]
    fn drop(&mut self) {
        POLLING.with(|mark| mark.set(self.previous));
    }
}

/// The worker whose job the thread is polling now; 0 outside any job.
#[inline]
pub(crate) fn worker() -> usize {
    POLLING.with(Cell::get)
}
