//! `jagged sweep ...`: submit, watch, list, retry and cancel sweeps.

use crate::args::StoreArg;
use crate::client::ClientArgs;
use anyhow::Result;
use clap::{Args, Subcommand};
use jagged_client::admin::{line, wait, Admin};
use jagged_domain::status::{SweepState, SweepStatus};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Command-line changes to a spec.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct OverrideArgs {
    /// Run over this dataset folder instead of the spec's (ImageFolder `<class>/*`,
    /// or images with a labels.csv).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Use only the first N images of the dataset.
    #[arg(long)]
    limit: Option<u32>,
    /// Run the sweep even if the same one (same spec, models and images) was
    /// submitted before; without it, that sweep is returned and nothing is added.
    #[arg(long)]
    again: bool,
}

impl OverrideArgs {
    /// The overrides as the client library takes them.
    pub fn overrides(&self) -> jagged_client::Overrides {
        jagged_client::Overrides { dataset: self.dataset.clone(), limit: self.limit, again: self.again }
    }
}

/// `jagged sweep` subcommands.
#[derive(Subcommand, Debug, PartialEq)]
pub enum SweepCmd {
    /// Submit a sweep spec (TOML); models and images are uploaded to the store.
    Submit {
        /// The spec file.
        spec: PathBuf,
        /// Wait, showing progress, until the sweep finishes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        over: OverrideArgs,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Show a sweep's progress (default: the newest sweep).
    Status {
        /// Sweep id.
        id: Option<i64>,
        /// Keep showing progress until the sweep finishes.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List all sweeps.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Requeue a sweep's failed shards with fresh attempts (after fixing what
    /// made them fail); committed results stay.
    Retry {
        /// Sweep id.
        id: i64,
        /// Only this shard (its id, as `sweep status` shows it).
        #[arg(long)]
        shard: Option<i64>,
        /// Wait, showing progress, until the sweep finishes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a sweep: queued and running shards stop; committed results stay.
    Cancel {
        /// Sweep id.
        id: i64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Prints a status with its shard errors.
pub fn print(s: &SweepStatus) {
    println!("{}", line(s));
    for e in &s.errors {
        println!("  shard {} ({} / {}) failed: {}", e.shard_id, e.model, e.family, e.error);
    }
}

/// Shows progress on stderr: one line redrawn on a terminal, else each new line.
pub fn progress() -> impl FnMut(&SweepStatus) {
    let tty = std::io::stderr().is_terminal();
    let mut last = String::new();
    move |s| {
        let l = line(s);
        if tty {
            eprint!("\r\x1b[2K{l}");
            if s.state != SweepState::Running {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        } else if l != last {
            eprintln!("{l}");
        }
        last = l;
    }
}

/// Prints a sweep's final status; an error (a non-zero exit) when shards failed.
pub fn finished(s: &SweepStatus) -> Result<()> {
    print(s);
    if s.state == SweepState::Failed {
        anyhow::bail!(
            "sweep {} failed: {} of {} shards failed after their attempts (errors above); fix the cause, then `jagged sweep retry {}` runs them again",
            s.sweep_id,
            s.failed,
            s.total,
            s.sweep_id
        );
    }
    Ok(())
}

/// Runs a `jagged sweep` subcommand.
pub async fn run(cmd: SweepCmd) -> Result<()> {
    match cmd {
        SweepCmd::Submit { spec, wait: watch, over, client, store } => {
            let config = client.config()?;
            let objects = store.open()?;
            let id = jagged_client::submit(&config, &spec, objects.as_ref(), &over.overrides()).await?.sweep_id;
            println!("{id}");
            if watch {
                finished(&wait(&config, id, progress()).await?)?;
            }
        }
        SweepCmd::Status { id, watch, client } => {
            let config = client.config()?;
            let mut admin = Admin::connect(&config).await?;
            let id = match id {
                Some(i) => i,
                None => admin.latest().await?,
            };
            if watch {
                finished(&wait(&config, id, progress()).await?)?;
            } else {
                print(&admin.status(id).await?);
            }
        }
        SweepCmd::List { client } => {
            let all = Admin::connect(&client.config()?).await?.list().await?;
            if all.is_empty() {
                println!("no sweeps");
            }
            for s in all {
                println!("{}", line(&s));
            }
        }
        SweepCmd::Retry { id, shard, wait: watch, client } => {
            let config = client.config()?;
            let mut admin = Admin::connect(&config).await?;
            let ids = admin.retry(id, shard).await?;
            let list = ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
            eprintln!("requeued {} shard(s) of sweep {id}: {list}", ids.len());
            if watch {
                finished(&wait(&config, id, progress()).await?)?;
            } else {
                print(&admin.status(id).await?);
            }
        }
        SweepCmd::Cancel { id, client } => print(&Admin::connect(&client.config()?).await?.cancel(id).await?),
    }
    Ok(())
}
