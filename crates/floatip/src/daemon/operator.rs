//! The operator's commands over the control socket: status, takeover, release (a trial handoff,
//! answered once a successor announces itself), auto and reload; and the overrides they leave.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use vrrp::{Event, Override, State};

use super::runtime::Runtime;
use super::Daemon;
use crate::control::events::{EventKind, EventRecord};
use crate::control::{self, ControlCall, Request, Response};
use crate::election::etcd::EtcdCall;

impl Daemon {
    pub(super) fn on_control(&mut self, now: Instant, call: ControlCall) {
        self.publish_command(&call.request);
        let Some(call) = self.etcd_call(call) else {
            return;
        };
        let Some(call) = self.group_call(now, call) else {
            return;
        };
        let outcome = match call.request {
            Request::Status { instance } => {
                let mut all = Vec::new();
                // A retiring instance is shown until its replacement (same name) runs: it is the one
                // still answering for the VIP during the handoff.
                let shown = |r: &&Runtime| {
                    !r.retiring
                        || !self
                            .instances
                            .iter()
                            .any(|o| !o.retiring && o.cfg.name == r.cfg.name)
                };
                for rt in self.instances.iter().filter(shown) {
                    let present: Vec<IpAddr> = self
                        .kernel
                        .addresses(rt.vip_index())
                        .map(|a| a.into_iter().map(|(ip, _)| ip).collect())
                        .unwrap_or_default();
                    let mut st = rt.status(&present, now);
                    if let Some(drops) = self.unmatched_drops.get(&rt.sock_key) {
                        st.counters.interface_drops =
                            drops.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                    }
                    all.push(st);
                }
                let etcd = self.etcd.statuses();
                let mut groups = self.group_status();
                groups.extend(crate::election::status::group_status(
                    &self.etcd.groups,
                    &etcd,
                ));
                all.extend(etcd);
                let _ = call
                    .reply
                    .send(control::select_status(all, groups, instance.as_deref()));
                return;
            }
            Request::Takeover { instance } => {
                self.override_request(now, &instance, Override::Takeover, false)
            }
            Request::Release { instance, force } => {
                self.override_request(now, &instance, Override::Release, force)
            }
            Request::Auto { instance } => {
                self.override_request(now, &instance, Override::Auto, false)
            }
            Request::Events { name } => match self.stream_target(name.as_deref()) {
                Ok(message) => Outcome::Done(message),
                Err(message) => Outcome::Error(message),
            },
            Request::Reload => match self.reload(now) {
                Ok(msg) => Outcome::Done(msg),
                Err(err) => Outcome::Error(format!("{err:#}")),
            },
        };
        let response = match outcome {
            Outcome::Done(message) => Response::Done { message },
            Outcome::Error(message) => Response::Error { message },
            Outcome::Pending {
                id,
                message,
                abort_at,
            } => {
                self.pending_releases.push(PendingRelease {
                    id,
                    reply: call.reply,
                    abort_at,
                    window: abort_at.saturating_duration_since(now),
                    message,
                });
                return;
            }
        };
        let _ = call.reply.send(response);
    }

    /// An operator's command, as an event, before anything it causes.
    fn publish_command(&self, request: &Request) {
        let (name, text) = match request {
            Request::Takeover { instance } => (Some(instance), format!("takeover {instance}")),
            Request::Release { instance, force } => (
                Some(instance),
                format!("release {instance}{}", if *force { " --force" } else { "" }),
            ),
            Request::Auto { instance } => (Some(instance), format!("auto {instance}")),
            Request::Reload => (None, "reload".to_string()),
            Request::Status { .. } | Request::Events { .. } => return,
        };
        let mut rec = EventRecord::new(EventKind::Operator, None, text);
        if let Some(name) = name {
            let etcd_group = self.etcd.groups.iter().any(|g| &g.name == name);
            let etcd_instance = !etcd_group && self.etcd.calls.contains_key(name);
            if self.instances.iter().any(|r| &r.cfg.name == name) || etcd_instance {
                rec.instance = Some(name.clone());
            } else {
                rec.group = Some(name.clone());
            }
        }
        self.events.publish(rec);
    }

