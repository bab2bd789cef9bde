//! The election told as text, one block per step, for a terminal (`labctl trace`).

use std::fmt::Write as _;

use labctl_core::roles::Role;
use labctl_core::NodeId;

use crate::story::{Part, Story};

fn list(ids: impl IntoIterator<Item = NodeId>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(", ")
    }
}

/// One text block per step of every election of `story`.
pub fn steps(story: &Story) -> Vec<String> {
    let mut out = Vec::new();
    for e in &story.elections {
        let bounds = e.bounds();
        let mut block = String::new();
        if let Some(cause) = &e.cause {
            let _ = writeln!(block, "A new election: {cause}.");
        }
        let _ = writeln!(
            block,
            "Epoch {}, setup: {} nodes send their ids on every link: {} messages (exactly 2m = {}).",
            e.epoch,
            e.members.len(),
            e.setup,
            bounds.setup
        );
        let _ = writeln!(
            block,
            "  Each link now points from the smaller id to the larger: {}",
            e.links
                .iter()
                .map(|(a, b)| format!("{a}→{b}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        out.push(block);
        for it in &e.iterations {
            let with = |part: Part| {
                list(
                    it.parts
                        .iter()
                        .filter(|(_, p)| **p == part)
                        .map(|(&id, _)| id),
                )
            };
            let mut block = String::new();
            let _ = writeln!(
                block,
                "Iteration {} of {} (bound {}), YO-: values go down the edges.",
                it.number,
                e.iterations.len(),
                bounds.iterations
            );
            let _ = writeln!(block, "  sources:  {}", with(Part::Source));
            let _ = writeln!(block, "  internal: {}", with(Part::Internal));
            let _ = writeln!(block, "  sinks:    {}", with(Part::Sink));
            let _ = writeln!(block, "  pruned:   {}", with(Part::Pruned));
            let down: Vec<String> = it
                .down
                .iter()
                .map(|d| format!("{}→{} [{}]", d.from, d.to, d.value))
                .collect();
            let _ = writeln!(block, "  down:     {}", down.join("  "));
            out.push(block);
            let mut block = String::new();
            let _ = writeln!(
                block,
                "Iteration {}, -YO: answers come up; a NO reverses its edge, a prune deletes it.",
                it.number
            );
            let up: Vec<String> = it
                .up
                .iter()
                .map(|u| {
                    format!(
                        "{}→{} {}{}",
                        u.from,
                        u.to,
                        if u.yes { "YES" } else { "NO" },
                        if u.prune { "+prune" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(block, "  up:       {}", up.join("  "));
            let _ = writeln!(
                block,
                "  pruned itself: {}",
                list(it.pruned.iter().copied())
            );
            let _ = writeln!(
                block,
                "  messages: {} this iteration (at most 2m = {})",
                it.messages, bounds.setup
            );
            out.push(block);
        }
        let mut block = String::new();
        match (&e.leader, &e.shout) {
            (Some(leader), Some(shout)) => {
                let yoyo = e.setup + e.iterations.iter().map(|i| i.messages).sum::<u64>();
                let _ = writeln!(
                    block,
                    "Leader: {leader}, after {} iterations; Yo-Yo took {yoyo} messages (bound {}).",
                    e.iterations.len(),
                    bounds.election
                );
                let _ = writeln!(
                    block,
                    "SHOUT+: {} Q and {} Yes = {} messages (exactly 2m = {}). The tree:",
                    shout.q,
                    shout.yes,
                    shout.q + shout.yes,
                    bounds.tree
                );
                for (id, parent) in &shout.parents {
                    let roles: Vec<String> = e
                        .roles
                        .get(id)
                        .map(|r| r.iter().map(Role::to_string).collect())
                        .unwrap_or_default();
                    let _ = writeln!(
                        block,
                        "  {id:>4}  parent {:>4}  depth {:>2}  {}",
                        parent.map_or("—".to_string(), |p| p.to_string()),
                        shout.depths.get(id).copied().unwrap_or(0),
                        roles.join(", ")
                    );
                }
            }
            (Some(leader), None) => {
                let _ = writeln!(block, "Leader: {leader} (alone: no tree to build).");
            }
            _ => {
                let _ = writeln!(
                    block,
                    "No leader was elected in this epoch (the trace ends first)."
                );
            }
        }
        out.push(block);
    }
    out
}

#[cfg(test)]
mod tests {
    use labctl_sim::{Config, Delivery, Simulation};
    use labctl_topology::Topology;

    use super::*;

    #[test]
    fn the_text_names_every_part_and_the_counts() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
        let topology = Topology::from_path(&dir.join("ring6.toml")).unwrap();
        let adjacency = topology.adjacency();
        let run = Simulation::run(
            &topology,
            &Config {
                seed: 0,
                delivery: Delivery::Sync,
                trace: true,
            },
        )
        .unwrap();
        let story = Story::of(&run.trace, &adjacency);
        let blocks = steps(&story);
        assert_eq!(blocks.len(), 2 + 2 * run.report.iterations as usize);
        assert!(
            blocks[0].contains("12 messages (exactly 2m = 12)"),
            "{}",
            blocks[0]
        );
        // ring6's ids go round in order: 1 is the one source of iteration 1, 6 the one sink.
        assert!(blocks[1].contains("sources:  1\n"), "{}", blocks[1]);
        assert!(blocks[1].contains("sinks:    6\n"), "{}", blocks[1]);
        let last = blocks.last().unwrap();
        assert!(last.contains("Leader: 1"), "{last}");
        assert!(
            last.contains(&format!("= {} messages", run.report.messages.tree)),
            "{last}"
        );
    }
}
