//! Parsing of what the tools print, and the statistics. Pure functions: this is what `cargo test`
//! covers (no timing is ever asserted).

/// Whether `addr` (bare, e.g. "192.0.2.97") is among `list` ("192.0.2.97/24", ...).
pub fn holds(list: &[String], addr: &str) -> bool {
    list.iter().any(|a| a.split('/').next() == Some(addr))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// "2026-11-23T20:45:45.123456" (UTC) to seconds since the epoch.
pub fn parse_iso_utc(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    Some((days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60) as f64 + sec)
}

/// Address events for `vip` (bare address) from `ip -ts monitor address` run with TZ=UTC:
/// (time, present). Lines look like
/// "[2026-11-23T20:45:45.123456] 2: eth0    inet 192.0.2.97/24 scope global secondary eth0" and
/// "[2026-11-23T20:45:46.000001] Deleted 2: eth0    inet 192.0.2.97/24 ...".
pub fn monitor_events(log: &str, vip: &str) -> Vec<(f64, bool)> {
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(rest) = l.strip_prefix('[') else {
            continue;
        };
        let Some((ts, body)) = rest.split_once(']') else {
            continue;
        };
        let Some(t) = parse_iso_utc(ts) else { continue };
        let mut words = body.split_whitespace();
        let mut hit = false;
        while let Some(w) = words.next() {
            if w == "inet" || w == "inet6" {
                hit = words.next().and_then(|a| a.split('/').next()) == Some(vip);
                break;
            }
        }
        if hit {
            out.push((t, !body.trim_start().starts_with("Deleted")));
        }
    }
    out
}

