//! Human-readable rendering of a report: the tree drawn as an indented tree, a roles table, the
//! algorithms' costs beside their bounds, and the invariants.

use std::collections::BTreeMap;
use std::fmt::Write;

use labctl_core::{NodeId, Report, Role};

/// Trees larger than this are summarised rather than drawn.
const DRAW_LIMIT: usize = 300;
/// Role lists longer than this are cut.
const LIST_LIMIT: usize = 24;

/// The whole report as text. `header` says how the run was made.
pub fn report(report: &Report, header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}, {}, epoch {}",
        report.lab,
        plural(report.nodes, "node"),
        plural(report.links, "link"),
        report
            .epoch
            .map_or_else(|| "none (no quorum)".to_string(), |e| e.to_string())
    );
    let _ = writeln!(out, "{header}\n");
    match report.leader {
        Some(leader) => {
            let _ = writeln!(
                out,
                "Leader: {leader}, elected by Yo-Yo in {} iteration{}",
                report.iterations,
                if report.iterations == 1 { "" } else { "s" }
            );
        }
        None => {
            let _ = writeln!(out, "Leader: none agreed on");
        }
    }
    let _ = writeln!(out, "\nSpanning tree (SHOUT+), depth {}:", report.depth);
    out.push_str(&tree(report));
    let _ = writeln!(out, "\nRoles:");
    out.push_str(&roles(report));
    // Columns as wide as the largest figure (a complete graph of thousands has 9-digit bounds).
    let w = [
        report.messages.election,
        report.bounds.election,
        report.messages.tree,
        report.bounds.tree,
    ]
    .iter()
    .map(|n| n.to_string().len())
    .max()
    .unwrap_or(0)
    .max(8);
    let _ = writeln!(out, "\nMessages          {:>w$}   bound", "measured");
    let phases = report
        .election_phases
        .iter()
        .skip(1)
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" + ");
    let setup = report.election_phases.first().copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "  Yo-Yo election  {:>w$}   ≤ {:<w$} 2m(⌈log₂ n⌉ + 2): setup {setup}{}",
        report.messages.election,
        report.bounds.election,
        if phases.is_empty() {
            String::new()
        } else {
            format!(", iterations {phases}")
        }
    );
    let _ = writeln!(
        out,
        "  Yo-Yo rounds    {:>w$}   ≤ {:<w$} iterations (⌈log₂ n⌉ + 1)",
        report.iterations, report.bounds.iterations
    );
    let _ = writeln!(
        out,
        "  SHOUT+ tree     {:>w$}   = {:<w$} exactly 2m",
        report.messages.tree, report.bounds.tree
    );
    let failed: Vec<_> = report.failed_checks().collect();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "\nChecks: all {} passed ({})",
            report.checks.len(),
            report
                .checks
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        let _ = writeln!(out, "\nChecks: {} FAILED", failed.len());
        for check in failed {
            let _ = writeln!(out, "  ✗ {}: {}", check.name, check.detail);
        }
    }
    out
}

/// The spanning tree as an indented tree, each node with its roles.
fn tree(report: &Report) -> String {
    let roots: Vec<NodeId> = report
        .tree
        .iter()
        .filter(|(_, parent)| parent.is_none())
        .map(|(id, _)| id.parse().expect("report keys are ids"))
        .collect();
    match roots.first() {
        Some(&root) => tree_under(report, root),
        None => "  (no root)\n".into(),
    }
}

/// The tree hanging from `root`, drawn as an indented tree.
fn tree_under(report: &Report, root: NodeId) -> String {
    if report.nodes > DRAW_LIMIT {
        return format!(
            "  {} nodes: too many to draw here (limit {DRAW_LIMIT}); use --json for every parent\n",
            report.nodes
        );
    }
    let mut children: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for (id, parent) in &report.tree {
        let id: NodeId = id.parse().expect("report keys are ids");
        if let Some(p) = parent {
            children.entry(*p).or_default().push(id);
        }
    }
    let mut out = String::new();
    let label = |id: NodeId| {
        let roles = report
            .roles
            .get(&id.to_string())
            .map(|r| join(r))
            .unwrap_or_default();
        format!("{id}  {roles}")
    };
    let _ = writeln!(out, "  {}", label(root));
    // Depth-first, iterative (deep trees, like a long line, must not overflow the stack).
    let mut stack: Vec<(NodeId, String, bool)> = Vec::new();
    let push_children = |stack: &mut Vec<(NodeId, String, bool)>, of: NodeId, prefix: &str| {
        let kids = children.get(&of).cloned().unwrap_or_default();
        for (i, kid) in kids.iter().enumerate().rev() {
            stack.push((*kid, prefix.to_string(), i + 1 == kids.len()));
        }
    };
    push_children(&mut stack, root, "  ");
    while let Some((id, prefix, last)) = stack.pop() {
        let _ = writeln!(
            out,
            "{prefix}{}{}",
            if last { "└── " } else { "├── " },
            label(id)
        );
        let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
        push_children(&mut stack, id, &deeper);
    }
    out
}

