//! `jagged sweep ...`: submit, watch, list, retry and cancel sweeps.

use crate::args::StoreArg;
use crate::client::ClientArgs;
use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jagged_client::admin::{brief, line, wait, Admin};
use jagged_domain::status::{SweepState, SweepStatus};
use std::io::IsTerminal;
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
    /// Price per device-hour of a device kind for this sweep's estimated cost
    /// (repeat: `--price cuda=2.50 --price cpu=0.05`); kinds not named take the
    /// coordinator's `--price`.
    #[arg(long = "price", value_parser = crate::args::price)]
    prices: Vec<(String, f64)>,
}

impl OverrideArgs {
    /// The overrides as the client library takes them.
    pub fn overrides(&self) -> jagged_client::Overrides {
        jagged_client::Overrides {
            dataset: self.dataset.clone(),
            limit: self.limit,
            again: self.again,
            prices: self.prices.iter().cloned().collect(),
        }
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

/// Prints a status with its shard errors; on a terminal, broken to its width.
pub fn print(s: &SweepStatus) {
    let width = std::io::stdout().is_terminal().then(|| console::Term::stdout().size_checked()).flatten();
    let mut out = vec![line(s)];
    out.extend(s.errors.iter().map(|e| format!("  shard {} ({} / {}) failed: {}", e.shard_id, e.model, e.family, e.error)));
    out.extend(jagged_client::admin::item_failures(s));
    for l in out {
        match width {
            Some((_, cols)) => wrap(&l, cols as usize).iter().for_each(|w| println!("{w}")),
            None => println!("{l}"),
        }
    }
}

/// Breaks `text` at spaces into lines of at most `width` characters (at least
/// 20), keeping its leading indent; continuation lines are indented by four,
/// and a word longer than a line is cut.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    const INDENT: &str = "    ";
    let width = width.max(20);
    let rest = text.trim_start_matches(' ');
    let mut lines = vec![" ".repeat(text.len() - rest.len())];
    for word in rest.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let cur = lines.last_mut().expect("one line at least");
            let used = cur.chars().count();
            let blank = cur.trim().is_empty();
            let sep = usize::from(!blank);
            if used + sep + word.len() <= width {
                if !blank {
                    cur.push(' ');
                }
                cur.extend(&word);
                break;
            }
            if blank {
                let room = width.saturating_sub(used).max(1);
                cur.extend(word.drain(..room.min(word.len())));
            }
            lines.push(INDENT.to_string());
        }
    }
    while lines.len() > 1 && lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// Shows progress on stderr: on a terminal, a bar that fits its width; else a
/// plain line whenever the status changes. The final status is left to
/// [`finished`], so it is printed once.
pub fn progress() -> impl FnMut(&SweepStatus) {
    // indicatif hides its bars on a dumb terminal: plain lines there too.
    let dumb = std::env::var("TERM").map_or(true, |t| t == "dumb");
    let tty = std::io::stderr().is_terminal() && !dumb;
    let mut bar: Option<ProgressBar> = None;
    let mut last: Option<(Shards, std::time::Instant)> = None;
    move |s| {
        let running = s.state == SweepState::Running;
        if tty {
            let bar = bar.get_or_insert_with(|| {
                let style = ProgressStyle::with_template("sweep {prefix} {bar:24} {percent:>3}% {wide_msg}")
                    .expect("progress template")
                    .progress_chars("=> ");
                // Set up hidden, shown once it holds the first status.
                let bar = ProgressBar::hidden().with_style(style).with_prefix(s.sweep_id.to_string());
                bar.set_length(s.inferences_total.max(0) as u64);
                bar.set_position(s.inferences_done.max(0) as u64);
                bar.set_message(brief(s));
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar
            });
            bar.set_length(s.inferences_total.max(0) as u64);
            bar.set_message(brief(s));
            bar.set_position(s.inferences_done.max(0) as u64);
            if !running {
                bar.finish_and_clear();
            }
        } else if running {
            let now = (Shards::of(s), std::time::Instant::now());
            if plain_line_due(last.as_ref().map(|(k, at)| (*k, at.elapsed())), now.0) {
                eprintln!("{}", line(s));
                last = Some(now);
            }
        }
    }
}

/// What a plain progress line is printed again for: shards done, failed or
/// cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shards(u32, u32, u32);

impl Shards {
    fn of(s: &SweepStatus) -> Shards {
        Shards(s.done, s.failed, s.cancelled)
    }
}

/// How often a plain line is printed while nothing changes.
const PLAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a plain progress line (off a terminal) is due: the first, one after
/// shards changed, or one every [`PLAIN_EVERY`] otherwise.
fn plain_line_due(last: Option<(Shards, std::time::Duration)>, now: Shards) -> bool {
    match last {
        None => true,
        Some((shards, ago)) => shards != now || ago >= PLAIN_EVERY,
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

#[cfg(test)]
mod tests {
    use super::{plain_line_due, wrap, Shards};
    use std::time::Duration;

    #[test]
    fn plain_lines_follow_shards_or_every_ten_seconds() {
        let s = Shards(3, 0, 0);
        assert!(plain_line_due(None, s));
        assert!(!plain_line_due(Some((s, Duration::from_secs(9))), s), "nothing changed");
        assert!(plain_line_due(Some((s, Duration::from_secs(10))), s), "every ten seconds");
        assert!(plain_line_due(Some((s, Duration::from_millis(1))), Shards(4, 0, 0)), "a shard done");
        assert!(plain_line_due(Some((s, Duration::from_millis(1))), Shards(3, 1, 0)), "a shard failed");
    }

    #[test]
    fn wrap_breaks_at_spaces_within_the_width() {
        let text = "sweep 7 [running] demo: shards 3/5 done, 1 leased, 1 queued; inferences 120/200 (60%); workers 2";
        let lines = wrap(text, 40);
        assert_eq!(lines, ["sweep 7 [running] demo: shards 3/5 done,", "    1 leased, 1 queued; inferences", "    120/200 (60%); workers 2"]);
        assert_eq!(wrap("short", 80), ["short"]);
        assert_eq!(wrap("", 80), [""]);
    }

    #[test]
    fn wrap_keeps_the_indent_and_cuts_words_longer_than_a_line() {
        assert_eq!(wrap("  shard 3 failed: abc", 20), ["  shard 3 failed:", "    abc"]);
        let long = "x".repeat(50);
        let lines = wrap(&format!("name {long} end"), 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20), "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), format!("name{long}end"));
    }
}
