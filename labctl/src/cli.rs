//! The command line, as clap sees it. Each subcommand's options live beside its name here; what it
//! does lives in `commands/<name>.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A container-lab testbed for distributed algorithms: Yo-Yo leader election, SHOUT spanning
/// trees, and a chat service on top.
///
/// Start with `labctl sim topologies/ring6.toml` to watch an election in the simulator, or
/// `labctl validate FILE` to check a topology file you wrote.
#[derive(Debug, Parser)]
#[command(
    name = "labctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check topology files: syntax, ids, links, connectivity.
    ///
    /// Prints one line per valid file. The first invalid file stops with an error naming its
    /// line and column, the offending value and what would be valid (exit code 2).
    Validate(ValidateArgs),
    /// Run Yo-Yo and SHOUT+ on a topology in the deterministic simulator and report.
    ///
    /// Prints the leader, the spanning tree, every node's roles and the message counts beside
    /// the algorithms' bounds. Same file, seed and delivery: same run, bit for bit. Exit code 1
    /// when an invariant does not hold (say, a bound is exceeded).
    Sim(SimArgs),
    /// Show a topology's graph as text or in Graphviz's DOT language.
    Graph(GraphArgs),
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Topology files (TOML) to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The topology file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Seed for the random message delays of `--delivery async`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// How links deliver: `sync` moves in rounds (every message takes one step, so the tree is
    /// breadth-first); `async` gives every message a random delay, keeping each link FIFO.
    #[arg(long, value_enum, default_value_t = DeliveryArg::Sync)]
    pub delivery: DeliveryArg,
    /// Print the report as one JSON object (SPEC §7) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print every send, receive and state change as JSON Lines on stdout (the text summary then
    /// goes to stderr; with --json the report is the last line).
    #[arg(long)]
    pub trace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeliveryArg {
    /// Unit delays: synchronous rounds.
    Sync,
    /// Random delays from --seed, FIFO per link.
    Async,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The topology file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// `ascii`: an adjacency listing for the terminal; `dot`: Graphviz (pipe into `dot -Tsvg`).
    #[arg(long, value_enum, default_value_t = GraphFormat::Ascii)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Adjacency listing.
    Ascii,
    /// Graphviz DOT.
    Dot,
}
