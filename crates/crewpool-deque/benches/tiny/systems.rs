//! The "tiny" workload on every system compared: 1,000,000 jobs (by default), each
//! 50 rounds of xorshift on the u64 it carries, pushed one by one by one producer, run
//! by 2 workers. Wall time is from the first submit to the last completion.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crewpool_deque::DequeQueue;
use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;

/// Workers (threads) per system.
pub(crate) const WORKERS: usize = 2;

/// The systems, in the order of the report.
pub(crate) const SYSTEMS: &[&str] = &[
    "crewpool-deque",
    "crewpool-flume",
    "rayon::spawn",
    "tokio::spawn",
    "crossbeam-channel by hand",
    "crewpool-deque (tokio tasks)",
    "crewpool-deque (unbounded)",
    "crewpool-deque (Queue only)",
    "crewpool-flume (Queue only)",
    "crewpool-deque (Queue only, tokio park)",
];

/// The job: 50 rounds of xorshift64.
#[inline]
pub(crate) fn work(mut x: u64) -> u64 {
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Runs `jobs` jobs on `system`; bounded queues hold at most `capacity`.
pub(crate) fn run(system: &str, jobs: u64, capacity: usize) -> Duration {
    match system {
        "crewpool-deque" => crewpool_threads(DequeQueue::bounded(capacity), jobs),
        "crewpool-deque (unbounded)" => crewpool_threads(DequeQueue::unbounded(), jobs),
        "crewpool-deque (tokio tasks)" => crewpool_tasks(DequeQueue::bounded(capacity), jobs),
        "crewpool-flume" => crewpool_threads(FlumeQueue::bounded(capacity), jobs),
        "crewpool-deque (Queue only)" => queue_only(DequeQueue::bounded(capacity), jobs),
        "crewpool-flume (Queue only)" => queue_only(FlumeQueue::bounded(capacity), jobs),
        "crewpool-deque (Queue only, tokio park)" => {
            queue_only_tokio(DequeQueue::bounded(capacity), jobs)
        }
        "rayon::spawn" => rayon_spawn(jobs),
        "tokio::spawn" => tokio_spawn(jobs),
        "crossbeam-channel by hand" => crossbeam_by_hand(jobs, capacity),
        other => panic!("unknown system {other}"),
    }
}

fn producer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A crewpool Pool with 2 workers on dedicated threads; the producer fires and
/// forgets (`Pool::spawn`, no handle) from the main thread; the clock stops when a
/// graceful shutdown returns, that is, when the last job has completed.
fn crewpool_threads<Q: crewpool_core::Queue<Job = u64>>(queue: Q, jobs: u64) -> Duration {
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .dedicated_threads()
        .queue(queue)
        .build(|x: u64| async move {
            black_box(work(x));
            Ok::<_, Infallible>(())
        })
        .unwrap();
    let producer = producer_runtime();
    producer.block_on(async {
        let start = Instant::now();
        for x in 1..=jobs {
            pool.spawn(x).await.unwrap();
        }
        let report = pool.shutdown().await;
        let elapsed = start.elapsed();
        assert_eq!(report.stats.completed, jobs);
        elapsed
    })
}

/// The same, but the workers are tasks on a 2-worker tokio runtime, and the producer
/// is the main thread.
fn crewpool_tasks<Q: crewpool_core::Queue<Job = u64>>(queue: Q, jobs: u64) -> Duration {
    let workers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .unwrap();
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .runtime(workers.handle().clone())
        .queue(queue)
        .build(|x: u64| async move {
            black_box(work(x));
            Ok::<_, Infallible>(())
        })
        .unwrap();
    producer_runtime().block_on(async {
        let start = Instant::now();
        for x in 1..=jobs {
            pool.spawn(x).await.unwrap();
        }
        let report = pool.shutdown().await;
        let elapsed = start.elapsed();
        assert_eq!(report.stats.completed, jobs);
        elapsed
    })
}

/// The backend alone, without the runtime: 2 threads loop on their consumer's
/// `next`, the main thread pushes envelopes. This separates the queue's cost from the
/// Pool's (ids, statistics, results, panic isolation, shutdown).
fn queue_only<Q: crewpool_core::Queue<Job = u64>>(queue: Q, jobs: u64) -> Duration {
    use crewpool_core::testkit::block_on;
    use crewpool_core::{Consumer, Envelope};
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let mut consumer = queue.consumer().unwrap();
            std::thread::spawn(move || {
                block_on(async {
                    while let Some(received) = consumer.next().await {
                        black_box(work(received.envelope.job));
                    }
                })
            })
        })
        .collect();
    let start = Instant::now();
    block_on(async {
        for x in 1..=jobs {
            queue.push(Envelope::new(x)).await.unwrap();
        }
    });
    queue.close();
    for worker in workers {
        worker.join().unwrap();
    }
    start.elapsed()
}

/// Like [`queue_only`], but each consumer thread parks in a current-thread tokio
/// runtime with its drivers enabled, as the Pool's dedicated threads do.
fn queue_only_tokio<Q: crewpool_core::Queue<Job = u64>>(queue: Q, jobs: u64) -> Duration {
    use crewpool_core::{Consumer, Envelope};
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let mut consumer = queue.consumer().unwrap();
            let runtime = producer_runtime();
            std::thread::spawn(move || {
                runtime.block_on(async {
                    while let Some(received) = consumer.next().await {
                        black_box(work(received.envelope.job));
                    }
                })
            })
        })
        .collect();
    let start = Instant::now();
    producer_runtime().block_on(async {
        for x in 1..=jobs {
            queue.push(Envelope::new(x)).await.unwrap();
        }
    });
    queue.close();
    for worker in workers {
        worker.join().unwrap();
    }
    start.elapsed()
}

/// Counts completions; the last one opens the latch the producer waits on.
struct Done {
    left: AtomicU64,
    latch: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Done {
    fn new(jobs: u64) -> Arc<Self> {
        Arc::new(Done {
            left: AtomicU64::new(jobs),
            latch: std::sync::Mutex::new(false),
            opened: std::sync::Condvar::new(),
        })
    }

    fn one(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.latch.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    fn wait(&self) {
        let mut open = self.latch.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// `rayon::spawn` onto a 2-thread pool (its global queue is unbounded).
fn rayon_spawn(jobs: u64) -> Duration {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .unwrap();
    let done = Done::new(jobs);
    let start = Instant::now();
    for x in 1..=jobs {
        let done = Arc::clone(&done);
        pool.spawn(move || {
            black_box(work(x));
            done.one();
        });
    }
    done.wait();
    start.elapsed()
}

/// `tokio::spawn` onto a 2-worker runtime, from the main thread.
fn tokio_spawn(jobs: u64) -> Duration {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .unwrap();
    let done = Done::new(jobs);
    let start = Instant::now();
    for x in 1..=jobs {
        let done = Arc::clone(&done);
        runtime.spawn(async move {
            black_box(work(x));
            done.one();
        });
    }
    done.wait();
    start.elapsed()
}

/// The no-abstraction limit: 2 threads on a bounded crossbeam channel of bare u64s.
fn crossbeam_by_hand(jobs: u64, capacity: usize) -> Duration {
    let (sender, receiver) = crossbeam_channel::bounded::<u64>(capacity);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let receiver = receiver.clone();
            std::thread::spawn(move || {
                for x in receiver {
                    black_box(work(x));
                }
            })
        })
        .collect();
    let start = Instant::now();
    for x in 1..=jobs {
        sender.send(x).unwrap();
    }
    drop(sender);
    for worker in workers {
        worker.join().unwrap();
    }
    start.elapsed()
}
