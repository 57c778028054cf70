//! `crewpool`: look at and repair crewpool's Redis queues from a terminal, a browser
//! or Prometheus.
//!
//! Every process that connects to a queue records it in the prefix's queue registry,
//! so the tool finds every queue without scanning Redis:
//!
//! ```text
//! $ crewpool queues
//! QUEUE   PENDING  DELAYED  LEASED  DEAD  PROCESSED  FAILED  EXPIRED  OLDEST  CONNECTED
//! emails     1200        3      16     2      98311      41        2    1.2s  4m ago
//! $ crewpool peek emails --state leased -n 5     # what the workers hold, for how long
//! $ crewpool dead emails                          # dead letters: reason, attempt, when
//! $ crewpool requeue emails 1796279676208143       # or --all
//! $ crewpool watch                                # live counts and rates
//! $ crewpool dashboard                            # http://127.0.0.1:8080
//! $ crewpool exporter --listen 0.0.0.0:9464       # /metrics for Prometheus
//! ```
//!
//! - **Redis**: `--redis URL` or `REDIS_URL` (default `redis://127.0.0.1:6379`);
//!   `--prefix` for queues under another key prefix. The password of the URL is never
//!   printed, served or logged.
//! - **Output**: tables for people, `--json` for scripts (one JSON document; `watch`
//!   prints one per line).
//! - **Exit codes**: 0 done; 1 Redis answered an error or something unexpected; 2 bad
//!   arguments (or a refused setting: `purge` without `--yes`, a dashboard on a
//!   non-loopback address without a token); 3 Redis could not be reached; 4 not
//!   found (an unknown queue, or ids that matched nothing).
//! - **Dashboard**: loopback only unless `--token` (or `CREWPOOL_TOKEN`) is set, then
//!   every request needs it (HTTP basic auth with any user name, or a bearer token);
//!   every change is a same-origin `POST` carrying a per-process CSRF token;
//!   `--read-only` serves no change at all.
//!
//! The queues are read and repaired through `crewpool_redis::Admin`, the same scripts
//! the workers use; see the `crewpool-redis` crate docs for the states and keys.

mod cli;
mod commands;
mod dashboard;
mod error;
mod metrics;
mod sampler;
mod server;
mod table;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("crewpool: could not start the async runtime: {error}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crewpool: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
