//! The report: table rows and their verdicts, number formatting, and the Markdown written to
//! results/latest.md (machine, versions, table, findings, how it was measured).

use std::fmt::Write as _;
use std::time::Duration;

use floatip_lab::run_output;

use crate::ctx::Ctx;
use crate::parse::{self, Sample};

pub fn fmt_ms(v: f64) -> String {
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn fmt_sample(s: Sample, unit: &str, none: &str) -> String {
    match s {
        Some(v) => format!("{} {unit}", fmt_ms(v)),
        None => none.to_string(),
    }
}

pub fn fmt_gap(g: std::result::Result<f64, f64>) -> String {
    match g {
        Ok(v) => format!("{} ms", fmt_ms(v)),
        Err(v) => format!("no reply after the event (>= {} ms)", fmt_ms(v)),
    }
}

/// One row of the table.
pub struct Row {
    pub scenario: String,
    pub unit: &'static str,
    pub floatip: std::result::Result<Vec<Sample>, String>,
    pub keepalived: std::result::Result<Vec<Sample>, String>,
    /// Rendering of a `None` sample.
    pub never: &'static str,
    pub target: String,
    /// Verdict from (floatip median, keepalived median).
    pub verdict: fn(&Row) -> String,
    pub limit: Option<f64>,
}

/// Samples of one metric over a daemon's trials; Err (the first failure, or "not run") if no
/// trial succeeded.
pub fn column<T>(
    trials: &[std::result::Result<T, String>],
    f: impl Fn(&T) -> Sample,
) -> std::result::Result<Vec<Sample>, String> {
    let ok: Vec<Sample> = trials
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(f)
        .collect();
    if ok.is_empty() {
        Err(first_failure(trials))
    } else {
        Ok(ok)
    }
}

/// Why the first failed trial failed, or "not run" if none did.
pub fn first_failure<T>(trials: &[std::result::Result<T, String>]) -> String {
    trials
        .iter()
        .find_map(|r| r.as_ref().err().cloned())
        .unwrap_or_else(|| "not run".into())
}

pub fn med(v: &std::result::Result<Vec<Sample>, String>) -> Option<Sample> {
    v.as_ref()
        .ok()
        .and_then(|v| parse::summarize(v))
        .map(|s| s.0)
}

/// Pass if floatip's median is within `limit` and no worse than keepalived's median.
pub fn verdict_limit_and_keepalived(r: &Row) -> String {
    let Some(f) = med(&r.floatip) else {
        return "not measured".into();
    };
    let Some(f) = f else {
        return "MISS (never)".into();
    };
    let mut misses = Vec::new();
    if let Some(l) = r.limit {
        if f > l {
            misses.push(format!("+{} {} over target", fmt_ms(f - l), r.unit));
        }
    }
    if let Some(Some(k)) = med(&r.keepalived) {
        if f > k {
            misses.push(format!(
                "worse than keepalived by {} {}",
                fmt_ms(f - k),
                r.unit
            ));
        }
    }
    if misses.is_empty() {
        "pass".into()
    } else {
        format!("MISS ({})", misses.join("; "))
    }
}

pub fn verdict_limit(r: &Row) -> String {
    let Some(f) = med(&r.floatip) else {
        return "not measured".into();
    };
    match (f, r.limit) {
        (None, _) => "MISS (never)".into(),
        (Some(f), Some(l)) if f > l => format!("MISS (+{} {} over target)", fmt_ms(f - l), r.unit),
        _ => "pass".into(),
    }
}

/// For rows whose target is "happens at all" (the VIP leaves a dead host).
pub fn verdict_finite(r: &Row) -> String {
    match med(&r.floatip) {
        None => "not measured".into(),
        Some(None) => "MISS (never)".into(),
        Some(Some(_)) => "pass".into(),
    }
}

pub fn fmt_cell(v: &std::result::Result<Vec<Sample>, String>, never: &str) -> String {
    match v {
        Err(why) => why.replace('|', "/").replace('\n', " "),
        Ok(v) => match parse::summarize(v) {
            None => "no trials".into(),
            Some((m, lo, hi)) => {
                let f = |s: Sample| s.map(fmt_ms).unwrap_or_else(|| never.to_string());
                if f(lo) == f(hi) {
                    format!("{} (all {})", f(m), v.len())
                } else {
                    format!("{} ({}–{})", f(m), f(lo), f(hi))
                }
            }
        },
    }
}

/// Per scenario: rows for the table and SVG panels.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub svg: Option<(String, String)>,
}

