//! A chaos run on a live lab (SPEC §8): start the lab (or take a running one), set up the
//! clients, run the workload while the nemesis applies the scenario's faults, heal everything,
//! wait for convergence and for every node to hold the writer's log, read the group at every
//! input node, then check the history and write the run folder.
//!
//! What is judged is the pure `labctl-chaos` crate's; this module only carries the run out and
//! records it.

mod nemesis;
mod observe;
mod recorder;
mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use labctl_chaos::check::Options;
use labctl_chaos::history::{Op, Process, Type, Value, F};
use labctl_chaos::report::Report;
use labctl_chaos::scenario::{LabSource, Scenario};
use labctl_core::plane::Durability;
use labctl_core::{NodeId, Role};
use labctl_topology::Topology;
use reqwest::{StatusCode, Url};
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::watch;

use crate::lab::LabDir;
use crate::live::{LiveReport, Progress};
use crate::poll::poll_until;
use crate::runtime::{self, NodeSettings};
use recorder::Recorder;

/// How a run is asked for.
pub struct RunOptions {
    /// `--runtime`, over the scenario's `runtime`.
    pub runtime: Option<crate::cli::RuntimeArg>,
    /// `--keep`: leave the lab running.
    pub keep: bool,
    /// Draw progress on the terminal.
    pub progress: bool,
}

/// How long a lab the run starts may take to converge.
const UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Run `scenario` (loaded from `path`): the report, whatever the verdict. Errors before the lab
/// is up are errors (nothing started, or what started is removed); after, they make the run
/// unknown.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report> {
    let started = Instant::now();
    let stamp = utc_stamp(OffsetDateTime::now_utc()).context("naming the run's folder")?;
    let (lab, created) = match &scenario.lab {
        LabSource::Running(name) => {
            let lab = LabDir::new(name)?;
            if !lab.exists() {
                bail!(
                    "lab {name} (the scenario's `lab`) is not running: `labctl ls` lists the labs"
                );
            }
            let record = lab.load()?;
            let topology = Topology::from_toml(
                &record.topology,
                &record.topology_file.display().to_string(),
            )?;
            scenario
                .check_against(&topology, &scenario.origin)
                .map_err(|e| anyhow!(e))?;
            (lab, false)
        }
        LabSource::Topology(file) => {
            let lab = LabDir::new(&scenario.name)?;
            if lab.exists() {
                bail!(
                    "a lab named {0} exists already; `labctl down {0}` removes it (a scenario starts \
                     a lab named after itself)",
                    scenario.name
                );
            }
            let topology = Topology::from_path(file)?;
            let choice = options.runtime.or(match scenario.runtime.as_deref() {
                Some("docker") => Some(crate::cli::RuntimeArg::Docker),
                Some("process") => Some(crate::cli::RuntimeArg::Process),
                _ => None,
            });
            let runtime = runtime::select(choice.unwrap_or(crate::cli::RuntimeArg::Auto)).await?;
            runtime.build(options.progress).await?;
            let settings = NodeSettings {
                timing: topology.timing,
                durability: scenario
                    .durability
                    .or(topology.durability)
                    .unwrap_or_default(),
            };
            let progress = Progress::new(topology.node_count() as u64, options.progress);
            let up = crate::lifecycle::start(
                &lab,
                &topology,
                file,
                runtime.as_ref(),
                &settings,
                UP_TIMEOUT,
                &progress,
            )
            .await;
            progress.finish();
            match up {
                Ok(report) if report.report.converged && report.serving() => {}
                Ok(_) => {
                    let _ = crate::lifecycle::remove(&lab).await;
                    bail!(
                        "lab {} did not converge within {} s, so the run could not start",
                        lab.name,
                        UP_TIMEOUT.as_secs()
                    );
                }
                Err(e) => {
                    let _ = crate::lifecycle::remove(&lab).await;
                    return Err(e);
                }
            }
            (lab, true)
        }
    };
    // Kept with the lab when it stays; else where removing the lab leaves it.
    let keep_lab = options.keep || !created;
    let folder = run_folder(
        if keep_lab {
            lab.path.join("runs")
        } else {
            crate::lab::home()?.join("runs")
        },
        &stamp,
    )?;
    std::fs::write(folder.join("scenario.toml"), &scenario.text)
        .with_context(|| format!("writing {}", folder.display()))?;

    let outcome = run_on(&lab, scenario, &folder, &stamp, options.progress).await;
    let (ops, reason, nodes) = match outcome {
        Ok(done) => done,
        Err((ops, reason, nodes)) => (ops, Some(reason), nodes),
    };
    let mut report = judge(scenario, &lab.name, &ops, reason, &folder);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    write_outputs(&folder, &report, &ops, &nodes)?;
    if !keep_lab {
        if let Err(e) = crate::lifecycle::remove(&lab).await {
            eprintln!("labctl: removing lab {} after the run: {e:#}", lab.name);
        }
    }
    Ok(report)
}

