//! Storage for Portcullis: one repository over SQLite (the embedded default) or
//! PostgreSQL (many nodes), chosen by the URL at run time through sqlx's `Any` driver.
//!
//! Owns the schema, its embedded migrations and every SQL statement. SQL is written once,
//! in the dialect both engines accept (`$n` placeholders, TEXT and BIGINT columns, JSON as
//! TEXT). It must never hold business rules (those live in `portcullis-core` and the
//! identity provider) and never see a plaintext secret or private key: callers pass hashes
//! and sealed keys.

mod migrate;
mod people;
mod repo;

pub use people::{
    CodeRedemption, FlowStep, GrantRecord, StoredCode, StoredFactor, StoredFlow, StoredRefresh,
    StoredSession, UserCredentials,
};
pub use repo::{KeyStatus, OrgContent, SecretUpdate, StoredClient, StoredKey};

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Storage failures. The text is for operators' logs, never for protocol responses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("not found: {0}")]
    NotFound(String),
}

/// Which engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool plus the repository methods (see `repo`).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time: concurrent write transactions would meet
    /// `SQLITE_BUSY` and sleep in its busy handler, so the hot ones queue here instead.
    sqlite_writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl Store {
    /// Connects to `sqlite://path` (created if missing, WAL mode) or `postgres://...`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Store {
            pool,
            backend,
            sqlite_writer: (backend == Backend::Sqlite)
                .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(()))),
        })
    }

    /// Holds SQLite's single writer slot for a write transaction (nothing on PostgreSQL).
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_writer {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        migrate::run(&self.pool).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL with any password replaced, fit for messages.
pub fn redact(url: &str) -> String {
    let url = redact_userinfo(url);
    // `?password=...` (libpq style) as well.
    match url.find("password=") {
        Some(p) => {
            let start = p + "password=".len();
            let end = url[start..].find('&').map_or(url.len(), |e| start + e);
            format!("{}****{}", &url[..start], &url[end..])
        }
        None => url,
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:****{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            super::redact("postgres://h/db?user=u&password=s3&sslmode=x"),
            "postgres://h/db?user=u&password=****&sslmode=x"
        );
    }
}
