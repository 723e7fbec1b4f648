//! The `portcullis` command line. Each subcommand parses its flags and calls the library;
//! errors print as one line plus a hint, with a non-zero exit code.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use std::io::Read as _;

mod users_cli;

/// mimalloc: the proxy allocates and frees small buffers on every request, which glibc's
/// allocator serves with locks and consolidation passes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis::CliError;
use portcullis::config::{Config, create_private_dir};
use portcullis::demo::{self, DemoInfo};
use portcullis::runtime::{self, bind, open_store, shutdown_signal};
use portcullis_idp::orgfile::{self, ProcessEnv};
use portcullis_idp::{DEFAULT_ORG_ID, clock, keys};
use portcullis_jose::SecretHasher;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An Okta-compatible OAuth 2.0 / OpenID Connect authorization server in one binary.",
    long_about = "An Okta-compatible OAuth 2.0 / OpenID Connect authorization server in one binary.\n\n\
                  Quick start: `portcullis up` starts a sandbox on 127.0.0.1:8080 with a demo org, \
                  then `portcullis token` gets an access token from it."
)]
struct Cli {
    /// Log format on stderr: human-readable text, or JSON lines for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "PORTCULLIS_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandbox: a data dir, a demo org and the identity provider on loopback.
    Up(UpArgs),
    /// Run the identity provider from a configuration file (the production entry point).
    Serve {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate(StoreArgs),
    /// Make the org match a declarative org file (authorization servers, clients...).
    Apply(ApplyArgs),
    /// Write the org's content as an org file (secrets are never exported).
    Export(ExportArgs),
    /// Manage users: create, list, activate, deactivate, suspend, unlock, reset passwords.
    Users {
        #[command(subcommand)]
        command: users_cli::UsersCommand,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Get an access token with the client_credentials grant and print it.
    Token(TokenArgs),
    /// Run the API gateway from a gateway file: verify bearer tokens, enforce each route's
    /// scopes and claim conditions, proxy to upstreams. SIGHUP reloads the file without
    /// dropping connections (a bad file is refused and the old one keeps serving).
    Gateway(GatewayArgs),
    /// Show how the gateway would decide a request — which route, each check and its
    /// outcome — without sending it. Exits 0 when allowed, 1 when refused.
    Explain(ExplainArgs),
}

#[derive(Args)]
struct GatewayArgs {
    /// The gateway file (YAML): listeners, issuers, upstreams, routes.
    #[arg(long, short)]
    config: PathBuf,
    /// Validate the file, print a summary and exit without serving.
    #[arg(long)]
    check: bool,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    portcullis explain --token \"$TOKEN\" PUT /api/v1/products/7\n  \
    portcullis explain --claims '{\"scp\":[\"orders:create\"],\"department_id\":\"IT\"}' POST /api/v1/orders\n  \
    portcullis explain --config gateway.yaml --host api.example.com GET /v2/items")]
struct ExplainArgs {
    /// HTTP method of the request, e.g. GET.
    method: String,
    /// Path of the request, e.g. /api/v1/products/7 (a query string is ignored).
    path: String,
    /// The gateway file; defaults to the sandbox's <data-dir>/gateway.yaml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// A bearer token, verified for real against its issuer's keys (`-` reads standard input).
    #[arg(
        long,
        env = "PORTCULLIS_TOKEN",
        hide_env_values = true,
        conflicts_with = "claims"
    )]
    token: Option<String>,
    /// Claims as JSON, taken as already verified: checks the route's policy alone.
    #[arg(long)]
    claims: Option<String>,
    /// Host the request names (for routes matched by host).
    #[arg(long)]
    host: Option<String>,
    /// A request header, `Name: value` (repeatable; for routes versioned by header).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long, default_value = "portcullis-data", env = "PORTCULLIS_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct StoreArgs {
    /// A `serve` configuration file to read the database and master key settings from.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The data dir (SQLite database and master key) when no --config is given.
    #[arg(long, default_value = "portcullis-data", env = "PORTCULLIS_DATA_DIR")]
    data_dir: PathBuf,
}

impl StoreArgs {
    pub(crate) fn config(&self) -> Result<Config, CliError> {
        match &self.config {
            Some(path) => Config::load(path),
            None => Ok(Config {
                data_dir: self.data_dir.clone(),
                ..Config::default()
            }),
        }
    }
}

