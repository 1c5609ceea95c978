//! The validated configuration: what the daemon, the checks and the hooks are given. Every value here has
//! passed [`super::validate`]; the defaults a file may leave out are the `DEFAULT_*` constants.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::keys::INSTANCE;

/// Where `floatip run` and `floatip check` look without `--config`.
pub const DEFAULT_PATH: &str = "/etc/floatip/floatip.toml";
/// `[daemon] socket` when unset.
pub const DEFAULT_SOCKET: &str = "/run/floatip/floatip.sock";
/// `[daemon] state_dir` when unset.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/floatip";
pub const DEFAULT_PRIORITY: u8 = 100;
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_ANNOUNCE_COUNT: u32 = 5;
pub const DEFAULT_ANNOUNCE_SPACING: Duration = Duration::from_millis(200);
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_CHECK_RISE: u32 = 2;
pub const DEFAULT_CHECK_FALL: u32 = 3;
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);
/// A refresh must land this long before the lifetime runs out, so one late refresh does not drop the VIP.
pub(super) const LIFETIME_MARGIN: Duration = Duration::from_millis(500);

/// A whole, valid configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from (for messages and reload).
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub instances: Vec<InstanceConfig>,
    /// `[[group]]`s: instances that are MASTER on one host together.
    pub groups: Vec<GroupConfig>,
    /// `[etcd]`: the cluster that decides ownership of `election = "etcd"` instances.
    pub etcd: Option<EtcdConfig>,
}

/// Who decides which host owns an instance's VIPs (`election`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Election {
    /// The VRRP election on the LAN.
    #[default]
    Vrrp,
    /// The holder of a lease-backed key in etcd ([`crate::election::etcd`]).
    Etcd,
}

/// `[etcd] prefix` when unset.
pub const DEFAULT_ETCD_PREFIX: &str = "/floatip/";
/// `[etcd] lease_ttl` when unset.
pub const DEFAULT_ETCD_LEASE_TTL: Duration = Duration::from_secs(5);

/// `[etcd]`: the cluster and how floatip uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs (`http://` or `https://`), at least one.
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, both or neither.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Starts and ends with `/`.
    pub prefix: String,
    /// Whole seconds, 3-60.
    pub lease_ttl: Duration,
}

/// One `[[group]]` (keepalived's `vrrp_sync_group`): its members are MASTER on one host together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    /// At least two instance names of the same file, each in no other group.
    pub instances: Vec<String>,
}

/// `[daemon]`: settings of the process, not of any one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Control socket (root-only); `--socket` / `FLOATIP_SOCKET` override it.
    pub socket: PathBuf,
    /// The HTTP listener (`[daemon] http`, old name `metrics`): the status page, `/status.json` and
    /// `/metrics`; off when `None`.
    pub http: Option<SocketAddr>,
    /// Where manual overrides survive restarts.
    pub state_dir: PathBuf,
    /// A tracing filter ("info", "floatip=debug"); `RUST_LOG` wins when set.
    pub log_level: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from(DEFAULT_SOCKET),
            http: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_level: None,
        }
    }
}

/// A virtual address with the prefix length it is added with ("192.0.2.97/24").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Vip {
    type Err = String;

    /// Parses "ADDR/LEN" and refuses what can never be a service address (network, broadcast, multicast...).
    /// The error is one line naming what is wrong and how to write it instead.
    fn from_str(s: &str) -> Result<Vip, String> {
        parse_vip(s).map_err(|(what, hint)| format!("{what} ({hint})"))
    }
}

/// One `[[instance]]`: a VRRP virtual router and the addresses it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1-255; 255 = this host owns the addresses.
    pub priority: u8,
    pub version: vrrp::Version,
    /// `version` is in the file: the instance never changes it (see [`InstanceConfig::follows_v2`]).
    pub version_chosen: bool,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    /// One family, no duplicates, at least one.
    pub addresses: Vec<Vip>,
    /// Send adverts to these instead of the multicast group (same family as `addresses`).
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv3-over-IPv4 checksum form; the default everywhere else.
    pub checksum: vrrp::ChecksumMode,
    pub announce: AnnounceConfig,
    /// Kernel `valid_lft`/`preferred_lft` of each VIP, whole seconds, refreshed while master.
    pub address_lifetime: Duration,
    /// A backup does not claim while none of these answered recently (same family as `addresses`).
    pub witness: Vec<IpAddr>,
    /// FAULT while any of these links is down (the instance's own interface is always tracked).
    pub track_interfaces: Vec<String>,
    /// Whether the VIPs live on a virtual-MAC macvlan ([`InstanceConfig::vmac_name`]).
    pub vmac: bool,
    /// The macvlan's name as configured (`None`: the default, see [`InstanceConfig::vmac_name`]).
    pub vmac_interface: Option<String>,
    pub checks: Vec<CheckConfig>,
    pub notify: NotifyConfig,
    /// `[[instance.track_file]]`s: priority offsets read from files.
    pub track_files: Vec<TrackFileConfig>,
    /// `[instance.auth]`: PASS or auth_hmac with its keys (read from their files), or none.
    pub auth: vrrp::auth::Auth,
    pub election: Election,
}

