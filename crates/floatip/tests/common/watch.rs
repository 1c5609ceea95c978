//! Who held a VIP when, from the kernel's own address events: `ip -tshort -oneline monitor
//! address` in each host, so that a moment of two owners is seen however short it is (sampling can
//! miss it). Timestamps are the machine's wall clock, shared by every namespace.

use std::path::PathBuf;
use std::time::Duration;

use floatip_lab::{Host, Lab, Proc};

use super::path_str;

/// The address events of one host's eth0, recorded while it lives.
pub struct AddrWatch {
    pub host: String,
    proc: Proc,
    log: PathBuf,
}

/// One add (or refresh) or removal of an address, at unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AddrEvent {
    pub at: f64,
    pub added: bool,
}

impl AddrWatch {
    /// Starts watching `host`; events from about 200 ms after this call on are recorded.
    pub fn start(lab: &Lab, host: &Host) -> AddrWatch {
        let log = lab.path(&format!("addr-events-{}.log", host.name));
        let proc = host
            .spawn(
                &[
                    "ip", "-tshort", "-oneline", "monitor", "address", "dev", "eth0",
                ],
                Some(&log),
            )
            .expect("cannot start ip monitor");
        std::thread::sleep(Duration::from_millis(200));
        AddrWatch {
            host: host.name.clone(),
            proc,
            log,
        }
    }

    /// Every event for `addr` so far, oldest first.
    pub fn events(&self, addr: &str) -> Vec<AddrEvent> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        parse_events(&text, addr)
    }

    /// The raw lines, for a failure message.
    pub fn text(&self) -> String {
        format!(
            "{} ({}):\n{}",
            self.host,
            path_str(&self.log),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.proc.kill9();
    }
}

/// Parses `[2026-11-30T23:41:48.623334] [Deleted ]3: eth0    inet 192.0.2.97/24 ...` lines.
pub fn parse_events(text: &str, addr: &str) -> Vec<AddrEvent> {
    let needle = format!(" {addr}/");
    text.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split(']').next()?;
            Some(AddrEvent {
                at: unix_seconds(stamp)?,
                added: !l.contains("] Deleted "),
            })
        })
        .collect()
}

/// "2026-11-30T23:41:48.623334" (UTC or local: only differences matter) to seconds.
fn unix_seconds(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let ss: f64 = t
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// The spans (start, end) during which two or more hosts held the address, given each host's
/// holding at the start and its events. An add and a removal at the same microsecond on two hosts
/// count as an overlap (the order between hosts is unknown then).
pub fn two_owner_spans(hosts: &[(bool, Vec<AddrEvent>)]) -> Vec<(f64, f64)> {
    let mut all: Vec<(f64, usize, bool)> = hosts
        .iter()
        .enumerate()
        .flat_map(|(i, (_, ev))| ev.iter().map(move |e| (e.at, i, e.added)))
        .collect();
    // Adds before removals at the same instant: a tie is an overlap, not a clean handover.
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.2.cmp(&a.2)));
    let mut held: Vec<bool> = hosts.iter().map(|(h, _)| *h).collect();
    let mut spans = Vec::new();
    let mut since: Option<f64> = None;
    for (at, i, added) in all {
        held[i] = added;
        let count = held.iter().filter(|h| **h).count();
        match (count >= 2, since) {
            (true, None) => since = Some(at),
            (false, Some(s)) => {
                spans.push((s, at));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        spans.push((s, f64::INFINITY));
    }
    spans
}
