//! `ci-storage store|load …`: see `ci-storage --help` and `runner::storage`.

use clap::Parser;
use runner::storage::{self, cli::Args};

fn main() {
    // clap exits 2 on usage errors and 0 for --help/--version.
    let args = Args::parse();
    let result = args.into_config().and_then(storage::run);
    // `run` has returned, so the ssh master connection is already closed.
    if let Err(e) = result {
        eprintln!("Error: {e}");
        std::process::exit(e.exit_code());
    }
}
