//! `runner`: the container entrypoint. A small dispatcher; the life of the runner is in
//! `runner::lifecycle`, the exit codes in `runner::exit`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use runner::cli::{Cli, Command};
use runner::config::{Config, Source};
use runner::exit::Exit;
use runner::{lifecycle, privdrop, signals, steps};

fn main() -> ExitCode {
    steps::mark_start();
    let cli = Cli::parse();
    if let Some(Command::ExecAs { user, cmd }) = &cli.command {
        // Only returns on failure.
        let Err(e) = privdrop::exec_as(user, cmd);
        eprintln!("runner exec-as: {e:#}");
        return ExitCode::from(126);
    }
    init_logging();
    // A single-threaded runtime: everything here waits on children and sockets, and it keeps
    // the idle footprint small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return code(Exit::Runtime);
        }
    };
    code(rt.block_on(async_main(cli)))
}

async fn async_main(cli: Cli) -> Exit {
    // Before anything is spawned: a signal from now on drains instead of killing us.
    let shutdown = match signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e:#}");
            return Exit::Runtime;
        }
    };
    let t = Instant::now();
    let cfg = match Config::load(&Source::from_process()) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems.0 {
                tracing::error!(step = %"validate", "{p}");
            }
            tracing::error!(
                step = %"validate",
                "{} configuration problem(s); nothing was done (see runner --help)",
                problems.0.len()
            );
            return Exit::Config;
        }
    };
    tracing::info!(
        step = %"validate",
        elapsed_ms = steps::ms_since(t),
        uptime_ms = steps::uptime_ms(),
        repository = %cfg.repo,
        labels = %cfg.labels.join(","),
        "configuration valid"
    );
    if cli.check {
        return Exit::Drained;
    }
    lifecycle::run(cfg, shutdown).await
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

fn code(exit: Exit) -> ExitCode {
    ExitCode::from(exit.code() as u8)
}
