//! `floatip up` / `floatip down`: the manual procedure (`ip addr add` + `arping -A`, `ip addr del`) made
//! safe. No daemon is needed; if one runs and manages the address, both refuse and point to
//! takeover/release, so a person at 2am cannot create two owners by hand.
//!
//! `up` asks the LAN first (RFC 5227 ARP probe, or duplicate-address detection for IPv6), adds nothing
//! if anyone answers, and otherwise adds the address permanently (like `ip addr add`, no lifetime) and
//! announces it so clients move at once.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::control::{self, format_mac, Request, Response};
use crate::net::announce::Announcer;
use crate::net::netlink::Netlink;
use crate::net::probe;

/// RFC 5227: PROBE_NUM probes; we space them 200 ms apart and then listen for 1 s.
const PROBES: u32 = 3;
const PROBE_SPACING: Duration = Duration::from_millis(200);
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// Spacing of the announcements after the add.
const ANNOUNCE_SPACING: Duration = Duration::from_millis(200);
/// The default `--count`.
pub const DEFAULT_COUNT: u32 = 3;

const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;

/// Parses "192.0.2.97/24" or "2001:db8::97/64" (the `ADDR/LEN` argument). The length is required: it
/// decides the subnet route the kernel adds, so guessing it wrong breaks things quietly.
pub fn parse_cidr(s: &str) -> anyhow::Result<(IpAddr, u8)> {
    let Some((addr, len)) = s.split_once('/') else {
        bail!(
            "{s}: give the prefix length too, like 192.0.2.97/24 (the subnet of the interface, as \
             `ip -brief addr` shows it)"
        );
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| anyhow!("{s}: {addr} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| anyhow!("{s}: the prefix length must be a number from 0 to {max}"))?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        bail!("{s}: {addr} cannot be a service address");
    }
    Ok((addr, len))
}

/// `floatip up ADDR/LEN --dev IF [--count N]`
pub async fn up(
    addr: IpAddr,
    prefix_len: u8,
    dev: &str,
    count: u32,
    socket: &Path,
) -> anyhow::Result<ExitCode> {
    check_prefix(addr, prefix_len)?;
    if count == 0 {
        bail!(
            "--count must be at least 1: an address that is not announced leaves clients talking \
             to its previous owner until their ARP/neighbour caches expire"
        );
    }
    require_caps(
        "floatip up",
        &[
            (CAP_NET_ADMIN, "CAP_NET_ADMIN, to add the address"),
            (CAP_NET_RAW, "CAP_NET_RAW, to probe and announce"),
        ],
    )?;
    if let Some(msg) = managed_by_daemon(socket, addr).await? {
        eprintln!("floatip: {msg}");
        return Ok(ExitCode::FAILURE);
    }

    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let link = netlink.link_by_name(dev).await?;
    if !link.up {
        bail!(
            "{dev} is down (not up, or no carrier): a probe there cannot see other hosts, so it \
             cannot tell whether {addr} is free; bring the link up first (`ip link set {dev} up`, \
             check the cable)"
        );
    }
    let present = netlink.addresses(link.index).await?;
    if let Some((_, len)) = present.iter().find(|(a, _)| *a == addr) {
        if *len == prefix_len {
            println!("{addr}/{len} is already on {dev}; nothing changed");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "floatip: {addr}/{len} is already on {dev} (you asked for /{prefix_len}); nothing changed. \
             To change the prefix: `floatip down {addr}/{len} --dev {dev}`, then up again"
        );
        return Ok(ExitCode::FAILURE);
    }

    let (how, answered) = match addr {
        IpAddr::V4(a) => (
            "ARP probes",
            probe::arp_probe(link.index, link.mac, a, PROBES, PROBE_SPACING, PROBE_WAIT).await,
        ),
        IpAddr::V6(a) => (
            "duplicate-address probes",
            probe::ndp_probe(link.index, link.mac, a, PROBES, PROBE_SPACING, PROBE_WAIT).await,
        ),
    };
    let answered = answered
        .map_err(|e| cap_hint(e, "CAP_NET_RAW"))
        .with_context(|| format!("cannot probe whether {addr} is in use on {dev}"))?;
    if let Some(mac) = answered {
        // thread-self: the neighbour table of this thread's network namespace.
        let arp = std::fs::read_to_string("/proc/thread-self/net/arp").unwrap_or_default();
        let hosts = hosts_with_mac(&arp, &mac, addr);
        let host = if hosts.is_empty() {
            "host: not in this machine's neighbour table".to_string()
        } else {
            let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
            format!("host {} from the neighbour table", hosts.join(", "))
        };
        eprintln!(
            "floatip: {addr} is answered by {} ({host}); not adding it. Take it off that host \
             first, then try again: if floatip manages it there, `floatip release NAME` there (a \
             planned move); if it was added by hand, `floatip down {addr}/{prefix_len} --dev IF` there",
            format_mac(&mac)
        );
        return Ok(ExitCode::FAILURE);
    }

    netlink
        .add_address(link.index, addr, prefix_len, None)
        .await
        .map_err(|e| cap_hint(e, "CAP_NET_ADMIN"))?;
    let what = if addr.is_ipv4() {
        "gratuitous ARP"
    } else {
        "unsolicited neighbour advertisement"
    };
    let sent = match announce(link.index, link.mac, addr, count).await {
        Ok(sent) => sent,
        Err(e) => {
            // The address is in place; say plainly that clients may not have moved yet.
            eprintln!(
                "floatip: added {addr}/{prefix_len} to {dev}, but cannot announce it: {e:#}; clients \
                 move when their ARP/neighbour caches expire"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "added {addr}/{prefix_len} to {dev} (nobody answered {PROBES} {how}) and announced it {sent} \
         time{} ({what} from {})",
        if sent == 1 { "" } else { "s" },
        format_mac(&link.mac)
    );
    if sent < count {
        eprintln!(
            "floatip: {} of {count} announcements could not be sent (device queue full?)",
            count - sent
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `floatip down ADDR/LEN --dev IF`
pub async fn down(
    addr: IpAddr,
    prefix_len: u8,
    dev: &str,
    socket: &Path,
) -> anyhow::Result<ExitCode> {
    check_prefix(addr, prefix_len)?;
    require_caps(
        "floatip down",
        &[(CAP_NET_ADMIN, "CAP_NET_ADMIN, to remove the address")],
    )?;
    if let Some(msg) = managed_by_daemon(socket, addr).await? {
        eprintln!("floatip: {msg}");
        return Ok(ExitCode::FAILURE);
    }
    let netlink = Netlink::new().context("cannot open netlink (needs CAP_NET_ADMIN)")?;
    let link = netlink.link_by_name(dev).await?;
    let present = netlink.addresses(link.index).await?;
    let Some(&(_, len)) = present.iter().find(|(a, _)| *a == addr) else {
        eprintln!("floatip: {addr} is not on {dev}; nothing removed");
        return Ok(ExitCode::FAILURE);
    };
    netlink
        .remove_address(link.index, addr, len)
        .await
        .map_err(|e| cap_hint(e, "CAP_NET_ADMIN"))?;
    if len == prefix_len {
        println!("removed {addr}/{len} from {dev}");
    } else {
        println!("removed {addr}/{len} from {dev} (it had /{len}, not the /{prefix_len} you gave)");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_prefix(addr: IpAddr, prefix_len: u8) -> anyhow::Result<()> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        bail!("{addr}/{prefix_len}: the prefix length must be at most {max}");
    }
    Ok(())
}

/// Sends `count` announcements 200 ms apart; returns how many went out.
async fn announce(ifindex: u32, mac: [u8; 6], addr: IpAddr, count: u32) -> anyhow::Result<u32> {
    let announcer = Announcer::open(ifindex, mac).map_err(|e| cap_hint(e, "CAP_NET_RAW"))?;
    let mut sent = 0;
    let mut last_err = None;
    for n in 0..count {
        if n > 0 {
            tokio::time::sleep(ANNOUNCE_SPACING).await;
        }
        match announcer.announce(addr) {
            Ok(()) => sent += 1,
            Err(e) => last_err = Some(e),
        }
    }
    match (sent, last_err) {
        (0, Some(e)) => Err(anyhow!(e)),
        _ => Ok(sent),
    }
}

/// `Some(message)` when a running daemon manages `addr`. No daemon is fine; a daemon that cannot be
/// asked is not: we cannot know it does not own the address.
async fn managed_by_daemon(socket: &Path, addr: IpAddr) -> anyhow::Result<Option<String>> {
    let path = socket.to_path_buf();
    let answer = tokio::task::spawn_blocking(move || {
        control::call(&path, Request::Status { instance: None })
    })
    .await
    .context("the daemon query task failed")?;
    let instances = match answer {
        Err(e) if control::is_no_daemon(&e) => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                "cannot ask the floatip daemon whether it manages {addr}, so not touching it (if \
                     no daemon should run, stop it or pass --socket)"
            )
            })
        }
        Ok(Response::Status { instances, .. }) => instances,
        Ok(Response::Error { message }) => bail!(
            "cannot ask the floatip daemon whether it manages {addr}: {message}; not touching it"
        ),
        Ok(Response::Done { .. }) => bail!("the floatip daemon answered a status request oddly"),
    };
    Ok(managing_instance(&instances, addr).map(|name| {
        format!(
            "{addr} is managed by the floatip daemon (instance {name}); use `floatip takeover {name}` \
             / `floatip release {name}`"
        )
    }))
}

/// The instance whose VIPs include `addr` (whatever the prefix length).
pub fn managing_instance(instances: &[control::InstanceStatus], addr: IpAddr) -> Option<&str> {
    instances
        .iter()
        .find(|i| {
            i.vips.iter().any(|v| {
                v.address
                    .split('/')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    == Some(addr)
            })
        })
        .map(|i| i.name.as_str())
}

/// The IPv4 neighbours (from `/proc/net/arp`-format text) that have `mac`, other than `exclude`.
pub fn hosts_with_mac(arp_table: &str, mac: &[u8; 6], exclude: IpAddr) -> Vec<Ipv4Addr> {
    let want = format_mac(mac);
    let mut out: Vec<Ipv4Addr> = arp_table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let ip: Ipv4Addr = cols.first()?.parse().ok()?;
            (cols.get(3)?.eq_ignore_ascii_case(&want) && IpAddr::V4(ip) != exclude).then_some(ip)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Refuse before changing anything when a needed capability is missing.
fn require_caps(what: &str, need: &[(u32, &str)]) -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(eff) = cap_eff(&status) else {
        return Ok(()); // Not Linux-like /proc: let the kernel say no.
    };
    let missing: Vec<&str> = need
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, why)| *why)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    bail!(
        "{what} needs {}: run it as root (sudo {what} ...)",
        missing.join(" and ")
    )
}

