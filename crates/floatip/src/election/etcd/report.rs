//! An etcd instance's health (its checks, its interface's carrier and the tracked interfaces: a
//! fault withdraws the candidacy and is the FAULT state, a weighted check changes the priority in
//! it) and what it hands `floatip status`, its hooks and `floatip events` (transitions, priorities).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::handoff::priority_under;
use super::Elector;
use crate::control::events::{EventKind, EventRecord};
use crate::control::status::{CheckStatus, ConflictStatus, OverrideMode};
use crate::control::{age_ms, format_mac};
use crate::election::lease;
use crate::election::status::{self, EtcdCandidate, EtcdStatus};
use crate::health;

impl Elector {
    /// The state while we do not hold the VIPs: FAULT while we may not, else BACKUP.
    pub(super) fn idle_state(&self) -> &'static str {
        if self.fault.is_some() {
            "FAULT"
        } else {
            "BACKUP"
        }
    }

    /// Records whether we hold the VIPs; a change is a transition (hook, event, history).
    pub(super) fn set_holding(&mut self, on: bool, reason: String) {
        self.holding.store(on, Ordering::SeqCst);
        if !on {
            self.conflicts.reset_sightings();
        }
        let to = if on { "MASTER" } else { self.idle_state() };
        self.transition(to, reason);
    }

    fn transition(&mut self, to: &'static str, reason: String) {
        let from = self.tracker.state();
        if self.tracker.transition(to, reason.clone()) {
            self.run_hook(to, from, &reason);
        }
    }

    /// The hook of a transition (none at the start, as before), then its `floatip events` record.
    pub(super) fn run_hook(&self, to: &str, from: &str, reason: &str) {
        if let Some(h) = &self.hooks {
            let addrs: Vec<String> = self.cfg.addresses.iter().map(|v| v.to_string()).collect();
            h.transition(to, from, reason, &addrs);
        }
        self.publish_transition(to, from, reason);
    }

    pub(super) fn publish_transition(&self, to: &str, from: &str, reason: &str) {
        let mut rec = EventRecord::new(EventKind::Transition, Some(&self.cfg.name), reason);
        rec.from = Some(from.to_string());
        rec.to = Some(to.to_string());
        self.events.publish(rec);
    }

    /// The priority the checks' weights and the override give now.
    pub(super) fn reassess_priority(&mut self) -> u8 {
        let (_, p) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.check_states);
        priority_under(self.override_mode, p)
    }

    /// The interface's carrier and the tracked interfaces: the first one down, as a fault.
    async fn link_fault(&self) -> Option<String> {
        match self.netlink.link_by_index(self.ifindex).await {
            Ok(l) if !l.up => return Some(format!("{} is down (no carrier)", self.cfg.interface)),
            Ok(_) => {}
            Err(err) => return Some(format!("{}: {err:#}", self.cfg.interface)),
        }
        for name in &self.cfg.track_interfaces {
            match self.netlink.find_link(name).await {
                Ok(Some(l)) if l.up => {}
                _ => return Some(format!("tracked interface {name} is down")),
            }
        }
        None
    }

    /// Takes the checks' reports and looks at the links: a fault withdraws our candidacy (an owner
    /// then hands over, see `handoff`) and is the FAULT state; a new priority is put in etcd.
    pub(super) async fn apply_checks(&mut self) {
        while let Ok(r) = self.check_reports.try_recv() {
            if let Some(s) = self.check_states.get_mut(r.check) {
                s.apply(&r);
            }
        }
        let (check_fault, _) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.check_states);
        let fault = self.link_fault().await.or(check_fault);
        let priority = self.reassess_priority();
        if priority != self.priority {
            info!(instance = %self.cfg.name, "priority {} -> {priority} in etcd", self.priority);
            let why = if self.override_mode == vrrp::Override::Takeover {
                "takeover".to_string()
            } else {
                "health-check weights".to_string()
            };
            let mut rec = EventRecord::new(EventKind::Priority, Some(&self.cfg.name), why);
            rec.previous_priority = Some(self.priority);
            rec.priority = Some(priority);
            self.events.publish(rec);
            self.priority = priority;
            if let Some(l) = self.lease.as_mut() {
                l.candidate = false;
            }
        }
        if fault == self.fault {
            return;
        }
        let was = std::mem::replace(&mut self.fault, fault.clone());
        match (was, fault) {
            (_, Some(why)) => {
                warn!(instance = %self.cfg.name, "withdrawing our candidacy: {why}");
                self.withdraw_candidacy().await;
                if !self.holding() {
                    self.transition("FAULT", format!("FAULT: {why}"));
                }
            }
            (Some(was), None) => {
                info!(instance = %self.cfg.name, "a candidate again, priority {} (was: {was})", self.priority);
                if let Some(l) = self.lease.as_mut() {
                    l.candidate = false;
                }
                if !self.holding() {
                    self.transition(
                        "BACKUP",
                        format!("BACKUP: a candidate again ({was} no more)"),
                    );
                }
            }
            (None, None) => {}
        }
    }

    /// Hands `floatip status` what this instance looks like now.
    pub(super) async fn publish(&self) {
        let present: Vec<IpAddr> = self
            .netlink
            .addresses(self.ifindex)
            .await
            .map(|a| a.into_iter().map(|(ip, _)| ip).collect())
            .unwrap_or_default();
        let mut candidates = self.view.candidates.clone();
        candidates.sort_by_key(|c| std::cmp::Reverse((c.priority, c.address)));
        let now = lease::now();
        let etcd = EtcdStatus {
            endpoint: self.clients[self.current].0.clone(),
            lease: self.lease.as_ref().map(|l| format!("{:x}", l.id)),
            lease_ttl_s: self
                .lease
                .as_ref()
                .map_or(self.ttl, |l| l.clock.ttl())
                .as_secs(),
            lease_remaining_ms: self
                .lease
                .as_ref()
                .map(|l| l.clock.remaining(now).as_millis() as u64),
            owner: self.view.owner.as_ref().map(|o| o.node.clone()),
            candidates: candidates
                .into_iter()
                .map(|c| EtcdCandidate {
                    address: c.address,
                    priority: c.priority,
                })
                .collect(),
            unreachable_since: self.failing_since.map(crate::control::status::unix_secs),
            released_at: self.released_at.map(crate::control::status::unix_secs),
        };
        let checks = self
            .check_states
            .iter()
            .map(|s| CheckStatus {
                name: s.name.clone(),
                healthy: s.healthy,
                latency_ms: s.latency.map(|d| d.as_secs_f64() * 1000.0),
                last_error: s.last_error.clone(),
            })
            .collect();
        let mut st = self.tracker.status(&self.cfg, &present, etcd);
        st.priority.effective = self.priority;
        if self.priority != self.cfg.priority {
            st.priority.why_different = Some(
                if self.override_mode == vrrp::Override::Takeover {
                    "takeover"
                } else {
                    "weighted checks"
                }
                .into(),
            );
        }
        st.override_mode = OverrideMode::from_vrrp(self.override_mode);
        st.claim_inhibit = self
            .fault
            .as_ref()
            .map(|f| format!("not a candidate in etcd: {f}"))
            .or_else(|| {
                (self.override_mode == vrrp::Override::Release).then(|| {
                    format!(
                        "not a candidate in etcd: released (until `floatip auto {}`)",
                        self.cfg.name
                    )
                })
            })
            .or_else(|| self.claim_inhibit.clone());
        let at = std::time::Instant::now();
        st.conflicts = self
            .conflicts
            .sightings
            .iter()
            .map(|s| ConflictStatus {
                address: s.addr,
                mac: format_mac(&s.mac),
                last_seen_age_ms: age_ms(at, s.last_seen),
            })
            .collect();
        st.counters.conflicts = self.conflicts.total;
        st.checks = checks;
        status::publish(st);
    }
}
