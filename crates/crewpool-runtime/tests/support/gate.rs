//! A gate for jobs, shared by the runtime's tests: each job announces that it started,
//! then waits for a permit from the test. The test decides when workers are free,
//! without sleeping.

use std::convert::Infallible;
use std::sync::Arc;

use crewpool_core::Worker;
use tokio::sync::{Semaphore, mpsc};

/// Hands out permits to gated jobs and hears when they start.
pub(crate) struct Gate {
    permits: Arc<Semaphore>,
    started_tx: mpsc::UnboundedSender<u64>,
    started: mpsc::UnboundedReceiver<u64>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let (started_tx, started) = mpsc::unbounded_channel();
        Gate {
            permits: Arc::new(Semaphore::new(0)),
            started_tx,
            started,
        }
    }

    /// A worker whose job `n` announces itself, waits for a permit, and returns `n`.
    pub(crate) fn worker(&self) -> impl Worker<u64, Output = u64, Error = Infallible> + use<> {
        let (permits, started) = (Arc::clone(&self.permits), self.started_tx.clone());
        move |n: u64| {
            let (permits, started) = (Arc::clone(&permits), started.clone());
            async move {
                let _ = started.send(n);
                permits.acquire().await.expect("gate open").forget();
                Ok(n)
            }
        }
    }

    /// Lets `count` more jobs through.
    pub(crate) fn open(&self, count: usize) {
        self.permits.add_permits(count);
    }

    /// Waits until the next job has started; returns it.
    pub(crate) async fn started(&mut self) -> u64 {
        self.started.recv().await.expect("the gate keeps a sender")
    }
}
