//! `timeline.svg`: a chaos run drawn by labctl itself (SPEC §8), one self-contained SVG 1.1
//! document with no drawing library, no script and no external reference.
//!
//! Time runs across, from the workload's start to the last operation of the history. Each node
//! of the lab has one lane, `<g class="lane" data-node="N">`, and a last strip, `<g
//! class="clients">`, holds what no node of the lab served. Within a lane:
//!
//! - the node's **state**, as the nemesis's `ok` fault lines left it: up (light), down (grey:
//!   killed, until restarted or `heal-all`), paused (hatched yellow: frozen, until resumed,
//!   restarted, healed, or killed, which makes it down). Each rectangle carries `data-state`,
//!   `data-from-ms` and `data-to-ms`;
//! - its **roles**, as labctl observed them on `epoch` lines: a dark outline while the node is its
//!   tree's root (the leader), a thick blue bar while it is the writer. Each carries `data-role`
//!   (`leader`, `writer`), `data-epoch`, `data-from-ms` and `data-to-ms`. A role lasts until the
//!   node's next epoch line changes it (a new epoch starts a new mark), or until the node goes down;
//! - the client **operations** it served (their completions), as ticks: writes in the upper half
//!   (green `ok`, orange `fail`, grey `info`), reads below them in lighter colours. Ticks are merged
//!   per two-pixel column, one `<path data-ops="write-ok">` (etc.) per lane and outcome, so a run of
//!   tens of thousands of operations stays a small file;
//! - the **anomalies**: a red diamond (`class="anomaly"`, with `data-kind`, `data-index`,
//!   `data-time-ms`) at the time of each operation involved, titled with the anomaly's sentence.
//!
//! Above the lanes, one `<g class="fault">` per fault the nemesis applied, labelled with the fault
//! in words: link faults (cut, partition, delay, loss) as bands from when they were applied until
//! healed (a `heal` of their link, a newer delay or loss on the same link, or `heal-all`;
//! `data-from-ms`, `data-to-ms`, `data-healed`), node faults and heals as vertical lines
//! (`data-at-ms`). Below: the time axis (ticks every 1, 2, 5, 10… seconds, whichever gives at most
//! twelve) and a legend.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use labctl_core::NodeId;
use labctl_fault::{Fault, Target};

use crate::history::{EpochView, Op, Process, Type, Value, F};
use crate::report::Anomalies;

/// The document's width, in pixels.
const WIDTH: f64 = 1200.0;
/// Room on the left for the lanes' labels.
const LEFT: f64 = 84.0;
/// Room on the right, for the last axis label.
const RIGHT: f64 = 24.0;
/// The width of the time axis.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
/// Operations are merged per column this wide.
const COLUMN_PX: f64 = 2.0;
/// How many columns the time axis holds.
const COLUMNS: usize = (PLOT_W / COLUMN_PX) as usize;
/// Where the rows of fault labels start.
const HEADER_TOP: f64 = 28.0;
/// The height of one row of fault labels.
const ROW_H: f64 = 14.0;
/// At most this many rows of fault labels; more faults share rows (and may overlap).
const MAX_ROWS: usize = 8;
/// The width of one character of the 10 px labels, roughly (to keep labels apart).
const CHAR_W: f64 = 5.8;
/// Above this many read ticks (after merging), reads are left out.
const MAX_READ_TICKS: usize = 20_000;
/// At most this many anomaly marks are drawn.
const MAX_ANOMALY_MARKS: usize = 2_000;
/// Titles longer than this are cut.
const MAX_TITLE_CHARS: usize = 600;

const RED: &str = "#dc2626";
const WRITER_BLUE: &str = "#2563eb";
const LEADER_BLUE: &str = "#1e3a8a";

/// The run as one SVG document: time across, one lane per node of `nodes`.
pub fn svg(history: &[Op], nodes: &[NodeId], anomalies: &Anomalies) -> String {
    let mut seen = BTreeSet::new();
    let nodes: Vec<NodeId> = nodes.iter().copied().filter(|n| seen.insert(*n)).collect();
    let end_ms = history.iter().map(|op| op.time_ms).max().unwrap_or(0);
    let scale = Scale::new(end_ms);
    let story = Story::read(history, &nodes, end_ms);
    let ticks = Ticks::count(history, &story.index, &scale);
    let rows = place_labels(&story.marks, &scale);
    let layout = Layout::new(nodes.len(), rows.count);

    let mut body = String::new();
    title(&mut body, &nodes, history, end_ms, anomalies);
    let marks = anomaly_marks(anomalies, &story.index, &scale, &layout);
    let draw_reads = ticks.read_ticks() <= MAX_READ_TICKS;
    for (i, lane) in story.lanes.iter().enumerate() {
        draw_lane(
            &mut body, lane, i, &ticks, draw_reads, &marks, &scale, &layout,
        );
    }
    draw_clients(
        &mut body,
        nodes.len(),
        &ticks,
        draw_reads,
        &marks,
        &scale,
        &layout,
    );
    grid(&mut body, &scale, &layout);
    for (mark, row) in story.marks.iter().zip(&rows.placed) {
        draw_fault(&mut body, mark, row, &story.index, &scale, &layout);
    }
    axis(&mut body, &scale, &layout);
    let height = legend(&mut body, &layout, draw_reads, marks.left_out);

    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">",
        w = num(WIDTH),
        h = num(height),
    );
    out.push_str(
        "<defs><pattern id=\"paused\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fde68a\"/>\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d97706\" stroke-width=\"2\"/>\
         </pattern></defs>\n",
    );
    let _ = writeln!(
        out,
        "<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>",
        num(WIDTH),
        num(height)
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// What happened: the lanes' states and roles, and the faults, read from the history.

/// A node's state, as the nemesis left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    Down,
    Paused,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Paused => "paused",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            State::Up => "#e8f5ec",
            State::Down => "#9ca3af",
            State::Paused => "url(#paused)",
        }
    }
}

/// A role a node holds for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The root of its tree.
    Leader,
    /// The writer of its component.
    Writer,
}

impl Role {
    const BOTH: [Role; 2] = [Role::Leader, Role::Writer];

    fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Writer => "writer",
        }
    }
}

/// Something that lasted from `from_ms` to `to_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span<T> {
    value: T,
    from_ms: u64,
    to_ms: u64,
}

/// One node's lane: its states and roles over time.
#[derive(Debug)]
struct Lane {
    node: NodeId,
    states: Vec<Span<State>>,
    /// A role and the epoch it was held in.
    roles: Vec<Span<(Role, u64)>>,
    /// The state now and since when.
    state: State,
    state_since: u64,
    /// Each role held now: since when, in which epoch (indexed as [`Role::BOTH`]).
    holding: [Option<(u64, u64)>; 2],
}

impl Lane {
    fn new(node: NodeId) -> Self {
        Lane {
            node,
            states: Vec::new(),
            roles: Vec::new(),
            state: State::Up,
            state_since: 0,
            holding: [None, None],
        }
    }

