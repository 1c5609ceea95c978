//! An etcd election's behaviour over the fake kernel (`net::fake::FakeHost`) and an etcd in memory
//! ([`super::fake::FakeEtcd`]), without root: claiming a free key (and not while another host
//! answers for the VIP), a planned move that is make-before-break, and the loss of the lease. Two
//! hosts share one etcd; "the LAN" is the hosts' fakes answering for the VIPs the others hold.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::client::Cluster;
use super::fake::FakeEtcd;
use super::host::HostAccess;
use super::{log_time, Elector, Shared};
use crate::control::events::EventHub;
use crate::net::fake::{Call, FakeHost};

const VIP: &str = "192.0.2.97";
const DIR: &str = "/floatip/files/";
const IFINDEX: u32 = 2;

fn vip() -> IpAddr {
    VIP.parse().unwrap()
}

/// Host `n` (192.0.2.n on eth0) and its etcd election of "files" at `priority`.
async fn host(n: u8, priority: u8, etcd: &FakeEtcd) -> (FakeHost, Elector) {
    let text = format!(
        "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
         addresses = [\"{VIP}/24\"]\nelection = \"etcd\"\n\n[etcd]\n\
         endpoints = [\"http://192.0.2.11:2379\"]\nlease_ttl = \"3s\"\n"
    );
    let mut cfg = crate::config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let etcd_cfg = cfg.etcd.clone().unwrap();
    let (instances, _) = crate::election::take_etcd_instances(&mut cfg);
    let fake = FakeHost::with_link(
        "eth0",
        IFINDEX,
        (format!("192.0.2.{n}").parse().unwrap(), 24),
    );
    let shared = Shared {
        cluster: Cluster::new(vec![etcd.member()], etcd_cfg.lease_ttl),
        host: HostAccess::new(Box::new(fake.clone())),
        events: EventHub::new(),
        state_dir: std::env::temp_dir()
            .join(format!("floatip-etcd-test-{}-{n}", std::process::id())),
    };
    let (_tx, rx) = mpsc::channel(4);
    let (status, _) = watch::channel(Vec::new());
    let e = Elector::prepare(
        "files".into(),
        instances,
        &etcd_cfg,
        shared,
        (rx, status),
        vrrp::Override::Auto,
    )
    .await
    .unwrap();
    fake.take_log();
    (fake, e)
}

/// What a probe on each host hears: the VIP answered by the other host while it holds it.
fn lan(a: &FakeHost, b: &FakeHost) {
    a.answer_for(vip(), b.has(IFINDEX, vip()).then_some([2, 0, 0, 0, 0, 0xb]));
    b.answer_for(vip(), a.has(IFINDEX, vip()).then_some([2, 0, 0, 0, 0, 0xa]));
}

#[tokio::test]
async fn a_free_key_is_claimed_and_the_vip_added_and_announced() {
    let etcd = FakeEtcd::default();
    let (h1, mut e1) = host(1, 150, &etcd).await;
    e1.tick().await;
    assert!(h1.has(IFINDEX, vip()), "{:?}", h1.take_log());
    let log = h1.take_log();
    let add = log.iter().position(|c| *c == Call::Add(vip()));
    let announce = log.iter().position(|c| *c == Call::Announce(vip()));
    assert!(
        matches!((add, announce), (Some(a), Some(b)) if a < b),
        "added, then announced: {log:?}"
    );
    let (owner, lease) = etcd.owner(DIR).expect("an owner key");
    assert!(owner.ends_with(" 192.0.2.1") && Some(lease) == e1.lease.as_ref().map(|l| l.id));
}

#[tokio::test]
async fn no_claim_while_another_host_answers_for_the_vip() {
    let etcd = FakeEtcd::default();
    let (h1, mut e1) = host(1, 150, &etcd).await;
    h1.answer_for(vip(), Some([2, 0, 0, 0, 0, 0x99]));
    for _ in 0..3 {
        e1.tick().await;
    }
    assert!(!h1.has(IFINDEX, vip()));
    assert!(etcd.owner(DIR).is_none(), "nobody may own the key");
    assert!(e1
        .claim_inhibit
        .as_deref()
        .is_some_and(|w| w.contains("02:00:00:00:00:99")));
    // The other host lets go: the claim goes ahead.
    h1.answer_for(vip(), None);
    e1.tick().await;
    assert!(h1.has(IFINDEX, vip()) && etcd.owner(DIR).is_some());
}

/// A better candidate with preempt arrives: the owner names it, it takes the key over and adds and
/// announces the VIP, and only then does the old owner remove it. At no step is the VIP on nobody.
#[tokio::test]
async fn a_preempting_candidate_takes_over_make_before_break() {
    let etcd = FakeEtcd::default();
    let (h1, mut e1) = host(1, 100, &etcd).await;
    e1.tick().await;
    assert!(h1.has(IFINDEX, vip()));
    let (h2, mut e2) = host(2, 150, &etcd).await;
    let mut steps = 0;
    while !h2.has(IFINDEX, vip()) || h1.has(IFINDEX, vip()) {
        steps += 1;
        assert!(steps < 60, "no handoff after {steps} steps");
        lan(&h1, &h2);
        e2.tick().await;
        assert!(
            h1.has(IFINDEX, vip()) || h2.has(IFINDEX, vip()),
            "nobody held the VIP"
        );
        lan(&h1, &h2);
        e1.tick().await;
        assert!(
            h1.has(IFINDEX, vip()) || h2.has(IFINDEX, vip()),
            "nobody held the VIP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (owner, _) = etcd.owner(DIR).expect("an owner");
    assert!(owner.ends_with(" 192.0.2.2"), "{owner}");
    let log2 = h2.take_log();
    assert!(log2.contains(&Call::Announce(vip())), "{log2:?}");
    assert!(h1.take_log().contains(&Call::Remove(vip())));
}

/// The owner's lease ends in etcd (it expired while the owner could not renew it, or a resumed
/// stale leader revoked it): the owner lets go, takes a new lease and is a candidate again; the
/// other host claims once nobody answers for the VIP. Never both at once.
#[tokio::test]
async fn the_loss_of_the_lease_lets_go_and_starts_over() {
    let etcd = FakeEtcd::default();
    let (h1, mut e1) = host(1, 150, &etcd).await;
    e1.tick().await;
    let (h2, mut e2) = host(2, 100, &etcd).await;
    e2.tick().await;
    assert!(h1.has(IFINDEX, vip()) && !h2.has(IFINDEX, vip()));
    assert_eq!(etcd.candidates(DIR), 2);
    let old = e1.lease.as_ref().map(|l| l.id).unwrap();
    etcd.end_lease(old);
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 60, "not settled after {steps} steps");
        lan(&h1, &h2);
        e1.tick().await;
        assert!(
            !(h1.has(IFINDEX, vip()) && h2.has(IFINDEX, vip())),
            "two owners"
        );
        lan(&h1, &h2);
        e2.tick().await;
        assert!(
            !(h1.has(IFINDEX, vip()) && h2.has(IFINDEX, vip())),
            "two owners"
        );
        let renewed = e1
            .lease
            .as_ref()
            .is_some_and(|l| l.id != old && l.candidate);
        if renewed && (h1.has(IFINDEX, vip()) || h2.has(IFINDEX, vip())) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        etcd.candidates(DIR),
        2,
        "h1 is a candidate again with its new lease"
    );
    assert!(etcd.owner(DIR).is_some());
    assert!(h1.take_log().contains(&Call::Remove(vip())));
}

/// etcd cannot be reached: the owner removes its VIP by itself while its lease is still alive in
/// etcd (so nobody else can have won the key yet), and keeps no VIP until etcd answers again.
#[tokio::test]
async fn an_owner_cut_off_from_etcd_lets_go_before_its_lease_can_end() {
    let etcd = FakeEtcd::default();
    let (h1, mut e1) = host(1, 150, &etcd).await;
    e1.tick().await;
    let id = e1.lease.as_ref().map(|l| l.id).unwrap();
    assert!(h1.has(IFINDEX, vip()));
    etcd.set_unreachable(true);
    let mut steps = 0;
    while h1.has(IFINDEX, vip()) {
        steps += 1;
        assert!(steps < 100, "still holding after {steps} ticks");
        tokio::time::sleep(Duration::from_millis(100)).await;
        e1.tick().await;
    }
    assert!(
        etcd.lease_alive(id),
        "the VIP went only after etcd could have ended the lease"
    );
    assert!(e1.failing_since.is_some() && e1.released_at.is_some());
    for _ in 0..3 {
        e1.tick().await;
    }
    assert!(!h1.has(IFINDEX, vip()), "no VIP while etcd is unreachable");
    // etcd answers again (the lease has ended meanwhile): h1 starts over and owns again, once the
    // member's rest after its failures (at most a second) is over.
    etcd.set_unreachable(false);
    etcd.end_lease(id);
    let mut steps = 0;
    while !h1.has(IFINDEX, vip()) {
        steps += 1;
        assert!(steps < 40, "not the owner again after {steps} ticks");
        tokio::time::sleep(Duration::from_millis(100)).await;
        e1.tick().await;
    }
    assert!(e1.failing_since.is_none() && e1.lease.as_ref().is_some_and(|l| l.id != id));
}

#[test]
fn log_times_are_times() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_686_628_631);
    assert_eq!(log_time(t), "2026-12-07 23:37:08.631 UTC");
    let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(log_time(leap), "2000-02-29 00:00:00.000 UTC");
    let today = log_time(SystemTime::now());
    assert!(today.len() == "00:00:00.000 UTC".len(), "{today}");
}
