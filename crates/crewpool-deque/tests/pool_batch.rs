//! `Pool::spawn_all` on the deque backend's batched push: a batch larger than the
//! queue, backpressure, a shutdown in the middle of a batch, a dropped batch, an
//! erased pool. Waits are proven by polling by hand, without sleeping.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crewpool_core::testkit::{CountingWaker, poll_once};
use crewpool_deque::DequeQueue;
use crewpool_runtime::{AnyPool, PoolBuilder};

#[path = "../../crewpool-runtime/tests/support/gate.rs"]
mod gate;
#[path = "../../crewpool-runtime/tests/support/spawn_all.rs"]
mod spawn_all;

const JOBS: usize = 20_000;

/// A worker that counts how many times each job ran.
fn counting(
    runs: &Arc<Vec<AtomicU32>>,
) -> impl Fn(u64) -> std::future::Ready<Result<(), Infallible>> + Send + Sync + 'static {
    let runs = Arc::clone(runs);
    move |n: u64| {
        runs[usize::try_from(n).expect("a small job number")].fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

fn check_once(runs: &[AtomicU32]) {
    for (n, count) in runs.iter().enumerate() {
        assert_eq!(
            count.load(Ordering::Relaxed),
            1,
            "job {n} ran {count:?} times"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_much_larger_than_the_queue_runs_every_job_once() {
    let runs = Arc::new((0..JOBS).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
    let pool = PoolBuilder::new()
        .workers(3)
        .queue(DequeQueue::bounded(8))
        .build(counting(&runs))
        .unwrap();
    // Batches of several sizes, the first far larger than the queue.
    let mut next = 0;
    for size in [JOBS / 2, 1, 63, 64, 65, JOBS] {
        let end = (next + size).min(JOBS);
        let spawned = pool.spawn_all(next as u64..end as u64).await.unwrap();
        assert_eq!(spawned, end - next);
        next = end;
    }
    assert_eq!(next, JOBS);
    spawn_all::assert_ran_all(&pool.shutdown().await, JOBS as u64);
    check_once(&runs);
}

#[test]
fn dedicated_threads_take_batches_from_a_plain_thread() {
    let runs = Arc::new((0..JOBS).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
    let pool = PoolBuilder::new()
        .workers(2)
        .dedicated_threads()
        .queue(DequeQueue::bounded(64))
        .build(counting(&runs))
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let jobs: Vec<u64> = (0..JOBS as u64).collect();
        for chunk in jobs.chunks(256) {
            pool.spawn_all(chunk.iter().copied()).await.unwrap();
        }
        let report = pool.shutdown().await;
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.stats.completed, JOBS as u64);
    });
    check_once(&runs);
}

/// One worker held on job 0, a queue of 2: a batch of 4 lands 2 jobs at once and
/// waits for room for the rest (pending, woken by the worker's takes), never holding
/// more than 2 queued.
#[tokio::test]
async fn a_batch_waits_for_room_and_takes_it_as_it_comes() {
    let (pool, mut gate) = spawn_all::held(DequeQueue::bounded(2)).await;
    let (counter, waker) = CountingWaker::new();
    let mut batch = pin!(pool.spawn_all([1, 2, 3, 4]));
    assert!(
        poll_once(batch.as_mut(), &waker).is_pending(),
        "2 of 4 fit: it waits"
    );
    assert_eq!(
        pool.stats().queued,
        2,
        "the two that fit were accepted at once"
    );
    assert!(
        poll_once(batch.as_mut(), &waker).is_pending(),
        "still no room"
    );
    assert_eq!(counter.wakes(), 0);

    // The worker finishes job 0 and takes job 1: room for one more.
    gate.open(1);
    assert_eq!(gate.started().await, 1);
    assert!(counter.wakes() >= 1, "the take woke the waiting batch");
    gate.open(4);
    assert_eq!(batch.await.unwrap(), 4);
    spawn_all::assert_ran_all(&pool.shutdown().await, 5);
}

/// A shutdown while a batch waits for room: the batch ends with the jobs accepted
/// before it counted, and the rest handed back in order; the accepted ones run.
#[tokio::test]
async fn a_shutdown_mid_batch_hands_back_the_rest() {
    spawn_all::shutdown_mid_batch(DequeQueue::bounded(2)).await;
}

/// A batch future dropped while it waits: the jobs it had pushed run, the rest are
/// neither run nor counted.
#[tokio::test]
async fn a_dropped_batch_keeps_what_was_accepted_and_counts_only_that() {
    let (pool, gate) = spawn_all::held(DequeQueue::bounded(2)).await;
    {
        let (_counter, waker) = CountingWaker::new();
        let mut batch = pin!(pool.spawn_all([1, 2, 3, 4]));
        assert!(poll_once(batch.as_mut(), &waker).is_pending());
    }
    assert_eq!(pool.stats().submitted, 3, "0, 1 and 2; not 3 and 4");
    gate.open(3);
    spawn_all::assert_ran_all(&pool.shutdown().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_pool_spawns_batches() {
    let runs = Arc::new((0..JOBS).map(|_| AtomicU32::new(0)).collect::<Vec<_>>());
    let pool: AnyPool<u64, (), Infallible> = PoolBuilder::new()
        .workers(2)
        .queue(DequeQueue::bounded(16))
        .build(counting(&runs))
        .unwrap()
        .into_any();
    assert_eq!(pool.spawn_all(0..JOBS as u64 / 2).await.unwrap(), JOBS / 2);
    assert_eq!(
        pool.spawn_all(JOBS as u64 / 2..JOBS as u64).await.unwrap(),
        JOBS / 2
    );
    assert_eq!(pool.spawn_all(std::iter::empty()).await.unwrap(), 0);
    let report = pool.shutdown().await;
    assert_eq!(report.stats.completed, JOBS as u64);
    check_once(&runs);
    let late = pool.spawn_all([1]).await.unwrap_err();
    assert!(late.is_closed());
}

type SelfPool = crewpool_runtime::Pool<DequeQueue<u64>, FanoutAll>;

/// A job that holds its own pool, through a slot filled after build.
struct FanoutAll {
    pool: Arc<std::sync::OnceLock<SelfPool>>,
}

impl crewpool_core::Worker<u64> for FanoutAll {
    /// For job 0: how many of its batch were accepted, and the rest.
    type Output = Option<(usize, Vec<u64>)>;
    type Error = Infallible;

    async fn run(
        &self,
        n: u64,
        _cx: crewpool_core::JobContext<u64>,
    ) -> Result<Self::Output, Infallible> {
        if n != 0 {
            return Ok(None);
        }
        let pool = self.pool.get().expect("the slot is filled after build");
        let outcome = match pool.spawn_all([1, 2, 3]).await {
            Ok(accepted) => (accepted, Vec::new()),
            Err(refused) => {
                assert!(refused.is_full(), "{refused:?}");
                (refused.accepted(), refused.into_inner())
            }
        };
        Ok(Some(outcome))
    }
}

/// A batch spawned from inside one of the pool's own jobs never waits for room (the
/// only worker is the one that would make it): what fits is accepted, the rest comes
/// back at once with `Full`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_from_inside_a_job_takes_what_fits_and_hands_back_the_rest() {
    let slot = Arc::new(std::sync::OnceLock::new());
    let pool = PoolBuilder::new()
        .workers(1)
        .queue(DequeQueue::bounded(1))
        .build(FanoutAll {
            pool: Arc::clone(&slot),
        })
        .unwrap();
    assert!(slot.set(pool.clone()).is_ok());
    let handle = pool.submit(0).await.unwrap();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(60), handle)
        .await
        .expect("the job spawning a batch into its own full pool hung")
        .unwrap();
    assert_eq!(outcome, Some((1, vec![2, 3])));
    // The worker holds a clone of its own pool: shut it down explicitly.
    let report = pool.shutdown().await;
    assert_eq!(
        (report.stats.submitted, report.stats.completed),
        (2, 2),
        "{report}"
    );
}
