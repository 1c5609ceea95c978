//! The witness: a node (typically the router) this host must be able to reach before it may claim.
//!
//! Owns: probing an instance's witnesses by ICMP echo every interval and reporting when "reachable"
//! changes. Reachable = at least one witness answered within the last [`WINDOW`] intervals. The daemon
//! feeds the result to the core as `Event::ClaimInhibit`: a backup that cannot reach any witness does
//! not claim the VIP (it may merely have lost the LAN); a master is never demoted by it. Policy and
//! limits: docs/checks.md.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;

use super::{icmp_echo, TaskSet};
use crate::config::format_duration;

/// The probe interval when the config does not set one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// A witness counts as reachable for this many intervals after its last answer.
pub const WINDOW: u32 = 3;

/// Sent after the first probe round, then whenever `reachable` changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReport {
    pub instance: usize,
    pub reachable: bool,
    /// For the log and status; when unreachable, usable as the ClaimInhibit reason
    /// ("witness unreachable: ping 192.0.2.254: no echo reply within 900ms").
    pub detail: String,
}

/// Starts probing `witnesses` every `interval` (each probe bounded by nine tenths of it). Returns an
/// empty set when there are no witnesses. The task ends when the receiver or the set is dropped.
pub fn spawn(
    instance: usize,
    witnesses: Vec<IpAddr>,
    interval: Duration,
    tx: mpsc::Sender<WitnessReport>,
) -> TaskSet {
    if witnesses.is_empty() {
        return TaskSet::default();
    }
    let interval = interval.max(Duration::from_millis(10));
    vec![tokio::spawn(run(instance, witnesses, interval, tx))].into()
}

async fn run(
    instance: usize,
    witnesses: Vec<IpAddr>,
    interval: Duration,
    tx: mpsc::Sender<WitnessReport>,
) {
    let probe_timeout = interval * 9 / 10;
    let window = interval * WINDOW;
    let mut last_answer: Vec<Option<Instant>> = vec![None; witnesses.len()];
    let mut last_error: Vec<String> = vec![String::new(); witnesses.len()];
    let mut reported: Option<bool> = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let round = futures::future::join_all(
            witnesses
                .iter()
                .map(|&witness| icmp_echo(witness, probe_timeout)),
        )
        .await;
        let now = Instant::now();
        for (i, result) in round.into_iter().enumerate() {
            match result {
                Ok(rtt) => {
                    debug!(instance, witness = %witnesses[i], "witness answered in {rtt:.1?}");
                    last_answer[i] = Some(now);
                }
                Err(e) => {
                    debug!(instance, witness = %witnesses[i], "witness probe failed: {e}");
                    last_error[i] = e;
                }
            }
        }
        let answering: Vec<String> = witnesses
            .iter()
            .zip(&last_answer)
            .filter(|(_, at)| at.is_some_and(|at| now.duration_since(at) <= window))
            .map(|(w, _)| w.to_string())
            .collect();
        let reachable = !answering.is_empty();
        if reported == Some(reachable) {
            continue;
        }
        reported = Some(reachable);
        let detail = if reachable {
            format!("witness reachable: {} answered", answering.join(", "))
        } else {
            let silent = if last_answer.iter().any(Option::is_some) {
                format!("no answer for {}", format_duration(window))
            } else {
                "no answer yet".to_string()
            };
            format!("witness unreachable ({silent}): {}", last_error.join("; "))
        };
        let report = WitnessReport {
            instance,
            reachable,
            detail,
        };
        if tx.send(report).await.is_err() {
            return;
        }
    }
}
