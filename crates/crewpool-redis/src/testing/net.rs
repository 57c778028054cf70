//! Networks for tests: hosts in network namespaces joined by veth links (made with
//! `ip`, as root), and a TCP proxy that delays, holds or stalls traffic.
//!
//! ```no_run
//! use std::time::Duration;
//! use crewpool_redis::testing::net::{Netns, Proxy};
//!
//! // A host for Redis and a host for workers, 10.201.7.1 <-> 10.201.7.2.
//! let redis_host = Netns::new("redis");
//! let worker_host = Netns::new("worker");
//! let link = redis_host.link(&worker_host, 7);
//! link.down(); // a partition: the hosts no longer reach each other
//! link.up();
//!
//! // 1 ms each way on loopback: 2 ms round trips.
//! let proxy = Proxy::start("127.0.0.1:6379".parse().unwrap(), Duration::from_millis(1));
//! proxy.hold(true); // bytes wait in the proxy (a partition of every connection)
//! proxy.stall_one(); // the oldest connection stops moving (half-open TCP)
//! ```
//!
//! Everything made is removed on drop: namespaces (which takes their links and the
//! processes' sockets with them) and proxy threads' connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The message for a missing `ip` or a refusal to make namespaces.
const IP_HINT: &str = "the network tests make network namespaces with `ip` (package \
     iproute2) and need root";

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("could not run ip ({error}); {IP_HINT}"));
    assert!(
        output.status.success(),
        "ip {args:?} failed: {}; {IP_HINT}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A network namespace of this test: a host of its own, with only a loopback until
/// [`link`](Netns::link)ed to another. Dropping it deletes it (and its links).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Makes a namespace named `crewpool-<pid>-<role>` with its loopback up.
    ///
    /// # Panics
    ///
    /// When `ip` is missing or refuses (not root).
    pub fn new(role: &str) -> Self {
        let name = format!("cp{}-{role}", std::process::id());
        // A namespace left by a crashed run of the same pid: remove it first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let netns = Netns { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Joins this namespace to `other` with a veth pair on the subnet
    /// `10.201.<subnet>.0/30`: this side is `.1`, the other `.2`.
    pub fn link(&self, other: &Netns, subnet: u8) -> Link {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (
            format!("cpa{}x{n}", std::process::id() % 100_000),
            format!("cpb{}x{n}", std::process::id() % 100_000),
        );
        ip(&[
            "-n",
            &self.name,
            "link",
            "add",
            &a,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &other.name,
        ]);
        let (here, there) = (format!("10.201.{subnet}.1"), format!("10.201.{subnet}.2"));
        ip(&[
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{here}/30"),
            "dev",
            &a,
        ]);
        ip(&[
            "-n",
            &other.name,
            "addr",
            "add",
            &format!("{there}/30"),
            "dev",
            &b,
        ]);
        ip(&["-n", &self.name, "link", "set", &a, "up"]);
        ip(&["-n", &other.name, "link", "set", &b, "up"]);
        Link {
            netns: self.name.clone(),
            device: a,
            here,
            there,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth link between two namespaces (removed with them).
#[derive(Debug)]
pub struct Link {
    netns: String,
    device: String,
    here: String,
    there: String,
}

impl Link {
    /// The address of the namespace that made the link.
    pub fn here(&self) -> &str {
        &self.here
    }

    /// The address of the other namespace.
    pub fn there(&self) -> &str {
        &self.there
    }

    /// Takes the link down: a partition (connections stay open; nothing arrives).
    pub fn down(&self) {
        ip(&["-n", &self.netns, "link", "set", &self.device, "down"]);
    }

    /// Brings the link back up: the partition heals.
    pub fn up(&self) {
        ip(&["-n", &self.netns, "link", "set", &self.device, "up"]);
    }
}

/// What a proxy's connections share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    hold: AtomicBool,
    /// Connections stalled: never forwarded again.
    stalled: Mutex<Vec<u64>>,
    /// Open connections: id and both sockets (for stalling and shutdown).
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    accepted: AtomicU64,
}

/// A TCP proxy on `127.0.0.1` (or the address given) in front of one target: each
/// direction of each connection forwards what it reads after `delay`, in order.
/// [`hold`](Proxy::hold) holds every connection's bytes until released (a partition:
/// connections stay open, nothing moves); [`stall_one`](Proxy::stall_one) holds one
/// connection's for good (half-open TCP: a peer gone silent mid-command). Dropping the
/// proxy closes every connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy on a free port of `127.0.0.1` to `target`, adding `delay` to
    /// each direction (so `2 × delay` to every round trip).
    pub fn start(target: SocketAddr, delay: Duration) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("an address"), target, delay)
    }

    /// As [`start`](Self::start), listening on `listen`.
    pub fn start_on(listen: SocketAddr, target: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind(listen).expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let id = accepting.accepted.fetch_add(1, Ordering::SeqCst);
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    accepting.open.lock().expect("proxy state").push((id, c, s));
                }
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        pipe(id, from, to, delay, Arc::clone(&accepting));
                    }
                }
            }
        });
        Proxy { addr, shared }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the proxy accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Holds (`true`) or releases (`false`) every connection's bytes.
    pub fn hold(&self, hold: bool) {
        self.shared.hold.store(hold, Ordering::SeqCst);
    }

    /// Stalls the oldest open connection for good; returns its id, if any is open.
    pub fn stall_one(&self) -> Option<u64> {
        let open = self.shared.open.lock().expect("proxy state");
        let stalled = &mut self.shared.stalled.lock().expect("proxy state");
        let id = open
            .iter()
            .map(|(id, ..)| *id)
            .find(|id| !stalled.contains(id))?;
        stalled.push(id);
        Some(id)
    }

    /// Stalls every connection open now (new ones are not).
    pub fn stall_open(&self) -> usize {
        let open = self.shared.open.lock().expect("proxy state");
        let mut stalled = self.shared.stalled.lock().expect("proxy state");
        for (id, ..) in open.iter() {
            stalled.push(*id);
        }
        open.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for (_, client, server) in self.shared.open.lock().expect("proxy state").drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

/// Forwards `from` to `to` after `delay`: a reader thread stamps each chunk with its
/// due time, a writer thread writes it then (holding while the proxy holds or this
/// connection is stalled).
fn pipe(id: u64, mut from: TcpStream, mut to: TcpStream, delay: Duration, shared: Arc<Shared>) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if chunks
                        .send((Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (at, chunk) in due {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let stalled = shared
                    .stalled
                    .lock()
                    .map(|stalled| stalled.contains(&id))
                    .unwrap_or(true);
                if !stalled && !shared.hold.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A `redis-server` inside a [`Netns`], on all its addresses, port 6379, without
/// persistence; stopped, and its directory removed, when dropped.
#[derive(Debug)]
pub struct NetnsRedis<'a> {
    host: &'a Netns,
    child: Child,
    dir: std::path::PathBuf,
}

impl<'a> NetnsRedis<'a> {
    /// Starts it in `host` and waits until it answers `PING` there.
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot be started, or does not answer within a minute.
    pub fn start(host: &'a Netns) -> Self {
        let dir = std::env::temp_dir().join(format!("crewpool-net-{}", host.name()));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = host
            .command("redis-server")
            .args([
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--protected-mode",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server in the namespace (install it with: apt-get install redis-server)",
            );
        let server = NetnsRedis { host, child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.try_cli(&["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start in {}",
                host.name()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Runs `redis-cli` with `args` inside the namespace; its output, trimmed, or
    /// `None` when it failed.
    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = self.host.command("redis-cli").args(args).output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// As [`try_cli`](Self::try_cli).
    ///
    /// # Panics
    ///
    /// When `redis-cli` failed.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }
}

impl Drop for NetnsRedis<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