    /// An operator's `takeover`, `release` or `auto` of an `election = "etcd"` instance goes to its
    /// task, which answers (a release once the successor has the VIPs) and saves the override.
    /// Anything else comes back.
    fn etcd_call(&self, call: ControlCall) -> Option<ControlCall> {
        let (name, op, force) = match &call.request {
            Request::Takeover { instance } => (instance, Override::Takeover, false),
            Request::Release { instance, force } => (instance, Override::Release, *force),
            Request::Auto { instance } => (instance, Override::Auto, false),
            _ => return Some(call),
        };
        let Some(task) = self.etcd.calls.get(name) else {
            return Some(call);
        };
        let etcd_call = EtcdCall::Operator {
            op,
            force,
            reply: call.reply,
        };
        if let Err(err) = task.try_send(etcd_call) {
            let (message, c) = match err {
                mpsc::error::TrySendError::Full(c) => (
                    format!("{name} is busy with earlier commands; try again in a moment"),
                    c,
                ),
                mpsc::error::TrySendError::Closed(c) => {
                    (format!("{name}'s etcd task has stopped"), c)
                }
            };
            if let EtcdCall::Operator { reply, .. } = c {
                let _ = reply.send(Response::Error { message });
            }
        }
        None
    }

    /// What `floatip events NAME` follows: an instance or a group of this daemon (all without a name).
    fn stream_target(&self, name: Option<&str>) -> Result<String, String> {
        let Some(name) = name else {
            return Ok("streaming every event".to_string());
        };
        let etcd_group = self.etcd.groups.iter().any(|g| g.name == name);
        if self.instances.iter().any(|r| r.cfg.name == name)
            || (self.etcd.calls.contains_key(name) && !etcd_group)
        {
            return Ok(format!("streaming the events of instance {name}"));
        }
        if etcd_group {
            return Ok(format!("streaming the events of group {name}"));
        }
        if self.group_status().iter().any(|g| g.name == name) {
            return Ok(format!("streaming the events of group {name}"));
        }
        Err(control::unknown_instance(
            name,
            self.instances.iter().map(|r| r.cfg.name.as_str()),
        ))
    }

    pub(super) fn override_request(
        &mut self,
        now: Instant,
        name: &str,
        o: Override,
        force: bool,
    ) -> Outcome {
        let Some(rt) = self
            .instances
            .iter_mut()
            .find(|r| r.cfg.name == name && !r.retiring)
        else {
            let known: Vec<&str> = self.instances.iter().map(|r| r.cfg.name.as_str()).collect();
            return Outcome::Error(control::unknown_instance(name, known.into_iter()));
        };
        let state = rt.core.state();
        let vips = rt.vips().join(", ");
        let mut pending = None;
        let message = match o {
            Override::Takeover => {
                if state == State::Fault {
                    let why = rt
                        .core
                        .fault()
                        .map(str::to_string)
                        .unwrap_or_else(|| "link down".to_string());
                    return Outcome::Error(format!(
                        "{name} is in FAULT ({why}); fix that first: a faulty host must not take the address"
                    ));
                }
                if rt.cfg.priority == 255 {
                    return Outcome::Error(format!(
                        "{name} has priority 255 (address owner): it is always preferred already"
                    ));
                }
                format!("{name}: taking over {vips} now and staying preferred (priority {}) until `floatip auto {name}`", vrrp::TAKEOVER_PRIORITY)
            }
            Override::Release if state == State::Master && force => format!(
                "{name}: released {vips} (--force); this host stays BACKUP until `floatip auto {name}`"
            ),
            Override::Release if state == State::Master => {
                // Backups are silent in VRRP, so whether one will take over is only known by asking:
                // advertise priority 0, keep answering, and see who announces itself.
                let window = rt.core.handoff_window();
                let margin = rt.core.current_interval().min(window / 4);
                pending = Some(now + window - margin);
                format!("{name}: released {vips}; this host stays BACKUP until `floatip auto {name}`")
            }
            Override::Release => {
                format!("{name}: will not claim {vips} until `floatip auto {name}`")
            }
            Override::Auto => format!(
                "{name}: back to automatic (priority {}, preempt {})",
                rt.cfg.priority, rt.cfg.preempt
            ),
        };
        info!(instance = %name, "operator: {message}");
        let id = rt.id;
        rt.core.handle_event(now, Event::Override(o));
        let saved = self.set_override(name, o);
        let message = match saved {
            Ok(()) => message,
            Err(err) => format!("{message}\n  warning: the override is in force but could not be saved, so it will not survive a restart: {err:#}"),
        };
        match pending {
            Some(abort_at) => Outcome::Pending {
                id,
                message,
                abort_at,
            },
            None => Outcome::Done(message),
        }
    }

