//! Planned moves of an etcd instance, make-before-break, and the operator's commands on it.
//!
//! A move (a better candidate that preempts, a failing check, `release`, a stop) goes: the owner
//! names its successor in the `handoff` key (under its own lease, only while it owns the key); the
//! successor takes the owner key over in one transaction (owner and handoff keys move to its lease),
//! adds the VIPs, sends its first announcement and deletes the handoff key; only then does the old
//! owner remove the VIPs. Clients therefore always find the VIP on a host that answers. Each wait
//! is bounded: a successor that does not take the key within [`HANDOFF_WAIT`] is given up on (a
//! preempting owner keeps the VIPs and tries later; a failing or stopping one lets go and frees the
//! key, break-before-make; a `release` is refused, as in VRRP mode), one that does not confirm its
//! announcement within [`ANNOUNCE_WAIT`] is trusted anyway (it owns the key).

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{info, warn};
use vrrp::Override;

use super::decide::Handoff;
use super::Elector;
use crate::control::Response;
use crate::election::lease::{self, LeaseClock};

/// How long a named successor has to take the owner key (it reads the keys every 100 ms).
pub(super) const HANDOFF_WAIT: Duration = Duration::from_secs(2);
/// How long the old owner waits, once the successor owns the key, for its announcement.
pub(super) const ANNOUNCE_WAIT: Duration = Duration::from_secs(1);
/// The longest a stop waits for its handoff (then it lets go and revokes the lease).
pub(super) const STOP_WAIT: Duration = Duration::from_secs(4);

/// What the daemon asks of an etcd election.
pub enum EtcdCall {
    /// An operator's `takeover`, `release` (`force`: let go even with no successor) or `auto`,
    /// with the control client's reply (answered here; a release once the successor has the VIPs).
    Operator {
        op: Override,
        force: bool,
        reply: oneshot::Sender<Response>,
    },
    /// `floatip reload`: the members' new settings (see [`super::reload::plan`]).
    Reload {
        members: Vec<crate::config::InstanceConfig>,
    },
}

/// Why a move of ours is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// A better candidate that preempts is up.
    Preempted,
    /// We may no longer own the VIPs (the reason: a failing check, `release`, stopping).
    Withdrawn(String),
}

/// A move of ours in progress.
#[derive(Debug)]
pub(super) struct Handing {
    /// The successor we named.
    pub(super) to: IpAddr,
    why: Why,
    /// When we named it (`lease::now`), and when we first saw it own the key.
    since: Duration,
    taken_since: Option<Duration>,
}

/// The priority a candidacy carries under the override `o`, from the checks' `priority`.
pub(super) fn priority_under(o: Override, priority: u8) -> u8 {
    match o {
        Override::Takeover => priority.max(vrrp::TAKEOVER_PRIORITY),
        _ => priority,
    }
}

impl Elector {
    /// Why we may not own the VIPs now, for logs, reasons and hooks.
    fn withdrawn_because(&self) -> String {
        if let Some(f) = &self.fault {
            f.clone()
        } else if self.stopping {
            "stopping".to_string()
        } else {
            format!(
                "released by the operator (until `floatip auto {}`)",
                self.name
            )
        }
    }

