//! Health: the checks (one task per configured check, each on its own interval, reporting to the daemon
//! loop), the witness, and the track files ([`track_file`]).
//!
//! Owns: starting and stopping the check tasks ([`spawn`], [`TaskSet`]), one attempt of a check
//! ([`run_once`], each kind in its own file: `tcp.rs`, `http.rs`, `exec.rs`, `icmp.rs`,
//! `process.rs`), rise/fall counting
//! ([`RiseFall`]), what the daemon keeps per check for `status` ([`CheckState`]), and turning check
//! health into what the VRRP core understands ([`evaluate`]: a fault reason and an effective priority).
//! Nothing here can delay the protocol loop: every check runs in its own task, every attempt is bounded
//! by the check's `timeout`, and an exec check's process group is killed and reaped when it overruns.
//!
//! Reading of the start state (documented in docs/checks.md): a check is *unknown* until its first
//! attempt, which runs at once; unknown counts as healthy (a booting backup is not in FAULT while its
//! checks run), and the first result decides immediately (a failing service is failing after one
//! attempt, not after `fall`). `rise` and `fall` apply to every change after that.

mod exec;
mod http;
mod icmp;
mod process;
mod tcp;
mod tls;
pub mod track_file;
pub mod witness;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::format_duration;
use crate::config::{CheckConfig, CheckKind};

pub use icmp::icmp_echo;

/// The shortest interval a check runs at, whatever the config says (a zero interval would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One attempt of one check, as the daemon loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Index of the instance in the config.
    pub instance: usize,
    /// Index of the check within the instance.
    pub check: usize,
    /// This attempt succeeded.
    pub ok: bool,
    /// How long this attempt took (up to the timeout).
    pub latency: Duration,
    /// Why this attempt failed, in words ("connect 127.0.0.1:445: connection refused").
    pub error: Option<String>,
    /// The check's health after rise/fall counting.
    pub healthy: bool,
    /// `healthy` changed with this attempt (or this was the first attempt): re-evaluate the instance.
    pub changed: bool,
}

/// Consecutive-result counting: failing after `fall` failures in a row, healthy after `rise` successes in
/// a row. Starts unknown; the first result decides at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Option<bool>,
    /// Consecutive results that disagree with `state`.
    streak: u32,
}

