//! The kernel settings that bite a floating IP: arp_ignore, arp_announce and rp_filter per
//! interface in use, disable_ipv6, and ip_nonlocal_bind (read from `/proc/sys`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{fail, item, warn, Item, Mark, Section};
use crate::config::Config;

fn read_sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The sysctls that bite, per interface in use (the kernel uses the larger of `all` and the
/// interface's value for these).
pub(super) fn sysctl_section(config: &Config) -> Section {
    let mut s = Section {
        title: "Kernel settings".into(),
        items: vec![],
    };
    let mut ifs: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for inst in &config.instances {
        let e = ifs.entry(inst.interface.clone()).or_default();
        if inst.is_v6() {
            e.1 = true;
        } else {
            e.0 = true;
        }
    }
    for (ifname, (v4, v6)) in &ifs {
        if !Path::new("/proc/sys/net/ipv4/conf").join(ifname).exists() {
            continue; // a missing interface is reported in its instance's section
        }
        if *v4 {
            s.items.extend(sysctl_items(ifname, read_sysctl));
        }
        if *v6 && read_sysctl(&format!("net/ipv6/conf/{ifname}/disable_ipv6")) == Some(1) {
            s.items.push(fail(
                format!("IPv6 is disabled on {ifname}"),
                &[&format!("sysctl -w net.ipv6.conf.{ifname}.disable_ipv6=0")],
            ));
        }
    }
    let any_v4 = ifs.values().any(|(v4, _)| *v4);
    let any_v6 = ifs.values().any(|(_, v6)| *v6);
    for (fam, used) in [("ipv4", any_v4), ("ipv6", any_v6)] {
        if !used {
            continue;
        }
        match read_sysctl(&format!("net/{fam}/ip_nonlocal_bind")) {
            Some(0) => s.items.push(warn(
                format!("net.{fam}.ip_nonlocal_bind = 0: a service that binds the VIP itself cannot start on a backup"),
                &[
                    &format!("if smbd (`bind interfaces only`), nginx (`listen 192.0.2.97:80`) or similar bind the VIP: sysctl -w net.{fam}.ip_nonlocal_bind=1 (persist in /etc/sysctl.d/)"),
                    "or start such services from the master hook ([instance.notify] master)",
                ],
            )),
            Some(_) => s.items.push(item(
                Mark::Ok,
                format!("net.{fam}.ip_nonlocal_bind = 1 (services may bind the VIP on backups)"),
            )),
            None => {}
        }
    }
    s
}

/// The IPv4 sysctl checks of one interface; `read` maps a /proc/sys path to its value.
pub fn sysctl_items(ifname: &str, read: impl Fn(&str) -> Option<i64>) -> Vec<Item> {
    let mut items = Vec::new();
    let eff = |key: &str| -> Option<i64> {
        let all = read(&format!("net/ipv4/conf/all/{key}"));
        let dev = read(&format!("net/ipv4/conf/{ifname}/{key}"));
        match (all, dev) {
            (Some(a), Some(d)) => Some(a.max(d)),
            (a, d) => a.or(d),
        }
    };
    match eff("arp_ignore") {
        Some(v) if v >= 8 => items.push(fail(
            format!("arp_ignore = {v} on {ifname}: this host never answers ARP there, so clients cannot reach the VIP when it is master"),
            &[&format!("sysctl -w net.ipv4.conf.{ifname}.arp_ignore=0 net.ipv4.conf.all.arp_ignore=0 (persist in /etc/sysctl.d/)")],
        )),
        Some(v) if v >= 2 => items.push(warn(
            format!("arp_ignore = {v} on {ifname}: ARP for the VIP is only answered to senders in the VIP's own subnet"),
            &[&format!("fine if every client is on that subnet; else sysctl -w net.ipv4.conf.{ifname}.arp_ignore=1")],
        )),
        Some(v) => items.push(item(Mark::Ok, format!("arp_ignore = {v} on {ifname}"))),
        None => {}
    }
    match eff("arp_announce") {
        Some(0) => items.push(item(
            Mark::Ok,
            format!("arp_announce = 0 on {ifname} (2 is tidier when the host has several addresses on one subnet)"),
        )),
        Some(v) => items.push(item(Mark::Ok, format!("arp_announce = {v} on {ifname}"))),
        None => {}
    }
    match eff("rp_filter") {
        Some(1) => items.push(warn(
            format!("rp_filter = 1 (strict) on {ifname}: adverts or client traffic whose source routes via another interface are dropped without a trace"),
            &[&format!("if peers or clients are reached through another interface: sysctl -w net.ipv4.conf.{ifname}.rp_filter=2 net.ipv4.conf.all.rp_filter=2")],
        )),
        Some(v) => items.push(item(Mark::Ok, format!("rp_filter = {v} on {ifname}"))),
        None => {}
    }
    items
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn sysctls_that_bite() {
        let vals: HashMap<&str, i64> = [
            ("net/ipv4/conf/all/arp_ignore", 0),
            ("net/ipv4/conf/eth0/arp_ignore", 8),
            ("net/ipv4/conf/all/rp_filter", 1),
            ("net/ipv4/conf/eth0/rp_filter", 0),
            ("net/ipv4/conf/eth0/arp_announce", 2),
        ]
        .into_iter()
        .collect();
        let items = sysctl_items("eth0", |p| vals.get(p).copied());
        assert_eq!(items[0].mark, Mark::Fail);
        assert!(items[0].text.contains("arp_ignore = 8"));
        assert_eq!(items[1].mark, Mark::Ok);
        assert_eq!(items[2].mark, Mark::Warn);
        assert!(items[2].text.contains("rp_filter = 1"));
    }
}
