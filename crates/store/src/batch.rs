//! Group commit for case creation. Every report takes the day's case-number row and ends in a
//! durable commit; done one transaction per report, concurrent reports queue on that row (and,
//! on SQLite, on the single writer) and pay a commit each. Instead a writer task takes every
//! report waiting when it becomes free, runs them in one transaction on one connection,
//! commits once, and only then answers each caller — so a 201 still means "on disk".
//!
//! The same code serves both engines; [`batcher!`] expands it once per connection type.

macro_rules! batcher {
    ($pool:ty, $conn:ty) => {
        use crate::{corrupt, json, ms, parse_json, Case, CreateJob, Created, Result, StoreError};
        use tokio::sync::{mpsc, oneshot};

        /// Most creates committed in one transaction.
        const MAX_BATCH: usize = 64;

        type Reply = oneshot::Sender<Result<Created>>;

        /// Group commit for case creation (see the module doc).
        pub(crate) struct Batcher {
            tx: mpsc::Sender<(CreateJob, Reply)>,
        }

        impl Batcher {
            pub fn start(pool: $pool) -> Batcher {
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

        async fn run_batch(pool: $pool, jobs: Vec<(CreateJob, Reply)>) {
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
        async fn batch_on(conn: &mut $conn, jobs: Vec<(CreateJob, Reply)>) -> bool {
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
            // The evaluation counts of every report of the batch, summed per subject and period
            // and added in one go before the commit: a batch's reports share their streets,
            // districts and days.
            let mut counts: Vec<crate::evaluation::CountRow> = Vec::new();
            for (job, reply) in jobs {
                let result = if failed.is_some() {
                    Err(StoreError::Commit("an earlier report in the same commit failed".into()))
                } else {
                    match crate::create_in!(tx, job, counts) {
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
            if failed.is_none() {
                let rows = crate::evaluation::merge_rows(counts);
                let added: Result<()> = async {
                    crate::evaluation::add_counts!(tx, &rows);
                    Ok(())
                }
                .await;
                if let Err(e) = added {
                    failed = Some(e.to_string());
                }
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
    };
}

pub(crate) mod sqlite {
    batcher!(sqlx::SqlitePool, sqlx::SqliteConnection);
}

pub(crate) mod postgres {
    batcher!(sqlx::PgPool, sqlx::PgConnection);
}
