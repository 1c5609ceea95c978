//! Virtual MAC (`vmac = true`) through the real binary in network namespaces: the VIP lives on the
//! macvlan `vrrp.51` with MAC 00:00:5e:00:01:33; a client's neighbour entry for the VIP is that MAC
//! before, during and after a failover and a failback (it never changes); the switch learns the
//! virtual MAC on the master's port (adverts and announcements go out from it); Debian's keepalived
//! with `use_vmac` and floatip elect and fail over both ways; nothing is left after a stop, or after
//! `kill -9` + restart + stop (no macvlan, no VIP, the parent's sysctls back to their originals);
//! IPv6 (vrrp6.52) fails over the same way; `floatip doctor` checks the parent's settings and names
//! someone else's interface under our name, which the daemon refuses (FAULT) and never touches.

mod common;

use std::time::Duration;

use common::*;

/// The virtual MAC of VRID 51 over IPv4.
const VMAC: [u8; 6] = [0, 0, 0x5e, 0, 1, 51];
const VMAC_NAME: &str = "vrrp.51";

fn vmac_instance(priority: u8) -> Instance {
    Instance::v4(priority).extra("vmac = true\n")
}

/// Whether `host` has `vip` on its virtual-MAC interface.
fn vmac_holds(host: &Host, vip: &str) -> bool {
    host.ip(&["-o", "addr", "show", "dev", VMAC_NAME])
        .is_ok_and(|out| {
            out.split_whitespace()
                .any(|t| t.split('/').next() == Some(vip))
        })
}

/// Hosts among `hosts` that have `vip` on any interface.
fn any_holders(hosts: &[&Host], vip: &str) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| {
            h.ip(&["-o", "addr", "show", "to", vip])
                .is_ok_and(|out| !out.trim().is_empty())
        })
        .map(|h| h.name.clone())
        .collect()
}

/// Waits until `owner` alone holds the VIP, on its virtual-MAC interface (never on eth0).
fn wait_vmac_owner(hosts: &[&Host], owner: &Host) {
    let mut last = Vec::new();
    let ok = wait_until(SETTLE, STEP, || {
        last = any_holders(hosts, VIP4);
        last == [owner.name.clone()] && vmac_holds(owner, VIP4)
    });
    assert!(
        ok,
        "expected {} alone to hold {VIP4} on {VMAC_NAME}; holders: {last:?}; on {}: {}",
        owner.name,
        owner.name,
        owner
            .ip(&["-o", "addr", "show", "to", VIP4])
            .unwrap_or_default()
    );
    assert!(
        !owner.has_address(VIP4),
        "{}: the VIP is on eth0 too",
        owner.name
    );
}

/// The switch port the switch learnt `mac` on ("p-h1"), if any.
fn learnt_port(lab: &Lab, mac: [u8; 6]) -> Option<String> {
    let want = floatip_lab::format_mac(&mac);
    let out = lab
        .switch_run(&["bridge", "fdb", "show", "br", "br0"])
        .ok()?;
    out.lines().find(|l| l.starts_with(&want)).and_then(|l| {
        let mut t = l.split_whitespace();
        t.find(|x| *x == "dev")?;
        t.next().map(str::to_string)
    })
}

/// Waits until the switch learnt the virtual MAC on `owner`'s port.
fn wait_learnt_at(lab: &Lab, owner: &Host) {
    wait_learnt_port(lab, VMAC, owner);
}

/// Waits until the client reaches the VIP and resolves it to the virtual MAC.
fn wait_client_on_vmac(c: &Host) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(8), STEP, || {
        let ok = c.can_ping(VIP4);
        last = c.neigh_mac(VIP4);
        ok && last == Some(VMAC)
    });
    assert!(
        ok,
        "the client should reach {VIP4} at the virtual MAC; its entry is {last:?}"
    );
}

/// The client asks again (broadcast ARP): only the virtual MAC may answer, the parent must not
/// (it would answer first: a macvlan gets broadcasts after its parent).
fn ask_again(c: &Host) {
    c.neigh_flush().expect("neigh flush");
    assert!(c.can_ping(VIP4), "the client cannot reach {VIP4}");
    let entry = c.neigh_mac(VIP4);
    assert_eq!(
        entry,
        Some(VMAC),
        "the client resolved {VIP4} to {} (the parent answered ARP for the VIP)",
        entry.map_or("nothing".into(), |m| floatip_lab::format_mac(&m))
    );
}

/// Samples the client's neighbour entry for the VIP until `done`; panics on any other MAC.
fn watch_entry_until(c: &Host, hosts: &[&Host], mut done: impl FnMut() -> bool) {
    let ok = wait_until(SETTLE, SAMPLE, || {
        let now = c.neigh_mac(VIP4);
        assert!(
            now.is_none() || now == Some(VMAC),
            "the client's entry for {VIP4} changed to {}",
            mac_name(hosts, now)
        );
        done()
    });
    assert!(ok, "the failover did not finish in time");
}

