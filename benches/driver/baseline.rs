//! The baselines: the same workloads written the way a programmer would without
//! crewpool.
//!
//! The hand-written pools are typed like crewpool's (the channel carries the job's
//! data, the workers run one fixed function), not boxed closures, so they are the
//! fastest honest version of the pattern: zero allocations per job.

use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use super::completion::{Gate, Start};
use super::proc_status;
use super::workload::{
    CAPACITY, FORK_DEPTH, IDLE_WORKERS, IO_CONCURRENCY, IO_JOBS, IO_SLEEP, PRODUCERS, QUEUED_JOBS,
    Shape, THREAD_PER_JOB_JOBS, TINY_JOBS, WORKERS, fork_join_jobs, produce, spin,
};
use super::{Completion, Measurement, Workload, err, measurement, tokio_runtime};

fn not_run(system: &str, workload: Workload) -> Result<Measurement, String> {
    Err(format!("{system} does not run the {workload} workload"))
}

/// Sets what the resident set grew by since `before` (`idle-10k`).
fn held(before: Option<u64>, mut measured: Measurement) -> Result<Measurement, String> {
    measured.held_kb = before
        .zip(proc_status::rss_kb())
        .map(|(b, now)| now.saturating_sub(b));
    Ok(measured)
}

/// The CPU job, then one completion.
#[inline]
fn cpu_job(seed: u64, done: &Completion) {
    black_box(spin(black_box(seed)));
    done.finish_one();
}

// ---------------------------------------------------------------------------------
// rayon::spawn

fn rayon_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(err)
}

/// A fork-join node on rayon: `rayon::spawn` inside a pool spawns onto that pool.
fn rayon_node(depth: u64, done: &'static Completion) {
    if depth > 0 {
        for _ in 0..2 {
            rayon::spawn(move || rayon_node(depth - 1, done));
        }
    }
    cpu_job(depth, done);
}

/// `rayon::spawn` (on a pool of the workload's size; `ThreadPool::spawn` is the same
/// call on an explicit pool).
pub(crate) fn rayon_spawn(workload: Workload) -> Result<Measurement, String> {
    match workload {
        Workload::Tiny | Workload::MultiProducer => {
            let producers = workload.producers();
            let pool = rayon_pool(WORKERS)?;
            let done = Completion::leak(TINY_JOBS);
            let start = Start::now();
            produce(producers, TINY_JOBS, |_, range| {
                for job in range {
                    pool.spawn(move || cpu_job(job, done));
                }
                Ok(())
            })?;
            measurement(TINY_JOBS, done, start)
        }
        Workload::Io => {
            let pool = rayon_pool(IO_CONCURRENCY)?;
            let done = Completion::leak(IO_JOBS);
            let start = Start::now();
            for _ in 0..IO_JOBS {
                pool.spawn(move || {
                    std::thread::sleep(IO_SLEEP);
                    done.finish_one();
                });
            }
            measurement(IO_JOBS, done, start)
        }
        Workload::ForkJoin => {
            let pool = rayon_pool(WORKERS)?;
            let jobs = fork_join_jobs(FORK_DEPTH);
            let done = Completion::leak(jobs);
            let start = Start::now();
            pool.spawn(move || rayon_node(FORK_DEPTH, done));
            measurement(jobs, done, start)
        }
        Workload::Queued => {
            let pool = rayon_pool(WORKERS)?;
            let gate = Arc::new(Gate::default());
            for _ in 0..WORKERS {
                let gate = Arc::clone(&gate);
                pool.spawn(move || gate.enter());
            }
            queued(&gate, |start| {
                let done = Completion::leak(QUEUED_JOBS);
                *start = Start::now();
                for job in 0..QUEUED_JOBS {
                    pool.spawn(move || cpu_job(job, done));
                }
                Ok(done)
            })
        }
        Workload::IdleWorkers => {
            let before = proc_status::rss_kb();
            let pool = rayon_pool(IDLE_WORKERS)?;
            let jobs = IDLE_WORKERS as u64;
            let done = Completion::leak(jobs);
            let all = Arc::new(Barrier::new(IDLE_WORKERS));
            let start = Start::now();
            for _ in 0..jobs {
                let all = Arc::clone(&all);
                pool.spawn(move || {
                    all.wait();
                    done.finish_one();
                });
            }
            held(before, measurement(jobs, done, start)?)
        }
        _ => not_run("rayon-spawn", workload),
    }
}

