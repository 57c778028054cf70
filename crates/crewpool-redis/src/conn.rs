//! Where Redis is and how to reach it: one server, a Redis Cluster, or the master a
//! set of Sentinels names; and the connection every part of a queue shares, whichever
//! it is.
//!
//! - **Server** (`redis://`, `rediss://`): a [`ConnectionManager`] that reconnects
//!   with backoff, replaced by a new one after a time-out (a connection gone silent
//!   would time out every later call).
//! - **Cluster** (`redis+cluster://h1:p1,h2:p2`): the redis crate's cluster client,
//!   which learns the slot map from the seed nodes, routes each command by its first
//!   key and follows `MOVED`/`ASK` redirections. Every queue script touches keys of one
//!   hash tag (`{queue}`), so all of a queue's keys live in one slot, on one master;
//!   different queues spread over the masters.
//! - **Sentinel** (`redis+sentinel://s1:p1,s2:p2/<service>[/db]`): asks the Sentinels
//!   for the master of `service`, connects to it, and asks again after a call fails
//!   the way a failover makes calls fail (connection lost or refused, time-out,
//!   `READONLY`, `MASTERDOWN`): the next call goes to the promoted replica.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisFuture, ServerErrorKind, Value,
};

use crate::{Error, RedisConfig, RedisUrl, Result};

/// The URL forms, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server: the URL as it is.
    Server,
    /// A Redis Cluster: one `redis://[user[:password]@]host:port` URL per seed node.
    Cluster(Vec<String>),
    /// The master of `service` as the Sentinels name it.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        db: i64,
        username: Option<String>,
        password: Option<String>,
    },
}

