//! The deques the backend is built on: [crossbeam-deque]'s normally, and under
//! `--cfg crewpool_loom` a stand-in with the same small interface made of loom types.
//!
//! crossbeam-deque is not loom-instrumented, so loom cannot see inside it. The models
//! do not need to: crossbeam-deque is tested on its own, and what they check is the
//! backend's protocol around it (sleeping and waking, the closed flag, the count of
//! accepted jobs, capacity). The stand-in keeps the properties that protocol relies
//! on and nothing more:
//!
//! - each deque is linearisable (one loom mutex per deque);
//! - finding the ring empty takes no lock: as in crossbeam-queue's `ArrayQueue`, it
//!   is a `SeqCst` fence and then a load (here of the length, kept in an atomic beside
//!   the mutex), which a push does not synchronise with. A lock there would order
//!   every search after the push before it and hide a missing fence in the wake-up
//!   protocol; without it the models catch one (`notify_one` or `notify_many`
//!   without its fence, which they missed with a lock). A pop that finds the ring not
//!   empty takes its lock and waits for it, never answering `Retry`, as crossbeam's
//!   waits out a racing push or pop. The injector keeps its lock for its empty check:
//!   lock-free, the models that steal across consumers grew past loom's bound on the
//!   length of a run;
//! - a batch steal takes jobs out of the source and puts all but one into the
//!   thief's local deque in two separate steps, so, as in crossbeam, a stolen batch
//!   is briefly in neither deque;
//! - a thief that meets a busy injector or peer deque gets [`Steal::Retry`], as
//!   crossbeam's does when it loses a race, after a yield to the other model threads
//!   (the search tries again without blocking: without the yield, a model whose
//!   preemptions are spent would spin on it).
//!
//! The backend uses only the items here, so swapping the implementation changes
//! nothing else.
//!
//! [crossbeam-deque]: https://docs.rs/crossbeam-deque

#[cfg(not(crewpool_loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker};

#[cfg(crewpool_loom)]
pub(crate) use model::{Injector, Ring, Steal, Stealer, Worker};

#[cfg(not(crewpool_loom))]
pub(crate) use ring::Ring;

/// A bounded queue's front door: crossbeam-queue's `ArrayQueue`, a fixed array of
/// `capacity` places allocated once. Pushing and popping cost a compare-and-swap and a
/// store each, with no allocation (the injector allocates and zeroes a block of 63
/// places every 63 jobs) and nothing to wake (the backend's own wait lists do that).
#[cfg(not(crewpool_loom))]
mod ring {
    use crossbeam_queue::ArrayQueue;

    use super::Steal;

    pub(crate) struct Ring<T>(ArrayQueue<T>);

    impl<T> Ring<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Ring(ArrayQueue::new(capacity))
        }

        /// Adds `item` at the back; gives it back if every place is taken.
        #[inline]
        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            self.0.push(item)
        }

        /// Takes the front item. Never `Retry`: a lost race is retried inside.
        #[inline]
        pub(crate) fn pop(&self) -> Steal<T> {
            self.0.pop().map_or(Steal::Empty, Steal::Success)
        }

        pub(crate) fn len(&self) -> usize {
            self.0.len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }
}

#[cfg(crewpool_loom)]
mod model {
    use std::collections::VecDeque;

    use crewpool_core::sync::{Arc, AtomicUsize, Mutex, MutexGuard, Ordering, fence, lock, spin};

    /// The most a batch steal takes, as in crossbeam (which takes half, up to 32).
    const MAX_BATCH: usize = 32;

