//! Wiring: open the store (migrations, default org), build the identity provider or the
//! gateway, bind, serve until told to stop. Used by `up`, `serve`, `gateway` and the
//! integration tests alike.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use portcullis_gateway::config::GatewayFile;
use portcullis_gateway::{Gateway, SharedGateway};
use portcullis_http::TowerToHyperService;
use portcullis_idp::{DEFAULT_ORG_ID, Idp, IdpSettings, clock, http, view};
use portcullis_jose::MasterKey;
use portcullis_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::CliError;
use crate::config::Config;

/// Connects, applies pending migrations and makes sure the default org exists.
pub async fn open_store(url: &str) -> Result<Store, CliError> {
    let store = Store::connect(url).await.map_err(|e| {
        CliError::new(format!("cannot open the database {}: {e}", portcullis_store::redact(url)))
            .hint("for PostgreSQL check that it runs and the URL is right; for SQLite that the data dir is writable")
    })?;
    store.migrate().await?;
    store
        .ensure_org(DEFAULT_ORG_ID, "Default org", clock::now())
        .await?;
    Ok(store)
}

/// Opens the store and resolves the master key, refusing a key other than the one the
/// database was set up with (a key is generated only for a database that has none yet).
pub async fn open_store_with_key(cfg: &Config) -> Result<(Store, Arc<MasterKey>), CliError> {
    let store = open_store(&cfg.database_url()).await?;
    let recorded = store.recorded_master_key_check(DEFAULT_ORG_ID).await?;
    let key = cfg.master_key(recorded.is_none())?;
    let fingerprint = key.fingerprint();
    if store.master_key_check(DEFAULT_ORG_ID, &fingerprint).await? != fingerprint {
        return Err(CliError::new("the master key does not match the one this database was set up with")
            .hint("use the original PORTCULLIS_MASTER_KEY or <data-dir>/master.key; keys and secrets sealed under it cannot be read otherwise"));
    }
    Ok((store, Arc::new(key)))
}

/// A running identity provider.
pub struct IdpHandle {
    pub addr: SocketAddr,
    pub org_url: String,
    pub idp: Arc<Idp>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    refresher: JoinHandle<()>,
}

impl IdpHandle {
    /// The issuer of an authorization server.
    pub fn issuer(&self, server: &str) -> String {
        format!("{}/oauth2/{server}", self.org_url)
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        self.refresher.abort();
        self.idp.store.close().await;
    }

    /// Waits until the server stops on its own (it never does unless stopped).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Binds `listen` and serves the identity provider from `store`.
pub async fn start_idp(
    cfg: &Config,
    store: Store,
    master: Arc<MasterKey>,
    listener: TcpListener,
) -> Result<IdpHandle, CliError> {
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
    let mut settings = IdpSettings::new(cfg.org_url(addr));
    settings.jwks_max_age_secs = cfg.idp.jwks_max_age_seconds;
    let org_url = settings.org_url.clone();
    let idp = Idp::new(store, DEFAULT_ORG_ID, settings, master).await?;
    let refresher = view::spawn_refresher(idp.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let app = http::router(idp.clone());
    let server = tokio::spawn(portcullis_http::serve(
        listener,
        move |peer| {
            // The client's address, for sign-in rate limits.
            TowerToHyperService::new(app.clone().map_request(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    req
                },
            ))
        },
        async move {
            let _ = rx.await;
        },
    ));
    Ok(IdpHandle {
        addr,
        org_url,
        idp,
        shutdown: Some(tx),
        server,
        refresher,
    })
}

/// Binds an address with an error that says what to do.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr).await.map_err(|e| {
        CliError::new(format!("cannot listen on {addr}: {e}"))
            .hint("another process may use the port: pick another port (--idp-port, --gateway-port, idp.listen or the gateway file's listeners)")
    })
}

/// Reads and validates a gateway file, with every problem named by file, line and field.
pub fn load_gateway_file(path: &Path) -> Result<GatewayFile, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(format!("cannot read the gateway file {}: {e}", path.display()))
            .hint("pass an existing YAML file with --config")
    })?;
    parse_gateway_file(&text, &path.display().to_string())
}

