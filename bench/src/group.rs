//! The group scenario: a planned takeover of a two-VIP group (`floatip takeover fileserver` on the
//! backup), with a client pinging both VIPs every 1 ms; the client gap of each VIP. floatip only:
//! keepalived has sync groups but no planned move.

use std::time::Duration;

use anyhow::{bail, Result};
use floatip_lab::Pinger;

use crate::ctx::{check_interrupted, logs_hint, master_down, new_lab, now, sleep, wait_until, Ctx};
use crate::daemons::{self, Daemon};
use crate::failover::holds;
use crate::parse::{self, Sample};
use crate::report::{column, verdict_limit, Outcome, Row};

const VIPS: [&str; 2] = ["192.0.2.97", "192.0.2.98"];
const INTERVAL_MS: u32 = 1000;

/// The longest client gap of each VIP (ms) in one trial.
fn trial(ctx: &Ctx) -> Result<[f64; 2]> {
    let (lab, hosts, dir) = new_lab(true)?;
    let (h1, h2, c) = (&hosts[0], &hosts[1], &hosts[2]);
    let setup = daemons::group_setup(INTERVAL_MS);
    let _d1 = daemons::start(Daemon::Floatip, &ctx.floatip_bin, h1, 150, &setup, &dir)?;
    let startup = Duration::from_secs_f64(master_down(INTERVAL_MS, 150) + 10.0);
    if !wait_until(startup, Duration::from_millis(5), || {
        Ok(holds(h1, VIPS[0])? && holds(h1, VIPS[1])?)
    })? {
        bail!("h1 never claimed both VIPs; logs: {}", logs_hint(&dir));
    }
    let d2 = daemons::start(Daemon::Floatip, &ctx.floatip_bin, h2, 100, &setup, &dir)?;
    let pingers = [
        Pinger::start(c, VIPS[0], Duration::from_millis(1))?,
        Pinger::start(c, VIPS[1], Duration::from_millis(1))?,
    ];
    sleep(Duration::from_secs_f64(master_down(INTERVAL_MS, 100) + 0.7))?;
    let t_event = now();
    if daemons::floatip_cli(&ctx.floatip_bin, &d2, &["takeover", "fileserver"])?.is_none() {
        bail!("not available in this build");
    }
    let moved = wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        Ok(VIPS
            .iter()
            .all(|v| holds(h2, v).unwrap_or(false) && !holds(h1, v).unwrap_or(true)))
    })?;
    if !moved {
        bail!("the group did not move to h2; logs: {}", logs_hint(&dir));
    }
    sleep(Duration::from_millis(500))?;
    let t_end = now();
    let mut gaps = [0.0; 2];
    for (k, p) in pingers.into_iter().enumerate() {
        let report = p.stop();
        let replies = parse::reply_times(&report, t_end);
        gaps[k] = match parse::longest_gap(&replies, t_event, t_end) {
            Ok(g) => g * 1000.0,
            Err(_) => bail!("no reply from {} after the takeover", VIPS[k]),
        };
    }
    drop(lab);
    Ok(gaps)
}

pub fn group_takeover_scenario(ctx: &mut Ctx) -> Result<Outcome> {
    let mut results: Vec<std::result::Result<[f64; 2], String>> = Vec::new();
    for t in 0..ctx.trials {
        check_interrupted()?;
        if let Some(why) = &ctx.floatip_missing {
            results.push(Err(why.clone()));
            break;
        }
        eprint!(
            "  group-takeover floatip trial {}/{} ... ",
            t + 1,
            ctx.trials
        );
        let r = trial(ctx);
        match &r {
            Ok(g) => eprintln!("client gaps {:.2} ms / {:.2} ms", g[0], g[1]),
            Err(e) => eprintln!("failed: {e:#}"),
        }
        results.push(r.map_err(|e| format!("{e:#}")));
    }
    let rows = (0..2)
        .map(|k| Row {
            scenario: format!(
                "planned takeover of a two-VIP group (`floatip takeover fileserver`), 1 s adverts: client gap of {}",
                VIPS[k]
            ),
            unit: "ms",
            floatip: column(&results, |g| -> Sample { Some(g[k]) }),
            keepalived: Err("n/a (keepalived has no planned move)".into()),
            never: "no recovery",
            target: "≤ 5 ms".into(),
            verdict: verdict_limit,
            limit: Some(5.0),
        })
        .collect();
    Ok(Outcome { rows, svg: None })
}