    fn set_state(&mut self, state: State, at: u64) {
        if state == self.state {
            return;
        }
        self.close_state(at);
        self.state = state;
        self.state_since = at;
        // A node that is down holds nothing: its roles end with it.
        if state == State::Down {
            for role in Role::BOTH {
                self.release(role, at);
            }
        }
    }

    fn close_state(&mut self, at: u64) {
        if at > self.state_since {
            self.states.push(Span {
                value: self.state,
                from_ms: self.state_since,
                to_ms: at,
            });
        }
    }

    /// An epoch line for this node: it holds `role` in `epoch` (or not) from `at`.
    fn hold(&mut self, role: Role, holds: bool, epoch: u64, at: u64) {
        match self.holding[role as usize] {
            Some((_, held)) if holds && held == epoch => {}
            _ => {
                self.release(role, at);
                if holds {
                    self.holding[role as usize] = Some((at, epoch));
                }
            }
        }
    }

    fn release(&mut self, role: Role, at: u64) {
        if let Some((since, epoch)) = self.holding[role as usize].take() {
            if at > since {
                self.roles.push(Span {
                    value: (role, epoch),
                    from_ms: since,
                    to_ms: at,
                });
            }
        }
    }

    fn observe(&mut self, view: &EpochView, at: u64) {
        // A line about a node the nemesis killed is an observation from before it went down.
        if self.state == State::Down {
            return;
        }
        self.hold(Role::Leader, view.root == Some(self.node), view.epoch, at);
        self.hold(Role::Writer, view.is_writer(), view.epoch, at);
    }

    fn finish(&mut self, end_ms: u64) {
        self.close_state(end_ms);
        self.state_since = end_ms;
        for role in Role::BOTH {
            self.release(role, end_ms);
        }
    }
}

/// A fault the nemesis applied: a band (link faults, until healed) or a line (the others).
#[derive(Clone, Debug, PartialEq)]
struct Mark {
    fault: Fault,
    from_ms: u64,
    /// Link faults: when healed (or the end of the run).
    to_ms: u64,
    band: bool,
    /// Whether a band was healed before the end.
    healed: bool,
}

/// A link fault's kind and link (`None`: a partition, or a link naming an unresolved node).
fn link_of(fault: &Fault) -> Option<(&'static str, Option<(NodeId, NodeId)>)> {
    let pair = |a: &Target, b: &Target| match (a.id(), b.id()) {
        (Some(a), Some(b)) => Some((a.min(b), a.max(b))),
        _ => None,
    };
    match fault {
        Fault::Cut { a, b } => Some(("cut", pair(a, b))),
        Fault::Delay { a, b, .. } => Some(("delay", pair(a, b))),
        Fault::Loss { a, b, .. } => Some(("loss", pair(a, b))),
        Fault::Partition { .. } => Some(("partition", None)),
        _ => None,
    }
}

/// The node a node fault names, once resolved.
fn node_of(fault: &Fault) -> Option<NodeId> {
    match fault {
        Fault::Kill { node }
        | Fault::Pause { node }
        | Fault::Resume { node }
        | Fault::Restart { node } => node.id(),
        _ => None,
    }
}

/// The run as lanes and fault marks.
struct Story {
    lanes: Vec<Lane>,
    /// A node's lane.
    index: BTreeMap<NodeId, usize>,
    marks: Vec<Mark>,
}

impl Story {
    fn read(history: &[Op], nodes: &[NodeId], end_ms: u64) -> Story {
        let mut lanes: Vec<Lane> = nodes.iter().map(|&n| Lane::new(n)).collect();
        let index: BTreeMap<NodeId, usize> =
            nodes.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let mut marks: Vec<Mark> = Vec::new();
        // The bands still open, as indices into `marks`.
        let mut open: Vec<usize> = Vec::new();
        for op in history {
            let at = op.time_ms;
            match (op.process, op.kind, op.f, &op.value) {
                (Process::Nemesis, Type::Ok, F::Fault, Value::Fault(fault)) => {
                    let mut close = |marks: &mut Vec<Mark>, which: &dyn Fn(&Fault) -> bool| {
                        open.retain(|&i| {
                            if which(&marks[i].fault) {
                                marks[i].to_ms = at;
                                marks[i].healed = true;
                                false
                            } else {
                                true
                            }
                        });
                    };
                    let lane = node_of(fault).and_then(|n| index.get(&n)).copied();
                    match fault {
                        Fault::Kill { .. } => {
                            if let Some(i) = lane {
                                lanes[i].set_state(State::Down, at);
                            }
                        }
                        Fault::Pause { .. } => {
                            if let Some(i) = lane.filter(|&i| lanes[i].state == State::Up) {
                                lanes[i].set_state(State::Paused, at);
                            }
                        }
                        Fault::Resume { .. } => {
                            if let Some(i) = lane.filter(|&i| lanes[i].state == State::Paused) {
                                lanes[i].set_state(State::Up, at);
                            }
                        }
                        Fault::Restart { .. } => {
                            if let Some(i) = lane {
                                lanes[i].set_state(State::Up, at);
                            }
                        }
                        Fault::HealAll => {
                            for lane in &mut lanes {
                                lane.set_state(State::Up, at);
                            }
                            close(&mut marks, &|_| true);
                        }
                        Fault::Heal { .. } => {
                            // Undoes every fault on that link (a cut, a delay, a loss), not a
                            // partition's.
                            if let Some(healed) = heal_link(fault) {
                                close(
                                    &mut marks,
                                    &|f| matches!(link_of(f), Some((kind, Some(link))) if kind != "partition" && link == healed),
                                );
                            }
                        }
                        Fault::Delay { .. } | Fault::Loss { .. } => {
                            // A newer delay (loss) on a link replaces the one there.
                            let (kind, link) = link_of(fault).expect("a link fault");
                            if link.is_some() {
                                close(&mut marks, &|f| link_of(f) == Some((kind, link)));
                            }
                        }
                        Fault::Cut { .. } | Fault::Partition { .. } => {}
                    }
                    let band = link_of(fault).is_some();
                    if band {
                        open.push(marks.len());
                    }
                    marks.push(Mark {
                        fault: fault.clone(),
                        from_ms: at,
                        to_ms: at,
                        band,
                        healed: false,
                    });
                }
                (Process::Lab, Type::Info, F::Epoch, Value::Epoch(view)) => {
                    if let Some(&i) = op.node.as_ref().and_then(|n| index.get(n)) {
                        lanes[i].observe(view, at);
                    }
                }
                _ => {}
            }
        }
        for i in open {
            marks[i].to_ms = end_ms.max(marks[i].from_ms);
        }
        for lane in &mut lanes {
            lane.finish(end_ms);
        }
        Story {
            lanes,
            index,
            marks,
        }
    }
}

