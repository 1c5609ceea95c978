//! One instance at run time ([`Runtime`]): its core plus everything the daemon knows about it
//! (link, VIPs held, speakers heard, checks, conflicts, counters, history), how those fold into the
//! core's fault, priority and claim inhibit, how its VIPs go up (after a claim probe, see
//! [`super::claim_probe`]) and are announced, and the instance's status as `floatip status` shows it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info, warn};
use vrrp::validate::RxPolicy;
use vrrp::{ChecksumMode, Event, State};

use super::claim_probe::{AfterProbe, ClaimProbe};
use super::clash::Clashes;
use super::hold::VipHold;
use crate::config::{InstanceConfig, Vip};
use crate::conflict::Conflicts;
use crate::control::events::{EventHub, EventKind, EventRecord};
use crate::control::format_mac;
use crate::control::{
    age_ms, millis, unix_secs, CountersStatus, HistoryEntry, InstanceStatus, MasterStatus,
    OverrideMode, PriorityStatus, SpeakerStatus, TrackFileStatus, VipStatus, HISTORY_MAX,
};
use crate::health::track_file::{self, TrackFileState};
use crate::health::{self, CheckState, TaskSet};
use crate::hooks::Hooks;
use crate::net::kernel::{AdvertSender, Announce, Kernel};
use crate::net::netlink::LinkInfo;

/// One transition as `status` shows it.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: SystemTime,
    pub from: State,
    pub to: State,
    pub reason: String,
}

/// A VRRP speaker heard on this instance's VRID.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub priority: u8,
    pub interval_cs: u16,
    /// The addresses its last advert listed (shared with the advert, not copied).
    pub addresses: Arc<[IpAddr]>,
    pub last_heard: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub send_errors: u64,
    pub drops: BTreeMap<&'static str, u64>,
    pub transitions: HashMap<(State, State), u64>,
    pub vip_restored: u64,
}

/// Key of a shared raw socket: one per interface and family.
pub(super) type SockKey = (u32, bool);

/// A tracked interface: FAULT while it is down.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) name: String,
    pub(super) index: u32,
    pub(super) up: bool,
}

/// One instance at run time: its core plus what the daemon knows about it.
pub struct Runtime {
    /// Stable across reloads (checks and witness reports carry it).
    pub id: usize,
    pub cfg: InstanceConfig,
    pub core: vrrp::Instance,
    /// The interface, while the instance has a hold on it (index [`super::attach::NO_LINK`] while it
    /// does not exist).
    pub link: LinkInfo,
    pub primary: IpAddr,
    /// Why the instance cannot run on its interface yet (missing, no usable address): its FAULT
    /// reason until [`super::attach`] resolves it (`None`: attached).
    pub(super) detached: Option<String>,
    pub(super) sock_key: SockKey,
    /// The virtual-MAC interface the VIPs live on (`vmac = true`, once attached).
    pub(super) vmac: Option<super::vmac::VmacHold>,
    pub(super) announcer: Arc<dyn Announce>,
    pub(super) policy: RxPolicy,
    /// Why the core speaks another version than the configured one (it follows a VRRPv2 router).
    pub(super) version_why: Option<String>,
    /// Where adverts go (the group, or each unicast peer), each through its connected sender.
    pub(super) destinations: Vec<(IpAddr, Arc<dyn AdvertSender>)>,
    pub(super) send_checksum: ChecksumMode,
    /// PASS or auth_hmac: the settings, the send sequence and each sender's last sequence.
    pub(super) auth: vrrp::auth::AuthState,
    /// The rate limit of the log lines for adverts authentication refused.
    pub(super) auth_log: super::auth::AuthLog,
    /// Reused for every advert this instance encodes (at 10 ms adverts, 100 a second).
    pub(super) tx_buf: Vec<u8>,
    /// Our VIPs in the kernel: held or not, their lifetime refresh, announcements ([`VipHold`]).
    pub(super) hold: VipHold,
    pub history: VecDeque<Record>,
    pub speakers: HashMap<IpAddr, Speaker>,
    pub counters: Counters,
    pub checks: Vec<CheckState>,
    /// The `[[instance.track_file]]`s' numbers in force.
    pub track_files: Vec<TrackFileState>,
    pub(super) tracked: Vec<Tracked>,
    pub conflicts: Conflicts,
    /// Speakers on our VRID whose adverts do not list our addresses (their adverts are dropped).
    pub clashes: Clashes,
    /// The fault reason, base priority and claim inhibit last given to the core, to send only changes.
    pub(super) fault_sent: Option<String>,
    pub(super) priority_sent: u8,
    pub(super) inhibit_sent: Option<String>,
    /// Why the witness says not to claim (`None` once it answers, or without a witness).
    pub(super) witness_inhibit: Option<String>,
    /// Why this instance's sync group says not to claim, or to be in FAULT ([`super::groups`]).
    pub(super) group_inhibit: Option<String>,
    pub(super) group_fault: Option<String>,
    pub(super) hooks: Option<Hooks>,
    /// When to ask the LAN next who answers for our VIPs (while master, or yielded to a conflict).
    pub(super) next_probe: Option<Instant>,
    /// A probe went out this round (so its end can count as a quiet round).
    pub(super) probed: bool,
    /// Someone else claimed one of our VIPs since this round's probe.
    pub(super) heard_since_probe: bool,
    /// Removed by a reload: stepping down, dropped once stopped.
    pub(super) retiring: bool,
    /// A claim or a restore waiting until nobody else answers for the VIP.
    pub(super) probe: Option<ClaimProbe>,
    /// The core's claim follows a probe that found nobody answering (no second wait before adding).
    pub(super) probe_cleared: bool,
    pub(super) check_tasks: TaskSet,
    pub(super) witness_task: TaskSet,
    pub(super) track_task: TaskSet,
    /// The daemon's event broadcaster (`floatip events`).
    pub(super) events: Arc<EventHub>,
}