/// `queued-1m` around a system whose workers already wait at `gate`: `enqueue` sets
/// the start and queues the jobs; the resident set is read before and after.
fn queued(
    gate: &Gate,
    enqueue: impl FnOnce(&mut Start) -> Result<&'static Completion, String>,
) -> Result<Measurement, String> {
    gate.wait_entered(WORKERS)?;
    let before = proc_status::rss_kb();
    let mut start = Start::now();
    let enqueued = enqueue(&mut start);
    let queued = proc_status::rss_kb();
    gate.open();
    let done = enqueued?;
    let mut measured = measurement(QUEUED_JOBS, done, start)?;
    measured.held_kb = before.zip(queued).map(|(b, q)| q.saturating_sub(b));
    Ok(measured)
}

// ---------------------------------------------------------------------------------
// tokio::spawn

/// A fork-join node on tokio: `tokio::spawn` from inside a task.
fn tokio_node(depth: u64, done: &'static Completion) {
    if depth > 0 {
        for _ in 0..2 {
            tokio::spawn(async move { tokio_node(depth - 1, done) });
        }
    }
    cpu_job(depth, done);
}

/// `tokio::spawn` on a multi-threaded runtime with the workload's worker count; `io`
/// bounds concurrency with a `Semaphore`, as a tokio programmer would.
pub(crate) fn tokio_spawn(workload: Workload) -> Result<Measurement, String> {
    let runtime = tokio_runtime()?;
    let handle = runtime.handle();
    match workload {
        Workload::Tiny | Workload::MultiProducer => {
            let producers = workload.producers();
            let done = Completion::leak(TINY_JOBS);
            let start = Start::now();
            produce(producers, TINY_JOBS, |_, range| {
                for job in range {
                    handle.spawn(async move { cpu_job(job, done) });
                }
                Ok(())
            })?;
            measurement(TINY_JOBS, done, start)
        }
        Workload::Io => {
            let done = Completion::leak(IO_JOBS);
            let start = Start::now();
            runtime.block_on(async {
                let permits = Arc::new(tokio::sync::Semaphore::new(IO_CONCURRENCY));
                for _ in 0..IO_JOBS {
                    let permit = Arc::clone(&permits).acquire_owned().await.map_err(err)?;
                    tokio::spawn(async move {
                        tokio::time::sleep(IO_SLEEP).await;
                        drop(permit);
                        done.finish_one();
                    });
                }
                Ok::<_, String>(())
            })?;
            measurement(IO_JOBS, done, start)
        }
        Workload::ForkJoin => {
            let jobs = fork_join_jobs(FORK_DEPTH);
            let done = Completion::leak(jobs);
            let start = Start::now();
            handle.spawn(async move { tokio_node(FORK_DEPTH, done) });
            measurement(jobs, done, start)
        }
        Workload::Queued => {
            let gate = Arc::new(Gate::default());
            for _ in 0..WORKERS {
                let gate = Arc::clone(&gate);
                // Blocks a runtime worker thread on purpose: both are held busy.
                handle.spawn(async move { gate.enter() });
            }
            queued(&gate, |start| {
                let done = Completion::leak(QUEUED_JOBS);
                *start = Start::now();
                for job in 0..QUEUED_JOBS {
                    handle.spawn(async move { cpu_job(job, done) });
                }
                Ok(done)
            })
        }
        _ => not_run("tokio-spawn", workload),
    }
}

// ---------------------------------------------------------------------------------
// Hand-written pools

/// Which channel a hand-written pool is built on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `std::sync::mpsc`, its receiver shared behind a mutex (the Rust book's pool).
    StdMpsc,
    /// crossbeam-channel, whose receiver is multi-consumer.
    Crossbeam,
    /// flume, whose receiver is multi-consumer: what crewpool's flume backend is built
    /// on.
    Flume,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::StdMpsc => "std-mpsc-pool",
            Flavor::Crossbeam => "crossbeam-pool",
            Flavor::Flume => "flume-pool",
        }
    }
}

/// What goes through a hand-written pool's channel.
enum Msg {
    Run(u64),
    /// One worker leaves. Needed because workers that spawn sub-jobs hold senders,
    /// so the channel never disconnects.
    Stop,
}

/// The sending side of a hand-written pool; workers get a clone to spawn sub-jobs.
#[derive(Clone)]
enum Tx {
    StdBounded(mpsc::SyncSender<Msg>),
    StdUnbounded(mpsc::Sender<Msg>),
    Crossbeam(crossbeam_channel::Sender<Msg>),
    Flume(flume::Sender<Msg>),
}

