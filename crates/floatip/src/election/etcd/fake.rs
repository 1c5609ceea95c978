//! An etcd in memory for the etcd election's tests without root or an etcd: keys, leases that
//! expire on `lease::now()`, and the requests of [`super::wire`] with etcd's semantics (a put under
//! a lease that is gone fails with "lease not found"; a transaction runs its writes only when every
//! compare holds). Clones share one store, so two elections can run against it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::client::Transport;
use super::wire::{Answer, Compare, Failure, Kv, Op, Request};
use crate::election::lease;

#[derive(Clone, Default)]
pub struct FakeEtcd(Arc<Mutex<Store>>);

#[derive(Default)]
struct Store {
    /// key -> (value, lease, create revision)
    keys: BTreeMap<String, (String, i64, i64)>,
    /// lease -> (deadline on `lease::now()`, TTL in seconds)
    leases: BTreeMap<i64, (Duration, i64)>,
    next_lease: i64,
    revision: i64,
    /// Every member fails (a partition between the host and etcd).
    unreachable: bool,
}

impl FakeEtcd {
    /// A member of this etcd, for a `Cluster`.
    pub fn member(&self) -> Box<dyn Transport> {
        Box::new(FakeMember(self.clone()))
    }

    /// Ends a lease now, with its keys (as etcd does when it expires, or a stale leader revokes it).
    pub fn end_lease(&self, id: i64) {
        self.0.lock().unwrap().revoke(id);
    }

    /// The owner key of `dir`: the value and the lease it is under.
    pub fn owner(&self, dir: &str) -> Option<(String, i64)> {
        let st = self.0.lock().unwrap();
        st.keys
            .get(&format!("{dir}owner"))
            .map(|(v, l, _)| (v.clone(), *l))
    }

    /// How many candidacies `dir` has.
    pub fn candidates(&self, dir: &str) -> usize {
        let st = self.0.lock().unwrap();
        let prefix = format!("{dir}candidates/");
        st.keys.keys().filter(|k| k.starts_with(&prefix)).count()
    }

    /// Whether etcd would still keep lease `id` now (its deadline has not passed).
    pub fn lease_alive(&self, id: i64) -> bool {
        let st = self.0.lock().unwrap();
        st.leases.get(&id).is_some_and(|(d, _)| *d > lease::now())
    }

    /// Every request fails from now on (`false`: they work again).
    pub fn set_unreachable(&self, on: bool) {
        self.0.lock().unwrap().unreachable = on;
    }
}

impl Store {
    fn revoke(&mut self, id: i64) -> bool {
        let had = self.leases.remove(&id).is_some();
        self.keys.retain(|_, (_, l, _)| *l != id);
        had
    }

    fn expire(&mut self) {
        let now = lease::now();
        let ended: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            self.revoke(id);
        }
    }

    fn live(&self, lease: i64) -> Result<(), Failure> {
        if lease == 0 || self.leases.contains_key(&lease) {
            Ok(())
        } else {
            Err(Failure::LeaseGone)
        }
    }

    fn put(&mut self, key: &str, value: &str, lease: i64) {
        self.revision += 1;
        let created = self.keys.get(key).map_or(self.revision, |e| e.2);
        self.keys
            .insert(key.to_string(), (value.to_string(), lease, created));
    }

    fn holds(&self, c: &Compare) -> bool {
        match c {
            Compare::CreateRevision { key, is } => self.keys.get(key).map_or(0, |e| e.2) == *is,
            Compare::Lease { key, is } => self.keys.get(key).map_or(0, |e| e.1) == *is,
            Compare::Value { key, is } => self.keys.get(key).is_some_and(|e| &e.0 == is),
        }
    }

    fn answer(&mut self, req: &Request) -> Result<Answer, Failure> {
        if self.unreachable {
            return Err(Failure::Member("no answer (fake partition)".into()));
        }
        self.expire();
        match req {
            Request::Grant { ttl_s } => {
                self.next_lease += 1;
                let id = 0x1000 + self.next_lease;
                let deadline = lease::now() + Duration::from_secs(*ttl_s as u64);
                self.leases.insert(id, (deadline, *ttl_s));
                Ok(Answer::Granted {
                    lease: id,
                    ttl_s: *ttl_s,
                })
            }
            Request::KeepAlive { lease: id } => match self.leases.get_mut(id) {
                Some((deadline, ttl)) => {
                    *deadline = lease::now() + Duration::from_secs(*ttl as u64);
                    Ok(Answer::Alive { ttl_s: *ttl })
                }
                None => Ok(Answer::Alive { ttl_s: 0 }),
            },
            Request::Revoke { lease: id } => {
                if self.revoke(*id) {
                    Ok(Answer::Done)
                } else {
                    Err(Failure::LeaseGone)
                }
            }
            Request::Put { key, value, lease } => {
                self.live(*lease)?;
                self.put(key, value, *lease);
                Ok(Answer::Done)
            }
            Request::Delete { key } => {
                self.keys.remove(key);
                Ok(Answer::Done)
            }
            Request::Prefix { prefix } => Ok(Answer::Keys(
                self.keys
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, (v, l, _))| Kv {
                        key: k.clone(),
                        value: v.clone(),
                        lease: *l,
                    })
                    .collect(),
            )),
            Request::Txn { when, then } => {
                if !when.iter().all(|c| self.holds(c)) {
                    return Ok(Answer::Txn(false));
                }
                for op in then {
                    if let Op::Put { lease, .. } = op {
                        self.live(*lease)?;
                    }
                }
                for op in then {
                    match op {
                        Op::Put { key, value, lease } => self.put(key, value, *lease),
                        Op::Delete { key } => {
                            self.keys.remove(key);
                        }
                    }
                }
                Ok(Answer::Txn(true))
            }
        }
    }
}

struct FakeMember(FakeEtcd);

impl Transport for FakeMember {
    fn url(&self) -> &str {
        "fake://etcd"
    }

    fn call<'a>(
        &'a mut self,
        req: &'a Request,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Answer, Failure>> {
        let answer = self.0 .0.lock().unwrap().answer(req);
        Box::pin(async move { answer })
    }
}
