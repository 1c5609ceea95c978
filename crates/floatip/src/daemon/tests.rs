//! The daemon's event handling, driven through a fake kernel edge ([`super::fake`]) with a virtual
//! clock: elections, adverts heard, releases, reloads and status, without root.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use vrrp::packet::{self, Advert, Version, GROUP_V4};
use vrrp::{ChecksumMode, State};

use super::fake::{Call, FakeHost};
use super::{Channels, Daemon, Record};
use crate::config;
use crate::control::{ControlCall, Request, Response, HISTORY_MAX};
use crate::net::vrrp_socket::Datagram;
use crate::wakeup::Wakeup;

const IFINDEX: u32 = 2;
const OWN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 97);

fn instance(vrid: u8, priority: u8) -> String {
    format!(
        "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP}/24\"]\n"
    )
}

/// One daemon over a fake host, with its config in a temporary directory and a virtual clock.
struct Harness {
    runtime: tokio::runtime::Runtime,
    host: FakeHost,
    daemon: Daemon,
    now: Instant,
    dir: PathBuf,
}

impl Harness {
    fn start(instances: &str) -> Harness {
        Harness::start_with(instances, |_| {})
    }

    /// Like [`Harness::start`], with the host prepared by `host` first (more links).
    fn start_with(instances: &str, host_setup: impl FnOnce(&FakeHost)) -> Harness {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "floatip-daemon-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let host = FakeHost::with_link("eth0", IFINDEX, (IpAddr::V4(OWN), 24));
        host_setup(&host);
        let (daemon, now) = {
            let _rt = runtime.enter();
            let path = Self::write_config(&dir, instances);
            let cfg = config::load(&path).expect("a valid test config");
            let chans = Channels {
                checks: mpsc::channel(16).0,
                witness: mpsc::channel(16).0,
                sightings: mpsc::channel(16).0,
            };
            let mut daemon = Daemon::new(
                Box::new(host.clone()),
                &cfg,
                Default::default(),
                Wakeup::new().unwrap(),
                chans,
            )
            .unwrap();
            let now = Instant::now();
            for inst in &cfg.instances {
                let rt = daemon.prepare(inst, Duration::ZERO).unwrap();
                daemon.start(rt, now).unwrap();
            }
            (daemon, now)
        };
        Harness {
            runtime,
            host,
            daemon,
            now,
            dir,
        }
    }

    fn write_config(dir: &std::path::Path, instances: &str) -> PathBuf {
        let path = dir.join("floatip.toml");
        let text = format!(
            "[daemon]\nsocket = \"{}\"\nstate_dir = \"{}\"\n\n{instances}",
            dir.join("floatip.sock").display(),
            dir.join("state").display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the loop's deadlines up to `by` from now, as the protocol loop would.
    fn advance(&mut self, by: Duration) {
        let _rt = self.runtime.enter();
        let until = self.now + by;
        for _ in 0..100_000 {
            self.daemon.carry_out(self.now);
            match self.daemon.next_deadline() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.daemon.on_deadline(self.now);
                }
                _ => break,
            }
        }
        self.now = until;
        self.daemon.carry_out(self.now);
        // Let the announcement bursts spawned meanwhile send their first round.
        self.runtime.block_on(tokio::task::yield_now());
    }

    /// One control request; the answer may come at once or after later [`Harness::advance`]s.
    fn call(&mut self, request: Request) -> oneshot::Receiver<Response> {
        let _rt = self.runtime.enter();
        let (reply, answer) = oneshot::channel();
        self.daemon
            .on_control(self.now, ControlCall { request, reply });
        self.daemon.carry_out(self.now);
        answer
    }

    /// An advert from the peer on our VRID.
    fn advert_from_peer(&mut self, vrid: u8, priority: u8) {
        self.advert_for(vrid, priority, VIP);
    }

    /// An advert from the peer on `vrid` for `vip`.
    fn advert_for(&mut self, vrid: u8, priority: u8, vip: Ipv4Addr) {
        let advert = Advert {
            version: Version::V3,
            vrid,
            priority,
            interval_cs: 10,
            addresses: Arc::from([IpAddr::V4(vip)]),
        };
        self.advert_from(IpAddr::V4(PEER), &advert);
    }

