//! The PostgreSQL backend: the real server backend. One pool serves reads and writes;
//! row locks (`SELECT … FOR UPDATE`) serialise actions on the same case, and unique keys
//! serialise case numbers and idempotency keys.

use crate::{Result, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

pub(crate) struct Pools {
    pub pool: PgPool,
    /// Group commit for case creation (see `batch.rs`).
    pub batcher: crate::batch::postgres::Batcher,
}

impl Pools {
    pub async fn connect(url: &str) -> Result<Pools> {
        let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::Url(url.to_owned()))?;
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        let batcher = crate::batch::postgres::Batcher::start(pool.clone());
        Ok(Pools { pool, batcher })
    }
}
