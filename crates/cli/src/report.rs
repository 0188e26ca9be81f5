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
    /// Price per device-hour of a device kind for `cost.csv` (repeat: `--price
    /// cuda=2.50 --price cpu=0.05`), over those given at submit.
    #[arg(long = "price", value_parser = crate::args::price)]
    prices: Vec<(String, f64)>,
}

/// Writes a sweep's report and prints its table.
pub async fn run(a: ReportArgs) -> Result<()> {
    let st = connect_db(&a.db.database_url, false).await?;
    let objects = a.store.open()?;
    let mut prices = st.prices(a.id).await?;
    prices.extend(a.prices.iter().cloned());
    let report = jagged_report::build_priced(&st, objects.as_ref(), a.id, &prices).await?;
    report.write(&a.out)?;
    print!("{}", report.terminal());
    // A sweep still running (or one that ended short) reports what is committed so far.
    let sweep = st.sweep(a.id).await?;
    let partial = match sweep.state {
        jagged_domain::status::SweepState::Running => {
            format!(" (partial: sweep {} is still running, {} of {} shards done; run it again when it ends)", a.id, sweep.done, sweep.total)
        }
        jagged_domain::status::SweepState::Done => String::new(),
        other if sweep.done < sweep.total => {
            format!(" (sweep {} is {other}: {} of {} shards done, the rest left out)", a.id, sweep.done, sweep.total)
        }
        other => format!(" (sweep {} is {other})", a.id),
    };
    eprintln!("report written to {}{partial}", a.out.display());
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