    /// `advert`, encoded, as sent by `src` to the group.
    fn advert_from(&mut self, src: IpAddr, advert: &Advert) {
        let bytes = packet::encode(
            advert,
            src,
            IpAddr::V4(GROUP_V4),
            ChecksumMode::PseudoHeader,
        );
        self.packet_from(src, &bytes);
    }

    /// Raw bytes read from the VRRP socket, as sent by `src` to the group.
    fn packet_from(&mut self, src: IpAddr, bytes: &[u8]) {
        let d = Datagram {
            src,
            dst: IpAddr::V4(GROUP_V4),
            ttl: 255,
            len: bytes.len(),
        };
        let _rt = self.runtime.enter();
        self.daemon.on_packet(self.now, (IFINDEX, false), &d, bytes);
        self.daemon.carry_out(self.now);
    }

    /// `floatip status` through the control path.
    fn status(&mut self) -> crate::control::InstanceStatus {
        match answer(&mut self.call(Request::Status { instance: None })) {
            Some(Response::Status { mut instances, .. }) => instances.remove(0),
            other => panic!("expected a status, got {other:?}"),
        }
    }

    fn state(&self) -> State {
        let rt = self.daemon.instances.iter().find(|r| !r.retiring).unwrap();
        rt.core.state()
    }

    fn state_of(&self, name: &str) -> State {
        let rt = self.daemon.instances.iter().find(|r| r.cfg.name == name);
        rt.unwrap().core.state()
    }

    fn become_master(&mut self) {
        self.advance(Duration::from_secs(1));
        assert_eq!(self.state(), State::Master);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn answer(rx: &mut oneshot::Receiver<Response>) -> Option<Response> {
    rx.try_recv().ok()
}

fn vip() -> IpAddr {
    IpAddr::V4(VIP)
}

#[test]
fn a_lone_instance_claims_adds_announces_and_reports_it() {
    let mut h = Harness::start(&instance(51, 150));
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()), "no claim before master-down");
    h.become_master();
    let log = h.host.take_log();
    let added = log.iter().position(|c| *c == Call::Add(vip())).unwrap();
    let announced = log
        .iter()
        .position(|c| *c == Call::Announce(vip()))
        .unwrap();
    assert!(added < announced, "announced after it was added: {log:?}");
    assert!(log.contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority: 150
    }));
    assert!(h.host.has(IFINDEX, vip()));
    let st = h.daemon.instances[0].status(&[vip()], h.now);
    assert_eq!(st.state, "MASTER");
    assert!(st.master.as_ref().unwrap().is_self);
    assert!(st.vips[0].present_in_kernel);
    assert_eq!(st.counters.transitions.get("BACKUP->MASTER"), Some(&1));
    assert!(st.reason.unwrap().contains("MASTER"));
}

#[test]
fn a_better_peer_is_followed_and_shown() {
    let mut h = Harness::start(&instance(51, 100));
    h.become_master();
    h.advert_from_peer(51, 200);
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()));
    let st = h.daemon.instances[0].status(&[], h.now);
    let master = st.master.unwrap();
    assert_eq!(master.address, IpAddr::V4(PEER));
    assert_eq!(master.priority, 200);
    assert_eq!(st.speakers.len(), 1);
    assert_eq!(st.counters.adverts_received, 1);
}

#[test]
fn a_release_nobody_answers_is_refused_and_the_master_stays() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    let mut rx = h.call(Request::Release {
        instance: "files".into(),
        force: false,
    });
    assert_eq!(answer(&mut rx), None, "answered once the handoff is over");
    assert!(h.host.take_log().contains(&Call::Advert {
        dst: IpAddr::V4(GROUP_V4),
        priority: 0
    }));
    h.advance(Duration::from_secs(2));
    match answer(&mut rx) {
        Some(Response::Error { message }) => {
            assert!(message.contains("no other router"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(IFINDEX, vip()));
    assert!(!h.host.take_log().contains(&Call::Remove(vip())));
}

#[test]
fn a_release_is_answered_when_the_successor_takes_over() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    let mut rx = h.call(Request::Release {
        instance: "files".into(),
        force: false,
    });
    h.advance(Duration::from_millis(50));
    assert!(h.host.has(IFINDEX, vip()), "kept until a successor speaks");
    h.advert_from_peer(51, 100);
    h.advance(Duration::from_millis(10));
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("192.0.2.2 (priority 100) took over"),
                "{message}"
            )
        }
        other => panic!("expected the release to be done, got {other:?}"),
    }
    assert_eq!(h.state(), State::Backup);
    assert!(!h.host.has(IFINDEX, vip()));
}

