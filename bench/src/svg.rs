//! Hand-written SVG timelines: for each daemon (floatip above keepalived), a tick per client
//! reply and a bar per host while it held the VIP, around the event.

use std::fmt::Write as _;

/// One trial's record, times in seconds since the epoch.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub event: f64,
    pub replies: Vec<f64>,
    pub h1: Vec<(f64, f64)>,
    pub h2: Vec<(f64, f64)>,
    /// Time (relative to the event, s) by which the story is told: recovery, or the cap.
    pub settled: f64,
    /// A one-line result shown next to the panel ("gap 3612 ms").
    pub caption: String,
}

const W: f64 = 1000.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 120.0;
const TOP: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" tick step for a span in ms.
fn tick_step(span_ms: f64) -> f64 {
    let raw = span_ms / 8.0;
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * p {
            return m * p;
        }
    }
    10.0 * p
}

/// Renders the panels (label, timeline or a reason it is missing) into one SVG document.
pub fn render(title: &str, panels: &[(&str, Result<&Timeline, String>)]) -> String {
    let settled = panels
        .iter()
        .filter_map(|(_, t)| t.as_ref().ok().map(|t| t.settled))
        .fold(0.0f64, f64::max)
        .max(0.002);
    let post = settled * 1.15 + 0.002;
    let pre = (post * 0.2).max(0.003);
    let (t0, t1) = (-pre, post);
    let x = |rel: f64| LEFT + (rel - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let h = TOP + PANEL * panels.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>\n\
         <text x=\"10\" y=\"38\" fill=\"#555\">tick = one ping reply at the client (1 ms \
         interval); bars = VIP present on h1 \
         <tspan fill=\"#1f77b4\">(blue)</tspan> / h2 <tspan fill=\"#e67e00\">(orange)</tspan>; \
         red line = the event; time in ms from the event</text>",
        esc(title)
    );
    // Axis grid.
    let step = tick_step((t1 - t0) * 1000.0);
    let mut g = (t0 * 1000.0 / step).ceil() * step;
    let axis_y = TOP + PANEL * panels.len() as f64 + 5.0;
    let mut guard = 0;
    while g <= t1 * 1000.0 && guard < 100 {
        guard += 1;
        let gx = x(g / 1000.0);
        let _ = writeln!(
            s,
            "<line x1=\"{gx:.1}\" y1=\"{TOP}\" x2=\"{gx:.1}\" y2=\"{axis_y}\" stroke=\"#eee\"/>\
             <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            axis_y + 15.0,
            g.round() + 0.0
        );
        g += step;
    }
    for (i, (label, tl)) in panels.iter().enumerate() {
        let y = TOP + PANEL * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
            y + 20.0,
            esc(label)
        );
        let tl = match tl {
            Ok(t) => *t,
            Err(why) => {
                let _ = writeln!(
                    s,
                    "<text x=\"{LEFT}\" y=\"{:.1}\" fill=\"#a00\">{}</text>",
                    y + 45.0,
                    esc(why)
                );
                continue;
            }
        };
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.1}\" fill=\"#333\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">replies</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">h1</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">h2</text>",
            y + 38.0,
            esc(&tl.caption),
            LEFT - 50.0,
            y + 62.0,
            LEFT - 25.0,
            y + 84.0,
            LEFT - 25.0,
            y + 102.0
        );
        // Replies: one vertical tick each, merged per pixel.
        let mut path = String::new();
        let mut last_px = f64::NEG_INFINITY;
        for &r in &tl.replies {
            let rel = r - tl.event;
            if rel < t0 || rel > t1 {
                continue;
            }
            let px = (x(rel) * 2.0).round() / 2.0;
            if px - last_px < 0.5 {
                continue;
            }
            last_px = px;
            let _ = write!(path, "M{px:.1} {:.1}v18", y + 48.0);
        }
        let _ = writeln!(
            s,
            "<path d=\"{path}\" stroke=\"#222\" stroke-width=\"0.6\" fill=\"none\"/>"
        );
        for (iv, row, color) in [(&tl.h1, 74.0, "#1f77b4"), (&tl.h2, 92.0, "#e67e00")] {
            for &(a, b) in iv.iter() {
                let (ra, rb) = ((a - tl.event).max(t0), (b - tl.event).min(t1));
                if rb <= ra {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{color}\"/>",
                    x(ra),
                    y + row,
                    (x(rb) - x(ra)).max(0.5)
                );
            }
        }
        let ex = x(0.0);
        let _ = writeln!(
            s,
            "<line x1=\"{ex:.1}\" y1=\"{:.1}\" x2=\"{ex:.1}\" y2=\"{:.1}\" stroke=\"#d00\" \
             stroke-dasharray=\"4 2\"/>",
            y + 44.0,
            y + 108.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_wellformed_enough() {
        let t = Timeline {
            event: 100.0,
            replies: vec![99.9, 99.95, 100.5, 100.6],
            h1: vec![(99.0, 100.0)],
            h2: vec![(100.4, 101.0)],
            settled: 0.6,
            caption: "gap 500 ms".into(),
        };
        let s = render(
            "x <y>",
            &[("floatip", Ok(&t)), ("keepalived", Err("n/a".into()))],
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("x &lt;y&gt;"));
        assert_eq!(s.matches("<rect").count(), 3);
        assert_eq!(tick_step(4000.0), 500.0);
        assert_eq!(tick_step(40.0), 5.0);
    }
}
