//! Interop with Debian's keepalived as a live VRRP peer, in network namespaces: floatip as master with
//! keepalived as backup and the reverse, for VRRPv3 (100 ms adverts) over IPv4 and IPv6 and VRRPv2 (1 s,
//! whole seconds), through election, failover on host loss and preemption back.
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

/// One VRRP version's settings on both sides.
#[derive(Clone, Copy)]
struct Proto {
    version: u8,
    /// floatip's advert_interval.
    floatip_interval: &'static str,
    /// keepalived's advert_int (seconds).
    keepalived_int: &'static str,
    interval: Duration,
    /// VRRPv3 over IPv6 (adverts from the link-local address, VIP 2001:db8::97).
    v6: bool,
    /// floatip with neither `version` nor `advert_interval` in its file (its defaults: VRRPv3 that
    /// follows a VRRPv2 router it hears, 1 s); `version` is then keepalived's (0: its default, 2).
    defaults: bool,
}

const V3: Proto = Proto {
    version: 3,
    floatip_interval: "100ms",
    keepalived_int: "0.1",
    interval: Duration::from_millis(100),
    v6: false,
    defaults: false,
};

const V3_IPV6: Proto = Proto { v6: true, ..V3 };

const V2: Proto = Proto {
    version: 2,
    floatip_interval: "1s",
    keepalived_int: "1",
    interval: Duration::from_secs(1),
    v6: false,
    defaults: false,
};

/// Both at their defaults: keepalived VRRPv2 (no `vrrp_version`), advert_int 1; floatip with no
/// version or interval in its file.
const DEFAULTS: Proto = Proto {
    version: 0,
    defaults: true,
    ..V2
};

/// keepalived with `vrrp_version 3` at advert_int 1, floatip at its defaults.
const DEFAULTS_KA_V3: Proto = Proto {
    version: 3,
    ..DEFAULTS
};

impl Proto {
    /// Longer than any backup's Master_Down (3 x interval + skew < 4 x interval), plus slack: a
    /// backup that ignored the master's adverts would have claimed by then.
    fn watch(&self) -> Duration {
        4 * self.interval + Duration::from_millis(500)
    }

    fn vip(&self) -> &'static str {
        if self.v6 {
            VIP6
        } else {
            VIP4
        }
    }

    fn floatip(&self, priority: u8) -> Instance {
        let i = if self.v6 {
            Instance::v6(priority)
        } else {
            Instance::v4(priority)
        };
        if self.defaults {
            i.defaults()
        } else {
            i.version(self.version).interval(self.floatip_interval)
        }
    }

    /// The same virtual router as [`Proto::floatip`].
    fn keepalived(&self, priority: u8) -> KaInstance {
        let f = self.floatip(priority);
        KaInstance {
            vrid: f.vrid,
            vips: f.addresses,
            ..KaInstance::v4(priority, self.version, self.keepalived_int)
        }
    }
}

fn setup(name: &str) -> (Lab, Host, Host, Host) {
    let (mut lab, mut hosts) = lab_with_hosts(name, 2, true);
    let c = add_client(&mut lab);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    (lab, h1, h2, c)
}

/// Neither side rejected the other's adverts.
fn assert_no_rejections(f: &Node, k: &Keepalived) {
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
    let vip = p.vip();
    let f = Node::spawn_with(&lab, &h1, "", "debug", &[p.floatip(150)]);
    wait_sole_owner(&both, &h1, vip, SETTLE);
    let k = start_keepalived(&lab, &h2, &p.keepalived(100));
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")),
        "keepalived did not start as backup: {}",
        k.log()
    );
    // keepalived hears floatip's adverts: it never claims while floatip is master.
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    assert!(
        !k.log().contains("Entering MASTER STATE"),
        "keepalived claimed while floatip was master: {}",
        k.log()
    );
    wait_client_reaches(&c, vip, &h1, &both);

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, vip, SETTLE);
    assert!(
        k.log().contains("Entering MASTER STATE"),
        "keepalived: {}",
        k.log()
    );
    wait_client_reaches(&c, vip, &h2, &both);

    let k_backups = k.log().matches("Entering BACKUP STATE").count();
    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, vip, SETTLE);
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k
            .log()
            .matches("Entering BACKUP STATE")
            .count()
            > k_backups),
        "keepalived did not step back: {}",
        k.log()
    );
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    wait_client_reaches(&c, vip, &h1, &both);
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
    let vip = p.vip();
    let k = start_keepalived(&lab, &h1, &p.keepalived(150));
    wait_sole_owner(&both, &h1, vip, SETTLE);
    let f = Node::spawn_with(&lab, &h2, "", "debug", &[p.floatip(100)]);
    assert!(
        f.wait_log("managing", SETTLE),
        "floatip did not start: {}",
        f.log()
    );
    // floatip hears keepalived's adverts: it never claims while keepalived is master.
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    assert!(
        !f.log().contains("-> MASTER"),
        "floatip claimed while keepalived was master: {}",
        f.log()
    );
    wait_client_reaches(&c, vip, &h1, &both);

    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, vip, SETTLE);
    // The log line follows the address by a moment.
    assert!(
        f.wait_log("BACKUP -> MASTER", SETTLE),
        "floatip: {}",
        f.log()
    );
    wait_client_reaches(&c, vip, &h2, &both);

    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, vip, SETTLE);
    assert!(
        f.wait_log("MASTER -> BACKUP", SETTLE),
        "floatip did not step back: {}",
        f.log()
    );
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    wait_client_reaches(&c, vip, &h1, &both);
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

