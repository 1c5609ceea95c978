//! An etcd instance's health checks (a failing one withdraws the candidacy, a weighted one changes
//! its priority) and what it hands `floatip status`, its hooks and `floatip events` (transitions).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::{bounded, Elector};
use crate::control::events::{EventKind, EventRecord};
use crate::control::status::CheckStatus;
use crate::election::lease;
use crate::election::status::{self, EtcdCandidate, EtcdStatus};
use crate::health;

impl Elector {
    /// Records whether we hold the VIPs; a change is a transition (hook, event, history).
    pub(super) fn set_holding(&mut self, on: bool, reason: String) {
        self.holding.store(on, Ordering::SeqCst);
        let from = self.tracker.state();
        let to = if on { "MASTER" } else { "BACKUP" };
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

    /// Takes the checks' reports: a failing check withdraws our candidacy (and hands the VIPs over),
    /// a weighted one changes the priority our candidacy carries; recovery puts it back.
    pub(super) async fn apply_checks(&mut self) {
        let mut changed = false;
        while let Ok(r) = self.check_reports.try_recv() {
            if let Some(s) = self.check_states.get_mut(r.check) {
                s.apply(&r);
            }
            changed |= r.changed;
        }
        if !changed {
            return;
        }
        let (fault, priority) =
            health::evaluate_states(self.cfg.priority, &self.cfg.checks, &self.check_states);
        if fault == self.fault && priority == self.priority {
            return;
        }
        self.fault = fault;
        self.priority = priority;
        if let Some(l) = self.lease.as_mut() {
            // Put again (new priority) or, while faulted, not at all.
            l.candidate = false;
        }
        let Some(why) = self.fault.clone() else {
            info!(instance = %self.cfg.name, "a candidate again, priority {}", self.priority);
            return;
        };
        info!(instance = %self.cfg.name, "withdrawing our candidacy: {why}");
        let key = format!("{}candidates/{}", self.dir, self.me);
        if let Err(err) = bounded(self.client().delete(key, None)).await {
            warn!(instance = %self.cfg.name, "cannot withdraw our candidacy: {err:#}");
            self.next_endpoint(&format!("{err:#}"));
        }
        if self.holding() {
            let id = self.lease.as_ref().map_or(0, |l| l.id);
            self.hand_over(id, format!("BACKUP: {why}")).await;
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
        let mut candidates: Vec<_> = self.view.candidates.clone();
        candidates.sort_by(|a, b| b.cmp(a));
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
            owner: self.view.owner.as_ref().map(|(v, _)| v.clone()),
            candidates: candidates
                .into_iter()
                .map(|(priority, address)| EtcdCandidate { address, priority })
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
            st.priority.why_different = Some("weighted checks".into());
        }
        st.claim_inhibit = self
            .fault
            .as_ref()
            .map(|f| format!("not a candidate in etcd: {f}"));
        st.checks = checks;
        status::publish(st);
    }
}
