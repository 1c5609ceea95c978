//! Real-kernel tests of `floatip::net` in network namespaces.
//!
//! Each test builds its own tiny lab (`tests/common`, from `floatip_lab`): a "switch" namespace
//! holding a bridge, and hosts h1.. whose `eth0` is a veth into that bridge, at 192.0.2.N/24 and
//! 2001:db8::N/64. Nothing is added to the root namespace, and dropping the lab deletes every
//! namespace (also on panic).
//! Code runs inside a namespace on a dedicated thread that `setns`es into it; sockets keep the
//! namespace they were created in, so one thread can hold sockets of several hosts.
//!
//! Needs root (CAP_SYS_ADMIN + CAP_NET_RAW). Without it every test prints "SKIPPED" and passes, unless
//! `CI=true`, where it fails.

mod common;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use floatip::net::announce::Announcer;
use floatip::net::netlink::{self, NetEvent, Netlink};
use floatip::net::probe::{arp_probe, ndp_probe, ConflictWatch};
use floatip::net::vrrp_socket::{VrrpSocket, VRRP_GROUP_V4, VRRP_GROUP_V6};
use floatip_lab::format_mac;

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip(8)");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `host`'s link-local address on eth0.
fn link_local(host: &Host) -> Ipv6Addr {
    let out = ip(&[
        "-n",
        &host.netns,
        "-6",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
        "scope",
        "link",
    ]);
    let word = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .expect("no link-local address");
    word.split('/').next().unwrap().parse().unwrap()
}

/// Moves the current thread into namespace `ns`.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Runs `f` on a fresh thread (so setns never touches a test-harness thread) with a current-thread
/// tokio runtime; panics propagate.
fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    });
    if let Err(p) = h.join() {
        std::panic::resume_unwind(p);
    }
}

async fn eth0(nl: &Netlink) -> u32 {
    nl.link_by_name("eth0").await.unwrap().index
}