/// The link a `heal` names, smaller id first.
fn heal_link(fault: &Fault) -> Option<(NodeId, NodeId)> {
    match fault {
        Fault::Heal { a, b } => match (a.id(), b.id()) {
            (Some(a), Some(b)) => Some((a.min(b), a.max(b))),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry.

/// Milliseconds to x.
struct Scale {
    span_ms: u64,
}

impl Scale {
    fn new(end_ms: u64) -> Scale {
        Scale {
            span_ms: if end_ms == 0 { 1000 } else { end_ms },
        }
    }

    fn x(&self, ms: u64) -> f64 {
        LEFT + PLOT_W * ms.min(self.span_ms) as f64 / self.span_ms as f64
    }

    fn column(&self, ms: u64) -> usize {
        (((self.x(ms) - LEFT) / COLUMN_PX) as usize).min(COLUMNS - 1)
    }
}

/// The axis's step: the smallest of 1, 2, 5, 10, 20, 50… ms that gives at most twelve ticks.
fn tick_step(span_ms: u64) -> u64 {
    let mut base = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = base * m;
            if span_ms / step < 12 {
                return step;
            }
        }
        base *= 10;
    }
}

/// An axis label: seconds, with as many decimals as the step needs.
fn tick_label(ms: u64, step: u64) -> String {
    let decimals = match step {
        s if s % 1000 == 0 => 0,
        s if s % 100 == 0 => 1,
        s if s % 10 == 0 => 2,
        _ => 3,
    };
    format!("{:.*} s", decimals, ms as f64 / 1000.0)
}

/// Where things go, top to bottom.
struct Layout {
    lane_h: f64,
    lanes_top: f64,
    clients_top: f64,
    /// The bottom of the clients' strip.
    bottom: f64,
}

impl Layout {
    fn new(lanes: usize, rows: usize) -> Layout {
        let lane_h = match lanes {
            0..=10 => 28.0,
            11..=20 => 22.0,
            _ => 20.0,
        };
        let lanes_top = HEADER_TOP + rows as f64 * ROW_H + 4.0;
        let clients_top = lanes_top + lanes as f64 * lane_h + 6.0;
        Layout {
            lane_h,
            lanes_top,
            clients_top,
            bottom: clients_top + lane_h,
        }
    }

    /// The top of lane `i` (the clients' strip: `i` = the number of nodes).
    fn lane_y(&self, i: usize, lanes: usize) -> f64 {
        if i >= lanes {
            self.clients_top
        } else {
            self.lanes_top + i as f64 * self.lane_h
        }
    }
}

/// The rows of fault labels: one per fault, and how many rows.
struct Rows {
    placed: Vec<Placed>,
    count: usize,
}

/// Where a fault's label goes.
struct Placed {
    row: usize,
    /// The label ends at the mark (near the right edge) instead of starting there.
    to_the_left: bool,
}

fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W + 6.0
}

/// Put each fault's label on the first row where it overlaps nothing.
fn place_labels(marks: &[Mark], scale: &Scale) -> Rows {
    let mut ends: Vec<f64> = Vec::new();
    let mut placed = Vec::with_capacity(marks.len());
    for mark in marks {
        let x0 = scale.x(mark.from_ms);
        let x1 = if mark.band { scale.x(mark.to_ms) } else { x0 };
        let w = label_width(&mark.fault.to_string()) + if mark.band { 0.0 } else { 6.0 };
        let to_the_left = x0 + w > WIDTH - 2.0;
        let (start, end) = if to_the_left {
            (x0 - w, x1.max(x0))
        } else {
            (x0, x1.max(x0 + w))
        };
        let row = match ends.iter().position(|&e| e + 4.0 <= start) {
            Some(row) => row,
            None if ends.len() < MAX_ROWS => {
                ends.push(f64::MIN);
                ends.len() - 1
            }
            None => (0..ends.len())
                .min_by(|&a, &b| ends[a].total_cmp(&ends[b]))
                .unwrap_or(0),
        };
        ends[row] = ends[row].max(end);
        placed.push(Placed { row, to_the_left });
    }
    Rows {
        placed,
        count: ends.len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations, merged per column.

/// The kinds of tick: writes then reads, each ok, fail, info.
const TICK_KINDS: [(&str, &str); 6] = [
    ("write-ok", "#16a34a"),
    ("write-fail", "#ea580c"),
    ("write-info", "#6b7280"),
    ("read-ok", "#86efac"),
    ("read-fail", "#fdba74"),
    ("read-info", "#d1d5db"),
];

/// Which columns hold an operation of each kind, per lane (the last one: the clients' strip).
struct Ticks {
    /// `[lane * 6 + kind][column]`.
    columns: Vec<Vec<bool>>,
    /// Operations per lane and kind.
    counts: Vec<[u64; 6]>,
}

impl Ticks {
    fn count(history: &[Op], index: &BTreeMap<NodeId, usize>, scale: &Scale) -> Ticks {
        let lanes = index.len() + 1;
        let mut ticks = Ticks {
            columns: vec![Vec::new(); lanes * 6],
            counts: vec![[0; 6]; lanes],
        };
        for op in history {
            let Process::Client(_) = op.process else {
                continue;
            };
            let outcome = match op.kind {
                Type::Invoke => continue,
                Type::Ok => 0,
                Type::Fail => 1,
                Type::Info => 2,
            };
            let kind = match op.f {
                F::Write => outcome,
                F::Read => 3 + outcome,
                _ => continue,
            };
            let lane = lane_of(op.node, index);
            ticks.counts[lane][kind] += 1;
            let columns = &mut ticks.columns[lane * 6 + kind];
            if columns.is_empty() {
                *columns = vec![false; COLUMNS];
            }
            columns[scale.column(op.time_ms)] = true;
        }
        ticks
    }

    fn read_ticks(&self) -> usize {
        self.columns
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 6 >= 3)
            .map(|(_, c)| c.iter().filter(|&&b| b).count())
            .sum()
    }

    /// One path per kind of operation served in lane `lane`, whose top is `y`.
    fn draw(&self, out: &mut String, lane: usize, y: f64, h: f64, reads: bool) {
        for (kind, (name, colour)) in TICK_KINDS.iter().enumerate() {
            if kind >= 3 && !reads {
                continue;
            }
            let columns = &self.columns[lane * 6 + kind];
            if !columns.iter().any(|&b| b) {
                continue;
            }
            let (top, len) = if kind < 3 {
                (y + 2.0, (h * 0.5 - 2.0).round())
            } else {
                (
                    y + (h * 0.5).round() + 1.0,
                    (h * 0.5 - 7.0).round().max(2.0),
                )
            };
            let _ = write!(
                out,
                "<path data-ops=\"{name}\" stroke=\"{colour}\" stroke-width=\"1.5\" fill=\"none\" d=\""
            );
            for (c, _) in columns.iter().enumerate().filter(|(_, &b)| b) {
                let x = LEFT + (c as f64 + 0.5) * COLUMN_PX;
                let _ = write!(out, "M{} {}v{}", num(x), num(top), num(len));
            }
            out.push_str("\"/>\n");
        }
    }

    fn summary(&self, lane: usize) -> String {
        let c = &self.counts[lane];
        format!(
            "writes: {} ok, {} failed, {} unknown; reads: {} ok, {} failed, {} unknown",
            c[0], c[1], c[2], c[3], c[4], c[5]
        )
    }
}

/// The lane an operation goes to: its node's, else the clients' strip.
fn lane_of(node: Option<NodeId>, index: &BTreeMap<NodeId, usize>) -> usize {
    node.and_then(|n| index.get(&n).copied())
        .unwrap_or(index.len())
}

// ---------------------------------------------------------------------------------------------
// Anomalies.

/// The red marks, already drawn, per lane.
struct AnomalyMarks {
    by_lane: BTreeMap<usize, String>,
    /// Marks not drawn, past the cap.
    left_out: usize,
}

fn anomaly_marks(
    anomalies: &Anomalies,
    index: &BTreeMap<NodeId, usize>,
    scale: &Scale,
    layout: &Layout,
) -> AnomalyMarks {
    let mut marks = AnomalyMarks {
        by_lane: BTreeMap::new(),
        left_out: 0,
    };
    let mut drawn = 0usize;
    let mut seen = BTreeSet::new();
    for (kind, list) in anomalies {
        for (a, anomaly) in list.iter().enumerate() {
            for involved in &anomaly.ops {
                let op = &involved.op;
                let lane = lane_of(op.node, index);
                let column = scale.column(op.time_ms);
                // One mark per anomaly, lane and column is enough to see it.
                if !seen.insert((*kind, a, lane, column)) {
                    continue;
                }
                if drawn == MAX_ANOMALY_MARKS {
                    marks.left_out += 1;
                    continue;
                }
                drawn += 1;
                let x = scale.x(op.time_ms);
                let s = (layout.lane_h * 0.3).min(6.0);
                let top = layout.lane_y(lane, index.len()) + layout.lane_h / 2.0 - s;
                let title = format!(
                    "{}: {} (line {}: {} {} {} at {} ms)",
                    kind.as_str(),
                    anomaly.what,
                    involved.index,
                    op.process,
                    kind_name(op.kind),
                    f_name(op.f),
                    op.time_ms
                );
                let out = marks.by_lane.entry(lane).or_default();
                let _ = writeln!(
                    out,
                    "<path class=\"anomaly\" data-kind=\"{}\" data-index=\"{}\" data-time-ms=\"{}\" \
                     d=\"M{} {}l{s} {s}l-{s} {s}l-{s} -{s}z\" fill=\"{RED}\" stroke=\"#7f1d1d\" \
                     stroke-width=\"0.6\"><title>{}</title></path>",
                    kind.as_str(),
                    involved.index,
                    op.time_ms,
                    num(x),
                    num(top),
                    esc(&title),
                    s = num(s),
                );
            }
        }
    }
    marks
}

/// What an operation does, as `history.jsonl` spells it.
fn f_name(f: F) -> &'static str {
    match f {
        F::Write => "write",
        F::Read => "read",
        F::Fault => "fault",
        F::FinalRead => "final-read",
        F::Epoch => "epoch",
        F::Converge => "converge",
    }
}