#[test]
fn a_reloaded_priority_applies_in_place_without_a_failover() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    Harness::write_config(&h.dir, &instance(51, 120));
    let mut rx = h.call(Request::Reload);
    match answer(&mut rx) {
        Some(Response::Done { message }) => assert!(
            message.contains("changed in place: [files (priority 120)]"),
            "{message}"
        ),
        other => panic!("expected the reload to be done, got {other:?}"),
    }
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), State::Master);
    assert!(!h.host.take_log().contains(&Call::Remove(vip())));
    assert_eq!(h.daemon.instances[0].core.effective_priority(), 120);
}

#[test]
fn a_reloaded_vrid_hands_over_before_the_new_instance_starts() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    Harness::write_config(&h.dir, &instance(52, 150));
    let mut rx = h.call(Request::Reload);
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(message.contains("stepping down: [files]"), "{message}");
            assert!(message.contains("started: [files]"), "{message}");
        }
        other => panic!("expected the reload to be done, got {other:?}"),
    }
    h.advance(Duration::from_secs(3));
    let log = h.host.take_log();
    let removed = log.iter().position(|c| *c == Call::Remove(vip()));
    let added = log.iter().position(|c| *c == Call::Add(vip()));
    assert!(
        matches!((removed, added), (Some(r), Some(a)) if r < a),
        "the retiring instance lets go before the new one claims: {log:?}"
    );
    assert_eq!(h.daemon.instances.len(), 1, "the retired instance is gone");
    assert_eq!(h.daemon.instances[0].cfg.vrid, 52);
    assert_eq!(h.state(), State::Master);
}

#[test]
fn history_is_capped_newest_last() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    let rt = &mut h.daemon.instances[0];
    for i in 0..60 {
        rt.record(Record {
            at: UNIX_EPOCH + Duration::from_secs(i as u64),
            from: State::Backup,
            to: State::Master,
            reason: format!("r{i}"),
        });
    }
    let st = rt.status(&[], h.now);
    assert_eq!(st.history.len(), HISTORY_MAX);
    assert_eq!(st.history.last().unwrap().reason, "r59");
    assert_eq!(st.reason.as_deref(), Some("r59"));
    assert!(st.master.unwrap().is_self);
    assert!(!st.vips[0].present_in_kernel);
}

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

const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

impl Harness {
    /// Another host answers for the VIP (an ARP reply to our probe, through the watch).
    fn answered_by_other(&mut self) {
        let _rt = self.runtime.enter();
        self.daemon.on_sighting(
            self.now,
            super::Sighting {
                ifindex: IFINDEX,
                addr: vip(),
                holder: OTHER_MAC,
            },
        );
        self.daemon.carry_out(self.now);
    }

    /// Advances in 1 ms steps, with another host answering every probe at once (as a kernel that
    /// still has the VIP does).
    fn advance_answering(&mut self, by: Duration) {
        for _ in 0..by.as_millis() {
            self.advance(Duration::from_millis(1));
            if self.probes_sent() > 0 {
                self.answered_by_other();
            }
        }
    }

    fn probes_sent(&self) -> usize {
        self.host
            .take_log()
            .iter()
            .filter(|c| **c == Call::Probe(vip()))
            .count()
    }
}

#[test]
fn a_claim_after_silence_waits_while_another_host_answers_for_the_vip() {
    let mut h = Harness::start(&instance(51, 150));
    // Up to master-down: the claim is due, and the instance asks who answers first.
    h.advance(Duration::from_millis(342));
    assert!(h.probes_sent() >= 1, "a probe before the claim");
    assert_eq!(h.state(), State::Backup);
    h.answered_by_other();
    // A frozen master's kernel keeps answering for half a second.
    for _ in 0..100 {
        h.advance_answering(Duration::from_millis(5));
        assert_eq!(h.state(), State::Backup, "no claim while someone answers");
        assert!(!h.host.has(IFINDEX, vip()));
    }
    let st = h.daemon.instances[0].status(&[], h.now);
    let why = st.claim_inhibit.unwrap();
    assert!(why.contains("still answered by 02:00:00:00:00:09"), "{why}");
    // It stops answering (its lifetime ran out): the claim follows within a round or two.
    h.advance(Duration::from_millis(10));
    assert_eq!(h.state(), State::Master);
    assert!(h.host.has(IFINDEX, vip()));
}