/// Which nodes hold each role.
fn roles(report: &Report) -> String {
    let mut by_role: BTreeMap<Role, Vec<NodeId>> = BTreeMap::new();
    for (id, roles) in &report.roles {
        for role in roles {
            by_role
                .entry(*role)
                .or_default()
                .push(id.parse().expect("report keys are ids"));
        }
    }
    let mut out = String::new();
    for role in [
        Role::Writer,
        Role::Leader,
        Role::Persistence,
        Role::Forwarder,
        Role::Input,
    ] {
        if role == Role::Leader && !by_role.contains_key(&role) {
            continue; // only shown when a minority has a root
        }
        let mut ids = by_role.remove(&role).unwrap_or_default();
        ids.sort_unstable();
        let shown: Vec<String> = ids.iter().take(LIST_LIMIT).map(|i| i.to_string()).collect();
        let more = if ids.len() > LIST_LIMIT {
            format!(" … and {} more", ids.len() - LIST_LIMIT)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {:<12} {}{more}  ({})",
            role.to_string(),
            if shown.is_empty() {
                "-".to_string()
            } else {
                shown.join(", ")
            },
            ids.len()
        );
    }
    out
}

fn join(roles: &[Role]) -> String {
    roles
        .iter()
        .map(Role::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// A live lab's report as text: the shared report, then where to reach the lab.
pub fn live(live: &crate::live::LiveReport) -> String {
    let running = live
        .addresses
        .values()
        .filter(|a| a.state == "running")
        .count();
    let header = format!(
        "{} runtime: {running} of {} nodes running · nameserver {}",
        live.report.runtime,
        live.addresses.len(),
        if live.nameserver.is_empty() {
            "-"
        } else {
            &live.nameserver
        }
    );
    let whole = live.report.components.len() <= 1
        && live.faults.is_empty()
        && live.addresses.values().all(|a| a.state == "running");
    let mut out = if whole {
        report(&live.report, &header)
    } else {
        broken(live, &header)
    };
    let services: Vec<String> = live
        .services
        .iter()
        .filter(|(_, state)| state.as_str() != "running")
        .map(|(name, state)| format!("the {name} is {state}"))
        .collect();
    if !services.is_empty() {
        let _ = writeln!(
            out,
            "\nWarning: {} (nodes keep their tree; new nodes cannot join, or clients find no \
             input node)",
            services.join(", ")
        );
    }
    if !live.nameserver.is_empty() {
        let _ = writeln!(
            out,
            "\nChat: open {} (it redirects to an input node)",
            live.nameserver
        );
    }
    // Every node, by id as a number: its state, roles, how far its copy of the data is, and
    // where it serves the chat.
    let mut ids: Vec<(u64, &String)> = live
        .addresses
        .keys()
        .map(|id| (id.parse().unwrap_or(u64::MAX), id))
        .collect();
    ids.sort();
    let rows: Vec<Vec<String>> = ids
        .into_iter()
        .map(|(_, id)| {
            let address = &live.addresses[id];
            let roles = live
                .report
                .roles
                .get(id)
                .filter(|r| !r.is_empty())
                .map(|r| r.iter().map(Role::to_string).collect::<Vec<_>>().join("+"))
                .unwrap_or_else(|| "-".into());
            vec![
                id.clone(),
                address.state.clone(),
                roles,
                address.applied.to_string(),
                address.pid.to_string(),
                address
                    .http
                    .as_ref()
                    .map_or_else(|| "-".into(), |h| format!("http://{h}")),
            ]
        })
        .collect();
    let _ = writeln!(out);
    out.push_str(&table(
        &["NODE", "STATE", "ROLES", "APPLIED", "PID", "CHAT"],
        &rows,
        &[true, false, false, true, true, false],
    ));
    let _ = writeln!(out, "\nLab folder (logs): {}", live.folder);
    out
}

/// A lab with faults in force, or in pieces: the faults, then each component with its root,
/// epoch and quorum, and its tree; then the costs of the quorum's election and the checks.
fn broken(live: &crate::live::LiveReport, header: &str) -> String {
    let faults: Vec<String> = live
        .faults
        .iter()
        .map(|fault| {
            let since = fault["since_ms"].as_u64().unwrap_or(0);
            let mut object = fault.clone();
            if let Some(o) = object.as_object_mut() {
                o.remove("since_ms");
            }
            let shown = serde_json::from_value::<labctl_fault::Fault>(object)
                .map(|f| f.to_string())
                .unwrap_or_else(|_| fault.to_string());
            format!("{shown}  (for {:.1} s)", since as f64 / 1000.0)
        })
        .collect();
    let away: Vec<String> = live
        .addresses
        .iter()
        .filter(|(_, a)| a.state != "running")
        .map(|(id, a)| format!("{id} ({})", a.state))
        .collect();
    components(&live.report, header, &faults, &away)
}

/// A lab in pieces: the faults in force (in words), the nodes in no component, then each
/// component with its root, epoch and quorum, and its tree; the quorum's election and whether
/// every component converged.
pub fn components(report: &Report, header: &str, faults: &[String], away: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}, {}, {}",
        report.lab,
        plural(report.nodes, "node"),
        plural(report.links, "link"),
        match report.epoch {
            Some(e) => format!("quorum in epoch {e}"),
            None => "no component holds a quorum".into(),
        }
    );
    let _ = writeln!(out, "{header}");
    if !faults.is_empty() {
        let _ = writeln!(out, "\nFaults in force:");
        for fault in faults {
            let _ = writeln!(out, "  {fault}");
        }
    }
    if !away.is_empty() {
        let _ = writeln!(out, "Not in any component: {}", away.join(", "));
    }
    let lab = report.nodes as u64;
    for component in &report.components {
        let ids: Vec<String> = component.nodes.iter().map(|n| n.to_string()).collect();
        let size = component.nodes.len() as u64;
        let quorum = if component.quorum {
            format!("quorum ({size} of {lab} nodes): its root writes")
        } else {
            format!(
                "no quorum ({size} of {lab} nodes; writes need {}): reads only",
                lab / 2 + 1
            )
        };
        let _ = writeln!(
            out,
            "\nComponent {}: root {}, epoch {}, {quorum}{}",
            ids.join(","),
            component
                .leader
                .map_or_else(|| "none agreed on".into(), |l| l.to_string()),
            component
                .epoch
                .map_or_else(|| "-".into(), |e| e.to_string()),
            if component.converged {
                ""
            } else {
                " — not converged yet"
            }
        );
        match component.leader {
            Some(root) if component.converged => out.push_str(&tree_under(report, root)),
            _ => {
                for id in &component.nodes {
                    let roles = report
                        .roles
                        .get(&id.to_string())
                        .map(|r| join(r))
                        .unwrap_or_default();
                    let parent = report.tree.get(&id.to_string()).copied().flatten();
                    let _ = writeln!(
                        out,
                        "  {id}  parent {}  {}",
                        parent.map_or_else(|| "-".into(), |p| p.to_string()),
                        if roles.is_empty() {
                            "(electing)".into()
                        } else {
                            roles
                        }
                    );
                }
            }
        }
    }
    if report.epoch.is_some() {
        let _ = writeln!(
            out,
            "\nThe quorum's election: Yo-Yo {} messages in {} iteration(s), SHOUT+ {}",
            report.messages.election, report.iterations, report.messages.tree
        );
    }
    let failed: Vec<_> = report
        .failed_checks()
        .filter(|c| labctl_core::report::CONVERGENCE.contains(&c.name.as_str()))
        .collect();
    if failed.is_empty() {
        let _ = writeln!(
            out,
            "\nConverged: every component is one tree, in one epoch, with its roles"
        );
    } else {
        let _ = writeln!(out, "\nNot converged:");
        for check in failed {
            let _ = writeln!(out, "  ✗ {}: {}", check.name, check.detail);
        }
    }
    out
}

