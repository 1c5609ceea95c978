//! An etcd instance's requests to etcd: the client per member (a failed request moves to the next
//! member), the lease (grant, keep-alive, revoke), the candidacy, the read of the instance's keys and
//! the transactions on the owner and handoff keys. Each request is bounded by [`REQUEST_TIMEOUT`];
//! the caller checks its deadline around every one.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp,
};
use tracing::{info, warn};

use super::decide::{Candidate, CandidateRecord, Handoff, Owner, View};
use super::{unix, Elector, Lease};
use crate::config::EtcdConfig;
use crate::election::lease::{self, LeaseClock};

/// The longest any one etcd request may take before it counts as failed.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// A client for one member (one client per member, so that a request that failed goes to the next
/// member rather than wherever a balancer sends it); it connects lazily, so an unreachable member is
/// not an error here.
pub(super) async fn connect(etcd: &EtcdConfig, endpoint: &str) -> Result<Client> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_require_leader(true);
    if etcd.ca_file.is_some() || etcd.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &etcd.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("[etcd] ca_file: cannot read {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&etcd.cert_file, &etcd.key_file) {
            let c = std::fs::read(cert)
                .with_context(|| format!("[etcd] cert_file: cannot read {}", cert.display()))?;
            let k = std::fs::read(key)
                .with_context(|| format!("[etcd] key_file: cannot read {}", key.display()))?;
            tls = tls.identity(Identity::from_pem(c, k));
        }
        opts = opts.with_tls(tls);
    }
    Client::connect([endpoint], Some(opts))
        .await
        .with_context(|| format!("cannot set up the etcd client for {endpoint}"))
}

/// Runs `f` with [`REQUEST_TIMEOUT`]; a timeout is an error like any other.
async fn bounded<T>(
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(anyhow::Error::from),
        Err(_) => anyhow::bail!("no answer within {REQUEST_TIMEOUT:?}"),
    }
}

impl Elector {
    /// The client of the member in use.
    fn client(&self) -> Client {
        self.clients[self.current].1.clone()
    }

    /// A request to the member in use failed: the next request goes to the next member.
    fn next_endpoint(&mut self, err: &anyhow::Error) {
        let failed = self.current;
        self.current = (self.current + 1) % self.clients.len();
        if let Some(l) = self.lease.as_mut() {
            l.keeper = None;
        }
        if self.clients.len() > 1 {
            info!(instance = %self.name, "etcd member {} failed ({err:#}); using {}", self.clients[failed].0, self.clients[self.current].0);
        }
    }

    /// A transaction on the member in use: whether its conditions held. A failed request says
    /// `what` in the log and moves to the next member.
    pub(super) async fn txn(&mut self, txn: Txn, what: &str) -> Option<bool> {
        match bounded(self.client().txn(txn)).await {
            Ok(r) => Some(r.succeeded()),
            Err(err) => {
                warn!(instance = %self.name, "cannot {what}: {err:#}");
                self.next_endpoint(&err);
                None
            }
        }
    }

