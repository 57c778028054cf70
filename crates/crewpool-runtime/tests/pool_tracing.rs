//! Every job runs inside a `job` span carrying the pool, the job id and the attempt.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use crewpool_flume::FlumeQueue;
use crewpool_runtime::PoolBuilder;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Records the fields of every `job` span created.
#[derive(Clone, Default)]
struct JobSpans(Arc<Mutex<Vec<Vec<(String, String)>>>>);

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: tracing::Subscriber> Layer<S> for JobSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _cx: Context<'_, S>) {
        if attrs.metadata().name() == "job" {
            let mut fields = Fields(Vec::new());
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_job_runs_in_a_span_with_its_id_and_attempt() {
    let spans = JobSpans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let pool = PoolBuilder::new()
        .name("spans")
        .workers(1)
        .queue(FlumeQueue::unbounded())
        .build(|n: u64| async move {
            tracing::info!(n, "inside the job");
            Ok::<_, Infallible>(n)
        })
        .unwrap();
    let first = pool.submit(10).await.unwrap();
    let second = pool.submit(20).await.unwrap();
    let ids = [first.id().0, second.id().0];
    first.await.unwrap();
    second.await.unwrap();
    pool.shutdown().await;

    let spans = spans.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:?}");
    for (fields, id) in spans.iter().zip(ids) {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("pool"), Some("spans"));
        assert_eq!(get("id"), Some(id.to_string().as_str()));
        assert_eq!(get("attempt"), Some("1"));
    }
}
