//! An etcd instance's requests to etcd: which member a request goes to ([`Cluster`]: the member in
//! use until it fails, then the next one; a failed member rests, longer each time, so nothing loops
//! on a dead member), the lease (grant, keep-alive, revoke; a lease that has ended in etcd is
//! replaced by a new one), the candidacy, the read of the instance's keys and the transactions on
//! the owner and handoff keys. Every request is bounded by the cluster's timeout (a sixth of the lease TTL); the caller checks
//! its deadline around every one.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::decide::{Candidate, CandidateRecord, Handoff, Owner, View};
use super::wire::{Answer, Compare, Failure, Op, Request};
use super::{log_time, Elector, Lease};
use crate::election::lease::{self, LeaseClock};
use crate::text::duration;
use futures::future::BoxFuture;

/// The first rest of a member that failed; each failure in a row doubles it, up to [`MAX_REST`].
/// Short enough that a cluster that comes back (a resumed member, quorum regained) is used again
/// within a second; a member that keeps failing costs at most one request a second.
const FIRST_REST: Duration = Duration::from_millis(100);
const MAX_REST: Duration = Duration::from_secs(1);
/// After etcd refused a request (every member would answer the same), requests wait this long,
/// doubling up to [`MAX_REFUSED_WAIT`] while etcd keeps refusing.
const FIRST_REFUSED_WAIT: Duration = Duration::from_secs(1);
const MAX_REFUSED_WAIT: Duration = Duration::from_secs(30);

/// One member as the cluster reaches it: over etcd's HTTP gateway (`gateway::Endpoint`), or the
/// tests' in-memory etcd.
pub(super) trait Transport: Send + Sync {
    /// The member's URL, for people.
    fn url(&self) -> &str;
    /// One request, answered within `timeout` or failed.
    fn call<'a>(
        &'a mut self,
        req: &'a Request,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Answer, Failure>>;
}

/// The members of `[etcd] endpoints`, the one in use, and which ones rest after failing.
pub(super) struct Cluster {
    members: Vec<Member>,
    current: usize,
    /// How long one request may take: a sixth of the lease TTL (at most 1 s, at least 200 ms), so
    /// that a member that hangs costs a renewal at most that, and the next member still renews
    /// the lease well within the margin that keeps the VIP.
    timeout: Duration,
    /// etcd refused a request: none before this (`lease::now`), and the wait after the next refusal.
    refused: Option<(Duration, Duration, String)>,
}

struct Member {
    endpoint: Box<dyn Transport>,
    /// Not used before this (`lease::now`) after failing; the next rest; why it failed.
    rest_until: Duration,
    rest: Duration,
    failing: Option<String>,
}

impl Cluster {
    pub fn new(endpoints: Vec<Box<dyn Transport>>, ttl: Duration) -> Cluster {
        Cluster {
            members: endpoints
                .into_iter()
                .map(|endpoint| Member {
                    endpoint,
                    rest_until: Duration::ZERO,
                    rest: FIRST_REST,
                    failing: None,
                })
                .collect(),
            current: 0,
            timeout: (ttl / 6).clamp(Duration::from_millis(200), Duration::from_secs(1)),
            refused: None,
        }
    }