/// An operation's step, as `history.jsonl` spells it.
fn kind_name(kind: Type) -> &'static str {
    match kind {
        Type::Invoke => "invoke",
        Type::Ok => "ok",
        Type::Fail => "fail",
        Type::Info => "info",
    }
}

// ---------------------------------------------------------------------------------------------
// Drawing.

fn title(out: &mut String, nodes: &[NodeId], history: &[Op], end_ms: u64, anomalies: &Anomalies) {
    let client_ops = history
        .iter()
        .filter(|op| matches!(op.process, Process::Client(_)) && op.kind != Type::Invoke)
        .count();
    let faults = history
        .iter()
        .filter(|op| op.process == Process::Nemesis && op.kind == Type::Ok && op.f == F::Fault)
        .count();
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"18\" font-size=\"14\" font-weight=\"bold\" fill=\"#111827\">chaos run: \
         {} nodes, {} client operations, {} faults, {}</text>",
        num(LEFT),
        nodes.len(),
        client_ops,
        faults,
        esc(&tick_label(end_ms, 100))
    );
    let found: Vec<String> = anomalies
        .iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(kind, list)| format!("{} {}", kind.as_str(), list.len()))
        .collect();
    let (text, colour) = if found.is_empty() {
        ("no anomalies".to_string(), "#15803d")
    } else {
        (format!("anomalies: {}", found.join(", ")), RED)
    };
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"18\" text-anchor=\"end\" font-size=\"13\" font-weight=\"bold\" \
         fill=\"{colour}\">{}</text>",
        num(WIDTH - RIGHT),
        esc(&text)
    );
}

/// Faint vertical lines at the axis's ticks, across the lanes.
fn grid(out: &mut String, scale: &Scale, layout: &Layout) {
    let step = tick_step(scale.span_ms);
    out.push_str(
        "<path class=\"grid\" stroke=\"#000000\" stroke-opacity=\"0.08\" stroke-width=\"1\" d=\"",
    );
    let mut t = 0;
    while t <= scale.span_ms {
        let _ = write!(
            out,
            "M{} {}V{}",
            num(scale.x(t)),
            num(layout.lanes_top),
            num(layout.bottom)
        );
        t += step;
    }
    out.push_str("\"/>\n");
}

#[allow(clippy::too_many_arguments)]
fn draw_lane(
    out: &mut String,
    lane: &Lane,
    i: usize,
    ticks: &Ticks,
    reads: bool,
    marks: &AnomalyMarks,
    scale: &Scale,
    layout: &Layout,
) {
    let y = layout.lane_y(i, usize::MAX);
    let h = layout.lane_h;
    let _ = writeln!(
        out,
        "<g class=\"lane\" data-node=\"{}\"><title>node {}: {}</title>",
        lane.node,
        lane.node,
        ticks.summary(i)
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">node {}</text>",
        num(LEFT - 8.0),
        num(y + h / 2.0 + 4.0),
        lane.node
    );
    for span in &lane.states {
        let (x0, x1) = (scale.x(span.from_ms), scale.x(span.to_ms));
        let _ = writeln!(
            out,
            "<rect class=\"state\" data-state=\"{}\" data-from-ms=\"{}\" data-to-ms=\"{}\" x=\"{}\" \
             y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>node {} {} from {} ms to {} \
             ms</title></rect>",
            span.value.name(),
            span.from_ms,
            span.to_ms,
            num(x0),
            num(y + 1.0),
            num(x1 - x0),
            num(h - 2.0),
            span.value.fill(),
            lane.node,
            span.value.name(),
            span.from_ms,
            span.to_ms
        );
    }
    for span in &lane.roles {
        let (role, epoch) = span.value;
        let (x0, x1) = (scale.x(span.from_ms), scale.x(span.to_ms));
        let shape = match role {
            Role::Leader => format!(
                "x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"{LEADER_BLUE}\" \
                 stroke-width=\"1.5\"",
                num(x0 + 0.75),
                num(y + 1.75),
                num((x1 - x0 - 1.5).max(0.5)),
                num(h - 3.5)
            ),
            Role::Writer => format!(
                "x=\"{}\" y=\"{}\" width=\"{}\" height=\"4\" fill=\"{WRITER_BLUE}\"",
                num(x0),
                num(y + h - 6.0),
                num((x1 - x0).max(0.5))
            ),
        };
        let _ = writeln!(
            out,
            "<rect class=\"role\" data-role=\"{}\" data-epoch=\"{epoch}\" data-from-ms=\"{}\" \
             data-to-ms=\"{}\" {shape}><title>node {} {} of epoch {epoch} from {} ms to {} \
             ms</title></rect>",
            role.name(),
            span.from_ms,
            span.to_ms,
            lane.node,
            role.name(),
            span.from_ms,
            span.to_ms
        );
    }
    ticks.draw(out, i, y, h, reads);
    if let Some(red) = marks.by_lane.get(&i) {
        out.push_str(red);
    }
    out.push_str("</g>\n");
}

