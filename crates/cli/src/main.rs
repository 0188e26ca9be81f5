//! `jagged`: measure how classifiers change under small image transformations,
//! in resumable sweeps over a coordinator, PostgreSQL and workers.
//!
//! The binary is thin: each role parses its flags and environment in its own
//! module (`coordinator`, `worker`, `client`) and calls the library crates.

mod args;
mod client;
mod coordinator;
mod demo;
mod models;
mod report;
mod sweep;
mod worker;

use clap::{Parser, Subcommand};

/// mimalloc, not glibc's allocator: a worker's many short-lived buffers (image
/// reads, Parquet pages, messages) kept glibc consolidating its free lists on
/// the compute thread (`just bench load`, prefetch 8, 2 cores: 1466 shards/s
/// with glibc, 1595 with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug, PartialEq)]
#[command(name = "jagged", version, about = "Measure how classifiers change under small image transformations, at cluster scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug, PartialEq)]
enum Command {
    /// Run the coordinator: gRPC for workers and admin clients, state in PostgreSQL.
    Coordinator(coordinator::CoordinatorArgs),
    /// Run a worker: lease shards, run them with ONNX Runtime, write results.
    Worker(worker::WorkerArgs),
    /// Submit, watch, list and cancel sweeps.
    #[command(subcommand)]
    Sweep(sweep::SweepCmd),
    /// Aggregate a sweep's committed results: summary tables, report.html and figures.
    Report(report::ReportArgs),
    /// Import models into ONNX files with model cards, or classify one image.
    #[command(subcommand)]
    Models(models::ModelsCmd),
    /// Show a model's inputs, outputs and where it subsamples: each strided op, the
    /// cumulative subsampling factor, and whether a low-pass filter precedes it.
    Inspect(models::InspectArgs),
    /// Database maintenance.
    #[command(subcommand)]
    Db(report::DbCmd),
    /// Run the whole system on this machine: a private PostgreSQL, a local object
    /// store, a coordinator and workers; submit the demo sweep and print its table.
    Demo(demo::DemoArgs),
}

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_logging();
    // A worker's async side only passes messages (its computing and file
    // writing run on blocking threads): one thread for it saves the wake-ups and
    // thread switches of a scheduler spreading each small task over the cores.
    let mut rt = if matches!(cli.command, Command::Worker(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let rt = rt.enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Ends the process quietly (status 0) when whatever reads its output has gone
/// (`jagged report 7 --out r | head`): printing to a closed pipe panics in
/// Rust, since SIGPIPE is ignored so that sockets report their errors.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info.payload().downcast_ref::<String>().map(String::as_str).or_else(|| info.payload().downcast_ref::<&str>().copied());
        if text.is_some_and(|t| t.starts_with("failed printing to stdout") && t.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Logs to stderr, filtered by `JAGGED_LOG` (default `info`): as text, or as
/// one JSON object per line with `JAGGED_LOG_FORMAT=json` (each event with its
/// fields and those of the spans it is in: sweep, shard, attempt, worker).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("JAGGED_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var("JAGGED_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().flatten_event(true).with_current_span(false).with_span_list(true).init(),
        Ok("text") | Err(_) => builder
            // Colour only on a terminal (log files stay plain), and never with NO_COLOR.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
            .init(),
        Ok(other) => {
            builder.with_ansi(false).init();
            tracing::warn!(format = other, "JAGGED_LOG_FORMAT must be `text` or `json`; logging as text");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Coordinator(a) => coordinator::run(a).await,
        Command::Worker(a) => worker::run(a).await,
        Command::Sweep(cmd) => sweep::run(cmd).await,
        Command::Report(a) => report::run(a).await,
        Command::Models(cmd) => models::run(cmd),
        Command::Inspect(a) => models::inspect(a),
        Command::Db(cmd) => report::db(cmd).await,
        Command::Demo(a) => demo::run(a).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_the_role_they_name() {
        let cli = Cli::try_parse_from(["jagged", "sweep", "status", "7", "--coordinator", "http://h:1"]).unwrap();
        let again = Cli::try_parse_from(["jagged", "sweep", "status", "7", "--coordinator", "http://h:1"]).unwrap();
        assert_eq!(cli, again);
        assert!(matches!(cli.command, Command::Sweep(sweep::SweepCmd::Status { id: Some(7), watch: false, .. })));
        assert!(Cli::try_parse_from(["jagged", "worker", "--sessions", "0"]).is_err(), "sessions start at 1");
        assert!(
            Cli::try_parse_from(["jagged", "coordinator", "--database-url", "postgres://x", "--tls-cert", "c.pem"]).is_err(),
            "a cert needs its key"
        );
    }
}