    /// The member requests go to now, for `status`.
    pub fn endpoint(&self) -> &str {
        self.members[self.current].endpoint.url()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// One request: to the member in use, or, while it rests, the next one that does not. A member
    /// that fails rests and the next request goes to the next member; a refusal holds every request
    /// back for a while. `instance` names the election in the log.
    pub async fn call(&mut self, instance: &str, req: &Request) -> Result<Answer, Failure> {
        let now = lease::now();
        if let Some((until, _, why)) = &self.refused {
            if now < *until {
                return Err(Failure::Refused(why.clone()));
            }
        }
        let n = self.members.len();
        let Some(pick) = (0..n)
            .map(|i| (self.current + i) % n)
            .find(|&i| self.members[i].rest_until <= now)
        else {
            let next = self
                .members
                .iter()
                .map(|m| m.rest_until)
                .min()
                .unwrap_or(now);
            return Err(Failure::Member(format!(
                "every member failed just now; the next try in {}",
                duration(next.saturating_sub(now))
            )));
        };
        if pick != self.current {
            info!(
                instance,
                "etcd: using {}",
                self.members[pick].endpoint.url()
            );
            self.current = pick;
        }
        let timeout = self.timeout;
        let member = &mut self.members[pick];
        let result = member.endpoint.call(req, timeout).await;
        match &result {
            Ok(_) => {
                if let Some(why) = member.failing.take() {
                    info!(
                        instance,
                        "etcd member {} answers again (it failed: {why})",
                        member.endpoint.url()
                    );
                }
                member.rest = FIRST_REST;
                self.refused = None;
            }
            Err(Failure::Member(why)) => {
                if member.failing.is_none() {
                    warn!(
                        instance,
                        "etcd member {} failed: {why}",
                        member.endpoint.url()
                    );
                }
                member.failing = Some(why.clone());
                member.rest_until = lease::now() + member.rest;
                member.rest = (member.rest * 2).min(MAX_REST);
                self.current = (pick + 1) % n;
            }
            Err(Failure::Refused(why)) => {
                let wait = self.refused.as_ref().map_or(FIRST_REFUSED_WAIT, |r| r.1);
                if self.refused.as_ref().is_none_or(|r| &r.2 != why) {
                    warn!(
                        instance,
                        "etcd refused a request: {why}; trying again in {}",
                        duration(wait)
                    );
                }
                self.refused = Some((
                    lease::now() + wait,
                    (wait * 2).min(MAX_REFUSED_WAIT),
                    why.clone(),
                ));
            }
            Err(Failure::LeaseGone) => {}
        }
        result
    }
}

impl Elector {
    /// A transaction: whether its conditions held. A failure says `what` in the log.
    pub(super) async fn txn(
        &mut self,
        when: Vec<Compare>,
        then: Vec<Op>,
        what: &str,
    ) -> Option<bool> {
        match self
            .etcd
            .call(&self.name, &Request::Txn { when, then })
            .await
        {
            Ok(Answer::Txn(held)) => Some(held),
            Ok(other) => {
                warn!(instance = %self.name, "cannot {what}: etcd answered {other:?}");
                None
            }
            Err(err) => {
                self.failed(&err, what);
                None
            }
        }
    }

    /// A request that failed: a lease that has ended is replaced; the rest is logged (a member's
    /// failure is logged by the cluster once, when it starts failing).
    fn failed(&mut self, err: &Failure, what: &str) {
        match err {
            Failure::LeaseGone => self.lease_gone = true,
            Failure::Member(_) => {}
            Failure::Refused(_) => warn!(instance = %self.name, "cannot {what}: {err}"),
        }
    }

    /// Creates the owner key under our lease, if nobody holds it.
    pub(super) async fn claim_free_key(&mut self, lease: i64) -> Option<bool> {
        let key = self.owner_key.clone();
        let when = vec![Compare::CreateRevision {
            key: key.clone(),
            is: 0,
        }];
        let then = vec![Op::Put {
            key,
            value: self.node.clone(),
            lease,
        }];
        self.txn(when, then, "claim the owner key").await
    }

    /// Names `to` our successor (the handoff key, under our lease), if the owner key is still ours.
    pub(super) async fn name_successor(
        &mut self,
        lease: i64,
        to: std::net::IpAddr,
    ) -> Option<bool> {
        let when = vec![Compare::Lease {
            key: self.owner_key.clone(),
            is: lease,
        }];
        let then = vec![Op::Put {
            key: self.handoff_key.clone(),
            value: Handoff { to, taken: false }.to_json(),
            lease,
        }];
        self.txn(when, then, "name a successor").await
    }

    /// Takes the owner key over from the owner's lease `from`, if it still names us: the owner key
    /// and the handoff key (now "taken") go under our lease in one transaction.
    pub(super) async fn take_over_key(&mut self, from: i64, lease: i64) -> Option<bool> {
        let named = Handoff {
            to: self.me,
            taken: false,
        };
        let taken = Handoff {
            to: self.me,
            taken: true,
        };
        let when = vec![
            Compare::Lease {
                key: self.owner_key.clone(),
                is: from,
            },
            Compare::Value {
                key: self.handoff_key.clone(),
                is: named.to_json(),
            },
        ];
        let then = vec![
            Op::Put {
                key: self.owner_key.clone(),
                value: self.node.clone(),
                lease,
            },
            Op::Put {
                key: self.handoff_key.clone(),
                value: taken.to_json(),
                lease,
            },
        ];
        self.txn(when, then, "take the owner key over").await
    }

