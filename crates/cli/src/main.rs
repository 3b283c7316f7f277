//! `privinfer`: private neural-network inference from the command line.
//!
//! Each verb lives in its own module; this file only parses and dispatches.

mod bench_linear;
mod estimate;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "privinfer",
    version,
    about = "Private neural-network inference (HE + 2PC, FHE)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks of one building block or of a whole model.
    Bench(BenchArgs),
    /// LAN/WAN time estimate for a given compute time, traffic and rounds.
    Estimate(estimate::Args),
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

/// Add one variant per benchmark verb, each implemented in its own module.
#[derive(Subcommand)]
enum BenchCommand {
    /// Every linear layer of a model through the linear-layer protocol (HE on shares).
    Linear(bench_linear::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => match b.what {
            BenchCommand::Linear(a) => bench_linear::run(a),
        },
        Command::Estimate(a) => estimate::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
