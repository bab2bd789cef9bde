//! `labctl sim FILE`: run the election and the tree in the deterministic simulator.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use labctl_core::Report;
use labctl_sim::{faults, sweep, Config, Delivery, Simulation};
use labctl_topology::Topology;
use serde::{Deserialize, Serialize};

use crate::cli::SimArgs;
use crate::memory;
use crate::render;
use crate::Outcome;

/// The report of SPEC §7 plus what only a simulation knows.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimReport {
    #[serde(flatten)]
    pub report: Report,
    /// The seed of the run.
    pub seed: u64,
    /// `sync` or `async`.
    pub delivery: Delivery,
    /// Virtual time when the network went quiet (rounds, under `sync`).
    pub virtual_time: u64,
    /// Messages delivered.
    pub delivered: u64,
}

pub fn run(args: &SimArgs) -> Result<Outcome> {
    if args.scale {
        return scale(args);
    }
    let file = args
        .file
        .as_deref()
        .expect("clap asks for FILE unless --scale");
    if args.faults.is_none() {
        return plain(args, file);
    }
    let topology = Topology::from_path(file)?;
    if let Some(faults) = &args.faults {
        if let Some(seeds) = &args.seeds {
            if faults != "random" {
                bail!("--seeds sweeps random schedules: use it with --faults random, not --faults {faults}");
            }
            return sweep_seeds(args, file, &topology, seeds.clone());
        }
        return with_faults(args, file, &topology, faults);
    }
    unreachable!("plain runs return above")
}

/// From this many nodes, a run's results are left for the process's exit to free.
const LEFT_TO_EXIT: usize = 100_000;

/// One clean election, as SPEC §5's `labctl sim` runs it: refused up front if it would not fit
/// in memory, with a progress display on a terminal once it takes more than a second.
fn plain(args: &SimArgs, file: &Path) -> Result<Outcome> {
    let counted = Topology::count_path(file)?;
    let (nodes, links) = (counted.nodes, counted.links);
    let need = labctl_sim::estimate_peak_bytes(nodes as u64, links as u64);
    let limit = args.max_memory.or_else(memory::available);
    if let Some(limit) = limit {
        if need > limit && !args.force {
            let whose = if args.max_memory.is_some() {
                "--max-memory allows"
            } else {
                "this machine has available"
            };
            bail!(
                "simulating {} ({nodes} nodes, {links} links) needs about {} of memory, and {whose} \
                 {}: choose a smaller topology or free memory (--force runs it anyway)",
                file.display(),
                memory::show(need),
                memory::show(limit)
            );
        }
    }
    let progress = Ticker::start(nodes as u64);
    progress.say(format!("reading {nodes} nodes and {links} links"));
    let topology = counted.load()?;
    let config = Config {
        seed: args.seed,
        delivery: args.delivery.delivery(),
        trace: args.trace,
    };
    progress.say("building the nodes".into());
    // The simulator keeps the graph its own way: the topology is given back before the run.
    let run = Simulation::run_topology(topology, &config, &mut |p| progress.show(p))
        .with_context(|| format!("simulating {}", file.display()))?;
    progress.finish();
    let outcome = if run.report.failed_checks().next().is_none() {
        Outcome::Done
    } else {
        Outcome::ChecksFailed
    };

    let mut stdout = std::io::stdout().lock();
    if args.trace {
        print_trace(&mut stdout, &run.trace)?;
    }
    let report = SimReport {
        report: run.report,
        seed: config.seed,
        delivery: config.delivery,
        virtual_time: run.time,
        delivered: run.delivered,
    };
    if args.json {
        // In large pieces: a million nodes' report is tens of megabytes, which standard output
        // would otherwise take a few bytes at a time, looking for line ends in each.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut stdout);
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let setting = match config.delivery {
            Delivery::Sync => "synchronous rounds".to_string(),
            Delivery::Async => format!("random delays, seed {}", config.seed),
        };
        let header = format!(
            "simulated, {setting}: {} messages, quiet after {} {}",
            report.delivered,
            report.virtual_time,
            if config.delivery == Delivery::Sync {
                "rounds"
            } else {
                "time units"
            }
        );
        let text = render::report(&report.report, &header);
        if args.trace {
            // Keep stdout pure JSON Lines; the summary is for the person watching.
            std::io::stderr().write_all(text.as_bytes())?;
        } else {
            stdout.write_all(text.as_bytes())?;
        }
    }
    if nodes >= LEFT_TO_EXIT {
        // The process exits next, and the system takes its memory back at once: freeing a
        // million statuses and the report's maps one by one would take a third of a second.
        std::mem::forget(run.statuses);
        std::mem::forget(report);
    }
    Ok(outcome)
}

