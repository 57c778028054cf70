//! Throughput and latency of the Redis backend against a private `redis-server`:
//!
//! - **processed/s**: a backlog of no-op jobs drained by one pool in this process (the
//!   one worker process) with the full at-least-once machinery on: every job leased
//!   under a fencing token, heartbeats, acknowledgements checked against the token;
//!   once per [`AckMode`];
//! - **enqueued/s**: [`RedisQueue::enqueue_bulk`] of the same backlog;
//! - **idle pickup**: enqueue to job start, p50/p99, while the pool is idle (its
//!   fetcher blocked in Redis);
//! - **result round trip**: a pool's `submit` to the job's result in the producer's
//!   handle, p50/p99, on an idle queue (a worker pool on its own connection, the
//!   producer's listener blocked on its reply channel);
//! - **re-pickup**: SIGKILL of a worker *process* holding a job, to the job starting
//!   again in this process (bounded below by the lease);
//! - two **baselines** in the same run, on the same server, for scale: raw pipelined
//!   `LPUSH`es of the same number of ids (the floor of an enqueue), and the naive
//!   reliable-queue loop, `BLMOVE pending processing` then `LREM processing` per job
//!   on 50 connections (no leases, no fencing, no retries; a job is done when removed).
//!
//! - the new job kinds' own costs: **scheduled jobs made due/s** (a backlog scheduled
//!   for one moment, promoted by fetches' housekeeping alone), **unique enqueues/s**
//!   (distinct keys, 64 enqueues in flight), and the **lateness** of a scheduled job
//!   (its due time to its start, p50/p99) on an idle pool and on a pool busy draining a
//!   backlog.
//!
//! - on request (`--only single`), **single enqueues/s** (64 in flight), and with
//!   `--replica`/`--replicated` a replica of the server, without or with waiting for
//!   it (`Durability::replicated`): what `WAIT` costs.
//!
//! Besides wall-clock rates it reports CPU per job on both sides: Redis's
//! (`INFO cpu`, its whole process) and this process's (`/proc/self/stat`), which is
//! what bounds the rate on a small machine where both share the cores.
//!
//! ```text
//! cargo bench -p crewpool-redis --bench throughput                 # defaults below
//! cargo bench -p crewpool-redis --bench throughput -- --jobs 200000 --runs 1
//! cargo bench -p crewpool-redis --bench throughput -- --help
//! ```