#[test]
fn vmac_client_keeps_the_virtual_mac_across_failover_and_back() {
    let name = "vmac_client_keeps_the_virtual_mac_across_failover_and_back";
    if !require_root(name) {
        return;
    }
    let (mut lab, h1, h2) = two_hosts(name);
    let c = add_client(&mut lab);
    let both = [&h1, &h2];
    let _n1 = Node::start(&lab, &h1, &[vmac_instance(150)]);
    let _n2 = Node::start(&lab, &h2, &[vmac_instance(100)]);
    wait_vmac_owner(&both, &h1);
    wait_client_on_vmac(&c);
    ask_again(&c);
    wait_learnt_at(&lab, &h1);

    h1.link_down().expect("link down");
    watch_entry_until(&c, &both, || {
        any_holders(&[&h2], VIP4) == ["h2"] && vmac_holds(&h2, VIP4)
    });
    wait_vmac_owner(&both, &h2);
    wait_client_on_vmac(&c);
    ask_again(&c);
    wait_learnt_at(&lab, &h2);

    h1.link_up().expect("link up");
    watch_entry_until(&c, &both, || any_holders(&both, VIP4) == ["h1"]);
    wait_vmac_owner(&both, &h1);
    wait_client_on_vmac(&c);
    wait_learnt_at(&lab, &h1);
}

/// eth0's kernel parameters a virtual MAC changes while it runs.
const PARENT_KEYS: [&str; 3] = [
    "net.ipv4.conf.eth0.arp_ignore",
    "net.ipv4.conf.eth0.arp_filter",
    "net.ipv4.conf.eth0.arp_announce",
];

fn sysctls(h: &Host) -> Vec<String> {
    PARENT_KEYS
        .iter()
        .map(|k| {
            h.run(&["sysctl", "-n", k])
                .unwrap_or_else(|e| panic!("sysctl {k}: {e:#}"))
                .trim()
                .to_string()
        })
        .collect()
}

/// Nothing of the virtual MAC is left on `h`: no macvlan, the VIP nowhere, eth0's parameters back.
fn assert_nothing_left(h: &Host, originals: &[String], when: &str) {
    let links = h.ip(&["-o", "link", "show"]).expect("ip link");
    assert!(
        !links.contains(VMAC_NAME) && !links.contains("00:00:5e:00:01:33"),
        "{when}: the virtual-MAC interface is still there:\n{links}"
    );
    assert!(
        any_holders(&[h], VIP4).is_empty(),
        "{when}: {VIP4} is still on {}",
        h.name
    );
    assert_eq!(sysctls(h), originals, "{when}: eth0's {PARENT_KEYS:?}");
}

#[test]
fn vmac_nothing_is_left_after_stop_or_kill_and_restart() {
    let name = "vmac_nothing_is_left_after_stop_or_kill_and_restart";
    if !require_root(name) {
        return;
    }
    let (lab, h1, _h2) = two_hosts(name);
    // Values of our own, so "put back" cannot pass by accident with the kernel's defaults.
    h1.run(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.eth0.arp_ignore=2",
        "net.ipv4.conf.eth0.arp_filter=0",
        "net.ipv4.conf.eth0.arp_announce=1",
    ])
    .expect("sysctl");
    let originals = sysctls(&h1);
    let mut n = Node::start(&lab, &h1, &[vmac_instance(150)]);
    wait_vmac_owner(&[&h1], &h1);
    assert_eq!(
        sysctls(&h1),
        ["1", "1", "2"],
        "eth0 is set up for the virtual MAC"
    );
    n.stop();
    assert_nothing_left(&h1, &originals, "after a stop");

    n.restart();
    wait_vmac_owner(&[&h1], &h1);
    assert!(n.kill(), "floatip was running");
    let links = h1
        .ip(&["-o", "link", "show", VMAC_NAME])
        .unwrap_or_default();
    assert!(
        links.contains(VMAC_NAME),
        "kill -9 leaves the macvlan (nothing runs to remove it)"
    );
    // The guard takes the VIP off, then lets go of the control socket.
    assert!(
        n.wait_log("the daemon exited holding its VIPs", SETTLE),
        "{}",
        n.log()
    );
    assert!(
        wait_until(SETTLE, POLL, || !n.ctl(&["status"]).status.success()),
        "something still answers on the control socket"
    );
    n.restart();
    wait_vmac_owner(&[&h1], &h1);
    assert!(
        n.wait_log("taking over vrrp.51", SETTLE),
        "the restart takes the left macvlan over: {}",
        n.log()
    );
    n.stop();
    assert_nothing_left(&h1, &originals, "after kill -9, a restart and a stop");
}

