//! `privinfer`: private neural-network inference from the command line.
//!
//! Each verb lives in its own module; this file only parses and dispatches.

mod bench_ckks;
mod bench_he;
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
    /// Lattice core (RLWE) operations: NTT, encryption, products, rotation, mod switch, serialization.
    He(bench_he::Args),
    /// CKKS operations and bootstrapping (N = 2^16), single-threaded and with all cores.
    Ckks(bench_ckks::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(b) => match b.what {
            BenchCommand::He(a) => bench_he::run(a),
            BenchCommand::Ckks(a) => bench_ckks::run(a),
        },
        Command::Estimate(a) => estimate::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
