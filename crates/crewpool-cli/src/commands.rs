//! The one-shot commands: queues, stats, peek, dead, schedules, requeue, delete, purge,
//! enqueue.

use std::io::Write as _;

use crewpool_core::JobId;
use crewpool_redis::{
    Admin, JobPage, JobState, JobView, QueueAdmin, QueueOverview, RedisConfig, RedisQueue,
    RedisUrl, RegisteredQueue, ScheduleView,
};
use serde::Serialize;

use crate::cli::{Cli, Command, Page};
use crate::error::{CliError, Result};
use crate::table::{self, Table, num, text};

/// Runs the command `cli` names.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    let url = RedisUrl::new(cli.redis.as_str());
    let json = cli.json;
    if let Command::Enqueue { queue, job } = &cli.command {
        return enqueue(&url, &cli.prefix, queue, job, json).await;
    }
    if let Command::Purge { yes: false, queue } = &cli.command {
        return Err(CliError::Usage(format!(
            "purge deletes every job of {queue:?} in every state; add --yes to do it"
        )));
    }
    let admin = connect(&url, &cli.prefix).await?;
    match cli.command {
        Command::Queues => queues(&admin, json).await,
        Command::Stats { queue } => stats(&known(&admin, &queue).await?, json).await,
        Command::Peek { queue, state, page } => {
            peek(&known(&admin, &queue).await?, state.into(), page, json).await
        }
        Command::Dead { queue, page } => {
            peek(&known(&admin, &queue).await?, JobState::Dead, page, json).await
        }
        Command::Schedules { queue } => schedules(&known(&admin, &queue).await?, json).await,
        Command::Requeue { queue, ids, all } => {
            requeue(&known(&admin, &queue).await?, &ids, all, json).await
        }
        Command::Delete { queue, ids, state } => {
            delete(&known(&admin, &queue).await?, &ids, state.into(), json).await
        }
        Command::Purge { queue, .. } => purge(&known(&admin, &queue).await?, json).await,
        Command::Pause { queue } => control(&known(&admin, &queue).await?, true, json).await,
        Command::Resume { queue } => control(&known(&admin, &queue).await?, false, json).await,
        Command::Watch {
            queues,
            interval,
            iterations,
        } => crate::watch::run(&admin, &queues, interval, iterations, json).await,
        Command::Dashboard { serve, read_only } => {
            crate::server::dashboard(admin, serve, read_only).await
        }
        Command::Exporter { serve } => crate::server::exporter(admin, serve).await,
        Command::Enqueue { .. } => unreachable!("handled above"),
    }
}

/// Connects the operator's handle; a failure is "cannot reach Redis" (exit 3).
pub(crate) async fn connect(url: &RedisUrl, prefix: &str) -> Result<Admin> {
    Admin::connect(url.clone(), prefix)
        .await
        .map_err(|source| match source {
            crewpool_redis::Error::Config(_) => CliError::Redis(source),
            source => CliError::Unreachable {
                url: url.to_string(),
                source,
            },
        })
}

/// The queue `name`, if the registry lists it or it ever had a job (exit 4 otherwise).
async fn known(admin: &Admin, name: &str) -> Result<QueueAdmin> {
    let queue = admin.queue(name)?;
    let registered = admin.queues().await?.iter().any(|q| q.name == name);
    if !registered && !queue.overview().await?.exists {
        return Err(CliError::NotFound(format!(
            "no queue {name:?} under prefix {:?} (`crewpool queues` lists them)",
            admin.prefix()
        )));
    }
    Ok(queue)
}

fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// A queue's overview with its registry entry, as `queues` and the dashboard list it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueueRow {
    #[serde(flatten)]
    pub(crate) overview: QueueOverview,
    /// When a process last connected to it (ms since the Unix epoch), when registered.
    pub(crate) last_connect_ms: Option<u64>,
}

/// Every registered queue's overview, by name.
pub(crate) async fn rows(admin: &Admin, only: &[String]) -> Result<Vec<QueueRow>> {
    let registered = admin.queues().await?;
    let names: Vec<String> = if only.is_empty() {
        registered.iter().map(|q| q.name.clone()).collect()
    } else {
        only.to_vec()
    };
    let mut rows = Vec::with_capacity(names.len());
    for name in names {
        let overview = admin.queue(&name)?.overview().await?;
        let last_connect_ms = registered
            .iter()
            .find(|q: &&RegisteredQueue| q.name == name)
            .map(|q| q.last_connect_ms);
        rows.push(QueueRow {
            overview,
            last_connect_ms,
        });
    }
    Ok(rows)
}