/// Debian's keepalived with `use_vmac` for the same virtual router (VRRPv3, 100 ms adverts).
fn keepalived_vmac(priority: u8) -> KaInstance {
    KaInstance {
        use_vmac: true,
        ..KaInstance::v4(priority, 3, "0.1")
    }
}

/// `first` (keepalived or floatip on h1, priority 150) holds the VIP on its virtual-MAC interface
/// and `second` (h2, 100) never claims; h1 loses its link: h2 claims; the link comes back: h1
/// preempts and h2 steps back. The client's entry stays the virtual MAC throughout.
fn elect_and_fail_over_both_ways(
    lab: &Lab,
    h1: &Host,
    h2: &Host,
    c: &Host,
    h1_is_master: impl Fn() -> bool,
    h2_is_master: impl Fn() -> bool,
) {
    let both = [h1, h2];
    wait_vmac_owner(&both, h1);
    assert!(
        wait_until(SETTLE, STEP, &h1_is_master),
        "h1 does not say it is master"
    );
    // h2 hears h1's adverts (sent from the virtual MAC, which h2's own macvlan shares): it never claims.
    let stable = wait_until(Duration::from_millis(800), SAMPLE, || {
        assert_eq!(
            any_holders(&both, VIP4),
            ["h1"],
            "h2 claimed while h1 was master"
        );
        false
    });
    assert!(!stable);
    assert!(!h2_is_master(), "h2 claimed while h1 was master");
    wait_client_on_vmac(c);
    ask_again(c);
    wait_learnt_at(lab, h1);

    h1.link_down().expect("link down");
    watch_entry_until(c, &both, || any_holders(&[h2], VIP4) == ["h2"]);
    wait_vmac_owner(&both, h2);
    assert!(wait_until(SETTLE, STEP, &h2_is_master), "h2 is not master");
    wait_client_on_vmac(c);
    ask_again(c);
    wait_learnt_at(lab, h2);

    h1.link_up().expect("link up");
    watch_entry_until(c, &both, || any_holders(&both, VIP4) == ["h1"]);
    wait_vmac_owner(&both, h1);
    wait_client_on_vmac(c);
    wait_learnt_at(lab, h1);
}

/// keepalived 2.2.7 sets `arp_ignore` and `arp_filter` on a vmac's parent but not `arp_announce`:
/// its ARP requests for a client then say "VIP is at the parent's MAC". A keepalived host needs it
/// by hand (docs/config.md says so); floatip sets it itself.
fn prepare_keepalived_host(h: &Host) {
    h.run(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_announce=2"])
        .expect("sysctl");
}

fn three_hosts(name: &str) -> (Lab, Host, Host, Host) {
    let (mut lab, h1, h2) = two_hosts(name);
    let c = add_client(&mut lab);
    (lab, h1, h2, c)
}

#[test]
fn vmac_keepalived_master_floatip_backup() {
    let name = "vmac_keepalived_master_floatip_backup";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2, c) = three_hosts(name);
    prepare_keepalived_host(&h1);
    let k = start_keepalived(&lab, &h1, &keepalived_vmac(150));
    wait_vmac_owner(&[&h1, &h2], &h1);
    let f = Node::start(&lab, &h2, &[vmac_instance(100)]);
    let f_state = || f.status("files")["state"] == "MASTER";
    let masters = |n: usize| k.log().matches("Entering MASTER STATE").count() >= n;
    elect_and_fail_over_both_ways(&lab, &h1, &h2, &c, || masters(1), f_state);
    assert!(masters(2), "keepalived took over again: {}", k.log());
    assert!(
        f.wait_log("MASTER -> BACKUP", SETTLE),
        "floatip stepped back: {}",
        f.log()
    );
    let drops = foreign_drops(&f.log());
    assert!(
        drops.is_empty(),
        "floatip dropped keepalived's adverts: {drops:?}"
    );
}

#[test]
fn vmac_floatip_master_keepalived_backup() {
    let name = "vmac_floatip_master_keepalived_backup";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2, c) = three_hosts(name);
    let f = Node::start(&lab, &h1, &[vmac_instance(150)]);
    wait_vmac_owner(&[&h1, &h2], &h1);
    prepare_keepalived_host(&h2);
    let k = start_keepalived(&lab, &h2, &keepalived_vmac(100));
    assert!(
        wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived did not start as backup: {}",
        k.log()
    );
    let f_state = || f.status("files")["state"] == "MASTER";
    let k_master = || k.log().contains("Entering MASTER STATE");
    elect_and_fail_over_both_ways(&lab, &h1, &h2, &c, f_state, k_master);
    assert!(
        wait_until(SETTLE, STEP, || k
            .log()
            .matches("Entering BACKUP STATE")
            .count()
            >= 2),
        "keepalived stepped back: {}",
        k.log()
    );
    let rej = keepalived_rejections(&k.log());
    assert!(
        rej.is_empty(),
        "keepalived rejected floatip's adverts: {rej:?}"
    );
}

