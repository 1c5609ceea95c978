//! Virtual MAC (`vmac = true`) through the real binary in network namespaces: the VIP lives on the
//! macvlan `vrrp.51` with MAC 00:00:5e:00:01:33; a client's neighbour entry for the VIP is that MAC
//! before, during and after a failover and a failback (it never changes); the switch learns the
//! virtual MAC on the master's port (adverts and announcements go out from it); Debian's keepalived
//! with `use_vmac` and floatip elect and fail over both ways; nothing is left after a stop, or after
//! `kill -9` + restart + stop (no macvlan, no VIP, the parent's sysctls back to their originals).

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
        "expected {} alone to hold {VIP4} on {VMAC_NAME}; holders: {last:?}",
        owner.name
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
    let want = format!("p-{}", owner.name);
    let mut last = None;
    let ok = wait_until(SETTLE, STEP, || {
        last = learnt_port(lab, VMAC);
        last.as_deref() == Some(want.as_str())
    });
    assert!(
        ok,
        "the switch should learn the virtual MAC on {want}; it has it on {last:?}"
    );
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
