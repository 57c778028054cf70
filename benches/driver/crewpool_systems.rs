//! crewpool's backends, all through one generic driver over the `Queue` trait.
//!
//! Adding a backend: implement [`BenchQueue`] for its queue (how to make it bounded
//! and unbounded) and add its arm to `driver::run`.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use crewpool::backend::Queue;
use crewpool::{JobContext, Pool, PoolBuilder, Worker};

use super::completion::{Gate, HANG_GUARD, Start};

/// How long `idle-10k` may take to start its workers and have them meet. Healthy
/// runs take well under a second; some backends take minutes with 10,000 workers,
/// and the report says so instead of waiting.
const IDLE_GUARD: std::time::Duration = std::time::Duration::from_secs(60);
use super::proc_status;
use super::workload::{
    BATCH, CAPACITY, FORK_DEPTH, IDLE_WORKERS, IO_CONCURRENCY, IO_JOBS, IO_SLEEP, PRODUCERS,
    QUEUED_JOBS, RESIZE_WARMUP, RESIZES, Shape, TINY_JOBS, WORKERS, fork_join_jobs, produce, spin,
};
use super::{Completion, Measurement, Workload, err, measurement, tokio_runtime};

/// An in-memory crewpool backend the driver can make queues of.
pub(crate) trait BenchQueue: Queue<Job = u64> + Sized {
    /// A queue of `shape`.
    fn make(shape: Shape) -> Self;
}

impl BenchQueue for crewpool::deque::DequeQueue<u64> {
    fn make(shape: Shape) -> Self {
        match shape {
            Shape::Bounded(capacity) => Self::bounded(capacity),
            Shape::Unbounded => Self::unbounded(),
        }
    }
}

impl BenchQueue for crewpool::flume::FlumeQueue<u64> {
    fn make(shape: Shape) -> Self {
        match shape {
            Shape::Bounded(capacity) => Self::bounded(capacity),
            Shape::Unbounded => Self::unbounded(),
        }
    }
}

/// Runs `workload` on a pool over queues of type `Q`.
pub(crate) fn run<Q: BenchQueue>(workload: Workload) -> Result<Measurement, String> {
    match workload {
        Workload::Tiny => cpu::<Q>(TINY_JOBS, 1, 1),
        Workload::MultiProducer => cpu::<Q>(TINY_JOBS, PRODUCERS, 1),
        Workload::Io => io::<Q>(),
        Workload::ForkJoin => fork_join::<Q>(),
        Workload::Queued => queued::<Q>(),
        Workload::IdleWorkers => idle::<Q>(),
        Workload::Resize => resize::<Q>(),
        Workload::RedisNoop | Workload::RedisEnqueue => {
            Err(format!("{workload} is not an in-memory workload"))
        }
    }
}

/// Runs `workload` with its producers spawning jobs in batches of [`BATCH`]
/// (`Pool::spawn_all`): `tiny` and `multi-producer` only.
pub(crate) fn run_batched<Q: BenchQueue>(workload: Workload) -> Result<Measurement, String> {
    match workload {
        Workload::Tiny => cpu::<Q>(TINY_JOBS, 1, BATCH),
        Workload::MultiProducer => cpu::<Q>(TINY_JOBS, PRODUCERS, BATCH),
        other => Err(format!("{other} is not run in batches")),
    }
}

/// A current-thread tokio runtime, to drive async submits from a plain thread.
pub(crate) fn local_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)
}

/// The CPU job, then one completion.
struct Spin {
    done: Arc<Completion>,
}

impl Worker<u64> for Spin {
    type Output = ();
    type Error = Infallible;

    async fn run(&self, seed: u64, _cx: JobContext<u64>) -> Result<(), Infallible> {
        black_box(spin(black_box(seed)));
        self.done.finish_one();
        Ok(())
    }
}

