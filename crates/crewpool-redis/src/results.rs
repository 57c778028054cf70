//! Results back to the producer, in whichever process it is.
//!
//! # The round trip
//!
//! ```text
//!   producer: Pool::submit ─▶ RedisQueue::push(envelope with a Reply)
//!               │  the envelope carries "reply":"<channel>" (this queue handle's)
//!               │  the Reply waits in `Waiters` under the job's id
//!               ▼
//!   worker:   fetch ─▶ the consumer attaches a Reply of its own (`Stash`) ─▶ the job runs
//!               │  the runtime sends the final outcome to that Reply: the codec encodes
//!               │  a copy (the worker's results stream still gets the outcome)
//!               ▼
//!             ack / dead-letter: reply.lua first (SET result:<id>, RPUSH
//!               replies:<channel> "<id>|<outcome>", both with the TTL), then the settlement
//!               ▼
//!   producer: the listener, blocked in BLPOP replies:<channel>, wakes, decodes, and
//!             sends the outcome to the waiting Reply: the handle resolves.
//! ```
//!
//! A retry or a release is not a final outcome: the runtime drops the Reply (or sends
//! `Interrupted`) and nothing is stored; the next attempt, in any process, answers.
//!
//! # Races
//!
//! - *The result arrives before the producer registered its waiter* (the push's reply
//!   and the result race to the producer): the listener keeps it as `Arrived`, and the
//!   push that registers the waiter finds it and delivers at once.
//! - *The producer stopped waiting* (its handle dropped or timed out): the waiter stays
//!   until its result comes or the TTL passes, then it is dropped.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crewpool_core::Reply;
use crewpool_core::{JobError, JobResult, Outcome};
use redis::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::Result;
use crate::backoff::Backoff;
use crate::error::Chain;
use crate::link::{Link, millis};

/// The outcome as it travels: `{"ok":<output>}`, `{"failed":<error>}`,
/// `{"panicked":"<message>"}`, `"timed_out"` or `"cancelled"`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Sent<'a, T, E> {
    Ok(&'a T),
    Failed(&'a E),
    Panicked(&'a str),
    TimedOut,
    Cancelled,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Got<T, E> {
    Ok(T),
    Failed(E),
    Panicked(String),
    TimedOut,
    Cancelled,
}

/// What the codec made of a value sent to a worker's reply.
pub(crate) enum Encoded {
    /// A final outcome, encoded.
    Final(Vec<u8>),
    /// Not final: the job runs again (a release after an interruption).
    NotFinal,
    /// Not an outcome of the codec's types: the pool's output or error type is not the
    /// one given to `with_results`.
    Mismatch,
}

/// Encodes and decodes the outcomes of one output and error type.
pub(crate) trait Codec: Send + Sync {
    /// Encodes the outcome behind `value` (`&mut Option<Outcome<T, E>>`, as a runtime
    /// sends it to a reply) without taking it.
    fn encode(&self, value: &mut dyn Any) -> Encoded;
    /// Decodes `payload` and sends the outcome to `reply`; a payload that does not
    /// decode drops the reply (its handle resolves as not run), with a warning.
    fn deliver(&self, reply: Reply, payload: &[u8]);
}

/// The codec of outputs `T` and errors `E`.
pub(crate) struct Typed<T, E>(PhantomData<fn() -> (T, E)>);

impl<T, E> Typed<T, E> {
    pub(crate) fn new() -> Self {
        Typed(PhantomData)
    }
}

impl<T, E> Codec for Typed<T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
{
    fn encode(&self, value: &mut dyn Any) -> Encoded {
        let Some(Some(outcome)) = value.downcast_ref::<Option<Outcome<T, E>>>() else {
            return Encoded::Mismatch;
        };
        let sent = match outcome {
            Ok(output) => Sent::Ok(output),
            Err(JobError::Failed(error)) => Sent::Failed(error),
            Err(JobError::Panicked(message)) => Sent::Panicked(message),
            Err(JobError::TimedOut) => Sent::TimedOut,
            Err(JobError::Cancelled) => Sent::Cancelled,
            Err(_) => return Encoded::NotFinal,
        };
        match serde_json::to_vec(&sent) {
            Ok(bytes) => Encoded::Final(bytes),
            Err(error) => {
                let message = format!("its result could not be serialised: {error}");
                match serde_json::to_vec(&Sent::<(), ()>::Panicked(&message)) {
                    Ok(bytes) => Encoded::Final(bytes),
                    Err(_) => Encoded::NotFinal,
                }
            }
        }
    }

    fn deliver(&self, reply: Reply, payload: &[u8]) {
        let outcome: Outcome<T, E> = match decode(payload) {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%error, "a job's result does not decode as this queue's result type; its handle resolves as not run");
                return;
            }
        };
        // Taken by the handle's reply (or dropped with it, if the handle is gone).
        let _ = reply.send(outcome);
    }
}

/// The worker's side: the encoded final outcome of one job, from its reply to its
/// settlement.
pub(crate) type Stash = Arc<OnceLock<Vec<u8>>>;

/// Whether this process warned about a pool whose output type is not the queue's.
static WARNED_MISMATCH: AtomicBool = AtomicBool::new(false);

/// A reply for a job whose producer waits: it stashes the encoded final outcome for
/// the delivery to store, and leaves the outcome itself to the runtime.
pub(crate) fn stashing_reply(codec: Arc<dyn Codec>, stash: Stash) -> Reply {
    Reply::new(move |value: &mut dyn Any| match codec.encode(value) {
        Encoded::Final(bytes) => {
            let _ = stash.set(bytes);
        }
        Encoded::NotFinal => {}
        Encoded::Mismatch => {
            if !WARNED_MISMATCH.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "a job's producer waits for its result, but this pool's output or error type is not the one given to RedisQueue::with_results: no result is stored"
                );
            }
        }
    })
}

