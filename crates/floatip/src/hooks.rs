//! Notify hooks: the `[instance.notify]` commands run on each transition.
//!
//! Owns: one queue and one task per instance that runs the hooks strictly one at a time, in the order
//! the transitions happened (never two at once, never out of order), each with the `FLOATIP_*`
//! environment, a timeout (the hook's process group is killed and reaped), and its output and exit
//! status in the log under the instance's name. Enqueuing never blocks and never waits for a hook: the
//! protocol loop calls [`Hooks::transition`] and moves on.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::format_duration;
use crate::config::NotifyConfig;
use crate::exec::{describe_status, io_text, run_bounded, Finished, Stream};

/// Pending hooks beyond this are dropped oldest first (with an error in the log): a hook stuck until its
/// timeout while the instance flaps must not grow memory without bound. The newest transition, the one
/// that describes the current state, is always kept.
pub const MAX_PENDING: usize = 64;

/// One hook run waiting its turn.
#[derive(Debug, Clone)]
struct Job {
    /// "master", "backup", "fault", "stop".
    hook: &'static str,
    argv: Vec<String>,
    env: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the queue half-updated; keep going.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// One instance's hook runner. Dropping it lets the hooks already queued run to completion in the
/// background (each bounded by its timeout); [`Hooks::drain`] waits for them.
#[derive(Debug)]
pub struct Hooks {
    instance: String,
    notify: NotifyConfig,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// A transition's new state as the hooks (`FLOATIP_STATE`) and the event stream name it: an instance
/// that stops (back to INIT) is [`STOP`]; the others keep their name ("MASTER", "BACKUP", "FAULT").
pub fn state_after(to: vrrp::State) -> &'static str {
    if to == vrrp::State::Initialize {
        STOP
    } else {
        to.as_str()
    }
}

/// The state of an instance that stops, for its `stop` hook and the event stream.
pub const STOP: &str = "STOP";

/// The hook task of one instance, if it has any hook configured (none: no task at all). Must be
/// called inside a tokio runtime.
pub fn spawn_configured(instance_name: &str, notify: &NotifyConfig) -> Option<Hooks> {
    [&notify.master, &notify.backup, &notify.fault, &notify.stop]
        .iter()
        .any(|h| h.is_some())
        .then(|| spawn(instance_name.to_string(), notify.clone()))
}

/// Starts the hook task of one instance. Must be called inside a tokio runtime.
pub fn spawn(instance_name: String, notify: NotifyConfig) -> Hooks {
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(run_queue(
        instance_name.clone(),
        notify.timeout,
        shared.clone(),
    ));
    Hooks {
        instance: instance_name,
        notify,
        shared,
        task: Some(task),
    }
}

impl Hooks {
    /// Queues the hook for a transition to `state` ("MASTER", "BACKUP", "FAULT" or "STOP", any case)
    /// from `previous`, if one is configured. Returns at once.
    pub fn transition(&self, state: &str, previous: &str, reason: &str, addresses: &[String]) {
        let (hook, argv) = match state.to_ascii_uppercase().as_str() {
            "MASTER" => ("master", &self.notify.master),
            "BACKUP" => ("backup", &self.notify.backup),
            "FAULT" => ("fault", &self.notify.fault),
            STOP => ("stop", &self.notify.stop),
            _ => {
                warn!(instance = %self.instance, "no hook for state {state:?}");
                return;
            }
        };
        let Some(argv) = argv.as_ref().filter(|a| !a.is_empty()) else {
            debug!(instance = %self.instance, "no {hook} hook configured");
            return;
        };
        let job = Job {
            hook,
            argv: argv.clone(),
            env: vec![
                ("FLOATIP_INSTANCE", self.instance.clone()),
                ("FLOATIP_STATE", state.to_ascii_uppercase()),
                ("FLOATIP_PREVIOUS_STATE", previous.to_ascii_uppercase()),
                ("FLOATIP_REASON", reason.to_string()),
                ("FLOATIP_ADDRESSES", addresses.join(" ")),
            ],
        };
        let mut queue = self.shared.lock();
        if queue.closed {
            warn!(instance = %self.instance, "hooks are shutting down: not running the {hook} hook");
            return;
        }
        while queue.jobs.len() >= MAX_PENDING {
            if let Some(dropped) = queue.jobs.pop_front() {
                error!(
                    instance = %self.instance, hook = dropped.hook,
                    "{MAX_PENDING} hooks pending (a hook is slow and the state keeps changing): \
                     skipping the oldest, the {} hook", dropped.hook
                );
            }
        }
        queue.jobs.push_back(job);
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Hooks queued and not yet started.
    pub fn pending(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Stops accepting transitions and waits up to `bound` for the queued hooks (say, the stop hook) to
    /// finish. Past `bound`, the running hook's process group is killed and the rest are not run.
    pub async fn drain(mut self, bound: Duration) {
        self.shared.close();
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            let skipped = self.pending();
            task.abort();
            let _ = task.await;
            error!(
                instance = %self.instance,
                "hooks still running after {}: killed the running hook, {skipped} not run",
                format_duration(bound)
            );
        }
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.shared.close();
    }
}

async fn run_queue(instance: String, timeout: Duration, shared: Arc<Shared>) {
    loop {
        let next = {
            let mut queue = shared.lock();
            match queue.jobs.pop_front() {
                Some(job) => Some(job),
                None if queue.closed => return,
                None => None,
            }
        };
        match next {
            Some(job) => run_hook(&instance, job, timeout).await,
            // `notify_one` keeps a permit when nobody waits, so a job queued between the check above
            // and this await is not missed.
            None => shared.wake.notified().await,
        }
    }
}

async fn run_hook(instance: &str, job: Job, timeout: Duration) {
    let hook = job.hook;
    let program = &job.argv[0];
    let mut cmd = Command::new(program);
    cmd.args(&job.argv[1..])
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    info!(
        instance,
        hook,
        "running the {hook} hook: {}",
        job.argv.join(" ")
    );
    let started = Instant::now();
    let finished = run_bounded(cmd, timeout, |stream, line| match stream {
        Stream::Stdout => info!(instance, hook, "{hook} hook: {line}"),
        Stream::Stderr => warn!(instance, hook, "{hook} hook (stderr): {line}"),
    })
    .await;
    let took = started.elapsed();
    match finished {
        Ok(Finished::Exited(status)) if status.success() => {
            info!(instance, hook, "{hook} hook finished in {took:.1?}")
        }
        Ok(Finished::Exited(status)) => error!(
            instance,
            hook,
            "{hook} hook failed: {program}: {} after {took:.1?}",
            describe_status(status)
        ),
        Ok(Finished::TimedOut { reaped }) => error!(
            instance,
            hook,
            "{hook} hook timed out after {}: killed {program}{}",
            format_duration(timeout),
            if reaped { "" } else { " (not yet reaped)" }
        ),
        Err(e) => error!(
            instance,
            hook,
            "{hook} hook could not start: {program}: {}",
            io_text(&e)
        ),
    }
}
