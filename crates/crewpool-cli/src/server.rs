//! The HTTP side: listening, who may ask, and the headers every answer carries.
//!
//! # Who may ask
//!
//! - **No token** (the default): the server must listen on a loopback address, and
//!   answers only requests whose `Host` is a loopback name (`localhost`, `127.x.y.z`,
//!   `[::1]`), so a web page elsewhere cannot reach it through DNS rebinding.
//! - **A token** (`--token`, `CREWPOOL_TOKEN`): any address; every request needs it,
//!   as the password of HTTP basic auth (browsers ask for it; any user name) or as
//!   `Authorization: Bearer <token>` (Prometheus's `authorization` setting).
//! - **Changes** (requeue, delete) are `POST`s of JSON that must come from the
//!   dashboard's own page: `Sec-Fetch-Site`, when the browser sends it, is
//!   `same-origin`; `Origin`, when sent, is this server; and the `X-Crewpool-Csrf`
//!   header carries the token this process made at start and handed only to its own
//!   page (`/api/session`, readable only same-origin). `--read-only` refuses them all.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use crewpool_redis::Admin;

use crate::cli::{Serve, ServeCommon, ServeExporter};
use crate::error::{CliError, Result};
use crate::sampler::Samples;

/// The header that carries the CSRF token on every change.
pub(crate) const CSRF_HEADER: &str = "x-crewpool-csrf";

/// What the request checks need.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    token: Option<Arc<str>>,
    csrf: Arc<str>,
    read_only: bool,
}

impl Guard {
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }
}

/// Serves the dashboard (and `/metrics`) until Ctrl-C or SIGTERM.
pub(crate) async fn dashboard(admin: Admin, serve: Serve, read_only: bool) -> Result<()> {
    let guard = guard(&serve.common, serve.listen, read_only)?;
    let samples = Samples::new(serve.common.sample_interval);
    tokio::spawn(samples.clone().run(admin.clone()));
    let app = crate::dashboard::router(admin.clone(), samples, guard.clone());
    listen(app, guard, serve.listen, "dashboard", &admin).await
}

/// Serves `/metrics` only until Ctrl-C or SIGTERM.
pub(crate) async fn exporter(admin: Admin, serve: ServeExporter) -> Result<()> {
    // Metrics are read-only counts: any address may serve them, with or without a
    // token.
    let guard = Guard {
        token: serve.common.token.as_deref().map(Arc::from),
        csrf: Arc::from(""),
        read_only: true,
    };
    let app = Router::new()
        .route("/", get(exporter_index))
        .route("/metrics", get(metrics))
        .with_state(admin.clone());
    listen(app, guard, serve.listen, "exporter", &admin).await
}

async fn exporter_index() -> &'static str {
    "crewpool exporter: Prometheus metrics at /metrics\n"
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(admin): State<Admin>) -> Response {
    (
        [
            (header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::metrics::render(&admin).await,
    )
        .into_response()
}

/// Checks the dashboard's settings and makes its guard.
fn guard(common: &ServeCommon, listen: SocketAddr, read_only: bool) -> Result<Guard> {
    let token = common.token.as_deref().filter(|token| !token.is_empty());
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(CliError::Usage(format!(
            "refusing to serve the dashboard on {listen} without a token: anyone who reaches \
             it could requeue or delete jobs; set --token (or CREWPOOL_TOKEN), or listen on \
             127.0.0.1"
        )));
    }
    Ok(Guard {
        token: token.map(Arc::from),
        csrf: Arc::from(random_token()?),
        read_only,
    })
}

/// 32 random bytes from the operating system, in hex.
fn random_token() -> Result<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("no randomness for the CSRF token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn listen(
    app: Router,
    guard: Guard,
    address: SocketAddr,
    what: &str,
    admin: &Admin,
) -> Result<()> {
    let app = app
        .layer(middleware::from_fn_with_state(guard.clone(), check))
        .layer(middleware::from_fn(headers));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
    let local = listener.local_addr()?;
    // The URL is redacted: no password reaches the terminal or a log.
    println!(
        "crewpool {what}: listening on http://{local} (Redis {}, prefix {}{})",
        admin.url(),
        admin.prefix(),
        if guard.token.is_some() {
            ", token required"
        } else {
            ""
        }
    );
    tracing::info!(%local, redis = %admin.url(), prefix = admin.prefix(), "crewpool {what} started");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Whether the request carries the token (basic auth password, or bearer).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return same_secret(bearer.trim().as_bytes(), token.as_bytes());
    }
    if let Some(basic) = value.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
            return false;
        };
        let password = decoded
            .iter()
            .position(|&b| b == b':')
            .map_or(&decoded[..0], |colon| &decoded[colon + 1..]);
        return same_secret(password, token.as_bytes());
    }
    false
}