impl InstanceConfig {
    /// Whether this instance carries IPv6 addresses (and so speaks VRRPv3 over IPv6).
    pub fn is_v6(&self) -> bool {
        self.addresses.first().is_some_and(|vip| vip.addr.is_ipv6())
    }

    /// The virtual-MAC interface's name (`vrrp.{vrid}` / `vrrp6.{vrid}` by default), when `vmac` is on.
    pub fn vmac_name(&self) -> Option<String> {
        self.vmac.then(|| {
            self.vmac_interface.clone().unwrap_or_else(|| {
                let prefix = if self.is_v6() { "vrrp6" } else { "vrrp" };
                format!("{prefix}.{}", self.vrid)
            })
        })
    }

    /// The virtual MAC (RFC 5798 7.3): 00:00:5e:00:01:{vrid} for IPv4, 00:00:5e:00:02:{vrid} for IPv6.
    pub fn vmac_address(&self) -> [u8; 6] {
        [0, 0, 0x5e, 0, if self.is_v6() { 2 } else { 1 }, self.vrid]
    }

    /// The protocol core's view of this instance; `primary` is our own address on the interface.
    pub fn vrrp_config(&self, primary: IpAddr) -> vrrp::Config {
        vrrp::Config {
            vrid: self.vrid,
            version: self.version,
            priority: self.priority,
            advert_interval: self.advert_interval,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            addresses: self.addresses.iter().map(|vip| vip.addr).collect(),
            primary,
            probe_before_claim: true,
            follow_v2: self.follows_v2(),
        }
    }

    /// An IPv4 instance at the default version 3, without authentication, follows a VRRPv2 router
    /// it hears on its VRID (keepalived's default for IPv4): it speaks VRRPv2 from then on, rather
    /// than be a second master that router cannot hear. `version = 3` in the file keeps it at 3.
    pub fn follows_v2(&self) -> bool {
        !self.version_chosen
            && self.version == vrrp::Version::V3
            && !self.is_v6()
            && self.auth == vrrp::auth::Auth::None
    }

    /// Whether a reload from `self` to `new` leaves the election alone, so it applies to the running
    /// instance in place, without a failover: the two differ only in keys marked `in_place` in
    /// [`super::keys`] (priority, announcements, lifetime, checks, hooks, witness, tracked interfaces). A
    /// change to or from priority 255, the address owner, changes how the core claims: not in place.
    pub fn same_election(&self, new: &InstanceConfig) -> bool {
        let mut probe = new.clone();
        for key in INSTANCE.keys.iter().filter(|k| k.in_place) {
            probe.take_key(key.name, self);
        }
        probe == *self && (self.priority == 255) == (new.priority == 255)
    }

    /// Sets the field of key `name` to `from`'s.
    fn take_key(&mut self, name: &str, from: &InstanceConfig) {
        match name {
            "priority" => self.priority = from.priority,
            "announce" => self.announce = from.announce.clone(),
            "address_lifetime" => self.address_lifetime = from.address_lifetime,
            "check" => self.checks = from.checks.clone(),
            "notify" => self.notify = from.notify.clone(),
            "auth" => self.auth = from.auth.clone(),
            "witness" => self.witness = from.witness.clone(),
            "track_interfaces" => self.track_interfaces = from.track_interfaces.clone(),
            "track_file" => self.track_files = from.track_files.clone(),
            other => unreachable!("keys.rs marks `{other}` in_place: give it a case here"),
        }
    }
}

/// `[instance.announce]`: the gratuitous ARP / unsolicited NA burst after every claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// Packets per burst.
    pub count: u32,
    /// Time between the packets of a burst.
    pub spacing: Duration,
    /// While master, repeat the burst this often (for switches and clients that forget); `None` = never.
    pub refresh: Option<Duration>,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            count: DEFAULT_ANNOUNCE_COUNT,
            spacing: DEFAULT_ANNOUNCE_SPACING,
            refresh: None,
        }
    }
}

/// One `[[instance.check]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub name: String,
    pub kind: CheckKind,
    pub interval: Duration,
    /// Always shorter than `interval`.
    pub timeout: Duration,
    /// Consecutive successes before a failing check is healthy again.
    pub rise: u32,
    /// Consecutive failures before a healthy check is failing.
    pub fall: u32,
    /// `None`: a failing check puts the instance in FAULT. `Some(w)`: it adds `w` (negative) to the priority.
    pub weight: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Icmp {
        target: IpAddr,
    },
    Tcp {
        target: SocketAddr,
    },
    Http {
        url: String,
        /// `None` = any 2xx.
        expect_status: Option<u16>,
        /// A substring the body must contain.
        expect_body: Option<String>,
        /// How an `https://` URL's certificate is checked (unused for `http://`).
        tls: HttpTls,
    },
    Exec {
        /// argv, no shell; `command[0]` is an absolute path.
        command: Vec<String>,
    },
    /// keepalived's `track_process`: how many running processes match.
    Process {
        /// The kernel's name for it (`comm`) or its `argv[0]`'s file name.
        name: String,
        /// A piece of the command line (after `argv[0]`) it must contain.
        args: Option<String>,
        /// At least this many (default 1) and, if set, at most `max`.
        min: u32,
        max: Option<u32>,
    },
}

