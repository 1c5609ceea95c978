//! Kernel parameters through `/proc/sys` of the calling process's network namespace: reading and
//! writing one key (`net/ipv4/conf/eth0/arp_ignore`), and the key names of the per-interface settings
//! a virtual-MAC interface and its parent need (keepalived's `vrrp_if_config.c` lists the same).

use std::io;
use std::path::PathBuf;

/// `/proc/sys/{key}`. Interface names go in verbatim (`vrrp.51` is one directory, not two).
pub fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// The value of `key`, trimmed.
pub fn read(key: &str) -> io::Result<String> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path(key).display())))
}

/// Sets `key` to `value`.
pub fn write(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(path(key), value)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path(key).display())))
}

/// `net/ipv4/conf/{ifname}/{param}`.
pub fn ipv4_conf(ifname: &str, param: &str) -> String {
    format!("net/ipv4/conf/{ifname}/{param}")
}

/// `net/ipv6/conf/{ifname}/{param}`.
pub fn ipv6_conf(ifname: &str, param: &str) -> String {
    format!("net/ipv6/conf/{ifname}/{param}")
}

/// What the parent of a virtual-MAC interface needs while it carries one: it must not answer ARP for
/// the VIPs on the macvlan (`arp_ignore = 1`: only for addresses on the interface asked) nor for its
/// own addresses from the wrong interface (`arp_filter = 1`), and its own ARP requests (for a client
/// the VIP answers) must name its own address, not the VIP (`arp_announce = 2`): a client that
/// hears "VIP is at the parent's MAC" in a request would point the VIP there. Put back on exit.
pub const PARENT_V4: &[(&str, &str)] = &[
    ("arp_ignore", "1"),
    ("arp_filter", "1"),
    ("arp_announce", "2"),
];

/// What the virtual-MAC interface itself needs (it is deleted on exit, so nothing is put back):
/// answer ARP only for its own VIPs, accept packets from the host's own addresses (a peer on the same
/// host in tests, keepalived does the same), no reverse-path filter (the route back to a client is
/// through the parent), and keep a secondary VIP when the first goes.
pub const VMAC_V4: &[(&str, &str)] = &[
    ("arp_ignore", "1"),
    ("accept_local", "1"),
    ("rp_filter", "0"),
    ("promote_secondaries", "1"),
];

/// No IPv6 on the virtual-MAC interface of an IPv4 instance: every router of the VRID would generate
/// the same link-local address from the virtual MAC and send MLD reports and router solicitations
/// from it, teaching the switch the virtual MAC's port from a host that is not the master.
pub const VMAC_V4_NO_V6: &[(&str, &str)] = &[("disable_ipv6", "1")];

/// IPv6 on the virtual-MAC interface: no address generated from the virtual MAC (every router of the
/// VRID would make the same link-local one and fail duplicate address detection), and the link-local
/// address floatip puts there kept while the interface is down.
pub const VMAC_V6: &[(&str, &str)] = &[
    ("disable_ipv6", "0"),
    ("addr_gen_mode", "1"),
    ("keep_addr_on_down", "1"),
    ("accept_dad", "0"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_dotted_interface_names_whole() {
        assert_eq!(
            path(&ipv4_conf("vrrp.51", "arp_ignore")),
            PathBuf::from("/proc/sys/net/ipv4/conf/vrrp.51/arp_ignore")
        );
        assert_eq!(
            ipv6_conf("eth0", "addr_gen_mode"),
            "net/ipv6/conf/eth0/addr_gen_mode"
        );
    }
}
