//! The SQLite backend: the embedded default. WAL journal with `synchronous = FULL` so that a
//! commit is on disk before the API answers; one writer connection (SQLite has one writer at a
//! time anyway, and a single connection never meets `SQLITE_BUSY` on upgrade) and a pool of
//! read-only connections that WAL lets run beside it.

use crate::batch::sqlite::Batcher;
use crate::{Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub(crate) struct Pools {
    pub write: SqlitePool,
    pub read: SqlitePool,
    /// Group commit for case creation (see `batch.rs`).
    pub batcher: Batcher,
}

impl Pools {
    pub async fn connect(url: &str) -> Result<Pools> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Url(url.to_owned()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if base.get_filename().as_os_str() == ":memory:" {
            return Err(StoreError::Url(url.to_owned()));
        }
        if let Some(dir) = base.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Corrupt(format!("{}: {e}", dir.display())))?;
            }
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(base.clone().create_if_missing(true))
            .await?;
        let readers = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2).clamp(2, 8);
        let read = SqlitePoolOptions::new().max_connections(readers).connect_with(base.read_only(true)).await?;
        let batcher = Batcher::start(write.clone());
        Ok(Pools { write, read, batcher })
    }
}
