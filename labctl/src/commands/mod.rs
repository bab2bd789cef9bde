//! One module per subcommand.

pub mod graph;
pub mod sim;
pub mod validate;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::Outcome;

/// Run the chosen subcommand.
pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::Graph(args) => graph::run(&args),
    }
}
