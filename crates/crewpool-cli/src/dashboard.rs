//! The dashboard: a small page and script served from the binary, and the JSON API
//! they read and post to.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`dashboard/index.html`; `app.js` draws everything) |
//! | `GET /api/session` | the CSRF token, whether read-only, the Redis URL (redacted), the prefix |
//! | `GET /api/queues` | every registered queue's counts and totals |
//! | `GET /api/queues/{queue}` | one queue's counts and totals |
//! | `GET /api/queues/{queue}/jobs?state=&offset=&limit=` | one page of jobs |
//! | `GET /api/queues/{queue}/schedules` | its periodic schedules and the last ticks fired |
//! | `GET /api/throughput` | jobs per second of every queue over the last minutes |
//! | `POST /api/queues/{queue}/requeue` | `{"ids":[…]}` or `{"all":true}`: dead letters back to the queue |
//! | `POST /api/queues/{queue}/delete` | `{"state":"dead","ids":[…]}` |
//! | `POST /api/queues/{queue}/pause` | pause the queue for every worker process |
//! | `POST /api/queues/{queue}/resume` | resume it |
//! | `GET /metrics` | Prometheus metrics |

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, extract::FromRef};
use crewpool_core::JobId;
use crewpool_redis::{Admin, JobState, QueueAdmin};
use serde::{Deserialize, Serialize};

use crate::commands::rows;
use crate::sampler::Samples;
use crate::server::Guard;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");
const FAVICON_SVG: &str = include_str!("dashboard/favicon.svg");

/// What the handlers share.
#[derive(Debug, Clone)]
struct App {
    admin: Admin,
    samples: Samples,
    guard: Guard,
}

impl FromRef<App> for Admin {
    fn from_ref(app: &App) -> Admin {
        app.admin.clone()
    }
}

/// The dashboard's routes.
pub(crate) fn router(admin: Admin, samples: Samples, guard: Guard) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route("/api/session", get(session))
        .route("/api/queues", get(queues))
        .route("/api/queues/{queue}", get(queue))
        .route("/api/queues/{queue}/jobs", get(jobs))
        .route("/api/queues/{queue}/schedules", get(schedules))
        .route("/api/queues/{queue}/requeue", post(requeue))
        .route("/api/queues/{queue}/delete", post(delete))
        .route("/api/queues/{queue}/pause", post(pause))
        .route("/api/queues/{queue}/resume", post(resume))
        .route("/api/throughput", get(throughput))
        .route("/metrics", get(crate::server::metrics))
        .with_state(App {
            admin,
            samples,
            guard,
        })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An API error: a status and a message, as `{"error": …}`. Messages come from the
/// library, which never puts the password in them.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<crewpool_redis::Error> for ApiError {
    fn from(error: crewpool_redis::Error) -> Self {
        let status = match &error {
            crewpool_redis::Error::Config(_) => StatusCode::BAD_REQUEST,
            error if error.is_connection() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, error.to_string())
    }
}

impl From<crate::error::CliError> for ApiError {
    fn from(error: crate::error::CliError) -> Self {
        match error {
            crate::error::CliError::Redis(error) => error.into(),
            other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// What the page needs to know about this server.
#[derive(Debug, Serialize)]
struct Session {
    csrf: String,
    read_only: bool,
    redis: String,
    prefix: String,
    version: &'static str,
    sample_interval_ms: u64,
}

async fn session(State(app): State<App>) -> Json<Session> {
    Json(Session {
        csrf: app.guard.csrf().to_owned(),
        read_only: app.guard.read_only(),
        // Redacted: `RedisUrl`'s Display hides the password.
        redis: app.admin.url().to_string(),
        prefix: app.admin.prefix().to_owned(),
        version: env!("CARGO_PKG_VERSION"),
        sample_interval_ms: app.samples.throughput().interval_ms,
    })
}

async fn queues(State(app): State<App>) -> ApiResult<Vec<crate::commands::QueueRow>> {
    Ok(Json(rows(&app.admin, &[]).await?))
}

fn handle(app: &App, name: &str) -> Result<QueueAdmin, ApiError> {
    Ok(app.admin.queue(name)?)
}

async fn queue(
    State(app): State<App>,
    Path(name): Path<String>,
) -> ApiResult<crate::commands::QueueRow> {
    let mut found = rows(&app.admin, std::slice::from_ref(&name)).await?;
    let row = found
        .pop()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no queue {name:?}")))?;
    let registered = row.last_connect_ms.is_some();
    if !registered && !row.overview.exists {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no queue {name:?}"),
        ));
    }
    Ok(Json(row))
}

#[derive(Debug, Deserialize)]
struct JobsQuery {
    state: String,
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    20
}

async fn jobs(
    State(app): State<App>,
    Path(name): Path<String>,
    Query(query): Query<JobsQuery>,
) -> ApiResult<crewpool_redis::JobPage> {
    let state: JobState = query.state.parse()?;
    Ok(Json(
        handle(&app, &name)?
            .jobs(state, query.offset, query.limit.min(100))
            .await?,
    ))
}

/// A queue's schedules and the last ticks they fired.
#[derive(Debug, Serialize)]
struct Schedules {
    now_ms: u64,
    schedules: Vec<crewpool_redis::ScheduleView>,
    fired: Vec<crewpool_redis::FiredTick>,
}

async fn schedules(State(app): State<App>, Path(name): Path<String>) -> ApiResult<Schedules> {
    let queue = handle(&app, &name)?;
    let now_ms = queue.overview().await?.now_ms;
    Ok(Json(Schedules {
        now_ms,
        schedules: queue.schedules().await?,
        fired: queue.fired_ticks(20).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequeueBody {
    #[serde(default)]
    ids: Vec<u64>,
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Serialize)]
struct Done {
    done: u64,
}

async fn requeue(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<RequeueBody>,
) -> ApiResult<Done> {
    let queue = handle(&app, &name)?;
    let done = if body.all {
        queue.requeue_all_dead().await?
    } else {
        let ids: Vec<JobId> = body.ids.into_iter().map(JobId).collect();
        queue.requeue_dead(&ids).await?
    };
    tracing::info!(queue = %name, done, all = body.all, "dashboard: requeued dead letters");
    Ok(Json(Done { done }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    state: String,
    ids: Vec<u64>,
}

async fn delete(
    State(app): State<App>,
    Path(name): Path<String>,
    Json(body): Json<DeleteBody>,
) -> ApiResult<Done> {
    let state: JobState = body.state.parse()?;
    let ids: Vec<JobId> = body.ids.into_iter().map(JobId).collect();
    let done = handle(&app, &name)?.delete(state, &ids).await?;
    tracing::info!(queue = %name, %state, done, "dashboard: deleted jobs");
    Ok(Json(Done { done }))
}

/// What a pause or resume did: whether the state changed.
#[derive(Debug, Serialize)]
struct Changed {
    changed: bool,
}

async fn pause(State(app): State<App>, Path(name): Path<String>) -> ApiResult<Changed> {
    let changed = handle(&app, &name)?.pause().await?;
    tracing::info!(queue = %name, changed, "dashboard: paused the queue");
    Ok(Json(Changed { changed }))
}

async fn resume(State(app): State<App>, Path(name): Path<String>) -> ApiResult<Changed> {
    let changed = handle(&app, &name)?.resume().await?;
    tracing::info!(queue = %name, changed, "dashboard: resumed the queue");
    Ok(Json(Changed { changed }))
}

async fn throughput(State(app): State<App>) -> Json<crate::sampler::Throughput> {
    Json(app.samples.throughput())
}