pub fn first_line(argv: &[&str]) -> String {
    run_output(argv, Duration::from_secs(5))
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

pub fn report(ctx: &Ctx, outcomes: &[Outcome], scenarios: &[String], started: &str) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let floatip_v = match &ctx.floatip_missing {
        Some(why) => format!("not measured: {why}"),
        None => format!(
            "{} (workspace at commit {})",
            first_line(&[ctx.floatip_bin.to_str().unwrap_or("floatip"), "--version"]),
            first_line(&[
                "git",
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "log",
                "-1",
                "--format=%h %s"
            ])
        ),
    };
    let mut s = String::new();
    let _ = writeln!(s, "# floatip vs keepalived: failover benchmark\n");
    let _ = writeln!(s, "- date: {started} (UTC)");
    let _ = writeln!(
        s,
        "- machine: {nproc} CPUs, {model} (shared with other work while measuring)"
    );
    let _ = writeln!(s, "- kernel: {}", first_line(&["uname", "-r"]));
    let _ = writeln!(s, "- floatip: {floatip_v}");
    let _ = writeln!(
        s,
        "- keepalived: {}",
        first_line(&["/usr/sbin/keepalived", "-v"])
    );
    let _ = writeln!(
        s,
        "- trials per daemon and scenario: {}; scenarios: {}",
        ctx.trials,
        scenarios.join(", ")
    );
    let _ = writeln!(
        s,
        "- command: `cargo run --release -p floatip-bench -- --trials {}{}`\n",
        ctx.trials,
        scenarios
            .iter()
            .map(|n| format!(" --scenario {n}"))
            .collect::<String>()
    );
    let _ = writeln!(
        s,
        "Values: median (min–max) over the trials; ms unless the scenario says otherwise.\n"
    );
    let _ = writeln!(s, "| scenario | floatip | keepalived | target | verdict |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for o in outcomes {
        for r in &o.rows {
            let unit = if r.unit == "ms" {
                String::new()
            } else {
                format!(" [{}]", r.unit)
            };
            let _ = writeln!(
                s,
                "| {}{unit} | {} | {} | {} | {} |",
                r.scenario,
                fmt_cell(&r.floatip, r.never),
                fmt_cell(&r.keepalived, r.never),
                r.target,
                (r.verdict)(r)
            );
        }
    }
    let svgs: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| o.svg.as_ref().map(|(n, _)| n.as_str()))
        .collect();
    if !svgs.is_empty() {
        let _ = writeln!(
            s,
            "\nTimelines (median trial of each daemon): {}",
            svgs.iter()
                .map(|n| format!("[{n}]({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !ctx.notes.is_empty() {
        let _ = writeln!(s, "\n## Findings during this run");
        for n in &ctx.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s.push_str(NOTES);
    s
}

pub const NOTES: &str = "
## How it was measured
- Every trial runs in a fresh lab (`floatip_lab::Lab`): namespaces `fipbench<pid>x<n>-{sw,h1,h2,c}`,
  the bridge in its own namespace, h1 192.0.2.1 (priority 150), h2 192.0.2.2 (priority 100), client c 192.0.2.3; VIP
  192.0.2.97/24, VRID 51, VRRPv3 on both daemons with the same advert interval (keepalived
  `vrrp_version 3`, native `advert_int`). keepalived: `state MASTER` on h1 (only to skip the start-up
  wait), default GARP settings written out (`vrrp_garp_master_repeat 5` at once, 5 more after
  `vrrp_garp_master_delay 5`); floatip: its defaults (`[instance.announce] count = 5`, spacing 200 ms),
  default `address_lifetime` (2 s at 1 s adverts, 1 s below), `state_dir` per host inside the lab.
- Client gap: the lab's `Pinger` in c (raw ICMP echo to the VIP on a fixed 1 ms schedule, replies
  timestamped on arrival); the longest interval between consecutive replies that ends after the event
  (the one spanning the event included). Resolution: about 1-2 ms.
- Who held the VIP: `ip -ts monitor address` in h1 and h2 (kernel address events, µs timestamps), so
  ownership and dual ownership are exact, not sampled. The harness polls `ip addr` every 5 ms only to
  decide when to end a trial.
- Phase: the event of trial k (of N) happens (k + 0.5)/N of an advert interval after one of h1's
  adverts (anchored at h1's claim), the same phases for both daemons: a host lost just after an advert
  costs a full Master_Down, just before one about an interval less, and a fixed settle time would
  otherwise measure one phase only.
- Host loss: the switch-side veth of h1 is set down. kill -9: floatip's single process; keepalived: the
  parent is frozen (SIGSTOP, so it cannot respawn its child), its VRRP child and then the parent get
  SIGKILL. The wait is capped at 10 s. SIGTERM: to floatip / keepalived's parent.
- Health check: a TCP server (`floatip-bench serve-tcp 127.0.0.1:9000`, std only) runs in h1 and
  h2; h1's is killed (SIGKILL) and the value is the time until h2 holds the VIP.
  floatip: `kind = \"tcp\"`, interval 200 ms, timeout 100 ms, fall 2, rise 1. keepalived has no
  TCP check for VRRP; it runs a `vrrp_script` (`bash -c 'exec 3<>/dev/tcp/127.0.0.1/9000'`) with
  fall 2, but its script `interval` cannot go below 1 s (`interval 0.2` is refused: \"must be
  between 1 and 4294\"), so its detection takes 1-2 s by construction.
- CPU: per mille of one core, from the first field of /proc/PID/task/*/schedstat (ns on CPU) over
  the window, summed over every thread, and over keepalived's parent and VRRP child; RSS: VmRSS,
  summed the same way. Measured on the master (h1) with a backup present and no client traffic. Each
  trial builds one lab per daemon (in alternating order) and measures both masters over the same
  window, so load from elsewhere on the (shared, virtual) machine falls on both alike; the ratio row
  is floatip's CPU over keepalived's per trial. The kernel work of carrying an advert across the
  bridge and waking the backup runs in the sender's context and is counted as the master's.
- Scale: N instances (VRIDs 1..N) with IPv6 VIPs 2001:db8::1:<k in hex>/64 (VRRPv3 over IPv6 on
  both daemons), because 255 IPv4 VIPs do not fit in 192.0.2.0/24 next to the hosts' own addresses.
- The machine is small and shared; treat single-digit-ms differences at 1 s adverts as noise.
";
