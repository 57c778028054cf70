//! Model 4: a job panicking while the pool shuts down.
//!
//! Guards against: a panic escaping the worker loop (the worker would die with jobs
//! still queued, and shutdown would wait forever or lose them) and a panicked job that
//! is not counted. Shutdown must complete and count the panic.

use loom::future::block_on;

use super::model_queue::envelope;
use super::{model_pool, spawn_worker};
use crewpool_core::Queue;

#[test]
fn a_job_panicking_during_shutdown_is_counted_and_shutdown_completes() {
    // The job's panic is expected; keep every other panic (loom's findings) loud.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"job 1 exploded") {
            default_hook(info);
        }
    }));
    loom::model(|| {
        let work = |job: u32| async move {
            if job == 1 {
                panic!("job 1 exploded");
            }
            Ok::<_, std::convert::Infallible>(job)
        };
        let shared = model_pool(work, 1);
        for job in [1, 2] {
            block_on(shared.submit(envelope(job))).expect("open queue");
        }
        let worker = spawn_worker(&shared);

        let report = block_on(shared.shutdown());
        worker.join().expect("the worker thread survives the panic");

        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.stats.panicked, 1, "{report:?}");
        assert_eq!(report.stats.completed, 1, "{report:?}");
        assert_eq!(shared.queue.depth(), 0);
    });
}