#[test]
fn a_vip_that_vanished_while_master_goes_back_only_once_nobody_answers() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // Its lifetime ran out (or someone removed it): the kernel says so.
    h.host.remove_now(IFINDEX, vip());
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::AddressRemoved {
                index: IFINDEX,
                addr: vip(),
                prefix_len: 24,
            },
        );
    }
    // Another host claimed it meanwhile and still answers: no second owner, and no refresh either.
    h.answered_by_other();
    for _ in 0..50 {
        h.advance_answering(Duration::from_millis(5));
        assert!(
            !h.host.has(IFINDEX, vip()),
            "put back while another host answers"
        );
    }
    h.advance(Duration::from_millis(10));
    assert!(h.host.has(IFINDEX, vip()));
    assert_eq!(h.daemon.instances[0].counters.vip_restored, 1);
}

#[test]
fn after_a_stall_a_missing_vip_is_probed_for_and_a_present_one_kept() {
    let mut h = Harness::start(&instance(51, 150));
    h.become_master();
    h.host.take_log();
    // Stopped for 3 s: the VIP is still there (nothing to do).
    h.daemon.after_stall(h.now, Duration::from_secs(3));
    assert!(!h.daemon.instances[0].restoring());
    // Stopped again, and this time it went away (the guard, or its lifetime).
    h.host.remove_now(IFINDEX, vip());
    {
        let _rt = h.runtime.enter();
        h.daemon.after_stall(h.now, Duration::from_secs(3));
    }
    assert!(h.daemon.instances[0].restoring());
    assert!(h.probes_sent() >= 1);
    h.answered_by_other();
    h.advance(Duration::from_millis(4));
    assert!(!h.host.has(IFINDEX, vip()));
    h.advance(Duration::from_millis(10));
    assert!(h.host.has(IFINDEX, vip()));
}

// ---- sync groups ------------------------------------------------------------------------------

const VIP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 98);

/// Two instances on eth0 (a: VRID 51, VIP .97; b: VRID 52, VIP .98), b tracking eth1, and `group`.
fn two(group: &str) -> String {
    format!(
        "[[instance]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 51\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP}/24\"]\n\n\
         [[instance]]\nname = \"b\"\ninterface = \"eth0\"\nvrid = 52\npriority = 150\n\
         advert_interval = \"100ms\"\naddresses = [\"{VIP_B}/24\"]\ntrack_interfaces = [\"eth1\"]\n\n{group}"
    )
}

const GROUP: &str = "[[group]]\nname = \"fs\"\ninstances = [\"a\", \"b\"]\n";
const ETH1: u32 = 3;

fn start_two(group: &str) -> Harness {
    Harness::start_with(&two(group), |host| host.add_link("eth1", ETH1))
}

/// The peer is master of VRID 51 only (priority `priority`), for `n` adverts 100 ms apart; VRID 52's
/// adverts do not reach us (filtered).
fn peer_on_a_only(h: &mut Harness, priority: u8, n: usize) {
    for _ in 0..n {
        h.advert_for(51, priority, VIP);
        h.advance(Duration::from_millis(100));
    }
}

fn vip_b() -> IpAddr {
    IpAddr::V4(VIP_B)
}

fn status_of(h: &Harness, name: &str) -> crate::control::InstanceStatus {
    let rt = h.daemon.instances.iter().find(|r| r.cfg.name == name);
    rt.unwrap().status(&[], h.now)
}

#[test]
fn without_a_group_the_member_that_hears_nothing_claims() {
    let mut h = start_two("");
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(h.state_of("a"), State::Backup);
    assert_eq!(h.state_of("b"), State::Master, "split: b claimed alone");
}

#[test]
fn a_member_that_hears_nothing_while_its_sibling_hears_a_master_does_not_claim_and_says_why() {
    let mut h = start_two(GROUP);
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(h.state_of("a"), State::Backup);
    assert_eq!(h.state_of("b"), State::Backup, "b does not split the group");
    assert!(!h.host.has(IFINDEX, vip_b()));
    let why = status_of(&h, "b").claim_inhibit.expect("b says why");
    assert_eq!(
        why,
        "not claiming: group fs: no adverts heard on VRID 52, but a hears master 192.0.2.2 on VRID 51: VRID 52 VRRP filtered between us?"
    );
    // The peer goes away: a claims after master-down, and b with it at once.
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state_of("a"), State::Master);
    assert_eq!(h.state_of("b"), State::Master);
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    assert_eq!(status_of(&h, "b").claim_inhibit, None);
}

