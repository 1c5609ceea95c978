//! What is on the wire: the VRRP adverts heard on an instance's interface (who speaks on our VRID,
//! with which addresses, version and TTL) and who answers ARP / NDP for each VIP. It only listens
//! and probes (RFC 5227 probes change nobody's ARP cache); it never sends an advert.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::{fail, item, warn, Item, Mark};
use crate::config::InstanceConfig;
use crate::control::{self, InstanceStatus};
use crate::net::netlink::{LinkInfo, Netlink};
use crate::net::probe;
use crate::net::vrrp_socket::VrrpSocket;
use vrrp::packet::{self, ChecksumMode};

/// One VRRP packet heard while listening.
#[derive(Debug, Clone)]
pub struct Heard {
    pub src: IpAddr,
    pub ttl: u8,
    pub advert: Result<packet::Advert, String>,
    pub vrid: Option<u8>,
}

pub(crate) async fn listen(
    ifname: &str,
    index: u32,
    v6: bool,
    dur: Duration,
) -> Result<Vec<Heard>, String> {
    let sock = VrrpSocket::open(ifname, index, v6, true).map_err(|e| format!("{e:#}"))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8 + 255 * 16 + 64];
    let deadline = tokio::time::Instant::now() + dur;
    // Bounded by time and by count, so a flood cannot keep doctor busy.
    while out.len() < 10_000 {
        let got = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
        let Ok(got) = got else { break };
        let Ok(d) = got else { continue };
        let bytes = &buf[..d.len];
        // Described, not verified: an auth_hmac trailer and a v2 PASS password are read as such.
        let v2_auth_type = match bytes {
            [vt, _, _, _, auth, ..] if vt >> 4 == 2 => *auth,
            _ => 0,
        };
        out.push(Heard {
            src: d.src,
            ttl: d.ttl,
            advert: packet::decode_parts(
                bytes,
                d.src,
                d.dst,
                ChecksumMode::AcceptEither,
                true,
                v2_auth_type,
            )
            .map(|p| p.advert)
            .map_err(|e| e.to_string()),
            vrid: vrrp::validate::peek_vrid(bytes),
        });
    }
    Ok(out)
}

/// What one speaker sent, condensed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Speaker {
    vrid: u8,
    version: u8,
    priority: u8,
    interval_cs: u16,
    addresses: BTreeSet<IpAddr>,
    bad_ttl: Option<u8>,
    count: usize,
}

fn speakers(heard: &[Heard]) -> (BTreeMap<(IpAddr, u8), Speaker>, Vec<String>) {
    let mut by: BTreeMap<(IpAddr, u8), Speaker> = BTreeMap::new();
    let mut broken = Vec::new();
    for h in heard {
        match &h.advert {
            Ok(a) => {
                let s = by.entry((h.src, a.vrid)).or_insert_with(|| Speaker {
                    vrid: a.vrid,
                    version: if a.version == vrrp::Version::V2 { 2 } else { 3 },
                    priority: a.priority,
                    interval_cs: a.interval_cs,
                    addresses: BTreeSet::new(),
                    bad_ttl: None,
                    count: 0,
                });
                s.priority = a.priority;
                s.interval_cs = a.interval_cs;
                s.addresses = a.addresses.iter().copied().collect();
                s.count += 1;
                if h.ttl != packet::TTL {
                    s.bad_ttl = Some(h.ttl);
                }
            }
            Err(e) => {
                let line = format!(
                    "undecodable VRRP packet from {} (VRID {}): {e}",
                    h.src,
                    h.vrid.map_or("?".to_string(), |v| v.to_string())
                );
                if !broken.contains(&line) {
                    broken.push(line);
                }
            }
        }
    }
    (by, broken)
}