    /// Deletes the handoff key if it still reads `h` (a handoff that ended or was abandoned).
    pub(super) async fn clear_handoff(&mut self, h: Handoff) -> Option<bool> {
        let when = vec![Compare::Value {
            key: self.handoff_key.clone(),
            is: h.to_json(),
        }];
        let then = vec![Op::Delete {
            key: self.handoff_key.clone(),
        }];
        self.txn(when, then, "clear the handoff key").await
    }

    /// Deletes the owner key if it is still under our lease (the next candidate claims it).
    pub(super) async fn free_key(&mut self, lease: i64) -> Option<bool> {
        let when = vec![Compare::Lease {
            key: self.owner_key.clone(),
            is: lease,
        }];
        let then = vec![Op::Delete {
            key: self.owner_key.clone(),
        }];
        self.txn(when, then, "free the owner key").await
    }

    fn candidate_key(&self) -> String {
        format!("{}candidates/{}", self.dir, self.me)
    }

    /// Removes our candidacy (a failing check, `release`); it is put back by [`Self::keep_lease`].
    pub(super) async fn withdraw_candidacy(&mut self) {
        if let Some(l) = self.lease.as_mut() {
            l.candidate = false;
        }
        let req = Request::Delete {
            key: self.candidate_key(),
        };
        if let Err(err) = self.etcd.call(&self.name, &req).await {
            self.failed(&err, "withdraw our candidacy");
        }
    }

    /// Grants a lease when we have none (or ours has ended in etcd), renews it when due, puts our
    /// candidacy under it while we are eligible. Returns whether it was renewed (or granted) now.
    pub(super) async fn keep_lease(&mut self, now: Duration) -> bool {
        if self.lease_gone {
            self.start_over().await;
        }
        let renewed = if self.lease.is_none() {
            self.grant().await
        } else if self.lease.as_ref().is_some_and(|l| now >= l.next_renew) {
            self.renew().await
        } else {
            false
        };
        let Some((id, false)) = self.lease.as_ref().map(|l| (l.id, l.candidate)) else {
            return renewed;
        };
        if !self.eligible() {
            return renewed;
        }
        let record = CandidateRecord {
            priority: self.priority,
            preempt: self.preempt || self.override_mode == vrrp::Override::Takeover,
            node: self.node.clone(),
        };
        let req = Request::Put {
            key: self.candidate_key(),
            value: serde_json::to_string(&record).unwrap_or_default(),
            lease: id,
        };
        match self.etcd.call(&self.name, &req).await {
            Ok(_) => {
                if let Some(l) = self.lease.as_mut() {
                    l.candidate = true;
                }
            }
            Err(err) => self.failed(&err, "register our candidacy"),
        }
        renewed
    }

    /// Our lease has ended in etcd (it expired while we could not renew it, or it was revoked):
    /// whatever it held is gone, so the VIPs go too, and the next grant makes us a candidate again.
    async fn start_over(&mut self) {
        self.lease_gone = false;
        let Some(l) = self.lease.take() else {
            return;
        };
        warn!(instance = %self.name, "our lease {:x} has ended in etcd; starting over with a new one", l.id);
        self.handing = None;
        if self.holding() {
            let to = self.idle_state();
            self.set_holding(false, format!("{to}: our lease ended in etcd"));
            self.remove_vips().await;
        }
    }

    async fn grant(&mut self) -> bool {
        let sent = lease::now();
        let req = Request::Grant {
            ttl_s: self.ttl.as_secs() as i64,
        };
        match self.etcd.call(&self.name, &req).await {
            Ok(Answer::Granted { lease: id, ttl_s }) => match LeaseClock::renewed(sent, ttl_s) {
                Some(clock) => {
                    info!(instance = %self.name, "lease {id:x} granted ({ttl_s}s)");
                    self.lease = Some(Lease {
                        id,
                        clock,
                        next_renew: sent + clock.renew_every(),
                        candidate: false,
                    });
                    self.renewal_ok();
                    true
                }
                None => {
                    warn!(instance = %self.name, "etcd granted a lease of {ttl_s}s; asking again");
                    false
                }
            },
            Ok(other) => {
                warn!(instance = %self.name, "cannot get a lease: etcd answered {other:?}");
                false
            }
            Err(err) => {
                self.renewal_failed(&err);
                false
            }
        }
    }

