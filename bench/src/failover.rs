//! Failover scenarios: one trial (lab, both daemons, the event, the client's gap and who held the
//! VIP) and the table rows and SVG timeline of a scenario.

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

use crate::ctx::{
    check_interrupted, logs_hint, master_down, new_lab, now, sleep, stop_proc, wait_until, Ctx,
};
use crate::daemons::{self, Daemon};
use crate::parse::{self, Sample};
use crate::report::{
    column, first_failure, fmt_gap, fmt_ms, fmt_sample, verdict_finite, verdict_limit,
    verdict_limit_and_keepalived, Outcome, Row,
};
use crate::svg::{self, Timeline};
use crate::{CHECK_PORT, KILL9_CAP, VIP};
use floatip_lab::{AddrWatch, Host, Pinger, WatchKind};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    HostLoss,
    Kill9,
    /// SIGSTOP of the master's daemon for [`STOP_FOR`], then SIGCONT.
    Stop,
    Sigterm,
    Takeover,
    Release,
    Health,
}

/// What one failover trial measured.
pub struct FailoverTrial {
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

/// How long `Event::Stop` keeps the master's daemon stopped.
const STOP_FOR: Duration = Duration::from_secs(3);

/// Whether `host` has `vip` on any interface (eth0, or its virtual-MAC interface).
pub fn holds(host: &Host, vip: &str) -> Result<bool> {
    Ok(host.has_address(vip)
        || host
            .ip(&["-o", "addr", "show", "to", vip])
            .is_ok_and(|out| !out.trim().is_empty()))
}
pub fn failover_trial(
    ctx: &mut Ctx,
    daemon: Daemon,
    ev: Event,
    interval_ms: u32,
    phase: f64,
    vmac: bool,
) -> Result<FailoverTrial> {
    let (lab, hosts, dir) = new_lab(true)?;
    let (h1, h2, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let check = (ev == Event::Health).then_some(CHECK_PORT);
    let mut setup = daemons::files_setup(interval_ms, check);
    setup.vmac = vmac;
    if vmac && daemon == Daemon::Keepalived {
        // keepalived sets arp_ignore/arp_filter on the parent but not arp_announce (floatip does):
        // without it h1's ARP requests for the client would point the VIP at h1's own MAC.
        for h in [h1, h2] {
            h.run(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"])?;
        }
    }
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
    // The exact moment h1 claims (its first advert goes out with the address): the phase anchor.
    let claim_watch = AddrWatch::start(h1, VIP)?;
    let d1 = daemons::start(daemon, &ctx.floatip_bin, h1, 150, &setup, &dir)?;
    let startup = Duration::from_secs_f64(master_down(interval_ms, 150) + 10.0);
    if !wait_until(startup, Duration::from_millis(5), || holds(h1, VIP))? {
        bail!(
            "h1 ({}) never claimed {VIP}; logs: {}",
            daemon.name(),
            logs_hint(&dir)
        );
    }
    // h1 adverts from its claim on, every interval: the anchor for the event's phase. The address
    // event is read within microseconds of the claim; the 5 ms polling above only says it happened.
    let polled = now();
    let t_claim = claim_watch
        .stop()
        .events
        .iter()
        .find(|e| e.kind == WatchKind::AddrAdded)
        .map_or(polled, |e| e.at);
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
    // claim's address event tells): host loss right after an advert costs a full
    // Master_Down, right before one costs an interval less. Both daemons get the same phases.
    let i = interval_ms as f64 / 1000.0;
    let next = t_claim + ((now() - t_claim) / i).ceil() * i + phase * i;
    sleep(Duration::from_secs_f64((next - now()).max(0.0)))?;
    let mut t_event = now();
    match ev {
        Event::HostLoss => h1.link_down()?,
        Event::Kill9 => daemons::kill9(&d1)?,
        Event::Stop => {
            daemons::signal_all(&d1, libc::SIGSTOP)?;
            sleep(STOP_FOR)?;
            daemons::signal_all(&d1, libc::SIGCONT)?;
        }
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
        || match ev {
            // Back where it started: h1 (priority 150, preempt) holds the VIP again, alone.
            Event::Stop => Ok(holds(h1, VIP)? && !holds(h2, VIP)?),
            Event::Kill9 => Ok(holds(h2, VIP)? && !holds(h1, VIP)?),
            _ => holds(h2, VIP),
        },
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
    let replies = parse::reply_times(&report, t_end);
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
            .max(parse::gap_end_ms(&replies, t_event, t_end)),
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

pub fn failover_scenario(
    ctx: &mut Ctx,
    name: &str,
    ev: Event,
    interval_ms: u32,
) -> Result<Outcome> {
    failover_scenario_with(ctx, name, ev, interval_ms, false)
}

/// [`failover_scenario`], with the VIP on a virtual MAC (`vmac`) on both daemons.
pub fn failover_scenario_with(
    ctx: &mut Ctx,
    name: &str,
    ev: Event,
    interval_ms: u32,
    vmac: bool,
) -> Result<Outcome> {
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
            let r = failover_trial(ctx, *d, ev, interval_ms, phase, vmac);
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
    let col = |i: usize, f: &dyn Fn(&FailoverTrial) -> Sample| column(&results[i], f);
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
        Event::Kill9 | Event::Stop => {
            let what = match ev {
                Event::Kill9 => "kill -9 of the master",
                _ => "SIGSTOP of the master for 3 s",
            };
            let limit = master_down(interval_ms, 100) * 1000.0 + 50.0;
            if ev == Event::Kill9 {
                rows.push(Row {
                    scenario: format!(
                        "kill -9 of the master, {} adverts: VIP leaves the dead host",
                        dur_label(interval_ms)
                    ),
                    unit: "ms",
                    floatip: col(0, &|t| t.leave),
                    keepalived: col(1, &|t| t.leave),
                    never: "never (>10 s)",
                    target: "leaves at all (finite)".into(),
                    verdict: verdict_finite,
                    limit: None,
                });
            }
            rows.push(Row {
                scenario: format!("{what}, {} adverts: client gap", dur_label(interval_ms)),
                unit: "ms",
                floatip: col(0, &gap),
                keepalived: col(1, &gap),
                never: "no recovery",
                target: format!("≤ master-down + 50 ms = {} ms", fmt_ms(limit)),
                verdict: verdict_limit,
                limit: Some(limit),
            });
            rows.push(Row {
                scenario: format!("{what}, {} adverts: dual ownership", dur_label(interval_ms)),
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
    if vmac {
        for r in &mut rows {
            r.scenario = format!("virtual MAC: {}", r.scenario);
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
            None => Err(first_failure(&results[i])),
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

pub fn dur_label(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
