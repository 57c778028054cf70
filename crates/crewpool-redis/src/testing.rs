//! Test support (feature `testing`): a private `redis-server` on a free loopback port
//! that tests, examples and benches can start, kill and restart.
//!
//! ```no_run
//! use crewpool_redis::testing::RedisServer;
//!
//! let mut server = RedisServer::builder().aof(true).start();
//! let url = server.url(); // redis://127.0.0.1:<port>
//! server.cli(&["SET", "k", "v"]);
//! server.kill(); // SIGKILL, as a crash would
//! server.restart(); // same port, same directory: the AOF brings the data back
//! assert_eq!(server.cli(&["GET", "k"]).trim(), "v");
//! // Dropping the server kills it and deletes its directory.
//! ```
//!
//! The helpers panic with a clear message when something goes wrong (they are for
//! tests); a missing `redis-server` binary says how to install it.

// Test support: panicking with a message is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod ledger;
pub mod net;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a starting server may take to say it is ready (a hang guard).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The message for a missing binary.
const INSTALL_HINT: &str = "install it with `apt-get install redis-server` (Debian/Ubuntu); \
     the Redis tests start their own server on a free loopback port";

/// An ACL user the server is started with.
#[derive(Debug, Clone)]
struct User {
    name: String,
    password: String,
}

/// Configures a [`RedisServer`] before starting it.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisServerBuilder {
    aof: bool,
    users: Vec<User>,
    default_user_off: bool,
    args: Vec<String>,
    port: Option<u16>,
}

impl RedisServerBuilder {
    /// Persists every write to an append-only file with `appendfsync always`, so a
    /// killed server restarts with everything it acknowledged.
    pub fn aof(mut self, aof: bool) -> Self {
        self.aof = aof;
        self
    }

    /// Adds an ACL user with full rights and this password.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(User {
            name: name.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Disables the passwordless `default` user, so every client must authenticate.
    pub fn default_user_off(mut self) -> Self {
        self.default_user_off = true;
        self
    }

    /// Adds a raw `redis-server` argument (e.g. `--maxmemory-policy`, then
    /// `allkeys-lru`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Adds raw `redis-server` arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    /// Starts on this loopback port instead of a free one (for a test that points a
    /// client at the port before the server exists).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server on a free loopback port (or the one given to
    /// [`port`](Self::port)) and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing or does not start.
    pub fn start(self) -> RedisServer {
        let dir = fresh_dir();
        if let Some(port) = self.port {
            return match launch(&self, port, &dir) {
                Ok(child) => RedisServer {
                    options: self,
                    port,
                    dir,
                    child: Some(child),
                },
                Err(error) => panic!("redis-server did not start on port {port}: {error}"),
            };
        }
        let mut last_error = String::new();
        // Another process may take the port between our probe and the server's bind:
        // try a few ports.
        for _ in 0..10 {
            let port = free_port();
            match launch(&self, port, &dir) {
                Ok(child) => {
                    return RedisServer {
                        options: self,
                        port,
                        dir,
                        child: Some(child),
                    };
                }
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start on any of 10 free ports; last error: {last_error}");
    }
}

/// A `redis-server` process of this test, on `127.0.0.1` and a free port, with its
/// own data directory. Dropping it kills the server and deletes the directory.
#[derive(Debug)]
pub struct RedisServer {
    options: RedisServerBuilder,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with the defaults: no persistence (`--save "" --appendonly no`),
    /// passwordless default user.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing or does not start.
    pub fn start() -> Self {
        RedisServer::builder().start()
    }

    /// A builder for other settings (AOF, ACL users).
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://<user>:<password>@127.0.0.1:<port>`.
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (as a crash or an OOM kill would) and waits for
    /// it to exit. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same directory (and so, with
    /// AOF, the same data); kills it first if it still runs.
    ///
    /// # Panics
    ///
    /// When the server does not start (for instance because another process took the
    /// port meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        match launch(&self.options, self.port, &self.dir) {
            Ok(child) => self.child = Some(child),
            Err(error) => panic!(
                "redis-server did not restart on port {}: {error}",
                self.port
            ),
        }
    }

    /// Runs `redis-cli` against this server (as the first ACL user if the default
    /// user is off) and returns its standard output.
    ///
    /// # Panics
    ///
    /// When `redis-cli` is missing or exits with an error.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "--no-auth-warning",
        ]);
        if self.options.default_user_off
            && let Some(user) = self.options.users.first()
        {
            command.args(["--user", &user.name, "--pass", &user.password]);
        }
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("could not run redis-cli ({error}); {INSTALL_HINT}"));
        assert!(
            output.status.success(),
            "redis-cli {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("a bound address").port()
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "crewpool-redis-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("creating the server's directory");
    dir
}

