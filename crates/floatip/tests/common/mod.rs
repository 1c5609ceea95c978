//! The one harness of floatip's integration tests: labs of network namespaces (from
//! `floatip_lab`), floatip daemons in them ([`Node`]), keepalived as a peer, who holds a VIP, one
//! set of timing constants, and [`TempDir`] for tests that need only files.
//!
//! Lab tests start with [`require_root`]: a loud SKIPPED without root, a failure under `CI=true`
//! (or `FLOATIP_LAB_REQUIRED=1`). Every wait is bounded. Helpers panic with a readable message on
//! failure (rather than returning an error) so the `Lab` is dropped during a panic and cleans up.
//! Each test binary uses a different subset, hence the `dead_code` and `unused_imports` allowances.
#![allow(dead_code, unused_imports)]

mod config;
mod etcd;
mod etcd_lab;
mod fs;
mod keepalived;
mod node;
mod owner;

use std::path::Path;
use std::time::Duration;

pub use config::{config_text, floatip_config, write_file, write_path, Instance};
pub use etcd::{require_etcd, Certs, EtcdCluster, ETCD};
pub use etcd_lab::{
    assert_handed_over, assert_make_before_break, etcd_hosts, etcd_inst, etcd_inst_ttl, etcd_lab,
    etcd_lab_ttl, etcd_parts, flag_check, logs, wait_candidates, watch_move, ETCD_TTL,
};
pub use floatip_lab::{
    ownership, require, require_root, unix_now, wait_until, AddrWatch, Host, Lab, Ownership, Proc,
    WatchKind,
};
pub use fs::TempDir;
pub use keepalived::{
    foreign_drops, keepalived_config, keepalived_rejections, keepalived_upstream,
    require_keepalived, require_keepalived_upstream, start_keepalived, start_keepalived_backup,
    start_keepalived_upstream, KaInstance, Keepalived, KEEPALIVED_UPSTREAM_DEFAULT,
};
pub use node::Node;
pub use owner::{
    assert_owner_for, assert_sole_owner_for, holders, mac_name, wait_client_points_at,
    wait_client_reaches, wait_holders, wait_not_holding, wait_owner, wait_single_owner,
    wait_sole_owner,
};

/// The IPv4 service address every test moves around.
pub const VIP4: &str = "192.0.2.97";
/// The IPv6 service address.
pub const VIP6: &str = "2001:db8::97";

/// Generous bound for elections, failovers and daemon start-up: the suite runs its tests in
/// parallel on small machines, so this is "something is wrong", never a measurement.
pub const SETTLE: Duration = Duration::from_secs(20);
/// Poll step for cheap checks (addresses, logs).
pub const STEP: Duration = Duration::from_millis(20);
/// Step between samples of who holds a VIP, when a test watches that nothing moves.
pub const SAMPLE: Duration = Duration::from_millis(40);
/// Poll step for checks that run a command or open a connection (`status --json`, a scrape).
pub const POLL: Duration = Duration::from_millis(50);

/// The floatip binary under test.
pub fn floatip_bin() -> &'static str {
    env!("CARGO_BIN_EXE_floatip")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

/// A lab named after `name` with hosts h1..hN at 192.0.2.N/24 (and 2001:db8::N/64 with `v6`).
pub fn lab_with_hosts(name: &str, n: usize, v6: bool) -> (Lab, Vec<Host>) {
    let mut lab = Lab::new(name).expect("cannot build the lab");
    let hosts = (1..=n)
        .map(|i| {
            let v6 = v6.then(|| format!("2001:db8::{i}/64"));
            lab.add_host(&format!("h{i}"), &format!("192.0.2.{i}/24"), v6.as_deref())
                .unwrap_or_else(|e| panic!("cannot add h{i}: {e:#}"))
        })
        .collect();
    (lab, hosts)
}

/// Adds the client `c` at 192.0.2.100/24 and 2001:db8::100/64.
pub fn add_client(lab: &mut Lab) -> Host {
    lab.add_host("c", "192.0.2.100/24", Some("2001:db8::100/64"))
        .expect("cannot add the client")
}

/// Two hosts h1 (192.0.2.1, MAC ..:01) and h2 (192.0.2.2, MAC ..:02) on a fresh lab, IPv4 only.
pub fn two_hosts(name: &str) -> (Lab, Host, Host) {
    let (lab, mut hosts) = lab_with_hosts(name, 2, false);
    let h2 = hosts.pop().expect("h2");
    let h1 = hosts.pop().expect("h1");
    (lab, h1, h2)
}

/// Whether `nft` (nftables) runs here.
pub fn nft_available() -> bool {
    std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether nftables is installed: [`require`]'s rule (a loud SKIPPED, or a failure under CI).
pub fn require_nft(test_name: &str) -> bool {
    let missing = (!nft_available()).then_some("nft not found");
    require(test_name, missing, "apt-get install nftables")
}
