//! `labctl fault …`: break a running lab on purpose (SPEC §7). Parses the verb into the one
//! fault object, has [`crate::fault::apply`] carry it out, and says what was done.

use std::io::Write;

use anyhow::{bail, Context, Result};
use labctl_core::NodeId;
use labctl_fault::{Fault, NodeAction};

use crate::cli::{FaultAction, FaultArgs};
use crate::fault::Applied;
use crate::lab::resolve;
use crate::Outcome;

pub fn run(args: &FaultArgs) -> Result<Outcome> {
    let fault = fault_of(&args.action)?;
    let lab = resolve(args.lab.as_deref())?;
    if !lab.exists() {
        return Err(lab.not_found());
    }
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let applied = tokio.block_on(crate::fault::apply(&lab, fault))?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut stdout, &crate::fault::as_json(&lab.name, &applied))?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{}", said(&applied))?;
    }
    Ok(Outcome::Done)
}

/// The fault object a verb means.
fn fault_of(action: &FaultAction) -> Result<Fault> {
    Ok(match action {
        FaultAction::Kill { node } => Fault::Kill { node: *node },
        FaultAction::Pause { node } => Fault::Pause { node: *node },
        FaultAction::Resume { node } => Fault::Resume { node: *node },
        FaultAction::Restart { node } => Fault::Restart { node: *node },
        FaultAction::Cut { a, b } => Fault::Cut { a: *a, b: *b },
        FaultAction::Heal { all: true, .. } => Fault::HealAll,
        FaultAction::Heal {
            a: Some(a),
            b: Some(b),
            ..
        } => Fault::Heal { a: *a, b: *b },
        FaultAction::Heal { .. } => bail!("heal takes two nodes (`heal A B`) or --all"),
        FaultAction::Partition { groups } => Fault::Partition {
            groups: groups.iter().map(|g| group(g)).collect::<Result<_>>()?,
        },
        FaultAction::Delay { a, b, ms } => Fault::Delay {
            a: *a,
            b: *b,
            ms: *ms,
        },
        FaultAction::Loss { a, b, percent } => Fault::Loss {
            a: *a,
            b: *b,
            percent: *percent,
        },
    })
}

/// One partition group: `1,2,3`.
fn group(text: &str) -> Result<Vec<NodeId>> {
    text.split(',')
        .map(|id| match id.trim().parse::<NodeId>() {
            Ok(id) if id > 0 => Ok(id),
            _ => bail!(
                "partition group {text:?}: {id:?} is not a node id; write groups as \
                 comma-separated ids, e.g. `partition 1,2 3,4,5,6`"
            ),
        })
        .collect()
}

/// What was done, in a line or two.
fn said(applied: &Applied) -> String {
    let leader = if applied.named_leader {
        " (the leader)"
    } else {
        ""
    };
    let nodes: Vec<String> = applied
        .actions
        .iter()
        .map(|(id, action)| match action {
            NodeAction::Kill => format!("node {id}{leader} killed"),
            NodeAction::Pause => format!("node {id}{leader} paused"),
            NodeAction::Resume => format!("node {id}{leader} resumed"),
            NodeAction::Restart => format!("node {id}{leader} restarted"),
        })
        .collect();
    let links = |links: &[(NodeId, NodeId)]| {
        links
            .iter()
            .map(|(a, b)| format!("{a}–{b}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = nodes;
    match &applied.fault {
        Fault::Partition { .. } => parts.push(format!(
            "{}: {} cut ({})",
            applied.fault,
            crate::render::plural(applied.cut.len(), "link"),
            links(&applied.cut)
        )),
        Fault::Cut { .. } => parts.push(format!("link {} cut", links(&applied.cut))),
        Fault::Delay { a, b, ms } => parts.push(format!("link {a}–{b} delayed by {ms} ms")),
        Fault::Loss { a, b, percent } => parts.push(format!(
            "link {a}–{b} loses {percent} % of its frames (each resent after 200 ms, doubling)"
        )),
        Fault::Heal { a, b } => parts.push(format!("link {a}–{b} healed")),
        Fault::HealAll if !applied.healed.is_empty() => parts.push(format!(
            "{} {} healed",
            if applied.healed.len() == 1 {
                "link"
            } else {
                "links"
            },
            links(&applied.healed)
        )),
        _ => {}
    }
    if parts.is_empty() {
        parts.push(match applied.fault {
            Fault::HealAll => "no fault was in force; nothing to heal".into(),
            _ => format!("{}: done", applied.fault),
        });
    }
    let remaining = applied.in_force.faults.len();
    format!(
        "{}\n{} fault(s) in force; `labctl status` shows the lab now",
        parts.join("; "),
        remaining
    )
}