#[test]
fn vmac_ipv6_client_keeps_the_virtual_mac_across_failover() {
    let name = "vmac_ipv6_client_keeps_the_virtual_mac_across_failover";
    if !require_root(name) {
        return;
    }
    // VRID 52 over IPv6: vrrp6.52 with 00:00:5e:00:02:34.
    const VMAC6: [u8; 6] = [0, 0, 0x5e, 0, 2, 52];
    let (mut lab, hosts) = lab_with_hosts(name, 2, true);
    let c = add_client(&mut lab);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    let both = [h1, h2];
    let inst = |p: u8| Instance::v6(p).extra("vmac = true\n");
    let _n1 = Node::start(&lab, h1, &[inst(150)]);
    let _n2 = Node::start(&lab, h2, &[inst(100)]);
    let on_vmac = |h: &Host| {
        h.ip(&["-o", "addr", "show", "dev", "vrrp6.52"])
            .is_ok_and(|o| o.contains(&format!("{VIP6}/64")))
    };
    let client_on_vmac = || {
        wait_until(Duration::from_secs(8), STEP, || {
            c.can_ping(VIP6) && c.neigh_mac(VIP6) == Some(VMAC6)
        })
    };
    assert!(wait_until(SETTLE, STEP, || any_holders(&both, VIP6)
        == ["h1"]
        && on_vmac(h1)));
    assert!(client_on_vmac(), "client entry: {:?}", c.neigh_mac(VIP6));
    h1.link_down().expect("link down");
    let ok = wait_until(SETTLE, SAMPLE, || {
        let e = c.neigh_mac(VIP6);
        assert!(
            e.is_none() || e == Some(VMAC6),
            "the entry changed to {e:?}"
        );
        any_holders(&[h2], VIP6) == ["h2"] && on_vmac(h2)
    });
    assert!(ok, "h2 did not claim on vrrp6.52");
    assert!(client_on_vmac(), "client entry: {:?}", c.neigh_mac(VIP6));
    wait_learnt_port(&lab, VMAC6, h2);
}

/// Waits until the switch learnt `mac` on `owner`'s port.
fn wait_learnt_port(lab: &Lab, mac: [u8; 6], owner: &Host) {
    let want = format!("p-{}", owner.name);
    let mut last = None;
    let ok = wait_until(SETTLE, STEP, || {
        last = learnt_port(lab, mac);
        last.as_deref() == Some(want.as_str())
    });
    assert!(
        ok,
        "the switch should learn {mac:?} on {want}; it has it on {last:?}"
    );
}

#[test]
fn vmac_doctor_checks_the_parent_and_spots_a_foreign_interface() {
    let name = "vmac_doctor_checks_the_parent_and_spots_a_foreign_interface";
    if !require_root(name) {
        return;
    }
    let (lab, h1, _h2) = two_hosts(name);
    let mut n = Node::start(&lab, &h1, &[vmac_instance(150)]);
    wait_vmac_owner(&[&h1], &h1);
    let doctor = |n: &Node| {
        let out = n.ctl(&["doctor", "--config", path_str(&n.conf)]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report = doctor(&n);
    assert!(report.contains("Virtual MAC"), "{report}");
    assert!(report.contains("arp_ignore = 1 on eth0"), "{report}");
    assert!(report.contains("arp_announce = 2 on eth0"), "{report}");
    // Someone else's interface under our name: doctor says so, the daemon never touches it.
    n.stop();
    h1.ip(&[
        "link",
        "add",
        VMAC_NAME,
        "link",
        "eth0",
        "address",
        "02:00:00:00:00:77",
        "type",
        "macvlan",
    ])
    .expect("someone else's macvlan");
    let report = doctor(&n);
    assert!(
        report.contains("it is not instance files's virtual-MAC interface"),
        "{report}"
    );
    n.restart();
    let st = n.wait_state("files", "FAULT");
    assert!(
        st["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a virtual-MAC interface of ours")),
        "{st}"
    );
    n.stop();
    let links = h1
        .ip(&["-o", "link", "show", VMAC_NAME])
        .unwrap_or_default();
    assert!(
        links.contains("02:00:00:00:00:77"),
        "the other macvlan is still there, untouched: {links}"
    );
}