/// Shuts `pool` down and checks it ran exactly `jobs` jobs, all successfully.
pub(crate) fn teardown<Q: Queue<Job = u64>, W: Worker<u64>>(
    runtime: &tokio::runtime::Runtime,
    pool: &Pool<Q, W>,
    jobs: u64,
) -> Result<(), String> {
    teardown_within(runtime, pool, jobs, HANG_GUARD)
}

/// [`teardown`], giving up after `limit`.
fn teardown_within<Q: Queue<Job = u64>, W: Worker<u64>>(
    runtime: &tokio::runtime::Runtime,
    pool: &Pool<Q, W>,
    jobs: u64,
    limit: std::time::Duration,
) -> Result<(), String> {
    let report = runtime
        .block_on(async { tokio::time::timeout(limit, pool.shutdown()).await })
        .map_err(|_| format!("every job finished, but shutdown did not return within {limit:?}"))?;
    let stats = report.stats;
    if !report.is_complete() || stats.completed != jobs || stats.finished() != jobs {
        return Err(format!(
            "the pool did not run exactly {jobs} jobs successfully: {report}"
        ));
    }
    Ok(())
}

/// `tiny` and `multi-producer`: CPU jobs on dedicated worker threads, a bounded queue.
/// The job is a plain function ([`crewpool::plain`]): what CPU-bound work on dedicated
/// threads is written as, run without a future per job. Each producer spawns its jobs
/// one by one (`batch` 1) or in batches of `batch` (`Pool::spawn_all`).
fn cpu<Q: BenchQueue>(jobs: u64, producers: u64, batch: u64) -> Result<Measurement, String> {
    let done = Arc::new(Completion::new(jobs));
    let finished = Arc::clone(&done);
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .dedicated_threads()
        .queue(Q::make(Shape::Bounded(CAPACITY)))
        .build(crewpool::plain(move |seed: u64, _cx: JobContext<u64>| {
            black_box(spin(black_box(seed)));
            finished.finish_one();
            Ok::<(), Infallible>(())
        }))
        .map_err(err)?;
    // Each producer thread drives its submits on a runtime of its own, built before
    // the clock starts.
    let runtimes = (0..producers)
        .map(|_| local_runtime())
        .collect::<Result<Vec<_>, _>>()?;
    let start = Start::now();
    produce(producers, jobs, |producer, range| {
        runtimes[producer].block_on(async {
            if batch <= 1 {
                for job in range {
                    pool.spawn(job).await.map_err(err)?;
                }
                return Ok(());
            }
            let mut next = range.start;
            while next < range.end {
                let end = range.end.min(next + batch);
                pool.spawn_all(next..end).await.map_err(err)?;
                next = end;
            }
            Ok(())
        })
    })?;
    let measured = measurement(jobs, &done, start)?;
    teardown(&runtimes[0], &pool, jobs)?;
    Ok(measured)
}

/// Sleeps, then one completion.
struct Sleep {
    done: Arc<Completion>,
}

impl Worker<u64> for Sleep {
    type Output = ();
    type Error = Infallible;

    async fn run(&self, _job: u64, _cx: JobContext<u64>) -> Result<(), Infallible> {
        tokio::time::sleep(IO_SLEEP).await;
        self.done.finish_one();
        Ok(())
    }
}

/// `io`: 100 worker tasks on a 2-thread tokio runtime, each job an async sleep.
fn io<Q: BenchQueue>() -> Result<Measurement, String> {
    let runtime = tokio_runtime()?;
    let done = Arc::new(Completion::new(IO_JOBS));
    let pool = PoolBuilder::new()
        .workers(IO_CONCURRENCY)
        .runtime(runtime.handle().clone())
        .queue(Q::make(Shape::Bounded(CAPACITY)))
        .build(Sleep {
            done: Arc::clone(&done),
        })
        .map_err(err)?;
    let start = Start::now();
    runtime.block_on(async {
        for job in 0..IO_JOBS {
            pool.spawn(job).await.map_err(err)?;
        }
        Ok::<_, String>(())
    })?;
    let measured = measurement(IO_JOBS, &done, start)?;
    teardown(&runtime, &pool, IO_JOBS)?;
    Ok(measured)
}