fn oldest(overview: &QueueOverview) -> String {
    overview
        .oldest_pending_age_ms
        .map_or_else(|| "-".to_owned(), table::duration_ms)
}

async fn queues(admin: &Admin, json: bool) -> Result<()> {
    let rows = rows(admin, &[]).await?;
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        return print(&format!(
            "no queues under prefix {:?} (a queue is listed once a process connects to it)\n",
            admin.prefix()
        ));
    }
    let mut table = Table::new(&[
        "QUEUE",
        "STATE",
        "PENDING",
        "SCHEDULED",
        "DELAYED",
        "LEASED",
        "DEAD",
        "PROCESSED",
        "FAILED",
        "EXPIRED",
        "OLDEST",
        "CONNECTED",
    ]);
    for row in &rows {
        let o = &row.overview;
        table.row(vec![
            text(&o.name),
            text(state(o)),
            num(o.pending),
            num(o.scheduled),
            num(o.delayed),
            num(o.leased),
            num(o.dead),
            num(o.processed),
            num(o.failed),
            num(o.lease_expired),
            table::Cell::Num(oldest(o)),
            text(
                row.last_connect_ms
                    .map_or_else(|| "-".to_owned(), |at| table::ago(at, o.now_ms)),
            ),
        ]);
    }
    print(&table.render())
}