fn draw_clients(
    out: &mut String,
    lanes: usize,
    ticks: &Ticks,
    reads: bool,
    marks: &AnomalyMarks,
    scale: &Scale,
    layout: &Layout,
) {
    let (y, h) = (layout.clients_top, layout.lane_h);
    let _ = writeln!(
        out,
        "<g class=\"clients\"><title>operations served by no node of the lab: {}</title>",
        ticks.summary(lanes)
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#4b5563\">clients</text>",
        num(LEFT - 8.0),
        num(y + h / 2.0 + 4.0)
    );
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f3f4f6\"/>",
        num(LEFT),
        num(y + 1.0),
        num(scale.x(scale.span_ms) - LEFT),
        num(h - 2.0)
    );
    ticks.draw(out, lanes, y, h, reads);
    if let Some(red) = marks.by_lane.get(&lanes) {
        out.push_str(red);
    }
    out.push_str("</g>\n");
}

fn fault_colour(fault: &Fault) -> &'static str {
    match fault {
        Fault::Kill { .. } => "#111827",
        Fault::Pause { .. } => "#b45309",
        Fault::Resume { .. } | Fault::Restart { .. } => "#15803d",
        Fault::Heal { .. } | Fault::HealAll => "#0f766e",
        Fault::Cut { .. } => "#7c3aed",
        Fault::Partition { .. } => "#db2777",
        Fault::Delay { .. } => "#0284c7",
        Fault::Loss { .. } => "#0d9488",
    }
}