/// What a run recorded (its history, why it could not be judged if so, the lab's nodes).
type Recorded = (Vec<Op>, Option<String>, Vec<NodeId>);

/// The run proper, on a lab that is up: the history, or the history so far and why the run
/// could not be judged.
async fn run_on(
    lab: &LabDir,
    scenario: &Scenario,
    folder: &Path,
    stamp: &str,
    progress: bool,
) -> std::result::Result<Recorded, (Vec<Op>, String, Vec<NodeId>)> {
    let record = lab
        .load()
        .map_err(|e| (Vec::new(), format!("{e:#}"), Vec::new()))?;
    let nodes: Vec<NodeId> = record.nodes.keys().copied().collect();
    let fail = |e: anyhow::Error| (Vec::new(), format!("{e:#}"), nodes.clone());
    let Some(nameserver) = record.nameserver.as_ref().and_then(|p| p.http.clone()) else {
        return Err(fail(anyhow!("lab {} has no nameserver", lab.name)));
    };
    let base = Url::parse(&format!("http://{nameserver}/")).map_err(|e| fail(e.into()))?;
    let seed = scenario.random.as_ref().map_or(0, |r| r.seed) ^ crate::lab::now_unix();
    let clients = workload::setup(&base, scenario.workload.clients, stamp, seed)
        .await
        .map_err(fail)?;
    let recorder = Arc::new(Recorder::create(&folder.join("history.jsonl")).map_err(fail)?);
    let clients = Arc::new(clients);
    let (stop_tx, stop) = watch::channel(false);
    let mut observers =
        observe::start(&record, Arc::clone(&recorder), stop.clone()).map_err(fail)?;
    let mut workers = tokio::task::JoinSet::new();
    for session in clients.sessions.clone() {
        let (clients, recorder, stop) = (Arc::clone(&clients), Arc::clone(&recorder), stop.clone());
        let (workload, run) = (scenario.workload, stamp.to_string());
        workers.spawn(async move {
            workload::run(session, &clients, workload, run, seed, recorder, stop).await
        });
    }
    let bar = progress.then(|| progress_bar(scenario.duration_ms));
    let ticker = bar.clone().map(|bar| {
        let recorder = Arc::clone(&recorder);
        tokio::spawn(async move {
            loop {
                let c = recorder.counts();
                bar.set_position(recorder.now_ms().min(bar.length().unwrap_or(0)));
                bar.set_message(format!(
                    "{} ok, {} failed, {} unknown",
                    c.ok, c.fail, c.info
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });

    // The faults, then the end of the workload and the final heal.
    let faults = nemesis::run(lab, scenario, &nodes, &recorder).await;
    let end = recorder.start() + Duration::from_millis(scenario.duration_ms);
    tokio::time::sleep_until(end.into()).await;
    let _ = stop_tx.send(true);
    while workers.join_next().await.is_some() {}
    let healed = nemesis::heal_all(lab, &recorder).await;
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = &bar {
        bar.set_message("healed; waiting for the lab to converge");
    }
    let mut reason = faults.err().or(healed.err());

    // Convergence, then every node holding the writer's log, then the final reads.
    match converge(
        lab,
        Duration::from_millis(scenario.check.converge_within_ms),
    )
    .await
    {
        Ok(report) => {
            recorder.record(Process::Lab, Type::Ok, F::Converge, Value::None, None);
            caught_up(
                lab,
                Duration::from_millis(scenario.check.converge_within_ms),
            )
            .await;
            let report = crate::lifecycle::report(lab).await.unwrap_or(report);
            final_reads(&report, &clients, &recorder).await;
        }
        Err(why) => {
            recorder.record(
                Process::Lab,
                Type::Fail,
                F::Converge,
                Value::Text(why),
                None,
            );
        }
    }
    let _ = stop_tx.send(true);
    while observers.join_next().await.is_some() {}
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let (ops, error) = recorder.finish();
    reason = reason.or(error);
    match reason {
        Some(reason) => Err((ops, reason, nodes)),
        None => Ok((ops, None, nodes)),
    }
}

/// The lab whole, converged and settled, every input node serving, within `within`; else why
/// not.
async fn converge(lab: &LabDir, within: Duration) -> std::result::Result<LiveReport, String> {
    let last = std::cell::RefCell::new(String::new());
    let what = "the lab converged after the last heal";
    let converged = poll_until(what, Duration::from_millis(100), within, || async {
        *last.borrow_mut() = match crate::lifecycle::report(lab).await {
            Ok(report) => {
                let running = report.addresses.values().all(|a| a.state == "running");
                let settled =
                    report.report.components.len() == 1 && report.report.components[0].settled;
                if report.report.converged
                    && running
                    && settled
                    && report.serving()
                    && report.faults.is_empty()
                {
                    return Ok(Some(report));
                }
                format!(
                    "converged {}, every node running {running}, settled {settled}, serving {}",
                    report.report.converged,
                    report.serving()
                )
            }
            Err(e) => format!("{e:#}"),
        };
        Ok(None)
    })
    .await;
    converged.map_err(|error| format!("{error} ({})", last.borrow()))
}

/// Wait (at most `within`) until every node that holds the log has applied the same position,
/// twice in a row: every node with `majority`; the writer and its persistence replicas with
/// `replicas` and `writer`, where the log flows to them only.
async fn caught_up(lab: &LabDir, within: Duration) {
    let everyone = lab
        .load()
        .map(|r| r.durability == Durability::Majority)
        .unwrap_or(true);
    let previous = std::cell::Cell::new(None);
    let what = "the nodes holding the log at one position";
    // Not caught up in time: the final reads say what each node has.
    let _ = poll_until(what, Duration::from_millis(100), within, || async {
        let Ok(report) = crate::lifecycle::report(lab).await else {
            return Ok(None);
        };
        let holds_log = |id: &String| {
            everyone
                || report.report.roles.get(id).is_some_and(|roles| {
                    roles.contains(&Role::Writer) || roles.contains(&Role::Persistence)
                })
        };
        let applied: std::collections::BTreeSet<u64> = report
            .addresses
            .iter()
            .filter(|(id, _)| holds_log(id))
            .map(|(_, a)| a.applied)
            .collect();
        // Twice in a row at the same position.
        let now = (applied.len() == 1)
            .then(|| applied.into_iter().next())
            .flatten();
        let before = previous.replace(now);
        Ok((now.is_some() && before == now).then_some(()))
    })
    .await;
}

/// Read the group at every input node, as the reader (a member that never wrote). When its
/// session cannot read there (a lab that lost the data its session saw answers 503; one that
/// lost the reader, 401), the read is tried again in a fresh session; a group the node no longer
/// has (404) holds no message there: an empty final read.
async fn final_reads(report: &LiveReport, clients: &workload::Clients, recorder: &Recorder) {
    for (id, address) in &report.addresses {
        let (Ok(id), Some(input)) = (id.parse::<NodeId>(), address.http.as_ref()) else {
            continue;
        };
        recorder.record(
            Process::Lab,
            Type::Invoke,
            F::FinalRead,
            Value::None,
            Some(id),
        );
        let (kind, value) = final_read(input, clients).await;
        recorder.record(Process::Lab, kind, F::FinalRead, value, Some(id));
    }
}

/// One input node's final read.
async fn final_read(input: &str, clients: &workload::Clients) -> (Type, Value) {
    let Ok(base) = Url::parse(&format!("http://{input}/")) else {
        return (
            Type::Fail,
            Value::Text(format!("{input:?} is not host:port")),
        );
    };
    let url = base
        .join(&format!("groups/{}/chat", clients.group))
        .expect("a valid path");
    let read = |http: reqwest::Client| {
        let url = url.clone();
        async move {
            match http
                .get(url.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(a) if a.status() == StatusCode::OK => {
                    match a
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .as_ref()
                        .and_then(workload::texts)
                    {
                        Some(texts) => Ok(texts),
                        None => Err((StatusCode::OK, "an unreadable answer".to_string())),
                    }
                }
                // The group is gone from this node: none of its messages are here.
                Ok(a) if a.status() == StatusCode::NOT_FOUND => Ok(Vec::new()),
                Ok(a) => Err((a.status(), format!("GET {url} answered {}", a.status()))),
                Err(e) => Err((StatusCode::BAD_GATEWAY, format!("GET {url}: {e}"))),
            }
        }
    };
    let first = match read(clients.reader.clone()).await {
        Ok(texts) => return (Type::Ok, Value::Texts(texts)),
        Err((status, why)) => (status, why),
    };
    if !matches!(
        first.0,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::UNAUTHORIZED
    ) {
        return (Type::Fail, Value::Text(first.1));
    }
    let seed = crate::lab::now_unix();
    match workload::fresh_reader(&base, &clients.reader_tag, seed).await {
        Ok(http) => match read(http).await {
            Ok(texts) => (Type::Ok, Value::Texts(texts)),
            Err((_, why)) => (
                Type::Fail,
                Value::Text(format!("{}; then, in a fresh session: {why}", first.1)),
            ),
        },
        Err(e) => (Type::Fail, Value::Text(format!("{}; then: {e:#}", first.1))),
    }
}

/// The report of a history (the pure crate's [`Report::judge`]), with the scenario's checks and
/// the run's folder.
pub fn judge(
    scenario: &Scenario,
    lab: &str,
    ops: &[Op],
    reason: Option<String>,
    folder: &Path,
) -> Report {
    let options = Options {
        failover_within_ms: scenario.check.failover_within_ms,
    };
    Report {
        run: folder.display().to_string(),
        ..Report::judge(&scenario.name, lab, ops, &options, reason)
    }
}

/// `report.json` and `timeline.svg` beside the history.
pub fn write_outputs(folder: &Path, report: &Report, ops: &[Op], nodes: &[NodeId]) -> Result<()> {
    let write = |name: &str, bytes: &[u8]| {
        let path = folder.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("report.json", &serde_json::to_vec_pretty(report)?)?;
    write(
        "timeline.svg",
        labctl_chaos::timeline::svg(ops, nodes, &report.anomalies).as_bytes(),
    )?;
    Ok(())
}

/// A new folder `<parent>/<stamp>` (or `<stamp>-2`, … when a run of the same second has it).
fn run_folder(parent: PathBuf, stamp: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    for n in 1..100 {
        let folder = if n == 1 {
            parent.join(stamp)
        } else {
            parent.join(format!("{stamp}-{n}"))
        };
        match std::fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", folder.display())),
        }
    }
    bail!("{} holds 99 runs of second {stamp}", parent.display())
}

/// `20261203T181500Z` for an instant (in UTC).
pub fn utc_stamp(instant: OffsetDateTime) -> Result<String, time::error::Format> {
    instant
        .to_offset(UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
}

fn progress_bar(duration_ms: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(duration_ms);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:30}] {elapsed:>4} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("chaos");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc() {
        let stamp = |unix| utc_stamp(OffsetDateTime::from_unix_timestamp(unix).unwrap()).unwrap();
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_796_320_215), "20261203T175015Z");
        assert_eq!(stamp(951_782_400), "20000229T000000Z");
        let offset = UtcOffset::from_hms(2, 0, 0).unwrap();
        let elsewhere = OffsetDateTime::from_unix_timestamp(0)
            .unwrap()
            .to_offset(offset);
        assert_eq!(utc_stamp(elsewhere).unwrap(), "19700101T000000Z");
    }
}
