//! `floatip doctor`: a checklist of everything that commonly stops a floating IP from working, each
//! failure with the line that fixes it.
//!
//! It only looks: it opens a VRRP socket to listen (never sends adverts), sends ARP probes / DAD
//! solicitations (RFC 5227: they never change anyone's ARP cache), reads `/proc/sys`, and runs
//! `nft -j list ruleset` when nft is installed. Run it as root (raw sockets, nftables).
//!
//! Order of the report: the daemon, then per instance the interface, its address, what is heard on
//! the wire, who answers ARP for each VIP and the sysctls that bite; then the firewall.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, InstanceConfig};
use crate::control::{self, InstanceStatus, Request, Response};
use crate::net::netlink::{LinkInfo, Netlink};
use crate::net::probe;
use crate::net::vrrp_socket::VrrpSocket;
use vrrp::packet::{self, ChecksumMode};

/// How one line of the checklist came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Worth knowing, may bite; does not fail the run.
    Warn,
    Fail,
    /// A plain fact (who was heard, what was skipped).
    Info,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Info => "·",
        }
    }
}

/// One line of the checklist, with its fix (one or more lines) when it is not OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub mark: Mark,
    pub text: String,
    pub fix: Vec<String>,
}

fn item(mark: Mark, text: impl Into<String>) -> Item {
    Item {
        mark,
        text: text.into(),
        fix: Vec::new(),
    }
}

fn fail(text: impl Into<String>, fix: &[&str]) -> Item {
    Item {
        mark: Mark::Fail,
        text: text.into(),
        fix: fix.iter().map(|s| s.to_string()).collect(),
    }
}

fn warn(text: impl Into<String>, fix: &[&str]) -> Item {
    Item {
        mark: Mark::Warn,
        text: text.into(),
        fix: fix.iter().map(|s| s.to_string()).collect(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// The whole checklist.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sections: Vec<Section>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.items().filter(|i| i.mark == Mark::Fail).count()
    }

    pub fn warnings(&self) -> usize {
        self.items().filter(|i| i.mark == Mark::Warn).count()
    }

    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.sections.iter().flat_map(|s| s.items.iter())
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let _ = writeln!(out, "{}", s.title);
            for i in &s.items {
                let _ = writeln!(out, "  {} {}", i.mark.symbol(), i.text);
                for f in &i.fix {
                    let _ = writeln!(out, "      fix: {f}");
                }
            }
            out.push('\n');
        }
        let (f, w) = (self.failures(), self.warnings());
        if f == 0 && w == 0 {
            out.push_str("No problems found.\n");
        } else {
            let _ = writeln!(
                out,
                "{f} problem{} and {w} warning{} (✗ = broken, ! = may bite).",
                if f == 1 { "" } else { "s" },
                if w == 1 { "" } else { "s" }
            );
        }
        out
    }
}

