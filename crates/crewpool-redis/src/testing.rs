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
                if line.contains("Ready to accept connections") {
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
