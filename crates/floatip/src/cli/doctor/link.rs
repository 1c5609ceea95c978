//! An instance's own section of the checklist: its interface (exists, up, carrier), the address its
//! adverts go out from, then who owns its VIPs (see [`super::wire`]).

use std::net::IpAddr;

use super::{fail, item, warn, wire, Item, Mark, Section};
use crate::config::InstanceConfig;
use crate::control::InstanceStatus;
use crate::net::netlink::{LinkInfo, Netlink};

/// Interface, primary address and ARP ownership of one instance.
pub(super) async fn instance_checks(
    inst: &InstanceConfig,
    netlink: Option<&Netlink>,
    link: Option<&LinkInfo>,
    status: Option<&InstanceStatus>,
    daemon_known: bool,
) -> Section {
    let mut s = Section {
        title: format!(
            "Instance {} ({}, VRID {}, {})",
            inst.name,
            inst.interface,
            inst.vrid,
            inst.addresses
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        items: vec![],
    };
    if daemon_known && status.is_none() {
        s.items.push(warn(
            format!("the running daemon does not manage instance {}", inst.name),
            &["reload it after editing the config: `systemctl reload floatip` (or `floatip reload`)"],
        ));
    }
    let Some(netlink) = netlink else {
        return s;
    };
    let Some(link) = link else {
        let known = interface_names();
        s.items.push(Item {
            mark: Mark::Fail,
            text: format!("interface {} does not exist", inst.interface),
            fix: vec![format!(
                "set `interface` to one of: {} (see `ip link`)",
                if known.is_empty() {
                    "?".to_string()
                } else {
                    known.join(", ")
                }
            )],
        });
        return s;
    };
    s.items.push(item(
        Mark::Ok,
        format!("interface {} exists (index {})", inst.interface, link.index),
    ));
    if link.up {
        s.items.push(item(
            Mark::Ok,
            format!("interface {} is up with carrier", inst.interface),
        ));
    } else if admin_up(&inst.interface) == Some(true) {
        s.items.push(fail(
            format!(
                "interface {} is up but has no carrier (cable, switch port or peer down)",
                inst.interface
            ),
            &["check the cable / switch port / virtual NIC; `ip link show` shows NO-CARRIER"],
        ));
    } else {
        s.items.push(Item {
            mark: Mark::Fail,
            text: format!("interface {} is down", inst.interface),
            fix: vec![format!(
                "ip link set dev {} up (and make it permanent in your network configuration)",
                inst.interface
            )],
        });
    }
    let vips: Vec<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
    let v6 = inst.is_v6();
    match netlink.primary_address(link.index, v6, &vips).await {
        Ok(Some(p)) => s.items.push(item(
            Mark::Ok,
            format!("adverts go out from {p} (this host's own address)"),
        )),
        Ok(None) => s.items.push(Item {
            mark: Mark::Fail,
            text: format!(
                "{} has no {} address of its own to send adverts from",
                inst.interface,
                if v6 { "IPv6 link-local" } else { "IPv4" }
            ),
            fix: vec![if v6 {
                format!(
                    "bring {} up so the kernel assigns fe80::/64",
                    inst.interface
                )
            } else {
                format!(
                    "give the host its own address on {} (the VIP cannot be it)",
                    inst.interface
                )
            }],
        }),
        Err(e) => s
            .items
            .push(fail(format!("cannot read addresses: {e:#}"), &[])),
    }
    s.items
        .extend(wire::owner_items(inst, netlink, link, status).await);
    s
}

fn interface_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// IFF_UP from sysfs (`None` if unreadable).
fn admin_up(ifname: &str) -> Option<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{ifname}/flags")).ok()?;
    let v = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    Some(v & 1 == 1)
}