    /// The outcome of a steal, like `crossbeam_deque::Steal`.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        Retry,
    }

    /// A multi-producer, multi-consumer FIFO queue (`crossbeam_deque::Injector`).
    #[derive(Debug)]
    pub(crate) struct Injector<T> {
        items: Mutex<VecDeque<T>>,
    }

    impl<T> Default for Injector<T> {
        fn default() -> Self {
            Injector {
                items: Mutex::new(VecDeque::new()),
            }
        }
    }

    /// A FIFO's length as crossbeam-queue's `ArrayQueue` sees it: a `SeqCst` fence,
    /// then a plain load, with no lock (see the module docs).
    fn seen_len(len: &AtomicUsize) -> usize {
        fence(Ordering::SeqCst);
        len.load(Ordering::Relaxed)
    }

    /// A deque another thread holds: `Retry`, after a yield (see the module docs).
    fn busy<T>() -> Steal<T> {
        spin();
        Steal::Retry
    }

    /// Writes the length of `items` to `len` before the lock is released.
    fn publish<T>(items: &MutexGuard<'_, VecDeque<T>>, len: &AtomicUsize) {
        len.store(items.len(), Ordering::Release);
    }

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn push(&self, item: T) {
            lock(&self.items).push_back(item);
        }

        pub(crate) fn steal(&self) -> Steal<T> {
            match self.items.try_lock() {
                Err(_) => busy(),
                Ok(mut items) => items.pop_front().map_or(Steal::Empty, Steal::Success),
            }
        }

        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            steal_batch_and_pop(&self.items, dest)
        }

        pub(crate) fn len(&self) -> usize {
            lock(&self.items).len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.items).is_empty()
        }
    }

    /// Takes half of `source` (at most [`MAX_BATCH`]), returns the first and moves the
    /// rest into `dest` in a second step.
    fn steal_batch_and_pop<T>(source: &Mutex<VecDeque<T>>, dest: &Worker<T>) -> Steal<T> {
        let mut batch = match source.try_lock() {
            Err(_) => return busy(),
            Ok(mut items) => {
                let take = items.len().div_ceil(2).min(MAX_BATCH);
                items.drain(..take).collect::<VecDeque<T>>()
            }
        };
        let Some(first) = batch.pop_front() else {
            return Steal::Empty;
        };
        if !batch.is_empty() {
            lock(&dest.items).extend(batch);
        }
        Steal::Success(first)
    }

    /// A bounded queue's ring (`crate::deques::Ring`): a FIFO of at most `capacity`
    /// items, found empty without a lock (see the module docs).
    #[derive(Debug)]
    pub(crate) struct Ring<T> {
        items: Mutex<VecDeque<T>>,
        /// `items.len()`, written under the lock: see [`seen_len`].
        len: AtomicUsize,
        capacity: usize,
    }

    impl<T> Ring<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Ring {
                items: Mutex::new(VecDeque::new()),
                len: AtomicUsize::new(0),
                capacity,
            }
        }

        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            let mut items = lock(&self.items);
            if items.len() >= self.capacity {
                return Err(item);
            }
            items.push_back(item);
            publish(&items, &self.len);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Steal<T> {
            if seen_len(&self.len) == 0 {
                return Steal::Empty;
            }
            // Never `Retry`: crossbeam-queue's pop waits out a racing push or pop.
            let mut items = lock(&self.items);
            let first = items.pop_front();
            publish(&items, &self.len);
            first.map_or(Steal::Empty, Steal::Success)
        }

        pub(crate) fn len(&self) -> usize {
            seen_len(&self.len)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    /// A consumer's own FIFO deque (`crossbeam_deque::Worker::new_fifo`).
    #[derive(Debug)]
    pub(crate) struct Worker<T> {
        items: Arc<Mutex<VecDeque<T>>>,
    }

    impl<T> Worker<T> {
        pub(crate) fn new_fifo() -> Self {
            Worker {
                items: Arc::new(Mutex::new(VecDeque::new())),
            }
        }

        pub(crate) fn pop(&self) -> Option<T> {
            lock(&self.items).pop_front()
        }

        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer {
                items: Arc::clone(&self.items),
            }
        }

        pub(crate) fn len(&self) -> usize {
            lock(&self.items).len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.items).is_empty()
        }
    }

    /// Steals from another consumer's deque (`crossbeam_deque::Stealer`).
    #[derive(Debug)]
    pub(crate) struct Stealer<T> {
        items: Arc<Mutex<VecDeque<T>>>,
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal_batch_and_pop(&self, dest: &Worker<T>) -> Steal<T> {
            steal_batch_and_pop(&self.items, dest)
        }

        pub(crate) fn len(&self) -> usize {
            lock(&self.items).len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            lock(&self.items).is_empty()
        }
    }
}
