//! Stage 2: the raw tables in, the typed [`Config`] out, every problem collected on the way. One file
//! per table; the rules that span instances (names, virtual routers, VIPs) are here.

mod addresses;
mod announce;
mod auth;
mod check;
mod daemon;
mod etcd;
mod group;
mod instance;
mod notify;
mod track_file;
mod vmac;

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::duration::{format_duration, parse_duration};
use super::error::{position, Cx};
use super::model::{Config, DaemonConfig, Vip};
use super::raw::{RawArgv, RawDuration, RawFile};
use daemon::validate_daemon;
use group::validate_groups;
use instance::validate_instance;

impl Cx<'_> {
    pub(super) fn duration(
        &mut self,
        value: Option<&Spanned<RawDuration>>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(value) = value else {
            return Some(default);
        };
        let d = self.any_duration_where(value, key, &|d| d >= min && d <= max)?;
        if d < min || d > max {
            self.at(
                value.span(),
                format!("{key} {} is out of range", format_duration(d)),
                format!(
                    "{key} is {} to {}",
                    format_duration(min),
                    format_duration(max)
                ),
            );
            return None;
        }
        Some(d)
    }

    pub(super) fn any_duration(
        &mut self,
        value: &Spanned<RawDuration>,
        key: &str,
    ) -> Option<Duration> {
        self.any_duration_where(value, key, &|_| true)
    }

    /// [`Cx::any_duration`] for a key that takes only the durations `fits` accepts: a number
    /// without a unit (`1`, or `"1"`) is answered with the readings of it that are valid values
    /// (`advert_interval = 1` suggests "1s", not "1ms", which is below VRRPv3's 10 ms).
    pub(super) fn any_duration_where(
        &mut self,
        value: &Spanned<RawDuration>,
        key: &str,
        fits: &dyn Fn(Duration) -> bool,
    ) -> Option<Duration> {
        let (what, n) = match value.get_ref() {
            RawDuration::Number(n) => (format!("{key} = {n} has no unit"), n.trim()),
            RawDuration::Text(s) if s.trim().parse::<f64>().is_ok() => {
                (format!("{key} = \"{s}\" has no unit"), s.trim())
            }
            RawDuration::Text(s) => {
                return match parse_duration(s) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.at(value.span(), format!("{key}: {e}"), DURATION_HINT);
                        None
                    }
                };
            }
        };
        let readings: Vec<String> = ["s", "ms"]
            .iter()
            .map(|unit| format!("{n}{unit}"))
            .filter(|text| parse_duration(text).is_ok_and(fits))
            .map(|text| format!("{key} = \"{text}\""))
            .collect();
        let hint = if readings.is_empty() {
            "durations are quoted strings with a unit (ms, s, m, h), e.g. \"1s\" or \"250ms\""
                .to_string()
        } else {
            format!(
                "durations are quoted strings with a unit: {}",
                readings.join(" or ")
            )
        };
        self.at(value.span(), what, hint);
        None
    }

    pub(super) fn int_in(
        &mut self,
        value: &Spanned<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        hint: &str,
    ) -> Option<i64> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Some(v)
        } else {
            self.at(value.span(), format!("{key} {v} is out of range"), hint);
            None
        }
    }

    pub(super) fn argv(&mut self, value: &Spanned<RawArgv>, key: &str) -> Option<Vec<String>> {
        match value.get_ref() {
            RawArgv::Text(s) => {
                let words: Vec<String> = s.split_whitespace().map(|w| format!("\"{w}\"")).collect();
                self.at(
                    value.span(),
                    format!("{key} must be an argv array, not a string"),
                    format!(
                        "commands run without a shell; write {key} = [{}]",
                        if words.is_empty() {
                            "\"/usr/local/bin/...\"".to_string()
                        } else {
                            words.join(", ")
                        }
                    ),
                );
                None
            }
            RawArgv::List(args) => {
                let Some(program) = args.first() else {
                    self.at(
                        value.span(),
                        format!("{key} is an empty command"),
                        format!("write {key} = [\"/absolute/path/to/program\", \"arg\", ...] or remove the key"),
                    );
                    return None;
                };
                if !program.get_ref().starts_with('/') {
                    self.at(
                        program.span(),
                        format!("{key}: program \"{}\" is not an absolute path", program.get_ref()),
                        "commands run without a shell or PATH lookup; give the full path, e.g. \"/usr/local/sbin/start-samba\"",
                    );
                    return None;
                }
                Some(args.iter().map(|a| a.get_ref().clone()).collect())
            }
        }
    }
}