impl Tx {
    fn send(&self, msg: Msg) -> Result<(), String> {
        let sent = match self {
            Tx::StdBounded(tx) => tx.send(msg).is_ok(),
            Tx::StdUnbounded(tx) => tx.send(msg).is_ok(),
            Tx::Crossbeam(tx) => tx.send(msg).is_ok(),
            Tx::Flume(tx) => tx.send(msg).is_ok(),
        };
        if sent {
            Ok(())
        } else {
            Err("the pool's channel is disconnected".to_owned())
        }
    }

    /// Adds a job.
    ///
    /// # Errors
    ///
    /// When every worker is gone.
    fn submit(&self, job: u64) -> Result<(), String> {
        self.send(Msg::Run(job))
    }
}

enum Rx {
    Std(Arc<Mutex<mpsc::Receiver<Msg>>>),
    Crossbeam(crossbeam_channel::Receiver<Msg>),
    Flume(flume::Receiver<Msg>),
}

impl Rx {
    fn recv(&self) -> Option<Msg> {
        match self {
            // The lock is held while waiting, as in the book: one waiter at a time.
            Rx::Std(rx) => rx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv()
                .ok(),
            Rx::Crossbeam(rx) => rx.recv().ok(),
            Rx::Flume(rx) => rx.recv().ok(),
        }
    }
}

/// A fixed set of threads taking jobs from one channel and running `job` on each.
struct HandPool {
    tx: Tx,
    threads: Vec<JoinHandle<()>>,
}

impl HandPool {
    fn start<F>(flavor: Flavor, shape: Shape, threads: usize, job: F) -> Result<Self, String>
    where
        F: Fn(u64, &Tx) + Send + Sync + 'static,
    {
        let (tx, rx) = match (flavor, shape) {
            (Flavor::StdMpsc, Shape::Bounded(capacity)) => {
                let (tx, rx) = mpsc::sync_channel(capacity);
                (Tx::StdBounded(tx), Rx::Std(Arc::new(Mutex::new(rx))))
            }
            (Flavor::StdMpsc, Shape::Unbounded) => {
                let (tx, rx) = mpsc::channel();
                (Tx::StdUnbounded(tx), Rx::Std(Arc::new(Mutex::new(rx))))
            }
            (Flavor::Crossbeam, shape) => {
                let (tx, rx) = match shape {
                    Shape::Bounded(capacity) => crossbeam_channel::bounded(capacity),
                    Shape::Unbounded => crossbeam_channel::unbounded(),
                };
                (Tx::Crossbeam(tx), Rx::Crossbeam(rx))
            }
            (Flavor::Flume, shape) => {
                let (tx, rx) = match shape {
                    Shape::Bounded(capacity) => flume::bounded(capacity),
                    Shape::Unbounded => flume::unbounded(),
                };
                (Tx::Flume(tx), Rx::Flume(rx))
            }
        };
        let job = Arc::new(job);
        let mut pool = HandPool {
            tx,
            threads: Vec::with_capacity(threads),
        };
        for index in 0..threads {
            let rx = match &rx {
                Rx::Std(rx) => Rx::Std(Arc::clone(rx)),
                Rx::Crossbeam(rx) => Rx::Crossbeam(rx.clone()),
                Rx::Flume(rx) => Rx::Flume(rx.clone()),
            };
            let tx = pool.tx.clone();
            let job = Arc::clone(&job);
            let thread = std::thread::Builder::new()
                .name(format!("{}-{index}", flavor.name()))
                .spawn(move || {
                    while let Some(Msg::Run(seed)) = rx.recv() {
                        job(seed, &tx);
                    }
                });
            match thread {
                Ok(thread) => pool.threads.push(thread),
                Err(error) => {
                    let _ = pool.finish();
                    return Err(format!("could not start a worker thread: {error}"));
                }
            }
        }
        Ok(pool)
    }

    /// Stops every worker (after the jobs already queued) and joins them.
    fn finish(self) -> Result<(), String> {
        for _ in 0..self.threads.len() {
            self.tx.send(Msg::Stop)?;
        }
        for thread in self.threads {
            thread
                .join()
                .map_err(|_| "a worker thread panicked".to_owned())?;
        }
        Ok(())
    }
}