    /// Records the operator's override and saves the overrides file; a failure to save is said in
    /// the daemon's log too (the operator's terminal may be gone by the next restart).
    pub(super) fn set_override(&mut self, name: &str, o: Override) -> Result<()> {
        match o {
            Override::Auto => self.overrides.remove(name),
            other => self.overrides.insert(name.to_string(), other),
        };
        let saved = crate::instance::overrides::update(&self.state_dir, name, o);
        if let Err(err) = &saved {
            warn!(instance = %name, "the {o:?} override is in force but could not be saved, so it will not survive a restart: {err:#}");
        }
        saved
    }

    /// Answer releases whose handoff ended; abandon those no successor answered (the master resumes).
    pub(super) fn settle_releases(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending_releases.len() {
            let p = &self.pending_releases[i];
            let Some(rt) = self.instances.iter_mut().find(|r| r.id == p.id) else {
                let p = self.pending_releases.swap_remove(i);
                let _ = p.reply.send(Response::Error {
                    message: "the instance was removed by a reload during the release".to_string(),
                });
                continue;
            };
            let response = if rt.core.handoff() != Some(vrrp::machine::Handoff::Release) {
                let successor = rt
                    .core
                    .master_seen()
                    .map(|m| format!(" {} (priority {}) took over", m.address, m.priority))
                    .unwrap_or_default();
                Response::Done {
                    message: format!("{};{successor}", p.message),
                }
            } else if now >= p.abort_at {
                let name = rt.cfg.name.clone();
                let vips = rt.vips().join(", ");
                let vrid = rt.cfg.vrid;
                let waited = vrrp::machine::fmt_duration(p.window);
                rt.core.handle_event(now, Event::Override(Override::Auto));
                warn!(instance = %name, "release abandoned: no other router took over within {waited}; staying MASTER");
                let saved = self.set_override(&name, Override::Auto);
                Response::Error {
                    message: format!(
                        "{name}: no other router on VRID {vrid} took over {vips} within {waited}, so this host stays MASTER (releasing would have left the address unowned).\n  Start floatip (or keepalived) on the other host first, or run `floatip release {name} --force` to release anyway.{}",
                        saved.err().map(|e| format!("\n  warning: could not update the overrides file: {e:#}")).unwrap_or_default()
                    ),
                }
            } else {
                i += 1;
                continue;
            };
            let p = self.pending_releases.swap_remove(i);
            let _ = p.reply.send(response);
        }
    }
}

/// A release in progress: the master advertises priority 0 and keeps the VIP; the operator's answer
/// waits until a successor announces itself, or until it is clear none will (then the master resumes).
pub(super) struct PendingRelease {
    pub(super) id: usize,
    pub(super) reply: oneshot::Sender<Response>,
    pub(super) abort_at: Instant,
    /// How long the successor had, for the refusal.
    pub(super) window: Duration,
    pub(super) message: String,
}

/// What an operator command came to.
pub(super) enum Outcome {
    Done(String),
    Error(String),
    /// A release handed to the core; answered by [`Daemon::settle_releases`].
    Pending {
        id: usize,
        message: String,
        abort_at: Instant,
    },
}