impl Runtime {
    /// The interface the VIPs go on: the virtual-MAC interface, or the instance's own.
    pub(super) fn vip_index(&self) -> u32 {
        self.vmac.as_ref().map_or(self.link.index, |v| v.index)
    }

    /// Whether adverts read from socket `key` are this instance's to take: its interface's, or
    /// (while it is up) its virtual-MAC interface's, which the peers' adverts from the same virtual
    /// MAC reach instead of the parent.
    pub(super) fn hears_on(&self, key: SockKey) -> bool {
        self.sock_key == key
            || self
                .vmac
                .as_ref()
                .is_some_and(|v| (v.index, self.sock_key.1) == key)
    }

    pub(super) fn prefix_len(&self, addr: IpAddr) -> u8 {
        self.cfg
            .addresses
            .iter()
            .find(|v| v.addr == addr)
            .map(|v| v.prefix_len)
            .unwrap_or(if addr.is_ipv4() { 32 } else { 128 })
    }

    /// How often a master re-adds its VIPs to push the kernel lifetime forward: twice per lifetime.
    pub(super) fn refresh_period(&self) -> Duration {
        self.cfg.address_lifetime / 2
    }

    /// A refresh (or probe) due within this much is done at the current wakeup (an advert's,
    /// usually), so it costs no wakeup of its own; if nothing wakes the loop, its own deadline is this
    /// much late, which still leaves a quarter of the lifetime.
    pub(super) fn refresh_slack(&self) -> Duration {
        self.cfg.advert_interval.min(self.cfg.address_lifetime / 4)
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        let slack = self.refresh_slack();
        let [refresh, announce] = self.hold.deadlines(slack);
        [
            self.core.poll_timeout(),
            refresh,
            announce,
            self.next_probe.map(|t| t + slack),
            self.probe.as_ref().map(|p| p.round_ends),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts probing (or adds VIPs to a restore already running) and sends the first round. While a
    /// VIP is being put back, nothing announces it (clients must not be sent to a host without it).
    pub(super) fn start_probe(&mut self, now: Instant, then: AfterProbe) {
        if matches!(then, AfterProbe::Restore(_)) {
            self.hold.allow_announcements(false);
        }
        ClaimProbe::start(&mut self.probe, now, then);
        self.send_probes();
    }

    /// The VIPs the running probe asks about.
    fn probed_vips(&self) -> Vec<IpAddr> {
        self.probe
            .as_ref()
            .map_or_else(Vec::new, |p| p.vips(&self.cfg.addresses))
    }

    pub(super) fn send_probes(&self) {
        for addr in self.probed_vips() {
            if let Err(err) = self.announcer.probe(addr) {
                warn!(instance = %self.cfg.name, "cannot probe for {addr}: {err}");
            }
        }
    }

    /// A sighting of `holder` answering for `addr`: counts against a running probe. Returns whether a
    /// probe took it (then it is not a conflict with a VIP we hold: we do not hold it now).
    pub(super) fn probe_answered(&mut self, addr: IpAddr, holder: [u8; 6]) -> bool {
        if !self.probed_vips().contains(&addr) {
            return false;
        }
        let name = self.cfg.name.clone();
        let Some(p) = self.probe.as_mut() else {
            return false;
        };
        if p.answered_by(addr, holder) {
            warn!(instance = %name, "{addr} is still answered by {}: waiting until it stops before {} it (a frozen or killed master's kernel keeps the address until its lifetime runs out)",
                format_mac(&holder),
                if p.is_claim() { "claiming" } else { "putting back" });
        }
        true
    }

    /// Who keeps the running probe waiting, for `status`.
    pub(super) fn probe_holder(&self) -> Option<String> {
        let (addr, mac) = self.probe.as_ref()?.holder()?;
        Some(format!("{addr} is still answered by {}", format_mac(&mac)))
    }

    /// A probe for a claim ends when the core stops waiting for it (an advert was heard, a fault).
    pub(super) fn drop_stale_probe(&mut self) {
        if self
            .probe
            .as_ref()
            .is_some_and(|p| p.is_claim() && !self.core.probing())
        {
            self.probe = None;
        }
    }

    /// Whether this claim must wait until the master we take over from has let go: a preemption
    /// (of a live master, or of one that went quiet while we waited to preempt it). Not after a
    /// quiet probe (nobody answers: checked already), a priority-0 step-down or an operator's
    /// takeover (planned moves stay make-before-break), nor when no master was ever heard.
    pub(super) fn claim_waits_for_release(&mut self) -> bool {
        !std::mem::take(&mut self.probe_cleared)
            && self.core.override_mode() != Some(vrrp::Override::Takeover)
            && self.core.master_seen().is_some_and(|m| m.priority > 0)
    }

    /// A restore runs: the VIPs are not in the kernel, and a lifetime refresh would add them back.
    pub(super) fn restoring(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| !p.is_claim())
    }

    /// Puts `vips` into the kernel with their finite lifetime and takes the hold from `now` (the
    /// lifetime refresh and the periodic announcement start over); announcements go on while
    /// `serving`. The one way a VIP goes up: a claim, or a restore once nobody else answers.
    pub(super) fn put_up_vips(
        &mut self,
        kernel: &dyn Kernel,
        vips: &[Vip],
        now: Instant,
        serving: bool,
    ) {
        for vip in vips {
            match kernel.add_address(
                self.vip_index(),
                vip.addr,
                vip.prefix_len,
                Some(self.cfg.address_lifetime),
            ) {
                Ok(()) => {
                    info!(instance = %self.cfg.name, "added {vip} to {}", self.vmac.as_ref().map_or(&self.cfg.interface, |v| &v.name))
                }
                Err(err) => error!(instance = %self.cfg.name, "cannot add {vip}: {err:#}"),
            }
        }
        self.hold
            .take(now, self.refresh_period(), &self.cfg.announce);
        self.hold.allow_announcements(serving);
    }

    /// The gratuitous ARP / NA burst for `addrs` (after a claim, a restore, a conflict), off the loop.
    pub(super) fn announce(&self, addrs: Vec<IpAddr>) {
        self.hold.announce(
            self.announcer.clone(),
            addrs,
            &self.cfg.announce,
            &self.cfg.name,
        );
    }

    pub(super) fn vips(&self) -> Vec<String> {
        self.cfg.addresses.iter().map(|v| v.to_string()).collect()
    }

    /// Fold the witness and checks still without a first result into one claim inhibit for the core:
    /// a host must not claim before it knows its service works (or while isolated).
    pub(super) fn reevaluate_inhibit(&mut self, now: Instant) {
        // Only a check whose failure means FAULT holds the claim back; a weighted one adjusts the
        // priority once it reports.
        let inhibit = self
            .witness_inhibit
            .clone()
            .or_else(|| {
                self.cfg
                    .checks
                    .iter()
                    .zip(&self.checks)
                    .find(|(cfg, state)| cfg.weight.is_none() && !state.known)
                    .map(|(cfg, _)| format!("waiting for the first result of check {}", cfg.name))
            })
            .or_else(|| self.group_inhibit.clone());
        if inhibit != self.inhibit_sent {
            self.inhibit_sent = inhibit.clone();
            self.core.handle_event(now, Event::ClaimInhibit(inhibit));
        }
    }

    /// Fold tracked interfaces, checks and a yielded conflict into one fault and one priority for the core.
    pub(super) fn reevaluate(&mut self, now: Instant) {
        let (_, priority) = self.health();
        let fault = self.own_fault().or_else(|| self.group_fault.clone());
        if fault != self.fault_sent {
            self.fault_sent = fault.clone();
            self.core.handle_event(now, Event::Fault(fault));
        }
        if priority != self.priority_sent && self.cfg.priority != 255 {
            let why = if priority == self.cfg.priority {
                format!("back to the configured priority {priority}")
            } else {
                self.weights_note()
                    .unwrap_or_else(|| "health-check weights and track files".to_string())
            };
            let mut rec = EventRecord::new(EventKind::Priority, Some(&self.cfg.name), why);
            rec.previous_priority = Some(self.priority_sent);
            rec.priority = Some(priority);
            self.events.publish(rec);
            self.priority_sent = priority;
            self.core.handle_event(now, Event::SetPriority(priority));
        }
        // Last: lifting the inhibit may claim at once, which must see the fault and priority above.
        self.reevaluate_inhibit(now);
    }

    /// The fault of this instance's own (its interface missing or without an address, tracked
    /// interfaces, checks, a yielded conflict; the link's carrier is the core's), before its group's.
    pub(super) fn own_fault(&self) -> Option<String> {
        let (check_fault, _) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.checks);
        let (track_fault, _) = self.health();
        if self.detached.is_some() {
            return self.detached.clone();
        }
        self.tracked
            .iter()
            .find(|t| !t.up)
            .map(|t| format!("tracked interface {} is down", t.name))
            .or(check_fault)
            .or(track_fault)
            .or_else(|| self.conflicts.yielded.clone())
    }

