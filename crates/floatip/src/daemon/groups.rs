//! Sync groups at run time (`[[group]]`, keepalived's `vrrp_sync_group`): the members of a group are
//! MASTER on one host together. After every input the loop calls [`Daemon::sync_groups`], which folds
//! the group into each member through the core's own levers:
//! - a FAULT of a member's own (link, check, tracked interface, conflict) is a fault of every other
//!   member ([`Runtime::group_fault`], folded with the member's own): a master hands over
//!   make-before-break as for its own fault;
//! - a member does not claim while a sibling hears a live master ([`Runtime::group_inhibit`], folded
//!   with the witness and check inhibits): one VRID's adverts filtered between the hosts must not split
//!   the group;
//! - a member that becomes MASTER takes its backup siblings along, and one that leaves MASTER for
//!   BACKUP takes its master siblings along ([`vrrp::Event::Follow`]);
//! - a member handing over whose successor is silent on its VRID (filtered) ends its handoff once a
//!   sibling heard the group's successor.
//!
//! The operator's `takeover`, `release` and `auto` of a group name apply to every member; a group
//! release answers once every member's release has ([`Daemon::group_call`]). `status` shows each
//! group ([`Daemon::group_status`]).

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{info, warn};
use vrrp::{Event, Override, State};

use super::operator::{Outcome, PendingRelease};
use super::runtime::Runtime;
use super::Daemon;
use crate::config::GroupConfig;
use crate::control::{ControlCall, GroupMemberStatus, GroupStatus, Request, Response};

/// The groups of the running config and what the loop remembers about their members.
#[derive(Default)]
pub(super) struct Groups {
    groups: Vec<GroupConfig>,
    /// Each member's state at the last sync, by instance id (a change is a transition to follow).
    seen: HashMap<usize, State>,
    /// When each member was first seen handing over, by instance id.
    handing_off: HashMap<usize, Instant>,
    releases: Vec<GroupRelease>,
}

impl Groups {
    pub(super) fn new(groups: Vec<GroupConfig>) -> Groups {
        Groups {
            groups,
            ..Groups::default()
        }
    }

    /// A reload's groups; members that left a group lose its fault and inhibit at the next sync.
    pub(super) fn set(&mut self, groups: Vec<GroupConfig>) {
        self.groups = groups;
    }

    fn find(&self, name: &str) -> Option<&GroupConfig> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// A release of a group: answered once each member's own release is.
struct GroupRelease {
    reply: oneshot::Sender<Response>,
    /// The members answered at once (done or refused).
    answered: Vec<Response>,
    /// The members still handing over.
    waiting: Vec<oneshot::Receiver<Response>>,
}

/// The indexes of `group`'s running members, in the group's order.
fn members(instances: &[Runtime], group: &GroupConfig) -> Vec<usize> {
    group
        .instances
        .iter()
        .filter_map(|name| {
            instances
                .iter()
                .position(|r| !r.retiring && r.cfg.name == *name)
        })
        .collect()
}

/// The member's own fault, with the link: what it passes on to its siblings.
fn own_fault(rt: &Runtime) -> Option<String> {
    rt.own_fault()
        .or_else(|| rt.core.link_is_down().then(|| "link down".to_string()))
}

/// The master `rt` hears now, if it is a backup with a live master (heard within `fraction` of its
/// master-down interval, priority above 0).
fn live_master(rt: &Runtime, now: Instant, fraction: u32) -> Option<&vrrp::machine::MasterSeen> {
    let m = rt.core.master_seen()?;
    let fresh =
        now.saturating_duration_since(m.last_heard) < rt.core.master_down_interval() / fraction;
    (rt.core.state() == State::Backup && m.priority > 0 && fresh).then_some(m)
}

fn family(rt: &Runtime) -> &'static str {
    if rt.cfg.is_v6() {
        "IPv6"
    } else {
        "IPv4"
    }
}

impl Daemon {
    /// Fold every group into its members (see the module header). Called before the cores' actions
    /// are carried out, after every input and deadline.
    pub(super) fn sync_groups(&mut self, now: Instant) {
        // Members that left every group (a reload) are free again.
        for rt in self.instances.iter_mut() {
            let grouped = self
                .groups
                .groups
                .iter()
                .any(|g| g.instances.contains(&rt.cfg.name));
            if !grouped && (rt.group_fault.is_some() || rt.group_inhibit.is_some()) {
                rt.group_fault = None;
                rt.group_inhibit = None;
                rt.reevaluate(now);
            }
        }
        for g in 0..self.groups.groups.len() {
            let group = self.groups.groups[g].clone();
            let m = members(&self.instances, &group);
            if m.len() < 2 {
                continue;
            }
            self.sync_faults(now, &group.name, &m);
            self.follow(now, &group.name, &m);
            self.end_silent_handoffs(now, &group.name, &m);
            self.sync_inhibits(now, &group.name, &m);
        }
        self.answer_group_releases();
    }

