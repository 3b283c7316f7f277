//! `privinfer`: private neural-network inference from the command line.
//!
//! Each verb lives in its own module; this file only parses and dispatches.

mod bench_ckks;
mod bench_he;
mod bench_linear;
mod bench_nonlinear;
mod bench_ot;
mod bench_serve;
mod estimate;
mod eval;
mod fhe_mode;
mod inspect;
mod private;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "privinfer",
    version,
    about = "Private neural-network inference (HE + 2PC, FHE)"
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Private inference of the bundled ResNet-20 on a bundled image, both parties in one process.
    Demo(private::DemoArgs),
    /// Serve a model to private-inference clients.
    Serve(private::ServeArgs),
    /// Run a private inference against a server.
    Infer(private::InferArgs),
    /// Benchmarks of a whole model (`--model M`) or of one building block (subcommands).
    Bench(BenchArgs),
    /// LAN/WAN time estimate for a given compute time, traffic and rounds.
    Estimate(estimate::Args),
    /// Layer table of an ONNX model: ops, shapes, MACs, ReLUs, parameters.
    Inspect(inspect::Args),
    /// Top-1 accuracy of the float and fixed-point executors on CIFAR-10 or images.
    Eval(eval::Args),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchCommand>,
    #[command(flatten)]
    model: private::BenchModelArgs,
}

/// Add one variant per benchmark verb, each implemented in its own module.
#[derive(Subcommand)]
enum BenchCommand {
    /// Lattice core (RLWE) operations: NTT, encryption, products, rotation, mod switch, serialization.
    He(bench_he::Args),
    /// Oblivious transfer: silent and IKNP correlated OT throughput and traffic.
    Ot(bench_ot::Args),
    /// Non-linear 2PC protocols: ReLU, truncation and the ring/field share conversions: time,
    /// bytes, rounds and exactness.
    #[command(alias = "relu")]
    Nonlinear(bench_nonlinear::Args),
    /// Every linear layer of a model under the HE linear protocols.
    Linear(bench_linear::Args),
    /// CKKS operations and bootstrapping.
    Ckks(bench_ckks::Args),
    /// Soak: a served model under concurrent honest clients and abusive connections.
    Serve(bench_serve::Args),
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // Every verb churns through ring elements above glibc's mmap threshold; keeping freed ones
    // in the heap avoids page-faulting them in again on every key switch (math::alloc).
    math::alloc::retain_large_allocations();
    if matches!(
        cli.command,
        Command::Inspect(_) | Command::Eval(_) | Command::Estimate(_)
    ) {
        quiet_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Demo(a) => private::demo(a),
        Command::Serve(a) => private::serve(a),
        Command::Infer(a) => private::infer(a),
        Command::Bench(b) => match b.what {
            None => private::bench_model(b.model),
            Some(BenchCommand::He(a)) => bench_he::run(a),
            Some(BenchCommand::Ot(a)) => bench_ot::run(a),
            Some(BenchCommand::Nonlinear(a)) => bench_nonlinear::run(a),
            Some(BenchCommand::Linear(a)) => bench_linear::run(a),
            Some(BenchCommand::Ckks(a)) => bench_ckks::run(a),
            Some(BenchCommand::Serve(a)) => bench_serve::run(a),
        },
        Command::Estimate(a) => estimate::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Eval(a) => eval::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// Verbs that only print reports (no sockets) end quietly when their reader goes away (`privinfer
/// inspect M | head`), as other command-line tools do, instead of panicking in `println!`. Not
/// for verbs with sockets: there a peer that disconnects must give an error, not kill the process.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called before any thread is started; it only restores the default disposition of
    // SIGPIPE, which the Rust runtime set to "ignore".
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes on one line, leaving out causes whose text the line already shows
/// (library errors often print their source in their own message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(text.as_str()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `--dense-bytes`: free, cheetah or cheetah-total.
fn parse_dense_bytes(s: &str) -> Result<linear::DenseBytes, String> {
    match s {
        "free" => Ok(linear::DenseBytes::Free),
        "cheetah" => Ok(linear::DenseBytes::AtMostCheetah),
        "cheetah-total" => Ok(linear::DenseBytes::AtMostCheetahTotal),
        other => Err(format!(
            "{other:?}: expected free, cheetah or cheetah-total"
        )),
    }
}