/// What `labctl sim --faults … --json` prints: the final report and how the run went.
#[derive(Debug, Serialize)]
struct FaultSimReport {
    #[serde(flatten)]
    report: Report,
    /// The seed that replays the run.
    seed: u64,
    /// `settled` or `failed`.
    verdict: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Each step, applied or refused.
    schedule: Vec<faults::Applied>,
    /// From the last fault's aftermath to the lab settled, in ms.
    settled_after_ms: u64,
    /// Epochs started over all nodes, and the newest reached.
    epochs_started: u64,
    max_epoch: u64,
    /// The longest an old writer held on after a newer one took over, in ms.
    stale_writer_ms: u64,
    /// Messages and heartbeats delivered; virtual time at the end, in ms.
    delivered: u64,
    virtual_time_ms: u64,
}

/// `labctl sim FILE --faults random|SCHEDULE`: live nodes under faults.
fn with_faults(
    args: &SimArgs,
    file: &Path,
    topology: &Topology,
    faults_arg: &str,
) -> Result<Outcome> {
    let adjacency = topology.adjacency();
    let (config, heal_at_end, origin) = if faults_arg == "random" {
        let config = sweep::random_config(
            &adjacency,
            topology.timing,
            args.seed,
            args.duration_s.saturating_mul(1000),
        );
        let origin = format!(
            "a random schedule from seed {}: {} steps over {} s",
            args.seed,
            config.schedule.len(),
            args.duration_s
        );
        (config, true, origin)
    } else {
        let path = std::path::Path::new(faults_arg);
        let (steps, heal) = schedule_file(path)?;
        let mut config = faults::FaultConfig::new(args.seed, steps);
        config.timing = topology.timing;
        config.stable_ms = 3 * topology.timing.suspicion_ms;
        config.heal_at_end = heal;
        (config, heal, format!("the schedule {}", path.display()))
    };
    let config = faults::FaultConfig {
        trace: args.trace,
        ..config
    };
    let (result, trace) = faults::run_traced(&topology.name, &adjacency, &config);

    let mut stdout = std::io::stdout().lock();
    if args.trace {
        print_trace(&mut stdout, &trace)?;
    }
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            if args.json {
                let value = serde_json::json!({
                    "lab": topology.name,
                    "seed": e.seed(),
                    "verdict": "failed",
                    "error": e.to_string(),
                });
                serde_json::to_writer(&mut stdout, &value)?;
                writeln!(stdout)?;
            }
            writeln!(
                std::io::stderr(),
                "labctl: {}: {e}\nreplay it: labctl sim {} --faults {faults_arg} --seed {} --trace",
                topology.name,
                file.display(),
                e.seed()
            )?;
            return Ok(Outcome::ChecksFailed);
        }
    };
    let report = FaultSimReport {
        report: run.report,
        seed: args.seed,
        verdict: "settled",
        error: None,
        schedule: run.applied,
        settled_after_ms: run.converged_after_ms,
        epochs_started: run.epochs_started,
        max_epoch: run.max_epoch,
        stale_writer_ms: run.stale_writer_ms,
        delivered: run.delivered,
        virtual_time_ms: run.time,
    };
    if args.json {
        serde_json::to_writer(&mut stdout, &report)?;
        writeln!(stdout)?;
        return Ok(Outcome::Done);
    }
    let mut text = String::new();
    let header = format!(
        "simulated with faults, {origin}, seed {}: {} messages and heartbeats in {:.1} s",
        report.seed,
        report.delivered,
        report.virtual_time_ms as f64 / 1000.0
    );
    let steps: Vec<String> = report
        .schedule
        .iter()
        .map(|a| {
            format!(
                "  {:>7.2} s  {}{}",
                a.step.at_ms as f64 / 1000.0,
                a.step.fault,
                a.refused
                    .as_ref()
                    .map(|why| format!("  (refused: {why})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    text.push_str(&render::components(&report.report, &header, &[], &[]));
    text.push_str(&format!(
        "\nSchedule ({} steps{}):\n{}\n",
        steps.len(),
        if heal_at_end {
            ", then heal everything"
        } else {
            ""
        },
        steps.join("\n")
    ));
    text.push_str(&format!(
        "\nSettled {:.2} s after the faults' aftermath, then stayed so: {} epochs started over \
         all nodes, the newest {}.\nSafe throughout: one writer per epoch, every writer over a \
         majority, never two writers followed by majorities (an old writer lingered at most {} \
         ms before it heard of the new epoch).\n",
        report.settled_after_ms as f64 / 1000.0,
        report.epochs_started,
        report.max_epoch,
        report.stale_writer_ms
    ));
    if args.trace {
        std::io::stderr().write_all(text.as_bytes())?;
    } else {
        stdout.write_all(text.as_bytes())?;
    }
    Ok(Outcome::Done)
}

/// A schedule file: `[[fault]]` tables, each `at_s` (or `at_ms`) and a fault object; an optional
/// top-level `heal_at_end` (default true).
fn schedule_file(path: &std::path::Path) -> Result<(Vec<faults::Step>, bool)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the fault schedule {}", path.display()))?;
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let message = e.to_string();
        let message: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty()).collect();
        anyhow::anyhow!("{}: not TOML: {}", path.display(), message.join(" "))
    })?;
    let heal = match table.remove("heal_at_end") {
        None => true,
        Some(toml::Value::Boolean(b)) => b,
        Some(other) => anyhow::bail!(
            "{}: heal_at_end must be true or false, not {other}",
            path.display()
        ),
    };
    let steps = match table.remove("fault") {
        Some(toml::Value::Array(steps)) => steps,
        None => Vec::new(),
        Some(_) => anyhow::bail!("{}: `fault` must be [[fault]] tables", path.display()),
    };
    if let Some(key) = table.keys().next() {
        anyhow::bail!(
            "{}: unknown key {key:?}; a schedule has heal_at_end and [[fault]] tables",
            path.display()
        );
    }
    let mut out = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        let toml::Value::Table(mut step) = step else {
            anyhow::bail!("{}: fault {} is not a table", path.display(), i + 1);
        };
        let at_ms = match (step.remove("at_s"), step.remove("at_ms")) {
            (Some(toml::Value::Integer(s)), None) if s >= 0 => s as u64 * 1000,
            (Some(toml::Value::Float(s)), None) if s >= 0.0 => (s * 1000.0) as u64,
            (None, Some(toml::Value::Integer(ms))) if ms >= 0 => ms as u64,
            _ => anyhow::bail!(
                "{}: fault {} needs its time: at_s (seconds) or at_ms, not negative",
                path.display(),
                i + 1
            ),
        };
        let fault: labctl_fault::Fault = toml::Value::Table(step).try_into().map_err(|e| {
            // The TOML library's messages run over several lines; keep the error to one.
            let message = e.to_string();
            let message: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty()).collect();
            anyhow::anyhow!("{}: fault {}: {}", path.display(), i + 1, message.join(" "))
        })?;
        out.push(faults::Step { at_ms, fault });
    }
    out.sort_by_key(|s| s.at_ms);
    Ok((out, heal))
}