/// Starts `redis-server` and waits for its "Ready to accept connections" line.
fn launch(options: &RedisServerBuilder, port: u16, dir: &Path) -> Result<Child, String> {
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--daemonize",
        "no",
        "--logfile",
        "",
        "--loglevel",
        "notice",
        "--save",
        "",
        "--dir",
    ]);
    command.arg(dir);
    if options.aof {
        command.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        command.args(["--appendonly", "no"]);
    }
    for user in &options.users {
        command.args(["--user", &user.name, "on"]);
        command.arg(format!(">{}", user.password));
        command.args(["~*", "&*", "+@all"]);
    }
    if options.default_user_off {
        command.args(["--user", "default", "off"]);
    }
    command.args(&options.args);
    spawn_ready(command, "Ready to accept connections", port)
}

/// Spawns a Redis process and waits until its log shows `marker`.
fn spawn_ready(mut command: Command, marker: &str, port: u16) -> Result<Child, String> {
    let marker = marker.to_owned();
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("redis-server was not found on PATH; {INSTALL_HINT}")
        }
        Err(error) => panic!("could not start redis-server: {error}"),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready_tx, ready_rx) = mpsc::channel();
    // Reads the log: reports readiness (or the failure), then keeps draining it so
    // the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut reported = false;
        let mut seen = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !reported {
                if line.contains(&marker) {
                    let _ = ready_tx.send(Ok(()));
                    reported = true;
                } else {
                    seen.push_str(&line);
                    seen.push('\n');
                }
            }
        }
        if !reported {
            let _ = ready_tx.send(Err(seen));
        }
    });
    match ready_rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(())) => Ok(child),
        Ok(Err(log)) => {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            Err(format!("redis-server exited on port {port}: {log}{stderr}"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "redis-server on port {port} did not become ready within {READY_TIMEOUT:?}"
            ))
        }
    }
}

/// Runs `redis-cli` with `args` and returns its standard output.
fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("could not run redis-cli ({error}); {INSTALL_HINT}"));
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `within`.
fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster of this test: `masters` masters with `replicas` replicas each,
/// every node a [`RedisServer`] with `--cluster-enabled yes` on a free loopback port,
/// joined with `redis-cli --cluster create`. Dropping it kills every node and deletes
/// their directories.
///
/// ```no_run
/// use crewpool_redis::testing::RedisCluster;
///
/// let mut cluster = RedisCluster::start(3, 1);
/// let url = cluster.url(); // redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...
/// let port = cluster.master_of("crewpool:{emails}:pending");
/// cluster.kill(port); // its replica takes over
/// cluster.wait_healthy();
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// How long a cluster may take to form or to fail over (a hang guard).
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

impl RedisCluster {
    /// Starts the nodes, joins them and waits until every slot is served.
    ///
    /// # Panics
    ///
    /// When a node does not start or the cluster does not form.
    pub fn start(masters: usize, replicas: usize) -> Self {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::builder()
                    .args(&[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-replica-validity-factor",
                        "0",
                    ])
                    .start()
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        let replicas = replicas.to_string();
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        redis_cli(&args);
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy();
        cluster
    }

