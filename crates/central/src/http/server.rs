//! `serve`: binds the listeners, migrates, serves the agents' API and the admin API until
//! SIGTERM/SIGINT, then answers held polls, flushes last-seen times and stops.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::config::Config;
use crate::fleet::store::{system_clock, Store};
use crate::http::app::App;
use crate::metrics::Metrics;

/// Contract: a client gets at most 10 s to send its headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often batched last-seen times are written.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Why the server could not start; names the address, socket or file.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("a central server already answers on the admin socket {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot create the admin socket {path} ([server] admin_socket): {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("cannot read the admin token file {path}: {reason}")]
    AdminToken { path: PathBuf, reason: String },
    #[error("cannot write the address file {path}: {reason}")]
    AddressFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Ka(#[from] crate::ka::KaError),
    #[error(transparent)]
    Tls(#[from] crate::http::tls::TlsError),
    #[error(transparent)]
    Webhook(#[from] crate::commerce::webhooks::WebhookError),
}

/// Removes a stale socket (one that refuses connections); refuses when a server answers.
async fn bind_admin_socket(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |e: std::io::Error| ServeError::Socket {
        path: path.into(),
        reason: e.to_string(),
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::AlreadyRunning(path.into()));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    // Root and the group only: the socket is local trust.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

fn read_admin_token(path: &Path) -> Result<Arc<str>, ServeError> {
    let err = |reason: String| ServeError::AdminToken {
        path: path.into(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(err("group or others can read it; chmod 600 it".into()));
    }
    let t = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let t = t.trim();
    if t.len() < 16 {
        return Err(err("the token is shorter than 16 characters".into()));
    }
    Ok(t.into())
}

/// Accept queue: when a whole fleet reconnects at once (a restart, a failover), a short
/// queue drops connections and each costs its agent a 1 s, then 3 s SYN retry; the kernel
/// caps it at net.core.somaxconn.
const BACKLOG: u32 = 8192;

async fn tcp(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    let bind = || {
        let sock = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        sock.bind(addr)?;
        sock.listen(BACKLOG)
    };
    bind().map_err(|e: std::io::Error| ServeError::Listen {
        addr: addr.to_string(),
        reason: e.to_string(),
    })
}

/// The address a TCP request came from, in the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Runs the server until `stop` resolves. `address_file` receives the agents' bound address.
pub async fn serve(
    config: Config,
    address_file: Option<PathBuf>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let admin_token = match &config.server.admin_token_file {
        Some(p) if config.server.admin_listen.is_some() => Some(read_admin_token(p)?),
        _ => None,
    };
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(crate::http::tls::acceptor(cert, key)?),
        _ => None,
    };
    let db = crate::db::connect(&config.database_url).await?;
    db.migrate().await?;
    let agents = tcp(config.server.listen).await?;
    let admin_tcp = match config.server.admin_listen {
        Some(a) => Some(tcp(a).await?),
        None => None,
    };
    let admin_sock = bind_admin_socket(&config.server.admin_socket).await?;
    let bound = agents.local_addr().map_err(|e| ServeError::Listen {
        addr: config.server.listen.to_string(),
        reason: e.to_string(),
    })?;
    if let Some(p) = &address_file {
        std::fs::write(p, format!("{bound}\n")).map_err(|e| ServeError::AddressFile {
            path: p.clone(),
            reason: e.to_string(),
        })?;
    }
    for key in &config.unknown {
        tracing::warn!("{}: unknown key {key} (ignored)", config.path.display());
    }
    let (push_tx, push_rx) = crate::fleet::push::channel();
    let store = Store::new(db.clone(), system_clock(), Some(push_tx));
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let orders = crate::commerce::orders::Orders::new(store.clone(), Arc::new(config.clone()), metrics.clone())?;
    let licenses = crate::commerce::licenses::Licenses::new(store.clone(), Arc::new(config.clone()), metrics.clone())?;
    let webhooks = crate::commerce::webhooks::Webhooks::new(crate::events::Feed::new(db.clone()), &config)?;
    let app = App {
        store: store.clone(),
        config: Arc::new(config.clone()),
        metrics: metrics.clone(),
        seen: Arc::default(),
        shutdown: stop_rx.clone(),
        admin_token,
        orders: Some(orders.clone()),
        licenses: Some(licenses.clone()),
        webhooks: Some(webhooks.clone()),
    };
    // Order drivers: they pick up whatever a killed predecessor left, and stop with the server.
    let mut order_workers = orders.start(stop_rx.clone()).await;
    // License operations and reconcile, on the same design.
    order_workers.extend(licenses.start(stop_rx.clone()).await);
    // Webhook delivery (and the feed's 30-day purge): events a killed predecessor committed
    // are still pending in the outbox and go out now.
    let webhook_workers = webhooks.start(stop_rx.clone()).await;
    tokio::spawn(crate::fleet::presence::run(
        store.clone(),
        config.offline_after,
        stop_rx.clone(),
    ));
    tokio::spawn(crate::fleet::push::run(store.clone(), metrics.clone(), push_rx));
    if db.dialect == crate::db::Dialect::Postgres {
        tokio::spawn(crate::fleet::replicas::run(
            config.database_url.clone(),
            db.url.clone(),
            store.waiters.clone(),
            stop_rx.clone(),
        ));
    }
    let flusher = tokio::spawn(flush_loop(app.clone(), stop_rx.clone()));
    let sensitive = || SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]);
    let agents_router = crate::http::api::router(app.clone()).layer(sensitive());
    let mut tasks = vec![tokio::spawn(accept_tcp(
        agents,
        tls.clone(),
        agents_router,
        config.server.max_connections,
        metrics.clone(),
        stop_rx.clone(),
    ))];
    if let Some(l) = admin_tcp {
        let r = crate::http::admin::router_with_token(app.clone())
            .merge(crate::http::ui::router(app.clone()))
            .fallback(crate::http::admin::not_found);
        let r = crate::http::admin::limit_failed_tokens(r).layer(sensitive());
        tasks.push(tokio::spawn(accept_tcp(
            l,
            tls.clone(),
            r,
            256,
            metrics.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(accept_unix(
        admin_sock,
        crate::http::admin::router(app.clone()),
        stop_rx.clone(),
    )));
    tracing::info!(
        "listening on {bound} (agents), admin socket {}",
        config.server.admin_socket.display()
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    stop.await;
    tracing::info!("stopping: answering held polls");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = flusher.await;
    for w in order_workers {
        let _ = tokio::time::timeout(Duration::from_secs(1), w).await;
    }
    orders.release_all().await;
    licenses.release_all().await;
    for w in webhook_workers {
        let _ = tokio::time::timeout(Duration::from_secs(1), w).await;
    }
    webhooks.release().await;
    let _ = std::fs::remove_file(&config.server.admin_socket);
    // Bounded: a stop must not wait on a connection whatever holds it.
    let _ = tokio::time::timeout(Duration::from_secs(3), db.close()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn flush_loop(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
            _ = stop.changed() => { app.flush_seen().await; return; }
        }
        app.flush_seen().await;
        app.store.waiters.sweep();
    }
}

/// Accepts until stopped; beyond `cap` open connections a new one gets 503 at once, so a
/// flood cannot take memory and held polls stay served.
async fn accept_tcp(
    l: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    cap: usize,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(cap));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and the like: pause instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let (router, stop, tls, metrics) = (router.clone(), stop.clone(), tls.clone(), metrics.clone());
                conns.spawn(async move {
                    match tls {
                        None => serve_conn(stream, router, stop, Some(peer)).await,
                        // The handshake gets the time the headers get.
                        Some(tls) => match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await {
                            Ok(Ok(s)) => serve_conn(s, router, stop, Some(peer)).await,
                            _ => {
                                metrics.tls_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        },
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                metrics
                    .rejected_connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(refuse(stream));
            }
        }
        while conns.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

async fn refuse(mut stream: tokio::net::TcpStream) {
    let msg = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(msg)).await;
}

async fn accept_unix(l: UnixListener, router: Router, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_conn(stream, router.clone(), stop.clone(), None));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One HTTP/1.1 connection: 10 s for headers, graceful close at shutdown. Each request
/// carries `peer` (TCP) as a [`Peer`] extension.
async fn serve_conn<S>(stream: S, router: Router, mut stop: watch::Receiver<bool>, peer: Option<std::net::SocketAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router =
        tower::ServiceExt::map_request(router, move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            if let Some(p) = peer {
                req.extensions_mut().insert(Peer(p));
            }
            req
        });
    let svc = TowerToHyperService::new(router);
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}
