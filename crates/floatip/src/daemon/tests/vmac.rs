//! The virtual MAC over the fake host: the macvlan is made down, comes up with the claim (before the
//! first advert), carries the VIPs, goes down with the release, and goes on exit with the parent's
//! kernel parameters put back; someone else's interface with the name is never touched; a macvlan
//! left by a killed run is taken over.

use super::*;
use crate::net::kernel::Kernel;

fn vmac_instance(priority: u8) -> String {
    format!("{}vmac = true\n", instance(51, priority))
}

const ARP_IGNORE: &str = "net/ipv4/conf/eth0/arp_ignore";
const ARP_FILTER: &str = "net/ipv4/conf/eth0/arp_filter";

#[test]
fn the_vmac_is_made_down_and_the_parent_set_up_for_it() {
    let h = Harness::start(&vmac_instance(150));
    let v = h.host.link("vrrp.51").expect("vrrp.51 created");
    assert_eq!(v.mac, [0, 0, 0x5e, 0, 1, 51]);
    assert!(!h.host.is_admin_up(v.index), "down while not master");
    assert_eq!(h.host.sysctl(ARP_IGNORE), "1");
    assert_eq!(h.host.sysctl(ARP_FILTER), "1");
    assert_eq!(h.host.sysctl("net/ipv4/conf/vrrp.51/rp_filter"), "0");
    assert_eq!(h.host.sysctl("net/ipv4/conf/vrrp.51/arp_ignore"), "1");
}

#[test]
fn the_claim_brings_the_vmac_up_first_and_the_vips_live_there() {
    let mut h = Harness::start(&vmac_instance(150));
    let v = h.host.link("vrrp.51").unwrap();
    h.host.take_log();
    h.become_master();
    let log = h.host.take_log();
    let up = log
        .iter()
        .position(|c| *c == Call::LinkUp(v.index, true))
        .expect("set up");
    let advert = log
        .iter()
        .position(|c| matches!(c, Call::Advert { priority: 150, .. }))
        .expect("advertised");
    assert!(
        up < advert,
        "the first advert goes out from the vmac: {log:?}"
    );
    assert!(h.host.has(v.index, vip()), "the VIP is on the vmac");
    assert!(!h.host.has(IFINDEX, vip()), "not on the parent");
    assert!(h.host.is_admin_up(v.index));

    h.advert_from_peer(51, 200);
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(v.index, vip()));
    assert!(!h.host.is_admin_up(v.index), "down again as backup");
}

#[test]
fn the_peers_adverts_on_the_vmac_socket_count() {
    let mut h = Harness::start(&vmac_instance(100));
    h.become_master();
    let v = h.host.link("vrrp.51").unwrap();
    let advert = Advert {
        version: Version::V3,
        vrid: 51,
        priority: 200,
        interval_cs: 10,
        addresses: Arc::from([vip()]),
    };
    let bytes = packet::encode(
        &advert,
        IpAddr::V4(PEER),
        IpAddr::V4(GROUP_V4),
        ChecksumMode::PseudoHeader,
    );
    let d = Datagram {
        src: IpAddr::V4(PEER),
        dst: IpAddr::V4(GROUP_V4),
        ttl: 255,
        len: bytes.len(),
    };
    let _rt = h.runtime.enter();
    h.daemon.on_packet(h.now, (v.index, false), &d, &bytes);
    h.daemon.carry_out(h.now);
    assert_eq!(
        h.state(),
        State::Backup,
        "the better peer heard on the vmac"
    );
}

#[test]
fn exit_removes_the_vmac_and_puts_the_parent_back() {
    let mut h = Harness::start_with(&vmac_instance(150), |host| {
        host.write_sysctl(ARP_FILTER, "0").unwrap();
        host.write_sysctl(ARP_IGNORE, "2").unwrap();
    });
    h.become_master();
    let v = h.host.link("vrrp.51").unwrap();
    let ledger = h.dir.join("state").join(super::super::vmac::LEDGER_FILE);
    assert!(
        ledger.exists(),
        "the originals are on disk before the change"
    );
    h.daemon.remove_vmacs();
    assert!(h.host.link("vrrp.51").is_none());
    assert!(!h.host.has(v.index, vip()));
    assert_eq!(h.host.sysctl(ARP_IGNORE), "2");
    assert_eq!(h.host.sysctl(ARP_FILTER), "0");
    assert!(!ledger.exists(), "nothing left to put back");
}