#[derive(Args)]
struct UpArgs {
    /// Where the sandbox keeps its database, master key and demo.json.
    #[arg(long, default_value = "portcullis-data", env = "PORTCULLIS_DATA_DIR")]
    data_dir: PathBuf,
    /// Port of the identity provider (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    idp_port: u16,
    /// Port of the API gateway in front of the demo catalog API (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    gateway_port: u16,
    /// Address to listen on. Loopback by default: the sandbox is not hardened for exposure.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
}

#[derive(Args)]
struct ApplyArgs {
    /// The org file to apply.
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Print the plan as a diff and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete authorization servers and clients that the file does not declare.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
struct ExportArgs {
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Rotate: the next key (already published) starts signing; the old key stays
    /// published until every token it signed has expired; a new next key is published.
    Rotate {
        /// The authorization server, e.g. `default`.
        #[arg(long)]
        server: String,
        /// Rotate even if the next key has been published for less than the JWKS max-age
        /// (verifiers that cached the JWKS before may then meet an unknown key: an emergency
        /// rotation after a key compromise is the use for this).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the keys of every authorization server.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ClientAuth {
    Basic,
    Post,
}

#[derive(Args)]
struct TokenArgs {
    /// Issuer of the authorization server, e.g. http://127.0.0.1:8080/oauth2/default.
    /// Defaults to the sandbox's, from <data-dir>/demo.json.
    #[arg(long)]
    issuer: Option<String>,
    /// Client id (defaults to the sandbox's demo client; `demo-sysadmin` is the other one).
    #[arg(long)]
    client_id: Option<String>,
    /// Client secret. Prefer the environment variable over the flag: flags show in `ps`.
    #[arg(long, env = "PORTCULLIS_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Space-separated scopes; the server's default scopes when absent.
    #[arg(long)]
    scope: Option<String>,
    /// How the client authenticates.
    #[arg(long, value_enum, default_value_t = ClientAuth::Basic)]
    auth: ClientAuth,
    /// Print the whole token response as JSON instead of the bare access token.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "portcullis-data", env = "PORTCULLIS_DATA_DIR")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.compact().init(),
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Up(args) => up(args).await,
        Command::Serve { config } => serve(config).await,
        Command::Migrate(args) => {
            let cfg = args.config()?;
            cfg.ensure_data_dir()?;
            let store = open_store(&cfg.database_url()).await?;
            println!(
                "database is up to date ({})",
                portcullis_store::redact(&cfg.database_url())
            );
            store.close().await;
            Ok(())
        }
        Command::Apply(args) => apply(args).await,
        Command::Export(args) => {
            let cfg = args.store.config()?;
            let store = open_store(&cfg.database_url()).await?;
            let yaml = orgfile::export(&store, DEFAULT_ORG_ID).await?;
            match args.output {
                Some(path) => std::fs::write(&path, yaml)
                    .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?,
                None => print!("{yaml}"),
            }
            Ok(())
        }
        Command::Keys { command } => keys_command(command).await,
        Command::Users { command } => users_cli::run(command).await,
        Command::Token(args) => token(args).await,
        Command::Gateway(args) => gateway(args).await,
        Command::Explain(args) => explain(args).await,
    }
}

async fn up(args: UpArgs) -> Result<(), CliError> {
    let cfg = Config {
        data_dir: args.data_dir.clone(),
        idp: portcullis::config::IdpConfig {
            listen: SocketAddr::new(args.bind, args.idp_port),
            ..Default::default()
        },
        ..Config::default()
    };
    create_private_dir(&cfg.data_dir)?;
    let (store, master) = runtime::open_store_with_key(&cfg).await?;
    let clients = demo::ensure_demo_org(&store, &master, &cfg.data_dir).await?;
    let idp_listener = bind(cfg.idp.listen).await?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gateway_listeners =
        runtime::bind_gateway(&[SocketAddr::new(args.bind, args.gateway_port)], workers).await?;
    let gateway_addr = gateway_listeners.addrs[0];
    let spa = demo::register_spa(&store, &format!("http://{gateway_addr}")).await?;
    let mut idp = runtime::start_idp(&cfg, store, master, idp_listener).await?;
    let issuer = idp.issuer(demo::DEMO_SERVER);
    let backend = runtime::start_demo_backend(Some(serde_json::json!({
        "issuer": issuer,
        "client_id": spa.client_id,
        "redirect_uri": spa.redirect_uri,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "scope": "openid profile email products:read products:write orders:create admin:full",
    })))
    .await?;
    let gateway_yaml = demo::gateway_file(gateway_addr, &issuer, backend.addr);
    let gateway_path = cfg.data_dir.join("gateway.yaml");
    std::fs::write(&gateway_path, &gateway_yaml)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", gateway_path.display())))?;
    let file = runtime::parse_gateway_file(&gateway_yaml, "the demo gateway file")?;
    let mut gateway = runtime::start_gateway(&file, gateway_listeners).await?;
    let gateway_url = gateway.url();
    let info = DemoInfo {
        org_url: idp.org_url.clone(),
        issuer: issuer.clone(),
        audience: demo::DEMO_AUDIENCE.into(),
        token_endpoint: format!("{issuer}/v1/token"),
        jwks_uri: format!("{issuer}/v1/keys"),
        gateway_url: Some(gateway_url.clone()),
        service_client: clients.service.clone(),
        sysadmin_client: Some(clients.sysadmin.clone()),
        spa_client: Some(spa.clone()),
        users: clients.users.clone(),
    };
    demo::write_demo_json(&cfg.data_dir, &info)?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "portcullis".into());
    let dd = cfg.data_dir.display();
    println!(
        "Portcullis sandbox is up.

  identity provider  {org}   issuer {issuer}
  API gateway        {gateway_url}   routes in {gw_file}
  demo catalog API   http://{backend}   (behind the gateway)
  demo.json          {demo_json}

Get a token (client credentials, Basic auth):

  curl -s -u {id}:{secret} -d grant_type=client_credentials -d scope=products:read {issuer}/v1/token

Walk the policy table through the gateway:

  TOKEN=$({exe} token --data-dir {dd} --scope products:read)
  curl -i -H \"Authorization: Bearer $TOKEN\" {gateway_url}/api/v1/products          # 200
  curl -i {gateway_url}/api/v1/products                                              # 401, no token
  curl -i -X PUT -H \"Authorization: Bearer $TOKEN\" {gateway_url}/api/v1/products/1   # 403, needs products:write
  {exe} explain --data-dir {dd} --token \"$TOKEN\" PUT /api/v1/products/1

  ({id} is in sales with the admin role; {sysadmin} is in IT with the sysadmin role:
   `{exe} token --data-dir {dd} --client-id {sysadmin} --scope admin:full`)

Sign in as a person: open the demo app and sign in with
{people}
  demo app           {spa_url}

Press Ctrl-C to stop.",
        org = idp.org_url,
        gw_file = gateway_path.display(),
        backend = backend.addr,
        demo_json = cfg.data_dir.join("demo.json").display(),
        id = clients.service.client_id,
        secret = clients.service.client_secret,
        sysadmin = clients.sysadmin.client_id,
        spa_url = spa.redirect_uri,
        people = clients
            .users
            .iter()
            .map(|u| format!("  {:<22} {}   groups: {}", u.login, u.password, if u.groups.is_empty() { "-".to_string() } else { u.groups.join(", ") }))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = idp.wait() => {}
        _ = gateway.wait() => {}
    }
    println!("stopping...");
    gateway.stop().await;
    backend.stop().await;
    idp.stop().await;
    Ok(())
}

