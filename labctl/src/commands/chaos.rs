//! `labctl chaos SCENARIO.toml`: a scripted chaos run with a verdict (SPEC §8), and
//! `labctl chaos --check history.jsonl`: a recorded run judged again.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use labctl_chaos::history;
use labctl_chaos::report::{Report, Verdict};
use labctl_chaos::scenario::{LabSource, Scenario};

use crate::chaos::RunOptions;
use crate::cli::ChaosArgs;
use crate::lab::LabDir;
use crate::Outcome;

pub fn run(args: &ChaosArgs) -> Result<Outcome> {
    let report = match (&args.check, &args.scenario) {
        (Some(history), _) => recheck(history)?,
        (None, Some(file)) => {
            // Every mistake in the file is found here, before anything starts.
            let scenario = Scenario::load(file).map_err(|e| anyhow!(e))?;
            let options = RunOptions {
                runtime: args.runtime,
                keep: args.keep,
                progress: std::io::stdout().is_terminal(),
            };
            let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            match tokio.block_on(run_or_interrupt(&scenario, &options)) {
                Ok(report) => report,
                // The run could not be carried out (the lab never came up, the engine failed):
                // a verdict of its own, reported like any other.
                Err(e) => unjudged(&scenario, format!("{e:#}")),
            }
        }
        (None, None) => unreachable!("clap requires a scenario or --check"),
    };
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(render(&report).as_bytes())?;
    }
    Ok(match report.verdict {
        Verdict::Valid => Outcome::Done,
        Verdict::Invalid => Outcome::ChecksFailed,
        Verdict::Unknown => {
            let reason = report.reason.as_deref().unwrap_or("no reason given");
            eprintln!("labctl: the run could not be judged: {reason}");
            Outcome::Unknown
        }
    })
}

/// The run, unless Ctrl-C comes first: then the lab the run started is removed (a running lab it
/// was given is left alone) and the history so far stays in the run folder.
async fn run_or_interrupt(scenario: &Scenario, options: &RunOptions) -> Result<Report> {
    let ours = match &scenario.lab {
        LabSource::Topology(_) if !options.keep => {
            let lab = LabDir::new(&scenario.name)?;
            (!lab.exists()).then_some(lab)
        }
        _ => None,
    };
    tokio::select! {
        report = crate::chaos::run(scenario, options) => report,
        _ = tokio::signal::ctrl_c() => {
            if let Some(lab) = ours.filter(LabDir::exists) {
                eprintln!("labctl: interrupted; removing lab {}", lab.name);
                crate::lifecycle::remove(&lab).await?;
            }
            bail!("interrupted: the run was not judged (its history so far is in its run folder)")
        }
    }
}

/// The report of a run that could not be carried out.
fn unjudged(scenario: &Scenario, reason: String) -> Report {
    let lab = match &scenario.lab {
        LabSource::Running(name) => name,
        LabSource::Topology(_) => &scenario.name,
    };
    Report::judge(&scenario.name, lab, &[], &Default::default(), Some(reason))
}

/// Judge a recorded history again; the `scenario.toml` beside it gives the checks' settings.
fn recheck(path: &Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let ops = history::parse(&text).map_err(|e| {
        anyhow!(
            "{}:{}: not a line of a chaos history: {}",
            path.display(),
            e.line,
            e.source
        )
    })?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let beside = folder.join("scenario.toml");
    let scenario = match std::fs::read_to_string(&beside) {
        Ok(text) => {
            Scenario::parse(&text, &beside.display().to_string(), folder).map_err(|e| anyhow!(e))?
        }
        // No scenario beside it: the default checks.
        Err(_) => Scenario::parse(
            "name = \"history\"\nlab = \"unknown\"\nduration_s = 1\n",
            "the default scenario",
            folder,
        )
        .map_err(|e| anyhow!(e))?,
    };
    Ok(crate::chaos::judge(
        &scenario,
        "(recorded)",
        &ops,
        None,
        folder,
    ))
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn maybe(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".to_string(), |ms| format!("{ms} ms"))
}

/// The report for a terminal.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let verdict = match report.verdict {
        Verdict::Valid => "valid",
        Verdict::Invalid => "INVALID",
        Verdict::Unknown => "unknown",
    };
    let _ = writeln!(
        out,
        "chaos {} on lab {}: {verdict}",
        report.scenario, report.lab
    );
    if let Some(reason) = &report.reason {
        let _ = writeln!(out, "  could not be judged: {reason}");
    }
    let ops = report.ops;
    let _ = writeln!(
        out,
        "  operations: {} ok, {} failed, {} unknown",
        ops.ok, ops.fail, ops.info
    );
    if report.faults.is_empty() {
        let _ = writeln!(out, "  faults: none");
    } else {
        let _ = writeln!(
            out,
            "  faults (detected / new leader / next acknowledged write):"
        );
        for f in &report.faults {
            let _ = writeln!(
                out,
                "    {:>7}  {:<36} {} / {} / {}",
                seconds(f.at_ms),
                f.fault.to_string(),
                maybe(f.detected_ms),
                maybe(f.new_leader_ms),
                maybe(f.next_write_ms)
            );
        }
    }
    if !report.failovers_ms.is_empty() {
        let list: Vec<String> = report
            .failovers_ms
            .iter()
            .map(|ms| format!("{ms} ms"))
            .collect();
        let _ = writeln!(
            out,
            "  failovers (writer lost → next acknowledged write): {}",
            list.join(", ")
        );
    }
    if report.anomalies.is_empty() {
        let _ = writeln!(out, "  anomalies: none");
    } else {
        for (kind, anomalies) in &report.anomalies {
            let _ = writeln!(out, "  {} ({}):", kind.as_str(), anomalies.len());
            for anomaly in anomalies.iter().take(5) {
                let lines: Vec<String> = anomaly
                    .ops
                    .iter()
                    .take(6)
                    .map(|o| (o.index + 1).to_string())
                    .collect();
                let _ = writeln!(
                    out,
                    "    {} [history lines {}]",
                    anomaly.what,
                    lines.join(", ")
                );
            }
            if anomalies.len() > 5 {
                let _ = writeln!(out, "    … {} more in report.json", anomalies.len() - 5);
            }
        }
    }
    if !report.run.is_empty() {
        let _ = writeln!(
            out,
            "  run folder: {} ({})",
            report.run,
            seconds(report.elapsed_ms)
        );
    }
    out
}
