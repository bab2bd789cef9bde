//! `labctl shell LAB NODE [-- COMMAND…]`: a shell in one node, with the node's environment. The
//! runtime says how (`docker exec` into the container, or a local shell in the node's folder);
//! labctl then becomes that command (`exec`), so the terminal, signals and the exit code are the
//! shell's own.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

use anyhow::{Context, Result};
use labctl_core::NodeId;

use crate::cli::ShellArgs;
use crate::lab::{LabDir, Process};
use crate::runtime::{self, Shell};
use crate::Outcome;

/// Run `labctl shell`: returns only if the shell could not be started.
pub fn run(args: &ShellArgs) -> Result<Outcome> {
    let lab = LabDir::new(&args.name)?;
    let record = lab.load()?;
    let process = record.nodes.get(&args.node).with_context(|| {
        format!(
            "lab {} has no node {}; its nodes are {}",
            lab.name,
            args.node,
            record
                .nodes
                .keys()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let shell = Shell {
        env: node_env(&lab.name, args.node, process),
        command: args.command.clone(),
        root: args.root,
        tty: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    };
    let mut command = runtime::for_record(&record)?.shell(&lab, &record, args.node, &shell)?;
    // Only returns on failure.
    let error = command.exec();
    let program = command.get_program().to_string_lossy().into_owned();
    Err(
        if error.kind() == std::io::ErrorKind::NotFound && program == "docker" {
            anyhow::anyhow!(
                "labctl shell runs `docker exec` for a Docker lab, and no docker CLI is on PATH; \
             install it (Debian: docker.io or docker-ce-cli)"
            )
        } else {
            anyhow::Error::new(error).context(format!("running {program} for node {}", args.node))
        },
    )
}

/// The variables a node's shell gets: the lab, the node's id and its addresses as the record
/// holds them (for a Docker lab, addresses that work from inside its container too).
pub fn node_env(lab: &str, id: NodeId, process: &Process) -> Vec<(String, String)> {
    let mut env = vec![
        ("LABCTL_LAB".to_string(), lab.to_string()),
        ("LABCTL_NODE".to_string(), id.to_string()),
    ];
    if let Some(control) = &process.control {
        env.push(("LABCTL_CONTROL".to_string(), control.clone()));
    }
    if !process.grpc.is_empty() {
        env.push(("LABCTL_ADMIN".to_string(), process.grpc.clone()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_shell_gets_the_lab_the_node_and_its_addresses() {
        let process = Process {
            pid: 42,
            grpc: "127.0.0.1:40001".into(),
            http: None,
            control: Some("127.0.0.1:40000".into()),
            container: None,
        };
        assert_eq!(
            node_env("ring6", 3, &process),
            [
                ("LABCTL_LAB".to_string(), "ring6".to_string()),
                ("LABCTL_NODE".to_string(), "3".to_string()),
                ("LABCTL_CONTROL".to_string(), "127.0.0.1:40000".to_string()),
                ("LABCTL_ADMIN".to_string(), "127.0.0.1:40001".to_string()),
            ]
        );
        // A node still starting has no addresses yet: only what is known.
        let starting = Process {
            pid: 0,
            grpc: String::new(),
            http: None,
            control: None,
            container: Some("ring6-3".into()),
        };
        assert_eq!(node_env("ring6", 3, &starting).len(), 2);
    }
}