fn addr_list(set: &BTreeSet<IpAddr>) -> String {
    if set.is_empty() {
        return "no addresses".into();
    }
    set.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The "what is on the wire" part of an instance's checklist.
pub(super) fn wire_items(
    inst: &InstanceConfig,
    heard: &[Heard],
    status: Option<&InstanceStatus>,
    listened: Duration,
) -> Vec<Item> {
    let mut items = Vec::new();
    let (by, broken) = speakers(heard);
    let ours: BTreeSet<IpAddr> = inst.addresses.iter().map(|v| v.addr).collect();
    let our_version = if inst.version == vrrp::Version::V2 {
        2
    } else {
        3
    };
    let on_vrid: Vec<(&IpAddr, &Speaker)> = by
        .iter()
        .filter(|((_, vrid), _)| *vrid == inst.vrid)
        .map(|((src, _), s)| (src, s))
        .collect();
    let secs = listened.as_secs_f64();
    for (src, s) in &on_vrid {
        items.push(item(
            Mark::Info,
            format!(
                "heard {src} on VRID {}: VRRPv{}, priority {}, every {} ms, {} ({} adverts in {secs:.1} s)",
                s.vrid,
                s.version,
                s.priority,
                u32::from(s.interval_cs) * 10,
                addr_list(&s.addresses),
                s.count
            ),
        ));
        if !ours.is_subset(&s.addresses) {
            items.push(fail(
                format!(
                    "VRID clash: {src} speaks on VRID {} for {}, not for ours ({}): another virtual router \
                     uses our VRID; floatip ignores its adverts (keepalived too)",
                    inst.vrid,
                    addr_list(&s.addresses),
                    addr_list(&ours)
                ),
                &[
                    "pick another VRID on one of the two clusters (`vrid`, 1-255, unique on the LAN),",
                    "or, if it is meant to be our peer, give both the same `addresses`",
                ],
            ));
        } else if s.addresses != ours {
            items.push(warn(
                format!(
                    "{src} on VRID {} lists more than our addresses ({}; ours: {}): floatip follows it \
                     (it serves all of ours), keepalived would not",
                    inst.vrid,
                    addr_list(&s.addresses),
                    addr_list(&ours)
                ),
                &["finish the address change on every host so the lists are equal again"],
            ));
        }
        if s.version != our_version {
            items.push(fail(
                format!(
                    "{src} speaks VRRPv{} on VRID {}, this instance VRRPv{our_version}: they ignore each other",
                    s.version, inst.vrid
                ),
                &["set the same `version` on every host (keepalived's IPv4 default is 2)"],
            ));
        }
        if let Some(ttl) = s.bad_ttl {
            items.push(fail(
                format!("adverts from {src} arrive with TTL {ttl}, not 255: they are dropped"),
                &["VRRP cannot cross a router: peers must share the LAN segment (no routed or NATed path)"],
            ));
        }
        if !inst.unicast_peers.is_empty() && !inst.unicast_peers.contains(src) {
            items.push(warn(
                format!("{src} advertises on VRID {} but is not in unicast_peers: its adverts are dropped", inst.vrid),
                &["add it to `unicast_peers`, or move it to another VRID"],
            ));
        }
    }
    // What the daemon heard (over the last minute) and doctor's short listen may have missed.
    for clash in status.map(|st| st.clashes.as_slice()).unwrap_or_default() {
        if on_vrid.iter().any(|(src, _)| **src == clash.address) {
            continue;
        }
        let theirs: BTreeSet<IpAddr> = clash.addresses.iter().copied().collect();
        items.push(fail(
            format!(
                "VRID clash: the daemon hears {} on VRID {} (priority {}) for {}, not for ours ({}), last {} ms ago",
                clash.address,
                inst.vrid,
                clash.priority,
                addr_list(&theirs),
                addr_list(&ours),
                clash.last_heard_age_ms
            ),
            &["pick another VRID on one of the two clusters (`vrid`, 1-255, unique on the LAN)"],
        ));
    }
    for line in broken {
        items.push(warn(
            line,
            &["check the checksum mode (`checksum`) and version on both sides"],
        ));
    }
    let others: Vec<String> = by
        .iter()
        .filter(|((_, vrid), _)| *vrid != inst.vrid)
        .map(|((src, vrid), s)| format!("{src} (VRID {vrid}, priority {})", s.priority))
        .collect();
    if !others.is_empty() && on_vrid.is_empty() {
        items.push(item(
            Mark::Info,
            format!(
                "other VRRP speakers on {}: {} (not our VRID {})",
                inst.interface,
                others.join(", "),
                inst.vrid
            ),
        ));
    }
    for peer in &inst.unicast_peers {
        if !on_vrid.iter().any(|(src, _)| *src == peer) {
            items.push(item(
                Mark::Info,
                format!("unicast peer {peer} not heard (normal while it is a backup)"),
            ));
        }
    }
    if on_vrid.is_empty() {
        let state = status.map(|s| s.state.as_str());
        let what = format!(
            "no adverts on VRID {} heard on {} in {secs:.1} s",
            inst.vrid, inst.interface
        );
        let mut causes: Vec<String> = vec![
            "a firewall dropping IP protocol 112 (see Firewall below; on peers too)".into(),
            "multicast snooping on the switch without an IGMP querier (224.0.0.18 is link-local and should pass; some switches drop it anyway)".into(),
            "a hypervisor filtering MACs or multicast (VMware: promiscuous mode / forged transmits; OpenStack: port security, allowed-address-pairs)".into(),
            "peers configured with another `vrid`, or not running".into(),
        ];
        if !others.is_empty() {
            causes.insert(
                0,
                format!(
                    "others were heard on other VRIDs: {}; is ours {} the one they use?",
                    others.join(", "),
                    inst.vrid
                ),
            );
        }
        match state {
            Some("MASTER") => items.push(item(
                Mark::Ok,
                format!("{what}: expected, this host is master (backups stay silent)"),
            )),
            Some("BACKUP") => items.push(Item {
                mark: Mark::Fail,
                text: format!("{what}, yet this host is BACKUP: it cannot hear its master"),
                fix: causes,
            }),
            _ => items.push(Item {
                mark: Mark::Warn,
                text: format!("{what}: no master is advertising (or its adverts do not reach us)"),
                fix: causes,
            }),
        }
    } else if on_vrid.iter().all(|(_, s)| ours.is_subset(&s.addresses)) {
        items.push(item(
            Mark::Ok,
            format!("adverts on VRID {} arrive, with our address set", inst.vrid),
        ));
    }
    items
}

/// Owner probes per VIP: two, 100 ms apart, listening until 400 ms after the last.
const PROBES: u32 = 2;
const SPACING: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_millis(400);

/// Who answers ARP (IPv4) or NDP (IPv6) for each VIP, next to whether this host holds it: two
/// owners, nobody, or the one expected.
pub(super) async fn owner_items(
    inst: &InstanceConfig,
    netlink: &Netlink,
    link: &LinkInfo,
    status: Option<&InstanceStatus>,
) -> Vec<Item> {
    let mut items = Vec::new();
    if !link.up {
        items.push(item(
            Mark::Info,
            "ARP owners: not checked, the interface is down",
        ));
        return items;
    }
    let present: Vec<IpAddr> = netlink
        .addresses(link.index)
        .await
        .map(|a| a.into_iter().map(|(ip, _)| ip).collect())
        .unwrap_or_default();
    let state = status.map(|st| st.state.as_str());
    for vip in &inst.addresses {
        let here = present.contains(&vip.addr);
        let answer = match vip.addr {
            IpAddr::V4(a) => probe::arp_probe(link.index, link.mac, a, PROBES, SPACING, WAIT).await,
            IpAddr::V6(a) => probe::ndp_probe(link.index, link.mac, a, PROBES, SPACING, WAIT).await,
        };
        let what = if vip.addr.is_ipv4() { "ARP" } else { "NDP" };
        match (answer, here) {
            (Err(e), _) => items.push(fail(
                format!("cannot probe {}: {e:#}", vip.addr),
                &["run doctor as root (ARP probes need CAP_NET_RAW)"],
            )),
            (Ok(Some(mac)), true) => items.push(Item {
                mark: Mark::Fail,
                text: format!(
                    "TWO OWNERS: {} is on this host's {} and {} also answers {what} for it",
                    vip.addr,
                    inst.interface,
                    control::format_mac(&mac)
                ),
                fix: vec![
                    "find that MAC (`ip neigh`, the switch's MAC table) and remove the address there: a static copy in its network config, a second VRRP group, or a crashed daemon's leftover".into(),
                    "`floatip status` on every node shows who believes it is master".into(),
                ],
            }),
            (Ok(None), true) => items.push(item(
                Mark::Ok,
                format!(
                    "{} is held by this host{}; nobody else answers {what} for it",
                    vip.addr,
                    if state == Some("MASTER") { " (master)" } else { "" }
                ),
            )),
            (Ok(Some(mac)), false) => {
                let mut it = item(
                    Mark::Ok,
                    format!(
                        "{} is answered by {} (another host)",
                        vip.addr,
                        control::format_mac(&mac)
                    ),
                );
                if state == Some("MASTER") {
                    it = fail(
                        format!(
                            "this host is MASTER but {} is not on {}, and {} answers for it",
                            vip.addr,
                            inst.interface,
                            control::format_mac(&mac)
                        ),
                        &["see `floatip status` and `journalctl -u floatip` for why the address is missing"],
                    );
                }
                items.push(it);
            }
            (Ok(None), false) => items.push(fail(
                format!("nobody answers {what} for {}: clients cannot reach it", vip.addr),
                &[
                    "is any node master? `floatip status` on each; a node refusing to claim says why",
                    "if the master holds it, its arp_ignore/arp_filter or a firewall may suppress replies",
                ],
            )),
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn instance() -> InstanceConfig {
        let text =
            "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
                    addresses = [\"192.0.2.97/24\", \"192.0.2.98/24\"]\n";
        let cfg = crate::config::parse(text, std::path::Path::new("test.toml")).unwrap();
        cfg.instances[0].clone()
    }

    fn heard(src: &str, priority: u8, addresses: &[&str]) -> Heard {
        Heard {
            src: src.parse().unwrap(),
            ttl: 255,
            vrid: Some(51),
            advert: Ok(packet::Advert {
                version: vrrp::Version::V3,
                vrid: 51,
                priority,
                interval_cs: 100,
                addresses: addresses
                    .iter()
                    .map(|a| a.parse().unwrap())
                    .collect::<Arc<[_]>>(),
            }),
        }
    }

    fn marks(items: &[Item], needle: &str) -> Vec<Mark> {
        items
            .iter()
            .filter(|i| i.text.contains(needle))
            .map(|i| i.mark)
            .collect()
    }

    #[test]
    fn a_speaker_without_our_addresses_is_named_a_clash_with_the_fix() {
        let items = wire_items(
            &instance(),
            &[heard("192.0.2.9", 254, &["192.0.2.50"])],
            None,
            Duration::from_secs(3),
        );
        let clash = items
            .iter()
            .find(|i| {
                i.text
                    .starts_with("VRID clash: 192.0.2.9 speaks on VRID 51 for 192.0.2.50")
            })
            .unwrap_or_else(|| panic!("no clash item in {items:#?}"));
        assert_eq!(clash.mark, Mark::Fail);
        assert!(
            clash.fix[0].contains("pick another VRID"),
            "{:?}",
            clash.fix
        );
    }

    #[test]
    fn order_does_not_matter_and_a_superset_is_only_a_warning() {
        let inst = instance();
        let same = wire_items(
            &inst,
            &[heard("192.0.2.2", 200, &["192.0.2.98", "192.0.2.97"])],
            None,
            Duration::from_secs(3),
        );
        assert!(marks(&same, "VRID clash").is_empty(), "{same:#?}");
        assert_eq!(marks(&same, "with our address set"), vec![Mark::Ok]);
        let more = wire_items(
            &inst,
            &[heard(
                "192.0.2.2",
                200,
                &["192.0.2.97", "192.0.2.99", "192.0.2.98"],
            )],
            None,
            Duration::from_secs(3),
        );
        assert!(marks(&more, "VRID clash").is_empty(), "{more:#?}");
        assert_eq!(
            marks(&more, "lists more than our addresses"),
            vec![Mark::Warn]
        );
    }
}
