//! A crewpool queue on Redis (docs to come).

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod consumer;
mod core;
mod delivery;
mod error;
mod fetcher;
mod keys;
mod link;
mod queue;
mod scripts;
mod url;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{AckMode, RedisConfig, RetryPolicy};
pub use consumer::RedisConsumer;
pub use delivery::RedisDelivery;
pub use error::{Error, Result};
pub use link::{ClientCounters, ServerInfo};
pub use queue::{DeadLetter, QueueStats, RedisQueue};
pub use scripts::ENQUEUE_LUA;
pub use url::RedisUrl;
pub use wire::ENVELOPE_VERSION;
