//! `labctl bench http|failover|dashboard [NAME]`: run one of [`crate::bench`]'s benchmarks on a
//! running lab and print its figures (one JSON object with `--json`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::bench::dashboard::{self, Figures};
use crate::bench::report::{failure_line, render};
use crate::bench::{failover, load};
use crate::cli::{BenchArgs, BenchCommand, BenchDashboardArgs, BenchFailoverArgs, BenchHttpArgs};
use crate::lab::resolve;
use crate::Outcome;

pub fn run(args: &BenchArgs) -> Result<Outcome> {
    match &args.command {
        BenchCommand::Http(args) => http(args),
        BenchCommand::Failover(args) => failover(args),
        BenchCommand::Dashboard(args) => dashboard(args),
    }
}

/// `labctl bench failover`.
fn failover(args: &BenchFailoverArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    if !lab.exists() {
        return Err(lab.not_found());
    }
    let timeout = Duration::from_secs(args.timeout);
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        Some(u64::from(args.runs)),
        if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("failovers [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let (runs, failed) = tokio.block_on(failover::series(
        &lab,
        args.runs,
        Duration::from_secs(args.rest),
        timeout,
        &bar,
    ))?;
    bar.finish_and_clear();
    let record = lab.load()?;
    let mut stdout = std::io::stdout().lock();
    let figure = |f: fn(&failover::Failover) -> u64| -> Vec<u64> { runs.iter().map(f).collect() };
    let (suspected, converged, written, rejoined) = (
        figure(|r| r.suspected_ms),
        figure(|r| r.converged_ms),
        figure(|r| r.written_ms),
        figure(|r| r.rejoined_ms),
    );
    if args.json {
        let summary = |f: &[u64]| (!f.is_empty()).then(|| failover::summary(f));
        let value = json!({
            "lab": lab.name,
            "runtime": record.runtime,
            "runs": runs,
            "suspected_ms": summary(&suspected),
            "converged_ms": summary(&converged),
            "written_ms": summary(&written),
            "rejoined_ms": summary(&rejoined),
            "error": failed,
        });
        serde_json::to_writer(&mut stdout, &value)?;
        writeln!(stdout)?;
    } else if !runs.is_empty() {
        writeln!(
            stdout,
            "failover of the writer on {} ({} runtime), {} runs: from SIGKILL to …",
            lab.name,
            record.runtime,
            runs.len()
        )?;
        writeln!(stdout, "                          median      p90    worst")?;
        for (name, figures) in [
            ("a neighbour suspects it", &suspected),
            ("converged in a new epoch", &converged),
            ("a write acknowledged", &written),
        ] {
            let s = failover::summary(figures);
            writeln!(
                stdout,
                "  {name:<24} {:>6} ms {:>6} ms {:>6} ms",
                s.median, s.p90, s.worst
            )?;
        }
        let s = failover::summary(&rejoined);
        writeln!(
            stdout,
            "  {:<24} {:>6} ms {:>6} ms {:>6} ms   (from its restart)",
            "the lab whole again", s.median, s.p90, s.worst
        )?;
    }
    if let Some(e) = failed {
        writeln!(
            std::io::stderr(),
            "labctl: after {} run(s): {e}",
            runs.len()
        )?;
        return Ok(Outcome::ChecksFailed);
    }
    Ok(Outcome::Done)
}

/// `labctl bench http`.
fn http(args: &BenchHttpArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let tty = std::io::stdout().is_terminal();
    let progress = ProgressBar::with_draw_target(
        Some(args.duration),
        if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    progress.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} s {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = tokio.block_on(load::run(&lab, args, &progress))?;
    progress.finish_and_clear();

    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &result)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(render(&result).as_bytes())?;
    }
    stdout.flush()?;
    if result.passed {
        Ok(Outcome::Done)
    } else {
        let _ = writeln!(std::io::stderr(), "labctl: {}", failure_line(&result));
        Ok(Outcome::ChecksFailed)
    }
}

/// `labctl bench dashboard`.
fn dashboard(args: &BenchDashboardArgs) -> Result<Outcome> {
    let lab = resolve(args.name.as_deref())?;
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let tty = std::io::stderr().is_terminal();
    let Figures {
        changes: figures,
        failed,
    } = tokio.block_on(dashboard::measure(&lab, args, |run, failover, rejoin| {
        if tty {
            eprint!(
                "\rrun {}/{}: failover shown {failover} ms, rejoin {rejoin} ms after the last \
                 node's roles   ",
                run + 1,
                args.runs
            );
        }
    }))?;
    if tty {
        eprintln!();
    }
    if figures.is_empty() {
        bail!(
            "no run finished: {}",
            failed.unwrap_or_else(|| "nothing ran".into())
        );
    }
    let all: Vec<u64> = figures.iter().map(|(_, f)| *f).collect();
    let s = failover::summary(&all);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "lab": lab.name,
            "figures_ms": figures.iter().map(|(kind, f)| json!({"change": kind, "ms": f})).collect::<Vec<_>>(),
            "median_ms": s.median,
            "p90_ms": s.p90,
            "worst_ms": s.worst,
            "failed": failed,
        });
        writeln!(stdout, "{value}")?;
    } else {
        writeln!(
            stdout,
            "{}: {} changes (writer killed, then restarted) shown by the dashboard's events \
             median {} ms, p90 {} ms, worst {} ms after the last node took its roles (goal ≤ 300 ms)",
            lab.name,
            all.len(),
            s.median,
            s.p90,
            s.worst
        )?;
        if let Some(e) = &failed {
            writeln!(stdout, "a run failed: {e}")?;
        }
    }
    Ok(if failed.is_some() {
        Outcome::ChecksFailed
    } else {
        Outcome::Done
    })
}
