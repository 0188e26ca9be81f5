//! What an operator (or a benchmark) asks of the database itself rather than
//! of the queue: vacuums and checkpoints, table sizes and dead tuples,
//! connections, statement statistics, and a snapshot held open as a long
//! report or a backup would hold one.

use crate::{Store, StoreError};
use sqlx::{Connection, Executor};

/// Time PostgreSQL spent in one statement (from `pg_stat_statements`).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StatementStat {
    /// Its first 100 characters, white space collapsed.
    pub query: String,
    /// Times it ran.
    pub calls: i64,
    /// Milliseconds in all.
    pub total_ms: f64,
    /// Mean milliseconds a call.
    pub mean_ms: f64,
    /// The slowest call, milliseconds.
    pub max_ms: f64,
}

/// Live and dead tuples of one table.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Tuples {
    /// The table.
    pub name: String,
    /// Dead tuples not yet vacuumed.
    pub dead: i64,
    /// Live tuples.
    pub live: i64,
    /// Autovacuums of it so far.
    pub autovacuums: i64,
}

/// The size of one table.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TableSize {
    /// The table.
    pub name: String,
    /// Bytes with its indexes.
    pub bytes: i64,
    /// Rows.
    pub rows: i64,
}

/// A REPEATABLE READ transaction holding its snapshot open on a connection of
/// its own (holding back PostgreSQL's xmin horizon, so no dead tuple newer
/// than it can be removed) until [`HeldSnapshot::release`].
pub struct HeldSnapshot {
    conn: sqlx::PgConnection,
    /// Outputs the snapshot saw.
    pub outputs: i64,
}

impl HeldSnapshot {
    /// Ends the transaction.
    pub async fn release(mut self) -> Result<(), StoreError> {
        self.conn.execute(include_str!("../queries/maintenance/snapshot_end.sql")).await?;
        Ok(())
    }
}

impl Store {
    /// Enables `pg_stat_statements` (the server must preload it).
    pub async fn enable_statement_stats(&self) -> Result<(), StoreError> {
        sqlx::query(include_str!("../queries/maintenance/enable_statement_stats.sql")).execute(&self.pool).await?;
        Ok(())
    }

    /// Clears `pg_stat_statements`.
    pub async fn reset_statement_stats(&self) -> Result<(), StoreError> {
        sqlx::query(include_str!("../queries/maintenance/reset_statement_stats.sql")).execute(&self.pool).await?;
        Ok(())
    }

    /// The `n` statements that took the most of PostgreSQL's time.
    pub async fn top_statements(&self, n: i64) -> Result<Vec<StatementStat>, StoreError> {
        Ok(sqlx::query_as(include_str!("../queries/maintenance/top_statements.sql")).bind(n).fetch_all(&self.pool).await?)
    }

    /// Vacuums the queue's tables, analysing them too when asked.
    pub async fn vacuum(&self, analyze: bool) -> Result<(), StoreError> {
        let q = if analyze { include_str!("../queries/maintenance/vacuum_analyze.sql") } else { include_str!("../queries/maintenance/vacuum.sql") };
        sqlx::query(q).execute(&self.pool).await?;
        Ok(())
    }

    /// Writes out every dirty page now.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query(include_str!("../queries/maintenance/checkpoint.sql")).execute(&self.pool).await?;
        Ok(())
    }

    /// Dead and live tuples of the queue's tables.
    pub async fn tuples(&self) -> Result<Vec<Tuples>, StoreError> {
        Ok(sqlx::query_as(include_str!("../queries/maintenance/tuples.sql")).fetch_all(&self.pool).await?)
    }

    /// Bytes and rows of the tables that grow with sweeps.
    pub async fn table_sizes(&self) -> Result<Vec<TableSize>, StoreError> {
        Ok(sqlx::query_as(include_str!("../queries/maintenance/sizes.sql")).fetch_all(&self.pool).await?)
    }

    /// Connections to the database, from every client.
    pub async fn connections(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(include_str!("../queries/maintenance/connections.sql")).fetch_one(&self.pool).await?)
    }

    /// Opens a connection to `url` and holds a REPEATABLE READ snapshot on it.
    pub async fn hold_snapshot(url: &str) -> Result<HeldSnapshot, StoreError> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        conn.execute(include_str!("../queries/maintenance/snapshot_begin.sql")).await?;
        let outputs = sqlx::query_scalar(include_str!("../queries/maintenance/snapshot_read.sql")).fetch_one(&mut conn).await?;
        Ok(HeldSnapshot { conn, outputs })
    }
}