#[test]
fn netlink_addresses() {
    if !require_root("netlink_addresses") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("netlink_addresses", 1, true);
    let ns = hosts[0].netns.clone();
    let mac = hosts[0].mac;
    run(move || async move {
        enter(&ns);
        let nl = Netlink::new().unwrap();
        let link = nl.link_by_name("eth0").await.unwrap();
        assert_eq!(link.name, "eth0");
        assert_eq!(link.mac, mac);
        assert!(link.up);
        assert_eq!(nl.link_by_index(link.index).await.unwrap(), link);
        let err = nl.link_by_name("eth9").await.unwrap_err().to_string();
        assert!(err.contains("interface eth9 not found"), "{err}");
        let idx = link.index;

        // Primary addresses.
        let vip: IpAddr = "192.0.2.50".parse().unwrap();
        assert_eq!(
            nl.primary_address(idx, false, &[vip]).await.unwrap(),
            Some("192.0.2.1".parse().unwrap())
        );
        let ll = nl.primary_address(idx, true, &[]).await.unwrap().unwrap();
        assert!(ll.to_string().starts_with("fe80:"), "{ll}");

        // Lifetime: added twice (refresh), one copy, expires by itself.
        nl.add_address(idx, vip, 24, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        nl.add_address(idx, vip, 24, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let added = Instant::now();
        let count = |v: &[(IpAddr, u8)]| v.iter().filter(|(a, _)| *a == vip).count();
        assert_eq!(count(&nl.addresses(idx).await.unwrap()), 1);
        let det = nl.address_details(idx).await.unwrap();
        let d = det.iter().find(|d| d.addr == vip).unwrap();
        assert!(d.valid_lft.is_some_and(|v| v <= 2), "{d:?}");
        // The VIP is not the primary even though it is in another position.
        assert_eq!(
            nl.primary_address(idx, false, &[vip]).await.unwrap(),
            Some("192.0.2.1".parse().unwrap())
        );
        let mut gone = None;
        for _ in 0..250 {
            if count(&nl.addresses(idx).await.unwrap()) == 0 {
                gone = Some(added.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gone = gone.expect("address with a 2 s lifetime still there after 5 s");
        eprintln!("IPv4 address with valid_lft 2 s disappeared after {gone:?}");
        assert!(gone >= Duration::from_millis(1500), "{gone:?}");

        // Forever; refresh from finite to forever.
        nl.add_address(idx, vip, 24, Some(Duration::from_secs(30)))
            .await
            .unwrap();
        nl.add_address(idx, vip, 24, None).await.unwrap();
        let det = nl.address_details(idx).await.unwrap();
        let d = det.iter().find(|d| d.addr == vip).unwrap();
        assert_eq!(d.valid_lft, None, "{d:?}");
        nl.remove_address(idx, vip, 24).await.unwrap();
        assert_eq!(count(&nl.addresses(idx).await.unwrap()), 0);
        // Removing an absent address is fine.
        nl.remove_address(idx, vip, 24).await.unwrap();

        // IPv6: never tentative, lifetime honoured.
        let vip6: IpAddr = "2001:db8::50".parse().unwrap();
        nl.add_address(idx, vip6, 64, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let added6 = Instant::now();
        nl.add_address(idx, vip6, 64, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        for _ in 0..3 {
            let det = nl.address_details(idx).await.unwrap();
            let ds: Vec<_> = det.iter().filter(|d| d.addr == vip6).collect();
            assert_eq!(ds.len(), 1);
            assert!(!ds[0].is_tentative(), "{:?}", ds[0]);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let out = ip(&["-n", &ns, "-6", "addr", "show", "dev", "eth0", "tentative"]);
        assert!(!out.contains("2001:db8::50"), "{out}");
        let mut gone6 = None;
        for _ in 0..250 {
            if !nl
                .addresses(idx)
                .await
                .unwrap()
                .iter()
                .any(|(a, _)| *a == vip6)
            {
                gone6 = Some(added6.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gone6 = gone6.expect("IPv6 address with a 2 s lifetime still there after 5 s");
        eprintln!("IPv6 address with valid_lft 2 s disappeared after {gone6:?}");
        nl.remove_address(idx, vip6, 64).await.unwrap();
    });
}

#[test]
fn refresher_sets_lifetimes_and_reports_failures_by_address() {
    if !require_root("refresher_sets_lifetimes_and_reports_failures_by_address") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts(
        "refresher_sets_lifetimes_and_reports_failures_by_address",
        1,
        true,
    );
    let ns = hosts[0].netns.clone();
    run(move || async move {
        enter(&ns);
        let nl = Netlink::new().unwrap();
        let idx = eth0(&nl).await;
        let mut r = netlink::Refresher::open().unwrap();
        let vip: IpAddr = "192.0.2.51".parse().unwrap();
        // Adds the missing address, then pushes its lifetime forward.
        r.refresh(idx, vip, 24, Duration::from_secs(5)).unwrap();
        r.refresh(idx, vip, 24, Duration::from_secs(30)).unwrap();
        let mut seen = None;
        for _ in 0..50 {
            let det = nl.address_details(idx).await.unwrap();
            seen = det.iter().find(|d| d.addr == vip).map(|d| d.valid_lft);
            if seen.is_some_and(|l| l.is_some_and(|l| l > 5)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            seen.is_some_and(|l| l.is_some_and(|l| (6..=30).contains(&l))),
            "{seen:?}"
        );
        // Success is silent: nothing to read.
        assert!(r.errors().is_empty());

        // A refresh the kernel refuses (no such interface) makes the socket readable, and the
        // report names the address it was for.
        let other: IpAddr = "192.0.2.52".parse().unwrap();
        r.refresh(idx + 1000, other, 24, Duration::from_secs(5))
            .unwrap();
        let mut pfd = libc::pollfd {
            fd: r.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 2000) };
        assert_eq!(n, 1, "no error report within 2 s");
        let errs = r.errors();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, Some(other));
        assert_eq!(
            errs[0].1.raw_os_error(),
            Some(libc::ENODEV),
            "{:?}",
            errs[0].1
        );
        assert!(r.errors().is_empty());
        nl.remove_address(idx, vip, 24).await.unwrap();
    });
}

#[test]
fn the_monitor_filter_drops_the_loops_own_refreshes() {
    if !require_root("the_monitor_filter_drops_the_loops_own_refreshes") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("the_monitor_filter_drops_the_loops_own_refreshes", 1, true);
    let ns = hosts[0].netns.clone();
    run(move || async move {
        enter(&ns);
        let nl = Netlink::new().unwrap();
        let idx = eth0(&nl).await;
        let mut r = netlink::Refresher::open().unwrap();
        let (mut rx, mut filter) = netlink::monitor_filtered(Some(r.port())).unwrap();
        let added = |addr: &str, prefix_len| NetEvent::AddressAdded {
            index: idx,
            addr: addr.parse().unwrap(),
            prefix_len,
        };
        let life = Duration::from_secs(30);
        // IPv4: the refresher's notifications carry its port and are dropped; anyone else's pass.
        let vip: IpAddr = "192.0.2.51".parse().unwrap();
        r.refresh(idx, vip, 24, life).unwrap();
        r.refresh(idx, vip, 24, life).unwrap();
        nl.add_address(idx, "192.0.2.52".parse().unwrap(), 24, Some(life))
            .await
            .unwrap();
        expect_without(
            &mut rx,
            added("192.0.2.52", 24),
            Some(added("192.0.2.51", 24)),
        )
        .await;

        // IPv6 notifications carry no port: a held VIP is dropped by address, its removal is not.
        let vip6: IpAddr = "2001:db8::51".parse().unwrap();
        let IpAddr::V6(v6) = vip6 else { unreachable!() };
        filter.ignore_added_v6(vec![(idx, v6)]).unwrap();
        r.refresh(idx, vip6, 64, life).unwrap();
        r.refresh(idx, vip6, 64, life).unwrap();
        nl.add_address(idx, "2001:db8::52".parse().unwrap(), 64, Some(life))
            .await
            .unwrap();
        expect_without(
            &mut rx,
            added("2001:db8::52", 64),
            Some(added("2001:db8::51", 64)),
        )
        .await;
        nl.remove_address(idx, vip6, 64).await.unwrap();
        expect(
            &mut rx,
            NetEvent::AddressRemoved {
                index: idx,
                addr: vip6,
                prefix_len: 64,
            },
        )
        .await;
        // No longer held: its notifications pass again.
        filter.ignore_added_v6(Vec::new()).unwrap();
        r.refresh(idx, vip6, 64, life).unwrap();
        expect(&mut rx, added("2001:db8::51", 64)).await;
    });
}

async fn expect(rx: &mut tokio::sync::mpsc::UnboundedReceiver<NetEvent>, want: NetEvent) {
    expect_without(rx, want, None).await
}

/// Waits for `want`, failing if `forbidden` comes first.
async fn expect_without(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<NetEvent>,
    want: NetEvent,
    forbidden: Option<NetEvent>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev == want => return,
            Ok(Some(ev)) => assert_ne!(Some(ev), forbidden, "should have been filtered"),
            Ok(None) => panic!("monitor ended"),
            Err(_) => panic!("no {want:?} within 5 s"),
        }
    }
}

#[test]
fn netlink_monitor() {
    if !require_root("netlink_monitor") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("netlink_monitor", 1, true);
    let ns = hosts[0].netns.clone();
    let h1 = hosts[0].clone();
    run(move || async move {
        enter(&ns);
        let nl = Netlink::new().unwrap();
        let idx = eth0(&nl).await;
        let mut rx = netlink::monitor().unwrap();
        let vip: IpAddr = "192.0.2.51".parse().unwrap();
        nl.add_address(idx, vip, 24, None).await.unwrap();
        expect(
            &mut rx,
            NetEvent::AddressAdded {
                index: idx,
                addr: vip,
                prefix_len: 24,
            },
        )
        .await;
        // A refresh (replace with a new lifetime) is reported as another RTM_NEWADDR: consumers see
        // AddressAdded for an address they already had.
        nl.add_address(idx, vip, 24, Some(Duration::from_secs(60)))
            .await
            .unwrap();
        expect(
            &mut rx,
            NetEvent::AddressAdded {
                index: idx,
                addr: vip,
                prefix_len: 24,
            },
        )
        .await;
        // Removed by someone else (ip), seen by the monitor.
        ip(&["-n", &ns, "addr", "del", "192.0.2.51/24", "dev", "eth0"]);
        expect(
            &mut rx,
            NetEvent::AddressRemoved {
                index: idx,
                addr: vip,
                prefix_len: 24,
            },
        )
        .await;
        let vip6: IpAddr = "2001:db8::51".parse().unwrap();
        nl.add_address(idx, vip6, 64, Some(Duration::from_secs(60)))
            .await
            .unwrap();
        expect(
            &mut rx,
            NetEvent::AddressAdded {
                index: idx,
                addr: vip6,
                prefix_len: 64,
            },
        )
        .await;
        nl.remove_address(idx, vip6, 64).await.unwrap();
        expect(
            &mut rx,
            NetEvent::AddressRemoved {
                index: idx,
                addr: vip6,
                prefix_len: 64,
            },
        )
        .await;

        // Carrier loss: the switch side of the veth goes down.
        h1.link_down().unwrap();
        expect(
            &mut rx,
            NetEvent::Link {
                index: idx,
                name: "eth0".into(),
                up: false,
            },
        )
        .await;
        assert!(!nl.link_by_index(idx).await.unwrap().up);
        h1.link_up().unwrap();
        expect(
            &mut rx,
            NetEvent::Link {
                index: idx,
                name: "eth0".into(),
                up: true,
            },
        )
        .await;
        assert!(nl.link_by_index(idx).await.unwrap().up);
        // Administratively down on the host side.
        ip(&["-n", &ns, "link", "set", "eth0", "down"]);
        expect(
            &mut rx,
            NetEvent::Link {
                index: idx,
                name: "eth0".into(),
                up: false,
            },
        )
        .await;
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        expect(
            &mut rx,
            NetEvent::Link {
                index: idx,
                name: "eth0".into(),
                up: true,
            },
        )
        .await;
    });
}

async fn recv_timeout(
    s: &VrrpSocket,
    buf: &mut [u8],
    t: Duration,
) -> Option<floatip::net::vrrp_socket::Datagram> {
    tokio::time::timeout(t, s.recv(buf))
        .await
        .ok()
        .map(|r| r.unwrap())
}

#[test]
fn vrrp_socket_v4() {
    if !require_root("vrrp_socket_v4") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("vrrp_socket_v4", 2, true);
    let (na, nb) = (hosts[0].netns.clone(), hosts[1].netns.clone());
    run(move || async move {
        enter(&na);
        let ia = eth0(&Netlink::new().unwrap()).await;
        let sa = VrrpSocket::open("eth0", ia, false, true).unwrap();
        enter(&nb);
        let ib = eth0(&Netlink::new().unwrap()).await;
        let sb = VrrpSocket::open("eth0", ib, false, true).unwrap();
        // A second socket in B without the group: must not see multicast (IP_MULTICAST_ALL off).
        let sb_uni = VrrpSocket::open("eth0", ib, false, false).unwrap();

        let a_ip: IpAddr = "192.0.2.1".parse().unwrap();
        let b_ip: IpAddr = "192.0.2.2".parse().unwrap();
        let msg = [0x31u8, 51, 150, 1, 0, 100, 0xab, 0xcd, 192, 0, 2, 97];
        let mut buf = [0u8; 1500];

        sa.send(&msg, a_ip, VRRP_GROUP_V4.into()).await.unwrap();
        let d = recv_timeout(&sb, &mut buf, Duration::from_secs(3))
            .await
            .expect("B got nothing");
        assert_eq!(d.src, a_ip);
        assert_eq!(d.dst, IpAddr::from(VRRP_GROUP_V4));
        assert_eq!(d.ttl, 255);
        assert_eq!(&buf[..d.len], &msg);
        assert!(
            recv_timeout(&sa, &mut buf, Duration::from_millis(300))
                .await
                .is_none(),
            "A received its own advert"
        );
        // Unicast.
        sa.send(&msg, a_ip, b_ip).await.unwrap();
        let d = recv_timeout(&sb, &mut buf, Duration::from_secs(3))
            .await
            .expect("B got no unicast");
        assert_eq!((d.src, d.dst, d.ttl), (a_ip, b_ip, 255));
        assert_eq!(&buf[..d.len], &msg);
        // The non-joined socket sees the unicast one only (both arrive in order on it).
        let d = recv_timeout(&sb_uni, &mut buf, Duration::from_secs(3))
            .await
            .expect("unicast socket got nothing");
        assert_eq!(d.dst, b_ip, "socket without the group received multicast");
        // Wrong family is refused.
        assert!(sa
            .send(&msg, "fe80::1".parse().unwrap(), VRRP_GROUP_V6.into())
            .await
            .is_err());
    });
}

#[test]
fn vrrp_socket_v6() {
    if !require_root("vrrp_socket_v6") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("vrrp_socket_v6", 2, true);
    let (na, nb) = (hosts[0].netns.clone(), hosts[1].netns.clone());
    let (lla, llb) = (link_local(&hosts[0]), link_local(&hosts[1]));
    run(move || async move {
        enter(&na);
        let nla = Netlink::new().unwrap();
        let ia = eth0(&nla).await;
        assert_eq!(
            nla.primary_address(ia, true, &[]).await.unwrap(),
            Some(lla.into())
        );
        let sa = VrrpSocket::open("eth0", ia, true, true).unwrap();
        enter(&nb);
        let ib = eth0(&Netlink::new().unwrap()).await;
        let sb = VrrpSocket::open("eth0", ib, true, true).unwrap();

        let msg = [0x31u8, 51, 150, 1, 0, 100, 0xab, 0xcd];
        let mut buf = [0u8; 1500];
        sa.send(&msg, lla.into(), VRRP_GROUP_V6.into())
            .await
            .unwrap();
        let d = recv_timeout(&sb, &mut buf, Duration::from_secs(3))
            .await
            .expect("B got nothing");
        assert_eq!(d.src, IpAddr::from(lla));
        assert_eq!(d.dst, IpAddr::from(VRRP_GROUP_V6));
        assert_eq!(d.ttl, 255);
        assert_eq!(&buf[..d.len], &msg);
        assert!(
            recv_timeout(&sa, &mut buf, Duration::from_millis(300))
                .await
                .is_none(),
            "A received its own advert"
        );
        // Unicast to B's link-local and to its global address.
        sa.send(&msg, lla.into(), llb.into()).await.unwrap();
        let d = recv_timeout(&sb, &mut buf, Duration::from_secs(3))
            .await
            .expect("B got no unicast");
        assert_eq!(
            (d.src, d.dst, d.ttl),
            (IpAddr::from(lla), IpAddr::from(llb), 255)
        );
        let b_glob: IpAddr = "2001:db8::2".parse().unwrap();
        sa.send(&msg, lla.into(), b_glob).await.unwrap();
        let d = recv_timeout(&sb, &mut buf, Duration::from_secs(3))
            .await
            .expect("B got no global unicast");
        assert_eq!((d.src, d.dst, d.ttl), (IpAddr::from(lla), b_glob, 255));
        assert_eq!(&buf[..d.len], &msg);
    });
}

fn neigh_mac(ns: &str, addr: &str) -> Option<String> {
    let out = ip(&["-n", ns, "neigh", "show", addr, "dev", "eth0"]);
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
}

fn wait_neigh(ns: &str, addr: &str, want: [u8; 6]) -> Result<(), Option<String>> {
    let want = format_mac(&want);
    let mut last = None;
    for _ in 0..100 {
        last = neigh_mac(ns, addr);
        if last.as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last)
}

#[test]
fn announce_updates_neighbours() {
    if !require_root("announce_updates_neighbours") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("announce_updates_neighbours", 2, true);
    let (na, nb) = (hosts[0].netns.clone(), hosts[1].netns.clone());
    let mac_a = hosts[0].mac;
    // B believes the VIPs are at a stale, fake MAC.
    for (fam, vip) in [("-4", "192.0.2.60"), ("-6", "2001:db8::60")] {
        ip(&[
            "-n",
            &nb,
            fam,
            "neigh",
            "replace",
            vip,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ]);
        assert_eq!(neigh_mac(&nb, vip).as_deref(), Some("02:00:00:00:00:99"));
    }
    let na2 = na.clone();
    run(move || async move {
        enter(&na2);
        let nl = Netlink::new().unwrap();
        let idx = eth0(&nl).await;
        for vip in ["192.0.2.60", "2001:db8::60"] {
            let vip: IpAddr = vip.parse().unwrap();
            nl.add_address(idx, vip, if vip.is_ipv4() { 24 } else { 64 }, None)
                .await
                .unwrap();
        }
        let ann = Announcer::open(idx, mac_a).unwrap();
        ann.announce("192.0.2.60".parse().unwrap()).unwrap();
        ann.announce("2001:db8::60".parse().unwrap()).unwrap();
    });
    wait_neigh(&nb, "192.0.2.60", mac_a).unwrap_or_else(|last| {
        panic!("gratuitous ARP did not update B's neighbour entry (still {last:?})")
    });
    wait_neigh(&nb, "2001:db8::60", mac_a).unwrap_or_else(|last| {
        panic!("unsolicited NA did not update B's neighbour entry (still {last:?})")
    });
}

#[test]
fn probes_and_conflict_watch() {
    if !require_root("probes_and_conflict_watch") {
        return;
    }
    let (_lab, hosts) = lab_with_hosts("probes_and_conflict_watch", 2, true);
    let (na, nb) = (hosts[0].netns.clone(), hosts[1].netns.clone());
    let (mac_a, mac_b) = (hosts[0].mac, hosts[1].mac);
    run(move || async move {
        enter(&nb);
        let ib = eth0(&Netlink::new().unwrap()).await;
        let ann_b = Announcer::open(ib, mac_b).unwrap();
        enter(&na);
        let ia = eth0(&Netlink::new().unwrap()).await;
        let short = Duration::from_millis(100);
        let wait = Duration::from_millis(500);

        // B holds 192.0.2.2 / 2001:db8::2.
        let held = arp_probe(ia, mac_a, Ipv4Addr::new(192, 0, 2, 2), 2, short, wait)
            .await
            .unwrap();
        assert_eq!(held, Some(mac_b));
        let free = arp_probe(ia, mac_a, Ipv4Addr::new(192, 0, 2, 77), 2, short, wait)
            .await
            .unwrap();
        assert_eq!(free, None);
        let held6 = ndp_probe(ia, mac_a, "2001:db8::2".parse().unwrap(), 2, short, wait)
            .await
            .unwrap();
        assert_eq!(held6, Some(mac_b));
        let free6 = ndp_probe(ia, mac_a, "2001:db8::77".parse().unwrap(), 2, short, wait)
            .await
            .unwrap();
        assert_eq!(free6, None);

        // Conflict watch in A sees B announcing addresses; never our own announcements.
        let watch4 = ConflictWatch::open(ia, mac_a, false).unwrap();
        let watch6 = ConflictWatch::open(ia, mac_a, true).unwrap();
        let ann_a = Announcer::open(ia, mac_a).unwrap();
        ann_a.announce("192.0.2.97".parse().unwrap()).unwrap();
        ann_b.announce("192.0.2.97".parse().unwrap()).unwrap();
        ann_b.announce("2001:db8::97".parse().unwrap()).unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while seen.len() < 2 {
            let next = async {
                tokio::select! {
                    r = watch4.next() => r,
                    r = watch6.next() => r,
                }
            };
            match tokio::time::timeout_at(deadline, next).await {
                Ok(r) => {
                    let (addr, mac) = r.unwrap();
                    assert_ne!(mac, mac_a, "own frame reported");
                    if addr.to_string().ends_with("97") {
                        seen.push((addr, mac));
                    }
                }
                Err(_) => panic!("conflict watch saw only {seen:?}"),
            }
        }
        assert!(seen.contains(&("192.0.2.97".parse().unwrap(), mac_b)));
        assert!(seen.contains(&("2001:db8::97".parse().unwrap(), mac_b)));

        // The daemon's periodic probe only sends: B's kernel answers, and the watch reports the answer.
        for (addr, watch) in [("192.0.2.2", &watch4), ("2001:db8::2", &watch6)] {
            let addr: IpAddr = addr.parse().unwrap();
            ann_a.probe(addr).unwrap();
            let heard = async {
                loop {
                    let (a, mac) = watch.next().await.unwrap();
                    if a == addr {
                        return mac;
                    }
                }
            };
            let mac = tokio::time::timeout(Duration::from_secs(3), heard)
                .await
                .unwrap_or_else(|_| panic!("nobody answered the probe for {addr}"));
            assert_eq!(mac, mac_b, "answer for {addr}");
        }
    });
}
