//! floatip-bench: client-visible failover of floatip next to keepalived, in network namespaces.
//!
//! `cargo run --release -p floatip-bench -- [--trials N] [--scenario NAME...] [--quick]` as root.
//! See bench/README.md.

mod chaos;
mod daemons;
mod parse;
mod svg;
mod sys;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use daemons::{Daemon, Setup};
use floatip_lab::{Host, Lab, Pinger};
use parse::Sample;
use svg::Timeline;

const VIP: &str = "192.0.2.97";
const CHECK_PORT: u16 = 9000;
const KILL9_CAP: f64 = 10.0;

const SCENARIOS: &[&str] = &[
    "hostloss-1s",
    "hostloss-10ms",
    "kill9",
    "sigterm",
    "takeover",
    "release",
    "healthcheck",
    "cpu-10ms",
    "scale",
    "chaos",
];

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn check_interrupted() -> Result<()> {
    if floatip_lab::interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking every 50 ms to notice Ctrl-C.
fn sleep(d: Duration) -> Result<()> {
    let deadline = Instant::now() + d;
    loop {
        check_interrupted()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Polls `cond` every `every` for at most `limit`; true if it came true.
fn wait_until(
    limit: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        check_interrupted()?;
        if cond()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(every);
    }
}

/// RFC 5798 Master_Down_Interval of a backup at `priority` (seconds).
fn master_down(interval_ms: u32, priority: u8) -> f64 {
    let i = interval_ms as f64 / 1000.0;
    3.0 * i + (256.0 - priority as f64) * i / 256.0
}

struct Ctx {
    trials: usize,
    floatip_bin: PathBuf,
    self_bin: PathBuf,
    cpu_window: Duration,
    /// Why floatip cannot be measured in this build, if it cannot.
    floatip_missing: Option<String>,
    /// Findings worth a line in the report (deduplicated).
    notes: Vec<String>,
    /// `--profile`: perf profiles of the 10 ms CPU scenario into bench/results/.
    profile: bool,
}

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

impl Ctx {
    fn note(&mut self, n: &str) {
        if !self.notes.iter().any(|x| x == n) {
            self.notes.push(n.to_string());
        }
    }
}

/// A fresh lab ("fipbench<pid>x<n>-*" namespaces) with hosts h1 (.1), h2 (.2) and optionally the
/// client c (.3), each with an IPv6 address too. Logs go to the lab's temp dir (kept with --keep).
fn new_lab(with_client: bool) -> Result<(Lab, Vec<Host>, PathBuf)> {
    let mut lab = Lab::new("fipbench")?;
    let mut hosts = Vec::new();
    let names: &[&str] = if with_client {
        &["h1", "h2", "c"]
    } else {
        &["h1", "h2"]
    };
    for (i, h) in names.iter().enumerate() {
        let n = i + 1;
        hosts.push(lab.add_host(
            h,
            &format!("192.0.2.{n}/24"),
            Some(&format!("2001:db8::{n}/64")),
        )?);
    }
    let dir = lab.dir().to_path_buf();
    Ok((lab, hosts, dir))
}

fn stop_proc(p: &mut floatip_lab::Proc) {
    // SIGINT first: `ip monitor` then exits with its output flushed.
    p.signal(libc::SIGINT);
    if p.wait_exit(Duration::from_secs(1)).is_none() {
        p.stop(Duration::from_secs(1));
    }
}
#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    HostLoss,
    Kill9,
    Sigterm,
    Takeover,
    Release,
    Health,
}

/// What one failover trial measured.
struct FailoverTrial {
    /// Client gap in ms (Err: no reply after the event, with the lower bound).
    gap: std::result::Result<f64, f64>,
    /// ms from the event until the VIP left h1 (None: not within the cap).
    leave: Sample,
    /// ms from the event until h2 held the VIP.
    taken: Sample,
    /// ms during which both held the VIP after the event (None: still both at the cap).
    dual: Sample,
    timeline: Timeline,
}

fn holds(host: &Host, vip: &str) -> Result<bool> {
    Ok(host.has_address(vip))
}
fn failover_trial(
    ctx: &mut Ctx,
    daemon: Daemon,
    ev: Event,
    interval_ms: u32,
    phase: f64,
) -> Result<FailoverTrial> {
    let (lab, hosts, dir) = new_lab(true)?;
    let (h1, h2, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let check = (ev == Event::Health).then_some(CHECK_PORT);
    let setup = daemons::files_setup(interval_ms, check);
    // The service runs on both hosts (h2 must pass its own check to take over); h1's is killed.
    let mut server = None;
    if check.is_some() {
        let bin = ctx.self_bin.to_str().context("path")?.to_string();
        let addr = format!("127.0.0.1:{CHECK_PORT}");
        for h in [h1, h2] {
            let log = dir.join(format!("serve-tcp-{}.log", h.name));
            let p = h.spawn(&[&bin, "serve-tcp", &addr], Some(&log))?;
            if !wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
                Ok(std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("listening"))
            })? {
                bail!("the tcp server in {} did not start", h.name);
            }
            if server.is_none() {
                server = Some(p);
            }
        }
    }
    let mut monitors = Vec::new();
    for h in [h1, h2] {
        monitors.push(h.spawn(
            &["env", "TZ=UTC", "ip", "-ts", "monitor", "address"],
            Some(&dir.join(format!("monitor-{}.log", h.name))),
        )?);
    }
    sleep(Duration::from_millis(100))?;
    let d1 = daemons::start(daemon, &ctx.floatip_bin, h1, 150, &setup, &dir)?;
    let startup = Duration::from_secs_f64(master_down(interval_ms, 150) + 10.0);
    if !wait_until(startup, Duration::from_millis(5), || holds(h1, VIP))? {
        bail!(
            "h1 ({}) never claimed {VIP}; logs: {}",
            daemon.name(),
            logs_hint(&dir)
        );
    }
    // h1 adverts from its claim on, every interval: the anchor for the event's phase.
    let t_claim = now();
    let d2 = daemons::start(daemon, &ctx.floatip_bin, h2, 100, &setup, &dir)?;
    let t_h2 = Instant::now();
    let cap = if ev == Event::Kill9 {
        KILL9_CAP
    } else {
        10.0 * interval_ms as f64 / 1000.0 + 5.0
    };
    let settle = Duration::from_secs_f64(master_down(interval_ms, 100) + 0.7);
    let pinger = Pinger::start(c, VIP, Duration::from_millis(1))?;
    sleep(
        settle
            .saturating_sub(t_h2.elapsed())
            .max(Duration::from_millis(600)),
    )?;
    if holds(h2, VIP)? || !holds(h1, VIP)? {
        bail!(
            "not settled: h1 should hold {VIP} and h2 not; logs: {}",
            logs_hint(&dir)
        );
    }
    // Place the event at `phase` of an advert interval after one of h1's adverts (as far as the
    // claim, seen by 5 ms polling, tells): host loss right after an advert costs a full
    // Master_Down, right before one costs an interval less. Both daemons get the same phases.
    let i = interval_ms as f64 / 1000.0;
    let next = t_claim + ((now() - t_claim) / i).ceil() * i + phase * i;
    sleep(Duration::from_secs_f64((next - now()).max(0.0)))?;
    let mut t_event = now();
    match ev {
        Event::HostLoss => h1.link_down()?,
        Event::Kill9 => daemons::kill9(&d1)?,
        Event::Sigterm => {
            d1.proc.signal(libc::SIGTERM);
        }
        Event::Takeover => {
            if daemons::floatip_cli(&ctx.floatip_bin, &d2, &["takeover", "files"])?.is_none() {
                bail!("not available in this build");
            }
        }
        Event::Release => {
            match daemons::floatip_cli(&ctx.floatip_bin, &d1, &["release", "files"]) {
                Ok(Some(_)) => {}
                Ok(None) => bail!("not available in this build"),
                Err(e) if format!("{e:#}").contains("no other router has been heard") => {
                    ctx.note(
                        "`floatip release files` on the master is refused in steady state (\"no other \
                         router has been heard on VRID 51 recently\"): a VRRP backup is silent, and the \
                         daemon's peer_alive() only counts routers heard within 3 × advert_interval. The \
                         release rows were measured with `floatip release --force files` (the same \
                         make-before-break path once the refusal is skipped).",
                    );
                    t_event = now();
                    daemons::floatip_cli(&ctx.floatip_bin, &d1, &["release", "--force", "files"])?;
                }
                Err(e) => return Err(e),
            }
        }
        Event::Health => {
            if let Some(p) = &server {
                p.kill9();
            }
        }
    }
    let moved = wait_until(
        Duration::from_secs_f64(cap),
        Duration::from_millis(5),
        || Ok(holds(h2, VIP)? && (ev != Event::Kill9 || !holds(h1, VIP)?)),
    )?;
    if moved {
        sleep(
            Duration::from_millis(300)
                + Duration::from_millis(3 * interval_ms as u64).min(Duration::from_secs(1)),
        )?;
    }
    let t_end = now();
    let report = pinger.stop();
    for m in &mut monitors {
        stop_proc(m);
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let replies: Vec<f64> = report
        .replies
        .iter()
        .filter(|r| !r.duplicate && r.at <= t_end)
        .map(|r| r.at)
        .collect();
    let h1 = parse::intervals(&parse::monitor_events(&read("monitor-h1.log"), VIP), t_end);
    let h2 = parse::intervals(&parse::monitor_events(&read("monitor-h2.log"), VIP), t_end);
    if !parse::held_at(&h1, t_event) {
        bail!(
            "ip monitor did not see h1 holding {VIP} at the event; logs: {}",
            logs_hint(&dir)
        );
    }
    let _ = d2;
    let gap = parse::longest_gap(&replies, t_event, t_end).map(|g| g * 1000.0);
    let leave = parse::first_release_after(&h1, t_event, t_end).map(|t| (t - t_event) * 1000.0);
    let taken = parse::first_hold_after(&h2, t_event).map(|t| (t - t_event) * 1000.0);
    let both_at_end = parse::held_at(&h1, t_end - 1e-6) && parse::held_at(&h2, t_end - 1e-6);
    let dual = (!both_at_end).then(|| parse::overlap(&h1, &h2, t_event, t_end) * 1000.0);
    let caption = match ev {
        Event::Kill9 => format!(
            "VIP left h1: {}; both held it: {}",
            fmt_sample(leave, "ms", "never"),
            fmt_sample(dual, "ms", "until the cap (never ends)")
        ),
        Event::Health => format!(
            "VIP on h2 after {}; client gap {}",
            fmt_sample(taken, "ms", "never"),
            fmt_gap(gap)
        ),
        _ => format!("longest client gap {}", fmt_gap(gap)),
    } + &if report.duplicates > 0 {
        format!("; {} duplicate replies (two owners)", report.duplicates)
    } else {
        String::new()
    };
    let settled = match ev {
        Event::Kill9 => leave
            .unwrap_or((t_end - t_event) * 1000.0)
            .max(taken.unwrap_or(0.0)),
        _ => taken
            .unwrap_or(0.0)
            .max(gap_end_ms(&replies, t_event, t_end)),
    } / 1000.0;
    drop(lab);
    Ok(FailoverTrial {
        gap,
        leave,
        taken,
        dual,
        timeline: Timeline {
            event: t_event,
            replies,
            h1,
            h2,
            settled,
            caption,
        },
    })
}

/// ms after the event at which the longest gap ended (0 if none).
fn gap_end_ms(replies: &[f64], event: f64, end: f64) -> f64 {
    let mut prev = replies
        .iter()
        .copied()
        .filter(|&t| t <= event)
        .reduce(f64::max);
    let mut best = (0.0, 0.0);
    let mut after: Vec<f64> = replies
        .iter()
        .copied()
        .filter(|&t| t > event && t <= end)
        .collect();
    after.sort_by(f64::total_cmp);
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

fn fmt_ms(v: f64) -> String {
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_sample(s: Sample, unit: &str, none: &str) -> String {
    match s {
        Some(v) => format!("{} {unit}", fmt_ms(v)),
        None => none.to_string(),
    }
}

fn fmt_gap(g: std::result::Result<f64, f64>) -> String {
    match g {
        Ok(v) => format!("{} ms", fmt_ms(v)),
        Err(v) => format!("no reply after the event (>= {} ms)", fmt_ms(v)),
    }
}

/// CPU (per mille of a core) and RSS (MiB) of h1's daemon, the master, over the window.
/// What one CPU/RSS window measured on the master.
#[derive(Clone, Copy, Debug)]
struct CpuTrial {
    permille: f64,
    rss_mib: f64,
    /// Context switches per second, all threads of all the daemon's processes (its wakeups).
    switches: f64,
    threads: usize,
}

/// A lab whose master (h1) and backup (h2) run one daemon and have settled, ready to be measured.
struct CpuLab {
    daemon: Daemon,
    pids: Vec<u32>,
    dir: PathBuf,
    // Dropped in this order: the daemons, then the lab.
    _daemons: (daemons::Running, daemons::Running),
    _lab: Lab,
}

fn cpu_lab(ctx: &Ctx, daemon: Daemon, setup: &Setup) -> Result<CpuLab> {
    let (lab, hosts, dir) = new_lab(false)?;
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let d1 = daemons::start(daemon, &ctx.floatip_bin, h1, 150, setup, &dir)?;
    let n = setup.instances.len();
    let vips: Vec<String> = setup
        .instances
        .iter()
        .map(|i| i.vip.split('/').next().unwrap_or_default().to_string())
        .collect();
    let all_on = |host: &Host| -> Result<usize> {
        let a = host.addresses()?;
        Ok(vips.iter().filter(|v| parse::holds(&a, v)).count())
    };
    let startup = Duration::from_secs_f64(master_down(setup.interval_ms, 150) + 20.0);
    if !wait_until(startup, Duration::from_millis(50), || Ok(all_on(h1)? == n))? {
        bail!(
            "h1 ({}) holds {} of {n} VIPs; logs: {}",
            daemon.name(),
            all_on(h1)?,
            logs_hint(&dir)
        );
    }
    let d2 = daemons::start(daemon, &ctx.floatip_bin, h2, 100, setup, &dir)?;
    sleep(Duration::from_secs_f64(
        master_down(setup.interval_ms, 100) + 1.0,
    ))?;
    if all_on(h2)? > 0 || all_on(h1)? != n {
        bail!(
            "{}: not settled (h2 holds VIPs or h1 lost some); logs: {}",
            daemon.name(),
            logs_hint(&dir)
        );
    }
    Ok(CpuLab {
        daemon,
        pids: daemons::pids(&d1),
        dir,
        _daemons: (d1, d2),
        _lab: lab,
    })
}

/// Measure every lab's master over the same window: load from elsewhere on the machine then falls on
/// all of them alike, and their ratio is far steadier than either number. After the window (perf's
/// overhead must not count), `profile_to` says where a lab's `perf record -g` report goes, if anywhere.
fn cpu_window(
    ctx: &Ctx,
    labs: &[CpuLab],
    profile_to: impl Fn(Daemon) -> Option<PathBuf>,
) -> Result<Vec<CpuTrial>> {
    let mut start = Vec::new();
    for l in labs {
        start.push((
            daemons::cpu_rss(&l.pids)?.0,
            daemons::switches_threads(&l.pids).0,
        ));
    }
    let t0 = Instant::now();
    sleep(ctx.cpu_window)?;
    let mut end = Vec::new();
    for l in labs {
        let (ns, kb) = daemons::cpu_rss(&l.pids)?;
        end.push((ns, kb, daemons::switches_threads(&l.pids)));
    }
    let secs = t0.elapsed().as_secs_f64();
    for l in labs {
        if let Some(out) = profile_to(l.daemon) {
            if let Err(e) = profile(&l.pids, &l.dir, &out) {
                eprintln!("(profile of {} failed: {e:#}) ", l.daemon.name());
            }
        }
    }
    Ok(start
        .iter()
        .zip(&end)
        .map(|(&(ns0, sw0), &(ns1, kb, (sw1, threads)))| CpuTrial {
            permille: (ns1.saturating_sub(ns0)) as f64 / 1e9 / secs * 1000.0,
            rss_mib: kb as f64 / 1024.0,
            switches: sw1.saturating_sub(sw0) as f64 / secs,
            threads,
        })
        .collect())
}

/// `perf record -g` of `pids` for 5 s, then `perf report` (flat, by symbol) into `out`.
fn profile(pids: &[u32], dir: &Path, out: &Path) -> Result<()> {
    let data = dir.join("perf.data");
    let data_s = data.to_str().context("path")?;
    let pid_list = pids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let rec = run_output(
        &[
            "perf", "record", "-F", "999", "-g", "-o", data_s, "-p", &pid_list, "--", "sleep", "5",
        ],
        Duration::from_secs(30),
    )?;
    if !rec.status.success() {
        bail!(
            "perf record: {}",
            String::from_utf8_lossy(&rec.stderr).trim()
        );
    }
    let rep = run_output(
        &[
            "perf",
            "report",
            "-i",
            data_s,
            "--stdio",
            "--no-children",
            "--sort",
            "dso,symbol",
            "--percent-limit",
            "1.5",
            "-g",
            "none",
        ],
        Duration::from_secs(60),
    )?;
    std::fs::write(out, &rep.stdout)?;
    Ok(())
}

/// One row of the table.
struct Row {
    scenario: String,
    unit: &'static str,
    floatip: std::result::Result<Vec<Sample>, String>,
    keepalived: std::result::Result<Vec<Sample>, String>,
    /// Rendering of a `None` sample.
    never: &'static str,
    target: String,
    /// Verdict from (floatip median, keepalived median).
    verdict: fn(&Row) -> String,
    limit: Option<f64>,
}

fn med(v: &std::result::Result<Vec<Sample>, String>) -> Option<Sample> {
    v.as_ref()
        .ok()
        .and_then(|v| parse::summarize(v))
        .map(|s| s.0)
}

/// Pass if floatip's median is within `limit` and no worse than keepalived's median.
fn verdict_limit_and_keepalived(r: &Row) -> String {
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

fn verdict_limit(r: &Row) -> String {
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
fn verdict_finite(r: &Row) -> String {
    match med(&r.floatip) {
        None => "not measured".into(),
        Some(None) => "MISS (never)".into(),
        Some(Some(_)) => "pass".into(),
    }
}

/// Where a failed trial's logs are: its lab dir with --keep, else how to keep them.
fn logs_hint(dir: &Path) -> String {
    if std::env::var("FLOATIP_LAB_KEEP").is_ok_and(|v| v == "1") {
        dir.display().to_string()
    } else {
        "rerun with --keep to keep them".into()
    }
}

fn fmt_cell(v: &std::result::Result<Vec<Sample>, String>, never: &str) -> String {
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
struct Outcome {
    rows: Vec<Row>,
    svg: Option<(String, String)>,
}

fn failover_scenario(ctx: &mut Ctx, name: &str, ev: Event, interval_ms: u32) -> Result<Outcome> {
    let floatip_only = matches!(ev, Event::Takeover | Event::Release);
    let mut results: [Vec<std::result::Result<FailoverTrial, String>>; 2] =
        [Vec::new(), Vec::new()];
    let daemons = [Daemon::Floatip, Daemon::Keepalived];
    for trial in 0..ctx.trials {
        for (i, d) in daemons.iter().enumerate() {
            check_interrupted()?;
            if *d == Daemon::Keepalived && floatip_only {
                continue;
            }
            if *d == Daemon::Floatip {
                if let Some(why) = &ctx.floatip_missing {
                    if trial == 0 {
                        results[i].push(Err(why.clone()));
                    }
                    continue;
                }
            }
            eprint!(
                "  {name} {} trial {}/{} ... ",
                d.name(),
                trial + 1,
                ctx.trials
            );
            let phase = (trial as f64 + 0.5) / ctx.trials as f64;
            let r = failover_trial(ctx, *d, ev, interval_ms, phase);
            match &r {
                Ok(t) => eprintln!("{}", t.timeline.caption),
                Err(e) => eprintln!("failed: {e:#}"),
            }
            check_interrupted()?;
            let stop_floatip =
                matches!(&r, Err(e) if format!("{e}") == "not available in this build");
            results[i].push(r.map_err(|e| format!("{e:#}")));
            if stop_floatip {
                break;
            }
        }
    }
    // Samples of one metric per daemon: Err if no trial succeeded.
    let col = |i: usize,
               f: &dyn Fn(&FailoverTrial) -> Sample|
     -> std::result::Result<Vec<Sample>, String> {
        let ok: Vec<Sample> = results[i]
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(f)
            .collect();
        if ok.is_empty() {
            Err(results[i]
                .iter()
                .find_map(|r| r.as_ref().err().cloned())
                .unwrap_or_else(|| "not run".into()))
        } else {
            Ok(ok)
        }
    };
    let gap = |t: &FailoverTrial| t.gap.ok();
    let i_s = interval_ms as f64;
    let skew = (256.0 - 100.0) * i_s / 256.0;
    let mut rows = Vec::new();
    let k_or_na = |c: std::result::Result<Vec<Sample>, String>| {
        if floatip_only {
            Err("n/a (keepalived has no planned move)".to_string())
        } else {
            c
        }
    };
    match ev {
        Event::HostLoss => {
            let limit = 3.0 * i_s + skew + 5.0;
            rows.push(Row {
                scenario: format!("host loss, {} adverts: client gap", dur_label(interval_ms)),
                unit: "ms",
                floatip: col(0, &gap),
                keepalived: col(1, &gap),
                never: "no recovery",
                target: format!(
                    "≤ 3×interval+skew+5 ms = {} ms and ≤ keepalived",
                    fmt_ms(limit)
                ),
                verdict: verdict_limit_and_keepalived,
                limit: Some(limit),
            });
        }
        Event::Kill9 => {
            rows.push(Row {
                scenario: "kill -9 of the master, 1 s adverts: VIP leaves the dead host".into(),
                unit: "ms",
                floatip: col(0, &|t| t.leave),
                keepalived: col(1, &|t| t.leave),
                never: "never (>10 s)",
                target: "leaves at all (finite)".into(),
                verdict: verdict_finite,
                limit: None,
            });
            rows.push(Row {
                scenario: "kill -9 of the master, 1 s adverts: dual ownership".into(),
                unit: "ms",
                floatip: col(0, &|t| t.dual),
                keepalived: col(1, &|t| t.dual),
                never: "never ends (>10 s cap)",
                target: "0 ms".into(),
                verdict: verdict_limit,
                limit: Some(0.0),
            });
        }
        Event::Sigterm | Event::Takeover | Event::Release => {
            let what = match ev {
                Event::Sigterm => "graceful stop (SIGTERM) of the master, 1 s adverts: client gap",
                Event::Takeover => {
                    "planned takeover (`floatip takeover` on the backup): client gap"
                }
                _ => "planned release (`floatip release` on the master): client gap",
            };
            rows.push(Row {
                scenario: what.into(),
                unit: "ms",
                floatip: col(0, &gap),
                keepalived: k_or_na(col(1, &gap)),
                never: "no recovery",
                target: "≤ 5 ms".into(),
                verdict: verdict_limit,
                limit: Some(5.0),
            });
        }
        Event::Health => {
            rows.push(Row {
                scenario:
                    "health check fails (tcp server killed), 1 s adverts: VIP on the backup after"
                        .into(),
                unit: "ms",
                floatip: col(0, &|t| t.taken),
                keepalived: col(1, &|t| t.taken),
                never: "never",
                target: "≤ 405 ms (derived: fall 2 × 200 ms + 5 ms planned move) and ≤ keepalived"
                    .into(),
                verdict: verdict_limit_and_keepalived,
                limit: Some(405.0),
            });
            // What the client feels: floatip's old master keeps answering until the successor has
            // announced itself, so the VIP "moving" late need not mean a gap.
            rows.push(Row {
                scenario: "health check fails (tcp server killed), 1 s adverts: client gap".into(),
                unit: "ms",
                floatip: col(0, &gap),
                keepalived: col(1, &gap),
                never: "no recovery",
                target: "≤ 5 ms (planned move) and ≤ keepalived".into(),
                verdict: verdict_limit_and_keepalived,
                limit: Some(5.0),
            });
        }
    }
    // The SVG draws the median trial of each daemon (by the row's first metric).
    let first_metric = |t: &FailoverTrial| match ev {
        Event::Kill9 => t.leave,
        Event::Health => t.taken,
        _ => t.gap.ok(),
    };
    let pick = |i: usize| -> std::result::Result<&Timeline, String> {
        let ok: Vec<&FailoverTrial> = results[i].iter().filter_map(|r| r.as_ref().ok()).collect();
        let samples: Vec<Sample> = ok.iter().map(|t| first_metric(t)).collect();
        match parse::median_index(&samples) {
            Some(k) => Ok(&ok[k].timeline),
            None => Err(results[i]
                .iter()
                .find_map(|r| r.as_ref().err().cloned())
                .unwrap_or_else(|| "not run".into())),
        }
    };
    let k_panel = if floatip_only {
        Err("keepalived: n/a (no planned takeover or release)".to_string())
    } else {
        pick(1)
    };
    let title = rows.first().map(|r| r.scenario.clone()).unwrap_or_default();
    let svg = svg::render(
        &format!("{title} (median trial of each)"),
        &[("floatip", pick(0)), ("keepalived", k_panel)],
    );
    Ok(Outcome {
        rows,
        svg: Some((format!("{name}.svg"), svg)),
    })
}

fn dur_label(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn cpu_scenario(
    ctx: &mut Ctx,
    label: &str,
    setup: &Setup,
    rss_limit: Option<f64>,
    with_profile: bool,
    profile: bool,
) -> Result<Outcome> {
    let mut res: [Vec<std::result::Result<CpuTrial, String>>; 2] = [Vec::new(), Vec::new()];
    // floatip's CPU over keepalived's, per trial where both were measured (in the same window).
    let mut ratios = Vec::new();
    let slug = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>();
    for trial in 0..ctx.trials {
        check_interrupted()?;
        if let (Some(why), 0) = (&ctx.floatip_missing, trial) {
            res[0].push(Err(why.clone()));
        }
        // Both daemons' labs are built (in alternating order), then measured at the same time.
        let mut order = vec![Daemon::Floatip, Daemon::Keepalived];
        if ctx.floatip_missing.is_some() {
            order.retain(|d| *d != Daemon::Floatip);
        }
        if trial % 2 == 1 {
            order.reverse();
        }
        eprint!("  {label} trial {}/{} ... ", trial + 1, ctx.trials);
        let mut labs = Vec::new();
        for d in &order {
            match cpu_lab(ctx, *d, setup) {
                Ok(l) => labs.push(l),
                Err(e) => {
                    eprint!("{} failed: {e:#}; ", d.name());
                    res[*d as usize].push(Err(format!("{e:#}")));
                }
            }
            check_interrupted()?;
        }
        let measured = if labs.is_empty() {
            Vec::new()
        } else {
            cpu_window(ctx, &labs, |d| {
                (profile && trial == 0)
                    .then(|| results_dir().join(format!("profile-{}-{slug}.txt", d.name())))
            })?
        };
        let mut permille = [None, None];
        for (l, t) in labs.iter().zip(measured) {
            eprint!(
                "{}: {:.2} ‰ CPU, {:.1} MiB RSS, {:.0} context switches/s, {} threads; ",
                l.daemon.name(),
                t.permille,
                t.rss_mib,
                t.switches,
                t.threads
            );
            permille[l.daemon as usize] = Some(t.permille);
            res[l.daemon as usize].push(Ok(t));
        }
        if let [Some(f), Some(k)] = permille {
            if k > 0.0 {
                ratios.push(Some(f / k));
                eprint!("ratio {:.2}", f / k);
            }
        }
        eprintln!();
        drop(labs);
        check_interrupted()?;
    }
    let col = |i: usize, which: usize| -> std::result::Result<Vec<Sample>, String> {
        let ok: Vec<Sample> = res[i]
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|t| {
                Some(match which {
                    0 => t.permille,
                    1 => t.rss_mib,
                    2 => t.switches,
                    _ => t.threads as f64,
                })
            })
            .collect();
        if ok.is_empty() {
            Err(res[i]
                .iter()
                .find_map(|r| r.as_ref().err().cloned())
                .unwrap_or_else(|| "not run".into()))
        } else {
            Ok(ok)
        }
    };
    let mut rows = vec![Row {
        scenario: format!("{label}: master CPU"),
        unit: "‰",
        floatip: col(0, 0),
        keepalived: col(1, 0),
        never: "-",
        target: "≤ keepalived".into(),
        verdict: verdict_limit_and_keepalived,
        limit: None,
    }];
    rows.push(Row {
        scenario: format!("{label}: master CPU, floatip ÷ keepalived (same window)"),
        unit: "×",
        floatip: if ratios.is_empty() {
            Err("not measured".into())
        } else {
            Ok(ratios)
        },
        keepalived: Err("1 (the reference)".into()),
        never: "-",
        target: "≤ 1".into(),
        verdict: verdict_limit,
        limit: Some(1.0),
    });
    rows.push(Row {
        scenario: format!("{label}: master RSS"),
        unit: "MiB",
        floatip: col(0, 1),
        keepalived: col(1, 1),
        never: "-",
        target: match rss_limit {
            Some(l) => format!("≤ {l} MiB"),
            None => "(reported)".into(),
        },
        verdict: if rss_limit.is_some() {
            verdict_limit
        } else {
            |r: &Row| match med(&r.floatip) {
                Some(Some(_)) => "reported".into(),
                _ => "not measured".into(),
            }
        },
        limit: rss_limit,
    });
    if with_profile {
        for (which, what) in [(2, "context switches/s"), (3, "threads")] {
            rows.push(Row {
                scenario: format!("{label}: master {what}"),
                unit: if which == 2 { "1/s" } else { "n" },
                floatip: col(0, which),
                keepalived: col(1, which),
                never: "-",
                target: "(profile)".into(),
                verdict: |_| "-".into(),
                limit: None,
            });
        }
    }
    Ok(Outcome { rows, svg: None })
}

fn run_scenario(ctx: &mut Ctx, name: &str) -> Result<Vec<Outcome>> {
    eprintln!("== {name}");
    Ok(match name {
        "hostloss-1s" => vec![failover_scenario(ctx, name, Event::HostLoss, 1000)?],
        "hostloss-10ms" => vec![failover_scenario(ctx, name, Event::HostLoss, 10)?],
        "kill9" => vec![failover_scenario(ctx, name, Event::Kill9, 1000)?],
        "sigterm" => vec![failover_scenario(ctx, name, Event::Sigterm, 1000)?],
        "takeover" => vec![failover_scenario(ctx, name, Event::Takeover, 1000)?],
        "release" => vec![failover_scenario(ctx, name, Event::Release, 1000)?],
        "healthcheck" => vec![failover_scenario(ctx, name, Event::Health, 1000)?],
        "cpu-10ms" => vec![cpu_scenario(
            ctx,
            "1 instance, 10 ms adverts",
            &daemons::files_setup(10, None),
            Some(8.0),
            true,
            ctx.profile,
        )?],
        "scale" => {
            let mut v = Vec::new();
            for n in [1u8, 16, 64, 255] {
                v.push(cpu_scenario(
                    ctx,
                    &format!(
                        "scale: {n} instance{} (IPv6), 100 ms adverts",
                        if n == 1 { "" } else { "s" }
                    ),
                    &daemons::scale_setup(n, 100),
                    if n == 1 { Some(8.0) } else { None },
                    false,
                    false,
                )?);
            }
            v
        }
        "chaos" => vec![chaos::chaos_scenario(ctx)?],
        other => bail!("unknown scenario {other}; known: {}", SCENARIOS.join(", ")),
    })
}

/// Runs a short local command (--version, --help, uname) with a time bound.
pub fn run_output(argv: &[&str], timeout: Duration) -> Result<std::process::Output> {
    use std::io::Read;
    let (prog, args) = argv.split_first().context("empty command line")?;
    let mut child = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", argv.join(" ")))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{}` did not finish within {timeout:?}", argv.join(" "));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

fn first_line(argv: &[&str]) -> String {
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

fn report(ctx: &Ctx, outcomes: &[Outcome], scenarios: &[String], started: &str) -> String {
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

const NOTES: &str = "
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

fn check_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    for (tool, hint) in [
        (
            "/usr/sbin/keepalived",
            "keepalived (Debian: apt-get install keepalived)",
        ),
        ("ip", "ip (Debian: apt-get install iproute2)"),
        ("ping", "ping (Debian: apt-get install iputils-ping)"),
        ("/bin/bash", "bash"),
    ] {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
                .unwrap_or(false)
        };
        if !found {
            missing.push(hint.to_string());
        }
    }
    missing
}

/// `floatip-bench serve-tcp ADDR`: accept and close connections until killed (at most 10 min).
fn serve_tcp(addr: &str) -> Result<()> {
    let l = std::net::TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
    println!("listening on {addr}");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            drop(c);
        }
    });
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

fn usage() -> String {
    format!(
        "usage: floatip-bench [--trials N] [--quick] [--scenario NAME]... [--cpu-window SECS] [--keep] [--profile] [--seed N]\n\
         \x20      floatip-bench serve-tcp ADDR\n\
         scenarios: {} (default: all)\n\
         Run as root. Writes bench/results/latest.md and bench/results/<scenario>.svg.",
        SCENARIOS.join(", ")
    )
}

fn utc_now_string() -> String {
    let secs = now() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // civil_from_days (Howard Hinnant).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("floatip-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve-tcp") {
        serve_tcp(args.get(1).context("serve-tcp ADDR")?)?;
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut trials = 5usize;
    let mut scenarios: Vec<String> = Vec::new();
    let mut cpu_window = 10.0f64;
    let mut keep = false;
    let mut profile = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--trials" => {
                trials = it
                    .next()
                    .context("--trials N")?
                    .parse()
                    .context("--trials N")?
            }
            "--quick" => trials = 1,
            "--scenario" => scenarios.push(it.next().context("--scenario NAME")?.clone()),
            "--cpu-window" => cpu_window = it.next().context("--cpu-window SECS")?.parse()?,
            "--keep" => keep = true,
            "--profile" => profile = true,
            "--seed" => {
                chaos::set_seed(it.next().context("--seed N")?.parse().context("--seed N")?)
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(std::process::ExitCode::SUCCESS);
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
    }
    if !(1..=50).contains(&trials) || !(1.0..=120.0).contains(&cpu_window) {
        bail!("--trials must be 1-50 and --cpu-window 1-120 s");
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    for s in &scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!("unknown scenario {s}; known: {}", SCENARIOS.join(", "));
        }
    }
    if let Some(why) = floatip_lab::lab_unavailable() {
        bail!("{why} (run as root: sudo -E cargo run --release -p floatip-bench)");
    }
    let missing = check_prerequisites();
    if !missing.is_empty() {
        bail!(
            "missing: {} (the bench installs nothing itself)",
            missing.join(", ")
        );
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace")?
        .to_path_buf();
    let floatip_bin = std::env::var_os("FLOATIP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release/floatip"));
    let floatip_missing = floatip_status(&floatip_bin);
    if let Some(why) = &floatip_missing {
        eprintln!("note: floatip side not measured: {why}");
    }
    floatip_lab::install_signal_cleanup()?;
    if keep {
        // Read by floatip_lab when a lab drops: keep its temp dir (configs and logs).
        std::env::set_var("FLOATIP_LAB_KEEP", "1");
    }
    let prefix = format!("fipbench{}", std::process::id());
    let mut ctx = Ctx {
        trials,
        floatip_bin,
        self_bin: std::env::current_exe()?,
        cpu_window: Duration::from_secs_f64(cpu_window),
        floatip_missing,
        notes: Vec::new(),
        profile,
    };
    let started = utc_now_string();
    let mut outcomes = Vec::new();
    let mut failure = None;
    for s in &scenarios {
        match run_scenario(&mut ctx, s) {
            Ok(o) => outcomes.extend(o),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let left = leftover_namespaces(&prefix);
    if !left.is_empty() {
        eprintln!("warning: namespaces left behind: {}", left.join(" "));
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let md = report(&ctx, &outcomes, &scenarios, &started);
    println!("{md}");
    let results = workspace.join("bench/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join("latest.md"), &md)?;
    for o in &outcomes {
        if let Some((name, svg)) = &o.svg {
            std::fs::write(results.join(name), svg)?;
        }
    }
    eprintln!("wrote {}", results.join("latest.md").display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// None if `floatip run` looks usable, else why not.
fn floatip_status(bin: &Path) -> Option<String> {
    if !bin.exists() {
        return Some(format!(
            "not built ({}: run `cargo build --release -p floatip`)",
            bin.display()
        ));
    }
    if !daemons::floatip_has_command(bin, "run") {
        return Some("this floatip build has no `run` command yet".into());
    }
    None
}

/// Namespaces of this run still present (there should be none).
fn leftover_namespaces(prefix: &str) -> Vec<String> {
    run_output(&["ip", "netns", "list"], Duration::from_secs(10))
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