    /// The named successor owns the key: take the VIPs over (it made the owner and handoff keys
    /// ours), announce them, then tell the old owner by deleting the handoff key.
    pub(super) async fn take_handoff(&mut self, from: i64, clock: LeaseClock) {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return;
        };
        if self.take_over_key(from, id).await != Some(true) {
            return;
        }
        let old = self
            .view
            .owner
            .as_ref()
            .map_or("?".into(), |o| o.node.clone());
        info!(instance = %self.name, "took the owner key over from {old} (a planned handoff; lease {id:x})");
        self.add_vips(clock, true).await;
        let taken = Handoff {
            to: self.me,
            taken: true,
        };
        self.clear_handoff(taken).await;
    }

    /// Names `to` our successor; we keep the VIPs until it has announced them.
    async fn hand_to(&mut self, to: IpAddr, why: Why) {
        let Some(id) = self.lease.as_ref().map(|l| l.id) else {
            return;
        };
        if self.name_successor(id, to).await == Some(true) {
            let text = match &why {
                Why::Preempted => "a better candidate".to_string(),
                Why::Withdrawn(w) => w.clone(),
            };
            info!(instance = %self.name, "handing the VIPs over to {to} ({text}); keeping them until it has announced them");
            self.handing = Some(Handing {
                to,
                why,
                since: lease::now(),
                taken_since: None,
            });
        }
    }

    pub(super) async fn preempted(&mut self, to: IpAddr) {
        if self.preempt_after.is_none_or(|t| lease::now() >= t) {
            self.hand_to(to, Why::Preempted).await;
        }
    }

    /// We may no longer own the VIPs: to the best other candidate, or (none) let go and free the
    /// key, unless it is a `release` without `--force` (refused: the address would be unowned).
    pub(super) async fn withdraw(&mut self, to: Option<IpAddr>) {
        let why = self.withdrawn_because();
        if let Some(to) = to {
            self.hand_to(to, Why::Withdrawn(why)).await;
            return;
        }
        if self.holding() && self.refuse_release("there is no other candidate in etcd") {
            return;
        }
        self.drop_and_free(why).await;
    }

    /// Removes the VIPs (if held) and frees the owner key for whoever comes next.
    async fn drop_and_free(&mut self, why: String) {
        self.handing = None;
        if self.holding() {
            let to = self.idle_state();
            self.set_holding(false, format!("{to}: {why}"));
            self.remove_vips().await;
            warn!(instance = %self.name, "let go of the VIPs with no successor ({why}); the owner key is free for the next candidate");
        }
        if let Some(id) = self.lease.as_ref().map(|l| l.id) {
            self.free_key(id).await;
        }
        self.answer_release("");
    }

    /// The key is someone else's: our VIPs go (after a handoff of ours: its successor announced).
    pub(super) async fn let_go(&mut self) {
        let idle = self.idle_state();
        let (reason, successor) = match self.handing.take() {
            Some(h) => {
                let why = match h.why {
                    Why::Preempted => "preempted by the better candidate".to_string(),
                    Why::Withdrawn(w) => w,
                };
                (
                    format!("{idle}: handed over to {} ({why})", h.to),
                    format!("; {} took over", h.to),
                )
            }
            None => {
                let who = self
                    .view
                    .owner
                    .as_ref()
                    .map_or("nobody".into(), |o| o.node.clone());
                warn!(instance = %self.name, "the owner key is no longer ours (held by {who}); removing the VIPs");
                (
                    format!("{idle}: the owner key in etcd is held by {who}"),
                    String::new(),
                )
            }
        };
        self.set_holding(false, reason);
        self.remove_vips().await;
        self.answer_release(&successor);
    }

    /// The successor owns the key: wait for its announcement, bounded.
    pub(super) async fn await_announce(&mut self) {
        let now = lease::now();
        let Some(h) = self.handing.as_mut() else {
            return;
        };
        let since = *h.taken_since.get_or_insert(now);
        if now.saturating_sub(since) >= ANNOUNCE_WAIT {
            warn!(instance = %self.name, "{} owns the key but did not confirm its announcement within {ANNOUNCE_WAIT:?}; removing the VIPs", h.to);
            self.let_go().await;
        }
    }

    /// The successor has not taken the key yet: after [`HANDOFF_WAIT`], give up on it.
    pub(super) async fn await_successor(&mut self) {
        let Some(h) = self.handing.as_ref() else {
            return;
        };
        if lease::now().saturating_sub(h.since) < HANDOFF_WAIT {
            return;
        }
        let (to, why) = (h.to, h.why.clone());
        self.clear_handoff(Handoff { to, taken: false }).await;
        self.handing = None;
        match why {
            Why::Preempted => {
                warn!(instance = %self.name, "{to} did not take the VIPs within {HANDOFF_WAIT:?}; keeping them, trying again later");
                self.preempt_after = Some(lease::now() + HANDOFF_WAIT);
            }
            Why::Withdrawn(w) => {
                let refusal = format!(
                    "{to}, the next candidate in etcd, did not take over within {HANDOFF_WAIT:?}"
                );
                if !self.refuse_release(&refusal) {
                    warn!(instance = %self.name, "{refusal}; letting go anyway ({w})");
                    self.drop_and_free(w).await;
                }
            }
        }
    }

    /// A pending `release` (without `--force`) that cannot hand over is refused: we stay the owner
    /// and back to automatic. Returns whether there was one.
    fn refuse_release(&mut self, because: &str) -> bool {
        if self.override_mode != Override::Release || self.stopping || self.fault.is_some() {
            return false;
        }
        let Some((reply, _)) = self.pending_release.take() else {
            return false;
        };
        let name = self.name.clone();
        let saved = self.set_override(Override::Auto);
        warn!(instance = %name, "release abandoned: {because}; staying MASTER");
        let _ = reply.send(Response::Error {
            message: format!(
                "{name}: {because}, so this host stays MASTER (releasing would have left the address unowned).\n  Start floatip on another host first, or run `floatip release {name} --force` to release anyway.{}",
                saved.err().map(|e| format!("\n  warning: could not update the overrides file: {e:#}")).unwrap_or_default()
            ),
        });
        true
    }

    /// Answers a pending `release`: the VIPs are gone from here.
    fn answer_release(&mut self, successor: &str) {
        if let Some((reply, message)) = self.pending_release.take() {
            let _ = reply.send(Response::Done {
                message: format!("{message}{successor}"),
            });
        }
    }

    /// Sets the override (the priority it gives is taken at the next tick), has the candidacy put
    /// again, and saves the override in the state directory.
    fn set_override(&mut self, o: Override) -> anyhow::Result<()> {
        self.override_mode = o;
        if let Some(l) = self.lease.as_mut() {
            l.candidate = false;
        }
        crate::instance::overrides::update(&self.state_dir, &self.name, o)
    }

    /// The operator's `takeover`, `release` or `auto`.
    pub(super) async fn on_call(
        &mut self,
        op: Override,
        force: bool,
        reply_to: oneshot::Sender<Response>,
    ) {
        let name = self.name.clone();
        let vips: Vec<String> = self
            .members
            .iter()
            .flat_map(|m| m.cfg.addresses.iter().map(|v| v.to_string()))
            .collect();
        let vips = vips.join(", ");
        let reply = |message: String, ok: bool| {
            if ok {
                Response::Done { message }
            } else {
                Response::Error { message }
            }
        };
        let (message, ok) = match op {
            Override::Takeover => {
                if let Some(f) = &self.fault {
                    let _ = reply_to.send(reply(format!("{name} is in FAULT ({f}); fix that first: a faulty host must not take the address"), false));
                    return;
                }
                (format!("{name}: taking over {vips} now (priority {} in etcd; the owner hands over make-before-break) and staying preferred until `floatip auto {name}`", vrrp::TAKEOVER_PRIORITY), true)
            }
            Override::Release if self.holding() && force => (
                format!("{name}: released {vips} (--force); this host stays BACKUP until `floatip auto {name}`"),
                true,
            ),
            Override::Release if self.holding() => {
                // Answered once a successor has the VIPs (or refused when none takes them).
                let mut message = format!(
                    "{name}: released {vips}; this host stays BACKUP until `floatip auto {name}`"
                );
                if let Err(err) = self.set_override(Override::Release) {
                    message.push_str(&format!("\n  warning: the override is in force but could not be saved, so it will not survive a restart: {err:#}"));
                }
                if let Some((old, _)) = self.pending_release.replace((reply_to, message)) {
                    let _ = old.send(reply("superseded by a newer release".into(), false));
                }
                self.withdraw_candidacy().await;
                return;
            }
            Override::Release => (
                format!("{name}: will not claim {vips} until `floatip auto {name}`"),
                true,
            ),
            Override::Auto => (
                format!(
                    "{name}: back to automatic (priority {}, preempt {})",
                    self.members.iter().map(|m| m.cfg.priority).min().unwrap_or(0),
                    self.preempt
                ),
                true,
            ),
        };
        info!(instance = %name, "operator: {message}");
        let saved = self.set_override(op);
        if op == Override::Release {
            self.withdraw_candidacy().await;
            if force && self.holding() {
                self.drop_and_free(self.withdrawn_because()).await;
            }
        }
        let message = match saved {
            Ok(()) => message,
            Err(err) => format!("{message}\n  warning: the override is in force but could not be saved, so it will not survive a restart: {err:#}"),
        };
        let _ = reply_to.send(reply(message, ok));
    }
}
