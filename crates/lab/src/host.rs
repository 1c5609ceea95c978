//! One host of a lab: its namespace's commands and processes, its link to the switch, and its
//! addresses (`ip -o addr` parsed into [`AddrInfo`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use anyhow::Result;

use crate::addr::{format_mac, parse_lab_cidr, parse_lab_ip};
use crate::lab::{ip, spawn_in, Shared};
use crate::proc::{run_checked, run_output, Proc, COMMAND_TIMEOUT};

/// One host of a lab: a network namespace with `lo` and `eth0` on the lab's switch.
///
/// Cheap to clone; the clones refer to the same namespace. A `Host` outliving its [`Lab`] refers to
/// a namespace that no longer exists, and its methods then fail.
#[derive(Clone)]
pub struct Host {
    /// The name given to [`Lab::add_host`], e.g. "h1".
    pub name: String,
    /// The network namespace, for `ip netns exec` or `ip -n`.
    pub netns: String,
    /// eth0's MAC: 02:00:00:00:HH:LL where HHLL is the host number (1 for the first host added).
    pub mac: [u8; 6],
    /// eth0's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// eth0's IPv6 address, if one was given.
    pub ipv6: Option<Ipv6Addr>,
    /// 1-based number of the host within its lab.
    pub number: u16,
    pub(crate) ipv4_len: u8,
    pub(crate) ipv6_len: u8,
    pub(crate) switch_port: String,
    pub(crate) switch_ns: String,
    pub(crate) shared: Arc<Shared>,
}

/// One address of an interface, from `ip -o addr`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrInfo {
    /// "192.0.2.97/32"
    pub cidr: String,
    /// The address alone.
    pub ip: IpAddr,
    /// "global", "link", "host"
    pub scope: String,
    /// Remaining valid lifetime in seconds; `None` = forever.
    pub valid_lft: Option<u64>,
    /// Remaining preferred lifetime in seconds; `None` = forever.
    pub preferred_lft: Option<u64>,
    /// Other flags `ip` printed (e.g. "nodad", "secondary", "deprecated").
    pub flags: Vec<String>,
}

fn parse_lft(s: &str) -> Option<u64> {
    s.strip_suffix("sec").and_then(|n| n.parse().ok())
}

/// Parses `ip -o addr show` lines.
pub(crate) fn parse_addr_lines(text: &str) -> Vec<AddrInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let toks: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '\\')
            .filter(|t| !t.is_empty())
            .collect();
        let Some(i) = toks.iter().position(|t| *t == "inet" || *t == "inet6") else {
            continue;
        };
        let Some(cidr) = toks.get(i + 1) else {
            continue;
        };
        let Ok(ip) = cidr.split('/').next().unwrap_or("").parse::<IpAddr>() else {
            continue;
        };
        let mut info = AddrInfo {
            cidr: cidr.to_string(),
            ip,
            scope: String::new(),
            valid_lft: None,
            preferred_lft: None,
            flags: Vec::new(),
        };
        let mut j = i + 2;
        while j < toks.len() {
            match toks[j] {
                "scope" | "valid_lft" | "preferred_lft" | "brd" | "peer" | "metric"
                    if j + 1 < toks.len() =>
                {
                    let v = toks[j + 1];
                    match toks[j] {
                        "scope" => info.scope = v.to_string(),
                        "valid_lft" => info.valid_lft = parse_lft(v),
                        "preferred_lft" => info.preferred_lft = parse_lft(v),
                        _ => {}
                    }
                    j += 2;
                }
                "eth0" => j += 1,
                f => {
                    info.flags.push(f.to_string());
                    j += 1;
                }
            }
        }
        out.push(info);
    }
    out
}

