//! `cargo xtask chaos`: the Redis backend under fire, then an audit.
//!
//! Against a `redis-server` of its own (a free loopback port, its own directory, AOF
//! with `appendfsync always`, so Redis keeps everything it acknowledged), it runs the
//! `redis_worker` example as several worker processes and the `redis_producer` example
//! to enqueue the jobs at a steady rate, both keeping the audit ledger (`--audit`). While the jobs flow it SIGKILLs worker
//! processes at random moments (starting a fresh one each time) and kills and restarts
//! the Redis server once. When everything has settled it stops the workers gracefully
//! and audits the run with `redis_distributed tally`: every job the producer enqueued
//! must have completed at least once (jobs that ran more than once are counted
//! separately), and nothing may be left pending, scheduled, leased, delayed or
//! dead-lettered, nor any lease left in Redis.
//!
//! The jobs are a mix (`redis_producer --mix`): plain, at priority levels (the workers
//! take them by weight), scheduled up to 1.5 s ahead, and unique (each enqueued three
//! times with its key), plus a periodic schedule ticking every 500 ms while the
//! producer runs. The audit also checks their promises: no scheduled job started before
//! its time (by Redis's clock), a uniqueness key made one job per window, every tick
//! fired once and its job ran.
//!
//! One batch in five is submitted through a pool of the producer process and every
//! job's result is awaited (`--await-results`): the audit counts results that were the
//! job's own number, wrong, or missing (none within 3 minutes); wrong or missing ones
//! fail the run (`--no-results` leaves them out). Half-way, the producer pauses the
//! queue for every worker process for a second and resumes it (`--pause-ms 1000`); the audit checks the pause happened.
//!
//! The moments are drawn from a xorshift generator seeded from the clock; the seed is
//! printed, and `--seed` replays the same schedule. The last line is the tally, e.g.
//! `chaos: jobs=20000 completed=20000 duplicates=37 lost=0`; the task fails on any loss.
//!
//! With `--net`, Redis and the worker processes run on separate hosts: two network
//! namespaces joined by a veth link (made with `ip`, as root; removed afterwards).
//! Redis, the producer and the audit are on one host, the workers on the other, and
//! the schedule adds a partition: the link goes down for twice the lease, so the
//! workers' jobs are taken back and their late settlements refused; the audit is the
//! same.
//!
//! Std-only like the rest of xtask: the Redis-speaking parts are the examples it builds.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::util::{Result, run, target_dir};

const USAGE: &str = "usage: cargo xtask chaos [--short] [--net] [--no-results] [--jobs N] [--kills K]\n\
    \x20                        [--processes P] [--workers W] [--rate R] [--seed S]\n\
    \x20                        [--release | --debug]\n\n\
    --short         the CI size: 3,000 jobs, 3 kills, 3 processes, debug build\n\
    --net           Redis and the workers on separate network namespaces, one partition\n\
    --no-results    submit every job without awaiting results (by default one batch in\n\
    \x20               five is submitted through a pool and its results awaited)\n\
    --jobs N        jobs to enqueue (default 20,000)\n\
    --kills K       worker processes to SIGKILL at random moments (default 12)\n\
    --processes P   worker processes running at once (default 4)\n\
    --workers W     workers per process (default 16)\n\
    --rate R        jobs enqueued per second (default 2,000)\n\
    --seed S        replay the schedule of an earlier run\n\
    --release       build the examples in release (the default without --short)\n\
    --debug         build them in debug (the default with --short)\n\n\
    Needs redis-server and redis-cli on the PATH (apt-get install redis-server).\n\
    The Redis server is killed and restarted once, with AOF (appendfsync always).";