#[test]
fn a_member_that_yields_to_a_better_master_takes_its_siblings_along() {
    let mut h = start_two(GROUP);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    h.host.take_log();
    h.advert_for(51, 254, VIP);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
    assert!(!h.host.has(IFINDEX, vip_b()), "b gave up at once");
    let reason = status_of(&h, "b").reason.unwrap();
    assert_eq!(
        reason,
        "BACKUP: group fs: a became BACKUP (master 192.0.2.2, priority 254)"
    );
    // And b stays backup while a hears that master.
    peer_on_a_only(&mut h, 254, 20);
    assert_eq!(h.state_of("b"), State::Backup);
}

#[test]
fn a_fault_of_one_member_hands_over_the_whole_group_make_before_break() {
    let mut h = start_two(GROUP);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    h.host.take_log();
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::Link {
                index: ETH1,
                name: "eth1".into(),
                up: false,
            },
        );
        h.daemon.carry_out(h.now);
    }
    // b faults (its tracked eth1), and a with it: both advertise 0 and keep their VIPs.
    let log = h.host.take_log();
    let zeros = log
        .iter()
        .filter(|c| matches!(c, Call::Advert { priority: 0, .. }))
        .count();
    assert_eq!(zeros, 2, "both members step down: {log:?}");
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    // The successor speaks on a's VRID only (b's is filtered): both let go.
    h.advance(Duration::from_millis(20));
    h.advert_for(51, 100, VIP);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Fault, State::Fault)
    );
    assert!(!h.host.has(IFINDEX, vip()) && !h.host.has(IFINDEX, vip_b()));
    let reason = status_of(&h, "a").reason.unwrap();
    assert!(
        reason.starts_with("FAULT: group fs: b is in FAULT (tracked interface eth1 is down)"),
        "{reason}"
    );
    // eth1 back: both back in the election, neither claims while a better peer is heard.
    {
        let _rt = h.runtime.enter();
        h.daemon.on_net_event(
            h.now,
            crate::net::netlink::NetEvent::Link {
                index: ETH1,
                name: "eth1".into(),
                up: true,
            },
        );
    }
    peer_on_a_only(&mut h, 200, 20);
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
}

#[test]
fn takeover_and_release_of_a_group_move_every_member() {
    let mut h = start_two(GROUP);
    peer_on_a_only(&mut h, 200, 10);
    let mut rx = h.call(Request::Takeover {
        instance: "fs".into(),
    });
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("a: taking over") && message.contains("b: taking over"),
                "{message}"
            )
        }
        other => panic!("expected the takeover to be done, got {other:?}"),
    }
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Master, State::Master)
    );
    assert!(h.host.has(IFINDEX, vip()) && h.host.has(IFINDEX, vip_b()));
    let mut rx = h.call(Request::Status { instance: None });
    match answer(&mut rx) {
        Some(Response::Status { groups, .. }) => {
            assert_eq!(groups.len(), 1);
            assert_eq!(groups[0].name, "fs");
            assert!(!groups[0].split);
            assert_eq!(groups[0].members[1].state, "MASTER");
        }
        other => panic!("expected a status, got {other:?}"),
    }
    // Release: answered once both handed over; the successor is heard on a's VRID only.
    let mut rx = h.call(Request::Release {
        instance: "fs".into(),
        force: false,
    });
    h.advance(Duration::from_millis(30));
    assert_eq!(answer(&mut rx), None, "not before the members handed over");
    assert!(
        h.host.has(IFINDEX, vip_b()),
        "kept until the successor speaks"
    );
    h.advert_for(51, 200, VIP);
    h.advance(Duration::from_millis(10));
    match answer(&mut rx) {
        Some(Response::Done { message }) => {
            assert!(
                message.contains("a: released") && message.contains("b: released"),
                "{message}"
            )
        }
        other => panic!("expected the release to be done, got {other:?}"),
    }
    assert_eq!(
        (h.state_of("a"), h.state_of("b")),
        (State::Backup, State::Backup)
    );
    assert!(!h.host.has(IFINDEX, vip()) && !h.host.has(IFINDEX, vip_b()));
}

mod boot;
