//! A stranger on our VRID, and every packet read counted somewhere.

use super::*;

const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
const STRANGER_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

/// An advert from another cluster on our VRID 51, for its own VIP.
fn stranger(priority: u8) -> Advert {
    Advert {
        version: Version::V3,
        vrid: 51,
        priority,
        interval_cs: 10,
        addresses: Arc::from([IpAddr::V4(STRANGER_VIP)]),
    }
}

#[test]
fn a_stranger_on_our_vrid_is_a_clash_not_a_master() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // Five seconds of a higher-priority stranger advertising another address set.
    for _ in 0..50 {
        h.advert_from(IpAddr::V4(STRANGER), &stranger(254));
        h.advance(Duration::from_millis(100));
        assert_eq!(h.state(), State::Master);
    }
    let log = h.host.take_log();
    assert!(!log.contains(&Call::Remove(vip())), "never yields: {log:?}");
    assert!(h.host.has(IFINDEX, vip()));
    assert!(!h.host.has(IFINDEX, IpAddr::V4(STRANGER_VIP)));
    let st = h.status();
    assert_eq!(st.state, "MASTER");
    assert_eq!(st.counters.drops.get("address_set"), Some(&50));
    assert_eq!(st.counters.adverts_received, 0);
    assert!(
        st.speakers.is_empty(),
        "not one of our speakers: {:?}",
        st.speakers
    );
    assert_eq!(st.clashes.len(), 1);
    let clash = &st.clashes[0];
    assert_eq!(clash.address, IpAddr::V4(STRANGER));
    assert_eq!(clash.addresses, vec![IpAddr::V4(STRANGER_VIP)]);
    assert_eq!(clash.priority, 254);
    assert_eq!(clash.adverts, 50);
}

#[test]
fn a_backup_follows_its_master_whatever_a_stranger_says() {
    let mut h = Harness::start(&instance(51, 100));
    h.advert_from_peer(51, 200);
    for _ in 0..30 {
        // The stranger at 0 (stepping down) would make a backup claim at once, were it our master.
        h.advert_from(IpAddr::V4(STRANGER), &stranger(0));
        h.advance(Duration::from_millis(100));
        h.advert_from_peer(51, 200);
        assert_eq!(h.state(), State::Backup);
    }
    assert!(!h.host.has(IFINDEX, vip()));
    let st = h.status();
    assert_eq!(st.master.unwrap().address, IpAddr::V4(PEER));
    assert_eq!(st.speakers.len(), 1);
    assert_eq!(st.speakers[0].advertised, vec![vip()]);
    assert_eq!(st.speakers[0].addresses, 1);
    assert_eq!(st.clashes[0].priority, 0);
}

#[test]
fn every_packet_read_is_counted_somewhere() {
    let mut h = Harness::start(&instance(51, 100));
    let peer = IpAddr::V4(PEER);
    let mut sent = 0u64;
    for priority in [200, 201] {
        h.advert_from_peer(51, priority);
        sent += 1;
    }
    for len in [0, 1, 7] {
        h.packet_from(peer, &[0x31; 8][..len]);
        sent += 1;
    }
    for vrid in [1, 52, 255] {
        h.advert_from_peer(vrid, 100);
        sent += 1;
    }
    h.packet_from(peer, &[0x31, 51, 100, 1, 0, 10, 0, 0]); // our VRID, bad checksum and length
    h.advert_from(IpAddr::V4(STRANGER), &stranger(100));
    sent += 2;
    let st = h.status();
    assert_eq!(st.counters.interface_drops.get("truncated"), Some(&3));
    assert_eq!(st.counters.interface_drops.get("vrid"), Some(&3));
    assert_eq!(st.counters.drops.get("address_set"), Some(&1));
    let counted = st.counters.adverts_received
        + st.counters.drops.values().sum::<u64>()
        + st.counters.interface_drops.values().sum::<u64>();
    assert_eq!(counted, sent, "{:?}", st.counters);
}
