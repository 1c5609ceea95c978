//! Interop with Debian's keepalived as a live VRRP peer, in network namespaces: floatip as master with
//! keepalived as backup and the reverse, for VRRPv3 (100 ms adverts) and VRRPv2 (1 s, whole seconds),
//! through election, failover on host loss and preemption back.
//!
//! Beyond who holds the VIP, each test checks that neither side rejected the other's adverts: floatip
//! runs with RUST_LOG=debug and logs every dropped advert with its reason (only its own looped-back
//! packets may appear); keepalived logs checksum, version, TTL and interval mismatches.
//!
//! Needs root and /usr/sbin/keepalived (`.ci/run` installs it); without them every test prints
//! SKIPPED and passes, unless CI=true.

mod common;

use std::time::Duration;

use common::*;
use floatip_lab::{require_root, Host, Lab};

/// One VRRP version's settings on both sides.
#[derive(Clone, Copy)]
struct Proto {
    version: u8,
    /// floatip's advert_interval.
    floatip_interval: &'static str,
    /// keepalived's advert_int (seconds).
    keepalived_int: &'static str,
    interval: Duration,
}

const V3: Proto = Proto {
    version: 3,
    floatip_interval: "100ms",
    keepalived_int: "0.1",
    interval: Duration::from_millis(100),
};

const V2: Proto = Proto {
    version: 2,
    floatip_interval: "1s",
    keepalived_int: "1",
    interval: Duration::from_secs(1),
};

impl Proto {
    /// Longer than any backup's Master_Down (3 x interval + skew < 4 x interval), plus slack: a
    /// backup that ignored the master's adverts would have claimed by then.
    fn watch(&self) -> Duration {
        4 * self.interval + Duration::from_millis(500)
    }
}

fn setup(name: &str) -> (Lab, Host, Host, Host) {
    let mut lab = Lab::new(name).expect("cannot build the lab");
    let h1 = lab.add_host("h1", "192.0.2.1/24", None).expect("h1");
    let h2 = lab.add_host("h2", "192.0.2.2/24", None).expect("h2");
    let c = lab.add_host("c", "192.0.2.100/24", None).expect("c");
    (lab, h1, h2, c)
}

fn floatip_instance(p: Proto, priority: u8) -> Instance {
    Instance::v4(priority)
        .version(p.version)
        .interval(p.floatip_interval)
}

/// Neither side rejected the other's adverts.
fn assert_no_rejections(f: &Floatip, k: &Keepalived) {
    let drops = foreign_drops(&f.log());
    assert!(
        drops.is_empty(),
        "floatip dropped keepalived's adverts:\n{}",
        drops.join("\n")
    );
    let rej = keepalived_rejections(&k.log());
    assert!(
        rej.is_empty(),
        "keepalived rejected floatip's adverts:\n{}",
        rej.join("\n")
    );
}

/// floatip (150) master, keepalived (100) backup: floatip holds; host loss -> keepalived claims;
/// link back -> floatip preempts and keepalived releases.
fn floatip_master_keepalived_backup(name: &str, p: Proto) {
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2, c) = setup(name);
    let both = [&h1, &h2];
    let f = start_floatip_log(&lab, &h1, &[floatip_instance(p, 150)], "debug");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let k = start_keepalived(&lab, &h2, &KaInstance::v4(100, p.version, p.keepalived_int));
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived did not start as backup: {}",
        k.log()
    );
    // keepalived hears floatip's adverts: it never claims while floatip is master.
    assert_sole_owner_for(&both, &h1, VIP4, p.watch(), Duration::from_millis(50));
    assert!(
        !k.log().contains("Entering MASTER STATE"),
        "keepalived claimed while floatip was master: {}",
        k.log()
    );
    wait_client_reaches(&c, VIP4, &h1, &both);

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    assert!(
        k.log().contains("Entering MASTER STATE"),
        "keepalived: {}",
        k.log()
    );
    wait_client_reaches(&c, VIP4, &h2, &both);

    let k_backups = k.log().matches("Entering BACKUP STATE").count();
    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k
            .log()
            .matches("Entering BACKUP STATE")
            .count()
            > k_backups),
        "keepalived did not step back: {}",
        k.log()
    );
    assert_sole_owner_for(&both, &h1, VIP4, p.watch(), Duration::from_millis(50));
    wait_client_reaches(&c, VIP4, &h1, &both);
    assert_no_rejections(&f, &k);
}

/// keepalived (150) master, floatip (100) backup: keepalived holds; host loss -> floatip claims;
/// link back -> keepalived preempts and floatip releases.
fn keepalived_master_floatip_backup(name: &str, p: Proto) {
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let (lab, h1, h2, c) = setup(name);
    let both = [&h1, &h2];
    let k = start_keepalived(&lab, &h1, &KaInstance::v4(150, p.version, p.keepalived_int));
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    let f = start_floatip_log(&lab, &h2, &[floatip_instance(p, 100)], "debug");
    assert!(
        f.wait_log("managing", SETTLE),
        "floatip did not start: {}",
        f.log()
    );
    // floatip hears keepalived's adverts: it never claims while keepalived is master.
    assert_sole_owner_for(&both, &h1, VIP4, p.watch(), Duration::from_millis(50));
    assert!(
        !f.log().contains("-> MASTER"),
        "floatip claimed while keepalived was master: {}",
        f.log()
    );
    wait_client_reaches(&c, VIP4, &h1, &both);

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, VIP4, SETTLE);
    assert!(f.log().contains("BACKUP -> MASTER"), "floatip: {}", f.log());
    wait_client_reaches(&c, VIP4, &h2, &both);

    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, VIP4, SETTLE);
    assert!(
        f.wait_log("MASTER -> BACKUP", SETTLE),
        "floatip did not step back: {}",
        f.log()
    );
    assert_sole_owner_for(&both, &h1, VIP4, p.watch(), Duration::from_millis(50));
    wait_client_reaches(&c, VIP4, &h1, &both);
    assert_no_rejections(&f, &k);
}

#[test]
fn v3_floatip_master_keepalived_backup() {
    floatip_master_keepalived_backup("v3_floatip_master_keepalived_backup", V3);
}

#[test]
fn v3_keepalived_master_floatip_backup() {
    keepalived_master_floatip_backup("v3_keepalived_master_floatip_backup", V3);
}

#[test]
fn v2_floatip_master_keepalived_backup() {
    floatip_master_keepalived_backup("v2_floatip_master_keepalived_backup", V2);
}

#[test]
fn v2_keepalived_master_floatip_backup() {
    keepalived_master_floatip_backup("v2_keepalived_master_floatip_backup", V2);
}