/// Each job sleeps about this long (0 to twice this), so that at the enqueue rate a few
/// dozen jobs are running at any moment and every kill lands mid-job.
const WORK_US: u64 = 10_000;
/// The workers' lease: a killed worker's jobs come back this long after its last
/// heartbeat.
const LEASE_MS: u64 = 1000;
/// How long the audit waits for the last jobs after the producer is done (a hang guard).
const SETTLE_SECONDS: u64 = 180;
/// How long a starting redis-server may take to answer PING (a hang guard).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Plan {
    jobs: u64,
    kills: usize,
    processes: usize,
    workers: usize,
    rate: u64,
    seed: u64,
    release: bool,
    net: bool,
    /// Await results (`--await-results` to the producer).
    results: bool,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Option<Plan>> {
        let short = args.iter().any(|arg| arg == "--short");
        let mut plan = if short {
            Plan {
                jobs: 3_000,
                kills: 3,
                processes: 3,
                workers: 16,
                rate: 1_000,
                seed: clock_seed(),
                release: false,
                net: false,
                results: true,
            }
        } else {
            Plan {
                jobs: 20_000,
                kills: 12,
                processes: 4,
                workers: 16,
                rate: 2_000,
                seed: clock_seed(),
                release: true,
                net: false,
                results: true,
            }
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u64> {
                let value = args
                    .next()
                    .ok_or_else(|| format!("`{name}` needs a value\n\n{USAGE}"))?;
                value
                    .replace('_', "")
                    .parse()
                    .map_err(|e| format!("`{name} {value}`: {e}"))
            };
            match arg.as_str() {
                "--short" => {}
                "--net" => plan.net = true,
                "--results" => plan.results = true,
                "--no-results" => plan.results = false,
                "--jobs" => plan.jobs = number("--jobs")?.max(1),
                "--kills" => plan.kills = number("--kills")? as usize,
                "--processes" => plan.processes = (number("--processes")? as usize).max(2),
                "--workers" => plan.workers = (number("--workers")? as usize).max(1),
                "--rate" => plan.rate = number("--rate")?.max(1),
                "--seed" => plan.seed = number("--seed")?.max(1),
                "--release" => plan.release = true,
                "--debug" => plan.release = false,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
        }
        Ok(Some(plan))
    }
}

pub(crate) fn task(args: &[String]) -> Result {
    let Some(plan) = Plan::parse(args)? else {
        return Ok(());
    };
    let started = Instant::now();
    let profile = if plan.release { "release" } else { "debug" };
    let mut build = vec!["build", "--features", "redis"];
    if plan.release {
        build.push("--release");
    }
    for example in ["redis_producer", "redis_worker", "redis_distributed"] {
        build.extend(["--example", example]);
    }
    run("cargo", &build)?;
    let built = started.elapsed();
    let examples = target_dir()?.join(profile).join("examples");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = target_dir()?.join("chaos").join(format!("run-{stamp}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    let outcome = Run::new(plan.clone(), examples, dir.clone())?.execute();
    println!(
        "chaos: builds {built:.1?}, run {:.1?}, seed {} (replay with --seed {})",
        started.elapsed() - built,
        plan.seed,
        plan.seed
    );
    match outcome {
        Ok(tally) => {
            println!("{}", tally.describe());
            // The tally is the last line on stdout, pass or fail.
            println!("{}", tally.line());
            if tally.lost > 0 || tally.in_flight() > 0 || tally.enqueued != plan.jobs {
                return Err(format!(
                    "jobs were lost or left in flight; logs in {}",
                    dir.display()
                ));
            }
            if tally.broken() > 0
                || tally.ticks == 0
                || (plan.results && tally.results_ok == 0)
                || tally.pauses != 1
            {
                return Err(format!(
                    "a promise of scheduled, unique, periodic or awaited jobs was broken (or no tick \
                     fired, no result awaited, no pause made); logs in {}",
                    dir.display()
                ));
            }
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Err(error) => Err(format!("{error}; logs in {}", dir.display())),
    }
}

fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Truncation is fine: any non-zero bits make a seed.
    (nanos as u64) | 1
}

/// xorshift64: std-only randomness for the schedule.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A moment uniformly in `[from, to)`.
    fn between(&mut self, from: Duration, to: Duration) -> Duration {
        let span = to.saturating_sub(from).as_micros().max(1) as u64;
        from + Duration::from_micros(self.next() % span)
    }
}

/// What the audit found.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    enqueued: u64,
    completed: u64,
    twice: u64,
    extra_runs: u64,
    lost: u64,
    pending: u64,
    leased: u64,
    delayed: u64,
    dead: u64,
    scheduled: u64,
    /// Scheduled jobs started before their time.
    early: u64,
    /// Uniqueness keys that made more than one job.
    unique_violations: u64,
    /// Periodic ticks fired, fired twice, whose job never ran, skipped.
    ticks: u64,
    tick_duplicates: u64,
    ticks_lost: u64,
    ticks_skipped: u64,
    /// Leases left in Redis (`active` entries): should be none once nothing is leased.
    leases: u64,
    /// Jobs the worker processes took back from killed ones (from their logs).
    taken_back: u64,
    /// Awaited results: the job's number, something else, none in time.
    results_ok: u64,
    results_wrong: u64,
    results_missing: u64,
    /// Pauses the producer made (and resumed).
    pauses: u64,
}

