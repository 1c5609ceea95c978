//! Boot order and interfaces that come and go, over the fake host: an instance whose interface does
//! not exist yet, or has no address yet, waits in FAULT with that reason and joins the election once
//! both are there; an interface deleted and created again (under a new index) is picked up again.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use vrrp::packet::{self, Advert, Version, GROUP_V4};
use vrrp::{ChecksumMode, State};

use super::{instance, status_of, vip, Call, Harness, IFINDEX, OWN, PEER, VIP};
use crate::net::netlink::NetEvent;
use crate::net::vrrp_socket::Datagram;

const LATE_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 98);
const LATE_OWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// The index a re-created interface comes back with.
const NEW_INDEX: u32 = 9;

impl Harness {
    /// A netlink event, and what it leads to.
    fn net(&mut self, ev: NetEvent) {
        let _rt = self.runtime.enter();
        self.daemon.on_net_event(self.now, ev);
        self.daemon.carry_out(self.now);
    }

    /// An advert from the peer read from the VRRP socket of interface `index`.
    fn advert_on(&mut self, index: u32, priority: u8) {
        let advert = Advert {
            version: Version::V3,
            vrid: 51,
            priority,
            interval_cs: 10,
            addresses: std::sync::Arc::from([IpAddr::V4(VIP)]),
        };
        let src = IpAddr::V4(PEER);
        let dst = IpAddr::V4(GROUP_V4);
        let bytes = packet::encode(&advert, src, dst, ChecksumMode::PseudoHeader);
        let d = Datagram {
            src,
            dst,
            ttl: 255,
            len: bytes.len(),
        };
        let _rt = self.runtime.enter();
        self.daemon.on_packet(self.now, (index, false), &d, &bytes);
        self.daemon.carry_out(self.now);
    }

    /// The interface comes (back) under `index`, up, and then gets `own`.
    fn link_appears(&mut self, name: &str, index: u32, own: Ipv4Addr) {
        self.host.add_link(name, index);
        self.net(NetEvent::Link {
            index,
            name: name.into(),
            up: true,
        });
        self.host.add_own(index, (IpAddr::V4(own), 24));
        self.net(NetEvent::AddressAdded {
            index,
            addr: IpAddr::V4(own),
            prefix_len: 24,
        });
    }
}

fn late_on_eth1() -> String {
    format!(
        "{}\n[[instance]]\nname = \"late\"\ninterface = \"eth1\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"{LATE_VIP}/24\"]\n",
        instance(51, 150)
    )
}

#[test]
fn a_missing_interface_is_a_fault_with_its_reason_until_it_and_its_address_appear() {
    let mut h = Harness::start(&late_on_eth1());
    assert_eq!(h.state_of("late"), State::Fault);
    let st = status_of(&h, "late");
    let reason = st.reason.unwrap();
    assert!(
        reason.contains("interface eth1 does not exist (yet)"),
        "{reason}"
    );
    // The other instance starts normally meanwhile.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state_of("files"), State::Master);
    assert_eq!(h.state_of("late"), State::Fault);
    // eth1 appears without an address: still FAULT, now for the address.
    h.host.add_link("eth1", 7);
    h.net(NetEvent::Link {
        index: 7,
        name: "eth1".into(),
        up: true,
    });
    assert_eq!(h.state_of("late"), State::Fault);
    let reason = status_of(&h, "late").reason.unwrap();
    assert!(
        reason.contains("eth1 has no IPv4 address to send adverts from"),
        "{reason}"
    );
    // Its address appears: into the election, and (nobody else speaking) MASTER on eth1.
    h.host.add_own(7, (IpAddr::V4(LATE_OWN), 24));
    h.net(NetEvent::AddressAdded {
        index: 7,
        addr: IpAddr::V4(LATE_OWN),
        prefix_len: 24,
    });
    assert_eq!(h.state_of("late"), State::Backup);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state_of("late"), State::Master);
    assert!(h.host.has(7, IpAddr::V4(LATE_VIP)));
    assert!(!h.host.has(IFINDEX, IpAddr::V4(LATE_VIP)));
}

#[test]
fn an_address_that_comes_late_lets_the_instance_join_the_election() {
    let mut h = Harness::start_with(&instance(51, 150), |host| {
        host.remove_now(IFINDEX, IpAddr::V4(OWN))
    });
    assert_eq!(h.state(), State::Fault);
    let reason = h.status().reason.unwrap();
    assert!(
        reason.contains("eth0 has no IPv4 address to send adverts from"),
        "{reason}"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Fault);
    assert!(
        !h.host
            .take_log()
            .iter()
            .any(|c| matches!(c, Call::Advert { .. })),
        "no adverts without an address to send them from"
    );
    h.host.add_own(IFINDEX, (IpAddr::V4(OWN), 24));
    h.net(NetEvent::AddressAdded {
        index: IFINDEX,
        addr: IpAddr::V4(OWN),
        prefix_len: 24,
    });
    assert_eq!(h.state(), State::Backup);
    // A better peer is heard on the socket and followed; once it goes quiet we claim.
    h.advert_on(IFINDEX, 200);
    assert_eq!(h.state(), State::Backup);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(IFINDEX, vip()));
}

#[test]
fn an_interface_deleted_and_created_again_comes_back_under_its_new_index() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    h.host.remove_link("eth0");
    h.net(NetEvent::LinkRemoved {
        index: IFINDEX,
        name: "eth0".into(),
    });
    assert_eq!(h.state(), State::Fault);
    let log = h.host.take_log();
    assert!(log.contains(&Call::ForgetLink(IFINDEX)), "{log:?}");
    assert!(!h.daemon.sockets.keys().any(|k| k.0 == IFINDEX));
    let st = h.status();
    assert_eq!(st.state, "FAULT");
    let reason = st.reason.unwrap();
    assert!(
        reason.contains("interface eth0 was deleted; waiting for it to come back"),
        "{reason}"
    );
    // While it is gone: no adverts, no VIP anywhere.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Fault);
    assert!(!h
        .host
        .take_log()
        .iter()
        .any(|c| matches!(c, Call::Advert { .. } | Call::Add(_))));
    // Back under a new index: BACKUP, then MASTER with the VIP on the new interface.
    h.link_appears("eth0", NEW_INDEX, OWN);
    assert_eq!(h.state(), State::Backup);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(NEW_INDEX, vip()));
    // Adverts are read from the new interface's socket: a better peer there is followed.
    h.advert_on(NEW_INDEX, 200);
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(NEW_INDEX, vip()));
}

#[test]
fn an_interface_replaced_without_a_deletion_heard_is_picked_up_by_its_name() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // The monitor lost the deletion (overrun); the new interface's first event says it all.
    h.host.remove_link("eth0");
    h.host.add_link("eth0", NEW_INDEX);
    h.host.add_own(NEW_INDEX, (IpAddr::V4(OWN), 24));
    h.net(NetEvent::Link {
        index: NEW_INDEX,
        name: "eth0".into(),
        up: true,
    });
    assert!(h.host.take_log().contains(&Call::ForgetLink(IFINDEX)));
    assert_eq!(h.state(), State::Backup);
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(NEW_INDEX, vip()));
}