    /// `redis+cluster://127.0.0.1:<port>,...` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no node of this cluster on port {port}"))
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|node| node.pid().is_some())
    }

    /// Runs `redis-cli` against the node on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        self.node(port).cli(args)
    }

    /// Runs `redis-cli -c` (following redirections) against a running node.
    pub fn cli_any(&self, args: &[&str]) -> String {
        let node = self.running().next().expect("a running node");
        let port = node.port().to_string();
        let mut all = vec!["-c", "-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        redis_cli(&all)
    }

    /// The hash slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        self.cli_any(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("a slot number")
    }

    /// The port of the master serving `key`'s slot now (as a running node sees it).
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = self.slot(key);
        self.master_of_slot(slot)
    }

    /// The port of the master serving `slot` now.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let shards = self.cli_any(&["CLUSTER", "SLOTS"]);
        // redis-cli prints the nested reply flat: start, end, then per node ip, port, id.
        let lines: Vec<&str> = shards.lines().map(str::trim).collect();
        let mut i = 0;
        while i + 3 < lines.len() {
            if let (Ok(start), Ok(end)) = (lines[i].parse::<u16>(), lines[i + 1].parse::<u16>())
                && lines[i + 2] == "127.0.0.1"
                && (start..=end).contains(&slot)
            {
                return lines[i + 3].parse().expect("a port");
            }
            i += 1;
        }
        panic!("no master serves slot {slot}: {shards}")
    }

    /// The ports of the running masters.
    pub fn masters(&self) -> Vec<u16> {
        self.running()
            .filter(|node| node.cli(&["ROLE"]).starts_with("master"))
            .map(RedisServer::port)
            .collect()
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port() == port) {
            node.kill();
        }
    }

    /// Starts the node on `port` again (it rejoins as whatever the cluster makes it).
    pub fn restart(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port() == port) {
            node.restart();
        }
    }

    /// Waits until every running node reports `cluster_state:ok` and sees every
    /// slot served (after a start, a kill or a migration).
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub fn wait_healthy(&self) {
        wait_until("the cluster serving every slot", CLUSTER_TIMEOUT, || {
            self.running().all(|node| {
                let info = node.cli(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            })
        });
    }

    /// Moves `slot` (and its keys) to the master on `to`, with `redis-cli --cluster
    /// reshard`'s steps done one by one (`SETSLOT IMPORTING/MIGRATING`, `MIGRATE`,
    /// `SETSLOT NODE`) so clients meet `ASK` and then `MOVED` while it runs.
    pub fn migrate_slot(&self, slot: u16, to: u16) {
        let from = self.master_of_slot(slot);
        if from == to {
            return;
        }
        let id = |port: u16| self.cli(port, &["CLUSTER", "MYID"]).trim().to_owned();
        let (from_id, to_id) = (id(from), id(to));
        let slot_arg = slot.to_string();
        self.cli(
            to,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id],
        );
        self.cli(
            from,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id],
        );
        let to_port = to.to_string();
        loop {
            let keys = self.cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"]);
            let keys: Vec<&str> = keys
                .lines()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .collect();
            if keys.is_empty() {
                break;
            }
            let mut args = vec![
                "MIGRATE",
                "127.0.0.1",
                &to_port,
                "",
                "0",
                "5000",
                "REPLACE",
                "KEYS",
            ];
            args.extend(keys);
            self.cli(from, &args);
        }
        for port in [to, from] {
            self.cli(port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
        }
        for node in self.running() {
            if node.cli(&["ROLE"]).starts_with("master") {
                node.cli(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to_id]);
            }
        }
    }
}

/// One `redis-server --sentinel` process of a [`RedisSentinels`] group.
#[derive(Debug)]
struct Sentinel {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The master name the Sentinels of [`RedisSentinels`] watch.
pub const SENTINEL_SERVICE: &str = "crewpool";

/// A master, a replica and three Sentinels watching them (quorum 2, a master is
/// down after 1 s), all on free loopback ports. Dropping it kills every process and
/// deletes their directories.
///
/// ```no_run
/// use crewpool_redis::testing::RedisSentinels;
///
/// let mut group = RedisSentinels::start();
/// let url = group.url(); // redis+sentinel://127.0.0.1:<s1>,...,127.0.0.1:<s3>/crewpool
/// group.kill_master();
/// let promoted = group.wait_for_failover(); // the replica's port
/// ```
#[derive(Debug)]
pub struct RedisSentinels {
    servers: Vec<RedisServer>,
    sentinels: Vec<Sentinel>,
    master: u16,
}

impl RedisSentinels {
    /// Starts the master, its replica (synchronised before this returns) and the
    /// Sentinels (each seeing the other two and the replica before this returns).
    ///
    /// # Panics
    ///
    /// When a process does not start or the group does not form within 30 s.
    pub fn start() -> Self {
        let master = RedisServer::start();
        let replica = RedisServer::builder()
            .args(&["--replicaof", "127.0.0.1", &master.port().to_string()])
            .start();
        wait_until("the replica in sync", CLUSTER_TIMEOUT, || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let master_port = master.port();
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let mut last_error = String::new();
            let mut started = None;
            for _ in 0..10 {
                let port = free_port();
                let dir = fresh_dir();
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\n\
                         sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                         sentinel failover-timeout {SENTINEL_SERVICE} 5000\n\
                         sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
                    ),
                )
                .expect("writing sentinel.conf");
                let mut command = Command::new("redis-server");
                command.arg(&conf).arg("--sentinel");
                command.args(["--daemonize", "no", "--logfile", "", "--dir"]);
                command.arg(&dir);
                match spawn_ready(command, "+monitor master", port) {
                    Ok(child) => {
                        started = Some(Sentinel {
                            port,
                            dir,
                            child: Some(child),
                        });
                        break;
                    }
                    Err(error) => {
                        last_error = error;
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                }
            }
            sentinels.push(started.unwrap_or_else(|| {
                panic!("a Sentinel did not start on any of 10 free ports: {last_error}")
            }));
        }
        let group = RedisSentinels {
            servers: vec![master, replica],
            sentinels,
            master: master_port,
        };
        wait_until(
            "the Sentinels seeing each other and the replica",
            CLUSTER_TIMEOUT,
            || {
                group.sentinels.iter().all(|sentinel| {
                    let info = group
                        .sentinel_cli(sentinel.port, &["SENTINEL", "MASTER", SENTINEL_SERVICE]);
                    let field = |name: &str| {
                        let lines: Vec<&str> = info.lines().map(str::trim).collect();
                        lines
                            .iter()
                            .position(|line| *line == name)
                            .and_then(|i| lines.get(i + 1))
                            .and_then(|value| value.parse::<u32>().ok())
                            .unwrap_or(0)
                    };
                    field("num-other-sentinels") == 2 && field("num-slaves") == 1
                })
            },
        );
        group
    }

