//! Errors follow one convention: `Display` says this level only, the cause is the
//! `source()`, and every error that refuses a job answers `is_closed` / `is_full` and
//! hands the job back.

use std::error::Error;

use crewpool_core::{PushError, QueueError, SpawnError, TryPushError};
use crewpool_runtime::{BuildError, ResizeError, SubmitError, SubmitTimeoutError};

/// The messages of an error and its causes, outermost first.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        messages.push(cause.to_string());
        source = cause.source();
    }
    messages
}

/// Each level of the chain says something the others do not.
fn assert_each_said_once(error: &(dyn Error + 'static), depth: usize) {
    let messages = chain(error);
    assert_eq!(messages.len(), depth, "{messages:?}");
    for (i, message) in messages.iter().enumerate() {
        for (j, other) in messages.iter().enumerate() {
            if i != j {
                assert!(
                    !message.contains(other.as_str()),
                    "level {i} repeats level {j}: {messages:?}"
                );
            }
        }
    }
}

fn disk_full() -> std::io::Error {
    std::io::Error::other("disk full")
}

#[test]
fn chains_say_each_thing_once() {
    assert_each_said_once(&QueueError::backend(disk_full()), 2);
    assert_each_said_once(&BuildError::Queue(QueueError::backend(disk_full())), 3);
    assert_each_said_once(&BuildError::Thread(disk_full()), 2);
    assert_each_said_once(&ResizeError::Queue(QueueError::Closed), 2);
    assert_each_said_once(&ResizeError::Thread(disk_full()), 2);
    let refused: PushError<u64> = PushError::Backend {
        item: 7,
        source: disk_full().into(),
    };
    assert_each_said_once(&refused, 2);
    let submit = SubmitError::from(refused);
    assert_each_said_once(&submit, 2);
    assert_eq!(
        submit
            .backend_error::<std::io::Error>()
            .map(ToString::to_string),
        Some("disk full".to_owned()),
        "one typed call reaches the backend's error"
    );
    assert!(submit.backend_error::<std::fmt::Error>().is_none());
    assert_eq!(submit.into_inner(), 7, "the job comes back");
}

#[test]
fn every_refusal_says_closed_or_full_and_gives_the_job_back() {
    let closed = SubmitError::Closed(1);
    let full = SubmitError::Full(2);
    let unavailable = SubmitError::ResultsUnavailable(3);
    assert!(closed.is_closed() && !closed.is_full());
    assert!(full.is_full() && !full.is_closed());
    assert!(!unavailable.is_full() && !unavailable.is_closed());
    assert_eq!(
        [
            closed.into_inner(),
            full.into_inner(),
            unavailable.into_inner()
        ],
        [1, 2, 3]
    );

    let timeout = SubmitTimeoutError::Timeout(4);
    assert!(timeout.is_full() && !timeout.is_closed());
    assert!(SubmitTimeoutError::Closed(5).is_closed());
    assert_eq!(timeout.into_inner(), 4);

    let try_full = TryPushError::Full(6);
    assert!(try_full.is_full() && !try_full.is_closed());
    assert!(TryPushError::Closed(7).is_closed());

    let spawn_full = SpawnError::Full(8);
    assert!(spawn_full.is_full() && !spawn_full.is_closed());
    assert!(SpawnError::Closed(9).is_closed());
    assert!(!SpawnError::Unsupported(10).is_full());

    let push_closed = PushError::Closed(11);
    assert!(push_closed.is_closed() && !push_closed.is_full());
    assert!(QueueError::Closed.is_closed());
}