impl Tally {
    /// Reads the `tally:` line `redis_distributed tally` prints.
    fn parse(output: &str) -> Result<Tally> {
        let line = output
            .lines()
            .rev()
            .find(|line| line.starts_with("tally: "))
            .ok_or_else(|| format!("no tally line in {output:?}"))?;
        let mut tally = Tally::default();
        for field in line["tally: ".len()..].split_whitespace() {
            let (name, value) = field
                .split_once('=')
                .ok_or_else(|| format!("bad tally field {field:?}"))?;
            let value: u64 = value
                .parse()
                .map_err(|e| format!("bad tally field {field:?}: {e}"))?;
            match name {
                "enqueued" => tally.enqueued = value,
                "completed" => tally.completed = value,
                "twice" => tally.twice = value,
                "extra_runs" => tally.extra_runs = value,
                "lost" => tally.lost = value,
                "pending" => tally.pending = value,
                "leased" => tally.leased = value,
                "delayed" => tally.delayed = value,
                "dead" => tally.dead = value,
                "scheduled" => tally.scheduled = value,
                "early" => tally.early = value,
                "unique_violations" => tally.unique_violations = value,
                "ticks" => tally.ticks = value,
                "tick_duplicates" => tally.tick_duplicates = value,
                "ticks_lost" => tally.ticks_lost = value,
                "ticks_skipped" => tally.ticks_skipped = value,
                "results_ok" => tally.results_ok = value,
                "results_wrong" => tally.results_wrong = value,
                "results_missing" => tally.results_missing = value,
                "pauses" => tally.pauses = value,
                _ => {}
            }
        }
        Ok(tally)
    }

    fn in_flight(&self) -> u64 {
        self.pending + self.scheduled + self.leased + self.delayed + self.dead + self.leases
    }

    /// The promises of the mixed jobs that were broken.
    fn broken(&self) -> u64 {
        self.early
            + self.unique_violations
            + self.tick_duplicates
            + self.ticks_lost
            + self.results_wrong
            + self.results_missing
    }

    fn describe(&self) -> String {
        format!(
            "chaos: audit: enqueued {}, completed {}, ran more than once {} ({} extra runs), lost {}; \
             left in Redis: pending {}, scheduled {}, leased {}, delayed {}, dead {}, leases {}; \
             jobs taken back from killed workers: {}; scheduled jobs started early {}, \
             uniqueness keys that made two jobs {}; periodic ticks fired {} (fired twice {}, \
             job never ran {}, skipped while Redis was down {}); awaited results right {}, \
             wrong {}, missing {}; pauses {}",
            self.enqueued,
            self.completed,
            self.twice,
            self.extra_runs,
            self.lost,
            self.pending,
            self.scheduled,
            self.leased,
            self.delayed,
            self.dead,
            self.leases,
            self.taken_back,
            self.early,
            self.unique_violations,
            self.ticks,
            self.tick_duplicates,
            self.ticks_lost,
            self.ticks_skipped,
            self.results_ok,
            self.results_wrong,
            self.results_missing,
            self.pauses
        )
    }

    fn line(&self) -> String {
        format!(
            "chaos: jobs={} completed={} duplicates={} ticks={} results={} pauses={} broken_promises={} lost={}",
            self.enqueued,
            self.completed,
            self.twice,
            self.ticks,
            self.results_ok,
            self.pauses,
            self.broken(),
            self.lost
        )
    }
}