async fn serve(path: PathBuf) -> Result<(), CliError> {
    let cfg = Config::load(&path)?;
    cfg.ensure_data_dir()?;
    let (store, master) = runtime::open_store_with_key(&cfg).await?;
    let listener = bind(cfg.idp.listen).await?;
    let mut handle = runtime::start_idp(&cfg, store, master, listener).await?;
    tracing::info!(addr = %handle.addr, org_url = %handle.org_url, "identity provider listening");
    tokio::select! {
        _ = shutdown_signal() => handle.stop().await,
        _ = handle.wait() => {}
    }
    Ok(())
}

async fn apply(args: ApplyArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.file).map_err(|e| {
        CliError::new(format!("cannot read {}: {e}", args.file.display())).hint("pass the org file with -f")
    })?;
    let doc = orgfile::parse(&text).map_err(|errs| {
        CliError::new(format!(
            "{} is not a valid org file:\n{}",
            args.file.display(),
            errs.iter()
                .map(|e| format!("  {}: {e}", args.file.display()))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .hint("fix the fields named above; `portcullis export` prints a valid file to start from")
    })?;
    let cfg = args.store.config()?;
    cfg.ensure_data_dir()?;
    let (store, master) = runtime::open_store_with_key(&cfg).await?;
    let hasher = SecretHasher::new(&master);
    let plan = orgfile::plan(&store, &hasher, DEFAULT_ORG_ID, &doc, &ProcessEnv, args.prune).await?;
    print!("{}", plan.render());
    if args.dry_run || plan.is_empty() {
        return Ok(());
    }
    let applied = orgfile::apply(
        &store,
        &master,
        DEFAULT_ORG_ID,
        plan,
        clock::now(),
        cfg.idp.jwks_max_age_seconds as i64,
    )
    .await?;
    for (client, secret) in applied.generated_secrets {
        println!("client {client}: generated secret {secret}  (shown once; store it now)");
    }
    println!("Applied.");
    store.close().await;
    Ok(())
}

async fn keys_command(command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate { server, force, store } => {
            let cfg = store.config()?;
            let (store, master) = runtime::open_store_with_key(&cfg).await?;
            let max_age = cfg.idp.jwks_max_age_seconds as i64;
            let r = keys::rotate(&store, &master, DEFAULT_ORG_ID, &server, clock::now(), max_age, force)
                .await
                .map_err(|e| {
                    let hint = match &e {
                        keys::RotateError::NoSuchServer(_) => {
                            "`portcullis keys list` shows the servers and their keys".to_string()
                        }
                        keys::RotateError::NextKeyTooYoung { .. } => {
                            "wait until it has been published that long, or pass --force for an emergency rotation"
                                .to_string()
                        }
                        keys::RotateError::Keys(_) => "check the database and the master key".to_string(),
                    };
                    CliError::new(e.to_string()).hint(hint)
                })?;
            println!(
                "rotated keys of '{server}':\n  now signing  {}\n  next (published) {}\n  retired      {} (published until unix time {})",
                r.active_kid,
                r.next_kid,
                r.retired_kid.as_deref().unwrap_or("-"),
                r.retired_until
            );
            println!("running nodes pick this up within a second.");
            Ok(())
        }
        KeysCommand::List { store } => {
            let cfg = store.config()?;
            let store = open_store(&cfg.database_url()).await?;
            println!(
                "{:<12} {:<44} {:<6} {:<8} retire_at",
                "server", "kid", "alg", "status"
            );
            for k in store.signing_keys(DEFAULT_ORG_ID).await? {
                println!(
                    "{:<12} {:<44} {:<6} {:<8} {}",
                    k.server_id,
                    k.kid,
                    k.alg.as_str(),
                    format!("{:?}", k.status).to_uppercase(),
                    k.retire_at.map(|t| t.to_string()).unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

async fn token(args: TokenArgs) -> Result<(), CliError> {
    let demo = if args.issuer.is_none() || args.client_id.is_none() || args.client_secret.is_none() {
        Some(demo::read_demo_json(&args.data_dir)?)
    } else {
        None
    };
    let issuer = args
        .issuer
        .or_else(|| demo.as_ref().map(|d| d.issuer.clone()))
        .unwrap_or_default();
    let client_id = args
        .client_id
        .or_else(|| demo.as_ref().map(|d| d.service_client.client_id.clone()))
        .unwrap_or_default();
    let secret = match args.client_secret {
        Some(s) => s,
        None => demo
            .as_ref()
            .and_then(|d| d.client(&client_id))
            .map(|c| c.client_secret.clone())
            .ok_or_else(|| {
                CliError::new(format!("no secret for client '{client_id}'"))
                    .hint("set PORTCULLIS_CLIENT_SECRET (demo.json knows only the demo clients)")
            })?,
    };
    let url = format!("{}/v1/token", issuer.trim_end_matches('/'));
    let mut form: HashMap<&str, &str> = HashMap::from([("grant_type", "client_credentials")]);
    if let Some(s) = args.scope.as_deref() {
        form.insert("scope", s);
    }
    let http = reqwest::Client::new();
    let req = match args.auth {
        ClientAuth::Basic => http.post(&url).basic_auth(&client_id, Some(&secret)),
        ClientAuth::Post => {
            form.insert("client_id", &client_id);
            form.insert("client_secret", &secret);
            http.post(&url)
        }
    };
    let resp = req.form(&form).send().await.map_err(|e| {
        CliError::new(format!("cannot reach {url}: {e}"))
            .hint("is the server running? `portcullis up` starts the sandbox")
    })?;
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| CliError::new(format!("{url} answered {status} with no JSON: {e}")))?;
    if !status.is_success() {
        return Err(CliError::new(format!(
            "{status}: {} ({})",
            body["error"].as_str().unwrap_or("error"),
            body["error_description"].as_str().unwrap_or("no description")
        )));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
    } else {
        println!("{}", body["access_token"].as_str().unwrap_or_default());
    }
    Ok(())
}

async fn gateway(args: GatewayArgs) -> Result<(), CliError> {
    let file = runtime::load_gateway_file(&args.config)?;
    if args.check {
        println!(
            "{}: valid — {} listener(s), {} issuer(s), {} upstream(s), {} route(s)",
            args.config.display(),
            file.listeners.len(),
            file.issuers.len(),
            file.upstreams.len(),
            file.routes.len()
        );
        return Ok(());
    }
    let listeners = runtime::bind_gateway_listeners(&file).await?;
    let mut handle = runtime::start_gateway(&file, listeners).await?;
    for addr in &handle.addrs {
        tracing::info!(%addr, routes = file.routes.len(), "gateway listening");
    }
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| CliError::new(format!("cannot listen for SIGHUP: {e}")))?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = handle.wait() => break,
            _ = hangups.recv() => {
                // A bad new file is refused and the running gateway keeps serving.
                let outcome = match runtime::load_gateway_file(&args.config) {
                    Ok(file) => handle.reload(&file, &|name| std::env::var(name).ok()).await.map(|()| file.routes.len()),
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(routes) => tracing::info!(file = %args.config.display(), routes, "gateway file reloaded"),
                    Err(e) => tracing::error!(error = %e, "gateway file not reloaded; the previous one keeps serving"),
                }
            }
        }
    }
    handle.stop().await;
    Ok(())
}

async fn explain(args: ExplainArgs) -> Result<(), CliError> {
    use portcullis_gateway::Credential;
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| args.data_dir.join("gateway.yaml"));
    let file = runtime::load_gateway_file(&path).map_err(|e| {
        if args.config.is_none() {
            e.hint("start the sandbox with `portcullis up`, or pass your gateway file with --config")
        } else {
            e
        }
    })?;
    let gw = portcullis_gateway::Gateway::new(&file, &|name| std::env::var(name).ok())
        .map_err(|e| CliError::new(format!("cannot build the gateway: {e}")))?;
    let method: http::Method = args.method.to_ascii_uppercase().parse().map_err(|_| {
        CliError::new(format!("'{}' is not an HTTP method", args.method)).hint("e.g. GET, PUT")
    })?;
    let request_path = args.path.split('?').next().unwrap_or("/").to_owned();
    if !request_path.starts_with('/') {
        return Err(CliError::new(format!("'{}' is not a path", args.path))
            .hint("paths start with '/', e.g. /api/v1/products"));
    }
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .and_then(|(n, v)| {
                Some((
                    http::HeaderName::try_from(n.trim()).ok()?,
                    http::HeaderValue::try_from(v.trim()).ok()?,
                ))
            })
            .ok_or_else(|| {
                CliError::new(format!("'{h}' is not a header")).hint("write it as 'Name: value'")
            })?;
        headers.append(name, value);
    }
    let token_text = match args.token.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().take(64 * 1024), &mut s)
                .map_err(|e| CliError::new(format!("cannot read the token from standard input: {e}")))?;
            Some(s.trim().to_owned())
        }
        Some(t) => Some(t.trim().to_owned()),
        None => None,
    };
    let credential = match (&token_text, &args.claims) {
        (Some(t), _) => Credential::Token(t.strip_prefix("Bearer ").unwrap_or(t)),
        (None, Some(json)) => {
            let claims: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(json).map_err(|e| {
                    CliError::new(format!("--claims is not a JSON object: {e}"))
                        .hint(r#"e.g. --claims '{"scp":["products:read"]}'"#)
                })?;
            Credential::Claims(claims)
        }
        (None, None) => Credential::None,
    };
    let x = gw
        .explain(&method, &request_path, args.host.as_deref(), &headers, credential)
        .await;
    println!(
        "{method} {request_path}{}",
        args.host
            .as_deref()
            .map(|h| format!("  (host {h})"))
            .unwrap_or_default()
    );
    if token_text.is_none() && args.claims.is_some() {
        println!("  (claims taken as verified: the token checks are skipped)");
    }
    for c in &x.checks {
        println!(
            "  {} {:<44} {}",
            if c.passed { "pass" } else { "FAIL" },
            c.what,
            c.detail
        );
    }
    match x.decision {
        Ok(()) => {
            println!("decision: allow");
            Ok(())
        }
        Err(r) => {
            let code = r.error_code().map(|c| format!(" {c}")).unwrap_or_default();
            println!(
                "decision: deny — {}{code}: {}",
                r.status().as_u16(),
                r.description()
            );
            std::process::exit(1);
        }
    }
}