// A benchmark: panicking with a message is the error handling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crewpool_redis::testing::RedisServer;
use crewpool_redis::testing::net::Proxy;
use crewpool_redis::{AckMode, Durability, JobOptions, RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use tokio::sync::Notify;

const USAGE: &str = "\
usage: cargo bench -p crewpool-redis --bench throughput -- [options]

  --jobs N         backlog size for processed/s and enqueued/s (default 1000000)
  --runs R         runs per measurement; the median is reported (default 3)
  --workers W      pool workers for processed/s (default 512)
  --batch B        jobs per fetch, at most 1000 (default: the queue's, 1000)
  --prefetch P     jobs fetched ahead of idle workers (default: the queue's, one per
                   worker)
  --pickups K      jobs for the idle pickup latency (default 1000)
  --kills K        SIGKILLed worker processes for the re-pickup time (default 5)
  --lease-ms L     lease for the re-pickup measurement (default 1000)
  --only WHAT      only one of: enqueue, processed, pickup, roundtrip, repickup, baselines,
                   scheduled (made due/s), unique (unique enqueues/s), lateness
  --lateness K     scheduled jobs per lateness measurement (default 200)
  --ack-mode M     processed/s with only this ack mode: queued or confirmed
  --commandstats   print Redis's INFO commandstats after each processed run
  --replica        give the server a replica (replication's own cost)
  --replicated     give the server a replica and wait for it (Durability::replicated,
                   1 replica, acknowledgements too): the cost of WAIT
  --only single    single enqueues/s (64 in flight)
  --rtt-ms R       connect through a TCP proxy that adds R/2 ms each way (R may be 0:
                   the proxy's own cost)
  --rtts LIST      processed/s at each round trip of LIST in the same run, runs
                   interleaved, with ratios to the first: `direct` (no proxy) or R as
                   for --rtt-ms; e.g. --rtts direct,0,2
  --netns          Redis in a network namespace of its own and this bench in another,
                   joined by a veth link (root and `ip` needed; the proxy of --rtt-ms or
                   --rtts runs on the bench's side): a network path, not loopback";

/// Hang guard for a single measurement.
const HANG_GUARD: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Options {
    jobs: u64,
    runs: usize,
    workers: usize,
    /// `None`: the queue's default.
    batch: Option<usize>,
    /// `None`: the queue's default (one job per worker).
    prefetch: Option<usize>,
    pickups: usize,
    kills: usize,
    lease_ms: u64,
    only: Option<String>,
    ack_modes: Vec<AckMode>,
    commandstats: bool,
    lateness: usize,
    replica: bool,
    replicated: bool,
    rtt_ms: Option<f64>,
    /// The URL queues connect to when it is not the server's (through the proxy).
    via: Option<String>,
    /// Processed/s at each of these round trips (`None`: straight to Redis), in the
    /// same run, runs interleaved.
    rtts: Vec<Option<f64>>,
    /// Redis in a network namespace of its own, this process in another.
    netns: bool,
    /// The Redis to measure when not our own (the `--netns` child): `host:port`.
    redis_at: Option<String>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            jobs: 1_000_000,
            runs: 3,
            workers: 512,
            batch: None,
            prefetch: None,
            pickups: 1000,
            kills: 5,
            lease_ms: 1000,
            only: None,
            ack_modes: vec![AckMode::Queued, AckMode::Confirmed],
            commandstats: false,
            lateness: 200,
            replica: false,
            replicated: false,
            rtt_ms: None,
            via: None,
            rtts: Vec::new(),
            netns: false,
            redis_at: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> String {
                args.next()
                    .unwrap_or_else(|| panic!("{name} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--jobs" => options.jobs = value("--jobs").parse().expect("--jobs N"),
                "--runs" => options.runs = value("--runs").parse().expect("--runs R"),
                "--workers" => options.workers = value("--workers").parse().expect("--workers W"),
                "--batch" => options.batch = Some(value("--batch").parse().expect("--batch B")),
                "--prefetch" => {
                    options.prefetch = Some(value("--prefetch").parse().expect("--prefetch P"));
                }
                "--rtts" => {
                    options.rtts = value("--rtts")
                        .split(',')
                        .map(|rtt| match rtt {
                            "direct" => None,
                            ms => Some(ms.parse().expect("--rtts direct|<ms>,...")),
                        })
                        .collect();
                }
                "--netns" => options.netns = true,
                "--redis-at" => options.redis_at = Some(value("--redis-at")),
                "--pickups" => options.pickups = value("--pickups").parse().expect("--pickups K"),
                "--kills" => options.kills = value("--kills").parse().expect("--kills K"),
                "--lease-ms" => {
                    options.lease_ms = value("--lease-ms").parse().expect("--lease-ms L");
                }
                "--only" => options.only = Some(value("--only")),
                "--ack-mode" => {
                    options.ack_modes = match value("--ack-mode").as_str() {
                        "queued" => vec![AckMode::Queued],
                        "confirmed" => vec![AckMode::Confirmed],
                        other => panic!("--ack-mode queued|confirmed, not {other:?}"),
                    }
                }
                "--commandstats" => options.commandstats = true,
                "--replica" => options.replica = true,
                "--rtt-ms" => options.rtt_ms = Some(value("--rtt-ms").parse().expect("--rtt-ms R")),
                "--replicated" => {
                    options.replica = true;
                    options.replicated = true;
                }
                "--lateness" => {
                    options.lateness = value("--lateness").parse().expect("--lateness K");
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                // `cargo bench` passes `--bench` to every bench binary.
                "--bench" => {}
                other => panic!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        options.runs = options.runs.max(1);
        options
    }

    fn wants(&self, what: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == what)
    }
}

/// The Redis the bench measures: a server of its own on loopback, or (the `--netns`
/// child) one in another network namespace, at `host:port`.
enum Redis {
    Own(RedisServer),
    At { host: String, port: u16 },
}

impl Redis {
    fn url(&self) -> String {
        match self {
            Redis::Own(server) => server.url(),
            Redis::At { host, port } => format!("redis://{host}:{port}"),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Redis::Own(server) => format!("127.0.0.1:{}", server.port()),
            Redis::At { host, port } => format!("{host}:{port}"),
        }
        .parse()
        .expect("an address")
    }

    fn port(&self) -> u16 {
        self.addr().port()
    }

    fn cli(&self, args: &[&str]) -> String {
        match self {
            Redis::Own(server) => server.cli(args),
            Redis::At { host, port } => {
                let output = Command::new("redis-cli")
                    .args(["-h", host, "-p", &port.to_string()])
                    .args(args)
                    .output()
                    .expect("redis-cli");
                assert!(output.status.success(), "redis-cli {args:?} failed");
                String::from_utf8_lossy(&output.stdout).into_owned()
            }
        }
    }
}

/// CPU seconds used so far by this process (user + system), from `/proc/self/stat`
/// (clock ticks of 1/100 s, Linux's `USER_HZ` on every common platform).
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// CPU seconds the Redis server used so far (main thread and background threads).
fn redis_cpu(server: &Redis) -> f64 {
    let info = server.cli(&["INFO", "cpu"]);
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO cpu has no {name}"))
    };
    field("used_cpu_user") + field("used_cpu_sys")
}

/// CPU of both sides over a measured section.
struct CpuMeter {
    redis: f64,
    own: f64,
}

impl CpuMeter {
    fn start(server: &Redis) -> Self {
        CpuMeter {
            redis: redis_cpu(server),
            own: own_cpu(),
        }
    }

    /// (Redis µs/job, this process µs/job).
    fn per_job(&self, server: &Redis, jobs: u64) -> (f64, f64) {
        let redis = redis_cpu(server) - self.redis;
        let own = own_cpu() - self.own;
        (redis * 1e6 / jobs as f64, own * 1e6 / jobs as f64)
    }
}

/// One measured run: a rate and the CPU per job on each side.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    redis_us: f64,
    own_us: f64,
}

fn median(mut samples: Vec<Sample>) -> (Sample, f64, f64) {
    samples.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let (low, high) = (samples[0].rate, samples[samples.len() - 1].rate);
    (samples[samples.len() / 2], low, high)
}

fn config(server: &Redis, queue: &str, options: &Options) -> RedisConfig {
    let url = options.via.clone().unwrap_or_else(|| server.url());
    config_at(url, queue, options)
}

fn config_at(url: String, queue: &str, options: &Options) -> RedisConfig {
    let mut config = RedisConfig::new(url, queue);
    if let Some(batch) = options.batch {
        config = config.batch_size(batch);
    }
    if let Some(prefetch) = options.prefetch {
        config = config.prefetch(prefetch);
    }
    if options.replicated {
        config.durability(Durability::replicated(1, Duration::from_secs(1)).with_acks())
    } else {
        config
    }
}

/// Single enqueues, 64 in flight (each one script call, and one WAIT with
/// `--replicated`).
async fn single_enqueues(server: &Redis, options: &Options, run: usize) -> Sample {
    const IN_FLIGHT: u64 = 64;
    let queue = Arc::new(
        RedisQueue::<u64>::connect(config(server, &format!("single-{run}"), options))
            .await
            .expect("connect"),
    );
    let jobs = options.jobs;
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..IN_FLIGHT {
        let queue = Arc::clone(&queue);
        tasks.push(tokio::spawn(async move {
            let mut job = lane;
            while job < jobs {
                queue.enqueue(&job).await.expect("enqueue");
                job += IN_FLIGHT;
            }
        }));
    }
    for task in tasks {
        task.await.expect("an enqueuer");
    }
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    assert_eq!(queue.stats().await.expect("stats").pending, jobs);
    queue.purge().await.expect("purge");
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

/// Enqueues `jobs` no-op jobs in bulk; returns the sample of the enqueue.
async fn enqueue(server: &Redis, queue: &RedisQueue<u64>, jobs: u64) -> Sample {
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    let ids = queue.enqueue_bulk(0..jobs).await.expect("enqueue_bulk");
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    assert_eq!(ids.len() as u64, jobs);
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

/// Enqueues a backlog, then drains it with one pool; returns the drain's sample.
async fn processed(
    server: &Redis,
    url: String,
    options: &Options,
    mode: AckMode,
    run: usize,
) -> Sample {
    static QUEUES: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "processed-{mode:?}-{run}-{}",
        QUEUES.fetch_add(1, Ordering::Relaxed)
    );
    let queue = RedisQueue::<u64>::connect(config_at(url, &name, options).ack_mode(mode))
        .await
        .expect("connect");
    let jobs = options.jobs;
    enqueue(server, &queue, jobs).await;

    let done = Arc::new((AtomicU64::new(0), Notify::new()));
    let counted = Arc::clone(&done);
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    let pool = PoolBuilder::new()
        .name("throughput")
        .workers(options.workers)
        .queue(queue)
        .build(move |_job: u64| {
            let counted = Arc::clone(&counted);
            async move {
                if counted.0.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                    counted.1.notify_one();
                }
                Ok::<(), Infallible>(())
            }
        })
        .expect("a pool");
    tokio::time::timeout(HANG_GUARD, done.1.notified())
        .await
        .unwrap_or_else(|_| panic!("hang guard: {:?}", pool.stats()));
    // Every job has run; the last acknowledgements are flushed by the shutdown, which
    // is part of the measured time (a job is processed once Redis forgot it).
    pool.shutdown().await;
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    let counters = pool.queue().counters();
    let stats = pool.queue().stats().await.expect("stats");
    assert_eq!(
        (stats.pending, stats.active, stats.delayed, stats.dead),
        (0, 0, 0, 0),
        "every job acknowledged, none left in Redis"
    );
    assert_eq!(counters.acked, jobs, "{counters:?}");
    eprintln!(
        "  processed {mode:?} run {run}: {:.0} jobs/s; {} fetch calls, {} ack flushes ({:.0} jobs per flush)",
        jobs as f64 / elapsed.as_secs_f64(),
        counters.fetch_calls,
        counters.ack_flushes,
        jobs as f64 / counters.ack_flushes.max(1) as f64,
    );
    if options.commandstats {
        eprintln!("{}", server.cli(&["INFO", "commandstats"]));
        server.cli(&["CONFIG", "RESETSTAT"]);
    }
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

/// PINGs `url` on a connection of its own every 5 ms, recording each round trip into
/// `times`, until aborted: the round trip a queue beside it sees, load included.
async fn ping_times(url: String, times: Arc<std::sync::Mutex<Vec<Duration>>>) {
    let client = redis::Client::open(url).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    loop {
        let started = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("PING");
        times.lock().unwrap().push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Pushes `jobs` ids with pipelined `LPUSH`es of 1,000 each, 8 per round trip.
async fn push_ids(conn: &mut redis::aio::MultiplexedConnection, key: &str, jobs: u64) {
    let mut next = 0;
    while next < jobs {
        let mut pipe = redis::pipe();
        for _ in 0..8 {
            if next >= jobs {
                break;
            }
            let end = (next + 1000).min(jobs);
            pipe.cmd("LPUSH")
                .arg(key)
                .arg((next..end).collect::<Vec<u64>>());
            next = end;
        }
        let _: Vec<u64> = pipe.query_async(conn).await.expect("LPUSH");
    }
}

/// Baseline: raw pipelined `LPUSH`es of `jobs` ids.
async fn baseline_push(server: &Redis, jobs: u64) -> Sample {
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    push_ids(&mut conn, "baseline:push", jobs).await;
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    let _: u64 = redis::cmd("DEL")
        .arg("baseline:push")
        .query_async(&mut conn)
        .await
        .expect("DEL");
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

/// Baseline: the naive reliable queue, 50 connections each looping `BLMOVE pending
/// processing` + `LREM processing` until the backlog is gone.
async fn baseline_blmove(server: &Redis, jobs: u64) -> Sample {
    const CONNECTIONS: usize = 50;
    let client = redis::Client::open(server.url()).expect("a client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    push_ids(&mut conn, "baseline:pending", jobs).await;
    let done = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    let mut loops = Vec::new();
    for _ in 0..CONNECTIONS {
        // A connection each: a blocking command holds its connection.
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let done = Arc::clone(&done);
        loops.push(tokio::spawn(async move {
            loop {
                let id: Option<Vec<u8>> = redis::cmd("BLMOVE")
                    .arg("baseline:pending")
                    .arg("baseline:processing")
                    .arg("RIGHT")
                    .arg("LEFT")
                    .arg(0.01)
                    .query_async(&mut conn)
                    .await
                    .expect("BLMOVE");
                let Some(id) = id else { return };
                let _: u64 = redis::cmd("LREM")
                    .arg("baseline:processing")
                    .arg(1)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
                    .expect("LREM");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for handle in loops {
        handle.await.expect("a loop");
    }
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    assert_eq!(
        done.load(Ordering::Relaxed),
        jobs,
        "every id processed once"
    );
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

fn blocked_clients(server: &Redis) -> u64 {
    let info = server.cli(&["INFO", "clients"]);
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("INFO clients has blocked_clients")
}

/// Enqueue-to-start latency of jobs enqueued one at a time into an idle pool.
async fn pickup(server: &Redis, options: &Options) -> Vec<Duration> {
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "pickup"))
        .await
        .expect("connect");
    let producer = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "pickup"))
        .await
        .expect("connect");
    let (started_tx, started_rx) = flume::unbounded::<(u64, Instant)>();
    let pool = PoolBuilder::new()
        .workers(8)
        .queue(queue)
        .build(move |job: u64| {
            let started = started_tx.clone();
            async move {
                let _ = started.send((job, Instant::now()));
                Ok::<(), Infallible>(())
            }
        })
        .expect("a pool");
    let mut latencies = Vec::with_capacity(options.pickups);
    for job in 0..options.pickups as u64 {
        // Idle means the fetcher is blocked in Redis: wait for that state, so every
        // pickup is measured from it.
        let guard = Instant::now();
        while blocked_clients(server) == 0 {
            assert!(guard.elapsed() < HANG_GUARD, "the fetcher never blocked");
            tokio::task::yield_now().await;
        }
        let pushed = Instant::now();
        producer.enqueue(&job).await.expect("enqueue");
        let (ran, at) = tokio::time::timeout(HANG_GUARD, started_rx.recv_async())
            .await
            .expect("hang guard")
            .expect("the pool runs");
        assert_eq!(ran, job);
        latencies.push(at.duration_since(pushed));
    }
    pool.shutdown().await;
    latencies.sort();
    latencies
}

/// `submit` to the result in the producer's handle, one job at a time on an idle
/// queue: a worker pool and the producer's pool (which may run the job too) on their
/// own connections, every fetcher and the producer's listener blocked in Redis.
async fn roundtrip(server: &Redis, options: &Options) -> Vec<Duration> {
    let connect = || async {
        RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "roundtrip"))
            .await
            .expect("connect")
            .with_results::<u64, String>()
    };
    let double = |job: u64| async move { Ok::<u64, String>(2 * job) };
    let workers = PoolBuilder::new()
        .workers(8)
        .queue(connect().await)
        .build(double)
        .expect("a pool");
    let producer = PoolBuilder::new()
        .workers(1)
        .queue(connect().await)
        .build(double)
        .expect("a pool");
    let mut latencies = Vec::with_capacity(options.pickups);
    for job in 0..options.pickups as u64 {
        // Idle: both fetchers blocked, and from the second job on the listener too.
        let idle = if job == 0 { 2 } else { 3 };
        let guard = Instant::now();
        while blocked_clients(server) < idle {
            assert!(guard.elapsed() < HANG_GUARD, "the fetchers never blocked");
            tokio::task::yield_now().await;
        }
        let submitted = Instant::now();
        let handle = producer.submit(job).await.expect("submit");
        let doubled = tokio::time::timeout(HANG_GUARD, handle)
            .await
            .expect("hang guard")
            .expect("the job's result");
        latencies.push(submitted.elapsed());
        assert_eq!(doubled, 2 * job);
    }
    producer.shutdown().await;
    workers.shutdown().await;
    latencies.sort();
    latencies
}

/// SIGKILL of a worker process holding a job, to the job's start here; one per kill.
async fn repickup(server: &Redis, options: &Options) -> Vec<Duration> {
    let lease = Duration::from_millis(options.lease_ms);
    let name = "repickup";
    let settings = RedisConfig::new(server.url(), name).lease(lease);
    let producer = RedisQueue::<u64>::connect(settings.clone())
        .await
        .expect("connect");
    let mut times = Vec::new();
    for job in 0..options.kills as u64 {
        // A worker process that takes the job and hangs in its first attempt.
        let mut doomed = Command::new(env!("CARGO_BIN_EXE_crewpool-redis-test-worker"))
            .env("CREWPOOL_TEST_URL", server.url())
            .env("CREWPOOL_TEST_QUEUE", name)
            .env("CREWPOOL_TEST_WORKERS", "1")
            .env("CREWPOOL_TEST_LEASE_MS", options.lease_ms.to_string())
            .env("CREWPOOL_TEST_MODE", "hang-first")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting crewpool-redis-test-worker");
        let stdout = doomed.stdout.take().expect("piped");
        let (line_tx, lines) = flume::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The next line but the ledger's (`delivered ...`).
        let next_line = || async {
            loop {
                let line = tokio::time::timeout(HANG_GUARD, lines.recv_async())
                    .await
                    .expect("hang guard")
                    .expect("the worker process printed nothing more");
                if !line.starts_with("delivered ") {
                    return line;
                }
            }
        };
        assert_eq!(next_line().await, "ready");
        let id = producer.enqueue(&job).await.expect("enqueue");
        assert_eq!(next_line().await, format!("started {} 1", id.0));

        // The rescuer: an idle pool here, blocked in Redis when the worker dies.
        let (started_tx, started_rx) = flume::unbounded::<(u32, Instant)>();
        let rescuer = PoolBuilder::new()
            .workers(4)
            .queue(
                RedisQueue::<u64>::connect(RedisConfig::new(server.url(), name).lease(lease))
                    .await
                    .expect("connect"),
            )
            .build(crewpool_core::with_context(
                move |_job: u64, cx: crewpool_core::JobContext<u64>| {
                    let started = started_tx.clone();
                    async move {
                        let _ = started.send((cx.attempt(), Instant::now()));
                        Ok::<(), Infallible>(())
                    }
                },
            ))
            .expect("a pool");
        let guard = Instant::now();
        while blocked_clients(server) == 0 {
            assert!(guard.elapsed() < HANG_GUARD, "the rescuer never blocked");
            tokio::task::yield_now().await;
        }
        let killed = Instant::now();
        doomed.kill().expect("SIGKILL");
        doomed.wait().expect("reaping");
        let (attempt, at) = tokio::time::timeout(HANG_GUARD, started_rx.recv_async())
            .await
            .expect("hang guard")
            .expect("the pool runs");
        assert_eq!(attempt, 2, "the killed worker's job, on its second attempt");
        times.push(at.duration_since(killed));
        rescuer.shutdown().await;
    }
    times.sort();
    times
}

/// Scheduled jobs made due per second: `jobs` jobs scheduled for one moment, then
/// moved to the queue by the housekeeping of fetches that take nothing (no worker),
/// 1,000 per fetch, timed from the first fetch to the last.
async fn made_due(server: &Redis, options: &Options, run: usize) -> Sample {
    let queue = RedisQueue::<u64>::connect(config(server, &format!("due-{run}"), options))
        .await
        .expect("connect");
    let due = SystemTime::now() + Duration::from_millis(500);
    queue
        .enqueue_bulk_at(0..options.jobs, due)
        .await
        .expect("enqueue_bulk_at");
    // A benchmark waits for the moment itself.
    if let Ok(left) = due.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(5)).await;
    }
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    for _ in 0..options.jobs.div_ceil(1000) {
        queue.recover_expired().await.expect("a housekeeping fetch");
    }
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, options.jobs);
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (stats.scheduled, stats.pending),
        (0, options.jobs),
        "every job made due"
    );
    queue.purge().await.expect("purge");
    Sample {
        rate: options.jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

/// Unique enqueues per second: `jobs` jobs with distinct uniqueness keys, 64 enqueues
/// in flight on one queue handle.
async fn unique_enqueues(server: &Redis, options: &Options, run: usize) -> Sample {
    const IN_FLIGHT: u64 = 64;
    let queue = Arc::new(
        RedisQueue::<u64>::connect(config(server, &format!("unique-{run}"), options))
            .await
            .expect("connect"),
    );
    let jobs = options.jobs;
    let cpu = CpuMeter::start(server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..IN_FLIGHT {
        let queue = Arc::clone(&queue);
        tasks.push(tokio::spawn(async move {
            let mut job = lane;
            while job < jobs {
                let options =
                    JobOptions::new().unique(format!("key-{job}"), Duration::from_secs(3600));
                let enqueued = queue
                    .enqueue_with(&job, &options)
                    .await
                    .expect("enqueue_with");
                assert!(enqueued.is_added());
                job += IN_FLIGHT;
            }
        }));
    }
    for task in tasks {
        task.await.expect("an enqueuer");
    }
    let elapsed = started.elapsed();
    let (redis_us, own_us) = cpu.per_job(server, jobs);
    assert_eq!(queue.stats().await.expect("stats").pending, jobs);
    queue.purge().await.expect("purge");
    Sample {
        rate: jobs as f64 / elapsed.as_secs_f64(),
        redis_us,
        own_us,
    }
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// The lateness of scheduled jobs (due time to start, by this machine's clock, which is
/// Redis's: same host), on an idle pool, or (`busy`) on one draining a backlog of
/// plain jobs. A job's value is its due time (ms), 0 for the backlog's.
async fn lateness(server: &Redis, options: &Options, busy: bool) -> Vec<Duration> {
    let name = if busy { "late-busy" } else { "late-idle" };
    let queue = RedisQueue::<u64>::connect(config(server, name, options))
        .await
        .expect("connect");
    let producer = RedisQueue::<u64>::connect(config(server, name, options))
        .await
        .expect("connect");
    if busy {
        // Enough for the pool to stay busy through the measurement.
        producer
            .enqueue_bulk(std::iter::repeat_n(0, 2_000_000))
            .await
            .expect("a backlog");
    }
    let (late_tx, late_rx) = flume::unbounded::<Duration>();
    let pool = PoolBuilder::new()
        .workers(if busy { options.workers } else { 8 })
        .queue(queue)
        .build(move |due: u64| {
            let late = late_tx.clone();
            async move {
                if due > 0 {
                    let now = epoch_ms(SystemTime::now());
                    let _ = late.send(Duration::from_millis(now.saturating_sub(due)));
                }
                Ok::<(), Infallible>(())
            }
        })
        .expect("a pool");
    let mut latencies = Vec::with_capacity(options.lateness);
    for n in 0..options.lateness as u64 {
        let due = SystemTime::now() + Duration::from_millis(20 + n * 7 % 80);
        producer
            .enqueue_at(&epoch_ms(due), due)
            .await
            .expect("enqueue_at");
        let late = tokio::time::timeout(HANG_GUARD, late_rx.recv_async())
            .await
            .expect("hang guard")
            .expect("the pool runs");
        latencies.push(late);
    }
    let left = producer.stats().await.expect("stats").pending;
    if busy {
        assert!(
            left > 0,
            "the backlog ran out during the measurement: make it larger"
        );
    }
    pool.shutdown().await;
    producer.purge().await.expect("purge");
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let redis = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores; {redis}")
}

/// `--netns`: makes a namespace for Redis and one for the bench, joined by a veth
/// link, starts redis-server in the first and this bench again in the second (with
/// `--redis-at`), and returns its exit code. Namespaces and server go on return or
/// panic (their `Drop`).
fn run_in_netns() -> i32 {
    use crewpool_redis::testing::net::Netns;
    let redis_host = Netns::new("bench-redis");
    let bench_host = Netns::new("bench-work");
    let link = redis_host.link(&bench_host, 31);
    // Stopped when this returns or panics.
    let _server = crewpool_redis::testing::net::NetnsRedis::start(&redis_host);
    let at = format!("{}:6379", link.here());
    eprintln!(
        "Redis in namespace {} at {at}; this bench in {} at {}, over a veth link",
        redis_host.name(),
        bench_host.name(),
        link.there()
    );
    let exe = std::env::current_exe().expect("this bench's path");
    let args = std::env::args().skip(1).filter(|arg| arg != "--netns");
    let status = bench_host
        .command(exe.to_str().expect("a UTF-8 path"))
        .args(args)
        .args(["--redis-at", &at])
        .status()
        .expect("the bench in its namespace");
    status.code().unwrap_or(1)
}

fn main() {
    let mut options = Options::parse();
    if options.netns {
        std::process::exit(run_in_netns());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows: Vec<String> = Vec::new();
    let row = |rows: &mut Vec<String>, what: &str, (median, low, high): (Sample, f64, f64)| {
        let line = format!(
            "| {what} | {:.0} | {:.0}–{:.0} | {:.2} | {:.2} |",
            median.rate, low, high, median.redis_us, median.own_us
        );
        eprintln!("{line}");
        rows.push(line);
    };
    runtime.block_on(async {
        // No persistence here: what is measured is the queue, not the disk.
        let server = match &options.redis_at {
            None => Redis::Own(RedisServer::start()),
            Some(at) => {
                let (host, port) = at.rsplit_once(':').expect("--redis-at host:port");
                Redis::At {
                    host: host.to_owned(),
                    port: port.parse().expect("--redis-at host:port"),
                }
            }
        };
        let _proxy = options.rtt_ms.map(|rtt| {
            let target = server.addr();
            let proxy = Proxy::start(target, Duration::from_secs_f64(rtt / 2000.0));
            options.via = Some(format!("redis://{}", proxy.addr()));
            eprintln!("through a proxy adding {rtt} ms to every round trip");
            proxy
        });
        let _replica = options.replica.then(|| {
            assert!(!options.netns && options.redis_at.is_none(), "--replica is for a server on loopback");
            let replica = RedisServer::builder()
                .args(&["--replicaof", "127.0.0.1", &server.port().to_string()])
                .start();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
            {
                assert!(Instant::now() < deadline, "the replica did not sync");
                std::thread::sleep(Duration::from_millis(50));
            }
            replica
        });
        if options.only.as_deref() == Some("single") {
            let mut samples = Vec::new();
            for run in 0..options.runs {
                samples.push(single_enqueues(&server, &options, run).await);
            }
            row(&mut rows, "single enqueues/s (64 in flight)", median(samples));
        }
        if options.wants("enqueue") {
            let mut samples = Vec::new();
            for run in 0..options.runs {
                let queue =
                    RedisQueue::<u64>::connect(config(&server, &format!("enqueue-{run}"), &options))
                        .await
                        .expect("connect");
                samples.push(enqueue(&server, &queue, options.jobs).await);
                queue.purge().await.expect("purge");
            }
            row(&mut rows, "enqueued/s (enqueue_bulk)", median(samples));
        }
        if options.wants("enqueue") || options.wants("baselines") {
            let mut samples = Vec::new();
            for _ in 0..options.runs {
                samples.push(baseline_push(&server, options.jobs).await);
            }
            row(
                &mut rows,
                "baseline: raw pipelined LPUSH of ids",
                median(samples),
            );
        }
        if options.wants("processed") && !options.rtts.is_empty() {
            // One proxy per delay (`None`: straight to Redis).
            let proxies: Vec<Option<Proxy>> = options
                .rtts
                .iter()
                .map(|rtt| rtt.map(|rtt| Proxy::start(server.addr(), Duration::from_secs_f64(rtt / 2000.0))))
                .collect();
            let label = |rtt: Option<f64>| match rtt {
                None => "direct".to_owned(),
                Some(rtt) => format!("proxy, {rtt} ms RTT"),
            };
            let pings: Vec<Arc<std::sync::Mutex<Vec<Duration>>>> =
                proxies.iter().map(|_| Arc::default()).collect();
            for &mode in &options.ack_modes {
                let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); proxies.len()];
                for run in 0..options.runs {
                    for (at, proxy) in proxies.iter().enumerate() {
                        let url = proxy
                            .as_ref()
                            .map_or_else(|| server.url(), |proxy| format!("redis://{}", proxy.addr()));
                        eprintln!("  {}:", label(options.rtts[at]));
                        // The round trip the queue sees, measured beside it.
                        let pinger = tokio::spawn(ping_times(url.clone(), Arc::clone(&pings[at])));
                        samples[at].push(processed(&server, url, &options, mode, run).await);
                        pinger.abort();
                    }
                }
                let mut first = None;
                for (at, samples) in samples.into_iter().enumerate() {
                    let measured = median(samples);
                    let base = *first.get_or_insert(measured.0.rate);
                    row(
                        &mut rows,
                        &format!(
                            "processed/s ({mode:?} acks, {}, PING under load p50 {:.2} ms; {:.2}× the first)",
                            label(options.rtts[at]),
                            {
                                let mut times = pings[at].lock().unwrap().clone();
                                times.sort();
                                times.get(times.len() / 2).map_or(0.0, |t| t.as_secs_f64() * 1e3)
                            },
                            measured.0.rate / base
                        ),
                        measured,
                    );
                }
            }
        } else if options.wants("processed") {
            for &mode in &options.ack_modes {
                let mut samples = Vec::new();
                for run in 0..options.runs {
                    let url = options.via.clone().unwrap_or_else(|| server.url());
                    samples.push(processed(&server, url, &options, mode, run).await);
                }
                row(
                    &mut rows,
                    &format!("processed/s ({mode:?} acks)"),
                    median(samples),
                );
            }
        }
        if options.wants("processed") || options.wants("baselines") {
            let mut samples = Vec::new();
            for _ in 0..options.runs {
                samples.push(baseline_blmove(&server, options.jobs).await);
            }
            row(
                &mut rows,
                "baseline: BLMOVE + LREM, 50 connections",
                median(samples),
            );
        }
        if options.wants("scheduled") {
            let mut samples = Vec::new();
            for run in 0..options.runs {
                samples.push(made_due(&server, &options, run).await);
            }
            row(&mut rows, "scheduled jobs made due/s (housekeeping fetches)", median(samples));
        }
        if options.wants("unique") {
            let mut samples = Vec::new();
            for run in 0..options.runs {
                samples.push(unique_enqueues(&server, &options, run).await);
            }
            row(&mut rows, "unique enqueues/s (64 in flight)", median(samples));
        }
        let mut latency_rows = Vec::new();
        if options.wants("lateness") && options.lateness > 0 {
            for busy in [false, true] {
                let late = lateness(&server, &options, busy).await;
                latency_rows.push(format!(
                    "| scheduled job lateness (due to start), {} pool, {} jobs | p50 {:?} | p99 {:?} | max {:?} |",
                    if busy { "busy" } else { "idle" },
                    late.len(),
                    percentile(&late, 50),
                    percentile(&late, 99),
                    late[late.len() - 1],
                ));
            }
        }
        if options.wants("pickup") && options.pickups > 0 {
            let latencies = pickup(&server, &options).await;
            latency_rows.push(format!(
                "| idle pickup (enqueue to start), {} jobs | p50 {:?} | p99 {:?} | max {:?} |",
                latencies.len(),
                percentile(&latencies, 50),
                percentile(&latencies, 99),
                latencies[latencies.len() - 1],
            ));
        }
        if options.wants("roundtrip") && options.pickups > 0 {
            let latencies = roundtrip(&server, &options).await;
            latency_rows.push(format!(
                "| result round trip (submit to result), {} jobs | p50 {:?} | p99 {:?} | max {:?} |",
                latencies.len(),
                percentile(&latencies, 50),
                percentile(&latencies, 99),
                latencies[latencies.len() - 1],
            ));
        }
        if options.wants("repickup") && options.kills > 0 {
            let times = repickup(&server, &options).await;
            latency_rows.push(format!(
                "| re-pickup after SIGKILL (lease {} ms), {} kills | p50 {:?} | min {:?} | max {:?} |",
                options.lease_ms,
                times.len(),
                percentile(&times, 50),
                times[0],
                times[times.len() - 1],
            ));
        }
        println!("\nmachine: {}", machine());
        println!(
            "settings: {} jobs, {} runs (median, min–max), {} workers, batch {}, prefetch {}; \
             one redis-server without persistence{}; this process is the one worker process",
            options.jobs,
            options.runs,
            options.workers,
            options.batch.map_or("default (1000)".to_owned(), |b| b.to_string()),
            options.prefetch.map_or("default (adapts to the pace)".to_owned(), |p| p.to_string()),
            match &options.redis_at {
                Some(at) => format!(" in a network namespace of its own at {at}, over veth"),
                None => " on loopback".to_owned(),
            }
        );
        if !rows.is_empty() {
            println!("\n| measure | median jobs/s | range | Redis CPU µs/job | worker CPU µs/job |");
            println!("|---|---|---|---|---|");
            for line in &rows {
                println!("{line}");
            }
        }
        if !latency_rows.is_empty() {
            println!("\n| latency | | | |\n|---|---|---|---|");
            for line in &latency_rows {
                println!("{line}");
            }
        }
    });
}