/// Splits `host:port`.
fn host_port(text: &str, url: &RedisUrl) -> Result<(String, u16)> {
    let bad = || {
        Error::Config(format!(
            "every node of {url} must be written host:port (got {text:?})"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl Target {
    /// Reads the URL's form: `redis://`/`rediss://` (one server),
    /// `redis+cluster://[user[:password]@]h1:p1,h2:p2` (seed nodes of a Cluster),
    /// `redis+sentinel://[user[:password]@]s1:p1,s2:p2/<service>[/db]` (Sentinels
    /// and the name of the master they watch; the user and password are the data
    /// nodes').
    pub(crate) fn parse(url: &RedisUrl) -> Result<Self> {
        let raw = url.expose();
        let (form, rest) = if let Some(rest) = raw.strip_prefix("redis+cluster://") {
            ("cluster", rest)
        } else if let Some(rest) = raw.strip_prefix("redis+sentinel://") {
            ("sentinel", rest)
        } else if raw.starts_with("redis://") || raw.starts_with("rediss://") {
            return Ok(Target::Server);
        } else {
            return Err(Error::Config(format!(
                "the URL must start with redis://, rediss://, redis+cluster:// or redis+sentinel:// (got {url})"
            )));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let nodes = hosts
            .split(',')
            .filter(|node| !node.is_empty())
            .map(|node| host_port(node, url))
            .collect::<Result<Vec<_>>>()?;
        if nodes.is_empty() {
            return Err(Error::Config(format!("{url} names no node")));
        }
        if form == "cluster" {
            if !path.is_empty() {
                return Err(Error::Config(format!(
                    "a Redis Cluster has only database 0: {url} must not have a path"
                )));
            }
            let auth = userinfo.map_or_else(String::new, |info| format!("{info}@"));
            return Ok(Target::Cluster(
                nodes
                    .into_iter()
                    .map(|(host, port)| format!("redis://{auth}{host}:{port}"))
                    .collect(),
            ));
        }
        let mut parts = path.split('/');
        let service = parts.next().unwrap_or_default();
        if service.is_empty() {
            return Err(Error::Config(format!(
                "{url} must name the master the Sentinels watch: redis+sentinel://host:port,.../<service>"
            )));
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(db) => db.parse::<i64>().map_err(|_| {
                Error::Config(format!("{url}: the database must be a number (got {db:?})"))
            })?,
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => (
                    (!user.is_empty()).then(|| crate::url::percent_decode(user)),
                    Some(crate::url::percent_decode(password)),
                ),
                None => (Some(crate::url::percent_decode(info)), None),
            },
        };
        Ok(Target::Sentinel {
            sentinels: nodes,
            service: service.to_owned(),
            db,
            username,
            password,
        })
    }
}

/// What makes connections: a client for one server, a Cluster, or Sentinels.
// One per queue handle, made once at connect: the size of a server's client (larger
// with TLS) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum Endpoint {
    Server(Client),
    /// The seed nodes' URLs (a connection reads the slot map from them).
    Cluster(Vec<String>),
    Sentinel(Arc<SentinelEndpoint>),
}

/// The Sentinels and what it takes to connect to the master they name.
pub(crate) struct SentinelEndpoint {
    client: tokio::sync::Mutex<SentinelClient>,
}

impl Endpoint {
    /// The endpoint of `config`'s URL; connects to nothing yet.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self> {
        let url = &config.url;
        let scrub = |e: redis::RedisError| Error::Config(url.scrub(e.to_string()));
        match Target::parse(url)? {
            Target::Server => crate::link::client(config).map(Endpoint::Server),
            Target::Cluster(nodes) => ClusterClient::builder(nodes.clone())
                .tcp_settings(crate::link::tcp_settings())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(4)
                .build()
                .map(|_| Endpoint::Cluster(nodes))
                .map_err(scrub),
            Target::Sentinel {
                sentinels,
                service,
                db,
                username,
                password,
            } => {
                let addrs = sentinels
                    .into_iter()
                    .map(|(host, port)| ConnectionAddr::Tcp(host, port));
                let mut builder =
                    SentinelClientBuilder::new(addrs, service, SentinelServerType::Master)
                        .map_err(scrub)?
                        .set_client_to_redis_db(db)
                        .set_client_to_redis_tcp_settings(crate::link::tcp_settings());
                if let Some(username) = username {
                    builder = builder.set_client_to_redis_username(username);
                }
                if let Some(password) = password {
                    builder = builder.set_client_to_redis_password(password);
                }
                let client = builder.build().map_err(scrub)?;
                Ok(Endpoint::Sentinel(Arc::new(SentinelEndpoint {
                    client: tokio::sync::Mutex::new(client),
                })))
            }
        }
    }

    /// A client for one data node: the server, the first seed node of a Cluster that
    /// answers, or the master the Sentinels name now.
    pub(crate) async fn node_client(&self, config: &RedisConfig) -> redis::RedisResult<Client> {
        match self {
            Endpoint::Server(client) => Ok(client.clone()),
            Endpoint::Cluster(nodes) => {
                let settings = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout));
                let mut last = None;
                for node in nodes {
                    let client = Client::open(node.as_str())?;
                    match client
                        .get_multiplexed_async_connection_with_config(&settings)
                        .await
                    {
                        Ok(_) => return Ok(client),
                        Err(error) => last = Some(error),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((ErrorKind::InvalidClientConfig, "no seed node"))
                }))
            }
            Endpoint::Sentinel(sentinel) => sentinel.client.lock().await.async_get_client().await,
        }
    }

    /// A connection with `response_timeout` on every call, made now for a Cluster
    /// (it reads the slot map) and on its first use otherwise.
    pub(crate) async fn connect(
        &self,
        config: &RedisConfig,
        response_timeout: Duration,
    ) -> Result<Conn> {
        let url = &config.url;
        match self {
            Endpoint::Server(client) => {
                // Checks the settings now; connections are made on first use.
                manager(client, config, response_timeout)?;
                Ok(Conn::Replacing(ReplacingConn::new(
                    Source::Server(client.clone()),
                    config,
                    response_timeout,
                )))
            }
            Endpoint::Cluster(nodes) => {
                // The response timeout is the client's: build one with this timeout.
                let client = ClusterClient::builder(nodes.clone())
                    .tcp_settings(crate::link::tcp_settings())
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(4)
                    .build()
                    .map_err(|e| Error::Config(url.scrub(e.to_string())))?;
                let call = crate::link::Call::new(url, "connecting to the Cluster");
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| call.fail(&e))?;
                Ok(Conn::Cluster(conn))
            }
            Endpoint::Sentinel(sentinel) => Ok(Conn::Replacing(ReplacingConn::new(
                Source::Sentinel(Arc::clone(sentinel)),
                config,
                response_timeout,
            ))),
        }
    }
}

/// A connection manager that connects on its first use and reconnects with backoff.
pub(crate) fn manager(
    client: &Client,
    config: &RedisConfig,
    response_timeout: Duration,
) -> Result<ConnectionManager> {
    // Reconnects back off exponentially from 50 ms to 2 s; each attempt gives up after
    // the connect timeout. A command issued while Redis is away fails, and its caller
    // backs off too.
    let manager_config = ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(4)
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(response_timeout));
    ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
        .map_err(|e| Error::Config(config.url.scrub(e.to_string())))
}

