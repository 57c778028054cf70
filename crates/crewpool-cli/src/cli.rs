//! The command line's arguments.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0  done
  1  Redis answered an error, or something unexpected
  2  bad arguments, or a refused setting (purge without --yes; a dashboard on a
     non-loopback address without a token)
  3  Redis could not be reached
  4  not found: an unknown queue, or ids that matched nothing

Job states: pending (waiting, next in line first: the highest priority level first),
scheduled (waiting for the time it was enqueued for, soonest first), delayed (waiting
for a retry's backoff, soonest first), leased (held by a worker), dead (dead letters,
newest first).

The password of the Redis URL is never printed, served or logged.";

/// Inspect and repair crewpool's Redis queues; serve a dashboard and Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "crewpool", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// The Redis URL: redis://[user[:password]@]host[:port][/db] (rediss:// for TLS).
    #[arg(
        long = "redis",
        global = true,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        value_name = "URL"
    )]
    pub(crate) redis: String,
    /// The key prefix of the queues.
    #[arg(
        long,
        global = true,
        env = "CREWPOOL_PREFIX",
        default_value = "crewpool"
    )]
    pub(crate) prefix: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List every queue with its counts, totals and oldest pending job.
    Queues,
    /// Show one queue's counts and totals.
    Stats {
        /// The queue.
        queue: String,
    },
    /// Show the jobs of one state, decoded as JSON (leased ones with their lease).
    Peek {
        /// The queue.
        queue: String,
        /// Which jobs.
        #[arg(long, value_enum, default_value_t = State::Pending)]
        state: State,
        #[command(flatten)]
        page: Page,
    },
    /// Show the dead letters: reason, attempt, when.
    Dead {
        /// The queue.
        queue: String,
        #[command(flatten)]
        page: Page,
    },
    /// Move dead letters back to the queue as fresh jobs (attempt 1).
    Requeue {
        /// The queue.
        queue: String,
        /// The job ids to requeue.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// Requeue every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Delete jobs by id (dead letters unless --state says otherwise).
    Delete {
        /// The queue.
        queue: String,
        /// The job ids to delete.
        #[arg(required = true)]
        ids: Vec<u64>,
        /// Where the jobs are (leased jobs belong to their worker and are never deleted).
        #[arg(long, value_enum, default_value_t = DeletableState::Dead)]
        state: DeletableState,
    },
    /// Pause a queue: no worker process takes a job until it is resumed (running jobs finish).
    Pause {
        /// The queue.
        queue: String,
    },
    /// Resume a paused queue: every waiting worker process fetches at once.
    Resume {
        /// The queue.
        queue: String,
    },
    /// Delete a whole queue: every job in every state, its totals and its registry entry.
    Purge {
        /// The queue.
        queue: String,
        /// Confirm: without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// List a queue's periodic schedules: when they tick, their last and next ticks, their job.
    Schedules {
        /// The queue.
        queue: String,
    },
    /// Add a job, given as JSON (the job itself, not an envelope); prints its id.
    Enqueue {
        /// The queue.
        queue: String,
        /// The job, e.g. '{"to":"a@example.com"}'.
        job: String,
    },
    /// A live table of queues with their counts and rates (Ctrl-C to stop).
    Watch {
        /// The queues to show (default: every registered queue).
        queues: Vec<String>,
        /// Seconds between refreshes.
        #[arg(long, default_value = "2", value_parser = seconds)]
        interval: Duration,
        /// Stop after this many refreshes (default: never).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// Serve the web dashboard (and /metrics).
    Dashboard {
        #[command(flatten)]
        serve: Serve,
        /// Serve no change (no requeue or delete buttons; every POST refused).
        #[arg(long)]
        read_only: bool,
    },
    /// Serve Prometheus metrics only, on /metrics.
    Exporter {
        #[command(flatten)]
        serve: ServeExporter,
    },
}

/// Paging of job lists.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Page {
    /// How many jobs to show (at most 1000).
    #[arg(short = 'n', long = "limit", default_value_t = 20)]
    pub(crate) limit: usize,
    /// How many jobs to skip first.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
}

/// Where and how the dashboard listens.
#[derive(Debug, Clone, Args)]
pub(crate) struct Serve {
    /// The address to listen on. A non-loopback address needs --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) common: ServeCommon,
}

/// Where and how the exporter listens.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeExporter {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) common: ServeCommon,
}

/// Settings the dashboard and the exporter share.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeCommon {
    /// Require this token on every request: HTTP basic auth (any user name, the token
    /// as password) or `Authorization: Bearer <token>`.
    #[arg(long, env = "CREWPOOL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Seconds between the samples of the throughput chart.
    #[arg(long, default_value = "5", value_parser = seconds)]
    pub(crate) sample_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum State {
    Pending,
    Scheduled,
    Delayed,
    Leased,
    Dead,
}

impl From<State> for crewpool_redis::JobState {
    fn from(state: State) -> Self {
        match state {
            State::Pending => crewpool_redis::JobState::Pending,
            State::Scheduled => crewpool_redis::JobState::Scheduled,
            State::Delayed => crewpool_redis::JobState::Delayed,
            State::Leased => crewpool_redis::JobState::Leased,
            State::Dead => crewpool_redis::JobState::Dead,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeletableState {
    Pending,
    Scheduled,
    Delayed,
    Dead,
}

impl From<DeletableState> for crewpool_redis::JobState {
    fn from(state: DeletableState) -> Self {
        match state {
            DeletableState::Pending => crewpool_redis::JobState::Pending,
            DeletableState::Scheduled => crewpool_redis::JobState::Scheduled,
            DeletableState::Delayed => crewpool_redis::JobState::Delayed,
            DeletableState::Dead => crewpool_redis::JobState::Dead,
        }
    }
}

/// Parses a positive number of seconds (fractions allowed).
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("expected seconds, got {text:?}"))?;
    if !(0.05..=86_400.0).contains(&seconds) {
        return Err(format!("expected 0.05 to 86400 seconds, got {seconds}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_arguments_are_consistent() {
        super::Cli::command().debug_assert();
    }
}