impl Host {
    /// Runs `argv` inside the host (`ip netns exec <ns> argv...`, bounded to 30 s) and returns its
    /// stdout. A non-zero exit is an error quoting the command line and its stderr.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.netns];
        full.extend_from_slice(argv);
        run_checked(&full, COMMAND_TIMEOUT)
    }

    /// Runs `argv` inside the host and returns its output whatever the exit status.
    pub fn output(&self, argv: &[&str]) -> Result<Output> {
        let mut full = vec!["ip", "netns", "exec", &self.netns];
        full.extend_from_slice(argv);
        run_output(&full, COMMAND_TIMEOUT)
    }

    /// `ip -n <ns> ARGS...` (faster than `run(["ip", ...])`): stdout, or an error with stderr.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Starts `argv` in the host's namespace with stdout and stderr going to `log` (default: a
    /// fresh file in the lab's temp dir, see [`Proc::log_path`]). The lab stops it when dropped;
    /// dropping the `Proc` does not.
    pub fn spawn(&self, argv: &[&str], log: Option<&Path>) -> Result<Proc> {
        spawn_in(&self.shared, &self.netns, &self.name, argv, log)
    }

    /// Host loss: sets the host's port on the switch down, so its eth0 loses carrier and no
    /// frame passes either way. Everything inside the host keeps running.
    pub fn link_down(&self) -> Result<()> {
        ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "down",
        ])
        .map(drop)
    }

    /// Undoes [`link_down`](Self::link_down).
    pub fn link_up(&self) -> Result<()> {
        ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "up",
        ])
        .map(drop)
    }

    /// eth0's MAC as "02:00:00:00:00:01".
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }

    /// "192.0.2.1/24", as given to `add_host`.
    pub fn ipv4_cidr(&self) -> String {
        format!("{}/{}", self.ipv4, self.ipv4_len)
    }

    /// "2001:db8::1/64", as given to `add_host`.
    pub fn ipv6_cidr(&self) -> Option<String> {
        self.ipv6.map(|a| format!("{a}/{}", self.ipv6_len))
    }

    /// eth0's addresses with their lifetimes and flags.
    pub fn address_info(&self) -> Result<Vec<AddrInfo>> {
        Ok(parse_addr_lines(
            &self.ip(&["-o", "addr", "show", "dev", "eth0"])?,
        ))
    }

    /// eth0's addresses as "ADDR/LEN" (both families, link-local included).
    pub fn addresses(&self) -> Result<Vec<String>> {
        Ok(self.address_info()?.into_iter().map(|a| a.cidr).collect())
    }

    /// Whether eth0 has `addr` ("192.0.2.97" or "192.0.2.97/24": the length is ignored).
    /// False if the address cannot be parsed or `ip` fails.
    pub fn has_address(&self, addr: &str) -> bool {
        let Ok(want) = addr.split('/').next().unwrap_or("").parse::<IpAddr>() else {
            return false;
        };
        self.address_info()
            .is_ok_and(|v| v.iter().any(|a| a.ip == want))
    }

    /// Adds a lab address to eth0 (refusing anything outside the lab ranges); IPv6 with nodad.
    pub fn add_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_lab_cidr(cidr)?;
        let c = format!("{ip}/{len}");
        let mut args = vec!["addr", "add", c.as_str(), "dev", "eth0"];
        if ip.is_ipv6() {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Removes an address from eth0.
    pub fn del_address(&self, cidr: &str) -> Result<()> {
        let (ip, len) = parse_lab_cidr(cidr)?;
        self.ip(&["addr", "del", &format!("{ip}/{len}"), "dev", "eth0"])
            .map(drop)
    }

    /// The MAC the host's neighbour table holds for `addr`, if it has a usable entry (none for
    /// INCOMPLETE or FAILED).
    pub fn neigh_mac(&self, addr: &str) -> Option<[u8; 6]> {
        let ip = parse_lab_ip(addr).ok()?.to_string();
        let out = self.ip(&["neigh", "show", "to", &ip, "dev", "eth0"]).ok()?;
        let line = out.lines().next()?;
        let mut toks = line.split_whitespace();
        toks.find(|t| *t == "lladdr")?;
        crate::addr::parse_mac(toks.next()?)
    }

    /// Empties the host's neighbour (ARP/ND) table on eth0.
    pub fn neigh_flush(&self) -> Result<()> {
        self.ip(&["neigh", "flush", "dev", "eth0"]).map(drop)
    }

    /// One ping (`ping -c 1 -W 1`): whether `target` answered within a second.
    pub fn can_ping(&self, target: &str) -> bool {
        if parse_lab_ip(target).is_err() {
            return false;
        }
        self.output(&["ping", "-n", "-q", "-c", "1", "-W", "1", target])
            .is_ok_and(|o| o.status.success())
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .field("mac", &self.mac_string())
            .field("ipv4", &self.ipv4_cidr())
            .field("ipv6", &self.ipv6_cidr())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_o_addr() {
        let text = "2: eth0    inet 192.0.2.1/24 scope global eth0\\       valid_lft forever preferred_lft forever\n\
2: eth0    inet 192.0.2.97/32 scope global eth0\\       valid_lft 9sec preferred_lft 9sec\n\
2: eth0    inet6 2001:db8::1/64 scope global nodad \\       valid_lft forever preferred_lft forever\n\
2: eth0    inet6 fe80::ff:fe00:1/64 scope link \\       valid_lft forever preferred_lft forever\n";
        let v = parse_addr_lines(text);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].cidr, "192.0.2.1/24");
        assert_eq!(v[0].valid_lft, None);
        assert_eq!(v[1].valid_lft, Some(9));
        assert_eq!(v[1].preferred_lft, Some(9));
        assert_eq!(v[2].flags, vec!["nodad".to_string()]);
        assert_eq!(v[3].scope, "link");
    }
}
