//! The status page (`GET /`): one server-rendered HTML document over the same status model as
//! `floatip status` (no JavaScript, no external assets). Each group and instance: its state, since
//! when and why, VIPs, priority, the master on the wire and every speaker (for an `election = "etcd"`
//! instance: the lease, the owner and the candidates in etcd instead), failing checks, conflicts
//! and clashes, and a timeline of the last transitions drawn as inline SVG (each segment's reason in
//! its `<title>`, shown on hover). It refreshes itself (meta refresh) and reads on a phone (viewport,
//! one column below 40em).

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::control::{unix_secs, GroupStatus, InstanceStatus, OverrideMode};
use crate::text::{clock, etcd_lines, human_age_secs};

/// Seconds between the page's own reloads.
pub const REFRESH_SECS: u32 = 5;
/// The timeline's width in SVG units (it scales to the screen).
const TIMELINE_W: f64 = 1000.0;
/// The shortest span the timeline shows, so a fresh start is not one full-width bar of a second.
const TIMELINE_MIN_SECS: f64 = 60.0;
/// A segment at least this wide (SVG units) carries its state's name.
const LABEL_MIN_W: f64 = 70.0;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// The page for these instances and groups, as of `now`.
pub fn render(instances: &[InstanceStatus], groups: &[GroupStatus], now: SystemTime) -> String {
    render_for(instances, groups, now, &hostname())
}

fn render_for(
    instances: &[InstanceStatus],
    groups: &[GroupStatus],
    now: SystemTime,
    host: &str,
) -> String {
    let now_s = unix_secs(now);
    let summary: Vec<String> = instances
        .iter()
        .map(|i| format!("{} {}", i.name, i.state))
        .collect();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECS}">
<title>{title} · floatip on {host}</title>
<style>{STYLE}</style></head>
<body><header><h1>floatip on <span class="host">{host}</span></h1>
<p class="meta">as of {asof}; refreshes every {REFRESH_SECS}s · <a href="/status.json">status.json</a> · <a href="/metrics">metrics</a></p></header>
<main>
"#,
        title = esc(&summary.join(", ")),
        host = esc(host),
        asof = esc(&clock(now_s, now_s)),
    );
    if instances.is_empty() {
        out.push_str("<p class=\"empty\">This daemon manages no instances.</p>\n");
    }
    for g in groups {
        render_group(&mut out, g);
    }
    for inst in instances {
        render_instance(&mut out, inst, now_s);
    }
    out.push_str("</main>\n<footer>floatip ");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str(" · read-only: change things with <code>floatip takeover|release|auto</code></footer>\n</body></html>\n");
    out
}

fn state_class(state: &str) -> &'static str {
    match state {
        "MASTER" => "master",
        "BACKUP" => "backup",
        "FAULT" => "fault",
        _ => "init",
    }
}

fn render_group(out: &mut String, g: &GroupStatus) {
    let _ = write!(
        out,
        r#"<section class="group{split}" id="group-{name}"><h2>group {name}{warn}</h2><p>"#,
        name = esc(&g.name),
        split = if g.split { " split" } else { "" },
        warn = if g.split {
            r#" <span class="alert">SPLIT: its members are MASTER on more than one host</span>"#
        } else {
            ""
        },
    );
    for m in &g.members {
        let _ = write!(
            out,
            r##"<a href="#instance-{n}">{n}</a> <span class="state {c}">{s}</span> "##,
            n = esc(&m.name),
            c = state_class(&m.state),
            s = esc(&m.state)
        );
    }
    out.push_str("</p></section>\n");
}

/// One row of the definition list: a label and HTML already escaped.
fn row(out: &mut String, label: &str, html: &str) {
    let _ = write!(out, "<dt>{label}</dt><dd>{html}</dd>");
}