/// Runs every check, prints the checklist, and exits 0 when nothing failed (warnings allowed), 1
/// otherwise.
pub async fn doctor(config: &Config, socket: &Path) -> anyhow::Result<ExitCode> {
    let report = run(config, socket).await;
    print!("{}", report.render());
    Ok(if report.failures() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the report (what [`doctor`] prints).
pub async fn run(config: &Config, socket: &Path) -> Report {
    let mut report = Report::default();

    let socket_owned = socket.to_path_buf();
    let daemon = tokio::task::spawn_blocking(move || {
        control::call(&socket_owned, Request::Status { instance: None })
    })
    .await;
    let mut daemon_section = Section {
        title: "Daemon".into(),
        items: vec![],
    };
    let statuses: Option<Vec<InstanceStatus>> = match daemon {
        Ok(Ok(Response::Status { instances })) => {
            let line = instances
                .iter()
                .map(|i| format!("{}: {}", i.name, i.state))
                .collect::<Vec<_>>()
                .join("; ");
            daemon_section.items.push(item(
                Mark::Ok,
                format!("running, answering on {} ({line})", socket.display()),
            ));
            Some(instances)
        }
        Ok(Ok(other)) => {
            daemon_section.items.push(warn(
                format!(
                    "the daemon on {} answered oddly: {other:?}",
                    socket.display()
                ),
                &["make sure the floatip CLI and daemon are the same version"],
            ));
            None
        }
        Ok(Err(e)) => {
            daemon_section.items.push(warn(
                format!("no daemon answers on {}: {e:#}", socket.display()),
                &[
                    "start it: `systemctl start floatip` (logs: `journalctl -u floatip`)",
                    "or point doctor at its socket: --socket PATH",
                ],
            ));
            None
        }
        Err(e) => {
            daemon_section
                .items
                .push(warn(format!("cannot ask the daemon: {e}"), &[]));
            None
        }
    };
    report.sections.push(daemon_section);

    let netlink = match Netlink::new() {
        Ok(n) => Some(n),
        Err(e) => {
            report.sections.push(Section {
                title: "Netlink".into(),
                items: vec![fail(
                    format!("cannot open netlink: {e:#}"),
                    &["run doctor as root"],
                )],
            });
            None
        }
    };

    // Resolve links first, so listening can run while the other checks do.
    let mut links: HashMap<String, Option<LinkInfo>> = HashMap::new();
    if let Some(nl) = &netlink {
        for inst in &config.instances {
            if !links.contains_key(&inst.interface) {
                links.insert(
                    inst.interface.clone(),
                    nl.link_by_name(&inst.interface).await.ok(),
                );
            }
        }
    }
    let listen_for = listen_duration(config);
    let mut listeners = Vec::new();
    let mut groups: BTreeSet<(String, bool)> = BTreeSet::new();
    for inst in &config.instances {
        groups.insert((inst.interface.clone(), inst.is_v6()));
    }
    for (ifname, v6) in groups {
        let Some(Some(link)) = links.get(&ifname) else {
            continue;
        };
        if !link.up {
            continue;
        }
        let (index, name) = (link.index, ifname.clone());
        listeners.push((
            (ifname, v6),
            tokio::spawn(async move { listen(&name, index, v6, listen_for).await }),
        ));
    }

    let mut per_instance = Vec::new();
    for inst in &config.instances {
        let status = statuses
            .as_ref()
            .and_then(|s| s.iter().find(|i| i.name == inst.name));
        let link = links.get(&inst.interface).cloned().flatten();
        per_instance.push(
            instance_checks(
                inst,
                netlink.as_ref(),
                link.as_ref(),
                status,
                statuses.is_some(),
            )
            .await,
        );
    }

    let mut heard: HashMap<(String, bool), Result<Vec<Heard>, String>> = HashMap::new();
    for (key, task) in listeners {
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(format!("listener failed: {e}")),
        };
        heard.insert(key, result);
    }

    for (inst, mut section) in config.instances.iter().zip(per_instance) {
        let status = statuses
            .as_ref()
            .and_then(|s| s.iter().find(|i| i.name == inst.name));
        let link = links.get(&inst.interface).cloned().flatten();
        match (&link, heard.get(&(inst.interface.clone(), inst.is_v6()))) {
            (Some(_), Some(Ok(list))) => section
                .items
                .extend(wire_items(inst, list, status, listen_for)),
            (Some(_), Some(Err(e))) => section.items.push(fail(
                format!("cannot listen for adverts on {}: {e}", inst.interface),
                &["run doctor as root (raw sockets need CAP_NET_RAW)"],
            )),
            (Some(l), None) if !l.up => section.items.push(item(
                Mark::Info,
                "adverts: not checked, the interface is down",
            )),
            _ => section.items.push(item(
                Mark::Info,
                "adverts: not checked, the interface is missing",
            )),
        }
        report.sections.push(section);
    }

    report.sections.push(sysctl_section(config));
    report.sections.push(firewall_section(config).await);
    report
}

/// Three advert intervals of the slowest instance, within 1..=15 s.
fn listen_duration(config: &Config) -> Duration {
    let longest = config
        .instances
        .iter()
        .map(|i| i.advert_interval)
        .max()
        .unwrap_or(Duration::from_secs(1));
    (3 * longest + Duration::from_millis(200))
        .clamp(Duration::from_secs(1), Duration::from_secs(15))
}

/// One VRRP packet heard while listening.
#[derive(Debug, Clone)]
pub struct Heard {
    pub src: IpAddr,
    pub ttl: u8,
    pub advert: Result<packet::Advert, String>,
    pub vrid: Option<u8>,
}

async fn listen(ifname: &str, index: u32, v6: bool, dur: Duration) -> Result<Vec<Heard>, String> {
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
        out.push(Heard {
            src: d.src,
            ttl: d.ttl,
            advert: packet::decode(bytes, d.src, d.dst, ChecksumMode::AcceptEither)
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
fn wire_items(
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
        if s.addresses != ours {
            items.push(fail(
                format!(
                    "{src} uses VRID {} with a different address set ({}; ours: {})",
                    inst.vrid,
                    addr_list(&s.addresses),
                    addr_list(&ours)
                ),
                &[
                    "every host of one VRID must carry the same addresses: fix `addresses` on one side,",
                    "or give one of the groups another `vrid` (1-255, unique on the LAN)",
                ],
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
    } else if on_vrid.iter().all(|(_, s)| s.addresses == ours) {
        items.push(item(
            Mark::Ok,
            format!("adverts on VRID {} arrive, with our address set", inst.vrid),
        ));
    }
    items
}

/// Interface, primary address and ARP ownership of one instance.
async fn instance_checks(
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
    if !link.up {
        s.items.push(item(
            Mark::Info,
            "ARP owners: not checked, the interface is down",
        ));
        return s;
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
            IpAddr::V4(a) => {
                probe::arp_probe(
                    link.index,
                    link.mac,
                    a,
                    2,
                    Duration::from_millis(100),
                    Duration::from_millis(400),
                )
                .await
            }
            IpAddr::V6(a) => {
                probe::ndp_probe(
                    link.index,
                    link.mac,
                    a,
                    2,
                    Duration::from_millis(100),
                    Duration::from_millis(400),
                )
                .await
            }
        };
        let what = if vip.addr.is_ipv4() { "ARP" } else { "NDP" };
        match (answer, here) {
            (Err(e), _) => s.items.push(fail(
                format!("cannot probe {}: {e:#}", vip.addr),
                &["run doctor as root (ARP probes need CAP_NET_RAW)"],
            )),
            (Ok(Some(mac)), true) => s.items.push(Item {
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
            (Ok(None), true) => s.items.push(item(
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
                s.items.push(it);
            }
            (Ok(None), false) => s.items.push(fail(
                format!("nobody answers {what} for {}: clients cannot reach it", vip.addr),
                &[
                    "is any node master? `floatip status` on each; a node refusing to claim says why",
                    "if the master holds it, its arp_ignore/arp_filter or a firewall may suppress replies",
                ],
            )),
        }
    }
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

fn read_sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(Path::new("/proc/sys").join(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The sysctls that bite, per interface in use (the kernel uses the larger of `all` and the
/// interface's value for these).
fn sysctl_section(config: &Config) -> Section {
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

// ---------------------------------------------------------------------------------------------------
// nftables
// ---------------------------------------------------------------------------------------------------

/// A firewall rule or policy that drops VRRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftDrop {
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The rule's handle; `None` for a chain policy.
    pub handle: Option<u64>,
    /// Whether it affects IPv4 / IPv6 VRRP.
    pub v4: bool,
    pub v6: bool,
    /// The base chain's hook, when it is one.
    pub hook: Option<String>,
}

fn is_vrrp(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "vrrp",
        Value::Number(n) => n.as_u64() == Some(112),
        Value::Object(o) => o
            .get("set")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(is_vrrp)),
        Value::Array(a) => a.iter().any(is_vrrp),
        _ => false,
    }
}

/// How one match expression relates to VRRP: `Some((positive, v4, v6))` when it tests the
/// protocol against VRRP.
fn vrrp_match(m: &Value) -> Option<(bool, bool, bool)> {
    let left = m.get("left")?;
    let (v4, v6) = if let Some(p) = left.get("payload") {
        match (
            p.get("protocol").and_then(Value::as_str),
            p.get("field").and_then(Value::as_str),
        ) {
            (Some("ip"), Some("protocol")) => (true, false),
            (Some("ip6"), Some("nexthdr")) => (false, true),
            _ => return None,
        }
    } else if let Some(meta) = left.get("meta") {
        match meta.get("key").and_then(Value::as_str) {
            Some("l4proto") => (true, true),
            _ => return None,
        }
    } else {
        return None;
    };
    if !is_vrrp(m.get("right")?) {
        return None;
    }
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let positive = matches!(op, "==" | "in");
    Some((positive, v4, v6))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Drop,
    Other,
}

/// (verdict, VRRP match, whether any other match exists)
fn classify(expr: &[Value]) -> (Verdict, Option<(bool, bool, bool)>, bool) {
    let mut verdict = Verdict::Other;
    let mut vrrp = None;
    let mut other = false;
    for e in expr {
        if let Some(m) = e.get("match") {
            match vrrp_match(m) {
                Some(v) => vrrp = Some(v),
                None => other = true,
            }
        } else if e.get("drop").is_some() || e.get("reject").is_some() {
            verdict = Verdict::Drop;
        } else if e.get("accept").is_some() {
            verdict = Verdict::Accept;
        } else if e.get("jump").is_some() || e.get("goto").is_some() || e.get("return").is_some() {
            verdict = Verdict::Other;
        }
    }
    (verdict, vrrp, other)
}

/// Finds rules and policies that drop VRRP in `nft -j list ruleset` output.
///
/// Per chain, in order: a rule matching VRRP with drop/reject is reported (unless VRRP was accepted
/// earlier in that chain); in base chains hooked at input, output or prerouting (and netdev ingress),
/// an unconditional drop rule or a `policy drop` before any rule accepting VRRP is reported too.
/// Rules that also match other things (an interface, an address) are assumed to apply: the report
/// names them so a person can judge.
pub fn nft_drops(ruleset: &Value) -> Vec<NftDrop> {
    let Some(items) = ruleset.get("nftables").and_then(Value::as_array) else {
        return vec![];
    };
    struct Chain {
        hook: Option<String>,
        policy_drop: bool,
        rules: Vec<(u64, Vec<Value>)>,
    }
    let mut chains: BTreeMap<(String, String, String), Chain> = BTreeMap::new();
    let mut order: Vec<(String, String, String)> = Vec::new();
    let key_of = |o: &Value, name_key: &str| -> Option<(String, String, String)> {
        Some((
            o.get("family")?.as_str()?.to_string(),
            o.get("table")?.as_str()?.to_string(),
            o.get(name_key)?.as_str()?.to_string(),
        ))
    };
    for it in items {
        if let Some(c) = it.get("chain") {
            let Some(key) = key_of(c, "name") else {
                continue;
            };
            if !chains.contains_key(&key) {
                order.push(key.clone());
            }
            chains.insert(
                key,
                Chain {
                    hook: c.get("hook").and_then(Value::as_str).map(str::to_string),
                    policy_drop: c.get("policy").and_then(Value::as_str) == Some("drop"),
                    rules: vec![],
                },
            );
        } else if let Some(r) = it.get("rule") {
            let Some(key) = key_of(r, "chain") else {
                continue;
            };
            let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
            let expr = r
                .get("expr")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !chains.contains_key(&key) {
                order.push(key.clone());
                chains.insert(
                    key.clone(),
                    Chain {
                        hook: None,
                        policy_drop: false,
                        rules: vec![],
                    },
                );
            }
            if let Some(c) = chains.get_mut(&key) {
                c.rules.push((handle, expr));
            }
        }
    }
    let mut out = Vec::new();
    for key in order {
        let (family, table, chain) = key.clone();
        let c = &chains[&key];
        let fam_v4 = matches!(family.as_str(), "ip" | "inet" | "netdev" | "bridge");
        let fam_v6 = matches!(family.as_str(), "ip6" | "inet" | "netdev" | "bridge");
        if !fam_v4 && !fam_v6 {
            continue;
        }
        let watched = c
            .hook
            .as_deref()
            .is_some_and(|h| matches!(h, "input" | "output" | "prerouting" | "ingress"));
        // Which families are still undecided for VRRP in this chain.
        let (mut open4, mut open6) = (fam_v4, fam_v6);
        for (handle, expr) in &c.rules {
            let (verdict, vrrp, other) = classify(expr);
            let drop = |v4: bool, v6: bool| NftDrop {
                family: family.clone(),
                table: table.clone(),
                chain: chain.clone(),
                handle: Some(*handle),
                v4,
                v6,
                hook: c.hook.clone(),
            };
            match (verdict, vrrp) {
                (Verdict::Drop, Some((true, v4, v6))) => {
                    let (a, b) = (v4 && open4, v6 && open6);
                    if a || b {
                        out.push(drop(a, b));
                    }
                    if !other {
                        open4 &= !v4;
                        open6 &= !v6;
                    }
                }
                (Verdict::Accept, Some((true, v4, v6))) => {
                    open4 &= !v4;
                    open6 &= !v6;
                }
                (Verdict::Drop, None) if !other && watched => {
                    if open4 || open6 {
                        out.push(drop(open4, open6));
                    }
                    open4 = false;
                    open6 = false;
                }
                (Verdict::Accept, None) if !other => {
                    open4 = false;
                    open6 = false;
                }
                _ => {}
            }
        }
        if watched && c.policy_drop && (open4 || open6) {
            out.push(NftDrop {
                family,
                table,
                chain,
                handle: None,
                v4: open4,
                v6: open6,
                hook: c.hook.clone(),
            });
        }
    }
    out
}

/// `nft -a list ruleset` text: (family, table, chain, handle) -> rule text.
pub fn nft_rule_texts(text: &str) -> HashMap<(String, String, String, u64), String> {
    let mut out = HashMap::new();
    let (mut fam, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            let mut p = rest.split_whitespace();
            fam = p.next().unwrap_or_default().to_string();
            table = p.next().unwrap_or_default().to_string();
        } else if let Some(rest) = t.strip_prefix("chain ") {
            chain = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        } else if let Some((rule, h)) = t.rsplit_once(" # handle ") {
            if let Ok(h) = h.trim().parse::<u64>() {
                out.insert(
                    (fam.clone(), table.clone(), chain.clone(), h),
                    rule.trim().to_string(),
                );
            }
        }
    }
    out
}

fn accept_rule(family: &str, v4: bool, v6: bool) -> &'static str {
    match family {
        "ip" => "ip protocol vrrp accept",
        "ip6" => "ip6 nexthdr vrrp accept",
        _ if v4 && !v6 => "ip protocol vrrp accept",
        _ if v6 && !v4 => "ip6 nexthdr vrrp accept",
        _ => "meta l4proto vrrp accept",
    }
}

async fn run_nft(args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("nft")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "nft did not answer within 10 s".to_string())?
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn firewall_section(config: &Config) -> Section {
    let mut s = Section {
        title: "Firewall".into(),
        items: vec![],
    };
    let uses_v4 = config.instances.iter().any(|i| !i.is_v6());
    let uses_v6 = config.instances.iter().any(|i| i.is_v6());
    let json = match run_nft(&["-j", "list", "ruleset"]).await {
        Ok(j) => j,
        Err(e) if e.contains("No such file") || e.contains("not found") => {
            s.items.push(item(
                Mark::Info,
                "nft is not installed: nftables rules not checked (check iptables by hand: `iptables -S | grep -E 'vrrp|112'`)",
            ));
            return s;
        }
        Err(e) => {
            s.items.push(warn(
                format!("cannot list nftables rules: {e}"),
                &["run doctor as root"],
            ));
            return s;
        }
    };
    let ruleset: Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => {
            s.items.push(warn(
                format!("cannot read `nft -j list ruleset` output: {e}"),
                &[],
            ));
            return s;
        }
    };
    let texts = run_nft(&["-a", "list", "ruleset"])
        .await
        .map(|t| nft_rule_texts(&t))
        .unwrap_or_default();
    let drops: Vec<NftDrop> = nft_drops(&ruleset)
        .into_iter()
        .filter(|d| (d.v4 && uses_v4) || (d.v6 && uses_v6))
        .collect();
    if drops.is_empty() {
        s.items.push(item(
            Mark::Ok,
            "no nftables rule or policy drops VRRP (IP protocol 112)",
        ));
        return s;
    }
    for d in drops {
        let fams = match (d.v4, d.v6) {
            (true, true) => "IPv4 and IPv6",
            (true, false) => "IPv4",
            _ => "IPv6",
        };
        let accept = accept_rule(&d.family, d.v4, d.v6);
        match d.handle {
            Some(h) => {
                let text = texts
                    .get(&(d.family.clone(), d.table.clone(), d.chain.clone(), h))
                    .map(|t| format!(": `{t}`"))
                    .unwrap_or_default();
                s.items.push(Item {
                    mark: Mark::Fail,
                    text: format!(
                        "nftables drops VRRP (IP protocol 112, {fams}): table {} {} chain {} rule handle {h}{text}",
                        d.family, d.table, d.chain
                    ),
                    fix: vec![
                        format!(
                            "accept VRRP before it: nft insert rule {} {} {} position {h} {accept}",
                            d.family, d.table, d.chain
                        ),
                        format!(
                            "or remove it: nft delete rule {} {} {} handle {h}; then persist in /etc/nftables.conf",
                            d.family, d.table, d.chain
                        ),
                    ],
                });
            }
            None => s.items.push(Item {
                mark: Mark::Fail,
                text: format!(
                    "nftables drops VRRP (IP protocol 112, {fams}): chain {} {} {} (hook {}) has policy drop and no rule accepting VRRP",
                    d.family,
                    d.table,
                    d.chain,
                    d.hook.as_deref().unwrap_or("?")
                ),
                fix: vec![format!(
                    "nft insert rule {} {} {} {accept}; then persist in /etc/nftables.conf",
                    d.family, d.table, d.chain
                )],
            }),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruleset(rules: &str) -> Value {
        serde_json::from_str(&format!(r#"{{"nftables": [{rules}]}}"#)).unwrap()
    }

    const CHAIN: &str = r#"{"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}"#;
    const CHAIN_DROP: &str = r#"{"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}"#;
    const VRRP_DROP: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, {"drop": null}]}}"#;
    const VRRP_ACCEPT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 3, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": 112}}, {"accept": null}]}}"#;
    const SSH_ACCEPT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}"#;
    const NOT_VRRP_DROP: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 5, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}}, {"drop": null}]}}"#;
    const SET_REJECT: &str = r#"{"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "nexthdr"}}, "right": {"set": ["tcp", "vrrp"]}}}, {"reject": {"type": "icmpx", "expr": "port-unreachable"}}]}}"#;

    #[test]
    fn a_vrrp_drop_rule_is_found() {
        let d = nft_drops(&ruleset(&format!("{CHAIN}, {VRRP_DROP}")));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].handle, Some(2));
        assert!(d[0].v4 && !d[0].v6);
        assert_eq!(
            (
                d[0].family.as_str(),
                d[0].table.as_str(),
                d[0].chain.as_str()
            ),
            ("inet", "t", "in")
        );
    }

    #[test]
    fn an_earlier_accept_wins() {
        assert!(nft_drops(&ruleset(&format!("{CHAIN}, {VRRP_ACCEPT}, {VRRP_DROP}"))).is_empty());
        assert!(nft_drops(&ruleset(&format!("{CHAIN_DROP}, {VRRP_ACCEPT}"))).is_empty());
    }

    #[test]
    fn policy_drop_without_vrrp_accept_is_found() {
        let d = nft_drops(&ruleset(&format!("{CHAIN_DROP}, {SSH_ACCEPT}")));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].handle, None);
        assert!(d[0].v4 && d[0].v6);
    }

    #[test]
    fn negated_and_set_matches() {
        assert!(nft_drops(&ruleset(&format!("{CHAIN}, {NOT_VRRP_DROP}"))).is_empty());
        let d = nft_drops(&ruleset(&format!("{CHAIN}, {SET_REJECT}")));
        assert_eq!(d.len(), 1);
        assert!(!d[0].v4 && d[0].v6);
    }

    #[test]
    fn rule_texts_by_handle() {
        let text = "table inet t { # handle 1\n\tchain in { # handle 1\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip protocol vrrp drop # handle 2\n\t}\n}\n";
        let t = nft_rule_texts(text);
        assert_eq!(
            t.get(&("inet".into(), "t".into(), "in".into(), 2))
                .map(String::as_str),
            Some("ip protocol vrrp drop")
        );
    }

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

    #[test]
    fn report_counts_and_renders() {
        let r = Report {
            sections: vec![Section {
                title: "X".into(),
                items: vec![
                    item(Mark::Ok, "fine"),
                    fail("broken", &["do this"]),
                    warn("hmm", &[]),
                ],
            }],
        };
        assert_eq!((r.failures(), r.warnings()), (1, 1));
        let text = r.render();
        assert!(text.contains("  ✗ broken\n      fix: do this\n"), "{text}");
        assert!(text.contains("1 problem and 1 warning"), "{text}");
    }
}