/// A fork-join tree node, a plain function (as `tiny`'s job): spawns its two children
/// through its context, spins, one completion.
fn node(done: Arc<Completion>) -> impl Worker<u64, Output = (), Error = String> {
    crewpool::plain(move |depth: u64, cx: JobContext<u64>| {
        if depth > 0 {
            for _ in 0..2 {
                if let Err(error) = cx.spawn(depth - 1) {
                    let why = format!("a sub-job was refused: {error}");
                    done.fail(why.clone());
                    return Err(why);
                }
            }
        }
        black_box(spin(black_box(depth ^ cx.id().0)));
        done.finish_one();
        Ok(())
    })
}

/// `fork-join`: one root job; every job spawns its children through its context.
fn fork_join<Q: BenchQueue>() -> Result<Measurement, String> {
    let jobs = fork_join_jobs(FORK_DEPTH);
    let done = Arc::new(Completion::new(jobs));
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .dedicated_threads()
        .queue(Q::make(Shape::Unbounded))
        .build(node(Arc::clone(&done)))
        .map_err(err)?;
    let runtime = local_runtime()?;
    let start = Start::now();
    runtime.block_on(pool.spawn(FORK_DEPTH)).map_err(err)?;
    let measured = measurement(jobs, &done, start)?;
    teardown(&runtime, &pool, jobs)?;
    Ok(measured)
}

/// The job value that holds a worker at the gate in `queued-1m`.
const GATE_JOB: u64 = u64::MAX;

/// `Spin`, except that [`GATE_JOB`] waits at the gate (and is not counted).
struct Gated {
    done: Arc<Completion>,
    gate: Arc<Gate>,
}

impl Worker<u64> for Gated {
    type Output = ();
    type Error = Infallible;

    async fn run(&self, job: u64, _cx: JobContext<u64>) -> Result<(), Infallible> {
        if job == GATE_JOB {
            // Blocks this worker's own thread (dedicated threads): that is the point.
            self.gate.enter();
            return Ok(());
        }
        black_box(spin(black_box(job)));
        self.done.finish_one();
        Ok(())
    }
}

/// `queued-1m`: hold both workers at a gate, queue a million jobs, measure, open.
fn queued<Q: BenchQueue>() -> Result<Measurement, String> {
    let done = Arc::new(Completion::new(QUEUED_JOBS));
    let gate = Arc::new(Gate::default());
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .dedicated_threads()
        .queue(Q::make(Shape::Unbounded))
        .build(Gated {
            done: Arc::clone(&done),
            gate: Arc::clone(&gate),
        })
        .map_err(err)?;
    let runtime = local_runtime()?;
    runtime.block_on(async {
        for _ in 0..WORKERS {
            pool.spawn(GATE_JOB).await.map_err(err)?;
        }
        Ok::<_, String>(())
    })?;
    gate.wait_entered(WORKERS)?;
    let before = proc_status::rss_kb();
    let start = Start::now();
    let submitted = runtime.block_on(async {
        for job in 0..QUEUED_JOBS {
            pool.spawn(job).await.map_err(err)?;
        }
        Ok::<_, String>(())
    });
    let queued = proc_status::rss_kb();
    gate.open();
    submitted?;
    let (elapsed, allocations) = done.wait(start)?;
    teardown(&runtime, &pool, QUEUED_JOBS + WORKERS as u64)?;
    Ok(Measurement {
        jobs: QUEUED_JOBS,
        elapsed,
        allocations,
        held_kb: before.zip(queued).map(|(b, q)| q.saturating_sub(b)),
    })
}

/// Waits until every worker holds one job, then one completion.
struct Meet {
    done: Arc<Completion>,
    all: Arc<tokio::sync::Barrier>,
}

