//! `labctl graph FILE|NAME`: show a topology (or a lab's) as text, Graphviz DOT or an SVG picture.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use labctl_core::{NodeId, Role};
use labctl_topology::{render, Topology};

use crate::cli::{GraphArgs, GraphFormat};
use crate::lab::LabDir;
use crate::Outcome;

/// The largest graph drawn as SVG (a circle of thousands of nodes is no picture).
const SVG_LIMIT: usize = 2000;

/// A lab's live tree and roles, to draw over its topology.
struct Overlay {
    parents: BTreeMap<String, Option<NodeId>>,
    roles: BTreeMap<String, Vec<Role>>,
}

pub fn run(args: &GraphArgs) -> Result<Outcome> {
    let (topology, overlay) = if is_file(&args.target) {
        (Topology::from_path(&args.target)?, None)
    } else {
        lab_graph(
            &args.target.to_string_lossy(),
            args.format == GraphFormat::Svg,
        )?
    };
    let text = match args.format {
        GraphFormat::Ascii => render::ascii(&topology),
        GraphFormat::Dot => render::dot(&topology),
        GraphFormat::Svg => svg(&topology, overlay.as_ref())?,
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(stdout)?;
    }
    Ok(Outcome::Done)
}

/// A file path rather than a lab name: it exists, names a folder, or ends in `.toml`.
fn is_file(target: &Path) -> bool {
    target.exists()
        || target.components().count() > 1
        || target.extension().is_some_and(|e| e == "toml")
}

/// A lab's topology, and (when asked and the lab answers) its live tree.
fn lab_graph(name: &str, live: bool) -> Result<(Topology, Option<Overlay>)> {
    let lab = LabDir::new(name)?;
    if !lab.exists() {
        bail!(
            "no topology file and no lab named {name:?}: give a file, or a lab `labctl ls` lists"
        );
    }
    let record = lab.load()?;
    let topology = Topology::from_toml(
        &record.topology,
        &record.topology_file.display().to_string(),
    )?;
    if !live {
        return Ok((topology, None));
    }
    let tokio = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = tokio.block_on(crate::lifecycle::report(&lab))?;
    let overlay = Overlay {
        parents: report.report.tree,
        roles: report.report.roles,
    };
    Ok((topology, Some(overlay)))
}

/// The graph as SVG: nodes evenly on a circle in id order, links as lines. With an overlay, the
/// spanning tree's edges are bold and each node is coloured by its first role.
fn svg(topology: &Topology, overlay: Option<&Overlay>) -> Result<String> {
    let ids = topology.ids();
    let n = ids.len();
    if n > SVG_LIMIT {
        bail!("{n} nodes are too many to draw (limit {SVG_LIMIT}); use --format dot with Graphviz");
    }
    let radius = (n as f64 * 9.0).max(160.0);
    let (margin, top) = (60.0, 70.0);
    let size = 2.0 * (radius + margin);
    // Wide enough for the title and the legend, however small the graph.
    let width = size.max(620.0);
    let centre = (width / 2.0, size / 2.0 + top);
    let place: BTreeMap<NodeId, (f64, f64)> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let angle = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
            (
                id,
                (
                    centre.0 + radius * angle.cos(),
                    centre.1 + radius * angle.sin(),
                ),
            )
        })
        .collect();
    let in_tree = |a: NodeId, b: NodeId| {
        overlay.is_some_and(|o| {
            o.parents.get(&a.to_string()) == Some(&Some(b))
                || o.parents.get(&b.to_string()) == Some(&Some(a))
        })
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="system-ui, sans-serif">"#,
        w = width,
        h = size + top
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="20" y="32" font-size="20" font-weight="600" fill="#1f2933">{} · {} nodes, {} links{}</text>"##,
        topology.name,
        n,
        topology.link_count(),
        if overlay.is_some() {
            " · live spanning tree in bold"
        } else {
            ""
        }
    );
    if overlay.is_some() {
        let mut x = 20.0;
        for role in [
            Role::Writer,
            Role::Persistence,
            Role::Forwarder,
            Role::Input,
        ] {
            let _ = writeln!(
                out,
                r##"<circle cx="{cx:.0}" cy="52" r="6" fill="{}"/><text x="{tx:.0}" y="56" font-size="13" fill="#52606d">{role}</text>"##,
                colour(Some(role)),
                cx = x + 6.0,
                tx = x + 16.0
            );
            x += 110.0;
        }
    }
    for (a, b) in topology.links() {
        let ((x1, y1), (x2, y2)) = (place[&a], place[&b]);
        let (class, stroke, width) = if in_tree(a, b) {
            ("link tree", "#2b59c3", 3.5)
        } else {
            ("link", "#c8ccd4", 1.2)
        };
        let _ = writeln!(
            out,
            r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
        );
    }
    let node_radius = if n > 200 { 6.0 } else { 15.0 };
    for (&id, &(x, y)) in &place {
        let role = overlay.and_then(|o| o.roles.get(&id.to_string())?.first().copied());
        let class = role.map_or("node".to_string(), |r| format!("node {r}"));
        let _ = writeln!(
            out,
            r##"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{node_radius}" fill="{}" stroke="#ffffff" stroke-width="2"/>"##,
            colour(role)
        );
        if n <= 200 {
            let _ = writeln!(
                out,
                r##"<text x="{x:.1}" y="{ty:.1}" font-size="12" font-weight="600" fill="#ffffff" text-anchor="middle">{id}</text>"##,
                ty = y + 4.0
            );
        }
    }
    out.push_str("</svg>\n");
    Ok(out)
}

fn colour(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Writer) => "#d9480f",
        Some(Role::Leader) => "#e8590c",
        Some(Role::Persistence) => "#2f9e44",
        Some(Role::Input) => "#1971c2",
        Some(Role::Forwarder) => "#868e96",
        None => "#52606d",
    }
}
