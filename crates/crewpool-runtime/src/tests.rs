//! Loom models of the runtime's shutdown and accounting (`--cfg crewpool_loom`).
//!
//! Each model drives the real worker loop (`worker::run`), the real lifecycle and the
//! real shutdown report (`Shared::finish`) over a small queue made of loom types, so
//! loom explores every interleaving of the synchronisation the pool relies on. Run
//! them with `cargo xtask loom`.

mod loom_deadline;
mod loom_event;
mod loom_panic;
mod loom_resize;
mod loom_shutdown;
mod model_queue;

use std::future::Future;

use crewpool_core::{Queue, Worker};
use tokio_util::sync::CancellationToken;

use crate::policy::Policies;
use crate::shared::{Executor, Setup, Shared};
use crate::worker;
use crewpool_core::sync::{Arc, Mutex, lock};
use model_queue::ModelQueue;

/// A pool over a [`ModelQueue`] with `workers` places, no policies, whose workers the
/// model starts itself with [`worker_loop`].
fn model_pool<W: Worker<u32>>(work: W, workers: usize) -> Arc<Shared<ModelQueue, W>> {
    let setup = Setup {
        name: "model".into(),
        executor: Executor::Manual,
        policies: Policies::default(),
        cloner: None,
        token: CancellationToken::new(),
    };
    Arc::new(Shared::new(setup, ModelQueue::new(), work, workers, None))
}

/// Starts one worker's loop on a loom thread.
fn spawn_worker<W: Worker<u32>>(
    shared: &Arc<Shared<ModelQueue, W>>,
) -> loom::thread::JoinHandle<()> {
    let work = worker_loop(shared);
    loom::thread::spawn(move || loom::future::block_on(work))
}

/// One worker's loop, to run on a loom thread.
fn worker_loop<W: Worker<u32>>(
    shared: &Arc<Shared<ModelQueue, W>>,
) -> impl Future<Output = ()> + use<W> {
    let consumer = shared.queue.consumer().expect("consumer");
    let counters = shared.counters.add_worker();
    worker::run(Arc::clone(shared), consumer, counters, None)
}

/// A worker that records every job it runs, and the record.
fn recording_worker() -> (Arc<Mutex<Vec<u32>>>, impl Worker<u32>) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    let work = move |job: u32| {
        let log = Arc::clone(&log);
        async move {
            lock(&log).push(job);
            Ok::<_, std::convert::Infallible>(job)
        }
    };
    (ran, work)
}