impl RiseFall {
    /// `rise` and `fall` below 1 are taken as 1.
    pub fn new(rise: u32, fall: u32) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            state: None,
            streak: 0,
        }
    }

    /// Counts one result; returns whether the health changed (the first result always counts as a
    /// change: the health became known).
    pub fn record(&mut self, ok: bool) -> bool {
        match self.state {
            None => {
                self.state = Some(ok);
                self.streak = 0;
                true
            }
            Some(state) if state == ok => {
                self.streak = 0;
                false
            }
            Some(_) => {
                self.streak += 1;
                let needed = if ok { self.rise } else { self.fall };
                if self.streak >= needed {
                    self.state = Some(ok);
                    self.streak = 0;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Healthy, or not yet known (unknown counts as healthy: see the module docs).
    pub fn healthy(&self) -> bool {
        self.state.unwrap_or(true)
    }

    /// At least one result was recorded.
    pub fn known(&self) -> bool {
        self.state.is_some()
    }
}

/// What the daemon keeps per check, for `status`, logs and fault reasons. Update it with
/// [`CheckState::apply`]; evaluate an instance with [`evaluate_states`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    pub name: String,
    /// "tcp 127.0.0.1:445", "http http://127.0.0.1:8080/health", ...
    pub target: String,
    /// Healthy after rise/fall (true while unknown).
    pub healthy: bool,
    /// At least one attempt finished.
    pub known: bool,
    /// The latest attempt succeeded.
    pub last_ok: Option<bool>,
    /// The latest attempt's duration.
    pub latency: Option<Duration>,
    /// The error of the latest failed attempt (kept after later successes, so status can show it).
    pub last_error: Option<String>,
    pub attempts: u64,
    pub failures: u64,
}

impl CheckState {
    pub fn new(check: &CheckConfig) -> Self {
        CheckState {
            name: check.name.clone(),
            target: describe(&check.kind),
            healthy: true,
            known: false,
            last_ok: None,
            latency: None,
            last_error: None,
            attempts: 0,
            failures: 0,
        }
    }

    /// One state per check, in config order (index = `CheckReport::check`).
    /// What `status` shows of it.
    pub fn status(&self) -> crate::control::CheckStatus {
        crate::control::CheckStatus {
            name: self.name.clone(),
            healthy: self.healthy,
            latency_ms: self.latency.map(|d| d.as_secs_f64() * 1000.0),
            last_error: self.last_error.clone(),
        }
    }

    pub fn for_checks(checks: &[CheckConfig]) -> Vec<CheckState> {
        checks.iter().map(CheckState::new).collect()
    }

    pub fn apply(&mut self, report: &CheckReport) {
        self.healthy = report.healthy;
        self.known = true;
        self.last_ok = Some(report.ok);
        self.latency = Some(report.latency);
        self.attempts += 1;
        if !report.ok {
            self.failures += 1;
            self.last_error = Some(report.error.clone().unwrap_or_else(|| "failed".to_string()));
        }
    }
}

/// A check's kind and target in a few words, for status and logs.
pub fn describe(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Icmp { target } => format!("icmp {target}"),
        CheckKind::Tcp { target } => format!("tcp {target}"),
        CheckKind::Http { url, .. } => format!("http {url}"),
        CheckKind::Exec { command } => format!("exec {}", command.join(" ")),
        CheckKind::Process {
            name,
            args,
            min,
            max,
        } => {
            let args = args
                .as_ref()
                .map(|a| format!(" \"{a}\""))
                .unwrap_or_default();
            let bounds = match max {
                Some(m) if m == min => format!("{min}"),
                Some(m) => format!("{min}-{m}"),
                None => format!("{min}+"),
            };
            format!("process {name}{args} x{bounds}")
        }
    }
}

/// The instance's fault reason and effective priority, from each check's health (`healthy[i]` for
/// `checks[i]`; a missing entry counts as healthy).
///
/// keepalived's semantics: a check without `weight` (or with `weight = 0`) puts the instance in FAULT
/// while failing; a negative weight is subtracted from the priority while the check fails; a positive
/// weight is added while it is healthy. The result is clamped to 1..=254; an address owner (255) stays
/// 255 whatever the checks say (its faults still count).
pub fn evaluate(
    configured_priority: u8,
    checks: &[CheckConfig],
    healthy: &[bool],
) -> (Option<String>, u8) {
    evaluate_with(configured_priority, checks, |i| {
        (healthy.get(i).copied().unwrap_or(true), None)
    })
}

/// [`evaluate`] from the daemon's [`CheckState`]s: the same result, with each failing check's last error
/// in the fault reason ("check smb failing: connect 127.0.0.1:445: connection refused").
pub fn evaluate_states(
    configured_priority: u8,
    checks: &[CheckConfig],
    states: &[CheckState],
) -> (Option<String>, u8) {
    evaluate_with(configured_priority, checks, |i| match states.get(i) {
        Some(s) => (s.healthy, s.last_error.as_deref()),
        None => (true, None),
    })
}

/// The priority the checks' weights give, before it is clamped to 1..=254 (the track files add to it;
/// see [`track_file::evaluate`]).
pub fn checked_priority(
    configured_priority: u8,
    checks: &[CheckConfig],
    states: &[CheckState],
) -> i64 {
    let (_, delta) = faults_and_delta(checks, |i| match states.get(i) {
        Some(s) => (s.healthy, s.last_error.as_deref()),
        None => (true, None),
    });
    i64::from(configured_priority) + delta
}

fn evaluate_with<'a>(
    configured_priority: u8,
    checks: &[CheckConfig],
    state: impl Fn(usize) -> (bool, Option<&'a str>),
) -> (Option<String>, u8) {
    let (faults, delta) = faults_and_delta(checks, state);
    let priority = if configured_priority == 255 {
        255
    } else {
        (i64::from(configured_priority) + delta).clamp(1, i64::from(vrrp::TAKEOVER_PRIORITY)) as u8
    };
    let fault = (!faults.is_empty()).then(|| faults.join("; "));
    (fault, priority)
}

/// Each failing FAULT check's reason, and the sum of the weights in force.
fn faults_and_delta<'a>(
    checks: &[CheckConfig],
    state: impl Fn(usize) -> (bool, Option<&'a str>),
) -> (Vec<String>, i64) {
    let mut faults = Vec::new();
    let mut delta: i64 = 0;
    for (i, check) in checks.iter().enumerate() {
        let (healthy, error) = state(i);
        match check.weight {
            None | Some(0) if !healthy => faults.push(match error {
                Some(e) => format!("check {} failing: {e}", check.name),
                None => format!("check {} failing", check.name),
            }),
            Some(w) if w > 0 && healthy => delta += i64::from(w),
            Some(w) if w < 0 && !healthy => delta += i64::from(w),
            _ => {}
        }
    }
    (faults, delta)
}

/// An instance's check tasks, or its witness task. Dropping the set is how they stop: every task is
/// aborted (an exec check's process group is killed).
#[derive(Debug, Default)]
pub struct TaskSet(Vec<JoinHandle<()>>);

impl TaskSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// One more task that stops with the set.
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for TaskSet {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl From<Vec<JoinHandle<()>>> for TaskSet {
    fn from(tasks: Vec<JoinHandle<()>>) -> Self {
        TaskSet(tasks)
    }
}

/// Starts one task per check of instance `instance`; each runs its first attempt at once and then every
/// `interval`, and sends a [`CheckReport`] per attempt. Reports whose health did not change are dropped
/// when the channel is full (the loop is busy; the next one will do); a change waits for room. A task
/// ends when the receiver is dropped or the returned set is dropped. Must be called inside a tokio
/// runtime; never blocks.
pub fn spawn(
    instance: usize,
    instance_name: &str,
    checks: &[CheckConfig],
    tx: mpsc::Sender<CheckReport>,
) -> TaskSet {
    checks
        .iter()
        .enumerate()
        .map(|(index, check)| {
            tokio::spawn(run_check(
                instance,
                instance_name.to_string(),
                index,
                check.clone(),
                tx.clone(),
            ))
        })
        .collect::<Vec<_>>()
        .into()
}

async fn run_check(
    instance: usize,
    instance_name: String,
    index: usize,
    check: CheckConfig,
    tx: mpsc::Sender<CheckReport>,
) {
    if let Some(warning) = insecure_warning(&instance_name, &check) {
        warn!("{warning}");
    }
    let mut counter = RiseFall::new(check.rise, check.fall);
    let mut ticker = tokio::time::interval(check.interval.max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let result = run_once(&check.kind, check.timeout).await;
        let latency = started.elapsed();
        let ok = result.is_ok();
        let error = result.err();
        let changed = counter.record(ok);
        let healthy = counter.healthy();
        match (&error, changed) {
            (None, true) => info!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} healthy", check.name
            ),
            (Some(e), true) if !healthy => warn!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} failing: {e}", check.name
            ),
            (Some(e), _) => debug!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} attempt failed: {e}", check.name
            ),
            (None, false) => debug!(
                instance = %instance_name, check = %check.name, latency = ?latency,
                "check {} ok", check.name
            ),
        }
        let report = CheckReport {
            instance,
            check: index,
            ok,
            latency,
            error,
            healthy,
            changed,
        };
        if changed {
            if tx.send(report).await.is_err() {
                return;
            }
        } else if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(report) {
            return;
        }
    }
}