    /// The track files' fault and the priority the checks and track files give together.
    pub(super) fn health(&self) -> (Option<String>, u8) {
        let checked = health::checked_priority(self.cfg.priority, &self.cfg.checks, &self.checks);
        track_file::evaluate(self.cfg.priority, checked, &self.track_files)
    }

    /// The instance's status, as `floatip status` shows it. `present` is every address the kernel has
    /// on the interface now. `counters.interface_drops` is the daemon's to fill in (its socket's).
    pub fn status(&self, present: &[IpAddr], now: Instant) -> InstanceStatus {
        let effective = self.core.effective_priority();
        let override_mode = self.core.override_mode().and_then(OverrideMode::from_vrrp);
        let why_different =
            if override_mode == Some(OverrideMode::Takeover) {
                Some(format!(
                    "takeover override: advertising {effective} until `floatip auto {}`",
                    self.cfg.name
                ))
            } else if effective == self.cfg.priority {
                None
            } else if effective == 0 {
                Some("stepping down: advertising 0 so a backup takes over at once".to_string())
            } else {
                Some(self.weights_note().unwrap_or_else(|| {
                    "changed by health-check weights and track files".to_string()
                }))
            };
        let master = if self.core.state() == State::Master {
            Some(MasterStatus {
                address: self.primary,
                is_self: true,
                priority: effective,
                interval_ms: millis(self.core.current_interval()),
                last_advert_age_ms: None,
            })
        } else {
            self.core.master_seen().map(|m| MasterStatus {
                address: m.address,
                is_self: false,
                priority: m.priority,
                interval_ms: millis(m.interval),
                last_advert_age_ms: Some(age_ms(now, m.last_heard)),
            })
        };
        let mut speakers: Vec<SpeakerStatus> = self
            .speakers
            .iter()
            .filter(|(addr, _)| **addr != self.primary)
            .map(|(addr, s)| SpeakerStatus {
                address: *addr,
                priority: s.priority,
                interval_ms: u64::from(s.interval_cs) * 10,
                addresses: s.addresses.len(),
                advertised: s.addresses.to_vec(),
                last_heard_age_ms: age_ms(now, s.last_heard),
            })
            .collect();
        speakers.sort_by_key(|s| s.address);
        let last = self.history.back();
        InstanceStatus {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            vrid: self.cfg.vrid,
            version: self.core.config().version.number(),
            version_why: self.version_why.clone(),
            state: self.core.state().as_str().to_string(),
            since: last.map(|r| unix_secs(r.at)),
            // Waiting for the interface: what is missing now (the interface, then its address).
            reason: match &self.detached {
                Some(why) if self.core.state() == State::Fault => Some(format!("FAULT: {why}")),
                _ => last.map(|r| r.reason.clone()),
            },
            priority: PriorityStatus {
                configured: self.cfg.priority,
                effective,
                why_different,
            },
            vips: self
                .cfg
                .addresses
                .iter()
                .map(|v| VipStatus {
                    address: v.to_string(),
                    present_in_kernel: present.contains(&v.addr),
                })
                .collect(),
            master,
            speakers,
            counters: CountersStatus {
                adverts_sent: self.counters.adverts_sent,
                adverts_received: self.counters.adverts_received,
                send_errors: self.counters.send_errors,
                drops: self
                    .counters
                    .drops
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                vip_restored: self.counters.vip_restored,
                transitions: self
                    .counters
                    .transitions
                    .iter()
                    .map(|((from, to), n)| (format!("{from}->{to}"), *n))
                    .collect(),
                conflicts: self.conflicts.total,
                interface_drops: BTreeMap::new(),
            },
            override_mode,
            claim_inhibit: match self.probe_holder() {
                Some(holder) if self.core.probing() => Some(format!(
                    "not claiming yet: {holder}; claiming once nobody answers"
                )),
                _ => self.core.not_claiming(),
            },
            conflicts: self.conflicts.status(),
            clashes: self.clashes.status(now),
            checks: self.checks.iter().map(CheckState::status).collect(),
            auth: self.cfg.auth.describe(),
            track_files: self
                .track_files
                .iter()
                .map(|f| {
                    let offset = match f.effect() {
                        track_file::Effect::Offset(o) => Some(o),
                        track_file::Effect::Fault => None,
                    };
                    TrackFileStatus {
                        name: f.name.clone(),
                        path: f.path.display().to_string(),
                        weight: f.weight,
                        value: f.value,
                        offset,
                        fault: offset.is_none(),
                        note: f.note.clone(),
                    }
                })
                .collect(),
            history: self
                .history
                .iter()
                .map(|r| HistoryEntry {
                    at: unix_secs(r.at),
                    from: r.from.as_str().to_string(),
                    to: r.to.as_str().to_string(),
                    reason: r.reason.clone(),
                })
                .collect(),
            etcd: None,
        }
    }

    /// "check smb failing: weight -60": why weighted checks moved the priority, when they did.
    fn weights_note(&self) -> Option<String> {
        let (_, effective_base) = self.health();
        (effective_base != self.cfg.priority).then(|| {
            let mut failing: Vec<String> = self
                .cfg
                .checks
                .iter()
                .zip(&self.checks)
                .filter(|(c, s)| c.weight.is_some() && !s.healthy)
                .map(|(c, _)| {
                    format!(
                        "check {} failing: weight {:+}",
                        c.name,
                        c.weight.unwrap_or(0)
                    )
                })
                .collect();
            failing.extend(
                self.track_files
                    .iter()
                    .filter(|f| f.effect() != track_file::Effect::Offset(0))
                    .map(|f| f.describe()),
            );
            failing.join("; ")
        })
    }

    /// Keeps a transition for `status`: the last [`HISTORY_MAX`], oldest first.
    pub(super) fn record(&mut self, record: Record) {
        if self.history.len() == HISTORY_MAX {
            self.history.pop_front();
        }
        self.history.push_back(record);
    }
}