/// One `[[instance.track_file]]` (keepalived's `track_file`): the number in the file times `weight` is
/// added to the priority; see [`crate::health::track_file`] for the arithmetic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFileConfig {
    /// Shown in status, logs and metrics; unique within the instance.
    pub name: String,
    /// Absolute.
    pub path: PathBuf,
    /// -254..=254; 0: any non-zero number is FAULT.
    pub weight: i32,
}

/// The TLS settings of an `https://` http check: `ca_file`, `tls_server_name`, `insecure_skip_verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpTls {
    /// PEM file of the CA certificates to trust instead of the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// The name sent as SNI and checked against the certificate; default: the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate (signatures are still checked); warned about once at start.
    pub insecure_skip_verify: bool,
}

/// `[instance.notify]`: hooks run in order, one at a time, on each transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub master: Option<Vec<String>>,
    pub backup: Option<Vec<String>>,
    pub fault: Option<Vec<String>>,
    pub stop: Option<Vec<String>>,
    /// A hook still running after this is killed.
    pub timeout: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            master: None,
            backup: None,
            fault: None,
            stop: None,
            timeout: DEFAULT_NOTIFY_TIMEOUT,
        }
    }
}

/// The `address_lifetime` used when the file sets none: gone before a backup claims, kept between refreshes.
///
/// A backup claims after Master_Down = 3 x interval + skew. The kernel removes an expired address up to about
/// a second late (valid_lft is whole seconds, and the expiry work is coarse), so the lifetime is one second
/// under 3 x interval, rounded down: 2 s at the default 1 s adverts. It is at least 1 s (the kernel's unit),
/// and at least interval + 0.5 s, so one late refresh by the master does not drop its own VIP.
pub fn default_address_lifetime(advert_interval: Duration) -> Duration {
    let three = advert_interval.saturating_mul(3);
    let under = three
        .saturating_sub(Duration::from_secs(1))
        .as_secs()
        .max(1);
    let floor = advert_interval + LIFETIME_MARGIN;
    let floor_secs = floor.as_secs() + u64::from(floor.subsec_nanos() > 0);
    Duration::from_secs(under.max(floor_secs))
}
/// Parses "ADDR/LEN" into a [`Vip`], or says what is wrong and how to write it (`(what, hint)`).
pub(super) fn parse_vip(s: &str) -> Result<Vip, (String, String)> {
    let example = "write ADDR/LEN with the prefix length of the LAN, e.g. \"192.0.2.97/24\" or \"2001:db8::97/64\"";
    let Some((addr, len)) = s.trim().split_once('/') else {
        return Err((
            format!("\"{s}\" has no prefix length"),
            format!("{example} (the prefix decides the VIP's subnet route and broadcast address)"),
        ));
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        (
            format!("\"{s}\": \"{addr}\" is not an IP address"),
            example.to_string(),
        )
    })?;
    let max: u8 = if addr.is_ipv6() { 128 } else { 32 };
    let prefix_len: u8 = match len.parse::<u8>() {
        Ok(l) if (1..=max).contains(&l) => l,
        _ => {
            return Err((
                format!("\"{s}\": prefix length \"{len}\" is not 1-{max}"),
                format!(
                    "{example}; an IPv{} prefix is 1-{max}",
                    if addr.is_ipv6() { 6 } else { 4 }
                ),
            ))
        }
    };
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err((
            format!("{s} cannot be a service address (unspecified, multicast or loopback)"),
            "a VIP is a unicast address of the LAN the interface is on, e.g. \"192.0.2.97/24\""
                .into(),
        ));
    }
    if let IpAddr::V4(v4) = addr {
        if v4.is_broadcast() {
            return Err((format!("{s} is the broadcast address"), example.into()));
        }
        if prefix_len <= 30 {
            let host_mask = u32::MAX >> prefix_len;
            let host = u32::from(v4) & host_mask;
            if host == 0 {
                return Err((
                    format!("{s} is the network address of its subnet"),
                    "pick a host address inside the subnet (not the first one), e.g. \"192.0.2.97/24\"".into(),
                ));
            }
            if host == host_mask {
                return Err((
                    format!("{s} is the broadcast address of its subnet"),
                    "pick a host address inside the subnet (not the last one), e.g. \"192.0.2.97/24\"".into(),
                ));
            }
        }
    }
    Ok(Vip { addr, prefix_len })
}