    fn sentinel_cli(&self, port: u16, args: &[&str]) -> String {
        let port = port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        redis_cli(&all)
    }

    /// `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/crewpool`.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!(
            "redis+sentinel://{}/{SENTINEL_SERVICE}",
            sentinels.join(",")
        )
    }

    /// The port of the master as the Sentinels see it now.
    pub fn master_port(&self) -> u16 {
        let sentinel = self
            .sentinels
            .iter()
            .find(|sentinel| sentinel.child.is_some())
            .expect("a running Sentinel");
        let reply = self.sentinel_cli(
            sentinel.port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE],
        );
        reply
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("no master address in {reply:?}"))
    }

    /// Runs `redis-cli` against the current master.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.master_port();
        self.servers
            .iter()
            .find(|server| server.port() == port)
            .expect("the master is one of the group's servers")
            .cli(args)
    }

    /// Stops replication to the current master's replicas without anyone noticing a
    /// failure: the replicas' connection is closed and they cannot log in again
    /// (a wrong `masteruser`), so the master's writes from now on reach no replica —
    /// the window in which a failover loses writes, held open on purpose.
    pub fn cut_replication(&self) {
        let master = self.master_port();
        for server in self
            .servers
            .iter()
            .filter(|s| s.port() != master && s.pid().is_some())
        {
            server.cli(&["CONFIG", "SET", "masteruser", "crewpool-cut"]);
            server.cli(&["CONFIG", "SET", "masterauth", "crewpool-cut"]);
        }
        let master = self
            .servers
            .iter()
            .find(|server| server.port() == master)
            .expect("the master is one of the group's servers");
        master.cli(&["CLIENT", "KILL", "TYPE", "replica"]);
    }

    /// Lets the replicas log in to their master again (undoes
    /// [`cut_replication`](Self::cut_replication)).
    pub fn restore_replication(&self) {
        for server in self.servers.iter().filter(|s| s.pid().is_some()) {
            server.cli(&["CONFIG", "SET", "masteruser", ""]);
            server.cli(&["CONFIG", "SET", "masterauth", ""]);
        }
    }

    /// Starts the server killed last again (same port, empty); the Sentinels make it a
    /// replica of the current master.
    pub fn restart_killed(&mut self) {
        let port = self.master;
        if let Some(server) = self.servers.iter_mut().find(|server| server.port() == port) {
            server.restart();
        }
    }

    /// Waits until the current master has `replicas` replicas connected and in sync.
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub fn wait_for_replicas(&self, replicas: usize) {
        wait_until("replicas in sync", CLUSTER_TIMEOUT, || {
            let info = self.cli(&["INFO", "replication"]);
            let online = info
                .lines()
                .filter(|line| line.contains("state=online"))
                .count();
            online >= replicas
        });
    }

    /// Kills the current master with SIGKILL; returns its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        if let Some(server) = self.servers.iter_mut().find(|server| server.port() == port) {
            server.kill();
        }
        self.master = port;
        port
    }

    /// Waits until the Sentinels name another master than the one killed last and it
    /// answers as a master; returns its port.
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub fn wait_for_failover(&self) -> u16 {
        let mut promoted = 0;
        wait_until("a Sentinel failover", CLUSTER_TIMEOUT, || {
            promoted = self.master_port();
            promoted != self.master
                && self
                    .servers
                    .iter()
                    .find(|server| server.port() == promoted)
                    .is_some_and(|server| server.cli(&["ROLE"]).starts_with("master"))
        });
        promoted
    }
}
