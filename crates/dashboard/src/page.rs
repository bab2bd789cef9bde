//! The dashboard's page: one self-contained document (no network but its own server's API).
//!
//! The topology is laid out by labctl ([`labctl_classroom::layout::Layout`], the same layout as
//! the replay pages) and embedded in the page; the page's script draws it again from each
//! `report` event: each node filled by its roles (down nodes hollow, paused ones ringed), the
//! tree's edges thick, cut links dashed red, delayed or lossy links dashed orange. Clicking a
//! node or a link selects it; the buttons then inject a fault on it through `POST /api/faults`.

use std::fmt::Write as _;

use labctl_classroom::layout::Layout;
use labctl_classroom::picture::escape;
use labctl_core::report::Adjacency;

/// Drawing size, in SVG units.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 480.0;
const MARGIN: f64 = 40.0;

/// The page for the lab `title` of `adjacency`.
pub fn page(title: &str, adjacency: &Adjacency) -> String {
    let layout = Layout::of(adjacency);
    let mut nodes = String::from("{");
    for (i, (id, p)) in layout.at.iter().enumerate() {
        let x = MARGIN + p.x * (WIDTH - 2.0 * MARGIN);
        let y = MARGIN + p.y * (HEIGHT - 2.0 * MARGIN);
        let _ = write!(
            nodes,
            "{}\"{id}\":[{x:.1},{y:.1}]",
            if i > 0 { "," } else { "" }
        );
    }
    nodes.push('}');
    let links: Vec<String> = adjacency
        .iter()
        .flat_map(|(&a, bs)| bs.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
        .map(|(a, b)| format!("[{a},{b}]"))
        .collect();
    let links = format!("[{}]", links.join(","));
    let title = escape(title);
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>{title}: labctl dashboard</title>
<style>
body {{ font-family: sans-serif; margin: 0 auto; max-width: 1200px; color: #212121; padding: 0 1em; }}
header {{ display: flex; gap: 2em; align-items: baseline; flex-wrap: wrap; border-bottom: 1px solid #ddd; }}
header b {{ font-size: 1.4em; }}
main {{ display: flex; gap: 1.5em; flex-wrap: wrap; }}
#graph {{ border: 1px solid #ddd; background: #fafafa; }}
aside {{ flex: 1; min-width: 320px; }}
table {{ border-collapse: collapse; font-size: .9em; }} td, th {{ padding: .15em .6em; border-bottom: 1px solid #eee; text-align: left; }}
button {{ font-size: 1em; margin: .15em; padding: .3em .8em; }} button:disabled {{ opacity: .4; }}
#message {{ min-height: 1.4em; }} #message.error {{ color: #c62828; }} #message.ok {{ color: #2e7d32; }}
.legend span {{ display: inline-block; margin-right: 1em; }}
.dot {{ display: inline-block; width: .9em; height: .9em; border-radius: 50%; vertical-align: middle; margin-right: .3em; border: 1px solid #333; }}
.node text {{ pointer-events: none; }} .node, .link {{ cursor: pointer; }}
.selected circle {{ stroke: #ff6f00 !important; stroke-width: 5 !important; }}
.link.selected line.shown {{ stroke: #ff6f00 !important; }}
</style></head>
<body>
<header><b>{title}</b>
<span>epoch <b id="epoch">–</b></span>
<span>writer <b id="leader">–</b></span>
<span id="converged">waiting for the first report…</span>
<a id="chat" href="#">the chat (through the nameserver)</a>
</header>
<p class="legend"><span><i class="dot" style="background:#c62828"></i>writer / leader</span><span><i class="dot" style="background:#6a1b9a"></i>persistence</span><span><i class="dot" style="background:#00838f"></i>input</span><span><i class="dot" style="background:#757575"></i>forwarder</span><span><i class="dot" style="background:#fff;border-style:dashed"></i>down</span><span><i class="dot" style="background:#bbdefb"></i>paused</span> — thick: tree edge · dashed red: cut · dashed orange: delayed or lossy</p>
<main>
<div>
<svg id="graph" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="the lab's graph"></svg>
<p>Click a node or a link, then a fault:</p>
<div id="faults">
<span id="selection">nothing selected</span><br/>
<button type="button" id="fault-kill" data-action="kill" data-on="node" disabled>kill</button>
<button type="button" id="fault-pause" data-action="pause" data-on="node" disabled>pause</button>
<button type="button" id="fault-resume" data-action="resume" data-on="node" disabled>resume</button>
<button type="button" id="fault-restart" data-action="restart" data-on="node" disabled>restart</button>
<br/>
<button type="button" id="fault-cut" data-action="cut" data-on="link" disabled>cut</button>
<button type="button" id="fault-heal" data-action="heal" data-on="link" disabled>heal</button>
<button type="button" id="fault-delay" data-action="delay" data-on="link" disabled>delay</button> by <input id="delay-ms" type="number" value="200" min="0" max="60000" size="6"/> ms
<button type="button" id="fault-loss" data-action="loss" data-on="link" disabled>loss</button> of <input id="loss-percent" type="number" value="20" min="0" max="90" size="3"/> %
<br/>
<input id="partition-groups" placeholder="1,2 3,4,5,6" size="24"/> <button type="button" id="fault-partition" data-action="partition">partition</button>
<button type="button" id="fault-heal-all" data-action="heal-all">heal everything</button>
<p id="message"></p>
</div>
</div>
<aside>
<h3>Components</h3><table id="components"></table>
<h3>Faults in force</h3><ul id="in-force"></ul>
<h3>Messages in the quorum's epoch</h3><table id="counters"></table>
<h3>Epochs</h3><table id="history"><tr><th>epoch</th><th>writer</th><th>converged at</th><th>failover</th></tr></table>
</aside>
</main>
<script>
(function () {{
  var at = {nodes};
  var links = {links};
  var svgns = 'http://www.w3.org/2000/svg';
  var report = null, selected = null;
  var colours = {{ writer: '#c62828', leader: '#c62828', persistence: '#6a1b9a', input: '#00838f', forwarder: '#757575' }};
  function el(name, attrs, parent) {{
    var e = document.createElementNS(svgns, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }}
  function text(id, value) {{ document.getElementById(id).textContent = value; }}
  function key(a, b) {{ return Math.min(a, b) + '-' + Math.max(a, b); }}
  function linkStates() {{
    var cut = {{}}, slow = {{}};
    (report.faults || []).forEach(function (f) {{
      if (f.action === 'cut') cut[key(f.a, f.b)] = true;
      if (f.action === 'delay' || f.action === 'loss') slow[key(f.a, f.b)] = true;
      if (f.action === 'partition') {{
        var group = {{}};
        f.groups.forEach(function (g, i) {{ g.forEach(function (n) {{ group[n] = i; }}); }});
        links.forEach(function (l) {{ if (group[l[0]] !== group[l[1]]) cut[key(l[0], l[1])] = true; }});
      }}
    }});
    return {{ cut: cut, slow: slow }};
  }}
  function draw() {{
    var svg = document.getElementById('graph');
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var states = report ? linkStates() : {{ cut: {{}}, slow: {{}} }};
    var tree = report ? report.tree : {{}};
    links.forEach(function (l) {{
      var a = at[l[0]], b = at[l[1]], k = key(l[0], l[1]);
      var isTree = tree[l[0]] === l[1] || tree[l[1]] === l[0];
      var g = el('g', {{ 'class': 'link', id: 'link-' + k, 'data-a': l[0], 'data-b': l[1] }}, svg);
      if (selected && selected.link === k) g.classList.add('selected');
      var style = {{ x1: a[0], y1: a[1], x2: b[0], y2: b[1], 'class': 'shown',
        stroke: states.cut[k] ? '#c62828' : states.slow[k] ? '#ef6c00' : isTree ? '#212121' : '#9e9e9e',
        'stroke-width': isTree ? 5 : 2 }};
      if (states.cut[k] || states.slow[k]) style['stroke-dasharray'] = '8 6';
      el('line', style, g);
      el('line', {{ x1: a[0], y1: a[1], x2: b[0], y2: b[1], stroke: 'transparent', 'stroke-width': 14 }}, g);
      g.addEventListener('click', function () {{ select({{ link: k, a: l[0], b: l[1] }}); }});
    }});
    Object.keys(at).forEach(function (id) {{
      var p = at[id];
      var roles = (report && report.roles[id]) || [];
      var state = report && report.addresses[id] ? report.addresses[id].state : 'running';
      var g = el('g', {{ 'class': 'node', id: 'node-' + id, 'data-node': id, 'data-state': state, 'data-roles': roles.join(' ') }}, svg);
      if (selected && selected.node === id) g.classList.add('selected');
      var fill = state === 'down' ? '#ffffff' : state === 'paused' ? '#bbdefb' : (colours[roles[0]] || '#e0e0e0');
      var circle = {{ cx: p[0], cy: p[1], r: 18, fill: fill, stroke: '#212121', 'stroke-width': 2 }};
      if (state === 'down' || state === 'unreachable') circle['stroke-dasharray'] = '4 3';
      el('circle', circle, g);
      var label = el('text', {{ x: p[0], y: p[1] + 5, 'text-anchor': 'middle', 'font-size': 14, fill: roles.length && state === 'running' ? '#fff' : '#212121' }}, g);
      label.textContent = id;
      var caption = el('text', {{ x: p[0], y: p[1] + 34, 'text-anchor': 'middle', 'font-size': 11, fill: '#424242', stroke: '#fafafa', 'stroke-width': 3, 'paint-order': 'stroke' }}, g);
      caption.textContent = state === 'running' ? roles.join(', ') : state;
      g.addEventListener('click', function () {{ select({{ node: id }}); }});
    }});
  }}
  function select(what) {{
    selected = what;
    text('selection', what.node ? 'node ' + what.node : 'link ' + what.a + '–' + what.b);
    document.querySelectorAll('#faults button[data-on]').forEach(function (b) {{
      b.disabled = !((b.dataset.on === 'node' && what.node) || (b.dataset.on === 'link' && what.link));
    }});
    draw();
  }}
  function row(cells) {{
    var tr = document.createElement('tr');
    cells.forEach(function (c) {{ var td = document.createElement('td'); td.textContent = c; tr.appendChild(td); }});
    return tr;
  }}
  function show() {{
    text('epoch', report.epoch === null ? 'none' : report.epoch);
    text('leader', report.leader === null ? 'none' : report.leader);
    text('converged', report.converged ? 'converged' : 'not converged: an election may be running');
    if (report.nameserver) document.getElementById('chat').setAttribute('href', report.nameserver + '/');
    var comps = document.getElementById('components');
    comps.innerHTML = '<tr><th>nodes</th><th>root</th><th>epoch</th><th></th></tr>';
    (report.components || []).forEach(function (c) {{
      comps.appendChild(row([c.nodes.join(', '), c.leader === null ? '–' : c.leader, c.epoch === null ? '–' : c.epoch,
        (c.quorum ? 'quorum' : 'minority') + (c.converged ? '' : ', electing')]));
    }});
    var faults = document.getElementById('in-force');
    faults.innerHTML = '';
    (report.faults || []).forEach(function (f) {{
      var li = document.createElement('li');
      var copy = Object.assign({{}}, f); delete copy.since_ms;
      li.textContent = JSON.stringify(copy);
      faults.appendChild(li);
    }});
    if (!faults.firstChild) faults.innerHTML = '<li>none</li>';
    var counters = document.getElementById('counters');
    counters.innerHTML = '';
    counters.appendChild(row(['Yo-Yo', report.messages.election + ' (bound ' + report.bounds.election + ')']));
    counters.appendChild(row(['iterations', report.iterations + ' (bound ' + report.bounds.iterations + ')']));
    counters.appendChild(row(['per phase', (report.election_phases || []).join(' · ')]));
    counters.appendChild(row(['SHOUT+', report.messages.tree + ' (exactly 2m = ' + report.bounds.tree + ')']));
    draw();
  }}
  function showHistory(h) {{
    var table = document.getElementById('history');
    table.innerHTML = '<tr><th>epoch</th><th>writer</th><th>converged at</th><th>failover</th></tr>';
    h.epochs.slice().reverse().forEach(function (e) {{
      table.appendChild(row([e.epoch, e.leader === null ? '–' : e.leader,
        e.converged_ms === null ? 'not yet' : (e.converged_ms / 1000).toFixed(1) + ' s',
        e.failover_ms === null ? '–' : e.failover_ms + ' ms']));
    }});
  }}
  function post(fault) {{
    var message = document.getElementById('message');
    message.className = ''; message.textContent = 'applying ' + JSON.stringify(fault) + '…';
    fetch('/api/faults', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify(fault) }})
      .then(function (r) {{ return r.json().then(function (body) {{ return [r.ok, body]; }}); }})
      .then(function (answer) {{
        message.className = answer[0] ? 'ok' : 'error';
        message.textContent = answer[0] ? 'applied: ' + JSON.stringify(answer[1].applied) : answer[1].error;
      }})
      .catch(function (e) {{ message.className = 'error'; message.textContent = String(e); }});
  }}
  document.querySelectorAll('#faults button').forEach(function (b) {{
    b.addEventListener('click', function () {{
      var action = b.dataset.action, f = {{ action: action }};
      if (b.dataset.on === 'node') f.node = Number(selected.node);
      if (b.dataset.on === 'link') {{ f.a = selected.a; f.b = selected.b; }}
      if (action === 'delay') f.ms = Number(document.getElementById('delay-ms').value);
      if (action === 'loss') f.percent = Number(document.getElementById('loss-percent').value);
      if (action === 'partition') f.groups = document.getElementById('partition-groups').value.trim().split(/\s+/)
        .map(function (g) {{ return g.split(',').map(Number); }});
      post(f);
    }});
  }});
  draw();
  var events = new EventSource('/api/events');
  events.addEventListener('report', function (e) {{ report = JSON.parse(e.data); show(); }});
  events.addEventListener('history', function (e) {{ showHistory(JSON.parse(e.data)); }});
}})();
</script>
</body></html>
"##
    )
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn ring(n: u64) -> Adjacency {
        (1..=n)
            .map(|i| {
                let next = i % n + 1;
                let prev = (i + n - 2) % n + 1;
                (i, BTreeSet::from([next, prev]))
            })
            .collect::<BTreeMap<_, _>>()
    }

    #[test]
    fn the_page_embeds_every_node_and_link_and_no_absolute_url_but_the_svg_namespace() {
        let page = page("ring<6>", &ring(6));
        assert!(page.contains("ring&lt;6&gt;: labctl dashboard"));
        for id in 1..=6 {
            assert!(page.contains(&format!("\"{id}\":[")), "node {id}");
        }
        for (a, b) in [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (1, 6)] {
            assert!(page.contains(&format!("[{a},{b}]")), "link {a}-{b}");
        }
        let urls = page.matches("http://").count() + page.matches("https://").count();
        assert_eq!(urls, 1, "only the SVG namespace");
        for button in [
            "kill", "pause", "resume", "restart", "cut", "heal", "delay", "loss",
        ] {
            assert!(
                page.contains(&format!(r#"id="fault-{button}""#)),
                "{button}"
            );
        }
        assert!(
            page.contains(r#"id="fault-partition""#) && page.contains(r#"id="fault-heal-all""#)
        );
        // Every §7 action has its button.
        for action in [
            "kill",
            "pause",
            "resume",
            "restart",
            "cut",
            "heal",
            "partition",
            "delay",
            "loss",
            "heal-all",
        ] {
            assert!(
                page.contains(&format!(r#"data-action="{action}""#)),
                "{action}"
            );
        }
    }
}
