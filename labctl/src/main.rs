//! `labctl`: a container-lab testbed for Yo-Yo leader election and SHOUT spanning trees.
//!
//! Thin by design: parse the command line, run one subcommand from [`commands`], map the outcome
//! to an exit code (0 done, 1 ran but a check failed, 2 error, 130 interrupted by Ctrl-C) and print errors as one line
//! `labctl: …` on stderr.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

mod bench;
mod chaos;
mod chat_client;
mod cli;
mod commands;
mod dashboard;
mod fault;
mod guard;
mod lab;
mod lifecycle;
mod live;
mod lock;
mod memory;
mod poll;
mod render;
mod runtime;

/// What a subcommand found, beyond errors.
pub enum Outcome {
    /// Everything checked out.
    Done,
    /// The command ran, but a check failed (exit code 1).
    ChecksFailed,
    /// The command ran but could not reach a judgement (exit code 2; it said why).
    Unknown,
    /// Ctrl-C stopped the command (exit code 130, as a shell reports a SIGINT); it said what it
    /// undid and what, if anything, is left.
    Interrupted,
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::ChecksFailed) => ExitCode::from(1),
        Ok(Outcome::Unknown) => ExitCode::from(2),
        Ok(Outcome::Interrupted) => ExitCode::from(130),
        Err(err) => {
            // A closed pipe (`labctl sim … | head`) is not an error worth a word.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<io::Error>())
                .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(io::stderr(), "labctl: {err:#}");
            ExitCode::from(2)
        }
    }
}
