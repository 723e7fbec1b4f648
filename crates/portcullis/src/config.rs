//! Configuration: the `serve` file (YAML, versioned, unknown fields rejected, errors with
//! line and field), environment overrides for secrets and URLs, and the resolution of the
//! data dir, database URL and master key that every command shares.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use portcullis_jose::MasterKey;
use serde::Deserialize;

use crate::CliError;

pub const ENV_DATABASE_URL: &str = "PORTCULLIS_DATABASE_URL";
pub const ENV_MASTER_KEY: &str = "PORTCULLIS_MASTER_KEY";
pub const ENV_ORG_URL: &str = "PORTCULLIS_ORG_URL";

/// The `serve` configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    #[serde(default = "one")]
    pub version: u32,
    /// Where the SQLite database and a generated master key live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; `PORTCULLIS_DATABASE_URL` wins.
    #[serde(default)]
    pub database_url: Option<String>,
    /// File holding the base64 master key; `PORTCULLIS_MASTER_KEY` wins.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    #[serde(default)]
    pub idp: IdpConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdpConfig {
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The org URL clients use, e.g. `https://login.example.com`; `PORTCULLIS_ORG_URL` wins.
    /// Defaults to `http://<listen>`.
    #[serde(default)]
    pub org_url: Option<String>,
    #[serde(default = "default_jwks_max_age")]
    pub jwks_max_age_seconds: u64,
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig {
            listen: default_listen(),
            org_url: None,
            jwks_max_age_seconds: default_jwks_max_age(),
        }
    }
}

/// Parses `host:port`, with an error that names what is expected (serde's own says only
/// "invalid socket address syntax").
fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "invalid `listen` address '{s}': use IP:PORT, e.g. 127.0.0.1:8080"
        ))
    })
}

fn one() -> u32 {
    1
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("portcullis-data")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_jwks_max_age() -> u64 {
    900
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 1,
            data_dir: default_data_dir(),
            database_url: None,
            master_key_file: None,
            idp: IdpConfig::default(),
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(format!("cannot read the config file {}: {e}", path.display()))
                .hint("pass an existing YAML file with --config")
        })?;
        let cfg: Config = serde_saphyr::from_str(&text).map_err(|e| {
            let mut fe = portcullis_idp::orgfile::yaml_error(&text, &e);
            if fe.line.is_none()
                && fe.message.contains("`listen`")
                && let Some((l, c)) = portcullis_idp::orgfile::key_position(&text, "listen")
            {
                (fe.line, fe.column) = (Some(l), Some(c));
            }
            CliError::new(format!("{}: {fe}", path.display()))
                .hint("see the README's configuration section for every field and its default")
        })?;
        if cfg.version != 1 {
            return Err(CliError::new(format!(
                "{}: version {} is not supported",
                path.display(),
                cfg.version
            ))
            .hint("this release reads `version: 1`"));
        }
        if !(60..=86_400).contains(&cfg.idp.jwks_max_age_seconds) {
            return Err(CliError::new(format!(
                "{}: idp.jwksMaxAgeSeconds must be between 60 and 86400",
                path.display()
            )));
        }
        Ok(cfg)
    }

    /// The database URL: environment, then file, then SQLite in the data dir.
    pub fn database_url(&self) -> String {
        std::env::var(ENV_DATABASE_URL)
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.database_url.clone())
            .unwrap_or_else(|| sqlite_url(&self.data_dir))
    }

    pub fn org_url(&self, bound: SocketAddr) -> String {
        std::env::var(ENV_ORG_URL)
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.idp.org_url.clone())
            .unwrap_or_else(|| format!("http://{bound}"))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The master key: `PORTCULLIS_MASTER_KEY`, else the key file. With `may_create` (only
    /// for a database that has no master key yet) a missing file is created, mode 0600.
    /// Use [`crate::runtime::open_store_with_key`], which also checks the key against the
    /// database.
    pub fn master_key(&self, may_create: bool) -> Result<MasterKey, CliError> {
        if let Ok(v) = std::env::var(ENV_MASTER_KEY)
            && !v.is_empty()
        {
            return MasterKey::from_encoded(&v).map_err(|e| {
                CliError::new(format!("{ENV_MASTER_KEY}: {e}"))
                    .hint("generate one with `openssl rand -base64 32`")
            });
        }
        let path = self
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"));
        load_or_create_master_key(&path, may_create)
    }

    pub fn ensure_data_dir(&self) -> Result<(), CliError> {
        create_private_dir(&self.data_dir)
    }
}

pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("portcullis.db").display())
}

pub fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            CliError::new(format!("cannot create the data dir {}: {e}", dir.display()))
                .hint("choose a writable directory with --data-dir")
        })
}

fn load_or_create_master_key(path: &Path, may_create: bool) -> Result<MasterKey, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::from_encoded(&text).map_err(|e| {
            CliError::new(format!("{}: {e}", path.display()))
                .hint("restore the original key file; keys sealed with it cannot be read otherwise")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_create => Err(CliError::new(format!(
            "no master key: {ENV_MASTER_KEY} is not set and {} does not exist, but this database was set up with one",
            path.display()
        ))
        .hint(format!("set {ENV_MASTER_KEY} to the key the database was set up with (every node shares it)"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent)?;
            }
            let (key, encoded) = MasterKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    CliError::new(format!(
                        "cannot create the master key file {}: {e}",
                        path.display()
                    ))
                })?;
            f.write_all(format!("{encoded}\n").as_bytes())
                .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
            tracing::info!(path = %path.display(), "generated a new master key");
            Ok(key)
        }
        Err(e) => Err(CliError::new(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))),
    }
}