/// What waits for a result in the producer.
enum Waiter {
    /// A handle's reply, and when it was registered.
    Reply(Reply, Instant),
    /// The results stream, for a job enqueued with `JobOptions::result`.
    Stream(Instant),
    /// A result that came before its waiter was registered.
    Arrived(Vec<u8>, Instant),
}

/// The producer's side: this queue handle's reply channel and the handles waiting on
/// it.
pub(crate) struct Waiters {
    /// The channel's name: unique per queue handle.
    pub(crate) channel: String,
    waiting: Mutex<HashMap<u64, Waiter>>,
    listening: OnceLock<()>,
    codec: Arc<dyn Codec>,
    /// The results stream's channel: results of jobs enqueued with
    /// `JobOptions::result`, as `(id, outcome)`.
    stream: (
        flume::Sender<(u64, Vec<u8>)>,
        flume::Receiver<(u64, Vec<u8>)>,
    ),
}

impl Waiters {
    pub(crate) fn new(codec: Arc<dyn Codec>) -> Self {
        Waiters {
            channel: channel_name(),
            waiting: Mutex::new(HashMap::new()),
            listening: OnceLock::new(),
            codec,
            stream: flume::unbounded(),
        }
    }

    /// The receiving end of the results stream.
    pub(crate) fn stream(&self) -> flume::Receiver<(u64, Vec<u8>)> {
        self.stream.1.clone()
    }

    /// Sends job `id`'s result to the results stream when it comes.
    pub(crate) fn expect(&self, id: u64) {
        let arrived = {
            let mut waiting = self.lock();
            match waiting.remove(&id) {
                Some(Waiter::Arrived(payload, _)) => payload,
                _ => {
                    waiting.insert(id, Waiter::Stream(Instant::now()));
                    return;
                }
            }
        };
        // The receiver is held here too: the channel never disconnects.
        let _ = self.stream.0.send((id, arrived));
    }