/// A trace as JSON Lines.
fn print_trace(out: &mut impl Write, trace: &[labctl_sim::TraceLine]) -> Result<()> {
    for line in trace {
        serde_json::to_writer(&mut *out, line)?;
        writeln!(out)?;
    }
    Ok(())
}

/// `labctl sim FILE --faults random --seeds A..B`: one random schedule per seed, on every core.
fn sweep_seeds(
    args: &SimArgs,
    file: &Path,
    topology: &Topology,
    seeds: std::ops::Range<u64>,
) -> Result<Outcome> {
    let adjacency = topology.adjacency();
    let threads = match args.jobs {
        Some(jobs) => usize::from(jobs),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let plan = sweep::Sweep {
        lab: &topology.name,
        adjacency: &adjacency,
        config: &|seed| {
            sweep::random_config(
                &adjacency,
                topology.timing,
                seed,
                args.duration_s.saturating_mul(1000),
            )
        },
        seeds: seeds.clone(),
        threads,
    };
    let replay = |seed: u64| {
        format!(
            "labctl sim {} --faults random --seed {seed} --duration-s {} --trace",
            file.display(),
            args.duration_s
        )
    };
    let count = seeds.end - seeds.start;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("seeds [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("0 failed");
    // Lines go to stdout, above the bar (which draws on stderr, on a terminal only).
    let say = |line: String| bar.suspend(|| println!("{line}"));
    if !args.json {
        say(format!(
            "sweeping {count} seeds ({}..{}) of random fault schedules ({} s of faults each) on {}, {} threads",
            seeds.start, seeds.end, args.duration_s, topology.name, plan.threads.min(count as usize)
        ));
    }
    let mut failed = 0u64;
    let summary = sweep::run(&plan, |result| {
        bar.inc(1);
        if let Some(error) = &result.failure {
            failed += 1;
            bar.set_message(format!("{failed} failed"));
            if !args.json {
                say(format!(
                    "seed {} FAILED: {error}\n  replay: {}",
                    result.seed,
                    replay(result.seed)
                ));
            }
        }
    });
    bar.finish_and_clear();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "lab": topology.name,
            "seeds": { "start": seeds.start, "end": seeds.end },
            "duration_s": args.duration_s,
            "verdict": if summary.failed.is_empty() { "all settled" } else { "failures" },
            "summary": summary,
        });
        serde_json::to_writer(&mut stdout, &value)?;
        writeln!(stdout)?;
    } else {
        writeln!(
            stdout,
            "{} seeds in {:.1} s ({:.0} seeds/s on {} threads): {} failed; {} faults applied, {} \
             epochs started, {:.1} M messages and heartbeats delivered",
            summary.seeds,
            summary.elapsed_ms as f64 / 1000.0,
            summary.seeds_per_second,
            summary.threads,
            summary.failed.len(),
            summary.faults_applied,
            summary.epochs_started,
            summary.delivered as f64 / 1e6
        )?;
        if !summary.failed.is_empty() {
            let list: Vec<String> = summary.failed.iter().map(|f| f.seed.to_string()).collect();
            writeln!(stdout, "failing seeds: {}", list.join(" "))?;
        }
    }
    Ok(if summary.failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::ChecksFailed
    })
}

