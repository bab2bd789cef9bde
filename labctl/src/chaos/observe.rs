//! Watching the lab during a chaos run: every change of a node's epoch, root or roles that
//! labctl observes becomes an `epoch` line of the history, so the history alone can be checked
//! for split brain and timed (SPEC §8).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use labctl_chaos::history::{EpochView, Process, Type, Value, F};
use labctl_core::NodeId;
use labctl_proto::node::node_admin_client::NodeAdminClient;
use labctl_proto::node::StatusRequest;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use super::recorder::Recorder;
use crate::lab::Record;

/// How often each node is asked.
const POLL: Duration = Duration::from_millis(50);
/// How long one question may take (a paused node never answers; the others are asked apart).
const CALL_TIMEOUT: Duration = Duration::from_millis(400);

/// Ask every node of `record` its status until `stop`, each on its own (so a paused node does
/// not hold up the others), recording each change. Restarted nodes keep their admin address.
pub fn start(
    record: &Record,
    recorder: Arc<Recorder>,
    stop: watch::Receiver<bool>,
) -> Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    for (&id, process) in &record.nodes {
        let channel = Endpoint::from_shared(format!("http://{}", process.grpc))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        tasks.spawn(watch_node(
            id,
            NodeAdminClient::new(channel),
            Arc::clone(&recorder),
            stop.clone(),
        ));
    }
    Ok(tasks)
}

async fn watch_node(
    id: NodeId,
    mut client: NodeAdminClient<tonic::transport::Channel>,
    recorder: Arc<Recorder>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen: Option<EpochView> = None;
    loop {
        if let Ok(status) = client
            .status(StatusRequest {})
            .await
            .map(|r| r.into_inner())
        {
            let view = EpochView {
                epoch: status.epoch,
                root: status.leader,
                roles: status.roles,
            };
            if seen.as_ref() != Some(&view) {
                recorder.record(
                    Process::Lab,
                    Type::Info,
                    F::Epoch,
                    Value::Epoch(view.clone()),
                    Some(id),
                );
                seen = Some(view);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}
