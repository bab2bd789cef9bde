//! Timing failovers on a running lab, for `labctl bench failover`: kill the writer, watch every
//! node's admin API until a neighbour suspects it and until the survivors have converged in a new
//! epoch, while a chat user writes through the nameserver until a write is acknowledged again
//! (by the new writer, once its view change is done: SPEC §6's timing); then restart the old
//! writer and wait for the lab to be whole again.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use labctl_core::NodeId;
use labctl_fault::{Fault, Target};
use reqwest::{StatusCode, Url};
use serde::Serialize;

use crate::lab::LabDir;
use crate::live::Nodes;
use crate::poll::{poll_until, TimedOut};

/// How often the nodes are asked while a failover runs.
const POLL: Duration = Duration::from_millis(10);

/// One failover's figures, in milliseconds from the SIGKILL.
#[derive(Clone, Debug, Serialize)]
pub struct Failover {
    /// The writer killed.
    pub writer: NodeId,
    /// Until a neighbour first reported it suspected.
    pub suspected_ms: u64,
    /// Until the survivors had converged in a new epoch under a new writer.
    pub converged_ms: u64,
    /// Until a write sent after the kill was acknowledged (201): the new writer has taken over.
    pub written_ms: u64,
    /// From the restart until the whole lab had converged again.
    pub rejoined_ms: u64,
}

/// Wait until the lab is whole (no fault in force, every node running) and settled; returns its
/// quorum root and epoch.
async fn whole(lab: &LabDir, timeout: Duration) -> Result<(NodeId, u64)> {
    let what = format!("lab {} whole and converged", lab.name);
    let waited = poll_until(&what, Duration::from_millis(50), timeout, || async {
        let report = crate::lifecycle::report(lab).await?;
        let running = report.addresses.values().all(|a| a.state == "running");
        if let (true, true, true, Some(leader), Some(epoch)) = (
            report.report.converged,
            running,
            report.faults.is_empty(),
            report.report.leader,
            report.report.epoch,
        ) {
            if report.report.components.len() == 1 && report.report.components[0].settled {
                return Ok(Some((leader, epoch)));
            }
        }
        Ok(None)
    })
    .await;
    match waited {
        Err(error) if error.is::<TimedOut>() => {
            bail!("{error}: `labctl status {}` shows why", lab.name)
        }
        waited => waited,
    }
}

/// A logged-in chat user whose messages to itself, sent through the nameserver, find out when
/// writes are acknowledged again.
#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
    /// `http://NAMESERVER/users/NAME/TAG/chat`.
    chat: Url,
}

/// How often the prober writes again after a write that was not acknowledged.
const PROBE_GAP: Duration = Duration::from_millis(20);
/// How long one probing write may take (a write held across the epoch change is answered 503 or
/// 504 when the input node's epoch changes).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl Prober {
    /// Registers and logs in user `failover` (a free tag) through the lab's nameserver.
    pub async fn new(lab: &LabDir) -> Result<Prober> {
        let record = lab.load()?;
        let Some(nameserver) = record.nameserver.as_ref().and_then(|p| p.http.clone()) else {
            bail!(
                "lab {} has no nameserver (its `labctl up` did not get that far); `labctl down \
                 {}` and start it again",
                lab.name,
                lab.name
            );
        };
        let base = Url::parse(&format!("http://{nameserver}/"))
            .with_context(|| format!("the nameserver's address {nameserver:?} is not host:port"))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (http, tag) = crate::chat_client::user("failover", &base, seed)
            .await
            .context("setting up the user whose writes time the failover")?;
        let chat = base
            .join(&format!("users/failover/{tag}/chat"))
            .expect("a valid path");
        Ok(Prober { http, chat })
    }

    /// Writes until a write is acknowledged (201); the milliseconds from `since`. Each attempt
    /// is a new message with its own `Idempotency-Key`.
    async fn first_write(&self, since: Instant, timeout: Duration) -> Result<u64> {
        let attempts = AtomicU64::new(0);
        let what = "a write acknowledged after the kill";
        poll_until(what, PROBE_GAP, timeout, || async {
            let n = attempts.fetch_add(1, Ordering::Relaxed);
            let key = format!("failover-{}-{n}", since.elapsed().as_nanos());
            let answer = self
                .http
                .post(self.chat.clone())
                .timeout(PROBE_TIMEOUT)
                .header("Idempotency-Key", &key)
                .json(&serde_json::json!({ "content": format!("probe {n}") }))
                .send()
                .await;
            match answer.map(|a| a.status()) {
                Ok(StatusCode::CREATED) => Ok(Some(since.elapsed().as_millis() as u64)),
                // Refused for good (a lost session, a write the chat does not take): waiting
                // longer would only hide it.
                Ok(status)
                    if status.is_client_error()
                        && status != StatusCode::REQUEST_TIMEOUT
                        && status != StatusCode::TOO_MANY_REQUESTS =>
                {
                    bail!("the probing write was refused: {status}")
                }
                // 503, 504, a broken connection: the failover is under way.
                _ => Ok(None),
            }
        })
        .await
    }
}

