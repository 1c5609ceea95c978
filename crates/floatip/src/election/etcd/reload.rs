//! `floatip reload` for etcd elections: which changes of the file apply in place (priority,
//! preempt, VIPs, announcements, checks, hooks, tracked interfaces of a running instance: no
//! failover) and which need a restart (an etcd instance or group added or removed, a group's
//! members, an instance's interface, the `[etcd]` table), decided purely by [`plan`]; and an
//! election taking its members' new settings.

use std::net::IpAddr;

use tracing::{error, info};

use super::{Elector, Handles, Member};
use crate::config::{EtcdConfig, GroupConfig, InstanceConfig};
use crate::election::lease;

/// The elections of a config: each `[[group]]` of etcd instances (members in the group's order),
/// then every other instance on its own.
pub fn units(
    mut instances: Vec<InstanceConfig>,
    groups: &[GroupConfig],
) -> Vec<(String, Vec<InstanceConfig>)> {
    let mut units = Vec::new();
    for g in groups {
        let members = g
            .instances
            .iter()
            .filter_map(|m| {
                let at = instances.iter().position(|i| &i.name == m)?;
                Some(instances.remove(at))
            })
            .collect();
        units.push((g.name.clone(), members));
    }
    units.extend(instances.into_iter().map(|i| (i.name.clone(), vec![i])));
    units
}

/// What a reload does to the etcd elections.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Elections whose members change in place: the election's name, the members' new settings
    /// and what changed ("files (priority, checks)").
    pub updates: Vec<(String, Vec<InstanceConfig>, String)>,
    /// Changes that need a restart of the daemon, in words.
    pub need_restart: Vec<String>,
}

/// Compares the running elections with the file's.
pub fn plan(
    running: &Handles,
    (instances, groups): (Vec<InstanceConfig>, Vec<GroupConfig>),
    etcd: Option<&EtcdConfig>,
) -> Plan {
    let mut plan = Plan::default();
    let new = units(instances, &groups);
    if !(running.units.is_empty() && new.is_empty()) && running.etcd.as_ref() != etcd {
        plan.need_restart.push("the [etcd] table".to_string());
    }
    for (name, members) in &new {
        let Some((_, old)) = running.units.iter().find(|(n, _)| n == name) else {
            plan.need_restart.push(format!("{name} (new)"));
            continue;
        };
        let names = |v: &[InstanceConfig]| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        if names(old) != names(members) {
            plan.need_restart.push(format!("{name} (its members)"));
            continue;
        }
        if let Some(m) = old
            .iter()
            .zip(members)
            .find(|(o, n)| o.interface != n.interface)
        {
            plan.need_restart
                .push(format!("{} (its interface)", m.1.name));
            continue;
        }
        let what: Vec<String> = old
            .iter()
            .zip(members)
            .filter(|(o, n)| o != n)
            .map(|(o, n)| format!("{} ({})", n.name, changed_keys(o, n).join(", ")))
            .collect();
        if !what.is_empty() {
            plan.updates
                .push((name.clone(), members.clone(), what.join(", ")));
        }
    }
    for (name, _) in &running.units {
        if !new.iter().any(|(n, _)| n == name) {
            plan.need_restart
                .push(format!("{name} (removed, or no longer etcd)"));
        }
    }
    plan
}

/// The keys that differ, in words.
fn changed_keys(old: &InstanceConfig, new: &InstanceConfig) -> Vec<&'static str> {
    let mut what = Vec::new();
    let mut differs = |d: bool, key: &'static str| {
        if d {
            what.push(key);
        }
    };
    differs(old.priority != new.priority, "priority");
    differs(old.preempt != new.preempt, "preempt");
    differs(old.addresses != new.addresses, "addresses");
    differs(old.announce != new.announce, "announcements");
    differs(old.checks != new.checks, "checks");
    differs(old.notify != new.notify, "hooks");
    differs(
        old.track_interfaces != new.track_interfaces,
        "tracked interfaces",
    );
    if what.is_empty() {
        // vrid, version, advert_interval...: not used by an etcd election.
        what.push("keys etcd mode does not use");
    }
    what
}

