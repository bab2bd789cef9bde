//! `labctl status [NAME]`: report on a running lab, read live from its nodes.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::StatusArgs;
use crate::lab::resolve;
use crate::{lifecycle, Outcome};

pub fn run(args: &StatusArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    tokio.block_on(async {
        let mut stdout = std::io::stdout().lock();
        let tty = std::io::stdout().is_terminal();
        loop {
            let report = lifecycle::report(&lab).await?;
            if args.json {
                serde_json::to_writer(&mut stdout, &report)?;
                writeln!(stdout)?;
            } else {
                if args.watch && tty {
                    // Clear the screen and go home, like `watch`.
                    write!(stdout, "\x1b[2J\x1b[H")?;
                }
                stdout.write_all(crate::render::live(&report).as_bytes())?;
            }
            stdout.flush()?;
            if !args.watch {
                return Ok(if report.report.converged {
                    Outcome::Done
                } else {
                    Outcome::ChecksFailed
                });
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(Outcome::Done),
            }
        }
    })
}