    /// One keep-alive round trip on the lease, trying each member once while they fail and the
    /// deadline allows.
    async fn renew(&mut self) -> bool {
        let Some(l) = self.lease.as_mut() else {
            return false;
        };
        l.next_renew = lease::now() + l.clock.renew_every();
        let id = l.id;
        let mut last_err = None;
        for _ in 0..self.etcd.len() {
            // Past the deadline the VIP goes first; the next tick tries again.
            if self.holding()
                && self
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.clock.expired(lease::now()))
            {
                break;
            }
            let sent = lease::now();
            match self
                .etcd
                .call(&self.name, &Request::KeepAlive { lease: id })
                .await
            {
                Ok(Answer::Alive { ttl_s }) => {
                    let Some(l) = self.lease.as_mut() else {
                        return false;
                    };
                    if l.clock.renew(sent, ttl_s) {
                        self.renewal_ok();
                        return true;
                    }
                    // TTL 0: etcd no longer has the lease.
                    self.lease_gone = true;
                    self.start_over().await;
                    return false;
                }
                Ok(other) => {
                    warn!(instance = %self.name, "cannot renew the lease: etcd answered {other:?}");
                    return false;
                }
                Err(Failure::LeaseGone) => {
                    self.lease_gone = true;
                    self.start_over().await;
                    return false;
                }
                Err(err @ Failure::Refused(_)) => {
                    last_err = Some(err);
                    break;
                }
                Err(err) => last_err = Some(err),
            }
        }
        if let Some(err) = last_err {
            self.renewal_failed(&err);
        }
        false
    }

    fn renewal_ok(&mut self) {
        if let Some(since) = self.failing_since.take() {
            info!(instance = %self.name, "etcd reachable again (unreachable since {})", log_time(since));
        }
    }

    fn renewal_failed(&mut self, err: &Failure) {
        if self.failing_since.is_none() {
            self.failing_since = Some(SystemTime::now());
            warn!(instance = %self.name, "etcd unreachable: {err}");
        }
    }

    /// Revokes our lease (with the owner key and our candidacy), trying each member once.
    pub(super) async fn revoke(&mut self) {
        let Some(l) = self.lease.take() else {
            return;
        };
        // Each member once: a slow or dead member should not cost the successor the whole TTL.
        for _ in 0..self.etcd.len() {
            match self
                .etcd
                .call(&self.name, &Request::Revoke { lease: l.id })
                .await
            {
                Ok(_) => {
                    info!(instance = %self.name, "stopping: lease {:x} revoked", l.id);
                    return;
                }
                // An earlier attempt that timed out may have revoked it after all.
                Err(Failure::LeaseGone) => {
                    info!(instance = %self.name, "stopping: lease {:x} revoked (gone already)", l.id);
                    return;
                }
                Err(Failure::Refused(_)) => break,
                Err(Failure::Member(_)) => {}
            }
        }
        warn!(instance = %self.name, "stopping: cannot revoke lease {:x}; it ends by itself", l.id);
    }

    /// Reads the owner key, the candidates and the handoff key.
    pub(super) async fn read(&mut self) -> Option<View> {
        let req = Request::Prefix {
            prefix: self.dir.clone(),
        };
        let kvs = match self.etcd.call(&self.name, &req).await {
            Ok(Answer::Keys(kvs)) => kvs,
            Ok(_) => return None,
            Err(err) => {
                self.failed(&err, "read the instance's keys");
                return None;
            }
        };
        let mut view = View::default();
        let cand_prefix = format!("{}candidates/", self.dir);
        for kv in kvs {
            if kv.key == self.owner_key {
                view.owner = Some(Owner {
                    node: kv.value,
                    lease: kv.lease,
                });
            } else if kv.key == self.handoff_key {
                view.handoff = serde_json::from_str(&kv.value).ok();
            } else if let Some(addr) = kv.key.strip_prefix(&cand_prefix) {
                let record = serde_json::from_str::<CandidateRecord>(&kv.value);
                if let (Ok(r), Ok(address)) = (record, addr.parse()) {
                    view.candidates.push(Candidate {
                        priority: r.priority,
                        address,
                        preempt: r.preempt,
                    });
                }
            }
        }
        Some(view)
    }
}