/// Turns (time, present) events (starting from "absent") into closed intervals of ownership;
/// an interval still open at `end` is closed there.
pub fn intervals(events: &[(f64, bool)], end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut since: Option<f64> = None;
    for &(t, present) in events {
        match (present, since) {
            (true, None) => since = Some(t),
            (false, Some(s)) => {
                out.push((s, t));
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        out.push((s, end.max(s)));
    }
    out
}

/// Whether `t` lies in one of `iv`.
pub fn held_at(iv: &[(f64, f64)], t: f64) -> bool {
    iv.iter().any(|&(a, b)| a <= t && t < b)
}

/// Total time within [from, to] during which both interval lists hold.
pub fn overlap(a: &[(f64, f64)], b: &[(f64, f64)], from: f64, to: f64) -> f64 {
    let mut total = 0.0;
    for &(a0, a1) in a {
        for &(b0, b1) in b {
            let s = a0.max(b0).max(from);
            let e = a1.min(b1).min(to);
            if e > s {
                total += e - s;
            }
        }
    }
    total
}

/// First time at or after `from` that the list stops holding (None if it holds to the end).
pub fn first_release_after(iv: &[(f64, f64)], from: f64, end: f64) -> Option<f64> {
    if !held_at(iv, from) {
        return Some(from);
    }
    iv.iter()
        .find(|&&(a, b)| a <= from && from < b)
        .map(|&(_, b)| b)
        .filter(|&b| b < end)
}

/// First time at or after `from` that the list holds.
pub fn first_hold_after(iv: &[(f64, f64)], from: f64) -> Option<f64> {
    if held_at(iv, from) {
        return Some(from);
    }
    iv.iter()
        .map(|&(a, _)| a)
        .filter(|&a| a >= from)
        .reduce(f64::min)
}

/// The client's longest gap around `event`: the longest interval between consecutive replies
/// that ends after `event` (the interval straddling the event counts), among replies up to
/// `end`. `Err(open)` when no reply came after the event: the service never came back, `open` is
/// the time from the last reply to `end` (a lower bound).
/// The times of the non-duplicate replies a pinger got up to `end`.
pub fn reply_times(report: &floatip_lab::PingReport, end: f64) -> Vec<f64> {
    report
        .replies
        .iter()
        .filter(|r| !r.duplicate && r.at <= end)
        .map(|r| r.at)
        .collect()
}

pub fn longest_gap(replies: &[f64], event: f64, end: f64) -> Result<f64, f64> {
    let (before, after) = around(replies, event, end);
    let Some(start) = before else {
        return Err(end - event);
    };
    if after.is_empty() {
        return Err(end - start);
    }
    let mut prev = start;
    let mut gap: f64 = 0.0;
    for t in after {
        gap = gap.max(t - prev);
        prev = t;
    }
    Ok(gap)
}

/// ms after the event at which the longest gap ended (0 if none).
pub fn gap_end_ms(replies: &[f64], event: f64, end: f64) -> f64 {
    let (mut prev, after) = around(replies, event, end);
    let mut best = (0.0, 0.0);
    for t in after {
        if let Some(p) = prev {
            if t - p > best.0 {
                best = (t - p, t - event);
            }
        }
        prev = Some(t);
    }
    best.1 * 1000.0
}

/// The last reply at or before `event` (None: none), and the replies after it up to `end`, sorted.
fn around(replies: &[f64], event: f64, end: f64) -> (Option<f64>, Vec<f64>) {
    let before = replies
        .iter()
        .copied()
        .filter(|&t| t <= event)
        .reduce(f64::max);
    let mut after: Vec<f64> = replies
        .iter()
        .copied()
        .filter(|&t| t > event && t <= end)
        .collect();
    after.sort_by(f64::total_cmp);
    (before, after)
}

/// First field of /proc/PID/schedstat: nanoseconds spent on a CPU.
pub fn schedstat_ns(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

/// VmRSS in kB from /proc/PID/status.
pub fn vmrss_kb(s: &str) -> Option<u64> {
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// voluntary_ctxt_switches + nonvoluntary_ctxt_switches from a /proc status file.
pub fn ctxt_switches(s: &str) -> u64 {
    s.lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches:")
                || l.starts_with("nonvoluntary_ctxt_switches:")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Parent pid from /proc/PID/stat ("pid (comm) state ppid ...", comm may hold spaces).
pub fn stat_ppid(s: &str) -> Option<u32> {
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// A measured value: `Some(ms)`, or `None` for "did not happen within the cap".
pub type Sample = Option<f64>;

/// (median, min, max) of samples where `None` (never) sorts above every number. Empty -> None.
pub fn summarize(samples: &[Sample]) -> Option<(Sample, Sample, Sample)> {
    if samples.is_empty() {
        return None;
    }
    let key = |s: &Sample| s.unwrap_or(f64::INFINITY);
    let mut v: Vec<f64> = samples.iter().map(key).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let back = |x: f64| x.is_finite().then_some(x);
    Some((back(med), back(v[0]), back(v[n - 1])))
}

/// Index of the sample closest to the median (the trial drawn in the SVG).
pub fn median_index(samples: &[Sample]) -> Option<usize> {
    let (med, _, _) = summarize(samples)?;
    let m = med.unwrap_or(f64::INFINITY);
    let dist = |s: &Sample| {
        let x = s.unwrap_or(f64::INFINITY);
        if x == m {
            0.0
        } else {
            (x - m).abs()
        }
    };
    (0..samples.len()).min_by(|&a, &b| dist(&samples[a]).total_cmp(&dist(&samples[b])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_ignores_prefix_length() {
        let a = vec!["192.0.2.1/24".to_string(), "2001:db8::1:ff/64".to_string()];
        assert!(holds(&a, "192.0.2.1") && holds(&a, "2001:db8::1:ff"));
        assert!(!holds(&a, "192.0.2.11"));
    }

    #[test]
    fn iso_time() {
        assert_eq!(parse_iso_utc("1970-01-01T00:00:00.000000"), Some(0.0));
        // date -u -d 2026-11-23T20:45:45 +%s
        assert_eq!(parse_iso_utc("2026-11-23T20:45:45"), Some(1795466745.0));
        let t = parse_iso_utc("2000-03-01T00:00:01.5").unwrap();
        assert!((t - 951868801.5).abs() < 1e-9);
    }

    #[test]
    fn monitor_lines() {
        let log = "[2026-11-23T20:45:45.100000] 2: eth0    inet 192.0.2.97/24 scope global secondary eth0\n\
                   \x20      valid_lft forever preferred_lft forever\n\
                   [2026-11-23T20:45:45.200000] 2: eth0    inet 192.0.2.197/24 scope global secondary eth0\n\
                   [2026-11-23T20:45:46.100000] Deleted 2: eth0    inet 192.0.2.97/24 scope global secondary eth0\n\
                   [2026-11-23T20:45:46.200000] 2: eth0    inet6 2001:db8::1:1/64 scope global\n";
        let e = monitor_events(log, "192.0.2.97");
        assert_eq!(e.len(), 2);
        assert!(e[0].1 && !e[1].1);
        assert!((e[1].0 - e[0].0 - 1.0).abs() < 1e-6);
        assert_eq!(monitor_events(log, "2001:db8::1:1").len(), 1);
    }

    #[test]
    fn interval_logic() {
        let iv = intervals(&[(1.0, true), (1.5, true), (2.0, false), (3.0, true)], 5.0);
        assert_eq!(iv, [(1.0, 2.0), (3.0, 5.0)]);
        assert!(held_at(&iv, 1.2) && !held_at(&iv, 2.5));
        let other = [(1.8, 3.5)];
        assert!((overlap(&iv, &other, 0.0, 10.0) - 0.7).abs() < 1e-9);
        assert!((overlap(&iv, &other, 1.9, 3.2) - 0.3).abs() < 1e-9);
        assert_eq!(first_release_after(&iv, 1.2, 5.0), Some(2.0));
        assert_eq!(first_release_after(&iv, 3.5, 5.0), None);
        assert_eq!(first_release_after(&iv, 2.5, 5.0), Some(2.5));
        assert_eq!(first_hold_after(&iv, 2.2), Some(3.0));
        assert_eq!(first_hold_after(&iv, 1.2), Some(1.2));
    }

    #[test]
    fn gaps() {
        let r = [0.0, 0.001, 0.002, 0.5, 0.501, 0.502];
        assert!((longest_gap(&r, 0.1, 1.0).unwrap() - 0.498).abs() < 1e-9);
        assert!(longest_gap(&r, 0.6, 1.0).is_err());
        assert!(longest_gap(&[], 0.1, 1.0).is_err());
        // A gap entirely before the event does not count.
        let r = [0.0, 0.4, 0.401, 0.402];
        assert!((longest_gap(&r, 0.4005, 1.0).unwrap() - 0.001).abs() < 1e-9);
    }

    #[test]
    fn proc_files() {
        assert_eq!(schedstat_ns("123456 789 10\n"), Some(123456));
        let st = "Name:\tkeepalived\nVmPeak:\t 1000 kB\nVmRSS:\t    5120 kB\n";
        assert_eq!(vmrss_kb(st), Some(5120));
        let st = "voluntary_ctxt_switches:\t100\nnonvoluntary_ctxt_switches:\t5\n";
        assert_eq!(ctxt_switches(st), 105);
        assert_eq!(stat_ppid("42 (a (b) c) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn stats() {
        let s = [Some(3.0), Some(1.0), Some(2.0)];
        assert_eq!(summarize(&s), Some((Some(2.0), Some(1.0), Some(3.0))));
        let s = [Some(3.0), None, Some(1.0), Some(2.0)];
        assert_eq!(summarize(&s), Some((Some(2.5), Some(1.0), None)));
        let s = [None, None, Some(1.0)];
        assert_eq!(summarize(&s), Some((None, Some(1.0), None)));
        assert_eq!(summarize(&[]), None);
        assert_eq!(median_index(&[Some(5.0), Some(1.0), Some(3.0)]), Some(2));
        assert_eq!(median_index(&[None, None, Some(1.0)]), Some(0));
    }
}