/// A hand-written pool over a channel of `flavor`.
pub(crate) fn hand_pool(flavor: Flavor, workload: Workload) -> Result<Measurement, String> {
    match workload {
        Workload::Tiny | Workload::MultiProducer => {
            let producers = workload.producers();
            let done = Completion::leak(TINY_JOBS);
            let pool =
                HandPool::start(flavor, Shape::Bounded(CAPACITY), WORKERS, move |job, _| {
                    cpu_job(job, done);
                })?;
            let start = Start::now();
            produce(producers, TINY_JOBS, |_, range| {
                for job in range {
                    pool.tx.submit(job)?;
                }
                Ok(())
            })?;
            let measured = measurement(TINY_JOBS, done, start)?;
            pool.finish()?;
            Ok(measured)
        }
        Workload::Io => {
            let done = Completion::leak(IO_JOBS);
            let pool = HandPool::start(
                flavor,
                Shape::Bounded(CAPACITY),
                IO_CONCURRENCY,
                move |_, _| {
                    std::thread::sleep(IO_SLEEP);
                    done.finish_one();
                },
            )?;
            let start = Start::now();
            for job in 0..IO_JOBS {
                pool.tx.submit(job)?;
            }
            let measured = measurement(IO_JOBS, done, start)?;
            pool.finish()?;
            Ok(measured)
        }
        Workload::ForkJoin => {
            let jobs = fork_join_jobs(FORK_DEPTH);
            let done = Completion::leak(jobs);
            let pool = HandPool::start(flavor, Shape::Unbounded, WORKERS, move |depth, tx| {
                if depth > 0 {
                    for _ in 0..2 {
                        if let Err(why) = tx.submit(depth - 1) {
                            done.fail(why);
                            return;
                        }
                    }
                }
                cpu_job(depth, done);
            })?;
            let start = Start::now();
            pool.tx.submit(FORK_DEPTH)?;
            let measured = measurement(jobs, done, start)?;
            pool.finish()?;
            Ok(measured)
        }
        Workload::Queued => {
            let done = Completion::leak(QUEUED_JOBS);
            let gate = Arc::new(Gate::default());
            let pool = HandPool::start(flavor, Shape::Unbounded, WORKERS, {
                let gate = Arc::clone(&gate);
                move |job, _| {
                    if job == u64::MAX {
                        gate.enter();
                    } else {
                        cpu_job(job, done);
                    }
                }
            })?;
            for _ in 0..WORKERS {
                pool.tx.submit(u64::MAX)?;
            }
            let measured = queued(&gate, |start| {
                *start = Start::now();
                for job in 0..QUEUED_JOBS {
                    pool.tx.submit(job)?;
                }
                Ok(done)
            })?;
            pool.finish()?;
            Ok(measured)
        }
        Workload::IdleWorkers => {
            let before = proc_status::rss_kb();
            let jobs = IDLE_WORKERS as u64;
            let done = Completion::leak(jobs);
            let all = Arc::new(Barrier::new(IDLE_WORKERS));
            let pool = HandPool::start(
                flavor,
                Shape::Bounded(CAPACITY),
                IDLE_WORKERS,
                move |_, _| {
                    all.wait();
                    done.finish_one();
                },
            )?;
            let start = Start::now();
            for job in 0..jobs {
                pool.tx.submit(job)?;
            }
            let measured = held(before, measurement(jobs, done, start)?)?;
            pool.finish()?;
            Ok(measured)
        }
        _ => not_run(flavor.name(), workload),
    }
}

// ---------------------------------------------------------------------------------
// Thread per job

/// One OS thread per job, "without a pool", for `THREAD_PER_JOB_JOBS` jobs.
pub(crate) fn thread_per_job(workload: Workload) -> Result<Measurement, String> {
    let (producers, sleep) = match workload {
        Workload::Tiny => (1, false),
        Workload::MultiProducer => (PRODUCERS, false),
        Workload::Io => (1, true),
        _ => return not_run("thread-per-job", workload),
    };
    let jobs = if sleep { IO_JOBS } else { THREAD_PER_JOB_JOBS };
    let done = Completion::leak(jobs);
    let threads = Mutex::new(Vec::with_capacity(jobs as usize));
    let start = Start::now();
    produce(producers, jobs, |_, range| {
        let mut mine = Vec::with_capacity((range.end - range.start) as usize);
        for job in range {
            let thread = std::thread::Builder::new().spawn(move || {
                if sleep {
                    std::thread::sleep(IO_SLEEP);
                    done.finish_one();
                } else {
                    cpu_job(job, done);
                }
            });
            mine.push(thread.map_err(|e| format!("could not start a thread: {e}"))?);
        }
        threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(mine);
        Ok(())
    })?;
    let measured = measurement(jobs, done, start)?;
    for thread in threads.into_inner().unwrap_or_else(PoisonError::into_inner) {
        thread
            .join()
            .map_err(|_| "a job thread panicked".to_owned())?;
    }
    Ok(measured)
}