    /// A member's own fault is every sibling's.
    fn sync_faults(&mut self, now: Instant, group: &str, m: &[usize]) {
        let faults: Vec<Option<String>> =
            m.iter().map(|&i| own_fault(&self.instances[i])).collect();
        for (k, &i) in m.iter().enumerate() {
            let fault = m.iter().zip(&faults).enumerate().find_map(|(j, (&s, f))| {
                let f = f.as_ref().filter(|_| j != k)?;
                Some(format!(
                    "group {group}: {} is in FAULT ({f})",
                    self.instances[s].cfg.name
                ))
            });
            let rt = &mut self.instances[i];
            if rt.group_fault != fault {
                if let Some(f) = &fault {
                    warn!(instance = %rt.cfg.name, "{f}: handing the group over");
                }
                rt.group_fault = fault;
                rt.reevaluate(now);
            }
        }
    }

    /// A member that became MASTER takes its backup siblings along; one that went from MASTER to
    /// BACKUP takes its master siblings along.
    fn follow(&mut self, now: Instant, group: &str, m: &[usize]) {
        // Bounded: each round only moves members in the direction of the first change.
        for _ in 0..m.len() + 1 {
            let mut moved = None;
            for &i in m {
                let rt = &self.instances[i];
                let state = rt.core.state();
                let before = self.groups.seen.insert(rt.id, state);
                if before == Some(state) {
                    continue;
                }
                let name = rt.cfg.name.clone();
                if state == State::Master {
                    moved = Some((
                        i,
                        State::Master,
                        format!("group {group}: {name} became MASTER"),
                    ));
                } else if before == Some(State::Master) && state == State::Backup {
                    let by = rt
                        .core
                        .master_seen()
                        .map(|ms| format!(" (master {}, priority {})", ms.address, ms.priority))
                        .unwrap_or_default();
                    moved = Some((
                        i,
                        State::Backup,
                        format!("group {group}: {name} became BACKUP{by}"),
                    ));
                }
            }
            let Some((origin, to, reason)) = moved else {
                return;
            };
            for &i in m.iter().filter(|&&i| i != origin) {
                let rt = &mut self.instances[i];
                let from = if to == State::Master {
                    State::Backup
                } else {
                    State::Master
                };
                if rt.core.state() == from {
                    rt.core.handle_event(
                        now,
                        Event::Follow {
                            to,
                            reason: reason.clone(),
                        },
                    );
                }
            }
        }
    }

    /// A member handing over whose successor cannot be heard on its own VRID: once a sibling that is
    /// no longer master heard a router with a real priority since the handoff began, that router's
    /// host has the group, and this member lets go too.
    fn end_silent_handoffs(&mut self, now: Instant, group: &str, m: &[usize]) {
        for &i in m {
            let rt = &self.instances[i];
            let id = rt.id;
            if rt
                .core
                .handoff()
                .is_none_or(|h| h == vrrp::machine::Handoff::Shutdown)
            {
                self.groups.handing_off.remove(&id);
                continue;
            }
            let since = *self.groups.handing_off.entry(id).or_insert(now);
            let successor = m.iter().filter(|&&s| s != i).find_map(|&s| {
                let sib = &self.instances[s];
                if sib.core.state() == State::Master {
                    return None;
                }
                sib.speakers
                    .iter()
                    .find(|(addr, sp)| {
                        **addr != sib.primary && sp.priority > 0 && sp.last_heard >= since
                    })
                    .map(|(addr, _)| format!("group {group}: {addr} took over {}", sib.cfg.name))
            });
            if let Some(reason) = successor {
                self.groups.handing_off.remove(&id);
                let rt = &mut self.instances[i];
                info!(instance = %rt.cfg.name, "{reason}: letting go without hearing our own successor");
                rt.core.handle_event(
                    now,
                    Event::Follow {
                        to: State::Backup,
                        reason,
                    },
                );
            }
        }
    }

    /// A member whose own master is not heard does not claim while a sibling hears a live master.
    fn sync_inhibits(&mut self, now: Instant, group: &str, m: &[usize]) {
        for &i in m {
            let rt = &self.instances[i];
            // Hearing our own master is enough: its going quiet is what the inhibit must catch in time,
            // so it counts as quiet after half a master-down interval.
            let inhibit = if live_master(rt, now, 2).is_some() {
                None
            } else {
                m.iter().filter(|&&s| s != i).find_map(|&s| {
                    let sib = &self.instances[s];
                    let master = live_master(sib, now, 1)?;
                    Some(if family(rt) == family(sib) {
                        format!(
                            "group {group}: no adverts heard on VRID {}, but {} hears master {} on VRID {}: VRID {} VRRP filtered between us?",
                            rt.cfg.vrid, sib.cfg.name, master.address, sib.cfg.vrid, rt.cfg.vrid
                        )
                    } else {
                        format!(
                            "group {group}: no {fam} adverts heard, but {} hears master {}: {fam} VRRP filtered between us?",
                            sib.cfg.name,
                            master.address,
                            fam = family(rt)
                        )
                    })
                })
            };
            let rt = &mut self.instances[i];
            if rt.group_inhibit != inhibit {
                if let Some(why) = &inhibit {
                    if rt.core.state() == State::Backup {
                        warn!(instance = %rt.cfg.name, "not claiming: {why}");
                    }
                }
                rt.group_inhibit = inhibit;
                rt.reevaluate_inhibit(now);
            }
        }
    }

