//! `floatip status` for people: the status model rendered as one block per instance.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::config::format_duration;
use crate::control::{unix_secs, GroupStatus, InstanceStatus, OverrideMode};
use crate::text::{clock, etcd_lines, human_age_secs};

/// `floatip status` for people: one block per instance.
pub fn render(instances: &[InstanceStatus]) -> String {
    render_at(instances, SystemTime::now())
}

/// The `[[group]]`s, one line each: "group fileserver: files-v4 MASTER, files-v6 BACKUP  split!", and a
/// blank line after them; nothing without groups.
pub fn render_groups(groups: &[GroupStatus]) -> String {
    let mut out = String::new();
    for g in groups {
        let members: Vec<String> = g
            .members
            .iter()
            .map(|m| format!("{} {}", m.name, m.state))
            .collect();
        let _ = write!(out, "group {}: {}", g.name, members.join(", "));
        if g.split {
            out.push_str("  split! (its members are not MASTER on one host)");
        }
        out.push('\n');
    }
    if !groups.is_empty() {
        out.push('\n');
    }
    out
}

/// How many transitions the human form shows (`--json` has all of them).
const HISTORY_SHOWN: usize = 5;

fn render_at(instances: &[InstanceStatus], now: SystemTime) -> String {
    if instances.is_empty() {
        return "no instances configured\n".to_string();
    }
    let now_s = unix_secs(now);
    let mut out = String::new();
    for (n, st) in instances.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        render_one(&mut out, st, now_s);
    }
    out
}

/// One labelled line; an empty label continues the line above (no colon).
fn line(out: &mut String, label: &str, text: &str) {
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("{label}:")
    };
    // Aligned at 11 columns; a longer label ("candidates:") still gets its space.
    let _ = writeln!(out, "  {label:<10} {text}");
}

fn render_one(out: &mut String, st: &InstanceStatus, now_s: f64) {
    let mut head = format!("{}  {}", st.name, st.state);
    if let Some(since) = st.since {
        let _ = write!(
            head,
            " since {} ({})",
            clock(since, now_s),
            human_age_secs(now_s - since)
        );
    }
    let vips: Vec<String> = st
        .vips
        .iter()
        .map(|v| {
            let presence = match (v.present_in_kernel, st.state == "MASTER") {
                (true, _) => "present",
                (false, true) => "MISSING",
                (false, false) => "absent",
            };
            format!("{} {presence}", v.address)
        })
        .collect();
    let _ = writeln!(out, "{head}   {}", vips.join(", "));

    if let Some(reason) = &st.reason {
        line(out, "why", reason);
    }
    match &st.etcd {
        Some(e) => render_etcd(out, e, now_s),
        None => line(
            out,
            "vrrp",
            &format!(
                "vrid {} VRRPv{} on {}{}",
                st.vrid,
                st.version,
                st.interface,
                st.version_why
                    .as_deref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ),
        ),
    }
    let p = &st.priority;
    let mut prio = format!("{} (configured {})", p.effective, p.configured);
    if let Some(why) = &p.why_different {
        let _ = write!(prio, ": {why}");
    }
    line(out, "priority", &prio);
    if let Some(mode) = st.override_mode {
        let text = match mode {
            OverrideMode::Takeover => {
                format!("takeover: stays MASTER until `floatip auto {}`", st.name)
            }
            OverrideMode::Release => format!(
                "release: never claims the VIP until `floatip auto {}`",
                st.name
            ),
        };
        line(out, "override", &text);
    }
    if let Some(why) = &st.claim_inhibit {
        line(out, "claim", &format!("inhibited: {why}"));
    }
    // An etcd instance sends no adverts: its owner and candidates are the etcd lines above.
    if st.etcd.is_none() {
        render_wire(out, st);
    }
    let c = &st.counters;
    let dropped: u64 = c.drops.values().sum();
    let mut counters = format!(
        "sent {}, received {}, dropped {dropped}",
        c.adverts_sent, c.adverts_received
    );
    if dropped > 0 {
        let by: Vec<String> = c.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(counters, " ({})", by.join(", "));
    }
    if c.send_errors > 0 {
        let _ = write!(counters, ", send errors {}", c.send_errors);
    }
    if c.vip_restored > 0 {
        let _ = write!(counters, ", VIP restored {}", c.vip_restored);
    }
    line(out, "counters", &counters);
    let unclaimed: u64 = c.interface_drops.values().sum();
    if unclaimed > 0 {
        let by: Vec<String> = c
            .interface_drops
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        line(
            out,
            "unmatched",
            &format!(
                "{unclaimed} packets on {} that no instance took ({})",
                st.interface,
                by.join(", ")
            ),
        );
    }
    for (i, cl) in st.clashes.iter().enumerate() {
        let who = match &cl.mac {
            Some(mac) => format!("{} ({mac})", cl.address),
            None => cl.address.to_string(),
        };
        let text = format!(
            "{who} speaks on VRID {} (priority {}) for {}, not for ours; heard {} ago, {} adverts ignored: \
             pick another VRID on one of the two clusters",
            st.vrid,
            cl.priority,
            addresses(&cl.addresses),
            human_age_secs(cl.last_heard_age_ms as f64 / 1000.0),
            cl.adverts
        );
        line(out, if i == 0 { "CLASH" } else { "" }, &text);
    }
    for (i, cf) in st.conflicts.iter().enumerate() {
        let text = format!(
            "{} also answered by {}, {} ago",
            cf.address,
            cf.mac,
            human_age_secs(cf.last_seen_age_ms as f64 / 1000.0)
        );
        line(out, if i == 0 { "CONFLICT" } else { "" }, &text);
    }
    for (i, ck) in st.checks.iter().enumerate() {
        let mut text = format!(
            "{} {}",
            ck.name,
            if ck.healthy { "healthy" } else { "FAILING" }
        );
        if let Some(l) = ck.latency_ms {
            let _ = write!(text, " ({l:.1}ms)");
        }
        if let Some(e) = &ck.last_error {
            let _ = write!(text, ": {e}");
        }
        line(out, if i == 0 { "checks" } else { "" }, &text);
    }
    if let Some(a) = &st.auth {
        line(out, "auth", a);
    }
    for (i, tf) in st.track_files.iter().enumerate() {
        let mut text = match tf.offset {
            Some(o) => format!("{} = {} x weight {} ({o:+})", tf.name, tf.value, tf.weight),
            None => format!("{} = {} x weight {}: FAULT", tf.name, tf.value, tf.weight),
        };
        let _ = write!(text, " [{}]", tf.path);
        if let Some(n) = &tf.note {
            let _ = write!(text, ": {n}");
        }
        line(out, if i == 0 { "track" } else { "" }, &text);
    }
    let skip = st.history.len().saturating_sub(HISTORY_SHOWN);
    if skip > 0 {
        line(
            out,
            "history",
            &format!("({skip} older in `floatip status --json`)"),
        );
    }
    for (i, h) in st.history[skip..].iter().enumerate() {
        // Reasons start with the new state ("MASTER: ..."), which the arrow already shows.
        let prefix = format!("{}: ", h.to);
        let reason = h.reason.strip_prefix(&prefix).unwrap_or(&h.reason);
        let text = format!("{} {} -> {}  {reason}", clock(h.at, now_s), h.from, h.to);
        line(out, if i == 0 && skip == 0 { "history" } else { "" }, &text);
    }
}

