//! Who owns an instance's VIPs. `election = "vrrp"` (the default) is decided by the VRRP core that
//! the daemon's protocol loop drives ([`crate::daemon`]); `election = "etcd"` by a lease-backed key
//! in etcd ([`etcd`], with its timing rules in [`lease`]). This file splits a config between them.
//!
//! An etcd instance runs as a task of its own on the runtime: nothing of etcd (client, gRPC, TLS) is
//! started unless some instance has `election = "etcd"`.

pub mod etcd;
pub mod lease;
pub mod status;

use crate::config::{Config, Election, GroupConfig, InstanceConfig};

/// Takes the `election = "etcd"` instances, and the `[[group]]`s of them, out of `cfg` (the
/// protocol loop runs the rest; validation keeps a group's members of one election).
pub fn take_etcd_instances(cfg: &mut Config) -> (Vec<InstanceConfig>, Vec<GroupConfig>) {
    let (etcd, vrrp): (Vec<_>, Vec<_>) = std::mem::take(&mut cfg.instances)
        .into_iter()
        .partition(|i| i.election == Election::Etcd);
    cfg.instances = vrrp;
    let (etcd_groups, vrrp_groups): (Vec<_>, Vec<_>) =
        std::mem::take(&mut cfg.groups).into_iter().partition(|g| {
            g.instances
                .iter()
                .any(|m| etcd.iter().any(|i| &i.name == m))
        });
    cfg.groups = vrrp_groups;
    (etcd, etcd_groups)
}