impl Worker<u64> for Meet {
    type Output = ();
    type Error = Infallible;

    async fn run(&self, _job: u64, _cx: JobContext<u64>) -> Result<(), Infallible> {
        self.all.wait().await;
        self.done.finish_one();
        Ok(())
    }
}

/// `idle-10k`: 10,000 worker tasks that all start, meet, and then sit idle.
fn idle<Q: BenchQueue>() -> Result<Measurement, String> {
    let before = proc_status::rss_kb();
    let runtime = tokio_runtime()?;
    let jobs = IDLE_WORKERS as u64;
    let done = Arc::new(Completion::new(jobs));
    let pool = PoolBuilder::new()
        .workers(IDLE_WORKERS)
        .runtime(runtime.handle().clone())
        .queue(Q::make(Shape::Bounded(CAPACITY)))
        .build(Meet {
            done: Arc::clone(&done),
            all: Arc::new(tokio::sync::Barrier::new(IDLE_WORKERS)),
        })
        .map_err(err)?;
    let start = Start::now();
    let met = runtime
        .block_on(async {
            tokio::time::timeout(IDLE_GUARD, async {
                for job in 0..jobs {
                    pool.spawn(job).await.map_err(err)?;
                }
                Ok::<_, String>(())
            })
            .await
        })
        .map_err(|_| format!("could not even submit the jobs within {IDLE_GUARD:?}"))
        .and_then(|submitted| submitted)
        .and_then(|()| done.wait_for(start, IDLE_GUARD))
        .and_then(|met| {
            let idle = proc_status::rss_kb();
            teardown_within(&runtime, &pool, jobs, IDLE_GUARD)?;
            Ok((met, idle))
        });
    let ((elapsed, allocations), idle) = match met {
        Ok(met) => met,
        Err(why) => {
            // Do not wait for workers that may take minutes more to stop: leave them
            // to the process's exit.
            std::mem::forget(pool);
            runtime.shutdown_background();
            return Err(format!("{IDLE_WORKERS} workers: {why}"));
        }
    };
    Ok(Measurement {
        jobs,
        elapsed,
        allocations,
        held_kb: before.zip(idle).map(|(b, i)| i.saturating_sub(b)),
    })
}

/// `resize-10k`: grows the pool by one worker and shrinks it back, again and again,
/// and reports how much the resident set grew after a warm-up.
fn resize<Q: BenchQueue>() -> Result<Measurement, String> {
    let runtime = tokio_runtime()?;
    let done = Arc::new(Completion::new(RESIZES + RESIZE_WARMUP));
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .runtime(runtime.handle().clone())
        .queue(Q::make(Shape::Bounded(CAPACITY)))
        .build(Spin {
            done: Arc::clone(&done),
        })
        .map_err(err)?;
    let one_round = |job: u64| -> Result<(), String> {
        pool.resize(WORKERS + 1).map_err(err)?;
        runtime.block_on(pool.spawn(job)).map_err(err)?;
        pool.resize(WORKERS).map_err(err)?;
        // Waits (bounded) for the worker asked to leave to have left.
        let began = std::time::Instant::now();
        while pool.stats().workers != WORKERS {
            if began.elapsed() > HANG_GUARD {
                return Err(format!("a worker did not leave within {HANG_GUARD:?}"));
            }
            std::thread::yield_now();
        }
        Ok(())
    };
    for job in 0..RESIZE_WARMUP {
        one_round(job)?;
    }
    let before = proc_status::rss_kb();
    let start = Start::now();
    for job in RESIZE_WARMUP..RESIZE_WARMUP + RESIZES {
        one_round(job)?;
    }
    let after = proc_status::rss_kb();
    let (elapsed, allocations) = done.wait(start)?;
    teardown(&runtime, &pool, RESIZES + RESIZE_WARMUP)?;
    Ok(Measurement {
        jobs: RESIZES,
        elapsed,
        allocations,
        held_kb: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
    })
}