/// `1 link`, `3 links`.
pub fn plural(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Rows under a header row, each column as wide as its widest cell; `right[i]` aligns column `i`
/// to the right (numbers). The last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == columns;
            if i > 0 {
                out.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod table_tests {
    use super::table;

    #[test]
    fn a_table_aligns_its_columns_under_a_header() {
        let rows = vec![
            vec!["ring6".to_string(), "6".to_string(), "running".to_string()],
            vec![
                "random30".to_string(),
                "30".to_string(),
                "stopped".to_string(),
            ],
        ];
        let text = table(&["NAME", "NODES", "STATE"], &rows, &[false, true, false]);
        assert_eq!(
            text,
            "NAME      NODES  STATE\n\
             ring6         6  running\n\
             random30     30  stopped\n"
        );
    }
}

#[cfg(test)]
mod report_tests {
    use labctl_sim::{Config, Delivery, Simulation};
    use labctl_topology::Topology;

    #[test]
    fn the_message_table_widens_for_large_figures() {
        let ring = Topology::from_toml(
            "name = \"ring4\"\nnodes = [1, 2, 3, 4]\nlinks = [[1, 2], [2, 3], [3, 4], [4, 1]]\n",
            "ring4.toml",
        )
        .unwrap();
        let config = Config {
            seed: 0,
            delivery: Delivery::Sync,
            trace: false,
        };
        let mut report = Simulation::run(&ring, &config).unwrap().report;
        // The figures of the complete graph of 4,472 nodes.
        report.messages.election = 39_988_624;
        report.bounds.election = 299_914_680;
        let text = super::report(&report, "header");
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Messages"))
            .collect();
        let measured_end = lines[0].find("measured").unwrap() + "measured".len();
        let election = lines[1];
        assert!(election.contains("≤ 299914680 2m("), "{election}");
        assert_eq!(
            election.find("39988624").unwrap() + 8,
            measured_end,
            "right-aligned under its header:\n{}\n{election}",
            lines[0]
        );
    }
}
