//! The picture of how Yo-Yo's cost grows with the graph (`labctl sim --scale --svg`): four
//! panels over the node count n on a logarithmic axis, each measurement a dot beside its bound.
//!
//! 1. Iterations against ⌈log₂ n⌉ + 1: the candidates at least halve in every iteration.
//! 2. Messages per link, m = links: Yo-Yo's messages over 2m against ⌈log₂ n⌉ + 2, because every
//!    iteration costs at most two messages per link still in the election (setup is one more).
//! 3. The simulation's wall time, on a logarithmic axis, with a line of slope one through the
//!    largest size: a cost linear in n runs along it, and fixed costs lift the small sizes.
//! 4. Peak memory, logarithmic too, with the same kind of line.
//!
//! SVG drawn by labctl itself, self-contained, no script.

use std::fmt::Write as _;

use labctl_sim::scale::Row;

use crate::picture::escape;

const PANEL_W: f64 = 300.0;
const PANEL_H: f64 = 220.0;
const MARGIN_L: f64 = 52.0;
const MARGIN_T: f64 = 56.0;
const MARGIN_B: f64 = 48.0;
const GAP: f64 = 70.0;

/// One plotted series.
struct Series {
    name: &'static str,
    points: Vec<(f64, f64)>,
    /// A line (a bound, a reference) rather than dots (a measurement).
    line: bool,
    colour: &'static str,
}

/// One panel.
struct Panel {
    title: &'static str,
    y_label: &'static str,
    log_y: bool,
    series: Vec<Series>,
}

/// The growth picture of `rows` (one per size, in any order), titled `title`.
pub fn svg(rows: &[Row], title: &str) -> String {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.n);
    let n = |r: &Row| r.n as f64;
    let per_link = |r: &Row| r.messages as f64 / (2.0 * r.m.max(1) as f64);
    let linear = |ys: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        // Slope one on log-log axes, through the largest size, drawn across every size: the
        // smaller sizes sit above it by their fixed costs.
        let Some(&(n0, y0)) = ys.last() else {
            return Vec::new();
        };
        ys.iter().map(|&(x, _)| (x, y0 * x / n0)).collect()
    };
    let times: Vec<(f64, f64)> = rows.iter().map(|r| (n(r), r.seconds.max(1e-4))).collect();
    let memory: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.peak_bytes.map(|b| (n(r), b as f64 / (1 << 20) as f64)))
        .collect();
    let panels = [
        Panel {
            title: "Yo-Yo iterations",
            y_label: "iterations",
            log_y: false,
            series: vec![
                Series {
                    name: "bound ⌈log₂ n⌉ + 1",
                    points: rows
                        .iter()
                        .map(|r| (n(r), r.iteration_bound as f64))
                        .collect(),
                    line: true,
                    colour: "#c0392b",
                },
                Series {
                    name: "measured",
                    points: rows.iter().map(|r| (n(r), r.iterations as f64)).collect(),
                    line: false,
                    colour: "#1f4e8c",
                },
            ],
        },
        Panel {
            title: "Yo-Yo messages per link (÷ 2m)",
            y_label: "messages / 2m",
            log_y: false,
            series: vec![
                Series {
                    name: "bound ⌈log₂ n⌉ + 2",
                    points: rows
                        .iter()
                        .map(|r| (n(r), r.message_bound as f64 / (2.0 * r.m.max(1) as f64)))
                        .collect(),
                    line: true,
                    colour: "#c0392b",
                },
                Series {
                    name: "measured",
                    points: rows.iter().map(|r| (n(r), per_link(r))).collect(),
                    line: false,
                    colour: "#1f4e8c",
                },
            ],
        },
        Panel {
            title: "Simulation wall time",
            y_label: "seconds",
            log_y: true,
            series: vec![
                Series {
                    name: "linear, through the largest n",
                    points: linear(times.clone()),
                    line: true,
                    colour: "#7f8c8d",
                },
                Series {
                    name: "measured",
                    points: times,
                    line: false,
                    colour: "#1f4e8c",
                },
            ],
        },
        Panel {
            title: "Peak memory",
            y_label: "MiB",
            log_y: true,
            series: vec![
                Series {
                    name: "linear, through the largest n",
                    points: linear(memory.clone()),
                    line: true,
                    colour: "#7f8c8d",
                },
                Series {
                    name: "measured",
                    points: memory,
                    line: false,
                    colour: "#1f4e8c",
                },
            ],
        },
    ];
    let width = MARGIN_L + panels.len() as f64 * (PANEL_W + GAP);
    let height = MARGIN_T + PANEL_H + MARGIN_B + 36.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{MARGIN_L}" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let xs: Vec<f64> = rows.iter().map(n).collect();
    for (i, panel) in panels.iter().enumerate() {
        let x0 = MARGIN_L + i as f64 * (PANEL_W + GAP);
        draw_panel(&mut out, panel, x0, &xs);
    }
    out.push_str("</svg>\n");
    out
}

/// The decades from below the smallest to above the largest of `values` (all positive).
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let (lo, hi) = (lo.log10().floor(), hi.log10().ceil());
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