const DURATION_HINT: &str =
    "write a number with a unit: \"10ms\", \"250ms\", \"1s\", \"1.5s\", \"2m\" (units: ms, s, m, h)";

pub(super) fn validate(cx: &mut Cx<'_>, raw: RawFile) -> Option<Config> {
    let daemon = match &raw.daemon {
        Some(d) => validate_daemon(cx, d),
        None => Some(DaemonConfig::default()),
    };

    if raw.instance.is_empty() {
        cx.at(
            0..0,
            "no [[instance]] is defined",
            "add at least one [[instance]] with name, interface, vrid and addresses (see examples/floatip.toml)",
        );
    }

    let mut instances = Vec::new();
    let mut facts = Vec::new();
    let mut all_ok = true;
    for inst in &raw.instance {
        let (config, fact) = validate_instance(cx, inst);
        facts.push(fact);
        match config {
            Some(c) => instances.push(c),
            None => all_ok = false,
        }
    }
    cross_instance(cx, &facts);
    let groups = validate_groups(cx, &raw.group, &facts);
    let etcd = etcd::validate_etcd(cx, raw.etcd.as_ref(), &raw.group, &facts);

    Some(Config {
        path: cx.path.to_path_buf(),
        daemon: daemon?,
        instances: all_ok.then_some(instances)?,
        groups: groups?,
        etcd: etcd?,
    })
}
/// What cross-instance rules need from each instance, as far as it could be read.
struct Facts {
    name: Option<Spanned<String>>,
    interface: Option<String>,
    vrid: Option<(u8, Range<usize>)>,
    is_v6: Option<bool>,
    vips: Vec<(Vip, Range<usize>)>,
    /// Where it says `election = "etcd"`, if it does.
    etcd: Option<Range<usize>>,
}

fn is_valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn cross_instance(cx: &mut Cx<'_>, facts: &[Facts]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut routers: HashMap<(&str, u8, bool), (usize, String)> = HashMap::new();
    let mut vips: HashMap<IpAddr, String> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        let name = f.name.as_ref().map(|n| n.get_ref().as_str());
        let label = name.map_or_else(
            || format!("instance #{}", i + 1),
            |n| format!("instance {n}"),
        );
        if let Some(n) = &f.name {
            if let Some(first) = names.get(n.get_ref().as_str()) {
                let (line, _) = position(
                    cx.text,
                    facts[*first].name.as_ref().map_or(0, |n| n.span().start),
                );
                cx.at(
                    n.span(),
                    format!("instance name \"{}\" is already used (line {line})", n.get_ref()),
                    "give each instance its own name: status, logs and commands like `floatip takeover NAME` use it",
                );
            } else {
                names.insert(n.get_ref(), i);
            }
        }
        if let (Some(ifname), Some((vrid, span)), Some(v6)) = (&f.interface, &f.vrid, f.is_v6) {
            let key = (ifname.as_str(), *vrid, v6);
            if let Some((_, other)) = routers.get(&key) {
                cx.at(
                    span.clone(),
                    format!(
                        "{label} uses vrid {vrid} on {ifname} for IPv{}, like {other}",
                        if v6 { 6 } else { 4 }
                    ),
                    "one VRID is one virtual router on a LAN: give each instance on the same interface and family its own vrid",
                );
            } else {
                routers.insert(key, (i, label.clone()));
            }
        }
        for (vip, span) in &f.vips {
            if let Some(other) = vips.get(&vip.addr) {
                cx.at(
                    span.clone(),
                    format!("{} is already managed by {other}", vip.addr),
                    "two instances may not share a VIP (they would fight over it); keep it in one of them",
                );
            } else {
                vips.insert(vip.addr, label.clone());
            }
        }
    }
}
