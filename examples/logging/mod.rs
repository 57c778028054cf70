//! Logging for the examples. crewpool reports through `tracing` what a program does not
//! see otherwise (a Redis server that may evict queued jobs, fetch failures during an
//! outage, jobs dead-lettered because they do not decode); this prints it on standard
//! error. `RUST_LOG` chooses what, as `target=level` directives (`RUST_LOG=debug`,
//! `RUST_LOG=warn,crewpool_redis=debug`); by default warnings and errors.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the subscriber; call first thing in `main`.
pub(crate) fn init() {
    let warnings = || Targets::new().with_default(LevelFilter::WARN);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => directives.parse::<Targets>().unwrap_or_else(|error| {
            eprintln!("ignoring RUST_LOG={directives:?} ({error}); showing warnings");
            warnings()
        }),
        Err(_) => warnings(),
    };
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(filter)
        .init();
}
