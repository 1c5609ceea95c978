//! Words and times for people, shared by `floatip status` ([`crate::cli::render`]) and the status
//! page ([`crate::http::page`]): clock times, ages, and an etcd instance's lines. Below both, so
//! neither reaches into the other.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::format_duration;
use crate::control::status::EtcdStatus;

/// "14:02:11" in local time, with the date when it is not today-ish (over 20 hours ago).
pub fn clock(at: f64, now_s: f64) -> String {
    let secs = at.floor() as i64;
    let Some(tm) = local_time(secs) else {
        return format!("@{secs}");
    };
    if (now_s - at).abs() > 20.0 * 3600.0 {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    } else {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

fn local_time(secs: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(secs).ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
    // SAFETY: localtime_r reads `t` and writes a complete `tm` into the buffer we own, returning null
    // (and writing nothing we read) on failure. It is the thread-safe variant.
    let res = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if res.is_null() {
        return None;
    }
    // SAFETY: localtime_r succeeded, so it initialised the whole struct.
    Some(unsafe { tm.assume_init() })
}

/// A duration for people, rounded to what matters: "850us", "833ms", "4.94s", "3m12s", "2h03m".
pub fn duration(d: std::time::Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{}ms", (us + 500) / 1000)
    } else if us < 60_000_000 {
        let s = format!("{:.2}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        human_age_secs(d.as_secs_f64())
    }
}

/// "0.4s", "12.3s", "3m12s", "2h03m", "3d04h".
pub fn human_age_secs(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d{:02}h", s / 86400, (s % 86400) / 3600)
    }
}

/// What `floatip status` and the status page show of an etcd instance, as (label, text) rows; a
/// `warning` row last, while etcd is unreachable.
pub fn etcd_lines(e: &EtcdStatus, now_s: f64) -> Vec<(&'static str, String)> {
    let lease = match (&e.lease, e.lease_remaining_ms) {
        (Some(id), Some(ms)) => format!(
            "{id}, TTL {} s, {} left (by our count)",
            e.lease_ttl_s,
            format_duration(Duration::from_millis(ms))
        ),
        _ => "none (not a candidate until etcd grants one)".to_string(),
    };
    let candidates: Vec<String> = e
        .candidates
        .iter()
        .map(|c| format!("{} priority {}", c.address, c.priority))
        .collect();
    let mut rows = vec![
        ("etcd", format!("{} (in use); lease {lease}", e.endpoint)),
        ("owner", e.owner.as_deref().unwrap_or("nobody").to_string()),
        ("candidates", candidates.join(", ")),
    ];
    if let Some(since) = e.unreachable_since {
        let mut text = format!("etcd unreachable since {}", clock(since, now_s));
        if let Some(at) = e.released_at.filter(|at| *at >= since) {
            let _ = write!(text, "; VIP released at {}", clock(at, now_s));
        }
        rows.push(("warning", text));
    }
    rows
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_for_people() {
        use std::time::Duration;
        assert_eq!(duration(Duration::from_micros(850)), "850us");
        assert_eq!(duration(Duration::from_nanos(833_333_333)), "833ms");
        assert_eq!(duration(Duration::from_nanos(4_941_339_143)), "4.94s");
        assert_eq!(duration(Duration::from_secs(3)), "3s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::from_secs(192)), "3m12s");
    }

    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age_secs(0.42), "0.4s");
        assert_eq!(human_age_secs(192.0), "3m12s");
        assert_eq!(human_age_secs(7380.0), "2h03m");
    }
}
