//! The status of etcd instances as their elections keep it: the history of an instance's states
//! ([`Tracker`]) and the status of `[[group]]`s of etcd instances. The etcd part of the status model
//! itself (`EtcdStatus`) lives with the rest of the model in `crate::control::status`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::control::status::EtcdStatus;
use crate::control::InstanceStatus;

/// The `[[group]]`s of etcd instances, from their members' latest status.
pub fn group_status(
    groups: &[crate::config::GroupConfig],
    instances: &[InstanceStatus],
) -> Vec<crate::control::GroupStatus> {
    use crate::control::{GroupMemberStatus, GroupStatus};
    groups
        .iter()
        .map(|g| {
            let members = g
                .instances
                .iter()
                .map(|name| GroupMemberStatus {
                    name: name.clone(),
                    state: instances
                        .iter()
                        .find(|i| &i.name == name)
                        .map_or("INIT".to_string(), |i| i.state.clone()),
                })
                .collect();
            GroupStatus::new(&g.name, members)
        })
        .collect()
}

/// An etcd instance's state as people see it: MASTER while it holds the VIPs, BACKUP otherwise,
/// with the reason and the history of transitions (as a VRRP instance's).
#[derive(Debug)]
pub struct Tracker {
    state: &'static str,
    since: Option<f64>,
    reason: Option<String>,
    history: std::collections::VecDeque<crate::control::status::HistoryEntry>,
    transitions: BTreeMap<String, u64>,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker {
            state: "INIT",
            since: None,
            reason: None,
            history: Default::default(),
            transitions: BTreeMap::new(),
        }
    }
}

impl Tracker {
    /// Records a change to `to` ("MASTER", "BACKUP", "INIT"); the same state again is no change.
    /// Returns whether it changed.
    pub fn transition(&mut self, to: &'static str, reason: String) -> bool {
        if self.state == to {
            return false;
        }
        let at = crate::control::status::unix_secs(std::time::SystemTime::now());
        if self.history.len() == crate::control::status::HISTORY_MAX {
            self.history.pop_front();
        }
        self.history
            .push_back(crate::control::status::HistoryEntry {
                at,
                from: self.state.to_string(),
                to: to.to_string(),
                reason: reason.clone(),
            });
        *self
            .transitions
            .entry(format!("{}->{to}", self.state))
            .or_default() += 1;
        self.state = to;
        self.since = Some(at);
        self.reason = Some(reason);
        true
    }

    /// The state now ("MASTER", "BACKUP", "INIT").
    pub fn state(&self) -> &'static str {
        self.state
    }

    /// The status model for `cfg`, with the VIPs the kernel has now and the etcd part.
    pub fn status(
        &self,
        cfg: &crate::config::InstanceConfig,
        present: &[IpAddr],
        etcd: EtcdStatus,
    ) -> InstanceStatus {
        use crate::control::status::*;
        InstanceStatus {
            name: cfg.name.clone(),
            interface: cfg.interface.clone(),
            vrid: cfg.vrid,
            version: match cfg.version {
                vrrp::Version::V2 => 2,
                vrrp::Version::V3 => 3,
            },
            version_why: None,
            state: self.state.to_string(),
            since: self.since,
            reason: self.reason.clone(),
            priority: PriorityStatus {
                configured: cfg.priority,
                effective: cfg.priority,
                why_different: None,
            },
            vips: cfg
                .addresses
                .iter()
                .map(|v| VipStatus {
                    address: format!("{}/{}", v.addr, v.prefix_len),
                    present_in_kernel: present.contains(&v.addr),
                })
                .collect(),
            master: None,
            speakers: Vec::new(),
            counters: CountersStatus {
                transitions: self.transitions.clone(),
                ..CountersStatus::default()
            },
            override_mode: None,
            claim_inhibit: None,
            conflicts: Vec::new(),
            clashes: Vec::new(),
            checks: Vec::new(),
            history: self.history.iter().cloned().collect(),
            track_files: Vec::new(),
            auth: None,
            etcd: Some(etcd),
        }
    }
}
