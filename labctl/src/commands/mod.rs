//! One module per subcommand.

pub mod bench;
pub mod chaos;
pub mod daemon;
pub mod dashboard;
pub mod down;
pub mod export;
pub mod fault;
pub mod graph;
pub mod image;
pub mod logs;
pub mod ls;
pub mod shell;
pub mod sim;
pub mod status;
pub mod trace;
pub mod up;
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
        Command::Up(args) => up::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Down(args) => down::run(&args),
        Command::Ls(args) => ls::run(&args),
        Command::Fault(args) => fault::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Chaos(args) => chaos::run(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Dashboard(args) => dashboard::run(&args),
        Command::Logs(args) => logs::run(&args),
        Command::Shell(args) => shell::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Daemon(args) => daemon::run(*args),
    }
}
