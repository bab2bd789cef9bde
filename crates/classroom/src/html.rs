//! The offline replay page (`labctl trace --html`, SPEC §9): one self-contained HTML file, no
//! network and no absolute URL, with previous/next buttons and the arrow keys, a picture per step,
//! the messages of each step beside the bounds, and a space-time diagram of the messages for runs
//! small enough to read.
//!
//! Every step is a `<section class="step" data-step="N">`; the Yo-Yo iterations' steps also carry
//! `data-iteration="i"`, i from 1 to the run's iterations, and nothing else does.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use labctl_core::event::{TraceEntry, TraceLine, Wire};
use labctl_core::message::Body;
use labctl_core::report::Adjacency;
use labctl_core::NodeId;

use crate::layout::Layout;
use crate::picture::{escape, svg_named};
use crate::story::Story;

/// The most messages the space-time diagram draws (beyond, it is left out: unreadable).
pub const MAX_DIAGRAM_MESSAGES: usize = 1500;

/// An SVG document made inline: HTML needs no namespace (and the page holds no absolute URL).
fn inline(svg: &str) -> String {
    svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
}

/// The page for `story` on a lab `title` of `adjacency`, with `trace` for the space-time diagram.
pub fn page(
    title: &str,
    story: &Story,
    adjacency: &Adjacency,
    trace: &[TraceLine],
    notes: &[String],
) -> String {
    let layout = Layout::of(adjacency);
    let mut steps = String::new();
    let mut n = 0;
    for election in &story.elections {
        let pictures = election.pictures(adjacency);
        let bounds = election.bounds();
        let iterations = election.iterations.len();
        for (i, picture) in pictures.iter().enumerate() {
            n += 1;
            // Picture 0 is setup; then two per iteration; then the tree.
            let iteration = (1..=2 * iterations).contains(&i).then(|| i.div_ceil(2));
            let counts = match iteration {
                None if i == 0 => format!(
                    "{}setup: {} messages (exactly 2m = {})",
                    election
                        .cause
                        .as_ref()
                        .map_or_else(String::new, |c| format!("a new election ({c}); ")),
                    election.setup,
                    bounds.setup
                ),
                Some(it) => format!(
                    "iteration {it} of {iterations} (bound {}): {} messages (at most 2m = {})",
                    bounds.iterations,
                    election.iterations[it - 1].messages,
                    bounds.setup
                ),
                None => {
                    let (q, yes) = election.shout.as_ref().map_or((0, 0), |s| (s.q, s.yes));
                    let yoyo: u64 = election.setup
                        + election.iterations.iter().map(|i| i.messages).sum::<u64>();
                    format!(
                        "SHOUT+: {} messages (exactly 2m = {}); Yo-Yo in all: {yoyo} (bound {})",
                        q + yes,
                        bounds.tree,
                        bounds.election
                    )
                }
            };
            let iteration_attr =
                iteration.map_or_else(String::new, |it| format!(r#" data-iteration="{it}""#));
            let _ = write!(
                steps,
                r#"<section class="step" data-step="{n}" data-epoch="{}"{iteration_attr}><h2>Step {n}: {}</h2><p class="counts">{}</p>{}</section>"#,
                election.epoch,
                escape(&picture.title),
                escape(&counts),
                inline(&svg_named(picture, &layout, 520, &format!("s{n}")))
            );
        }
    }
    let diagram = space_time(trace);
    let notes: String = notes
        .iter()
        .map(|n| format!(r#"<p class="note">{}</p>"#, escape(n)))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>{title}: the election, step by step</title>
<style>
body {{ font-family: sans-serif; margin: 1em auto; max-width: 1100px; color: #212121; }}
nav {{ position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ddd; }}
button {{ font-size: 1.1em; padding: .3em 1em; }}
.step {{ display: none; }} .step.shown {{ display: block; }}
.counts {{ color: #555; }}
.legend span {{ display: inline-block; margin-right: 1em; }}
.dot {{ display: inline-block; width: .9em; height: .9em; border-radius: 50%; vertical-align: middle; margin-right: .3em; border: 1px solid #333; }}
</style></head>
<body>
<h1>{title}: the election, step by step</h1>
{notes}<p class="legend"><span><i class="dot" style="background:#2e7d32"></i>source</span><span><i class="dot" style="background:#fbc02d"></i>internal</span><span><i class="dot" style="background:#1565c0"></i>sink</span><span><i class="dot" style="background:#bdbdbd"></i>pruned</span><span><i class="dot" style="background:#c62828"></i>leader / writer</span><span><i class="dot" style="background:#6a1b9a"></i>persistence</span><span><i class="dot" style="background:#00838f"></i>input</span><span><i class="dot" style="background:#757575"></i>forwarder</span></p>
<nav><button id="previous" type="button">← previous</button> <span id="where"></span> <button id="next" type="button">next →</button> (or the arrow keys)</nav>
<main>{steps}</main>
<h2>The messages in space and time</h2>
{diagram}
<script>
(function () {{
  var steps = document.querySelectorAll('.step');
  var at = 0;
  function show(i) {{
    at = Math.max(0, Math.min(steps.length - 1, i));
    steps.forEach(function (s, k) {{ s.classList.toggle('shown', k === at); }});
    document.getElementById('where').textContent = 'step ' + (at + 1) + ' of ' + steps.length;
  }}
  document.getElementById('previous').addEventListener('click', function () {{ show(at - 1); }});
  document.getElementById('next').addEventListener('click', function () {{ show(at + 1); }});
  document.addEventListener('keydown', function (e) {{
    if (e.key === 'ArrowRight') {{ show(at + 1); }}
    if (e.key === 'ArrowLeft') {{ show(at - 1); }}
  }});
  show(0);
}})();
</script>
</body></html>
"#,
        title = escape(title)
    )
}

/// The colour of a message kind.
fn colour(body: &Body) -> (&'static str, &'static str) {
    match body {
        Body::Setup { .. } => ("#9e9e9e", "setup"),
        Body::YoDown { .. } => ("#2e7d32", "YO- value"),
        Body::YoUp { .. } => ("#1565c0", "-YO answer"),
        Body::Q { .. } => ("#c62828", "SHOUT Q"),
        Body::Yes { .. } => ("#6a1b9a", "SHOUT Yes"),
    }
}

/// One lane per node, time downward, one arrow per message from its send to its receipt
/// (matched in order per link: links are FIFO).
fn space_time(trace: &[TraceLine]) -> String {
    let mut sends: BTreeMap<(NodeId, NodeId), VecDeque<(u64, &Body)>> = BTreeMap::new();
    let mut arrows = Vec::new();
    let mut nodes = std::collections::BTreeSet::new();
    for line in trace {
        nodes.insert(line.node);
        match &line.what {
            TraceEntry::Wire(Wire::Send { to, message }) => sends
                .entry((line.node, *to))
                .or_default()
                .push_back((line.t, &message.body)),
            TraceEntry::Wire(Wire::Receive { from, .. }) => {
                if let Some((sent, body)) = sends
                    .get_mut(&(*from, line.node))
                    .and_then(VecDeque::pop_front)
                {
                    arrows.push((*from, sent, line.node, line.t, body));
                }
            }
            TraceEntry::Node(_) => {}
        }
    }
    if arrows.is_empty() {
        return "<p>No messages.</p>".to_string();
    }
    if arrows.len() > MAX_DIAGRAM_MESSAGES {
        return format!(
            "<p>{} messages: too many to draw readably (the diagram is drawn up to {MAX_DIAGRAM_MESSAGES}).</p>",
            arrows.len()
        );
    }
    let lanes: Vec<NodeId> = nodes.into_iter().collect();
    let lane = |id: NodeId| lanes.iter().position(|&n| n == id).unwrap_or(0) as f64;
    let end = arrows.iter().map(|a| a.3).max().unwrap_or(1).max(1) as f64;
    let (gap, top, height) = (48.0, 30.0, 600.0);
    let width = gap * (lanes.len() as f64 + 1.0);
    let y = |t: u64| top + height * t as f64 / end;
    let mut out = format!(
        r#"<svg class="space-time" viewBox="0 0 {width:.0} {:.0}" width="{width:.0}" height="{:.0}" font-family="sans-serif" font-size="12">"#,
        top + height + 20.0,
        top + height + 20.0
    );
    for &id in &lanes {
        let x = gap * (lane(id) + 1.0);
        let _ = write!(
            out,
            r##"<g class="lane" data-node="{id}"><text x="{x:.1}" y="16" text-anchor="middle">{id}</text><line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#bbb"/></g>"##,
            top + height
        );
    }
    for (from, sent, to, received, body) in &arrows {
        let (c, kind) = colour(body);
        let _ = write!(
            out,
            r#"<line class="message" data-kind="{kind}" x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{c}" stroke-width="1.2"><title>{kind}: {from} → {to}</title></line>"#,
            gap * (lane(*from) + 1.0),
            y(*sent),
            gap * (lane(*to) + 1.0),
            y(*received)
        );
    }
    out.push_str("</svg>");
    let legend: String = [
        ("#9e9e9e", "setup"),
        ("#2e7d32", "YO- value"),
        ("#1565c0", "-YO answer"),
        ("#c62828", "SHOUT Q"),
        ("#6a1b9a", "SHOUT Yes"),
    ]
    .iter()
    .map(|(c, k)| format!(r#"<span><i class="dot" style="background:{c}"></i>{k}</span>"#))
    .collect();
    format!(r#"<p class="legend">{legend}</p>{out}"#)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use labctl_sim::{Config, Delivery, Simulation};
    use labctl_topology::Topology;

    use super::*;

    /// The page as XML (it is written to be well-formed XHTML as well as HTML).
    fn parse(html: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(html, options)
    }

    fn replay(name: &str) -> (String, labctl_sim::Run, Adjacency) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../topologies");
        let topology = Topology::from_path(&dir.join(format!("{name}.toml"))).unwrap();
        let adjacency = topology.adjacency();
        let run = Simulation::run(
            &topology,
            &Config {
                seed: 2,
                delivery: Delivery::Async,
                trace: true,
            },
        )
        .unwrap();
        let story = Story::of(&run.trace, &adjacency);
        (
            page(name, &story, &adjacency, &run.trace, &[]),
            run,
            adjacency,
        )
    }

    #[test]
    fn the_page_is_well_formed_self_contained_and_numbers_its_iterations() {
        for name in ["ring6", "grid4x4-shuffled", "random30", "single"] {
            let (html, run, adjacency) = replay(name);
            let doc = parse(&html).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{name}"
            );
            let steps: Vec<roxmltree::Node> = doc
                .descendants()
                .filter(|n| n.attribute("data-step").is_some())
                .collect();
            let numbers: Vec<usize> = steps
                .iter()
                .map(|s| s.attribute("data-step").unwrap().parse().unwrap())
                .collect();
            assert_eq!(numbers, (1..=steps.len()).collect::<Vec<_>>(), "{name}");
            let iterations: BTreeSet<u32> = doc
                .descendants()
                .filter_map(|n| n.attribute("data-iteration"))
                .map(|v| v.parse().unwrap())
                .collect();
            assert_eq!(
                iterations,
                (1..=run.report.iterations).collect::<BTreeSet<_>>(),
                "{name}"
            );
            // Ids are unique in the page (an arrowhead referring to a hidden step's is not drawn).
            let ids: Vec<&str> = doc
                .descendants()
                .filter_map(|n| n.attribute("id"))
                .collect();
            let unique: BTreeSet<&str> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "{name}: duplicate ids");
            // Only steps carry data-iteration.
            assert!(doc
                .descendants()
                .filter(|n| n.attribute("data-iteration").is_some())
                .all(|n| n.attribute("data-step").is_some()));
            for step in &steps {
                let nodes: BTreeSet<&str> = step
                    .descendants()
                    .filter(|n| n.attribute("class") == Some("node"))
                    .filter_map(|n| n.attribute("data-node"))
                    .collect();
                assert_eq!(nodes.len(), adjacency.len(), "{name}");
            }
        }
    }

    #[test]
    fn the_space_time_diagram_draws_every_message_on_its_lanes() {
        let (html, run, adjacency) = replay("ring6");
        let doc = parse(&html).unwrap();
        let diagram = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("space-time"))
            .expect("a diagram");
        let lanes = diagram
            .descendants()
            .filter(|n| n.attribute("class") == Some("lane"))
            .count();
        assert_eq!(lanes, adjacency.len());
        let messages = diagram
            .descendants()
            .filter(|n| n.attribute("class") == Some("message"))
            .count() as u64;
        assert_eq!(
            messages,
            run.report.messages.election + run.report.messages.tree
        );
        // Too many messages: said, not drawn.
        let (big, run, _) = replay("random30");
        let total = run.report.messages.election + run.report.messages.tree;
        assert_eq!(
            big.contains("too many to draw"),
            total as usize > MAX_DIAGRAM_MESSAGES
        );
    }
}