fn cap_eff(proc_status: &str) -> Option<u64> {
    proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn cap_hint(e: anyhow::Error, cap: &str) -> anyhow::Error {
    let text = format!("{e:#}");
    if text.contains("Operation not permitted") || text.contains("Permission denied") {
        e.context(format!("needs {cap}: run it as root"))
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_needs_a_length() {
        assert_eq!(
            parse_cidr("192.0.2.97/24").unwrap(),
            ("192.0.2.97".parse().unwrap(), 24)
        );
        assert_eq!(
            parse_cidr("2001:db8::97/64").unwrap(),
            ("2001:db8::97".parse().unwrap(), 64)
        );
        assert!(format!("{:#}", parse_cidr("192.0.2.97").unwrap_err()).contains("prefix length"));
        assert!(parse_cidr("192.0.2.97/33").is_err());
        assert!(parse_cidr("224.0.0.18/32").is_err());
    }

    #[test]
    fn neighbour_table_names_the_host() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     192.0.2.2        0x1         0x2         02:00:00:00:00:02     *        eth0\n\
                     192.0.2.97       0x1         0x2         02:00:00:00:00:02     *        eth0\n\
                     192.0.2.3        0x1         0x2         02:00:00:00:00:03     *        eth0\n";
        let mac = [2, 0, 0, 0, 0, 2];
        assert_eq!(
            hosts_with_mac(table, &mac, "192.0.2.97".parse().unwrap()),
            vec!["192.0.2.2".parse::<Ipv4Addr>().unwrap()]
        );
    }

    #[test]
    fn capabilities_are_read_from_proc() {
        assert_eq!(
            cap_eff("Name:\tx\nCapEff:\t0000000000003000\n"),
            Some(0x3000)
        );
        assert_eq!(cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn daemon_vips_match_by_address() {
        let st = control::InstanceStatus {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: 3,
            version_why: None,
            state: "BACKUP".into(),
            since: None,
            reason: None,
            priority: control::PriorityStatus {
                configured: 100,
                effective: 100,
                why_different: None,
            },
            vips: vec![control::VipStatus {
                address: "192.0.2.97/24".into(),
                present_in_kernel: false,
            }],
            master: None,
            speakers: vec![],
            counters: Default::default(),
            override_mode: None,
            claim_inhibit: None,
            conflicts: vec![],
            clashes: vec![],
            track_files: vec![],
            auth: None,
            checks: vec![],
            history: vec![],
            etcd: None,
        };
        let all = [st];
        assert_eq!(
            managing_instance(&all, "192.0.2.97".parse().unwrap()),
            Some("files")
        );
        assert_eq!(managing_instance(&all, "192.0.2.98".parse().unwrap()), None);
    }
}

/// `up`/`down` against real hosts: a lab of network namespaces (prefix "fipctl"), each call run on a
/// thread that entered the host's namespace. Needs root; skips loudly otherwise.
#[cfg(test)]
mod lab_tests {
    use super::*;
    use crate::control::{
        accept_loop, bind, select_instances, ControlCall, InstanceStatus, PriorityStatus, VipStatus,
    };
    use floatip_lab::{require_root, wait_until, Host, Lab};
    use std::path::PathBuf;

    const VIP: &str = "192.0.2.97";

    /// Runs `f` on a fresh thread inside `host`'s network namespace, with its own tokio runtime.
    fn in_host<T: Send + 'static>(
        host: &Host,
        f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> T {
        let ns = format!("/run/netns/{}", host.netns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&ns).expect("open the host's namespace");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f())
        })
        .join()
        .expect("the namespace thread panicked")
    }

    fn up_in(host: &Host, socket: PathBuf) -> ExitCode {
        in_host(host, move || {
            Box::pin(async move {
                up(VIP.parse().unwrap(), 24, "eth0", 3, &socket)
                    .await
                    .unwrap()
            })
        })
    }

    fn down_in(host: &Host, socket: PathBuf) -> ExitCode {
        in_host(host, move || {
            Box::pin(async move {
                down(VIP.parse().unwrap(), 24, "eth0", &socket)
                    .await
                    .unwrap()
            })
        })
    }

    #[test]
    fn up_refuses_a_taken_address_and_moves_clients_when_free() {
        if !require_root("fipctl_up") {
            return;
        }
        let mut lab = Lab::new("fipctlup").unwrap();
        let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
        let h2 = lab.add_host("h2", "192.0.2.2/24", None).unwrap();
        let c = lab.add_host("c", "192.0.2.100/24", None).unwrap();
        let no_daemon = lab.path("no-daemon.sock");

        // h2 holds the VIP: h1 must refuse and add nothing.
        h2.add_address("192.0.2.97/24").unwrap();
        assert!(c.can_ping(VIP));
        assert_eq!(c.neigh_mac(VIP), Some(h2.mac));
        assert!(
            h1.can_ping("192.0.2.2"),
            "so h1's neighbour table can name h2"
        );
        assert_eq!(up_in(&h1, no_daemon.clone()), ExitCode::FAILURE);
        assert!(!h1.has_address(VIP), "a refused up adds nothing");

        // h2 lets go (the client still points at it): h1 claims, and its announcements move the client.
        h2.del_address("192.0.2.97/24").unwrap();
        assert_eq!(up_in(&h1, no_daemon.clone()), ExitCode::SUCCESS);
        assert!(h1.has_address(VIP));
        assert!(
            wait_until(Duration::from_secs(3), Duration::from_millis(50), || c
                .neigh_mac(VIP)
                == Some(h1.mac)),
            "the client's ARP entry for {VIP} moved to h1 (it has {:?})",
            c.neigh_mac(VIP)
        );
        assert!(c.can_ping(VIP));
        // Again: already there, nothing changes.
        assert_eq!(up_in(&h1, no_daemon.clone()), ExitCode::SUCCESS);

        assert_eq!(down_in(&h1, no_daemon.clone()), ExitCode::SUCCESS);
        assert!(!h1.has_address(VIP));
        assert_eq!(
            down_in(&h1, no_daemon),
            ExitCode::FAILURE,
            "absent: says so"
        );
    }

    #[test]
    fn up_and_down_refuse_an_address_the_daemon_manages() {
        if !require_root("fipctl_managed") {
            return;
        }
        let mut lab = Lab::new("fipctlmanaged").unwrap();
        let h1 = lab.add_host("h1", "192.0.2.1/24", None).unwrap();
        let socket = lab.path("floatip.sock");

        // A stand-in daemon on its own thread: reports one instance managing the VIP.
        let listener = bind(&socket).unwrap();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<ControlCall>(4);
                let serve = tokio::spawn(accept_loop(listener, tx));
                let answer = tokio::spawn(async move {
                    while let Some(call) = rx.recv().await {
                        let _ = call.reply.send(select_instances(vec![managed()], None));
                    }
                });
                tokio::task::spawn_blocking(move || stop_rx.recv())
                    .await
                    .unwrap()
                    .ok();
                answer.abort();
                serve.abort();
            })
        });

        assert_eq!(up_in(&h1, socket.clone()), ExitCode::FAILURE);
        assert!(!h1.has_address(VIP));
        h1.add_address("192.0.2.97/24").unwrap();
        assert_eq!(down_in(&h1, socket.clone()), ExitCode::FAILURE);
        assert!(h1.has_address(VIP), "down refused: the address stays");

        stop_tx.send(()).unwrap();
        server.join().unwrap();
        assert!(!socket.exists());
    }

    fn managed() -> InstanceStatus {
        InstanceStatus {
            name: "files".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: 3,
            version_why: None,
            state: "BACKUP".into(),
            since: None,
            reason: None,
            priority: PriorityStatus {
                configured: 100,
                effective: 100,
                why_different: None,
            },
            vips: vec![VipStatus {
                address: "192.0.2.97/24".into(),
                present_in_kernel: false,
            }],
            master: None,
            speakers: vec![],
            counters: Default::default(),
            override_mode: None,
            claim_inhibit: None,
            conflicts: vec![],
            clashes: vec![],
            track_files: vec![],
            auth: None,
            checks: vec![],
            history: vec![],
            etcd: None,
        }
    }
}