/// A run's progress on a terminal: nothing for its first second, then a bar of the election's
/// stages (setup, Yo-Yo's iterations against their bound ⌈log₂ n⌉ + 1, the tree) with the
/// messages delivered, redrawn as the run goes.
struct Ticker {
    bar: ProgressBar,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    iterations: u32,
}

impl Ticker {
    fn start(nodes: u64) -> Ticker {
        let iterations = labctl_core::Bounds::new(nodes, 0).iterations;
        let bar = ProgressBar::with_draw_target(
            Some(u64::from(iterations) + 2),
            ProgressDrawTarget::hidden(),
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:20}] {elapsed:>3} {wide_msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if std::io::stderr().is_terminal() {
            let (bar, done) = (bar.clone(), done.clone());
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(1));
                if !done.load(std::sync::atomic::Ordering::Acquire) {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                }
            });
        }
        Ticker {
            bar,
            done,
            iterations,
        }
    }

    fn say(&self, what: String) {
        self.bar.set_message(what);
    }

    fn show(&self, p: &labctl_sim::Progress) {
        let (position, stage) = match p.stage {
            labctl_sim::Stage::Setup => (0, "Yo-Yo setup".to_string()),
            labctl_sim::Stage::Iteration(i) => (
                u64::from(i),
                format!("Yo-Yo iteration {i} of ≤ {}", self.iterations),
            ),
            labctl_sim::Stage::Tree => (u64::from(self.iterations) + 1, "SHOUT+ tree".to_string()),
            labctl_sim::Stage::Quiet => {
                self.bar.set_position(u64::from(self.iterations) + 2);
                self.bar.set_message(format!(
                    "quiet after {:.1} M messages: building the report",
                    p.delivered as f64 / 1e6
                ));
                return;
            }
        };
        self.bar.set_position(position);
        self.bar.set_message(format!(
            "{stage}: {:.1}M delivered, {:.1}M in flight",
            p.delivered as f64 / 1e6,
            p.in_flight as f64 / 1e6
        ));
    }

    fn finish(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.bar.finish_and_clear();
    }
}