/// Two hosts for `--net`: network namespaces joined by a veth link, deleted on drop.
struct Net {
    redis_host: String,
    worker_host: String,
    device: String,
}

/// The Redis host's address on the link.
const NET_REDIS_ADDR: &str = "10.202.1.1";

fn ip(args: &[&str]) -> Result {
    let status = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("could not run ip ({e}); --net needs iproute2 and root"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?} failed ({status}); --net needs root"))
    }
}

impl Net {
    fn new() -> Result<Net> {
        let pid = std::process::id();
        let net = Net {
            redis_host: format!("cpchaos{pid}-redis"),
            worker_host: format!("cpchaos{pid}-work"),
            device: format!("cpc{pid}r"),
        };
        let peer = format!("cpc{pid}w");
        for host in [&net.redis_host, &net.worker_host] {
            ip(&["netns", "add", host])?;
            ip(&["-n", host, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &net.redis_host,
            "link",
            "add",
            &net.device,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &net.worker_host,
        ])?;
        ip(&[
            "-n",
            &net.redis_host,
            "addr",
            "add",
            &format!("{NET_REDIS_ADDR}/30"),
            "dev",
            &net.device,
        ])?;
        ip(&[
            "-n",
            &net.worker_host,
            "addr",
            "add",
            "10.202.1.2/30",
            "dev",
            &peer,
        ])?;
        ip(&["-n", &net.redis_host, "link", "set", &net.device, "up"])?;
        ip(&["-n", &net.worker_host, "link", "set", &peer, "up"])?;
        Ok(net)
    }

    /// `program` run on `host`.
    fn command(host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", host]).arg(program);
        command
    }

    fn link(&self, up: bool) -> Result {
        ip(&[
            "-n",
            &self.redis_host,
            "link",
            "set",
            &self.device,
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for host in [&self.redis_host, &self.worker_host] {
            let _ = Command::new("ip").args(["netns", "del", host]).status();
        }
    }
}

/// A private redis-server with AOF, on a free loopback port (or, with `--net`, on the
/// Redis host).
struct Redis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The namespace it runs in (`--net`).
    host: Option<String>,
}

impl Redis {
    fn start(dir: &Path, host: Option<String>) -> Result<Redis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let mut redis = Redis {
            port,
            dir: dir.join("redis"),
            child: None,
            host,
        };
        std::fs::create_dir_all(&redis.dir)
            .map_err(|e| format!("creating {}: {e}", redis.dir.display()))?;
        redis.launch()?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL for the worker host (`--net`), else [`url`](Self::url).
    fn remote_url(&self) -> String {
        match self.host {
            Some(_) => format!("redis://{NET_REDIS_ADDR}:{}", self.port),
            None => self.url(),
        }
    }

    /// `program`, on the Redis host with `--net`.
    fn local(&self, program: &str) -> Command {
        match &self.host {
            Some(host) => Net::command(host, program),
            None => Command::new(program),
        }
    }

    fn launch(&mut self) -> Result {
        let log = self.dir.join("redis.log");
        let bind = if self.host.is_some() {
            // Its own namespace: the loopback and the link to the worker host.
            ["--bind", "0.0.0.0", "--protected-mode", "no"].as_slice()
        } else {
            ["--bind", "127.0.0.1"].as_slice()
        };
        let child = self
            .local("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(bind)
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .args(["--daemonize", "no", "--logfile"])
            .arg(&log)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "could not start redis-server ({e}); install it with `apt-get install redis-server`"
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self
                .cli(&["PING"])
                .is_ok_and(|reply| reply.trim() == "PONG")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; see {}",
                    self.port,
                    log.display()
                ));
            }
            // Waiting for another process to come up: poll a few times a second.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would; then the same server again (its AOF reloaded).
    fn restart(&mut self) -> Result<Duration> {
        self.kill();
        let down = Instant::now();
        self.launch()?;
        Ok(down.elapsed())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let output = self
            .local("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("could not run redis-cli ({e}); it comes with redis-server"))?;
        if !output.status.success() {
            return Err(format!("redis-cli {args:?} failed: {}", output.status));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One chaos run: the server, the worker processes, the schedule.
struct Run {
    plan: Plan,
    examples: PathBuf,
    dir: PathBuf,
    queue: String,
    redis: Redis,
    net: Option<Net>,
    workers: Vec<Child>,
    spawned: usize,
    producer: Option<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain(&mut self.producer) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Something the schedule does at a moment of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Kill,
    RestartRedis,
    /// The worker host cut off from Redis (`--net`), for twice the lease.
    Partition,
}

impl Run {
    fn new(plan: Plan, examples: PathBuf, dir: PathBuf) -> Result<Run> {
        let net = if plan.net { Some(Net::new()?) } else { None };
        let redis = Redis::start(&dir, net.as_ref().map(|net| net.redis_host.clone()))?;
        Ok(Run {
            plan,
            examples,
            dir,
            queue: "chaos".to_owned(),
            redis,
            net,
            workers: Vec::new(),
            spawned: 0,
            producer: None,
        })
    }

    /// An example program: the workers on the worker host, the rest beside Redis.
    fn example(&self, name: &str) -> Command {
        let path = self.examples.join(name);
        let mut command = match &self.net {
            Some(net) if name == "redis_worker" => Net::command(&net.worker_host, &path),
            Some(net) => Net::command(&net.redis_host, &path),
            None => Command::new(path),
        };
        let url = if name == "redis_worker" {
            self.redis.remote_url()
        } else {
            self.redis.url()
        };
        command.env("REDIS_URL", url);
        command
    }

    fn log(&self, name: &str) -> Result<std::fs::File> {
        let path = self.dir.join(name);
        std::fs::File::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))
    }

    fn spawn_worker(&mut self) -> Result<Child> {
        self.spawned += 1;
        let log = self.log(&format!("worker-{}.log", self.spawned))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let workers = self.plan.workers.to_string();
        self.example("redis_worker")
            .args([&self.queue, &workers])
            .args(["--prefetch", &workers, "--lease-ms", &LEASE_MS.to_string()])
            // Priority levels taken by weight.
            .arg("--weighted")
            // The audit ledger the tally reads.
            .arg("--audit")
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting redis_worker: {e}"))
    }

    fn execute(mut self) -> Result<Tally> {
        let plan = self.plan.clone();
        println!(
            "chaos: {} jobs at {}/s, {} worker processes x {} workers (lease {LEASE_MS} ms), \
             {} SIGKILLs and one Redis restart (AOF, appendfsync always) at {}; seed {}",
            plan.jobs,
            plan.rate,
            plan.processes,
            plan.workers,
            plan.kills,
            self.redis.url(),
            plan.seed
        );
        for _ in 0..plan.processes {
            let child = self.spawn_worker()?;
            self.workers.push(child);
        }

        // The schedule: kills anywhere while jobs are being enqueued (and a little
        // after), the restart in the middle of it.
        let producing = Duration::from_secs_f64(plan.jobs as f64 / plan.rate as f64);
        let mut random = Xorshift(plan.seed);
        let mut events: Vec<(Duration, Event)> = (0..plan.kills)
            .map(|_| {
                let at = random.between(
                    Duration::from_millis(300),
                    producing + Duration::from_secs(1),
                );
                (at, Event::Kill)
            })
            .collect();
        events.push((
            random.between(producing * 3 / 10, producing * 7 / 10),
            Event::RestartRedis,
        ));
        if plan.net {
            events.push((
                random.between(producing * 2 / 10, producing * 8 / 10),
                Event::Partition,
            ));
        }
        events.sort();

        let producer_log = self.log("producer.log")?;
        let producer_err = producer_log.try_clone().map_err(|e| e.to_string())?;
        let producer = self
            .example("redis_producer")
            .args([&self.queue, &plan.jobs.to_string()])
            // Small batches, 50 a second: a steady flow, so every moment has jobs running.
            .args(["--batch", &(plan.rate / 50).max(1).to_string()])
            .args(["--work-us", &WORK_US.to_string()])
            .args(["--rate", &plan.rate.to_string()])
            .arg("--audit")
            // Scheduled, prioritised and unique jobs, and a periodic schedule.
            .arg("--mix")
            .args(plan.results.then_some("--await-results"))
            .args(["--pause-ms", "1000"])
            .stdout(producer_log)
            .stderr(producer_err)
            .spawn()
            .map_err(|e| format!("starting redis_producer: {e}"))?;
        let producer = self.producer.insert(producer);
        let producer_pid = producer.id();
        let start = Instant::now();

        let mut kills = 0;
        for (at, event) in events {
            // Keeping to the schedule: wait for the event's moment.
            std::thread::sleep(at.saturating_sub(start.elapsed()));
            match event {
                Event::Kill => {
                    let victim = (random.next() % self.workers.len() as u64) as usize;
                    let mut child = self.workers.swap_remove(victim);
                    let pid = child.id();
                    let killed = child.kill();
                    let _ = child.wait();
                    killed.map_err(|e| format!("SIGKILL {pid}: {e}"))?;
                    kills += 1;
                    let replacement = self.spawn_worker()?;
                    println!(
                        "chaos: {:>6.2?}  SIGKILL worker process {pid}; started {} instead",
                        start.elapsed(),
                        replacement.id()
                    );
                    self.workers.push(replacement);
                }
                Event::Partition => {
                    if let Some(net) = &self.net {
                        net.link(false)?;
                        let cut = Instant::now();
                        std::thread::sleep(Duration::from_millis(2 * LEASE_MS));
                        net.link(true)?;
                        println!(
                            "chaos: {:>6.2?}  the worker host was cut off from Redis for {:.2?} (lease {LEASE_MS} ms)",
                            start.elapsed(),
                            cut.elapsed()
                        );
                    }
                }
                Event::RestartRedis => {
                    let down = self.redis.restart()?;
                    println!(
                        "chaos: {:>6.2?}  killed redis-server (SIGKILL) and restarted it from its AOF ({down:.2?} down)",
                        start.elapsed()
                    );
                }
            }
        }

        let status = self
            .producer
            .take()
            .map(|mut producer| producer.wait())
            .transpose()
            .map_err(|e| format!("waiting for redis_producer {producer_pid}: {e}"))?
            .ok_or("the producer went missing")?;
        if !status.success() {
            return Err(format!(
                "redis_producer failed ({status}); see producer.log"
            ));
        }
        println!(
            "chaos: {:>6.2?}  producer done; waiting for the last jobs",
            start.elapsed()
        );
        let waited = self
            .example("redis_distributed")
            .args(["tally", &self.queue, "--wait", &SETTLE_SECONDS.to_string()])
            .output()
            .map_err(|e| format!("running redis_distributed tally: {e}"))?;
        println!(
            "chaos: {:>6.2?}  {}",
            start.elapsed(),
            String::from_utf8_lossy(&waited.stdout).trim()
        );

        // Graceful stop: running jobs finish, prefetched ones go back to Redis.
        for child in &self.workers {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.workers {
            let status = child
                .wait()
                .map_err(|e| format!("waiting for a worker: {e}"))?;
            if !status.success() {
                return Err(format!("a worker process exited with {status} on SIGTERM"));
            }
        }
        self.workers.clear();
        if kills < plan.kills {
            return Err(format!("only {kills} of {} kills happened", plan.kills));
        }

        let audit = self
            .example("redis_distributed")
            .args(["tally", &self.queue])
            .output()
            .map_err(|e| format!("running redis_distributed tally: {e}"))?;
        let mut tally = Tally::parse(&String::from_utf8_lossy(&audit.stdout))?;
        let active_key = format!("crewpool:{{{}}}:active", self.queue);
        tally.leases = self
            .redis
            .cli(&["ZCARD", &active_key])?
            .trim()
            .parse()
            .map_err(|e| format!("ZCARD {active_key}: {e}"))?;
        tally.taken_back = (1..=self.spawned)
            .map(|n| taken_back(&self.dir.join(format!("worker-{n}.log"))))
            .sum();
        Ok(tally)
    }
}

/// The last "took back N" a worker process logged: the jobs of dead workers it put back
/// in the queue.
fn taken_back(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|line| {
            let (_, rest) = line.split_once("took back ")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
