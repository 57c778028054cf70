//! The queue registry: the queues served under a prefix, so tools list them without
//! scanning the keyspace.
//!
//! `<prefix>:queues` is a sorted set, queue name → when a process last connected to
//! it (ms since the Unix epoch, that process's clock). [`RedisQueue::connect`]
//! records its queue there; [`Admin::queues`] reads it. The key has no hash tag (it
//! spans queues), so it is only written with plain commands, never inside a queue's
//! scripts.
//!
//! [`RedisQueue::connect`]: crate::RedisQueue::connect
//! [`Admin::queues`]: crate::Admin::queues

use redis::Value;
use serde::Serialize;

use crate::Result;
use crate::link::Link;

/// The registry key of `prefix`.
pub(crate) fn key(prefix: &str) -> String {
    format!("{prefix}:queues")
}

/// Records `link`'s queue as served now.
pub(crate) async fn record(link: &Link) -> Result<()> {
    let call = link.call("recording the queue in the registry");
    let _: Value = redis::cmd("ZADD")
        .arg(key(&link.config.prefix))
        .arg(now_ms())
        .arg(&link.config.queue)
        .query_async(&mut link.conn())
        .await
        .map_err(|e| call.fail(&e))?;
    Ok(())
}

/// A queue of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegisteredQueue {
    /// The queue's name.
    pub name: String,
    /// When a process last connected to it, in ms since the Unix epoch (that
    /// process's clock).
    pub last_connect_ms: u64,
}

impl RegisteredQueue {
    pub(crate) fn new(name: String, last_connect_ms: u64) -> Self {
        RegisteredQueue {
            name,
            last_connect_ms,
        }
    }
}

/// This machine's clock, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