#[test]
fn v3_ipv6_floatip_master_keepalived_backup() {
    floatip_master_keepalived_backup("v3_ipv6_floatip_master_keepalived_backup", V3_IPV6);
}

#[test]
fn v3_ipv6_keepalived_master_floatip_backup() {
    keepalived_master_floatip_backup("v3_ipv6_keepalived_master_floatip_backup", V3_IPV6);
}

#[test]
fn defaults_keepalived_v2_master_floatip_backup() {
    keepalived_master_floatip_backup("defaults_ka_master", DEFAULTS);
}

#[test]
fn defaults_keepalived_v3_master_floatip_backup() {
    keepalived_master_floatip_backup("defaults_kav3_master", DEFAULTS_KA_V3);
}

#[test]
fn defaults_floatip_master_keepalived_v3_backup() {
    floatip_master_keepalived_backup("defaults_kav3_backup", DEFAULTS_KA_V3);
}

/// floatip at its defaults (VRRPv3) is master when keepalived starts at its defaults (VRRPv2, which
/// cannot hear VRRPv3): keepalived claims once its master-down runs out, floatip hears its VRRPv2
/// advert, follows (answers at once in VRRPv2, priority 150 > 100) and keepalived steps down. Then
/// the pair elects as any VRRPv2 pair: host loss moves the VIP, and floatip preempts back. Prints
/// the time with two owners that keepalived's start cost.
#[test]
fn defaults_floatip_master_keepalived_v2_backup() {
    let name = "defaults_ka_backup";
    if !require_root(name) || !require_keepalived(name) {
        return;
    }
    let p = DEFAULTS;
    let (lab, h1, h2, c) = setup(name);
    let both = [&h1, &h2];
    let vip = p.vip();
    let f = Node::spawn_with(&lab, &h1, "", "debug", &[p.floatip(150)]);
    wait_sole_owner(&both, &h1, vip, SETTLE);
    let w1 = AddrWatch::start(&h1, vip).expect("watch h1");
    let w2 = AddrWatch::start(&h2, vip).expect("watch h2");
    let k = start_keepalived(&lab, &h2, &p.keepalived(100));
    assert!(
        f.wait_log("following the VRRPv2 router 192.0.2.2", SETTLE),
        "floatip did not follow keepalived's VRRPv2: {}",
        f.log()
    );
    assert!(
        floatip_lab::wait_until(SETTLE, STEP, || k.log().contains("Entering BACKUP STATE")
            && !h2.has_address(vip)),
        "keepalived did not step down: {}",
        k.log()
    );
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    let (t1, t2) = (w1.stop(), w2.stop());
    let own = ownership(&[t1.clone(), t2.clone()], t1.since, unix_now(), false);
    println!(
        "MEASURED keepalived (VRRPv2 default) started beside a floatip master at defaults: two owners {:.0} ms, no owner {:.0} ms",
        own.shared_secs() * 1000.0,
        own.none_secs() * 1000.0
    );
    assert!(own.none.is_empty(), "nobody held the VIP: {:?}", own.none);
    // status says which version it speaks and why.
    let st = f.status("files");
    assert_eq!(st["version"], 2, "{st:#}");
    assert!(
        st["version_why"]
            .as_str()
            .is_some_and(|w| w.contains("192.0.2.2")),
        "{st:#}"
    );
    wait_client_reaches(&c, vip, &h1, &both);
    // From here on it is a VRRPv2 pair.
    h1.link_down().expect("link down");
    wait_sole_owner(&both, &h2, vip, SETTLE);
    h1.link_up().expect("link up");
    wait_sole_owner(&both, &h1, vip, SETTLE);
    assert_sole_owner_for(&both, &h1, vip, p.watch(), Duration::from_millis(50));
    wait_client_reaches(&c, vip, &h1, &both);
    // floatip accepted every advert of keepalived's.
    let drops = foreign_drops(&f.log());
    assert!(
        drops.is_empty(),
        "floatip dropped keepalived's adverts:\n{}",
        drops.join("\n")
    );
}