impl Elector {
    /// The members' new settings (same names and interfaces, see [`plan`]): each changed member
    /// starts afresh (checks, ARP/ND watch, hooks) with its history; while we hold the VIPs, new
    /// ones are added and announced and dropped ones removed. Nothing changes if one cannot start.
    pub(super) async fn reload(&mut self, members: Vec<InstanceConfig>) {
        let mut fresh = Vec::new();
        for (old, new) in self.members.iter().zip(members) {
            if old.cfg == new {
                fresh.push(None);
                continue;
            }
            match Member::prepare(new, &self.host).await {
                Ok(m) => fresh.push(Some(m)),
                Err(err) => {
                    error!(instance = %self.name, "reload not applied, the running settings stay: {err:#}");
                    return;
                }
            }
        }
        let clock = self.lease.as_ref().map(|l| l.clock);
        let holding = self.holding();
        for (i, new) in fresh.into_iter().enumerate() {
            let Some(mut new) = new else {
                continue;
            };
            new.tracker = std::mem::take(&mut self.members[i].tracker);
            let old = std::mem::replace(&mut self.members[i], new);
            let member = &self.members[i];
            if holding {
                if let Some(lifetime) = clock.and_then(|c| c.vip_lifetime(lease::now())) {
                    member.add(&self.host, lifetime, true).await;
                    member.announce_once();
                    member.spawn_announcements(self.holding.clone());
                }
                let kept: Vec<IpAddr> = member.cfg.addresses.iter().map(|v| v.addr).collect();
                old.remove_except(&self.host, &kept).await;
            }
            info!(instance = %member.cfg.name, "reloaded in place");
        }
        self.preempt = self.members.iter().all(|m| m.cfg.preempt);
        // Put the candidacy again (priority, preempt); a new priority is taken at the next tick.
        if let Some(l) = self.lease.as_mut() {
            l.candidate = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    const ETCD: &str = "[etcd]\nendpoints = [\"http://192.0.2.11:2379\"]\n";

    fn inst(name: &str, vrid: u8, priority: u8, interface: &str) -> String {
        format!("[[instance]]\nname = \"{name}\"\ninterface = \"{interface}\"\nvrid = {vrid}\npriority = {priority}\naddresses = [\"192.0.2.{vrid}/24\"]\nelection = \"etcd\"\n")
    }

    fn running(text: &str) -> Handles {
        let mut cfg = parse(text, Path::new("t.toml")).unwrap();
        let (instances, groups) = crate::election::take_etcd_instances(&mut cfg);
        Handles {
            units: units(instances, &groups),
            etcd: cfg.etcd,
            groups,
            ..Handles::default()
        }
    }

    fn plan_for(running_text: &str, new_text: &str) -> Plan {
        let mut cfg = parse(new_text, Path::new("t.toml")).unwrap();
        let etcd = crate::election::take_etcd_instances(&mut cfg);
        plan(&running(running_text), etcd, cfg.etcd.as_ref())
    }

    #[test]
    fn settings_of_running_members_change_in_place() {
        let old = format!(
            "{}{}{ETCD}",
            inst("a", 51, 100, "eth0"),
            inst("b", 52, 100, "eth0")
        );
        let new = format!(
            "{}{}{ETCD}",
            inst("a", 51, 120, "eth0"),
            inst("b", 52, 100, "eth0")
        );
        let p = plan_for(&old, &new);
        assert!(p.need_restart.is_empty(), "{p:?}");
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].0, "a");
        assert_eq!(p.updates[0].2, "a (priority)");
        assert_eq!(plan_for(&old, &old), Plan::default());
    }

    #[test]
    fn new_removed_regrouped_or_moved_instances_and_the_table_need_a_restart() {
        let old = format!("{}{ETCD}", inst("a", 51, 100, "eth0"));
        let p = plan_for(
            &old,
            &format!(
                "{}{}{ETCD}",
                inst("a", 51, 100, "eth0"),
                inst("b", 52, 100, "eth0")
            ),
        );
        assert_eq!(p.need_restart, ["b (new)"]);
        let p = plan_for(&old, &format!("{}{ETCD}", inst("a", 51, 100, "eth1")));
        assert_eq!(p.need_restart, ["a (its interface)"]);
        let p = plan_for(
            &old,
            &format!(
                "{}[etcd]\nendpoints = [\"http://192.0.2.12:2379\"]\n",
                inst("a", 51, 100, "eth0")
            ),
        );
        assert_eq!(p.need_restart, ["the [etcd] table"]);
        let two = format!(
            "{}{}{ETCD}",
            inst("a", 51, 100, "eth0"),
            inst("b", 52, 100, "eth0")
        );
        let grouped = format!(
            "{}{}[[group]]\nname = \"g\"\ninstances = [\"a\", \"b\"]\n{ETCD}",
            inst("a", 51, 100, "eth0"),
            inst("b", 52, 100, "eth0")
        );
        let p = plan_for(&two, &grouped);
        assert_eq!(
            p.need_restart,
            [
                "g (new)",
                "a (removed, or no longer etcd)",
                "b (removed, or no longer etcd)"
            ]
        );
        let p = plan_for(&grouped, &two);
        assert!(
            p.need_restart
                .contains(&"g (removed, or no longer etcd)".to_string()),
            "{p:?}"
        );
    }
}