    pub(crate) fn codec(&self) -> Arc<dyn Codec> {
        Arc::clone(&self.codec)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `reply` for job `id`; delivers at once if its result came already.
    pub(crate) fn register(&self, id: u64, reply: Reply) {
        let arrived = {
            let mut waiting = self.lock();
            match waiting.remove(&id) {
                Some(Waiter::Arrived(payload, _)) => Some(payload),
                _ => {
                    waiting.insert(id, Waiter::Reply(reply, Instant::now()));
                    return;
                }
            }
        };
        if let Some(payload) = arrived {
            self.codec.deliver(reply, &payload);
        }
    }

    /// A result came for job `id`.
    fn arrived(&self, id: u64, payload: Vec<u8>) {
        let reply = {
            let mut waiting = self.lock();
            match waiting.remove(&id) {
                Some(Waiter::Reply(reply, _)) => reply,
                Some(Waiter::Stream(_)) => {
                    let _ = self.stream.0.send((id, payload));
                    return;
                }
                _ => {
                    waiting.insert(id, Waiter::Arrived(payload, Instant::now()));
                    return;
                }
            }
        };
        self.codec.deliver(reply, &payload);
    }

    /// Forgets what waited longer than `ttl` (dropping a reply resolves its handle as
    /// not run).
    fn prune(&self, ttl: Duration) {
        let now = Instant::now();
        self.lock().retain(|_, waiter| match waiter {
            Waiter::Reply(_, at) | Waiter::Stream(at) | Waiter::Arrived(_, at) => {
                now.duration_since(*at) < ttl
            }
        });
    }

    /// The jobs whose outcome a handle or the results stream still waits for.
    fn awaited(&self) -> Vec<u64> {
        self.lock()
            .iter()
            .filter(|(_, waiter)| matches!(waiter, Waiter::Reply(..) | Waiter::Stream(_)))
            .map(|(&id, _)| id)
            .collect()
    }

    /// How many handles and early results wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Starts the listener once, on `runtime`.
    pub(crate) fn listen(
        self: &Arc<Self>,
        link: &Arc<Link>,
        runtime: &tokio::runtime::Handle,
        closed: watch::Receiver<bool>,
    ) {
        self.listening.get_or_init(|| {
            runtime.spawn(listen(Arc::clone(link), Arc::downgrade(self), closed));
        });
    }
}

/// A channel name unique to this queue handle: process id, time and address.
fn channel_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Takes results off this handle's reply channel until the queue closes or its
/// handles are gone: one blocking `BLPOP` at a time (renewed every `max_block`),
/// then whatever else waits there in one `LPOP`.
async fn listen(
    link: Arc<Link>,
    waiters: std::sync::Weak<Waiters>,
    mut closed: watch::Receiver<bool>,
) {
    let Some(key) = waiters
        .upgrade()
        .map(|waiters| link.keys.replies_of(&waiters.channel))
    else {
        return;
    };
    let ttl = link.config.result_ttl;
    let mut backoff = Backoff::new();
    let mut blocking = None;
    // After a failed call, what the channel held may have been popped without reaching
    // this process (a BLPOP or LPOP whose reply was lost to the broken connection):
    // the stored results of everything still awaited are read once connected again.
    let mut recover = false;
    loop {
        if *closed.borrow() {
            return;
        }
        if recover && blocking.is_some() {
            let Some(waiters) = waiters.upgrade() else {
                return;
            };
            match recover_stored(&link, &waiters).await {
                Ok(()) => recover = false,
                Err(error) => {
                    blocking = None;
                    tracing::debug!(queue = %link.config.queue, error = %Chain(&error), "reading stored results failed; retrying with backoff");
                }
            }
            drop(waiters);
            if recover {
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = closed.changed() => return,
                }
                continue;
            }
        }
        let popped = match blocking.clone() {
            Some(mut conn) => {
                let wait = link.config.max_block;
                tokio::select! {
                    popped = take(&link, &mut conn, &key, wait) => popped,
                    _ = closed.changed() => return,
                }
            }
            None => {
                let connected = tokio::select! {
                    connected = link.blocking_connection() => connected,
                    _ = closed.changed() => return,
                };
                match connected {
                    Ok(conn) => {
                        blocking = Some(conn);
                        continue;
                    }
                    Err(error) => Err(error),
                }
            }
        };
        let Some(waiters) = waiters.upgrade() else {
            return;
        };
        match popped {
            Ok(entries) => {
                backoff.reset();
                for entry in entries {
                    match parse_entry(&entry) {
                        Some((id, payload)) => waiters.arrived(id, payload.to_vec()),
                        None => {
                            tracing::warn!(queue = %link.config.queue, "ignoring a malformed entry on a reply channel")
                        }
                    }
                }
                waiters.prune(ttl);
            }
            Err(error) => {
                blocking = None;
                recover = true;
                tracing::debug!(queue = %link.config.queue, error = %Chain(&error), "waiting for results failed; retrying with backoff");
                drop(waiters);
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = closed.changed() => return,
                }
            }
        }
    }
}

