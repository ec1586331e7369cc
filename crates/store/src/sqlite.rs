//! The SQLite backend: the embedded default. WAL journal with `synchronous = FULL` so that a
//! commit is on disk before the API answers; one writer connection (SQLite has one writer at a
//! time anyway, and a single connection never meets `SQLITE_BUSY` on upgrade) and a pool of
//! read-only connections that WAL lets run beside it.

use crate::{corrupt, json, ms, parse_json, Case, CreateJob, Created, Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(crate) struct Pools {
    pub write: SqlitePool,
    pub read: SqlitePool,
    pub batcher: Batcher,
}

/// Most creates committed in one transaction.
const MAX_BATCH: usize = 64;

type Reply = oneshot::Sender<Result<Created>>;

/// Group commit for case creation: SQLite commits one transaction at a time, so instead of
/// one fsync and one BEGIN/COMMIT per report, a writer task commits every report that is
/// waiting when it becomes free; callers are answered only after the commit is durable.
pub(crate) struct Batcher {
    tx: mpsc::Sender<(CreateJob, Reply)>,
}

impl Batcher {
    fn start(pool: SqlitePool) -> Batcher {
        let (tx, mut rx) = mpsc::channel::<(CreateJob, Reply)>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                // A panic in one batch answers its callers with an error (their reply channels
                // drop) and must not stop the writer for everyone after them.
                if let Err(e) = tokio::spawn(run_batch(pool.clone(), jobs)).await {
                    tracing::error!(error = %e, "case writer batch panicked");
                }
            }
        });
        Batcher { tx }
    }

    pub async fn submit(&self, job: CreateJob) -> Result<Created> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((job, reply)).await.map_err(|_| StoreError::Commit("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Commit("the writer dropped the request".into()))?
    }
}

async fn run_batch(pool: SqlitePool, jobs: Vec<(CreateJob, Reply)>) {
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(StoreError::Commit(e.to_string())));
            }
            return;
        }
    };
    // After a failed batch the connection may be in a state sqlx does not know (SQLite rolls
    // back by itself on a full disk or an I/O error): it is closed, never reused.
    if !batch_on(&mut conn, jobs).await {
        conn.close_on_drop();
    }
}

/// Run one batch on `conn`; false if anything failed and the connection should not be reused.
async fn batch_on(conn: &mut sqlx::SqliteConnection, jobs: Vec<(CreateJob, Reply)>) -> bool {
    let begun = sqlx::Connection::begin(&mut *conn).await;
    let mut tx = match begun {
        Ok(tx) => tx,
        Err(e) => {
            for (_, reply) in jobs {
                let _ = reply.send(Err(StoreError::Commit(e.to_string())));
            }
            return false;
        }
    };
    // A report refused (by the domain or for its idempotency key) writes nothing, so it
    // needs no savepoint; any other error (I/O, a full disk) fails the whole batch, and every
    // caller in it gets an error and may retry with its key.
    let mut results = Vec::with_capacity(jobs.len());
    let mut failed = None;
    for (job, reply) in jobs {
        let result = if failed.is_some() {
            Err(StoreError::Commit("an earlier report in the same commit failed".into()))
        } else {
            match crate::create_in!(tx, job) {
                Err(StoreError::IdempotencyMismatch) => Err(StoreError::IdempotencyMismatch),
                Err(StoreError::Refused(r)) => Err(StoreError::Refused(r)),
                Err(e) => {
                    failed = Some(e.to_string());
                    Err(e)
                }
                ok => ok,
            }
        };
        results.push((result, reply));
    }
    if let Some(e) = failed {
        let _ = tx.rollback().await;
        for (result, reply) in results {
            let _ = reply.send(match result {
                Err(err) => Err(err),
                Ok(_) => Err(StoreError::Commit(format!("rolled back: {e}"))),
            });
        }
        return false;
    }
    let commit = tx.commit().await;
    let healthy = commit.is_ok();
    for (result, reply) in results {
        let answer = match (&commit, result) {
            (Ok(()), r) => r,
            (Err(e), Ok(_)) => Err(StoreError::Commit(e.to_string())),
            (Err(_), Err(e)) => Err(e),
        };
        // The caller may have gone (client disconnected); the case is committed all the same.
        let _ = reply.send(answer);
    }
    healthy
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