fn draw_fault(
    out: &mut String,
    mark: &Mark,
    placed: &Placed,
    index: &BTreeMap<NodeId, usize>,
    scale: &Scale,
    layout: &Layout,
) {
    let text = mark.fault.to_string();
    let colour = fault_colour(&mark.fault);
    let row_y = HEADER_TOP + placed.row as f64 * ROW_H;
    let x0 = scale.x(mark.from_ms);
    let (anchor, label_x) = if placed.to_the_left {
        ("end", x0 - 3.0)
    } else if mark.band {
        ("start", x0 + 3.0)
    } else {
        ("start", x0 + 6.0)
    };
    let lane_h = layout.lane_h;
    if mark.band {
        let x1 = scale.x(mark.to_ms);
        let w = (x1 - x0).max(1.5);
        let until = if mark.healed {
            format!("healed at {} ms", mark.to_ms)
        } else {
            "in force until the end".to_string()
        };
        let _ = writeln!(
            out,
            "<g class=\"fault\" data-action=\"{}\" data-from-ms=\"{}\" data-to-ms=\"{}\" \
             data-healed=\"{}\"><title>{} at {} ms, {until}</title>",
            mark.fault.action(),
            mark.from_ms,
            mark.to_ms,
            mark.healed,
            esc(&text),
            mark.from_ms
        );
        // The band in its row of labels, and faintly across every lane.
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" fill-opacity=\"0.25\"/>",
            num(x0),
            num(row_y + 1.0),
            num(w),
            num(ROW_H - 2.0)
        );
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" fill-opacity=\"0.07\" \
             stroke=\"{colour}\" stroke-opacity=\"0.5\" stroke-width=\"0.5\"/>",
            num(x0),
            num(layout.lanes_top),
            num(w),
            num(layout.bottom - layout.lanes_top)
        );
        // The link's two ends get a stripe along the top of their lanes.
        if let Some((_, Some((a, b)))) = link_of(&mark.fault) {
            for node in [a, b] {
                if let Some(&i) = index.get(&node) {
                    let _ = writeln!(
                        out,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"3\" fill=\"{colour}\"/>",
                        num(x0),
                        num(layout.lane_y(i, index.len()) + 1.0),
                        num(w)
                    );
                }
            }
        }
    } else {
        let _ = writeln!(
            out,
            "<g class=\"fault\" data-action=\"{}\" data-at-ms=\"{}\"><title>{} at {} ms</title>",
            mark.fault.action(),
            mark.from_ms,
            esc(&text),
            mark.from_ms
        );
        // A small flag in the row of labels, a dashed line down through every lane, solid
        // through the node's own.
        let _ = writeln!(
            out,
            "<path d=\"M{x} {}l4 -4h-8z\" fill=\"{colour}\"/>\n<path d=\"M{x} {}V{}\" stroke=\"{colour}\" \
             stroke-width=\"1\" stroke-dasharray=\"3 2\"/>",
            num(row_y + ROW_H - 2.0),
            num(row_y + ROW_H - 2.0),
            num(layout.bottom),
            x = num(x0)
        );
        if let Some(&i) = node_of(&mark.fault).and_then(|n| index.get(&n)) {
            let y = layout.lane_y(i, index.len());
            let _ = writeln!(
                out,
                "<path d=\"M{} {}v{}\" stroke=\"{colour}\" stroke-width=\"2.5\"/>",
                num(x0),
                num(y),
                num(lane_h)
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\" fill=\"{colour}\">{}</text></g>",
        num(label_x),
        num(row_y + ROW_H - 4.0),
        esc(&text)
    );
}

fn axis(out: &mut String, scale: &Scale, layout: &Layout) {
    let y = layout.bottom + 4.0;
    let step = tick_step(scale.span_ms);
    let _ = writeln!(
        out,
        "<g class=\"axis\"><path d=\"M{} {}H{}\" stroke=\"#374151\" stroke-width=\"1\"/>",
        num(LEFT),
        num(y),
        num(scale.x(scale.span_ms))
    );
    let mut t = 0;
    while t <= scale.span_ms {
        let x = scale.x(t);
        let _ = writeln!(
            out,
            "<path d=\"M{x} {}v5\" stroke=\"#374151\" stroke-width=\"1\"/><text class=\"tick\" \
             data-ms=\"{t}\" x=\"{x}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" \
             fill=\"#374151\">{}</text>",
            num(y),
            num(y + 16.0),
            tick_label(t, step),
            x = num(x)
        );
        t += step;
    }
    out.push_str("</g>\n");
}

/// The legend, below the axis; returns the document's height.
fn legend(out: &mut String, layout: &Layout, reads: bool, anomalies_left_out: usize) -> f64 {
    let top = layout.bottom + 34.0;
    let swatch = |fill: &str| format!("<rect width=\"16\" height=\"10\" fill=\"{fill}\"/>");
    let tick =
        |colour: &str| format!("<path d=\"M8 0v10\" stroke=\"{colour}\" stroke-width=\"2\"/>");
    let mut items: Vec<(String, String)> = vec![
        (swatch(State::Up.fill()), "up".into()),
        (swatch(State::Down.fill()), "down (killed)".into()),
        (swatch(State::Paused.fill()), "paused".into()),
        (
            format!(
                "<rect x=\"0.75\" y=\"0.75\" width=\"14.5\" height=\"8.5\" fill=\"none\" \
                 stroke=\"{LEADER_BLUE}\" stroke-width=\"1.5\"/>"
            ),
            "leader (root of its tree)".into(),
        ),
        (
            format!("<rect y=\"3\" width=\"16\" height=\"4\" fill=\"{WRITER_BLUE}\"/>"),
            "writer".into(),
        ),
        (tick(TICK_KINDS[0].1), "write ok".into()),
        (tick(TICK_KINDS[1].1), "write failed".into()),
        (tick(TICK_KINDS[2].1), "write unknown (info)".into()),
    ];
    items.push(if reads {
        (
            format!(
                "<path d=\"M4 4v6M8 4v6M12 4v6\" stroke=\"{}\" stroke-width=\"2\"/>",
                TICK_KINDS[3].1
            ),
            "reads (lower half: ok, failed, unknown)".into(),
        )
    } else {
        (String::new(), "reads left out (too many)".into())
    });
    items.extend([
        (
            format!(
                "<rect width=\"16\" height=\"10\" fill=\"{}\" fill-opacity=\"0.3\"/>",
                fault_colour(&Fault::Cut {
                    a: Target::Id(1),
                    b: Target::Id(2)
                })
            ),
            "link fault, until healed".into(),
        ),
        (
            "<path d=\"M8 0v10\" stroke=\"#111827\" stroke-dasharray=\"3 2\"/>".into(),
            "node fault, heal".into(),
        ),
        (
            format!("<path d=\"M8 0l5 5l-5 5l-5 -5z\" fill=\"{RED}\"/>"),
            if anomalies_left_out > 0 {
                format!("anomaly ({anomalies_left_out} more marks left out)")
            } else {
                "anomaly (an operation involved)".into()
            },
        ),
    ]);
    out.push_str("<g class=\"legend\">\n");
    let (mut x, mut y) = (LEFT, top);
    for (shape, label) in items {
        let w = 22.0 + label.chars().count() as f64 * 6.2 + 18.0;
        if x + w > WIDTH - RIGHT && x > LEFT {
            x = LEFT;
            y += 18.0;
        }
        let _ = writeln!(
            out,
            "<g transform=\"translate({},{})\">{shape}<text x=\"22\" y=\"9\">{}</text></g>",
            num(x),
            num(y),
            esc(&label)
        );
        x += w;
    }
    out.push_str("</g>\n");
    y + 22.0
}

// ---------------------------------------------------------------------------------------------
// Text.

/// A number with at most one decimal.
fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Text escaped for XML; characters XML 1.0 cannot hold become U+FFFD; long texts are cut.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == MAX_TITLE_CHARS {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EpochView;
    use crate::report::{Anomaly, Involved, Kind};

    fn op(
        time_ms: u64,
        process: Process,
        kind: Type,
        f: F,
        value: Value,
        node: Option<NodeId>,
    ) -> Op {
        Op {
            time_ms,
            process,
            kind,
            f,
            value,
            node,
        }
    }

    fn fault(time_ms: u64, fault: Fault) -> Op {
        op(
            time_ms,
            Process::Nemesis,
            Type::Ok,
            F::Fault,
            Value::Fault(fault),
            None,
        )
    }

    fn epoch(time_ms: u64, node: NodeId, epoch: u64, root: NodeId, roles: &[&str]) -> Op {
        let view = EpochView {
            epoch,
            root: Some(root),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        op(
            time_ms,
            Process::Lab,
            Type::Info,
            F::Epoch,
            Value::Epoch(view),
            Some(node),
        )
    }

    fn write(time_ms: u64, client: u32, kind: Type, node: Option<NodeId>) -> Op {
        op(
            time_ms,
            Process::Client(client),
            kind,
            F::Write,
            Value::Text(format!("c{client}-{time_ms}")),
            node,
        )
    }

    fn id(n: NodeId) -> Target {
        Target::Id(n)
    }

    /// A six-node run: node 3 killed at 5 s and restarted at 10 s, some writes, ends at 20 s.
    fn kill_restart() -> Vec<Op> {
        vec![
            write(0, 0, Type::Invoke, None),
            epoch(100, 1, 1, 1, &["writer"]),
            epoch(100, 3, 1, 1, &["input"]),
            write(900, 0, Type::Ok, Some(3)),
            fault(5000, Fault::Kill { node: id(3) }),
            write(5100, 1, Type::Invoke, None),
            write(6000, 1, Type::Info, None),
            fault(10_000, Fault::Restart { node: id(3) }),
            write(12_000, 1, Type::Fail, Some(4)),
            write(20_000, 0, Type::Ok, Some(1)),
        ]
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg)
            .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{svg}"))
    }

    fn has_class(node: &roxmltree::Node, class: &str) -> bool {
        node.attribute("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }

    fn lane<'a, 'i>(doc: &'a roxmltree::Document<'i>, n: NodeId) -> roxmltree::Node<'a, 'i> {
        let n = n.to_string();
        doc.descendants()
            .find(|e| {
                e.has_tag_name("g") && has_class(e, "lane") && e.attribute("data-node") == Some(&n)
            })
            .unwrap_or_else(|| panic!("no lane for node {n}"))
    }

    /// A lane's state rectangles: (state, from, to).
    fn states(doc: &roxmltree::Document, n: NodeId) -> Vec<(String, u64, u64)> {
        lane(doc, n)
            .descendants()
            .filter(|e| e.attribute("data-state").is_some())
            .map(|e| {
                (
                    e.attribute("data-state").unwrap().to_string(),
                    e.attribute("data-from-ms").unwrap().parse().unwrap(),
                    e.attribute("data-to-ms").unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// A lane's role marks: (role, epoch, from, to).
    fn roles(doc: &roxmltree::Document, n: NodeId) -> Vec<(String, u64, u64, u64)> {
        lane(doc, n)
            .descendants()
            .filter(|e| e.attribute("data-role").is_some())
            .map(|e| {
                (
                    e.attribute("data-role").unwrap().to_string(),
                    e.attribute("data-epoch").unwrap().parse().unwrap(),
                    e.attribute("data-from-ms").unwrap().parse().unwrap(),
                    e.attribute("data-to-ms").unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    fn f64_attr(e: &roxmltree::Node, name: &str) -> f64 {
        e.attribute(name).unwrap().parse().unwrap()
    }

    #[test]
    fn timeline_is_an_svg_document_with_one_lane_per_node() {
        let nodes = [1, 2, 3, 4, 5, 6];
        let svg = svg(&kill_restart(), &nodes, &Anomalies::new());
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert_eq!(root.attribute("width"), Some("1200"));
        let lanes: Vec<&str> = doc
            .descendants()
            .filter(|e| e.has_tag_name("g") && has_class(e, "lane"))
            .map(|e| e.attribute("data-node").unwrap())
            .collect();
        assert_eq!(lanes, ["1", "2", "3", "4", "5", "6"]);
        let labels: Vec<&str> = doc
            .descendants()
            .filter_map(|e| e.text())
            .filter(|t| t.starts_with("node "))
            .collect();
        for n in nodes {
            assert!(labels.contains(&format!("node {n}").as_str()), "{labels:?}");
        }
        // Nothing external, nothing scripted.
        assert!(!svg.contains("<script") && !svg.contains("href") && !svg.contains("<image"));
    }

    #[test]
    fn timeline_draws_a_killed_then_restarted_node_down_in_between() {
        let doc_text = svg(&kill_restart(), &[1, 2, 3, 4, 5, 6], &Anomalies::new());
        let doc = parse(&doc_text);
        assert_eq!(
            states(&doc, 3),
            [
                ("up".into(), 0, 5000),
                ("down".into(), 5000, 10_000),
                ("up".into(), 10_000, 20_000)
            ]
        );
        assert_eq!(states(&doc, 2), [("up".into(), 0, 20_000)]);
        let down = lane(&doc, 3)
            .descendants()
            .find(|e| e.attribute("data-state") == Some("down"))
            .unwrap();
        let (x, width) = (f64_attr(&down, "x"), f64_attr(&down, "width"));
        assert!((x - (LEFT + PLOT_W * 0.25)).abs() < 0.2, "x {x}");
        assert!((width - PLOT_W * 0.25).abs() < 0.2, "width {width}");
        // The kill and the restart are lines labelled with the fault.
        let faults: Vec<(&str, &str)> = doc
            .descendants()
            .filter(|e| has_class(e, "fault"))
            .map(|e| {
                (
                    e.attribute("data-action").unwrap(),
                    e.attribute("data-at-ms").unwrap(),
                )
            })
            .collect();
        assert_eq!(faults, [("kill", "5000"), ("restart", "10000")]);
        assert!(doc.descendants().any(|e| e.text() == Some("kill node 3")));
    }

    #[test]
    fn timeline_follows_pause_kill_and_heal_all() {
        let history = vec![
            fault(2000, Fault::Pause { node: id(2) }),
            fault(3000, Fault::Pause { node: id(1) }),
            fault(4000, Fault::Kill { node: id(2) }),
            fault(5000, Fault::Resume { node: id(1) }),
            fault(6000, Fault::HealAll),
            write(8000, 0, Type::Ok, Some(1)),
        ];
        let doc_text = svg(&history, &[1, 2], &Anomalies::new());
        let doc = parse(&doc_text);
        assert_eq!(
            states(&doc, 2),
            [
                ("up".into(), 0, 2000),
                ("paused".into(), 2000, 4000),
                ("down".into(), 4000, 6000),
                ("up".into(), 6000, 8000)
            ]
        );
        assert_eq!(
            states(&doc, 1),
            [
                ("up".into(), 0, 3000),
                ("paused".into(), 3000, 5000),
                ("up".into(), 5000, 8000)
            ]
        );
    }

    #[test]
    fn timeline_marks_leader_and_writer_until_an_epoch_line_or_a_kill_ends_them() {
        let history = vec![
            epoch(1000, 1, 1, 1, &["writer"]),
            epoch(1000, 2, 1, 1, &["persistence"]),
            fault(5000, Fault::Kill { node: id(1) }),
            epoch(6000, 2, 2, 2, &["writer"]),
            epoch(7000, 2, 3, 2, &["writer", "input"]),
            epoch(8000, 2, 4, 3, &["input"]),
            write(10_000, 0, Type::Ok, Some(2)),
        ];
        let doc_text = svg(&history, &[1, 2, 3], &Anomalies::new());
        let doc = parse(&doc_text);
        let mut one = roles(&doc, 1);
        one.sort();
        assert_eq!(
            one,
            [
                ("leader".into(), 1, 1000, 5000),
                ("writer".into(), 1, 1000, 5000)
            ]
        );
        let mut two = roles(&doc, 2);
        two.sort();
        assert_eq!(
            two,
            [
                ("leader".into(), 2, 6000, 7000),
                ("leader".into(), 3, 7000, 8000),
                ("writer".into(), 2, 6000, 7000),
                ("writer".into(), 3, 7000, 8000)
            ]
        );
        assert!(roles(&doc, 3).is_empty());
    }

    #[test]
    fn timeline_draws_link_faults_as_bands_until_healed() {
        let partition = Fault::Partition {
            groups: vec![vec![1, 2], vec![3, 4, 5, 6]],
        };
        let history = vec![
            fault(2000, Fault::Cut { a: id(1), b: id(2) }),
            fault(3000, Fault::Cut { a: id(3), b: id(4) }),
            fault(4000, Fault::Heal { a: id(2), b: id(1) }),
            fault(5000, partition),
            fault(8000, Fault::HealAll),
            fault(
                9000,
                Fault::Delay {
                    a: id(1),
                    b: id(2),
                    ms: 200,
                },
            ),
            fault(
                9500,
                Fault::Delay {
                    a: id(1),
                    b: id(2),
                    ms: 300,
                },
            ),
            fault(
                9600,
                Fault::Loss {
                    a: id(2),
                    b: id(3),
                    percent: 20,
                },
            ),
            write(10_000, 0, Type::Ok, None),
        ];
        let doc_text = svg(&history, &[1, 2, 3, 4, 5, 6], &Anomalies::new());
        let doc = parse(&doc_text);
        let bands: Vec<(&str, &str, &str, &str)> = doc
            .descendants()
            .filter(|e| has_class(e, "fault") && e.attribute("data-from-ms").is_some())
            .map(|e| {
                (
                    e.attribute("data-action").unwrap(),
                    e.attribute("data-from-ms").unwrap(),
                    e.attribute("data-to-ms").unwrap(),
                    e.attribute("data-healed").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            bands,
            [
                ("cut", "2000", "4000", "true"),
                ("cut", "3000", "8000", "true"),
                ("partition", "5000", "8000", "true"),
                ("delay", "9000", "9500", "true"),
                ("delay", "9500", "10000", "false"),
                ("loss", "9600", "10000", "false"),
            ]
        );
        let lines: Vec<&str> = doc
            .descendants()
            .filter(|e| has_class(e, "fault") && e.attribute("data-at-ms").is_some())
            .map(|e| e.attribute("data-action").unwrap())
            .collect();
        assert_eq!(lines, ["heal", "heal-all"]);
        assert!(doc
            .descendants()
            .any(|e| e.text() == Some("partition 1,2 | 3,4,5,6")));
        // No lane went down for a link fault.
        assert!(states(&doc, 1).iter().all(|(s, _, _)| s == "up"));
    }

    #[test]
    fn timeline_puts_operations_on_the_lane_that_served_them() {
        let history = kill_restart();
        let doc_text = svg(&history, &[1, 2, 3, 4, 5, 6], &Anomalies::new());
        let doc = parse(&doc_text);
        let ops = |e: roxmltree::Node| -> Vec<String> {
            e.descendants()
                .filter_map(|p| p.attribute("data-ops"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(ops(lane(&doc, 3)), ["write-ok"]);
        assert_eq!(ops(lane(&doc, 4)), ["write-fail"]);
        assert!(ops(lane(&doc, 2)).is_empty());
        let clients = doc.descendants().find(|e| has_class(e, "clients")).unwrap();
        assert_eq!(ops(clients), ["write-info"]);
    }

    #[test]
    fn timeline_marks_anomalies_in_red_with_their_sentence() {
        let history = kill_restart();
        let mut anomalies = Anomalies::new();
        anomalies.insert(
            Kind::Lost,
            vec![Anomaly {
                what: "write \"c0-900\" was acknowledged but node 4's final read lacks it".into(),
                ops: vec![
                    Involved {
                        index: 3,
                        op: history[3].clone(),
                    },
                    Involved {
                        index: 6,
                        op: history[6].clone(),
                    },
                ],
            }],
        );
        anomalies.insert(
            Kind::NoConvergence,
            vec![Anomaly {
                what: "never converged".into(),
                ops: vec![],
            }],
        );
        let doc_text = svg(&history, &[1, 2, 3, 4, 5, 6], &anomalies);
        let doc = parse(&doc_text);
        let red: Vec<roxmltree::Node> = doc
            .descendants()
            .filter(|e| has_class(e, "anomaly"))
            .collect();
        assert_eq!(red.len(), 2);
        assert_eq!(red[0].attribute("data-kind"), Some("lost"));
        assert_eq!(red[0].attribute("data-time-ms"), Some("900"));
        let title = red[0].children().find(|c| c.has_tag_name("title")).unwrap();
        assert!(
            title
                .text()
                .unwrap()
                .contains("node 4's final read lacks it"),
            "{:?}",
            title.text()
        );
        // The first on node 3's lane (it served the write), the second on the clients' strip.
        assert!(lane(&doc, 3)
            .descendants()
            .any(|e| has_class(&e, "anomaly")));
        let clients = doc.descendants().find(|e| has_class(e, "clients")).unwrap();
        assert!(clients.descendants().any(|e| has_class(&e, "anomaly")));
        assert!(doc_text.contains("anomalies: lost 1, no-convergence 1"));
    }

    #[test]
    fn timeline_escapes_text_for_xml() {
        let what = "phantom \"<&>\" seen by 'node 2'\u{1}";
        let history = vec![write(100, 0, Type::Ok, Some(2))];
        let mut anomalies = Anomalies::new();
        anomalies.insert(
            Kind::Phantom,
            vec![Anomaly {
                what: what.into(),
                ops: vec![Involved {
                    index: 0,
                    op: history[0].clone(),
                }],
            }],
        );
        let doc_text = svg(&history, &[1, 2], &anomalies);
        assert!(!doc_text.contains("<&>"));
        let doc = parse(&doc_text);
        let title = doc
            .descendants()
            .find(|e| has_class(e, "anomaly"))
            .and_then(|e| e.children().find(|c| c.has_tag_name("title")))
            .and_then(|t| t.text())
            .unwrap();
        assert!(
            title.contains("phantom \"<&>\" seen by 'node 2'\u{FFFD}"),
            "{title}"
        );
        assert_eq!(esc("a<b&c>\"'"), "a&lt;b&amp;c&gt;&quot;&apos;");
    }

    #[test]
    fn timeline_of_nothing_is_still_a_document() {
        for nodes in [&[][..], &[1, 2][..]] {
            let doc_text = svg(&[], nodes, &Anomalies::new());
            let doc = parse(&doc_text);
            let lanes = doc.descendants().filter(|e| has_class(e, "lane")).count();
            assert_eq!(lanes, nodes.len());
            assert!(f64_attr(&doc.root_element(), "height") > 0.0);
        }
        // Duplicate ids still give one lane each.
        let doc_text = svg(&[], &[2, 2, 1], &Anomalies::new());
        assert_eq!(
            parse(&doc_text)
                .descendants()
                .filter(|e| has_class(e, "lane"))
                .count(),
            2
        );
    }

    #[test]
    fn timeline_axis_ticks_every_one_two_five_or_ten_seconds() {
        assert_eq!(tick_step(20_000), 2000);
        assert_eq!(tick_step(10_000), 1000);
        assert_eq!(tick_step(30_000), 5000);
        assert_eq!(tick_step(60_000), 10_000);
        assert_eq!(tick_step(3000), 500);
        for span in [1, 999, 3000, 20_000, 45_000, 120_000, 3_600_000] {
            let ticks = span / tick_step(span) + 1;
            assert!(
                (3..=12).contains(&ticks) || span < 10,
                "{span} ms: {ticks} ticks"
            );
        }
        let doc_text = svg(&kill_restart(), &[1, 2, 3], &Anomalies::new());
        let doc = parse(&doc_text);
        let labels: Vec<&str> = doc
            .descendants()
            .filter(|e| has_class(e, "tick"))
            .filter_map(|e| e.text())
            .collect();
        assert_eq!(
            labels,
            ["0 s", "2 s", "4 s", "6 s", "8 s", "10 s", "12 s", "14 s", "16 s", "18 s", "20 s"]
        );
    }

    #[test]
    fn timeline_of_a_big_run_stays_small() {
        // 30 nodes, 10,000 operations (invoke and completion) over 20 s, faults and epochs.
        let nodes: Vec<NodeId> = (1..=30).collect();
        let mut history = Vec::new();
        for i in 0..5000u64 {
            let t = i * 4;
            let client = (i % 8) as u32;
            let node = Some(1 + (i * 7) % 30);
            let f = if i % 2 == 0 { F::Write } else { F::Read };
            let kind = [Type::Ok, Type::Ok, Type::Ok, Type::Fail, Type::Info][(i % 5) as usize];
            history.push(op(
                t,
                Process::Client(client),
                Type::Invoke,
                f,
                Value::None,
                None,
            ));
            let value = if f == F::Read {
                Value::Texts(vec!["c0-1".into()])
            } else {
                Value::Text(format!("c{client}-{i}"))
            };
            history.push(op(t + 3, Process::Client(client), kind, f, value, node));
            if i % 250 == 0 {
                let n = 1 + (i / 250) % 30;
                history.push(fault(t, Fault::Kill { node: id(n) }));
                history.push(fault(
                    t + 1,
                    Fault::Cut {
                        a: id(n),
                        b: id(n % 30 + 1),
                    },
                ));
                for m in &nodes {
                    history.push(epoch(
                        t + 2,
                        *m,
                        i,
                        1,
                        if *m == 1 { &["writer"] } else { &["input"] },
                    ));
                }
            }
            if i % 250 == 125 {
                history.push(fault(t, Fault::HealAll));
            }
        }
        let mut anomalies = Anomalies::new();
        anomalies.insert(
            Kind::StaleRead,
            (0..500)
                .map(|i| Anomaly {
                    what: format!("stale read {i}"),
                    ops: vec![Involved {
                        index: i * 7,
                        op: history[i * 7].clone(),
                    }],
                })
                .collect(),
        );
        let doc_text = svg(&history, &nodes, &anomalies);
        assert!(doc_text.len() < 1_000_000, "{} bytes", doc_text.len());
        let doc = parse(&doc_text);
        assert_eq!(
            doc.descendants().filter(|e| has_class(e, "lane")).count(),
            30
        );
        assert!(doc.descendants().any(|e| has_class(&e, "anomaly")));
    }
}