    /// Creates the owner key under our lease, if nobody holds it.
    pub(super) async fn claim_free_key(&mut self, lease: i64) -> Option<bool> {
        let put = PutOptions::new().with_lease(lease);
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.owner_key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.owner_key.as_str(),
                self.node.as_str(),
                Some(put),
            )]);
        self.txn(txn, "claim the owner key").await
    }

    /// Names `to` our successor (the handoff key, under our lease), if the owner key is still ours.
    pub(super) async fn name_successor(
        &mut self,
        lease: i64,
        to: std::net::IpAddr,
    ) -> Option<bool> {
        let named = Handoff { to, taken: false }.to_json();
        let txn = Txn::new()
            .when([Compare::lease(
                self.owner_key.as_str(),
                CompareOp::Equal,
                lease,
            )])
            .and_then([TxnOp::put(
                self.handoff_key.as_str(),
                named,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        self.txn(txn, "name a successor").await
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
        let put = || Some(PutOptions::new().with_lease(lease));
        let txn = Txn::new()
            .when([
                Compare::lease(self.owner_key.as_str(), CompareOp::Equal, from),
                Compare::value(self.handoff_key.as_str(), CompareOp::Equal, named.to_json()),
            ])
            .and_then([
                TxnOp::put(self.owner_key.as_str(), self.node.as_str(), put()),
                TxnOp::put(self.handoff_key.as_str(), taken.to_json(), put()),
            ]);
        self.txn(txn, "take the owner key over").await
    }

    /// Deletes the handoff key if it still reads `h` (a handoff that ended or was abandoned).
    pub(super) async fn clear_handoff(&mut self, h: Handoff) -> Option<bool> {
        let txn = Txn::new()
            .when([Compare::value(
                self.handoff_key.as_str(),
                CompareOp::Equal,
                h.to_json(),
            )])
            .and_then([TxnOp::delete(self.handoff_key.as_str(), None)]);
        self.txn(txn, "clear the handoff key").await
    }

    /// Deletes the owner key if it is still under our lease (the next candidate claims it).
    pub(super) async fn free_key(&mut self, lease: i64) -> Option<bool> {
        let txn = Txn::new()
            .when([Compare::lease(
                self.owner_key.as_str(),
                CompareOp::Equal,
                lease,
            )])
            .and_then([TxnOp::delete(self.owner_key.as_str(), None)]);
        self.txn(txn, "free the owner key").await
    }

    /// Removes our candidacy (a failing check, `release`); it is put back by [`Self::keep_lease`].
    pub(super) async fn withdraw_candidacy(&mut self) {
        if let Some(l) = self.lease.as_mut() {
            l.candidate = false;
        }
        let key = format!("{}candidates/{}", self.dir, self.me);
        if let Err(err) = bounded(self.client().delete(key, None)).await {
            warn!(instance = %self.name, "cannot withdraw our candidacy: {err:#}");
            self.next_endpoint(&err);
        }
    }

    /// Grants a lease when we have none, renews it when due, puts our candidacy under it while we
    /// are eligible. Returns whether it was renewed (or granted) now.
    pub(super) async fn keep_lease(&mut self, now: Duration) -> bool {
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
        let key = format!("{}candidates/{}", self.dir, self.me);
        let record = CandidateRecord {
            priority: self.priority,
            preempt: self.preempt || self.override_mode == vrrp::Override::Takeover,
            node: self.node.clone(),
        };
        let value = serde_json::to_string(&record).unwrap_or_default();
        let put = PutOptions::new().with_lease(id);
        match bounded(self.client().put(key, value, Some(put))).await {
            Ok(_) => {
                if let Some(l) = self.lease.as_mut() {
                    l.candidate = true;
                }
            }
            Err(err) => {
                warn!(instance = %self.name, "cannot register our candidacy: {err:#}");
                self.next_endpoint(&err);
            }
        }
        renewed
    }

    async fn grant(&mut self) -> bool {
        let sent = lease::now();
        match bounded(self.client().lease_grant(self.ttl.as_secs() as i64, None)).await {
            Ok(r) => match LeaseClock::renewed(sent, r.ttl()) {
                Some(clock) => {
                    self.lease = Some(Lease {
                        id: r.id(),
                        clock,
                        keeper: None,
                        next_renew: sent + clock.renew_every(),
                        candidate: false,
                    });
                    self.renewal_ok();
                    true
                }
                None => {
                    warn!(instance = %self.name, "etcd granted a lease of {} s", r.ttl());
                    false
                }
            },
            Err(err) => {
                self.renewal_failed(&err);
                self.next_endpoint(&err);
                false
            }
        }
    }

    /// One keep-alive round trip on the lease, trying each member once while they fail.
    async fn renew(&mut self) -> bool {
        let Some(l) = self.lease.as_mut() else {
            return false;
        };
        l.next_renew = lease::now() + l.clock.renew_every();
        let mut last_err = None;
        for _ in 0..self.clients.len() {
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
            match self.keep_alive_once().await {
                Ok(ttl) => {
                    let Some(l) = self.lease.as_mut() else {
                        return false;
                    };
                    if l.clock.renew(sent, ttl) {
                        self.renewal_ok();
                        return true;
                    }
                    warn!(instance = %self.name, "our lease {:x} has ended in etcd; starting over", l.id);
                    self.lease = None;
                    self.handing = None;
                    if self.holding() {
                        let to = self.idle_state();
                        self.set_holding(false, format!("{to}: our lease ended in etcd"));
                        self.remove_vips().await;
                    }
                    return false;
                }
                Err(err) => {
                    self.next_endpoint(&err);
                    last_err = Some(err);
                }
            }
        }
        if let Some(err) = last_err {
            self.renewal_failed(&err);
        }
        false
    }

    /// A keep-alive on the member in use: the TTL etcd answered with (0: the lease is gone).
    async fn keep_alive_once(&mut self) -> Result<i64> {
        let mut client = self.client();
        let l = self.lease.as_mut().context("no lease")?;
        if l.keeper.is_none() {
            l.keeper = Some(bounded(client.lease_keep_alive(l.id)).await?);
        }
        let (keeper, stream) = l.keeper.as_mut().context("no keep-alive stream")?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            keeper.keep_alive().await?;
            stream.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(r))) => Ok(r.ttl()),
            Ok(Ok(None)) => anyhow::bail!("the keep-alive stream ended"),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => anyhow::bail!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }

    fn renewal_ok(&mut self) {
        if let Some(since) = self.failing_since.take() {
            info!(instance = %self.name, "etcd reachable again (unreachable since {})", unix(since));
        }
    }

    fn renewal_failed(&mut self, err: &anyhow::Error) {
        if self.failing_since.is_none() {
            self.failing_since = Some(SystemTime::now());
            warn!(instance = %self.name, "etcd unreachable: {err:#}");
        }
    }

    /// Revokes our lease (with the owner key and our candidacy), trying each member once.
    pub(super) async fn revoke(&mut self) {
        if let Some(l) = self.lease.take() {
            // Each member once: a slow or dead member should not cost the successor the whole TTL.
            for _ in 0..self.clients.len() {
                match bounded(self.client().lease_revoke(l.id)).await {
                    Ok(_) => {
                        info!(instance = %self.name, "stopping: lease {:x} revoked", l.id);
                        return;
                    }
                    // An earlier attempt that timed out may have revoked it after all.
                    Err(err) if format!("{err:#}").contains("lease not found") => {
                        info!(instance = %self.name, "stopping: lease {:x} revoked (gone already)", l.id);
                        return;
                    }
                    Err(err) => self.next_endpoint(&err),
                }
            }
            warn!(instance = %self.name, "stopping: cannot revoke lease {:x}; it ends by itself", l.id);
        }
    }

    /// Reads the owner key, the candidates and the handoff key.
    pub(super) async fn read(&mut self) -> Option<View> {
        let opts = GetOptions::new().with_prefix();
        let resp = match bounded(self.client().get(self.dir.as_str(), Some(opts))).await {
            Ok(r) => r,
            Err(err) => {
                self.next_endpoint(&err);
                return None;
            }
        };
        let mut view = View::default();
        let cand_prefix = format!("{}candidates/", self.dir);
        for kv in resp.kvs() {
            let (Ok(key), Ok(value)) = (kv.key_str(), kv.value_str()) else {
                continue;
            };
            if key == self.owner_key {
                view.owner = Some(Owner {
                    node: value.to_string(),
                    lease: kv.lease(),
                });
            } else if key == self.handoff_key {
                view.handoff = serde_json::from_str(value).ok();
            } else if let Some(addr) = key.strip_prefix(&cand_prefix) {
                let record = serde_json::from_str::<CandidateRecord>(value);
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