fn draw_panel(out: &mut String, panel: &Panel, x0: f64, xs: &[f64]) {
    let y0 = MARGIN_T + PANEL_H;
    let (x_lo, x_hi) = decades(xs.iter().copied());
    let all_y = || {
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
    };
    let (y_lo, y_hi) = if panel.log_y {
        decades(all_y().filter(|y| *y > 0.0))
    } else {
        let top = (all_y().fold(0.0, f64::max) * 1.1).max(1.0);
        let step = nice_step(top);
        (0.0, (top / step).ceil() * step)
    };
    let px = |x: f64| x0 + (x.log10() - x_lo) / (x_hi - x_lo) * PANEL_W;
    let py = |y: f64| {
        let t = if panel.log_y {
            (y.max(1e-12).log10() - y_lo) / (y_hi - y_lo)
        } else {
            (y - y_lo) / (y_hi - y_lo)
        };
        y0 - t * PANEL_H
    };
    let _ = write!(
        out,
        r##"<g class="panel"><text x="{x0}" y="{}" font-weight="bold">{}</text><rect x="{x0}" y="{MARGIN_T}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
        MARGIN_T - 8.0,
        escape(panel.title)
    );
    // The x axis: one tick per decade of n.
    let mut decade = x_lo;
    while decade <= x_hi + 1e-9 {
        let x = px(10f64.powf(decade));
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{MARGIN_T}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y0 + 16.0,
            short(10f64.powf(decade))
        );
        decade += 1.0;
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">n (nodes)</text>"#,
        x0 + PANEL_W / 2.0,
        y0 + 34.0
    );
    // The y axis: five ticks, or one per decade.
    let ticks: Vec<f64> = if panel.log_y {
        (y_lo as i32..=y_hi as i32).map(|d| 10f64.powi(d)).collect()
    } else {
        let step = nice_step(y_hi - y_lo);
        (0..)
            .map(|i| y_lo + step * i as f64)
            .take_while(|&t| t <= y_hi + 1e-9)
            .collect()
    };
    for t in ticks {
        let y = py(t);
        let _ = write!(
            out,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 4.0,
            y + 4.0,
            short(t)
        );
    }
    let _ = write!(
        out,
        r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        x0 - 40.0,
        MARGIN_T + PANEL_H / 2.0,
        escape(panel.y_label)
    );
    for (k, series) in panel.series.iter().enumerate() {
        if series.line {
            let points: Vec<String> = series
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline class="bound" points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="6 4"/>"#,
                points.join(" "),
                series.colour
            );
        } else {
            for &(x, y) in &series.points {
                let _ = write!(
                    out,
                    r#"<circle class="measured" cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>n = {}: {}</title></circle>"#,
                    px(x),
                    py(y),
                    series.colour,
                    x as u64,
                    short(y)
                );
            }
        }
        // The legend, under the panel, a line each.
        let ly = y0 + MARGIN_B + 2.0 + 15.0 * k as f64;
        let lx = x0;
        let _ = write!(
            out,
            r#"<text x="{lx:.1}" y="{ly:.1}" fill="{}">{} {}</text>"#,
            series.colour,
            if series.line { "- -" } else { "●" },
            escape(series.name)
        );
    }
    out.push_str("</g>");
}

/// A number in a few characters: 1k, 100k, 1M, 21, 2.5, 0.01.
fn short(v: f64) -> String {
    let trim = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    };
    if v >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{}k", v / 1e3)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        // Two significant digits.
        let decimals = (-v.log10()).ceil().max(0.0) as usize + 1;
        trim(format!("{v:.decimals$}"))
    }
}

/// A round step for about five ticks over `range`: 1, 2 or 5 times a power of ten.
fn nice_step(range: f64) -> f64 {
    let raw = (range / 5.0).max(1e-12);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|k| k * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64, iterations: u32, seconds: f64) -> Row {
        let m = 2 * n;
        let bounds = labctl_core::Bounds::new(n, m);
        Row {
            n,
            m,
            iterations,
            iteration_bound: bounds.iterations,
            messages: 2 * m * (u64::from(iterations) + 1),
            message_bound: bounds.election,
            tree_messages: 2 * m,
            seconds,
            peak_bytes: Some(n * 3000),
            checks_passed: true,
        }
    }

    #[test]
    fn the_picture_has_a_dot_per_size_and_panel_and_a_bound_per_panel() {
        let rows = [
            row(100_000, 9, 2.0),
            row(1000, 5, 0.01),
            row(10_000, 7, 0.15),
        ];
        let svg = svg(&rows, "Yo-Yo on random graphs, degree 4 & more");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let count = |class: &str| {
            doc.descendants()
                .filter(|n| n.attribute("class") == Some(class))
                .count()
        };
        assert_eq!(count("panel"), 4);
        assert_eq!(count("measured"), 3 * 4, "a dot per size in each panel");
        assert_eq!(count("bound"), 4, "a line per panel");
        let text: String = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect();
        assert!(
            text.contains("degree 4 & more"),
            "the title, escaped and back"
        );
        assert!(text.contains("n = 1000: 5"), "dots say what they are");
        assert!(text.contains("n = 100000: 9"));
    }

    #[test]
    fn dots_sit_below_their_bound_when_the_run_kept_it() {
        // A dot's height against the bound line's, in the iterations panel: y grows downwards.
        let rows = [row(1000, 5, 0.01), row(1_000_000, 12, 30.0)];
        let svg = svg(&rows, "t");
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let panel = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("panel"))
            .unwrap();
        let bound: Vec<(f64, f64)> = panel
            .descendants()
            .find(|n| n.attribute("class") == Some("bound"))
            .unwrap()
            .attribute("points")
            .unwrap()
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        let dots: Vec<(f64, f64)> = panel
            .descendants()
            .filter(|n| n.attribute("class") == Some("measured"))
            .map(|n| {
                (
                    n.attribute("cx").unwrap().parse().unwrap(),
                    n.attribute("cy").unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(dots.len(), 2);
        for ((dx, dy), (bx, by)) in dots.iter().zip(&bound) {
            assert!((dx - bx).abs() < 0.01, "same n, same x");
            assert!(dy > by, "measured {dy} is below the bound {by}");
        }
    }
}
