//! Timing the dashboard (SPEC §9; goal 300 ms), for `labctl bench dashboard`: from a state change
//! in a node to the dashboard's event. The dashboard runs in this process, exactly as `labctl
//! dashboard` serves it; its events are read over HTTP as a browser reads them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labctl_fault::{Fault, Target};
use serde_json::Value;

use crate::cli::BenchDashboardArgs;
use crate::fault::now_ms;
use crate::lab::LabDir;

/// What the runs measured.
pub struct Figures {
    /// Each change (`failover`, `rejoin`) with its delay in milliseconds, in the order measured.
    pub changes: Vec<(&'static str, u64)>,
    /// The error that stopped the runs, if one did.
    pub failed: Option<String>,
}

/// A server-sent event stream, read one `report` event at a time.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(url: &str) -> Result<Events> {
        let response = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .with_context(|| format!("opening {url}"))?
            .error_for_status()?;
        Ok(Events {
            response,
            buffer: String::new(),
        })
    }

    /// The next report that satisfies `want`, and when it arrived (Unix ms); an error after
    /// `timeout`.
    async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Result<(Value, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.strip_prefix("event: report\ndata: ") {
                    let report: Value = serde_json::from_str(data.trim_end())
                        .context("the dashboard sent a report that is not JSON")?;
                    if want(&report) {
                        return Ok((report, now_ms()));
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .map_err(|_| anyhow::anyhow!("{what}: not seen within {timeout:?}"))??
                .context("the dashboard closed its event stream")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// The lab whole: converged, one component, every node running.
fn whole(report: &Value) -> bool {
    report["converged"] == true
        && report["components"]
            .as_array()
            .is_some_and(|c| c.len() == 1)
        && report["addresses"]
            .as_object()
            .is_some_and(|a| a.values().all(|n| n["state"] == "running"))
}

/// Run `args.runs` kill-and-restart runs on `lab`, `args.rest` seconds apart; `on_run` hears each
/// finished run's number (from 0) and its two figures.
pub async fn measure(
    lab: &LabDir,
    args: &BenchDashboardArgs,
    mut on_run: impl FnMut(u32, u64, u64),
) -> Result<Figures> {
    let timeout = Duration::from_secs(args.timeout);
    // Every `roles` event of every node, on the nodes' clock (Unix ms).
    let roles: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let seen = roles.clone();
    let (address, served) = crate::dashboard::serve(
        lab.clone(),
        0,
        move |event| {
            if event.json.contains(r#""event":"roles""#) {
                seen.lock().expect("not poisoned").push(event.unix_ms);
            }
        },
        async {
            let _ = stopped.await;
        },
    )
    .await?;
    let mut events = Events::open(&format!("http://{address}/api/events")).await?;
    let mut figures: Vec<(&'static str, u64)> = Vec::new();
    let mut failed = None;
    // The last node's roles in the change at `since`, to the event that showed it.
    let delay = |since: u64, arrived: u64| -> Option<u64> {
        let roles = roles.lock().expect("not poisoned");
        let last = roles
            .iter()
            .copied()
            .filter(|&t| t >= since && t <= arrived)
            .max()?;
        Some(arrived - last)
    };
    for run in 0..args.runs {
        if run > 0 {
            tokio::time::sleep(Duration::from_secs(args.rest)).await;
        }
        let result: Result<()> = async {
            let (report, _) = events.until(timeout, "the lab whole", whole).await?;
            let writer = report["leader"]
                .as_u64()
                .context("a whole lab has a writer")?;
            let killed = now_ms();
            crate::fault::apply(
                lab,
                Fault::Kill {
                    node: Target::Id(writer),
                },
            )
            .await?;
            let (_, arrived) = events
                .until(timeout, "a new writer", |r| {
                    r["converged"] == true && r["leader"].as_u64().is_some_and(|l| l != writer)
                })
                .await?;
            let failover = delay(killed, arrived).context("no node took roles")?;
            figures.push(("failover", failover));
            let restarted = now_ms();
            crate::fault::apply(
                lab,
                Fault::Restart {
                    node: Target::Id(writer),
                },
            )
            .await?;
            let (_, arrived) = events.until(timeout, "the lab whole again", whole).await?;
            let rejoin = delay(restarted, arrived).context("no node took roles")?;
            figures.push(("rejoin", rejoin));
            on_run(run, failover, rejoin);
            Ok(())
        }
        .await;
        if let Err(e) = result {
            failed = Some(format!("{e:#}"));
            break;
        }
    }
    drop(events);
    let _ = stop.send(());
    let _ = served.await;
    Ok(Figures {
        changes: figures,
        failed,
    })
}