/// The warning for an https check with `insecure_skip_verify = true` (logged when its task starts,
/// printed by `floatip check`); `None` for every other check.
pub fn insecure_warning(instance: &str, check: &CheckConfig) -> Option<String> {
    match &check.kind {
        CheckKind::Http { url, tls, .. } if tls.insecure_skip_verify => Some(format!(
            "instance {instance}: check {}: insecure_skip_verify = true: any certificate {url} presents is accepted, so the check proves only that something answers there; set ca_file to check it",
            check.name
        )),
        _ => None,
    }
}

/// One attempt of a check, bounded by `timeout`. `Err` carries the reason in words.
pub async fn run_once(kind: &CheckKind, timeout: Duration) -> Result<(), String> {
    match kind {
        // Exec handles its own deadline: on overrun it kills the process group and reaps the child.
        CheckKind::Exec { command } => exec::check(command, timeout).await,
        CheckKind::Icmp { target } => icmp_echo(*target, timeout).await.map(drop),
        CheckKind::Tcp { target } => {
            bounded(timeout, format!("connect {target}"), tcp::check(*target)).await
        }
        // Http bounds each of its phases by the timeout itself, to say which one overran.
        CheckKind::Http {
            url,
            expect_status,
            expect_body,
            tls,
        } => http::check(url, *expect_status, expect_body.as_deref(), tls, timeout).await,
        // A walk of /proc: off the runtime's thread, bounded like any attempt.
        CheckKind::Process {
            name,
            args,
            min,
            max,
        } => {
            let (name, args, min, max) = (name.clone(), args.clone(), *min, *max);
            let walk = tokio::task::spawn_blocking(move || {
                process::check(process::Want {
                    name: &name,
                    args: args.as_deref(),
                    min,
                    max,
                })
            });
            bounded(timeout, "read /proc".into(), async move {
                walk.await
                    .map_err(|e| format!("the /proc walk failed: {e}"))?
            })
            .await
        }
    }
}

async fn bounded(
    timeout: Duration,
    what: String,
    attempt: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{what}: no answer within {}",
            format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_fall_first_result_decides() {
        let mut rf = RiseFall::new(2, 3);
        assert!(rf.healthy() && !rf.known());
        assert!(rf.record(false));
        assert!(!rf.healthy() && rf.known());

        let mut rf = RiseFall::new(2, 3);
        assert!(rf.record(true));
        assert!(rf.healthy());
    }

    #[test]
    fn rise_fall_counts_consecutive() {
        let mut rf = RiseFall::new(2, 3);
        rf.record(true);
        assert!(!rf.record(false));
        assert!(!rf.record(false));
        assert!(!rf.record(true)); // breaks the streak
        assert!(!rf.record(false));
        assert!(!rf.record(false));
        assert!(rf.healthy());
        assert!(rf.record(false)); // third in a row
        assert!(!rf.healthy());
        assert!(!rf.record(true));
        assert!(!rf.healthy());
        assert!(rf.record(true));
        assert!(rf.healthy());
    }

    #[test]
    fn rise_fall_zero_is_one() {
        let mut rf = RiseFall::new(0, 0);
        rf.record(true);
        assert!(rf.record(false));
        assert!(rf.record(true));
    }
}