async fn stats(queue: &QueueAdmin, json: bool) -> Result<()> {
    let o = queue.overview().await?;
    if json {
        return print_json(&o);
    }
    let by_level: Vec<String> = o
        .pending_by_level
        .iter()
        .enumerate()
        .rev()
        .filter(|&(_, &n)| n > 0)
        .map(|(level, n)| format!("{level}: {n}"))
        .collect();
    let lines: [(&str, String); 17] = [
        (
            "state",
            match o.paused_since_ms {
                Some(at) => format!("paused ({})", table::ago(at, o.now_ms)),
                None => "running".to_owned(),
            },
        ),
        (
            "rate limit",
            o.rate_limit.map_or_else(
                || "-".to_owned(),
                |limit| format!("{} jobs per {:?}", limit.jobs(), limit.per()),
            ),
        ),
        ("pending", o.pending.to_string()),
        (
            "pending by level",
            if by_level.is_empty() {
                "-".to_owned()
            } else {
                by_level.join(", ")
            },
        ),
        ("scheduled", o.scheduled.to_string()),
        ("delayed", o.delayed.to_string()),
        ("leased", o.leased.to_string()),
        ("dead", o.dead.to_string()),
        ("oldest pending", oldest(&o)),
        ("processed", o.processed.to_string()),
        ("succeeded", o.succeeded.to_string()),
        ("failed", o.failed.to_string()),
        ("lease expired", o.lease_expired.to_string()),
        ("missed deadline", o.missed_deadline.to_string()),
        ("unique keys", o.unique_keys.to_string()),
        ("schedules", o.schedules.to_string()),
        (
            "failure rate",
            if o.processed == 0 {
                "-".to_owned()
            } else {
                format!("{:.2}%", 100.0 * o.failed as f64 / o.processed as f64)
            },
        ),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("{:width$}  {}\n", "queue", o.name);
    for (key, value) in lines {
        out.push_str(&format!("{key:width$}  {value}\n"));
    }
    print(&out)
}

fn job_json(job: &JobView) -> String {
    match (&job.job, &job.error) {
        (Some(value), _) => value.to_string(),
        (None, Some(error)) => format!("<{error}>"),
        (None, None) => String::new(),
    }
}

/// The human table of one page of jobs.
fn page_table(page: &JobPage) -> String {
    let now = page.now_ms;
    let age = |job: &JobView| {
        job.enqueued_at_ms.map_or_else(
            || "-".to_owned(),
            |at| table::duration_ms(now.saturating_sub(at)),
        )
    };
    let mut table = match page.state {
        JobState::Pending => Table::new(&["ID", "ATTEMPT", "LEVEL", "AGE", "JOB"]),
        JobState::Scheduled => Table::new(&["ID", "LEVEL", "DUE", "UNIQUE", "JOB"]),
        JobState::Delayed => Table::new(&["ID", "ATTEMPT", "DUE", "AGE", "JOB"]),
        JobState::Leased => Table::new(&["ID", "ATTEMPT", "TOKEN", "LEASED FOR", "EXPIRES", "JOB"]),
        _ => Table::new(&["ID", "ATTEMPT", "DIED", "REASON", "JOB"]),
    };
    for job in &page.jobs {
        let body = text(table::shorten(&job_json(job), 72));
        let mut row = vec![num(job.id.0)];
        if page.state != JobState::Scheduled {
            row.push(num(job.attempt));
        }
        let due = || {
            text(
                job.due_at_ms
                    .map_or_else(|| "-".to_owned(), |due| table::until(due, now)),
            )
        };
        match page.state {
            JobState::Pending => {
                row.extend([num(job.priority), table::Cell::Num(age(job)), body]);
            }
            JobState::Scheduled => row.extend([
                num(job.priority),
                due(),
                text(job.unique_key.clone().unwrap_or_else(|| "-".to_owned())),
                body,
            ]),
            JobState::Delayed => row.extend([due(), table::Cell::Num(age(job)), body]),
            JobState::Leased => {
                let lease = job.lease.as_ref();
                row.extend([
                    text(lease.map_or("-", |l| l.token.as_str())),
                    table::Cell::Num(lease.and_then(|l| l.leased_at_ms).map_or_else(
                        || "-".to_owned(),
                        |at| table::duration_ms(now.saturating_sub(at)),
                    )),
                    text(
                        lease.map_or_else(|| "-".to_owned(), |l| table::until(l.deadline_ms, now)),
                    ),
                    body,
                ]);
            }
            _ => {
                let death = job.death.as_ref();
                row.extend([
                    text(death.map_or_else(|| "-".to_owned(), |d| table::ago(d.at_ms, now))),
                    text(table::shorten(death.map_or("", |d| d.reason.as_str()), 60)),
                    body,
                ]);
            }
        }
        table.row(row);
    }
    let mut out = table.render();
    let shown = page.jobs.len();
    out.push_str(&format!(
        "{shown} of {} {} job{} shown (from {}){}\n",
        page.total,
        page.state,
        if page.total == 1 { "" } else { "s" },
        page.offset,
        if (page.offset + shown) < usize::try_from(page.total).unwrap_or(usize::MAX) {
            "; --offset and -n for more, --json for whole jobs"
        } else {
            ""
        }
    ));
    out
}

async fn peek(queue: &QueueAdmin, state: JobState, page: Page, json: bool) -> Result<()> {
    if page.limit > crewpool_redis::MAX_PAGE {
        return Err(CliError::Usage(format!(
            "-n is at most {} (use --offset to page)",
            crewpool_redis::MAX_PAGE
        )));
    }
    let jobs = queue.jobs(state, page.offset, page.limit).await?;
    if json {
        return print_json(&jobs);
    }
    print(&page_table(&jobs))
}

/// When a schedule ticks, for a table: `every 30s` or its cron expression.
pub(crate) fn schedule_when(schedule: &ScheduleView) -> String {
    match (&schedule.cron, schedule.every_ms) {
        (Some(cron), _) => format!("cron {cron}"),
        (None, Some(ms)) => format!("every {}", table::duration_ms(ms)),
        (None, None) => "-".to_owned(),
    }
}

async fn schedules(queue: &QueueAdmin, json: bool) -> Result<()> {
    let schedules = queue.schedules().await?;
    if json {
        return print_json(&schedules);
    }
    if schedules.is_empty() {
        return print(&format!("no schedules on {}\n", queue.name()));
    }
    let now = queue.overview().await?.now_ms;
    let mut table = Table::new(&["NAME", "WHEN", "LEVEL", "MISSED", "LAST", "NEXT", "JOB"]);
    for schedule in &schedules {
        let job = match (&schedule.job, &schedule.error) {
            (_, Some(error)) => format!("<{error}>"),
            (Some(job), None) => job.to_string(),
            (None, None) => String::new(),
        };
        table.row(vec![
            text(&schedule.name),
            text(schedule_when(schedule)),
            num(schedule.priority),
            text(match schedule.grace_ms {
                Some(grace) => format!("skip after {}", table::duration_ms(grace)),
                None => "fire latest".to_owned(),
            }),
            text(if schedule.last_tick_ms <= schedule.since_ms {
                "-".to_owned()
            } else {
                table::ago(schedule.last_tick_ms, now)
            }),
            text(
                schedule
                    .next_tick_ms
                    .map_or_else(|| "-".to_owned(), |next| table::until(next, now)),
            ),
            text(table::shorten(&job, 60)),
        ]);
    }
    print(&table.render())
}

/// What a repair did, for `--json`.
#[derive(Debug, Serialize)]
struct Outcome<'a> {
    queue: &'a str,
    action: &'a str,
    requested: Option<usize>,
    done: u64,
}

