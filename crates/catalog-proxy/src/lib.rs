//! `plesk-reseller-agent catalog-proxy`: the reseller's Extension Catalog whitelist proxy
//! (catalog-proxy-contract.md). It passes ext.plesk.com through, minus the Plesk-sold
//! extensions the reseller does not sell, from an in-memory cache.
//!
//! - [`config`]: the `[catalog_proxy]` section;
//! - [`allow`]: the allow list and its hot reload;
//! - [`filter`]: `packages` / `categories` filtering that keeps kept items byte for byte;
//! - [`cache`]: single-flight cache with stale-if-error, ETags and gzip once per body;
//! - [`upstream`]: the one-host client; [`server`]: the HTTP side; [`metrics`]: counters;
//! - [`run`]: the whole foreground command, which the agent binary's `catalog-proxy` calls.
//!
//! A crate of its own (not the agent's): it shares no state with the agent, and what both
//! take from the system (file watching, sd-notify, capped reads, the INI rules) is
//! plesk-sysutil, so this crate never depends on the agent.

pub mod allow;
pub mod cache;
pub mod config;
pub mod filter;
pub mod metrics;
pub mod server;
pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use config::ProxyConfig;

use allow::AllowList;
use cache::{Cache, Fetched, Got, Parsed};
use metrics::Metrics;
use plesk_sysutil::systemd;
use upstream::Upstream;

