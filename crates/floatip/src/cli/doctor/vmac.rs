//! The virtual-MAC checks (only for a config with `vmac = true`): whether this host runs under a
//! hypervisor or cloud known to drop frames from MACs it did not assign (read from
//! `/sys/class/dmi/id/sys_vendor` and `product_name`), the kernel settings a macvlan VIP needs
//! (`all.rp_filter`, and the parent's ARP settings while the daemon runs), and an interface with the
//! virtual-MAC name that is not floatip's.

use std::path::Path;

use super::{fail, item, warn, Item, Mark, Section};
use crate::config::Config;

fn read_dmi(name: &str) -> String {
    std::fs::read_to_string(Path::new("/sys/class/dmi/id").join(name))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn read_sysctl(key: &str) -> Option<i64> {
    crate::net::sysctl::read(key).ok()?.parse().ok()
}

/// The section, or `None` when no instance uses a virtual MAC.
pub(super) fn vmac_section(config: &Config) -> Option<Section> {
    let vmacs: Vec<_> = config.instances.iter().filter(|i| i.vmac).collect();
    if vmacs.is_empty() {
        return None;
    }
    let mut s = Section {
        title: "Virtual MAC".into(),
        items: vec![],
    };
    s.items.push(hypervisor_item(
        &read_dmi("sys_vendor"),
        &read_dmi("product_name"),
    ));
    let mut seen = Vec::new();
    for inst in vmacs {
        let name = inst.vmac_name().unwrap_or_default();
        let present = Path::new("/sys/class/net").join(&name).exists();
        if present {
            let mac =
                std::fs::read_to_string(Path::new("/sys/class/net").join(&name).join("address"))
                    .unwrap_or_default();
            let want = crate::control::format_mac(&inst.vmac_address());
            if mac.trim() != want {
                s.items.push(fail(
                    format!("{name} exists with MAC {} (not {want}): it is not instance {}'s virtual-MAC interface, and floatip will not touch it", mac.trim(), inst.name),
                    &[&format!("remove it (ip link del {name}) or set vmac_interface to another name")],
                ));
            }
        }
        if inst.is_v6() || seen.contains(&inst.interface) {
            continue;
        }
        seen.push(inst.interface.clone());
        s.items
            .extend(vmac_sysctl_items(&inst.interface, present, read_sysctl));
    }
    Some(s)
}

/// What the host's hypervisor (from DMI) means for frames from a virtual MAC.
pub fn hypervisor_item(vendor: &str, product: &str) -> Item {
    let v = vendor.to_ascii_lowercase();
    let p = product.to_ascii_lowercase();
    let note = if v.contains("vmware") || p.contains("vmware") {
        Some(("VMware", "ESXi needs forged transmits and MAC address changes accepted (or MAC learning) on the port group / distributed switch, else the virtual MAC's frames are dropped"))
    } else if v.contains("microsoft") && p.contains("virtual") {
        Some(("Hyper-V", "enable MAC address spoofing on the VM's network adapter (Set-VMNetworkAdapter -MacAddressSpoofing On)"))
    } else if v.contains("amazon") || p.contains("amazon ec2") {
        Some(("Amazon EC2", "EC2 does not deliver frames for MACs it did not assign: a virtual MAC cannot work there; use plain VIPs (vmac = false) with the cloud's own address moves"))
    } else if v.contains("google") {
        Some(("Google Compute Engine", "GCE does not deliver frames for MACs it did not assign: a virtual MAC cannot work there; use plain VIPs (vmac = false)"))
    } else if v.contains("innotek") || p.contains("virtualbox") {
        Some((
            "VirtualBox",
            "set the adapter's promiscuous mode to \"Allow All\"",
        ))
    } else if v.contains("qemu")
        || p.contains("kvm")
        || v.contains("red hat")
        || p.contains("openstack")
    {
        Some(("KVM/QEMU", "libvirt's default bridge passes any MAC; OpenStack port security drops unknown MACs unless the port allows them (allowed_address_pairs with the virtual MAC)"))
    } else if v.contains("xen") || p.contains("hvm domu") {
        Some(("Xen", "the bridge or vif must pass frames from the virtual MAC (no MAC anti-spoofing on the vif)"))
    } else {
        None
    };
    match note {
        Some((what, fix)) => warn(
            format!("this host runs under {what} ({vendor} {product}): hypervisors often filter frames from MACs they did not assign"),
            &[fix],
        ),
        None => item(
            Mark::Ok,
            if vendor.is_empty() {
                "no hypervisor detected (no DMI information)".to_string()
            } else {
                format!("no hypervisor known to filter virtual MACs detected ({vendor} {product})")
            },
        ),
    }
}

/// The kernel settings of a virtual MAC on `parent`; `running`: its macvlan exists (the daemon runs
/// and has set the parent up). `read` maps a /proc/sys key to its value.
pub fn vmac_sysctl_items(
    parent: &str,
    running: bool,
    read: impl Fn(&str) -> Option<i64>,
) -> Vec<Item> {
    let mut items = Vec::new();
    match read("net/ipv4/conf/all/rp_filter") {
        Some(1) => items.push(fail(
            "net.ipv4.conf.all.rp_filter = 1 (strict): it overrides the virtual-MAC interface's rp_filter = 0, and packets to the VIP are dropped (the route back to a client is through the parent)",
            &["sysctl -w net.ipv4.conf.all.rp_filter=2 (loose; persist in /etc/sysctl.d/), or 0"],
        )),
        Some(v) => items.push(item(Mark::Ok, format!("net.ipv4.conf.all.rp_filter = {v}"))),
        None => {}
    }
    if !running {
        items.push(item(
            Mark::Info,
            format!("{parent}: floatip sets arp_ignore = 1, arp_filter = 1, arp_announce = 2 while it runs (and puts them back on exit)"),
        ));
        return items;
    }
    for (param, want) in crate::net::sysctl::PARENT_V4 {
        let key = format!("net/ipv4/conf/{parent}/{param}");
        let want: i64 = want.parse().unwrap_or(0);
        match read(&key) {
            Some(v) if v == want => items.push(item(Mark::Ok, format!("{param} = {v} on {parent}"))),
            Some(v) => items.push(fail(
                format!("{param} = {v} on {parent} while a virtual MAC runs on it (floatip sets {want}): clients may learn {parent}'s MAC for the VIP"),
                &[
                    &format!("sysctl -w net.ipv4.conf.{parent}.{param}={want}"),
                    "if /proc/sys is read-only for the daemon (systemd ProtectKernelTunables=yes), set ProtectKernelTunables=no in a drop-in",
                ],
            )),
            None => {}
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn hypervisors_that_filter_macs_are_named() {
        let esx = hypervisor_item("VMware, Inc.", "VMware Virtual Platform");
        assert_eq!(esx.mark, Mark::Warn);
        assert!(esx.fix[0].contains("forged transmits"));
        assert_eq!(
            hypervisor_item("Microsoft Corporation", "Virtual Machine").mark,
            Mark::Warn
        );
        assert_eq!(
            hypervisor_item("Dell Inc.", "PowerEdge R640").mark,
            Mark::Ok
        );
        assert_eq!(hypervisor_item("", "").mark, Mark::Ok);
    }

    #[test]
    fn strict_rp_filter_and_unset_parent_fail() {
        let vals: HashMap<&str, i64> = [
            ("net/ipv4/conf/all/rp_filter", 1),
            ("net/ipv4/conf/eth0/arp_ignore", 0),
            ("net/ipv4/conf/eth0/arp_filter", 1),
            ("net/ipv4/conf/eth0/arp_announce", 2),
        ]
        .into_iter()
        .collect();
        let items = vmac_sysctl_items("eth0", true, |k| vals.get(k).copied());
        let marks: Vec<Mark> = items.iter().map(|i| i.mark).collect();
        assert_eq!(marks, [Mark::Fail, Mark::Fail, Mark::Ok, Mark::Ok]);
        assert!(items[1].text.contains("arp_ignore = 0"));
        let idle = vmac_sysctl_items("eth0", false, |k| vals.get(k).copied());
        assert_eq!(idle.len(), 2, "only rp_filter, and what floatip will set");
    }
}
