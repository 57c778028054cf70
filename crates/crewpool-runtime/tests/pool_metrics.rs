//! Metrics through the `metrics` facade, labelled by pool name. One test per binary:
//! the recorder is process-global.

use std::collections::HashMap;
use std::time::Duration;

use crewpool_flume::FlumeQueue;
use crewpool_runtime::{PoolBuilder, RetryPolicy};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

#[tokio::test(start_paused = true)]
async fn a_pool_records_its_counters_gauges_and_histograms() {
    std::panic::set_hook(Box::new(|_| {}));
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");

    let pool = PoolBuilder::new()
        .name("billing")
        .workers(2)
        .queue(FlumeQueue::unbounded())
        .metrics()
        .timeout(Duration::from_secs(10))
        .retry(RetryPolicy::exponential(2).jitter(false))
        .build(|n: u64| async move {
            match n {
                1 => Err("declined".to_owned()),
                2 => panic!("bug"),
                3 => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(n)
                }
                _ => Ok(n),
            }
        })
        .unwrap();
    let mut handles = Vec::new();
    for n in 0..6 {
        handles.push(pool.submit(n).await.unwrap());
    }
    for handle in handles {
        let _ = handle.await;
    }
    pool.shutdown().await;

    let snapshot: HashMap<(MetricKind, String), DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value): (CompositeKey, _, _, _)| {
            let labels: Vec<_> = key.key().labels().collect();
            assert_eq!(labels.len(), 1, "{key:?}");
            assert_eq!((labels[0].key(), labels[0].value()), ("pool", "billing"));
            ((key.kind(), key.key().name().to_owned()), value)
        })
        .collect();
    let counter = |name: &str| match snapshot.get(&(MetricKind::Counter, name.to_owned())) {
        Some(DebugValue::Counter(value)) => *value,
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(counter("crewpool_jobs_submitted_total"), 6);
    assert_eq!(counter("crewpool_jobs_completed_total"), 3);
    assert_eq!(counter("crewpool_jobs_failed_total"), 1);
    assert_eq!(counter("crewpool_jobs_panicked_total"), 1);
    assert_eq!(counter("crewpool_jobs_timed_out_total"), 1);
    assert_eq!(
        counter("crewpool_jobs_retried_total"),
        3,
        "one retry each for 1, 2 and 3"
    );
    let histogram = |name: &str| match snapshot.get(&(MetricKind::Histogram, name.to_owned())) {
        Some(DebugValue::Histogram(values)) => values.len(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(
        histogram("crewpool_job_run_seconds"),
        6,
        "one per final outcome"
    );
    assert_eq!(
        histogram("crewpool_job_wait_seconds"),
        9,
        "one per attempt started"
    );
    for gauge in [
        "crewpool_jobs_running",
        "crewpool_workers",
        "crewpool_queue_depth",
    ] {
        match snapshot.get(&(MetricKind::Gauge, gauge.to_owned())) {
            Some(DebugValue::Gauge(value)) => assert_eq!(value.into_inner(), 0.0, "{gauge}"),
            other => panic!("{gauge}: {other:?}"),
        }
    }
}