fn render_instance(out: &mut String, st: &InstanceStatus, now_s: f64) {
    let name = esc(&st.name);
    let _ = write!(
        out,
        r#"<section class="instance" id="instance-{name}" data-state="{state}">
<h2><span class="name">{name}</span> <span class="state {class}">{state}</span>"#,
        state = esc(&st.state),
        class = state_class(&st.state),
    );
    if let Some(since) = st.since {
        let _ = write!(
            out,
            r#" <span class="since">since {} ({} ago)</span>"#,
            esc(&clock(since, now_s)),
            esc(&human_age_secs(now_s - since))
        );
    }
    out.push_str("</h2>\n");
    if let Some(reason) = &st.reason {
        let _ = write!(out, r#"<p class="why">why: {}</p>"#, esc(reason));
    }
    out.push_str("<dl>");
    let vips: Vec<String> = st
        .vips
        .iter()
        .map(|v| {
            let (word, class) = match (v.present_in_kernel, st.state == "MASTER") {
                (true, _) => ("on this host", "ok"),
                (false, true) => ("MISSING", "bad"),
                (false, false) => ("not here", "muted"),
            };
            format!(
                r#"<code>{}</code> <span class="{class}">{word}</span>"#,
                esc(&v.address)
            )
        })
        .collect();
    row(out, "VIPs", &vips.join("<br>"));
    match &st.etcd {
        // An etcd instance: the lease and the owner in etcd instead of the VRRP line.
        Some(e) => {
            for (label, text) in etcd_lines(e, now_s) {
                let html = match label {
                    "warning" => format!(r#"<span class="warn">{}</span>"#, esc(&text)),
                    _ => esc(&text),
                };
                row(out, label, &html);
            }
        }
        None => row(
            out,
            "VRRP",
            &esc(&format!(
                "vrid {} VRRPv{} on {}",
                st.vrid, st.version, st.interface
            )),
        ),
    }
    let p = &st.priority;
    let mut prio = format!("{} (configured {})", p.effective, p.configured);
    if let Some(why) = &p.why_different {
        let _ = write!(prio, ": {why}");
    }
    row(out, "priority", &esc(&prio));
    if let Some(mode) = st.override_mode {
        let text = match mode {
            OverrideMode::Takeover => "takeover: stays MASTER until `floatip auto`",
            OverrideMode::Release => "release: never claims the VIPs until `floatip auto`",
        };
        row(
            out,
            "override",
            &format!(r#"<span class="warn">{}</span>"#, esc(text)),
        );
    }
    if let Some(why) = &st.claim_inhibit {
        row(
            out,
            "claim",
            &format!(r#"<span class="warn">inhibited: {}</span>"#, esc(why)),
        );
    }
    let master = match &st.master {
        None => "none heard".to_string(),
        Some(m) if m.is_self => format!(
            "this host ({}), adverts every {} ms",
            m.address, m.interval_ms
        ),
        Some(m) => {
            let mut s = format!(
                "{} priority {}, adverts every {} ms",
                m.address, m.priority, m.interval_ms
            );
            if let Some(age) = m.last_advert_age_ms {
                let _ = write!(
                    s,
                    ", last heard {} ago",
                    human_age_secs(age as f64 / 1000.0)
                );
            }
            s
        }
    };
    // An etcd instance sends no adverts: its owner is the etcd row above.
    if st.etcd.is_none() {
        row(out, "master", &esc(&master));
    }
    if !st.speakers.is_empty() {
        let speakers: Vec<String> = st
            .speakers
            .iter()
            .map(|s| {
                esc(&format!(
                    "{} priority {}, every {} ms, heard {} ago",
                    s.address,
                    s.priority,
                    s.interval_ms,
                    human_age_secs(s.last_heard_age_ms as f64 / 1000.0)
                ))
            })
            .collect();
        row(out, "speakers", &speakers.join("<br>"));
    }
    if !st.checks.is_empty() {
        let checks: Vec<String> = st
            .checks
            .iter()
            .map(|c| {
                let latency = c
                    .latency_ms
                    .map(|ms| format!(" ({ms:.1} ms)"))
                    .unwrap_or_default();
                if c.healthy {
                    format!(
                        r#"<span class="ok">✔ {}</span>{}"#,
                        esc(&c.name),
                        esc(&latency)
                    )
                } else {
                    format!(
                        r#"<span class="bad">✘ {} failing</span>{}: {}"#,
                        esc(&c.name),
                        esc(&latency),
                        esc(c.last_error.as_deref().unwrap_or("no error recorded"))
                    )
                }
            })
            .collect();
        row(out, "checks", &checks.join("<br>"));
    }
    if !st.conflicts.is_empty() {
        let list: Vec<String> = st
            .conflicts
            .iter()
            .map(|c| {
                esc(&format!(
                    "{} answered by {} ({} ago)",
                    c.address,
                    c.mac,
                    human_age_secs(c.last_seen_age_ms as f64 / 1000.0)
                ))
            })
            .collect();
        row(
            out,
            "conflicts",
            &format!(r#"<span class="bad">{}</span>"#, list.join("<br>")),
        );
    }
    if !st.clashes.is_empty() {
        let list: Vec<String> = st
            .clashes
            .iter()
            .map(|c| {
                let addrs: Vec<String> = c.addresses.iter().map(|a| a.to_string()).collect();
                esc(&format!(
                    "{} (priority {}) advertises {} on our VRID; {} adverts ignored",
                    c.address,
                    c.priority,
                    addrs.join(", "),
                    c.adverts
                ))
            })
            .collect();
        row(
            out,
            "VRID clash",
            &format!(r#"<span class="bad">{}</span>"#, list.join("<br>")),
        );
    }
    out.push_str("</dl>\n");
    timeline(out, st, now_s);
    out.push_str("</section>\n");
}

/// The last transitions as an inline SVG: one bar, a segment per state held (the colour of the
/// state), each with a `<title>` (time span and the reason it began); a tick per transition.
fn timeline(out: &mut String, st: &InstanceStatus, now_s: f64) {
    let Some(first) = st.history.first() else {
        out.push_str(r#"<p class="muted">No transitions yet.</p>"#);
        return;
    };
    let start = first.at.min(now_s - TIMELINE_MIN_SECS);
    let span = (now_s - start).max(1.0);
    let x = |t: f64| ((t - start) / span * TIMELINE_W).clamp(0.0, TIMELINE_W);
    // The bars stretch with the screen (preserveAspectRatio="none"); the labels are HTML over them,
    // so their text is never stretched.
    let _ = write!(
        out,
        r#"<figure class="timeline"><div class="bar"><svg viewBox="0 0 {TIMELINE_W} 32" preserveAspectRatio="none" role="img" aria-label="state timeline of {name}">"#,
        name = esc(&st.name)
    );
    // Before the first transition shown we know only the state it left: drawn faint.
    if x(first.at) > 0.0 {
        let _ = write!(
            out,
            r#"<rect class="seg {c} before" x="0" y="0" width="{w:.1}" height="32"><title>{s} until {t} (earlier transitions are not kept)</title></rect>"#,
            c = state_class(&first.from),
            w = x(first.at),
            s = esc(&first.from),
            t = esc(&clock(first.at, now_s)),
        );
    }
    let mut labels = String::new();
    for (i, e) in st.history.iter().enumerate() {
        let end = st.history.get(i + 1).map_or(now_s, |n| n.at);
        let (x0, x1) = (x(e.at), x(end));
        let until = if i + 1 == st.history.len() {
            "now".to_string()
        } else {
            clock(end, now_s)
        };
        let _ = write!(
            out,
            r#"<rect class="seg {c}" x="{x0:.1}" y="0" width="{w:.1}" height="32"><title>{s} from {from} to {until} ({dur}): {why}</title></rect><line class="tick" x1="{x0:.1}" x2="{x0:.1}" y1="0" y2="32"><title>{f} → {s} at {from}: {why}</title></line>"#,
            c = state_class(&e.to),
            w = (x1 - x0).max(0.5),
            s = esc(&e.to),
            f = esc(&e.from),
            from = esc(&clock(e.at, now_s)),
            until = esc(&until),
            dur = esc(&human_age_secs(end - e.at)),
            why = esc(&e.reason),
        );
        if x1 - x0 >= LABEL_MIN_W {
            let pct = |v: f64| v / TIMELINE_W * 100.0;
            let _ = write!(
                labels,
                r#"<span class="label" style="left:{:.2}%;width:{:.2}%">{}</span>"#,
                pct(x0),
                pct(x1 - x0),
                esc(&e.to)
            );
        }
    }
    let _ = write!(
        out,
        r#"</svg>{labels}</div><div class="axis"><span>{}</span><span>now</span></div>"#,
        esc(&clock(start, now_s))
    );
    // The same in words, for screen readers and for reading without hovering.
    out.push_str(r#"<figcaption><details open><summary>last transitions</summary><ol reversed>"#);
    for e in st.history.iter().rev().take(10) {
        let _ = write!(
            out,
            r#"<li><time>{}</time> {} → <span class="state {}">{}</span>: {}</li>"#,
            esc(&clock(e.at, now_s)),
            esc(&e.from),
            state_class(&e.to),
            esc(&e.to),
            esc(&e.reason)
        );
    }
    out.push_str("</ol></details></figcaption></figure>\n");
}

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#6a737d;--master:#1a7f37;--backup:#0969da;--fault:#cf222e;--init:#8c959f;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#8b949e}}
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
header,main,footer{max-width:64em;margin:0 auto;padding:.6em 1em}h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.15em;margin:0 0 .3em}
.meta,.muted,footer,.since{color:var(--muted);font-size:.9em}a{color:var(--backup)}
section{background:var(--card);border-radius:8px;padding:.8em 1em;margin:0 0 1em;box-shadow:0 1px 3px #0002}
.state{display:inline-block;padding:.05em .5em;border-radius:4px;color:#fff;font-weight:600;font-size:.9em}
.state.master{background:var(--master)}.state.backup{background:var(--backup)}.state.fault{background:var(--fault)}.state.init{background:var(--init)}
.why{margin:.2em 0 .6em;font-weight:500}dl{display:grid;grid-template-columns:8em 1fr;gap:.2em .8em;margin:0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.ok{color:var(--master)}.bad,.alert{color:var(--fault);font-weight:600}.warn{color:var(--warn);font-weight:600}
.group.split{outline:2px solid var(--fault)}
.timeline{margin:.8em 0 0}.seg.master{fill:var(--master)}.seg.backup{fill:var(--backup)}.seg.fault{fill:var(--fault)}.seg.init{fill:var(--init)}
.bar{position:relative;height:2em}.bar svg{position:absolute;inset:0;width:100%;height:100%}
.bar .label{position:absolute;top:0;line-height:2em;text-align:center;color:#fff;font-weight:600;font-size:.8em;overflow:hidden;white-space:nowrap;pointer-events:none}
.axis{display:flex;justify-content:space-between;font-size:.8em;color:var(--muted)}
.seg.before{opacity:.35}.tick{stroke:var(--fg);stroke-width:2;vector-effect:non-scaling-stroke}figcaption{font-size:.9em}
@media (max-width:40em){dl{grid-template-columns:1fr}dt{margin-top:.3em}}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ClashStatus, GroupMemberStatus};
    use crate::http::metrics::tests::status;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn escapes_what_it_shows() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let mut st = status("files", "BACKUP");
        st.reason = Some("<script>alert(1)</script>".into());
        let page = render_for(&[st], &[], at(100), "nas");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }

    #[test]
    fn shows_state_reason_checks_and_a_timeline() {
        let mut st = status("files", "MASTER");
        st.since = Some(4.0);
        st.reason = Some("no advert from 192.0.2.2 for 3.6s (master down)".into());
        st.clashes = vec![ClashStatus {
            address: "192.0.2.9".parse().unwrap(),
            addresses: vec!["192.0.2.50".parse().unwrap()],
            priority: 254,
            adverts: 40,
            mac: None,
            last_heard_age_ms: 100,
        }];
        let groups = vec![GroupStatus::new(
            "storage",
            vec![GroupMemberStatus {
                name: "files".into(),
                state: "MASTER".into(),
            }],
        )];
        let page = render_for(&[st], &groups, at(50), "nas");
        for want in [
            r#"<meta http-equiv="refresh" content="5">"#,
            r#"name="viewport""#,
            r#"id="instance-files" data-state="MASTER""#,
            r#"<span class="state master">MASTER</span>"#,
            "why: no advert from 192.0.2.2 for 3.6s (master down)",
            "✘ smb failing</span> (12.5 ms): connection refused",
            "192.0.2.9 (priority 254) advertises 192.0.2.50 on our VRID",
            "<svg",
            // The segment since the last transition, with its reason on hover.
            "<title>MASTER from",
            ": BACKUP to MASTER</title>",
            r#"id="group-storage""#,
        ] {
            assert!(page.contains(want), "missing {want:?} in\n{page}");
        }
        assert!(!page.contains("<script"), "the page needs no JavaScript");
        // Segments: the state before the first transition (faint), then one per transition; the
        // long MASTER one (4 s to 50 s of 60 s) is labelled.
        assert_eq!(page.matches(r#"<rect class="seg"#).count(), 3, "{page}");
        assert!(page.contains(r#"<rect class="seg init before""#), "{page}");
        assert!(page.contains(r#"%">MASTER</span></div>"#), "{page}");
    }

    #[test]
    fn an_etcd_instance_shows_its_lease_owner_and_candidates_instead_of_vrrp() {
        use crate::control::status::{EtcdCandidate, EtcdStatus};
        let mut st = status("files", "BACKUP");
        st.etcd = Some(EtcdStatus {
            endpoint: "http://192.0.2.11:2379".into(),
            lease: Some("694d7a1b2c3d4e5f".into()),
            lease_ttl_s: 5,
            lease_remaining_ms: Some(3200),
            owner: Some("host 192.0.2.2".into()),
            candidates: vec![
                EtcdCandidate {
                    address: "192.0.2.2".parse().unwrap(),
                    priority: 150,
                },
                EtcdCandidate {
                    address: "192.0.2.1".parse().unwrap(),
                    priority: 100,
                },
            ],
            unreachable_since: Some(40.0),
            released_at: Some(43.0),
        });
        let page = render_for(&[st.clone()], &[], at(50), "nas");
        for want in [
            "<dt>etcd</dt><dd>http://192.0.2.11:2379 (in use); lease 694d7a1b2c3d4e5f, TTL 5 s,",
            "<dt>owner</dt><dd>host 192.0.2.2</dd>",
            "<dt>candidates</dt><dd>192.0.2.2 priority 150, 192.0.2.1 priority 100</dd>",
            r#"<dt>warning</dt><dd><span class="warn">etcd unreachable since "#,
            "; VIP released at ",
        ] {
            assert!(page.contains(want), "missing {want:?} in\n{page}");
        }
        assert!(!page.contains("<dt>VRRP</dt>"), "{page}");
        assert!(!page.contains("<dt>master</dt>"), "{page}");
        // A VRRP instance keeps its VRRP and master rows.
        st.etcd = None;
        let page = render_for(&[st], &[], at(50), "nas");
        assert!(
            page.contains("<dt>VRRP</dt>") && page.contains("<dt>master</dt>"),
            "{page}"
        );
    }

    #[test]
    fn a_split_group_and_no_history_read_plainly() {
        let mut st = status("web", "BACKUP");
        st.history.clear();
        let groups = vec![GroupStatus::new(
            "g",
            vec![
                GroupMemberStatus {
                    name: "files".into(),
                    state: "MASTER".into(),
                },
                GroupMemberStatus {
                    name: "web".into(),
                    state: "BACKUP".into(),
                },
            ],
        )];
        let page = render_for(&[st], &groups, at(700), "nas");
        assert!(page.contains("SPLIT"), "{page}");
        assert!(page.contains("No transitions yet."), "{page}");
        assert!(!page.contains("<svg"), "{page}");
    }
}
