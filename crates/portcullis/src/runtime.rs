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
        move |_| TowerToHyperService::new(app.clone()),
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

/// A running gateway.
pub struct GatewayHandle {
    pub addrs: Vec<SocketAddr>,
    listeners: Vec<String>,
    shared: SharedGateway,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
}

impl GatewayHandle {
    /// The gateway serving now.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.shared.load_full()
    }

    /// Swaps in the gateway of a new file without dropping connections: requests already
    /// running finish on the old routes, new ones meet the new. The new gateway's keys are
    /// fetched before the swap. Listeners are bound at start; a change to them needs a
    /// restart (and is reported as a warning).
    pub async fn reload(
        &self,
        file: &GatewayFile,
        secret_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), CliError> {
        let next = Arc::new(build_gateway(file, secret_of)?);
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

    /// `http://` URL of the first listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for s in self.servers {
            let _ = s.await;
        }
    }

    /// Waits until every listener stops (they never do unless stopped).
    pub async fn wait(&mut self) {
        for s in &mut self.servers {
            let _ = s.await;
        }
    }
}

/// Builds the gateway of `file` (secrets it names come from the environment) and serves it
/// on `listeners`; key fetching starts at once.
pub async fn start_gateway(
    file: &GatewayFile,
    listeners: Vec<TcpListener>,
) -> Result<GatewayHandle, CliError> {
    start_gateway_with(file, listeners, &|name| std::env::var(name).ok()).await
}

/// [`start_gateway`] with the secrets the file names read through `secret_of`.
pub async fn start_gateway_with(
    file: &GatewayFile,
    listeners: Vec<TcpListener>,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayHandle, CliError> {
    let gateway = Arc::new(build_gateway(file, secret_of)?);
    gateway.start();
    let shared: SharedGateway = Arc::new(arc_swap::ArcSwap::new(gateway));
    let (tx, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut servers = Vec::new();
    for listener in listeners {
        addrs.push(
            listener
                .local_addr()
                .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?,
        );
        let mut rx = rx.clone();
        servers.push(tokio::spawn(portcullis_gateway::serve(
            shared.clone(),
            listener,
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            },
        )));
    }
    Ok(GatewayHandle {
        addrs,
        listeners: file.listeners.clone(),
        shared,
        shutdown: tx,
        servers,
    })
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

/// Binds every listener a gateway file names.
pub async fn bind_gateway_listeners(file: &GatewayFile) -> Result<Vec<TcpListener>, CliError> {
    let mut out = Vec::new();
    for l in &file.listeners {
        let addr: SocketAddr = l.parse().map_err(|_| {
            CliError::new(format!("'{l}' is not IP:PORT")).hint("fix `listeners` in the gateway file")
        })?;
        out.push(bind(addr).await?);
    }
    Ok(out)
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

/// Starts the demo catalog API on `127.0.0.1:0`.
pub async fn start_demo_backend() -> Result<DemoBackendHandle, CliError> {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
    let app = crate::demo_backend::router();
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
