//! Migrations embedded in the binary and applied with sqlx's migrator (which records
//! versions and checksums in `_sqlx_migrations`). Files under `migrations/` are portable
//! SQL that both SQLite and PostgreSQL accept; add new ones, never edit applied ones.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "foundation", include_str!("../migrations/0001_foundation.sql")),
    (2, "people", include_str!("../migrations/0002_people.sql")),
];

pub(crate) async fn run(pool: &AnyPool) -> Result<usize, StoreError> {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*name),
                MigrationType::Simple,
                (*sql).into_sql(),
                false,
            )
        })
        .collect();
    let migrator = Migrator::with_migrations(migrations);
    let before = applied(pool).await;
    migrator.run(pool).await?;
    Ok(applied(pool).await.saturating_sub(before))
}

async fn applied(pool: &AnyPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .map(|n| n as usize)
        .unwrap_or(0)
}

trait IntoSql {
    fn into_sql(self) -> sqlx::SqlStr;
}
impl IntoSql for &'static str {
    fn into_sql(self) -> sqlx::SqlStr {
        sqlx::SqlSafeStr::into_sql_str(self)
    }
}