/// This crate's version, as sent in the upstream `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What went wrong in the proxy; every variant names the file, address or upstream URL at
/// fault. Cloned into the cache, so a failed fetch answers every request that waited for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read the config file {path}: {reason}")]
    ConfigRead { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    ConfigSyntax { path: PathBuf, reason: String },
    #[error("{path}: [catalog_proxy] {key} = {value:?}: {reason}")]
    ConfigValue {
        path: PathBuf,
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    /// A request target the proxy will not forward (answered 400).
    #[error("{reason}")]
    Target { reason: &'static str },
    /// The upstream could not be asked or its answer could not be used.
    #[error("upstream {url}: {reason}")]
    Upstream { url: String, reason: String },
    #[error("upstream {url} answered HTTP {status}")]
    UpstreamStatus { url: String, status: u16 },
    /// The process could not be made ready to serve (its runtime, its signal handlers).
    #[error("cannot {what}: {reason}")]
    Setup { what: &'static str, reason: String },
}

impl From<plesk_sysutil::ini::ConfigError> for ProxyError {
    /// The shared INI reader's errors, in the proxy's terms.
    fn from(e: plesk_sysutil::ini::ConfigError) -> Self {
        use plesk_sysutil::ini::ConfigError;
        match e {
            ConfigError::Read { path, reason } => ProxyError::ConfigRead { path, reason },
            ConfigError::Syntax { path, reason } => ProxyError::ConfigSyntax { path, reason },
            ConfigError::Value {
                path,
                key,
                value,
                reason,
                ..
            } => ProxyError::ConfigValue {
                path,
                key,
                value,
                reason,
            },
        }
    }
}

/// How an `/api/` answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Packages,
    Categories,
    Raw,
}

/// The proxy's shared state.
pub struct Proxy {
    pub config: ProxyConfig,
    upstream: Upstream,
    cache: Cache,
    pub allow: Arc<AllowList>,
    pub metrics: Metrics,
    /// The last upstream failure, cleared by the next success.
    last_error: Mutex<Option<String>>,
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Result<Arc<Self>, ProxyError> {
        let upstream = Upstream::new(&config.upstream, config.upstream_timeout)?;
        let allow = Arc::new(AllowList::new(config.allow.clone(), config.allow_file.clone()));
        Ok(Arc::new(Proxy {
            cache: Cache::new(config.cache_ttl, config.stale_if_error),
            upstream,
            allow,
            metrics: Metrics::default(),
            last_error: Mutex::new(None),
            config,
        }))
    }

    /// The answer for an origin-form `path_and_query`, from the cache or upstream.
    /// `url` may be None when the caller saw a fresh entry (it is rebuilt if that expired since).
    pub(crate) async fn lookup(self: &Arc<Self>, path_and_query: &str, url: Option<reqwest::Url>, shape: Shape) -> Got {
        let me = self.clone();
        let got = self
            .cache
            .get(path_and_query, move || {
                let pq = path_and_query.to_string();
                async move {
                    Metrics::add(&me.metrics.upstream_fetches, 1);
                    let result = match url.map_or_else(|| me.upstream.url_for(&pq), Ok) {
                        Ok(url) => me.fetch(url, shape).await,
                        Err(e) => Err(e),
                    };
                    let mut last = me.last_error.lock().unwrap_or_else(|e| e.into_inner());
                    match &result {
                        Ok(_) => *last = None,
                        Err(e) => {
                            Metrics::add(&me.metrics.upstream_errors, 1);
                            tracing::warn!("{e}");
                            *last = Some(e.to_string());
                        }
                    }
                    result
                }
            })
            .await;
        match &got {
            Got::Fresh { hit: true, .. } => Metrics::add(&self.metrics.cache_hits, 1),
            _ => Metrics::add(&self.metrics.cache_misses, 1),
        }
        got
    }

    async fn fetch(&self, url: reqwest::Url, shape: Shape) -> Result<Fetched, ProxyError> {
        let shown = url.to_string();
        let answer = self.upstream.get(url).await?;
        if answer.status >= 500 {
            return Err(ProxyError::UpstreamStatus {
                url: shown,
                status: answer.status,
            });
        }
        if answer.status != 200 || shape == Shape::Raw {
            return Ok(Fetched::new(answer, Parsed::Raw));
        }
        // Parsing a large body is CPU work: keep it off the thread that serves requests.
        let body = answer.body.clone();
        let parsed = tokio::task::spawn_blocking(move || match shape {
            Shape::Packages => filter::parse_packages(body).map(Parsed::Packages),
            Shape::Categories => filter::parse_categories(body).map(Parsed::Categories),
            Shape::Raw => Ok(Parsed::Raw),
        })
        .await
        .map_err(|e| ProxyError::Upstream {
            url: shown.clone(),
            reason: format!("parsing stopped ({e})"),
        })?
        .map_err(|e| ProxyError::Upstream {
            url: shown,
            reason: e.to_string(),
        })?;
        Ok(Fetched::new(answer, parsed))
    }

    /// The `/healthz` body.
    pub fn health_json(&self) -> String {
        let allow = self.allow.current();
        let last = self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut problems: Vec<String> = Vec::new();
        problems.extend(allow.problem.clone());
        problems.extend(last.clone());
        format!(
            "{{\"status\":\"ok\",\"upstream_ok\":{},\"cache_entries\":{},\"allow\":{},\"problems\":{}}}\n",
            last.is_none(),
            self.cache.entries(),
            allow.codes.len(),
            serde_json::to_string(&problems).unwrap_or_else(|_| "[]".into())
        )
    }
}

/// A proxy serving on a socket; [`Running::stop`] ends it.
pub struct Running {
    pub addr: SocketAddr,
    pub proxy: Arc<Proxy>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    reloader: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some(r) = self.reloader.take() {
            r.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(r) = &self.reloader {
            r.abort();
        }
    }
}

/// Binds `config.listen` and serves in the current runtime.
pub async fn start(config: ProxyConfig) -> Result<Running, ProxyError> {
    let listen = config.listen;
    let cannot = |e: std::io::Error| ProxyError::Listen {
        addr: listen,
        reason: e.to_string(),
    };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let proxy = Proxy::new(config)?;
    let reloader = allow::spawn_reloader(proxy.allow.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve(listener, proxy.clone(), rx));
    Ok(Running {
        addr,
        proxy,
        stop: Some(tx),
        task,
        reloader,
    })
}

/// `catalog-proxy` in the foreground: reads the `[catalog_proxy]` section of `config_path`,
/// serves until SIGTERM or SIGINT and tells systemd when it is ready and when it stops.
/// The config's warnings go to the log.
pub fn run(config_path: &Path) -> Result<(), ProxyError> {
    let cfg = config::load(config_path)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    // One thread serves everything: answers come from memory, and parsing and gzip of
    // large bodies run on the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProxyError::Setup {
            what: "start the async runtime",
            reason: e.to_string(),
        })?;
    rt.block_on(async move {
        let no_signals = |e: std::io::Error| ProxyError::Setup {
            what: "install signal handlers",
            reason: e.to_string(),
        };
        #[cfg(unix)]
        let (mut term, mut int) = {
            use tokio::signal::unix::{signal, SignalKind};
            (
                signal(SignalKind::terminate()).map_err(no_signals)?,
                signal(SignalKind::interrupt()).map_err(no_signals)?,
            )
        };
        // Windows: Ctrl+C and Ctrl+Break stop the foreground proxy.
        #[cfg(windows)]
        let (mut term, mut int) = (
            tokio::signal::windows::ctrl_break().map_err(no_signals)?,
            tokio::signal::windows::ctrl_c().map_err(no_signals)?,
        );
        let running = start(cfg).await?;
        tracing::info!(
            listen = %running.addr,
            upstream = %running.proxy.config.upstream,
            allow = running.proxy.allow.current().codes.len(),
            "catalog proxy serving"
        );
        systemd::ready();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        systemd::stopping();
        running.stop().await;
        Ok(())
    })
}