fn outcome(
    queue: &QueueAdmin,
    action: &str,
    ids: Option<&[u64]>,
    done: u64,
    json: bool,
) -> Result<()> {
    let requested = ids.map(<[u64]>::len);
    if json {
        print_json(&Outcome {
            queue: queue.name(),
            action,
            requested,
            done,
        })?;
    } else {
        print(&format!(
            "{action}: {done} job{} of {}\n",
            if done == 1 { "" } else { "s" },
            queue.name()
        ))?;
    }
    match requested {
        Some(requested) if done < requested as u64 => Err(CliError::NotFound(format!(
            "{} of the {requested} ids matched nothing",
            requested as u64 - done
        ))),
        _ => Ok(()),
    }
}

fn job_ids(ids: &[u64]) -> Vec<JobId> {
    ids.iter().copied().map(JobId).collect()
}

async fn requeue(queue: &QueueAdmin, ids: &[u64], all: bool, json: bool) -> Result<()> {
    if all {
        let moved = queue.requeue_all_dead().await?;
        return outcome(queue, "requeued", None, moved, json);
    }
    let moved = queue.requeue_dead(&job_ids(ids)).await?;
    outcome(queue, "requeued", Some(ids), moved, json)
}

async fn delete(queue: &QueueAdmin, ids: &[u64], state: JobState, json: bool) -> Result<()> {
    let deleted = queue.delete(state, &job_ids(ids)).await?;
    outcome(queue, "deleted", Some(ids), deleted, json)
}

/// `running` or `paused`.
pub(crate) fn state(overview: &QueueOverview) -> &'static str {
    if overview.paused { "paused" } else { "running" }
}

/// What `pause` and `resume` did, for `--json`.
#[derive(Debug, Serialize)]
struct Controlled<'a> {
    queue: &'a str,
    state: &'static str,
    changed: bool,
}

async fn control(queue: &QueueAdmin, pause: bool, json: bool) -> Result<()> {
    let changed = if pause {
        queue.pause().await?
    } else {
        queue.resume().await?
    };
    let state = if pause { "paused" } else { "running" };
    if json {
        return print_json(&Controlled {
            queue: queue.name(),
            state,
            changed,
        });
    }
    let name = queue.name();
    print(&match (pause, changed) {
        (true, true) => format!("paused {name}: workers take no job until it is resumed\n"),
        (true, false) => format!("{name} was paused already\n"),
        (false, true) => format!("resumed {name}\n"),
        (false, false) => format!("{name} was not paused\n"),
    })
}

async fn purge(queue: &QueueAdmin, json: bool) -> Result<()> {
    let before = queue.overview().await?;
    queue.purge().await?;
    let jobs = before.pending + before.scheduled + before.delayed + before.leased + before.dead;
    outcome(queue, "purged", None, jobs, json)
}

/// The id `enqueue` printed, for `--json`.
#[derive(Debug, Serialize)]
struct Enqueued<'a> {
    queue: &'a str,
    id: u64,
}

async fn enqueue(url: &RedisUrl, prefix: &str, queue: &str, job: &str, json: bool) -> Result<()> {
    let job: serde_json::Value = serde_json::from_str(job)
        .map_err(|e| CliError::Usage(format!("the job is not JSON: {e}")))?;
    let config = RedisConfig::new(url.clone(), queue).prefix(prefix);
    let producer = RedisQueue::<serde_json::Value>::connect(config)
        .await
        .map_err(|source| match source {
            crewpool_redis::Error::Config(_) => CliError::Redis(source),
            source if source.is_connection() => CliError::Unreachable {
                url: url.to_string(),
                source,
            },
            source => CliError::Redis(source),
        })?;
    let id = producer.enqueue(&job).await?;
    if json {
        print_json(&Enqueued { queue, id: id.0 })
    } else {
        print(&format!("enqueued job {id} on {queue}\n"))
    }
}