/// A connection to one server, to a Cluster, or to the master the Sentinels name.
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server, or the master the Sentinels name.
    Replacing(ReplacingConn),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Replacing(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Replacing(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Replacing(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Where a [`ReplacingConn`] gets its connections from.
// One per connection, made once: not worth a box (see `Endpoint`).
#[allow(clippy::large_enum_variant)]
enum Source {
    /// One server.
    Server(Client),
    /// The master the Sentinels name (asked again for every new connection).
    Sentinel(Arc<SentinelEndpoint>),
}

/// A connection that is replaced when a call fails in a way the connection manager
/// does not repair by itself: a time-out (a connection gone silent, half-open, would
/// otherwise time out every later call too), and, behind Sentinels, what a failover
/// looks like (connection lost or refused, `READONLY`, `MASTERDOWN`), after which the
/// Sentinels are asked for the master again.
#[derive(Clone)]
pub(crate) struct ReplacingConn {
    shared: Arc<Replacing>,
}

struct Replacing {
    source: Source,
    config: RedisConfig,
    response_timeout: Duration,
    /// The connection and its generation; `None` until the first call and after a
    /// failure that retires it.
    current: Mutex<Option<(u64, ConnectionManager)>>,
    generations: std::sync::atomic::AtomicU64,
}

impl ReplacingConn {
    fn new(source: Source, config: &RedisConfig, response_timeout: Duration) -> Self {
        ReplacingConn {
            shared: Arc::new(Replacing {
                source,
                config: config.clone(),
                response_timeout,
                current: Mutex::new(None),
                generations: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

impl Replacing {
    async fn connection(&self) -> redis::RedisResult<(u64, ConnectionManager)> {
        if let Some(current) = self.lock().clone() {
            return Ok(current);
        }
        let client = match &self.source {
            Source::Server(client) => client.clone(),
            Source::Sentinel(sentinel) => {
                let client = sentinel.client.lock().await.async_get_client().await?;
                tracing::info!(master = %client.get_connection_info().addr(), "connecting to the master the Sentinels name");
                client
            }
        };
        let mut current = self.lock();
        if let Some(existing) = current.as_ref() {
            return Ok(existing.clone());
        }
        let conn = manager(&client, &self.config, self.response_timeout).map_err(|e| {
            redis::RedisError::from((ErrorKind::InvalidClientConfig, "connecting", e.to_string()))
        })?;
        // Relaxed: only makes generations distinct; the mutex orders the rest.
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        *current = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, ConnectionManager)>> {
        // Critical sections only read or replace the value.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Retires the connection of `generation` after `error`, when the error says it
    /// (or, behind Sentinels, its server as the master) is no longer to be used.
    fn after_error(&self, generation: u64, error: &redis::RedisError) {
        let failover = matches!(self.source, Source::Sentinel(_))
            && (error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || matches!(
                    error.kind(),
                    ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
                ));
        if error.is_timeout() || failover {
            let mut current = self.lock();
            if current.as_ref().is_some_and(|(at, _)| *at == generation) {
                tracing::debug!(%error, "replacing the connection to Redis");
                *current = None;
            }
        }
    }
}

impl ReplacingConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.shared.connection().await?;
            let reply = conn.req_packed_command(cmd).await;
            if let Err(error) = &reply {
                self.shared.after_error(generation, error);
            }
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.shared.connection().await?;
            let reply = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(error) = &reply {
                self.shared.after_error(generation, error);
            }
            reply
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target> {
        Target::parse(&RedisUrl::new(url))
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(parse("redis://127.0.0.1:6379/2").ok(), Some(Target::Server));
        assert_eq!(
            parse("redis+cluster://crew:pw@10.0.0.1:7000,10.0.0.2:7001").ok(),
            Some(Target::Cluster(vec![
                "redis://crew:pw@10.0.0.1:7000".to_owned(),
                "redis://crew:pw@10.0.0.2:7001".to_owned()
            ]))
        );
        assert_eq!(
            parse("redis+sentinel://:p%40ss@s1:26379,s2:26380/jobs/3").ok(),
            Some(Target::Sentinel {
                sentinels: vec![("s1".to_owned(), 26379), ("s2".to_owned(), 26380)],
                service: "jobs".to_owned(),
                db: 3,
                username: None,
                password: Some("p@ss".to_owned()),
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in [
            "http://host:1",
            "redis+cluster://",
            "redis+cluster://host",
            "redis+cluster://host:1/2",
            "redis+sentinel://host:26379",
            "redis+sentinel://host:26379/jobs/x",
        ] {
            assert!(matches!(parse(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn hides_the_password_of_every_form() {
        let url = RedisUrl::new("redis+cluster://crew:s3cret@h1:1,h2:2");
        assert_eq!(url.to_string(), "redis+cluster://crew:***@h1:1,h2:2");
    }
}