/// Validates a gateway file's text; `name` is how errors refer to it.
pub fn parse_gateway_file(text: &str, name: &str) -> Result<GatewayFile, CliError> {
    portcullis_gateway::config::parse(text).map_err(|errs| {
        CliError::new(format!(
            "{name} is not a valid gateway file:\n{}",
            errs.iter()
                .map(|e| format!("  {name}: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .hint("fix the fields named above; the README's gateway section lists every field")
    })
}

/// A gateway's listening sockets: for each address, one socket per worker thread
/// (`SO_REUSEPORT`: the kernel spreads connections between the workers).
pub struct GatewayListeners {
    pub addrs: Vec<SocketAddr>,
    /// `[worker][address]`.
    per_worker: Vec<Vec<std::net::TcpListener>>,
}

/// Binds each address once per worker.
pub async fn bind_gateway(addrs: &[SocketAddr], workers: usize) -> Result<GatewayListeners, CliError> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<std::net::TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for addr in addrs {
        let sockets = portcullis_http::bind_reuseport(*addr, workers).map_err(|e| {
            CliError::new(format!("cannot listen on {addr}: {e}"))
                .hint("another process may use the port: pick another (--gateway-port or the gateway file's listeners)")
        })?;
        bound.push(
            sockets[0]
                .local_addr()
                .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?,
        );
        for (w, socket) in sockets.into_iter().enumerate() {
            per_worker[w].push(socket);
        }
    }
    Ok(GatewayListeners {
        addrs: bound,
        per_worker,
    })
}

/// Binds every listener a gateway file names, once per worker.
pub async fn bind_gateway_listeners(file: &GatewayFile) -> Result<GatewayListeners, CliError> {
    let mut addrs = Vec::new();
    for l in &file.listeners {
        addrs.push(l.parse().map_err(|_| {
            CliError::new(format!("'{l}' is not IP:PORT")).hint("fix `listeners` in the gateway file")
        })?);
    }
    bind_gateway(&addrs, file.worker_count()).await
}

/// A running gateway.
pub struct GatewayHandle {
    pub addrs: Vec<SocketAddr>,
    listeners: Vec<String>,
    shared: SharedGateway,
    shutdown: watch::Sender<bool>,
    /// One message per worker thread that has finished.
    done: tokio::sync::mpsc::UnboundedReceiver<()>,
    workers: usize,
    finished: usize,
}

impl GatewayHandle {
    /// `http://` URL of the first listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.shared.load_full()
    }

    /// Swaps in the gateway of a new file without dropping connections: requests already
    /// running finish on the old routes, new ones meet the new. The new gateway's keys are
    /// fetched before the swap. Listeners and workers are set at start; a change to them
    /// needs a restart (and is reported as a warning).
    pub async fn reload(
        &self,
        file: &GatewayFile,
        secret_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), CliError> {
        let next = self.shared.load().successor(file, secret_of).map_err(|e| {
            CliError::new(format!("cannot build the gateway: {e}"))
                .hint("check the gateway file and the environment variables it names")
        })?;
        let next = Arc::new(next);
        next.warm_up().await;
        next.start();
        if file.listeners != self.listeners {
            tracing::warn!(
                old = ?self.listeners,
                new = ?file.listeners,
                "listeners changed: they take effect at the next restart"
            );
        }
        self.shared.store(next);
        Ok(())
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        self.wait().await;
    }

    /// Waits until every worker stops (they never do unless stopped).
    pub async fn wait(&mut self) {
        while self.finished < self.workers {
            if self.done.recv().await.is_none() {
                break;
            }
            self.finished += 1;
        }
    }
}

/// Builds the gateway of `file` (secrets it names come from the environment) and serves it
/// on `listeners`; key fetching starts at once.
pub async fn start_gateway(
    file: &GatewayFile,
    listeners: GatewayListeners,
) -> Result<GatewayHandle, CliError> {
    start_gateway_with(file, listeners, &|name| std::env::var(name).ok()).await
}

/// [`start_gateway`] with the secrets the file names read through `secret_of`.
///
/// Each worker is a thread with a single-threaded Tokio runtime, its own sockets and its
/// own upstream pools, as nginx and Envoy run theirs: a request never hops between threads.
/// The gateway itself (routes, key and token caches) is shared by all of them.
pub async fn start_gateway_with(
    file: &GatewayFile,
    listeners: GatewayListeners,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayHandle, CliError> {
    let gateway = Arc::new(build_gateway(file, secret_of)?);
    gateway.start();
    let shared: SharedGateway = Arc::new(arc_swap::ArcSwap::new(gateway));
    let (tx, rx) = watch::channel(false);
    let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
    let workers = listeners.per_worker.len();
    for (i, sockets) in listeners.per_worker.into_iter().enumerate() {
        let (shared, rx, done_tx) = (shared.clone(), rx.clone(), done_tx.clone());
        std::thread::Builder::new()
            .name(format!("gateway-{i}"))
            .spawn(move || {
                run_worker(shared, sockets, rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| CliError::new(format!("cannot start a gateway worker thread: {e}")))?;
    }
    Ok(GatewayHandle {
        addrs: listeners.addrs,
        listeners: file.listeners.clone(),
        shared,
        shutdown: tx,
        done,
        workers,
        finished: 0,
    })
}

/// One worker thread: serves its sockets on its own runtime until told to stop.
fn run_worker(shared: SharedGateway, sockets: Vec<std::net::TcpListener>, stop: watch::Receiver<bool>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start a gateway worker runtime");
            return;
        }
    };
    rt.block_on(async move {
        let mut servers = Vec::new();
        for socket in sockets {
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    let mut stop = stop.clone();
                    servers.push(tokio::spawn(portcullis_gateway::serve(
                        shared.clone(),
                        listener,
                        async move {
                            let _ = stop.wait_for(|s| *s).await;
                        },
                    )));
                }
                Err(e) => tracing::error!(error = %e, "a gateway worker cannot serve its socket"),
            }
        }
        for s in servers {
            let _ = s.await;
        }
    });
}

fn build_gateway(
    file: &GatewayFile,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Gateway, CliError> {
    Gateway::new(file, secret_of).map_err(|e| {
        CliError::new(format!("cannot start the gateway: {e}"))
            .hint("check the gateway file and the environment variables it names")
    })
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The demo catalog API, on an ephemeral loopback port.
pub struct DemoBackendHandle {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl DemoBackendHandle {
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
    }
}

/// Starts the demo catalog API (and the demo app's files, configured by `app`) on
/// `127.0.0.1:0`.
pub async fn start_demo_backend(app: Option<serde_json::Value>) -> Result<DemoBackendHandle, CliError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
    let app = crate::demo_backend::router(app);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(portcullis_http::serve(
        listener,
        move |_| TowerToHyperService::new(app.clone()),
        async move {
            let _ = rx.await;
        },
    ));
    Ok(DemoBackendHandle {
        addr,
        shutdown: tx,
        server,
    })
}