/// Time one failover of the lab's writer, `prober` writing through it.
pub async fn once(lab: &LabDir, prober: &Prober, timeout: Duration) -> Result<Failover> {
    let (writer, epoch) = whole(lab, timeout).await?;
    let record = lab.load()?;
    // The survivors only: the dead writer would cost every poll a connect timeout in Docker.
    let nodes = Nodes::new(&record)?.without(writer);
    let killed = Instant::now();
    crate::fault::apply(
        lab,
        Fault::Kill {
            node: Target::Id(writer),
        },
    )
    .await?;
    // Its own task, so that its 201 is timed when it comes, not when the polling below yields.
    let written = tokio::spawn({
        let prober = prober.clone();
        async move { prober.first_write(killed, timeout).await }
    });
    let suspected = Cell::new(None);
    let what = format!("the survivors of node {writer}'s failure converged");
    let converged = poll_until(&what, POLL, timeout, || async {
        let answers = nodes.statuses().await;
        let ms = killed.elapsed().as_millis() as u64;
        let statuses: Vec<_> = answers.values().filter_map(|a| a.as_ref().ok()).collect();
        if suspected.get().is_none() && statuses.iter().any(|s| s.suspected.contains(&writer)) {
            suspected.set(Some(ms));
        }
        // Converged: every survivor in one newer epoch, under one new root, with roles.
        let survivors: Vec<_> = statuses.iter().filter(|s| s.id != writer).collect();
        let epochs: std::collections::BTreeSet<u64> = survivors.iter().map(|s| s.epoch).collect();
        let leaders: std::collections::BTreeSet<Option<NodeId>> =
            survivors.iter().map(|s| s.leader).collect();
        let done = survivors.len() + 1 == record.nodes.len()
            && statuses.len() == survivors.len()
            && epochs.len() == 1
            && epochs.iter().all(|&e| e > epoch)
            && leaders.len() == 1
            && leaders.iter().all(|l| l.is_some() && *l != Some(writer))
            && survivors.iter().all(|s| !s.roles.is_empty());
        if done {
            // Confirm with the full report's checks (spanning tree, roles by SPEC §3.4).
            let report = crate::lifecycle::report(lab).await?;
            if report.report.converged {
                return Ok(Some(ms));
            }
        }
        Ok(None)
    })
    .await?;
    let suspected = suspected.get();
    let written_ms = written.await.context("the probing writes' task")??;
    let restarted = Instant::now();
    crate::fault::apply(
        lab,
        Fault::Restart {
            node: Target::Id(writer),
        },
    )
    .await?;
    whole(lab, timeout).await?;
    Ok(Failover {
        writer,
        suspected_ms: suspected.unwrap_or(converged),
        converged_ms: converged,
        written_ms,
        rejoined_ms: restarted.elapsed().as_millis() as u64,
    })
}

/// Time `runs` failovers of `lab`'s writer, `rest` apart, each given `timeout`; `progress` hears
/// of each run. The figures of the runs that finished, and the error that stopped the series, if
/// one did.
///
/// # Errors
/// Only if the prober's user cannot be set up (no run started).
pub async fn series(
    lab: &LabDir,
    runs: u32,
    rest: Duration,
    timeout: Duration,
    progress: &ProgressBar,
) -> Result<(Vec<Failover>, Option<String>)> {
    progress.set_message("registering the user whose writes time the failover");
    let prober = Prober::new(lab).await?;
    let mut finished = Vec::new();
    for run in 0..runs {
        if run > 0 {
            tokio::time::sleep(rest).await;
        }
        match once(lab, &prober, timeout).await {
            Ok(run) => {
                progress.set_message(format!(
                    "last: converged in {} ms, a write acknowledged in {} ms",
                    run.converged_ms, run.written_ms
                ));
                finished.push(run);
                progress.inc(1);
            }
            Err(e) => return Ok((finished, Some(format!("{e:#}")))),
        }
    }
    Ok((finished, None))
}

/// The median, 90th percentile and worst of some figures.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Summary {
    /// The median (the lower of the two middle figures for an even count).
    pub median: u64,
    /// The 90th percentile (nearest rank).
    pub p90: u64,
    /// The largest.
    pub worst: u64,
}

/// Summarise `figures` (not empty).
pub fn summary(figures: &[u64]) -> Summary {
    let mut sorted = figures.to_vec();
    sorted.sort_unstable();
    let rank =
        |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Summary {
        median: rank(0.5),
        p90: rank(0.9),
        worst: *sorted.last().expect("figures"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_take_nearest_ranks() {
        let s = summary(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!((s.median, s.p90, s.worst), (5, 9, 10));
        let one = summary(&[7]);
        assert_eq!((one.median, one.p90, one.worst), (7, 7, 7));
    }
}