/// `labctl sim --scale`: the growth table, row by row as each size finishes, and its picture.
fn scale(args: &SimArgs) -> Result<Outcome> {
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if !(args.degree.is_finite() && args.degree > 0.0) {
        bail!(
            "--degree {} is not an average degree: give a positive number such as 4",
            args.degree
        );
    }
    // Every size is checked before anything runs.
    let mut plan = Vec::new();
    for n in sizes {
        let (_, links) = labctl_sim::scale::counts(n, args.degree)
            .map_err(|e| anyhow::anyhow!("--sizes {n} with --degree {}: {e}", args.degree))?;
        plan.push((n, labctl_sim::estimate_peak_bytes(n as u64, links as u64)));
    }
    let limit = args.max_memory.or_else(memory::available);
    let mut stdout = std::io::stdout().lock();
    if !args.json {
        writeln!(
            stdout,
            "How Yo-Yo grows: random graphs of average degree {}, shuffled ids, async delivery, seed {}\n",
            args.degree,
            labctl_sim::scale::SEED
        )?;
        writeln!(
            stdout,
            "{:>9} {:>10} {:>5} {:>10} {:>12} {:>14} {:>6} {:>9} {:>9}",
            "n", "m", "iter.", "⌈log₂n⌉+1", "messages", "2m(⌈log₂n⌉+2)", "ratio", "time", "memory"
        )?;
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for (n, need) in plan {
        if let Some(limit) = limit.filter(|&l| need > l && !args.force) {
            let line = format!(
                "{n:>9}: skipped, it needs about {} and {} is available (--force runs it)",
                memory::show(need),
                memory::show(limit)
            );
            if args.json {
                eprintln!("labctl: {}", line.trim_start());
            } else {
                writeln!(stdout, "{line}")?;
            }
            continue;
        }
        let peak = memory::PeakMemory::reset();
        let graph = labctl_sim::scale::graph(n, args.degree)
            .with_context(|| format!("generating {n} nodes"))?;
        let progress = Ticker::start(n as u64);
        let measured = labctl_sim::scale::measure(graph, &mut |p| progress.show(p));
        progress.finish();
        let mut row = measured.with_context(|| format!("simulating {n} nodes"))?;
        row.peak_bytes = peak.read();
        failed |= !row.checks_passed;
        if !args.json {
            writeln!(
                stdout,
                "{:>9} {:>10} {:>5} {:>10} {:>12} {:>14} {:>6.2} {:>7.2} s {:>9}{}",
                row.n,
                row.m,
                row.iterations,
                row.iteration_bound,
                row.messages,
                row.message_bound,
                row.messages as f64 / row.message_bound as f64,
                row.seconds,
                row.peak_bytes.map_or("?".to_string(), memory::show),
                if row.checks_passed {
                    ""
                } else {
                    "  CHECKS FAILED"
                }
            )?;
            stdout.flush()?;
        }
        rows.push(row);
    }
    if let Some(path) = &args.svg {
        let title = format!(
            "How Yo-Yo grows: random graphs of average degree {}, async delivery",
            args.degree
        );
        std::fs::write(path, labctl_classroom::growth::svg(&rows, &title))
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            writeln!(stdout, "\nwrote {}", path.display())?;
        }
    }
    if args.json {
        let value = serde_json::json!({ "degree": args.degree, "seed": labctl_sim::scale::SEED, "rows": rows });
        serde_json::to_writer(&mut stdout, &value)?;
        writeln!(stdout)?;
    } else if !rows.is_empty() {
        writeln!(
            stdout,
            "\nratio = messages / bound. Yo-Yo's messages include its setup (2m); SHOUT+ adds exactly 2m more."
        )?;
    }
    Ok(if failed {
        Outcome::ChecksFailed
    } else {
        Outcome::Done
    })
}