/// The VRRP master and the speakers heard on the wire.
fn render_wire(out: &mut String, st: &InstanceStatus) {
    let master = match &st.master {
        None => "none heard".to_string(),
        Some(m) if m.is_self => format!(
            "us ({}), adverts every {}",
            m.address,
            format_duration(Duration::from_millis(m.interval_ms))
        ),
        Some(m) => {
            let mut s = format!(
                "{} priority {}, adverts every {}",
                m.address,
                m.priority,
                format_duration(Duration::from_millis(m.interval_ms))
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
    line(out, "master", &master);
    if st.speakers.is_empty() {
        let why = if st.state == "MASTER" {
            "none heard (as it should be on a master: backups send no adverts)"
        } else {
            "none heard"
        };
        line(out, "speakers", why);
    }
    for (i, s) in st.speakers.iter().enumerate() {
        let mut text = format!(
            "{} priority {} every {}, heard {} ago",
            s.address,
            s.priority,
            format_duration(Duration::from_millis(s.interval_ms)),
            human_age_secs(s.last_heard_age_ms as f64 / 1000.0)
        );
        if !s.advertised.is_empty() {
            let _ = write!(text, ", for {}", addresses(&s.advertised));
        }
        line(out, if i == 0 { "speakers" } else { "" }, &text);
    }
}

fn addresses(list: &[std::net::IpAddr]) -> String {
    if list.is_empty() {
        return "no addresses".to_string();
    }
    list.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The etcd lines of an `election = "etcd"` instance: lease, owner, candidates, reachability.
fn render_etcd(out: &mut String, e: &crate::control::status::EtcdStatus, now_s: f64) {
    for (label, text) in etcd_lines(e, now_s) {
        line(out, label, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_show_their_members_and_a_split() {
        use crate::control::GroupMemberStatus;
        let member = |name: &str, state: &str| GroupMemberStatus {
            name: name.into(),
            state: state.into(),
        };
        let together = GroupStatus::new("fs", vec![member("a", "BACKUP"), member("b", "BACKUP")]);
        let split = GroupStatus::new("fs", vec![member("a", "MASTER"), member("b", "BACKUP")]);
        assert_eq!(
            render_groups(&[together]),
            "group fs: a BACKUP, b BACKUP\n\n"
        );
        assert!(render_groups(&[split]).contains("a MASTER, b BACKUP  split!"));
        assert_eq!(render_groups(&[]), "");
    }
}