/// Whether `Host` names this machine's loopback.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a change request comes from the dashboard's own page.
fn same_origin_change(headers: &HeaderMap, csrf: &str) -> std::result::Result<(), &'static str> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
    {
        return Err("cross-site request refused");
    }
    if let Some(origin) = text("origin") {
        let host = text("host").unwrap_or("");
        let expected = [format!("http://{host}"), format!("https://{host}")];
        if !expected.iter().any(|e| e == origin) {
            return Err("request from another origin refused");
        }
    }
    match text(CSRF_HEADER) {
        Some(given) if same_secret(given.as_bytes(), csrf.as_bytes()) => Ok(()),
        _ => Err("missing or wrong CSRF token (reload the page)"),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response =
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"crewpool\", charset=\"UTF-8\""),
        );
    }
    response
}

/// Authentication, the loopback `Host` check, and the checks on changes.
async fn check(State(guard): State<Guard>, request: Request<Body>, next: Next) -> Response {
    let headers = request.headers();
    match &guard.token {
        Some(token) if !authorized(headers, token) => {
            return refuse(StatusCode::UNAUTHORIZED, "a token is required");
        }
        Some(_) => {}
        None if !loopback_host(headers) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "this dashboard answers only to localhost (set --token to serve other hosts)",
            );
        }
        None => {}
    }
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        if guard.read_only {
            return refuse(StatusCode::FORBIDDEN, "the dashboard is read-only");
        }
        if let Err(message) = same_origin_change(headers, &guard.csrf) {
            return refuse(StatusCode::FORBIDDEN, message);
        }
    }
    next.run(request).await
}

/// The headers every answer carries: no framing, no sniffing, no referrer, scripts
/// and styles from this server only, nothing cached.
async fn headers(request: Request<Body>, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn tokens_are_taken_from_basic_auth_or_bearer() {
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        assert!(authorized(
            &headers(&[("authorization", &format!("Basic {basic}"))]),
            "s3cret"
        ));
        assert!(authorized(
            &headers(&[("authorization", "Bearer s3cret")]),
            "s3cret"
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer s3cre")]),
            "s3cret"
        ));
        assert!(!authorized(&headers(&[]), "s3cret"));
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for host in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(loopback_host(&headers(&[("host", host)])), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1:8080",
            "localhost.evil.example",
        ] {
            assert!(!loopback_host(&headers(&[("host", host)])), "{host}");
        }
    }

    #[test]
    fn changes_need_the_same_origin_and_the_csrf_token() {
        let ok = [("host", "127.0.0.1:8080"), (CSRF_HEADER, "abc")];
        assert!(same_origin_change(&headers(&ok), "abc").is_ok());
        let mut cross = ok.to_vec();
        cross.push(("sec-fetch-site", "cross-site"));
        assert!(same_origin_change(&headers(&cross), "abc").is_err());
        let mut other = ok.to_vec();
        other.push(("origin", "http://evil.example"));
        assert!(same_origin_change(&headers(&other), "abc").is_err());
        assert!(same_origin_change(&headers(&ok[..1]), "abc").is_err());
        assert!(same_origin_change(&headers(&ok), "abd").is_err());
    }
}
