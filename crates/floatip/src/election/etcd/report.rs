//! An election's health over its members (their checks, their interfaces' carrier and tracked
//! interfaces: a fault withdraws the candidacy and is the FAULT state; the checks' weights set the
//! priority in it) and what it hands `floatip status`, the hooks and `floatip events` (transitions,
//! priorities), for each member.

use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::handoff::priority_under;
use super::Elector;
use crate::control::events::{EventKind, EventRecord};
use crate::control::status::OverrideMode;
use crate::control::status::{EtcdCandidate, EtcdStatus};
use crate::election::lease;

impl Elector {
    /// The state while we do not hold the VIPs: FAULT while we may not, else BACKUP.
    pub(super) fn idle_state(&self) -> &'static str {
        if self.fault.is_some() {
            "FAULT"
        } else {
            "BACKUP"
        }
    }

    /// Records whether we hold the VIPs; a change is a transition of every member.
    pub(super) fn set_holding(&mut self, on: bool, reason: String) {
        self.holding.store(on, Ordering::SeqCst);
        if !on {
            for m in &mut self.members {
                m.reset_sightings();
            }
        }
        let to = if on { "MASTER" } else { self.idle_state() };
        self.transition(to, &reason);
    }

    /// Every member to `to` (history, hook, `floatip events`), where it is a change.
    pub(super) fn transition(&mut self, to: &'static str, reason: &str) {
        for m in &mut self.members {
            m.transition(to, reason, &self.events);
        }
    }

    /// The priority our candidacy carries now: the lowest of the members' (each after its checks'
    /// weights), under the override.
    pub(super) fn reassess_priority(&mut self) -> u8 {
        let lowest = self
            .members
            .iter_mut()
            .map(|m| m.checks().1)
            .min()
            .unwrap_or(0);
        priority_under(self.override_mode, lowest)
    }

    /// Takes the checks' reports and looks at the links: a fault withdraws our candidacy (an owner
    /// then hands over, see `handoff`) and is the FAULT state; a new priority is put in etcd.
    pub(super) async fn apply_checks(&mut self) {
        let mut fault = None;
        let grouped = self.members.len() > 1;
        for m in &mut self.members {
            let (check_fault, _) = m.checks();
            let own = m.link_fault(&self.host).await.or(check_fault);
            if fault.is_none() {
                // A member's fault is the group's: it names the member.
                fault = own.map(|f| {
                    if grouped {
                        format!("{}: {f}", m.cfg.name)
                    } else {
                        f
                    }
                });
            }
        }
        let priority = self.reassess_priority();
        if priority != self.priority {
            info!(instance = %self.name, "priority {} -> {priority} in etcd", self.priority);
            let why = if self.override_mode == vrrp::Override::Takeover {
                "takeover"
            } else {
                "health-check weights"
            };
            for m in &self.members {
                let mut rec = EventRecord::new(EventKind::Priority, Some(&m.cfg.name), why);
                rec.previous_priority = Some(self.priority);
                rec.priority = Some(priority);
                self.events.publish(rec);
            }
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
                warn!(instance = %self.name, "withdrawing our candidacy: {why}");
                self.withdraw_candidacy().await;
                if !self.holding() {
                    self.transition("FAULT", &format!("FAULT: {why}"));
                }
            }
            (Some(was), None) => {
                info!(instance = %self.name, "a candidate again, priority {} (was: {was})", self.priority);
                if let Some(l) = self.lease.as_mut() {
                    l.candidate = false;
                }
                if !self.holding() {
                    self.transition(
                        "BACKUP",
                        &format!("BACKUP: a candidate again ({was} no more)"),
                    );
                }
            }
            (None, None) => {}
        }
    }

    /// Hands `floatip status` what each member looks like now.
    pub(super) async fn publish(&self) {
        let mut candidates = self.view.candidates.clone();
        candidates.sort_by_key(|c| std::cmp::Reverse((c.priority, c.address)));
        let now = lease::now();
        let etcd = EtcdStatus {
            endpoint: self.etcd.endpoint().to_string(),
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
        let inhibit = self
            .fault
            .as_ref()
            .map(|f| format!("not a candidate in etcd: {f}"))
            .or_else(|| {
                (self.override_mode == vrrp::Override::Release).then(|| {
                    format!(
                        "not a candidate in etcd: released (until `floatip auto {}`)",
                        self.name
                    )
                })
            })
            .or_else(|| self.claim_inhibit.clone());
        let mut all = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let mut st = m.status(&self.host, etcd.clone()).await;
            st.priority.effective = self.priority;
            if self.priority != m.cfg.priority {
                st.priority.why_different = Some(
                    match self.override_mode {
                        vrrp::Override::Takeover => "takeover",
                        _ if self.members.len() > 1 => "the group's lowest (weighted checks)",
                        _ => "weighted checks",
                    }
                    .into(),
                );
            }
            st.override_mode = OverrideMode::from_vrrp(self.override_mode);
            st.claim_inhibit = inhibit.clone();
            all.push(st);
        }
        self.status.send_replace(all);
    }
}