#[test]
fn a_macvlan_left_by_a_killed_run_is_taken_over() {
    let h = Harness::start_with(&vmac_instance(150), |host| {
        host.add_kind_link("vrrp.51", 40, "macvlan", IFINDEX, [0, 0, 0x5e, 0, 1, 51]);
    });
    let log = h.host.take_log();
    assert!(
        !log.iter().any(|c| matches!(c, Call::CreateMacvlan(_))),
        "{log:?}"
    );
    assert!(log.contains(&Call::LinkUp(40, false)), "set down: {log:?}");
    assert_eq!(h.daemon.instances[0].vip_index(), 40);
    assert_eq!(h.state(), State::Backup);
}

#[test]
fn an_interface_that_is_not_ours_is_never_touched() {
    for (kind, parent, mac) in [
        ("veth", IFINDEX, [0, 0, 0x5e, 0, 1, 51]),
        ("macvlan", 9, [0, 0, 0x5e, 0, 1, 51]),
        ("macvlan", IFINDEX, [2, 0, 0, 0, 0, 7]),
    ] {
        let mut h = Harness::start_with(&vmac_instance(150), |host| {
            host.add_kind_link("vrrp.51", 40, kind, parent, mac);
        });
        let log = h.host.take_log();
        assert!(
            !log.iter().any(|c| matches!(
                c,
                Call::LinkUp(40, _) | Call::DeleteLink(40) | Call::CreateMacvlan(_)
            )),
            "{kind}: {log:?}"
        );
        assert_eq!(h.state(), State::Fault, "{kind}");
        let st = h.status();
        assert!(
            st.reason
                .unwrap()
                .contains("not a virtual-MAC interface of ours"),
            "{kind}"
        );
        h.daemon.remove_vmacs();
        assert!(h.host.link("vrrp.51").is_some(), "{kind}: still there");
    }
}

#[test]
fn a_reload_keeps_a_shared_vmac_up_and_removes_one_no_longer_used() {
    let mut h = Harness::start(&vmac_instance(150));
    h.become_master();
    let v = h.host.link("vrrp.51").unwrap();
    h.host.take_log();
    // Another election on the same virtual MAC (a longer interval): the new instance shares vrrp.51.
    let changed =
        vmac_instance(150).replace("advert_interval = \"100ms\"", "advert_interval = \"200ms\"");
    Harness::write_config(&h.dir, &changed);
    let mut rx = h.call(Request::Reload);
    assert!(matches!(answer(&mut rx), Some(Response::Done { .. })));
    let log = h.host.take_log();
    assert!(
        !log.contains(&Call::LinkUp(v.index, false)) || log.contains(&Call::Remove(vip())),
        "never set down while the retiring master still holds the VIP on it: {log:?}"
    );
    h.advance(Duration::from_secs(3));
    assert_eq!(h.daemon.instances.len(), 1);
    assert_eq!(h.state(), State::Master);
    assert_eq!(
        h.host.link("vrrp.51").map(|l| l.index),
        Some(v.index),
        "kept"
    );
    assert!(h.host.has(v.index, vip()));

    // vmac off: the old instance retires and its macvlan goes with it.
    Harness::write_config(&h.dir, &instance(51, 150));
    let mut rx = h.call(Request::Reload);
    assert!(matches!(answer(&mut rx), Some(Response::Done { .. })));
    h.advance(Duration::from_secs(3));
    assert_eq!(h.daemon.instances.len(), 1);
    assert!(
        h.host.link("vrrp.51").is_none(),
        "removed with its instance"
    );
    assert!(h.host.has(IFINDEX, vip()), "the VIP is on eth0 now");
}
