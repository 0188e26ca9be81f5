//! `jagged report` and `jagged db`: read a sweep's results; maintain the database.

use crate::args::{connect_db, DbArg, StoreArg};
use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `jagged report`'s arguments.
#[derive(Args, Debug, PartialEq)]
pub struct ReportArgs {
    /// Sweep id.
    id: i64,
    /// Output folder.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    store: StoreArg,
}

/// Writes a sweep's report and prints its table.
pub async fn run(a: ReportArgs) -> Result<()> {
    let st = connect_db(&a.db.database_url, false).await?;
    let objects = a.store.open()?;
    let report = jagged_report::build(&st, objects.as_ref(), a.id).await?;
    report.write(&a.out)?;
    print!("{}", report.markdown_table());
    eprintln!("report written to {}", a.out.display());
    Ok(())
}

/// `jagged db` subcommands.
#[derive(Subcommand, Debug, PartialEq)]
pub enum DbCmd {
    /// Apply pending migrations.
    Migrate {
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs a `jagged db` subcommand.
pub async fn db(cmd: DbCmd) -> Result<()> {
    match cmd {
        DbCmd::Migrate { db } => {
            connect_db(&db.database_url, true).await?;
            println!("migrations applied");
        }
    }
    Ok(())
}
