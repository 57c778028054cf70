//! The systems compared: crewpool's backends and the baselines.

use std::fmt;

/// A system that runs jobs: a crewpool backend, or a baseline written the way a
/// programmer would without crewpool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum System {
    /// crewpool's `Pool` on the work-stealing deque backend.
    CrewpoolDeque,
    /// crewpool's `Pool` on the work-stealing deque backend, the producer spawning its
    /// jobs in batches (`Pool::spawn_all`) of [`BATCH`](super::workload::BATCH).
    CrewpoolDequeBatch,
    /// crewpool's `Pool` on the flume channel backend.
    CrewpoolFlume,
    /// crewpool's `Pool` on the Redis backend.
    CrewpoolRedis,
    /// `rayon::spawn` on a rayon thread pool.
    RayonSpawn,
    /// `tokio::spawn` on a multi-threaded tokio runtime.
    TokioSpawn,
    /// The Rust book's pool: threads sharing an `Arc<Mutex<std::sync::mpsc::Receiver>>`.
    StdMpscPool,
    /// Threads sharing a bounded crossbeam-channel receiver.
    CrossbeamPool,
    /// Threads sharing a bounded flume receiver (what crewpool-flume is built on).
    FlumePool,
    /// One `std::thread::spawn` per job: "without a pool".
    ThreadPerJob,
}

impl System {
    /// Every system, crewpool's first.
    pub(crate) const ALL: [System; 10] = [
        System::CrewpoolDeque,
        System::CrewpoolDequeBatch,
        System::CrewpoolFlume,
        System::CrewpoolRedis,
        System::RayonSpawn,
        System::TokioSpawn,
        System::StdMpscPool,
        System::CrossbeamPool,
        System::FlumePool,
        System::ThreadPerJob,
    ];

    /// The name used in reports, on the command line and in criterion ids.
    pub(crate) fn name(self) -> &'static str {
        match self {
            System::CrewpoolDeque => "crewpool-deque",
            System::CrewpoolDequeBatch => "crewpool-deque-batch",
            System::CrewpoolFlume => "crewpool-flume",
            System::CrewpoolRedis => "crewpool-redis",
            System::RayonSpawn => "rayon-spawn",
            System::TokioSpawn => "tokio-spawn",
            System::StdMpscPool => "std-mpsc-pool",
            System::CrossbeamPool => "crossbeam-pool",
            System::FlumePool => "flume-pool",
            System::ThreadPerJob => "thread-per-job",
        }
    }

    /// Parses a [`name`](System::name).
    ///
    /// # Errors
    ///
    /// An unknown name, with the list of known ones.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|system| system.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
                format!("unknown system `{name}`; known: {}", known.join(", "))
            })
    }

    /// Whether this is one of crewpool's backends (as opposed to a baseline).
    pub(crate) fn is_crewpool(self) -> bool {
        matches!(
            self,
            System::CrewpoolDeque
                | System::CrewpoolDequeBatch
                | System::CrewpoolFlume
                | System::CrewpoolRedis
        )
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
