//! Serving a running lab's dashboard (SPEC §9), for `labctl dashboard` and `labctl bench
//! dashboard`. The page, the API and the epoch history are `labctl-dashboard`'s; this module gives
//! it the lab (reports as `labctl status --json`, faults as `labctl fault`) and wakes it at every
//! trace event of any node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use labctl_dashboard::server::{self, Lab, Options, Refusal};
use labctl_fault::Fault;
use labctl_proto::node::TraceEvent;
use labctl_topology::Topology;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::fault::NotCarriedOut;
use crate::lab::LabDir;
use crate::live::Nodes;

/// Ask for a report at least this often, trace events or not (a cut link says nothing until
/// its ends suspect each other).
const POLL: Duration = Duration::from_millis(250);

/// A running lab, for the dashboard.
pub struct LiveLab {
    lab: LabDir,
}

#[async_trait::async_trait]
impl Lab for LiveLab {
    async fn report(&self) -> Result<Value, String> {
        let report = crate::lifecycle::report(&self.lab)
            .await
            .map_err(|e| format!("{e:#}"))?;
        serde_json::to_value(report).map_err(|e| e.to_string())
    }

    async fn fault(&self, fault: Fault) -> Result<Value, Refusal> {
        match crate::fault::apply(&self.lab, fault).await {
            Ok(applied) => Ok(crate::fault::as_json(&self.lab.name, &applied)),
            Err(e) if e.downcast_ref::<NotCarriedOut>().is_some() => {
                Err(Refusal::Failed(format!("{e:#}")))
            }
            Err(e) => Err(Refusal::Refused(format!("{e:#}"))),
        }
    }
}

/// Start serving `lab`'s dashboard on 127.0.0.1:`port` until `shutdown`; `seen` also sees every
/// trace event of every node. Returns where it listens and the server's task.
pub async fn serve(
    lab: LabDir,
    port: u16,
    seen: impl Fn(&TraceEvent) + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let record = lab.load()?;
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    let page = labctl_dashboard::page::page(&record.name, &topology.adjacency());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{port}; is another dashboard running? `--port 0` picks a \
                 free port"
            )
        })?;
    let address = listener.local_addr()?;
    let wake = Arc::new(Notify::new());
    let woken = wake.clone();
    Nodes::new(&record)?.follow(Arc::new(move |event: &TraceEvent| {
        woken.notify_one();
        seen(event);
    }));
    let options = Options {
        page,
        poll: POLL,
        wake,
    };
    let served = tokio::spawn(server::serve(listener, LiveLab { lab }, options, shutdown));
    Ok((address, served))
}
