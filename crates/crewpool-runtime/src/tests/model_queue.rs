//! A small unbounded queue built on loom types, for the models. Push, pop and close
//! are linearised by one mutex; consumers register wakers under it, so the queue adds
//! no races of its own and the models test the runtime's.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use crewpool_core::{Consumer, Envelope, Handover, JobId, PushError, Queue, QueueError, Received};

use crewpool_core::sync::{Arc, Mutex, lock};

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Envelope<u32>>,
    closed: bool,
    waiters: Vec<Waker>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct ModelQueue {
    state: Arc<Mutex<State>>,
}

impl ModelQueue {
    pub(super) fn new() -> Self {
        ModelQueue::default()
    }
}

/// An envelope for job `job`, numbered by it.
pub(super) fn envelope(job: u32) -> Envelope<u32> {
    Envelope::new(job).with_id(JobId(u64::from(job)))
}

fn wake_all(waiters: Vec<Waker>) {
    for waker in waiters {
        waker.wake();
    }
}

impl Queue for ModelQueue {
    type Job = u32;
    type Consumer = ModelConsumer;

    async fn push(&self, envelope: Envelope<u32>) -> Result<JobId, PushError<Envelope<u32>>> {
        let id = envelope.id;
        let waiters = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(PushError::Closed(envelope));
            }
            state.items.push_back(envelope);
            std::mem::take(&mut state.waiters)
        };
        wake_all(waiters);
        Ok(id)
    }

    fn consumer(&self) -> Result<ModelConsumer, QueueError> {
        Ok(ModelConsumer {
            state: Arc::clone(&self.state),
        })
    }

    fn depth(&self) -> usize {
        lock(&self.state).items.len()
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    fn close(&self) {
        let waiters = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.waiters)
        };
        wake_all(waiters);
    }

    fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

#[derive(Debug)]
pub(super) struct ModelConsumer {
    state: Arc<Mutex<State>>,
}

impl Consumer for ModelConsumer {
    type Job = u32;
    type Delivery = Handover;

    async fn next(&mut self) -> Option<Received<u32, Handover>> {
        poll_fn(|cx| {
            let mut state = lock(&self.state);
            if let Some(envelope) = state.items.pop_front() {
                return Poll::Ready(Some(received(envelope)));
            }
            if state.closed {
                return Poll::Ready(None);
            }
            if !state.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    fn try_next(&mut self) -> Option<Received<u32, Handover>> {
        lock(&self.state).items.pop_front().map(received)
    }
}

fn received(envelope: Envelope<u32>) -> Received<u32, Handover> {
    Received {
        envelope,
        delivery: Handover,
    }
}