/// Reads the stored result (`result:<id>`, written before the reply was pushed) of
/// every job still awaited, and hands over those that have one. A result that also
/// comes through the channel later finds no handle waiting and is kept only until the
/// result TTL, like any early result.
async fn recover_stored(link: &Link, waiters: &Waiters) -> Result<()> {
    let call = link.call("reading stored results");
    let mut conn = link.conn();
    for ids in waiters.awaited().chunks(1000) {
        let mut get = redis::cmd("MGET");
        for &id in ids {
            get.arg(link.keys.result_of(id));
        }
        let stored: Vec<Option<Vec<u8>>> = get
            .query_async(&mut conn)
            .await
            .map_err(|e| call.fail(&e))?;
        for (&id, payload) in ids.iter().zip(stored) {
            if let Some(payload) = payload {
                waiters.arrived(id, payload);
            }
        }
    }
    Ok(())
}

/// Waits up to `wait` for an entry on `key`, then takes up to 1,000 more at once.
async fn take(
    link: &Link,
    blocking: &mut crate::conn::Conn,
    key: &str,
    wait: Duration,
) -> Result<Vec<Vec<u8>>> {
    let call = link.call("waiting for results");
    let first: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
        .arg(key)
        .arg(format!("{:.3}", wait.as_secs_f64().max(0.01)))
        .query_async(blocking)
        .await
        .map_err(|e| call.fail(&e))?;
    let Some((_, first)) = first else {
        return Ok(Vec::new());
    };
    let more: Value = redis::cmd("LPOP")
        .arg(key)
        .arg(1000)
        .query_async(&mut link.conn())
        .await
        .map_err(|e| call.fail(&e))?;
    let mut entries = vec![first];
    if let Value::Array(items) = more {
        entries.extend(items.into_iter().filter_map(|item| match item {
            Value::BulkString(bytes) => Some(bytes),
            _ => None,
        }));
    }
    Ok(entries)
}

/// The results of the jobs a queue handle enqueued with
/// [`JobOptions::result`](crate::JobOptions::result), in the order they come, from
/// whichever worker process ran each: see [`RedisQueue::results`](crate::RedisQueue::results).
#[derive(Debug)]
pub struct ResultStream<T, E> {
    results: flume::Receiver<(u64, Vec<u8>)>,
    _types: PhantomData<fn() -> (T, E)>,
}

impl<T: DeserializeOwned, E: DeserializeOwned> ResultStream<T, E> {
    pub(crate) fn new(results: flume::Receiver<(u64, Vec<u8>)>) -> Self {
        ResultStream {
            results,
            _types: PhantomData,
        }
    }

