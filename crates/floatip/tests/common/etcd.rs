//! The tests' face of the lab's etcd cluster (`floatip_lab::EtcdCluster`, e1..e3 at
//! 192.0.2.11-13, stopped with the lab): the same cluster, with the harness's rule that a helper
//! panics with a readable message instead of returning an error (the lab then drops and cleans up).

use std::ops::Deref;
use std::time::Duration;

pub use floatip_lab::{require_etcd, ETCD};
use floatip_lab::{EtcdCerts, Lab};

/// A CA, a certificate per member and a client certificate ([`floatip_lab::EtcdCerts`]).
pub struct Certs(EtcdCerts);

impl Certs {
    pub fn make(lab: &Lab) -> Certs {
        Certs(EtcdCerts::make(lab).unwrap_or_else(|e| panic!("cannot make etcd certs: {e:#}")))
    }
}

impl Deref for Certs {
    type Target = EtcdCerts;
    fn deref(&self) -> &EtcdCerts {
        &self.0
    }
}

/// The members: `hosts`, `procs` and `healthy(i)` of [`floatip_lab::EtcdCluster`].
pub struct EtcdCluster(floatip_lab::EtcdCluster);

impl Deref for EtcdCluster {
    type Target = floatip_lab::EtcdCluster;
    fn deref(&self) -> &floatip_lab::EtcdCluster {
        &self.0
    }
}

impl EtcdCluster {
    /// Adds e1..e3 to `lab`, starts one member in each and waits until every member reports a
    /// healthy cluster.
    pub fn start(lab: &mut Lab) -> EtcdCluster {
        EtcdCluster::start_with(lab, None)
    }

    /// [`EtcdCluster::start`], with TLS and client certificates on the client port when `certs`.
    pub fn start_with(lab: &mut Lab, certs: Option<&Certs>) -> EtcdCluster {
        let cluster = floatip_lab::EtcdCluster::start(lab, certs.map(|c| &c.0))
            .unwrap_or_else(|e| panic!("cannot start etcd: {e:#}"));
        EtcdCluster(cluster)
    }

    /// SIGKILL member `i` (0-based), which must be running.
    pub fn kill(&self, i: usize) {
        assert!(self.0.kill(i), "etcd e{} was running", i + 1);
    }

    /// The lines that make the last `[[instance]]` of a floatip config an etcd one, with the
    /// `[etcd]` table after it (so it goes in the last instance's `extra`).
    pub fn instance_lines(lease_ttl: Duration) -> String {
        floatip_lab::EtcdCluster::instance_lines(lease_ttl, None)
    }

    /// [`EtcdCluster::instance_lines`] for a cluster started with `certs`.
    pub fn instance_lines_with(lease_ttl: Duration, certs: Option<&Certs>) -> String {
        floatip_lab::EtcdCluster::instance_lines(lease_ttl, certs.map(|c| &c.0))
    }
}
