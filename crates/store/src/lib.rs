//! The only crate that speaks SQL. Each query lives in `queries/<table>/<verb>.sql`
//! and the methods that run them live in the module of that table
//! ([`sweeps`], [`shards`], [`outputs`], [`workers`]; the database's own upkeep
//! in [`maintenance`]); row structs stay
//! private (`Pg*`) and convert into the public types.
//!
//! The scheduling rules of the design brief live in these statements:
//! - [`Store::claim_from`]: one statement, `FOR UPDATE SKIP LOCKED` + `LIMIT` in
//!   a CTE, then `UPDATE ... RETURNING` that bumps attempt and lease epoch;
//!   concurrent claims of one sweep and model share it ([`group`]), each
//!   leased the shards it asked for, in order, while they last.
//! - [`Store::complete_many`]: fenced by the lease epoch and the attempt's own
//!   part key; a stale holder gets [`StoreError::Stale`] and its output is never
//!   recorded.
//! - [`Store::fail`] and [`Store::reap`]: retry with backoff from
//!   [`LeasePolicy`](jagged_domain::lease::LeasePolicy), or fail the shard with
//!   its last error after its attempts.
//!
//! A sweep's resolved form is stored as JSON with its format version
//! ([`RESOLVED_FORMAT`](jagged_domain::spec::RESOLVED_FORMAT)); older formats
//! are read, newer ones refused by name. Every method takes `now` explicitly,
//! so tests drive the clock.
#![deny(missing_docs)]

pub mod cost;
pub mod group;
pub mod maintenance;
pub mod outputs;
pub mod shards;
pub mod sweeps;
pub mod workers;

pub use cost::Spent;
pub use maintenance::{HeldSnapshot, StatementStat, TableSize, Tuples};
pub use outputs::{Commit, CommittedFailure, CommittedOutput, Output, Provenance, Throughput};
pub use shards::{Claimed, Held, ModelProgress, ShardFailure, SweepTiming};
pub use sweeps::{Adopted, Inserted, PairKeys, RunningSweep, SweepRow, Widened};
pub use workers::LiveWorker;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The lease epoch does not match the shard's current lease: the caller lost it.
    #[error("shard `{0}`: lease is stale (expired, reassigned or cancelled)")]
    Stale(i64),
    /// No such sweep.
    #[error("sweep `{0}` not found")]
    NoSweep(i64),
    /// No worker registered under this id.
    #[error("worker `{0}` is not registered (register first)")]
    NoWorker(i64),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database failed for a group of calls; retrying may succeed.
    #[error("database: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("stored data: {0}")]
    Data(String),
    /// A sweep was stored in a format this build does not know.
    #[error("sweep `{sweep}` was stored in format {format} by a newer jagged; this one reads formats 1 to {known}: upgrade jagged to read it")]
    Format {
        /// The sweep.
        sweep: i64,
        /// Its stored format.
        format: i32,
        /// The newest format this build reads.
        known: u32,
    },
    /// The request cannot be carried out in the sweep's present state.
    #[error("{0}")]
    Refused(String),
    /// A commit names an object other than its shard attempt's own part.
    #[error("shard `{shard}`: object key `{key}` is not this attempt's part (`{expected}`)")]
    BadKey {
        /// The shard.
        shard: i64,
        /// The key given.
        key: String,
        /// The only key accepted.
        expected: String,
    },
}

impl StoreError {
    /// Whether the database gave no connection in time (it is down or
    /// unreachable).
    pub fn no_connection(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::PoolTimedOut))
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Db(_) | StoreError::Unavailable(_))
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the Unix epoch as a database timestamp.
pub fn ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().expect("timestamp in range")
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The migrations under `migrations/`, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// Where the last claim of each (sweep, model) ended: see [`Store::claim_from`].
    cursors: shards::Cursors,
    /// Claims of each (sweep, model) waiting to go together: see [`Store::claim_from`].
    claims: shards::ClaimGroups,
}

impl Store {
    /// Connects with a pool of up to `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
        // One direct connection first: the pool would hide why it got none
        // (connection refused, an unknown host, a wrong password) behind a timeout.
        let direct = tokio::time::timeout(std::time::Duration::from_secs(10), <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts)).await;
        match direct {
            Ok(Ok(c)) => sqlx::Connection::close(c).await?,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(sqlx::Error::PoolTimedOut.into()),
        }
        let pool =
            PgPoolOptions::new().max_connections(max_connections).acquire_timeout(std::time::Duration::from_secs(10)).connect_with(opts).await?;
        Ok(Store { pool, cursors: Default::default(), claims: Default::default() })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool, cursors: Default::default(), claims: Default::default() }
    }

    /// Where the database is, for messages: `host:port/database` (no user or
    /// password).
    pub fn address(&self) -> String {
        let o = self.pool.connect_options();
        format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or_default())
    }

    /// Whether PostgreSQL answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Applies pending migrations. Coordinators starting at the same moment
    /// are serialised by sqlx's advisory lock: one migrates, the others find it
    /// done. A database migrated by a newer jagged is refused.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::VersionMissing(v) => {
                let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
                StoreError::Refused(format!(
                    "the database at {} was migrated by a newer jagged (its schema has migration {v}; this one knows migrations 1 to {known}): upgrade jagged, or point it at another database",
                    self.address()
                ))
            }
            e => StoreError::Data(format!("migration failed: {e}")),
        })
    }
}