    /// The next result: the job's id and its outcome (its output, or its final error
    /// after retries). Waits for it; a result that does not decode as `T` or `E` is
    /// skipped with a warning.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a result is taken only when it is returned.
    pub async fn next(&mut self) -> Option<JobResult<T, E>> {
        loop {
            let (id, payload) = self.results.recv_async().await.ok()?;
            match decode::<T, E>(&payload) {
                Ok(outcome) => {
                    return Some(JobResult {
                        id: crewpool_core::JobId(id),
                        outcome,
                    });
                }
                Err(error) => {
                    tracing::warn!(job = id, %error, "a job's result does not decode as the stream's type; skipped");
                }
            }
        }
    }

    /// How many results came and were not taken yet.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether no result waits.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

/// Decodes an outcome as the wire carries it.
fn decode<T: DeserializeOwned, E: DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<Outcome<T, E>, serde_json::Error> {
    Ok(match serde_json::from_slice::<Got<T, E>>(payload)? {
        Got::Ok(output) => Ok(output),
        Got::Failed(error) => Err(JobError::Failed(error)),
        Got::Panicked(message) => Err(JobError::Panicked(message)),
        Got::TimedOut => Err(JobError::TimedOut),
        Got::Cancelled => Err(JobError::Cancelled),
    })
}

/// `<id>|<outcome>`.
fn parse_entry(entry: &[u8]) -> Option<(u64, &[u8])> {
    let bar = entry.iter().position(|&b| b == b'|')?;
    let id = std::str::from_utf8(&entry[..bar]).ok()?.parse().ok()?;
    Some((id, &entry[bar + 1..]))
}

impl Link {
    /// Stores job `id`'s outcome for the producer listening on `channel` and wakes it
    /// (`reply.lua`).
    pub(crate) async fn reply(&self, id: u64, channel: &str, outcome: &[u8]) -> Result<()> {
        let script = &self.scripts.reply;
        let result = self.keys.result_of(id);
        let replies = self.keys.replies_of(channel);
        let mut call = Self::script_call(script, &[&result, &replies]);
        call.arg(id)
            .arg(outcome)
            .arg(millis(self.config.result_ttl).max(1));
        self.invoke("storing a job's result", script, &call).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_and_only_final_ones_are_encoded() {
        let codec = Typed::<u32, String>::new();
        let mut cases: Vec<Outcome<u32, String>> = vec![
            Ok(7),
            Err(JobError::Failed("no".into())),
            Err(JobError::Panicked("boom".into())),
            Err(JobError::TimedOut),
            Err(JobError::Cancelled),
        ];
        let expected = [
            r#"{"ok":7}"#,
            r#"{"failed":"no"}"#,
            r#"{"panicked":"boom"}"#,
            r#""timed_out""#,
            r#""cancelled""#,
        ];
        for (outcome, json) in cases.drain(..).zip(expected) {
            let mut slot = Some(outcome);
            let Encoded::Final(bytes) = codec.encode(&mut slot) else {
                panic!("{json} is final")
            };
            assert!(slot.is_some(), "left in place");
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), json);
            let got = Arc::new(Mutex::new(None));
            let sink = Arc::clone(&got);
            let reply = Reply::new(move |value: &mut dyn Any| {
                if let Some(slot) = value.downcast_mut::<Option<Outcome<u32, String>>>() {
                    *sink.lock().unwrap() = slot.take();
                }
            });
            codec.deliver(reply, &bytes);
            let back = got.lock().unwrap().take().expect("delivered");
            assert_eq!(format!("{back:?}"), format!("{:?}", slot.unwrap()));
        }
        let mut interrupted: Option<Outcome<u32, String>> = Some(Err(JobError::Interrupted));
        assert!(matches!(codec.encode(&mut interrupted), Encoded::NotFinal));
        let mut other: Option<Outcome<u64, String>> = Some(Ok(1));
        assert!(matches!(codec.encode(&mut other), Encoded::Mismatch));
    }

    #[test]
    fn entries_parse() {
        assert_eq!(
            parse_entry(b"42|{\"ok\":1}"),
            Some((42, &b"{\"ok\":1}"[..]))
        );
        assert_eq!(parse_entry(b"x|1"), None);
        assert_eq!(parse_entry(b"42"), None);
    }
}
