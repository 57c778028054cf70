//! Trace context from producer to worker: the envelope's headers carry a W3C
//! `traceparent`, the worker's `job` span is a child of the `producer` span that
//! stands for the producer's, and envelopes without headers still decode.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crewpool_redis::testing::RedisServer;
use crewpool_redis::{Headers, JobOptions, Propagator, RedisConfig, RedisQueue};
use crewpool_runtime::PoolBuilder;
use support::HANG_GUARD;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// A span as the recorder saw it created.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    parent: Option<u64>,
    fields: HashMap<String, String>,
}

/// Every span created in this test binary, by id.
fn seen() -> &'static Mutex<HashMap<u64, Seen>> {
    static SEEN: OnceLock<Mutex<HashMap<u64, Seen>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

struct Recorder;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.id().into_u64());
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        seen().lock().unwrap().insert(
            id.into_u64(),
            Seen {
                name: attrs.metadata().name(),
                parent,
                fields,
            },
        );
    }
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .expect("the only subscriber of this test binary");
    });
}

/// The W3C trace context of the current span, made up from its id (a test has no
/// OpenTelemetry): the worker can tell which producer span it came from.
fn traceparent_of_current() -> Option<String> {
    let id = tracing::Span::current().id()?.into_u64();
    Some(format!("00-{id:032x}-{id:016x}-01"))
}

/// Injects the current span's context; records what the workers extract.
#[derive(Clone, Default)]
struct TestPropagator {
    extracted: Arc<Mutex<Vec<String>>>,
}

impl Propagator for TestPropagator {
    fn inject(&self, headers: &mut Headers) {
        if let Some(traceparent) = traceparent_of_current() {
            headers.insert("traceparent".to_owned(), traceparent);
        }
    }

    fn extract(&self, headers: &Headers, span: &tracing::Span) {
        assert!(span.id().is_some(), "the producer span exists");
        if let Some(traceparent) = headers.get("traceparent") {
            self.extracted.lock().unwrap().push(traceparent.clone());
        }
    }
}

/// The `job` spans of job `id`, each with the fields of its parent span (if any).
fn job_spans(id: u64) -> Vec<(Seen, Option<Seen>)> {
    let seen = seen().lock().unwrap();
    seen.values()
        .filter(|span| span.name == "job" && span.fields.get("id") == Some(&id.to_string()))
        .map(|span| {
            let parent = span.parent.and_then(|parent| seen.get(&parent).cloned());
            (span.clone(), parent)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_span_is_the_parent_of_the_worker_job_span() {
    install();
    let server = RedisServer::start();
    let url = server.url();
    let propagator = TestPropagator::default();
    let producer = RedisQueue::<u64>::connect(
        RedisConfig::new(url.as_str(), "traced").propagator(propagator.clone()),
    )
    .await
    .unwrap();
    let worker_queue = RedisQueue::<u64>::connect(
        RedisConfig::new(url.as_str(), "traced").propagator(propagator.clone()),
    )
    .await
    .unwrap();
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let pool = PoolBuilder::new()
        .workers(2)
        .queue(worker_queue)
        .build(move |job: u64| {
            let done = done.clone();
            async move {
                let _ = done.send(job);
                Ok::<_, String>(())
            }
        })
        .unwrap();

    // Enqueued inside the producer's span: its context travels in the headers.
    let request = tracing::info_span!("request");
    let (traced, expected) = {
        let _entered = request.enter();
        let expected = traceparent_of_current().expect("inside a span");
        (producer.enqueue(&1).await.unwrap(), expected)
    };
    // Without a span (and so without a context) and without headers: still decodes.
    let plain = RedisQueue::<u64>::connect(RedisConfig::new(url.as_str(), "traced"))
        .await
        .unwrap();
    let untraced = plain.enqueue(&2).await.unwrap();
    // A header given by hand.
    let by_hand = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let explicit = plain
        .enqueue_with(&3, &JobOptions::new().header("traceparent", by_hand))
        .await
        .unwrap()
        .id();

    let mut ran = Vec::new();
    while ran.len() < 3 {
        let job = tokio::time::timeout(HANG_GUARD, finished.recv())
            .await
            .expect("every job within the hang guard")
            .expect("the pool runs");
        ran.push(job);
    }
    pool.shutdown().await;

    let spans = job_spans(traced.0);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let (_, parent) = &spans[0];
    let parent = parent.as_ref().expect("the job span has a parent");
    assert_eq!(parent.name, "producer");
    assert_eq!(parent.fields.get("traceparent"), Some(&expected));
    assert_eq!(
        parent.fields.get("queue").map(String::as_str),
        Some("traced")
    );
    assert!(
        propagator.extracted.lock().unwrap().contains(&expected),
        "the worker's propagator saw the producer's context"
    );

    let spans = job_spans(untraced.0);
    assert_eq!(spans.len(), 1);
    assert!(
        spans[0]
            .1
            .as_ref()
            .is_none_or(|parent| parent.name != "producer"),
        "no producer span without headers: {spans:?}"
    );

    let spans = job_spans(explicit.0);
    let parent = spans[0].1.as_ref().expect("a producer span");
    assert_eq!(
        parent.fields.get("traceparent").map(String::as_str),
        Some(by_hand)
    );
}

/// The wire format: headers are an object of strings in the envelope, and a record
/// written by another tool with or without them decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_with_and_without_headers_decode() {
    use crewpool_core::{Consumer, Delivery, Queue};
    let server = RedisServer::start();
    let queue = RedisQueue::<u64>::connect(RedisConfig::new(server.url(), "wire"))
        .await
        .unwrap();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    queue
        .enqueue_with(&7, &JobOptions::new().header("traceparent", traceparent))
        .await
        .unwrap();
    let stored = server.cli(&["LINDEX", "crewpool:{wire}:pending", "0"]);
    assert!(
        stored.contains(&format!(r#""headers":{{"traceparent":"{traceparent}"}}"#)),
        "{stored}"
    );
    server.cli(&[
        "LPUSH",
        "crewpool:{wire}:pending",
        r#"900|1|{"v":1,"job":8}"#,
    ]);
    server.cli(&[
        "LPUSH",
        "crewpool:{wire}:pending",
        r#"901|1|{"v":1,"job":9,"headers":{"traceparent":"x","baggage":"k=v"}}"#,
    ]);
    let mut consumer = queue.consumer().unwrap();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let received = tokio::time::timeout(HANG_GUARD, consumer.next())
            .await
            .unwrap()
            .unwrap();
        jobs.push(received.envelope.job);
        received.delivery.ack().await.unwrap();
    }
    assert_eq!(jobs, [7, 8, 9]);
    assert_eq!(queue.stats().await.unwrap().dead, 0);
}