    /// `takeover`, `release` or `auto` of a group name: every member. Returns the call when its name
    /// is no group (or it is another request), for the instance's own handling.
    pub(super) fn group_call(&mut self, now: Instant, call: ControlCall) -> Option<ControlCall> {
        let (name, o, force) = match &call.request {
            Request::Takeover { instance } => (instance, Override::Takeover, false),
            Request::Release { instance, force } => (instance, Override::Release, *force),
            Request::Auto { instance } => (instance, Override::Auto, false),
            _ => return Some(call),
        };
        let Some(group) = self.groups.find(name).cloned() else {
            return Some(call);
        };
        let m = members(&self.instances, &group);
        if o == Override::Takeover {
            if let Some(rt) = m
                .iter()
                .map(|&i| &self.instances[i])
                .find(|r| r.core.state() == State::Fault)
            {
                let why = rt.core.fault().unwrap_or("link down");
                let _ = call.reply.send(Response::Error {
                    message: format!(
                        "group {}: {} is in FAULT ({why}); fix that first: a faulty host must not take the group",
                        group.name, rt.cfg.name
                    ),
                });
                return None;
            }
        }
        let names: Vec<String> = m
            .iter()
            .map(|&i| self.instances[i].cfg.name.clone())
            .collect();
        info!(
            "operator: {o:?} of group {} ({})",
            group.name,
            names.join(", ")
        );
        let mut release = GroupRelease {
            reply: call.reply,
            answered: Vec::new(),
            waiting: Vec::new(),
        };
        for member in &names {
            match self.override_request(now, member, o, force) {
                Outcome::Done(message) => release.answered.push(Response::Done { message }),
                Outcome::Error(message) => release.answered.push(Response::Error { message }),
                Outcome::Pending {
                    id,
                    message,
                    abort_at,
                } => {
                    let (reply, answer) = oneshot::channel();
                    self.pending_releases.push(PendingRelease {
                        id,
                        reply,
                        abort_at,
                        window: abort_at.saturating_duration_since(now),
                        message,
                    });
                    release.waiting.push(answer);
                }
            }
        }
        self.groups.releases.push(release);
        self.answer_group_releases();
        None
    }

    /// Answer the group releases whose members have all answered: done when each is, else an error
    /// with every member's answer.
    pub(super) fn answer_group_releases(&mut self) {
        let mut i = 0;
        while i < self.groups.releases.len() {
            let r = &mut self.groups.releases[i];
            let mut k = 0;
            while k < r.waiting.len() {
                match r.waiting[k].try_recv() {
                    Ok(answer) => {
                        r.answered.push(answer);
                        r.waiting.swap_remove(k);
                    }
                    Err(oneshot::error::TryRecvError::Empty) => k += 1,
                    Err(oneshot::error::TryRecvError::Closed) => {
                        r.answered.push(Response::Error {
                            message: "a member's release was dropped".to_string(),
                        });
                        r.waiting.swap_remove(k);
                    }
                }
            }
            if !r.waiting.is_empty() {
                i += 1;
                continue;
            }
            let r = self.groups.releases.swap_remove(i);
            let failed = r
                .answered
                .iter()
                .any(|a| matches!(a, Response::Error { .. }));
            let text: Vec<String> = r
                .answered
                .into_iter()
                .map(|a| match a {
                    Response::Done { message } | Response::Error { message } => message,
                    Response::Status { .. } => String::new(),
                })
                .collect();
            let message = text.join("\n");
            let _ = r.reply.send(if failed {
                Response::Error { message }
            } else {
                Response::Done { message }
            });
        }
    }

    /// Each group with its members' states, for `status`.
    pub(super) fn group_status(&self) -> Vec<GroupStatus> {
        self.groups
            .groups
            .iter()
            .map(|g| {
                let members = members(&self.instances, g)
                    .into_iter()
                    .map(|i| GroupMemberStatus {
                        name: self.instances[i].cfg.name.clone(),
                        state: self.instances[i].core.state().as_str().to_string(),
                    })
                    .collect();
                GroupStatus::new(&g.name, members)
            })
            .collect()
    }
}
