//! Idle workers park: they burn no CPU while the queue is empty.
//!
//! Alone in its test binary, so no other test's CPU time is counted.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crewpool_deque::DequeQueue;
use crewpool_runtime::PoolBuilder;

const WORKERS: usize = 8;
/// Only a hang guard for the start-up rendezvous below.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// How long CPU time is left to accumulate. This is measurement, not synchronisation:
/// a worker that spins or polls on a timer would burn CPU all through it.
const WINDOW: Duration = Duration::from_secs(1);
/// "Near zero": a single spinning worker would use about 1000 ms in the window.
const BUDGET: Duration = Duration::from_millis(50);

/// User plus system CPU time of the whole process so far, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks; see proc(5)).
fn process_cpu_time(ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may contain spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 is fields[0] here, so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` (this workspace forbids `unsafe`).
fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn an_idle_pool_of_eight_workers_uses_almost_no_cpu() {
    // Every worker first runs one job, and the jobs wait for each other, so all eight
    // threads are up and have been through `next` before the measurement starts.
    let started = Arc::new((Mutex::new(0_usize), Condvar::new()));
    let rendezvous = Arc::clone(&started);
    let pool = PoolBuilder::new()
        .workers(WORKERS)
        .dedicated_threads()
        .queue(DequeQueue::unbounded())
        .build(move |_: u64| {
            let rendezvous = Arc::clone(&rendezvous);
            async move {
                let (count, all_in) = &*rendezvous;
                let mut count = count.lock().unwrap();
                *count += 1;
                all_in.notify_all();
                let (count, timeout) = all_in
                    .wait_timeout_while(count, HANG_GUARD, |c| *c < WORKERS)
                    .unwrap();
                drop(count);
                if timeout.timed_out() {
                    return Err("not every worker took a job");
                }
                Ok(())
            }
        })
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let handles: Vec<_> = {
            let mut handles = Vec::new();
            for job in 0..WORKERS as u64 {
                handles.push(pool.submit(job).await.unwrap());
            }
            handles
        };
        for handle in handles {
            handle.await.expect("every worker ran one job");
        }
    });

    let ticks = clock_ticks_per_second();
    assert!(
        ticks >= 100.0,
        "CPU time resolution too coarse: {ticks} ticks/s"
    );
    let before = process_cpu_time(ticks);
    std::thread::sleep(WINDOW);
    let used = process_cpu_time(ticks) - before;
    println!("{WORKERS} idle workers used {used:?} of CPU in {WINDOW:?}");
    assert!(
        used < BUDGET,
        "{WORKERS} idle workers used {used:?} of CPU in {WINDOW:?} (budget {BUDGET:?})"
    );
    assert_eq!(pool.stats().idle, WORKERS, "{}", pool.stats());

    runtime.block_on(async {
        let report = pool.shutdown().await;
        assert!(report.is_complete(), "{report:?}");
    });
}
