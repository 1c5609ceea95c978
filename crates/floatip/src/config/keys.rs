//! Every key of every table, defined once: its name, type, default, range, what a value must look like
//! (the hint for a value of the wrong type), its line in `docs/config.md`, and whether a change to it
//! applies to a running instance in place. The walk's key lists, the unknown-key hints, the type hints and
//! the reference tables of `docs/config.md` (see [`super::reference`]) are all read from here; the serde
//! structs of [`super::raw`] are checked against it by a test.
//!
//! To add a key: a line here, a field in `raw.rs`, its check in `validate/`, its field in `model.rs`; then
//! `FLOATIP_BLESS=1 cargo test -p floatip --lib config` rewrites the reference tables of `docs/config.md`.

/// One key of one table.
#[derive(Debug)]
pub(crate) struct KeyDef {
    pub(crate) name: &'static str,
    /// The type as the reference shows it ("duration", "list of addresses").
    pub(crate) ty: &'static str,
    /// The default as the reference shows it (markdown), or `**required**`.
    pub(crate) default: &'static str,
    /// The values allowed and the rules across keys, as the reference shows them (markdown).
    pub(crate) range: &'static str,
    /// What a value must look like: "`vrid` takes ..." after a value of the wrong TOML type.
    pub(crate) takes: &'static str,
    /// The reference's "Meaning" column (markdown).
    pub(crate) doc: &'static str,
    /// The table this key holds, for `announce`, `check`, ...
    pub(crate) table: Option<&'static Table>,
    /// The check kinds the key belongs to (`[[instance.check]]` only); empty: every kind.
    pub(crate) kinds: &'static [&'static str],
    /// A reload applies a change to this key without a failover ([`super::InstanceConfig::same_election`]).
    pub(crate) in_place: bool,
}

/// One table of the file, with its keys in the order the hints list them.
#[derive(Debug)]
pub(crate) struct Table {
    /// As written in the file and in messages: "[daemon]", "[[instance]]".
    pub(crate) name: &'static str,
    pub(crate) keys: &'static [KeyDef],
}

impl Table {
    /// The key names, each once (a check key may be defined per kind).
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for key in self.keys {
            if !names.contains(&key.name) {
                names.push(key.name);
            }
        }
        names
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.keys.iter().any(|k| k.name == name)
    }

    /// The definition of `name` (the first one, for a check key defined per kind).
    pub(crate) fn key(&self, name: &str) -> Option<&'static KeyDef> {
        self.keys.iter().find(|k| k.name == name)
    }
}

const fn key(
    name: &'static str,
    ty: &'static str,
    default: &'static str,
    range: &'static str,
    takes: &'static str,
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        ty,
        default,
        range,
        takes,
        doc,
        table: None,
        kinds: &[],
        in_place: false,
    }
}

impl KeyDef {
    const fn table(self, table: &'static Table) -> KeyDef {
        KeyDef {
            table: Some(table),
            ..self
        }
    }

    const fn kinds(self, kinds: &'static [&'static str]) -> KeyDef {
        KeyDef { kinds, ..self }
    }

    const fn in_place(self) -> KeyDef {
        KeyDef {
            in_place: true,
            ..self
        }
    }
}

const STRING: &str = "a quoted string";
const COUNT: &str = "a bare number, e.g. 3";
const DURATION: &str = "a quoted duration with a unit, e.g. \"1s\" or \"250ms\"";
const ADDRESSES: &str = "a list of quoted addresses, e.g. [\"192.0.2.2\"]";
const ARGV: &str = "an argv array, e.g. [\"/usr/local/bin/x\", \"--flag\"]";

/// Every table, the top level first; the order "belongs in" hints search them.
pub(crate) static TABLES_ALL: [&Table; 11] = [
    &ROOT,
    &DAEMON,
    &INSTANCE,
    &ANNOUNCE,
    &CHECK,
    &NOTIFY,
    &AUTH,
    &AUTH_KEY,
    &GROUP,
    &TRACK_FILE,
    &ETCD,
];

/// The tables with keys of their own (every table but the top level).
pub(crate) static TABLES: [&Table; 10] = [
    &DAEMON,
    &INSTANCE,
    &ANNOUNCE,
    &CHECK,
    &NOTIFY,
    &AUTH,
    &AUTH_KEY,
    &GROUP,
    &TRACK_FILE,
    &ETCD,
];

/// The top level of the file.
pub(crate) static ROOT: Table = Table {
    name: "the top level",
    keys: &[
        key(
            "daemon",
            "table",
            "see below",
            "",
            "a table of its own: [daemon]",
            "[`[daemon]`](#daemon).",
        )
        .table(&DAEMON),
        key(
            "instance",
            "array of tables",
            "**required**",
            "at least one",
            "tables of their own, each headed [[instance]]",
            "[`[[instance]]`](#instance).",
        )
        .table(&INSTANCE),
        key(
            "group",
            "array of tables",
            "none",
            "",
            "tables of their own, each headed [[group]]",
            "[`[[group]]`](#group).",
        )
        .table(&GROUP),
        key(
            "etcd",
            "table",
            "none",
            "required when an instance has `election = \"etcd\"`",
            "a table of its own: [etcd]",
            "[`[etcd]`](#etcd).",
        )
        .table(&ETCD),
    ],
};

/// `[daemon]`.
pub(crate) static DAEMON: Table = Table {
    name: "[daemon]",
    keys: &[
    key("socket", "path", "`\"/run/floatip/floatip.sock\"`", "absolute, at most 107 bytes", STRING, "Control socket for `floatip status`, `takeover`, `release`, `auto`, `reload`; created root-only (0600). `--socket PATH` and `FLOATIP_SOCKET` override it (one daemon per network namespace in tests)."),
    key("http", "`\"ADDR:PORT\"`", "unset (off)", "an IP and a non-zero port; IPv6 as `\"[::1]:9797\"`", STRING, "Serves, read-only, the status page at `http://ADDR:PORT/`, the `floatip status --json` document at `/status.json` and Prometheus text at `/metrics`. Keep it on loopback (reach it over SSH or a reverse proxy) or a management network."),
    key("metrics", "`\"ADDR:PORT\"`", "unset (off)", "as `http`; not together with `http`", STRING, "The old name of `http`, still accepted."),
    key("state_dir", "path", "`\"/var/lib/floatip\"`", "absolute", STRING, "Where manual overrides (`release`, `takeover`) are stored, so a node released for maintenance does not grab the VIP back after a reboot."),
    key("log_level", "string", "unset (`info`)", "comma-separated directives, each a level (`off`, `error`, `warn`, `info`, `debug`, `trace`) or `module=level`", STRING, "Log filter, e.g. `\"info,floatip=debug\"`. `RUST_LOG`, when set, wins."),
    ],
};

/// `[[instance]]`.
pub(crate) static INSTANCE: Table = Table {
    name: "[[instance]]",
    keys: &[
    key("name", "string", "**required**", "1-32 characters from `a-z 0-9 _ -`; unique in the file", STRING, "Shown in logs, status, metrics, and used by commands: `floatip takeover files`."),
    key("interface", "string", "**required**", "a Linux interface name (1-15 characters, no `/`, `:` or spaces)", STRING, "The LAN interface the VIPs are added to and adverts are sent on. Its link going down puts the instance in FAULT."),
    key("vrid", "integer", "**required**", "1-255", "a bare number 1-255, e.g. vrid = 51", "Virtual router id. The same on every host of this instance, different from every other VRRP router (floatip or keepalived) on the LAN for the same address family."),
    key("priority", "integer", "`100`", "1-255", "a bare number 1-255, e.g. priority = 150", "Higher wins the election; give each host its own value (e.g. 150 and 100). `255` means this host *owns* the addresses: it claims them at once on start, without waiting. `0` is refused: it is what a master sends when it leaves.")
        .in_place(),
    key("version", "integer", "`3`", "`2` or `3`", "a bare number, 2 or 3", "VRRP version. 3 (RFC 5798/9568): IPv4 and IPv6, sub-second adverts. 2 (RFC 3768): IPv4 only, whole seconds; keepalived's IPv4 default. Left out, an IPv4 instance without `[instance.auth]` speaks 3 until it hears a VRRPv2 router on its VRID (keepalived with no `vrrp_version 3`, which cannot hear VRRPv3), then follows it: VRRPv2 at that router's interval, said in the log and `status`. Set it to keep one version whatever is heard."),
    key("advert_interval", "duration", "`\"1s\"`", "v3: `10ms` to `40.95s` in 10 ms steps; v2: whole seconds `1s` to `255s`", DURATION, "How often the master advertises. A backup claims after Master_Down = 3 × interval + skew, where skew = (256 − priority) × interval / 256. A v3 backup adopts the master's advertised interval."),
    key("preempt", "bool", "`true`", "", "true or false", "`true`: a higher-priority host that appears (or comes back) takes the VIPs. `false`: the current master keeps them until it fails or leaves."),
    key("preempt_delay", "duration", "`\"0s\"`", "`0s` to `1h`; only with `preempt = true`", DURATION, "With preempt: how long a higher-priority backup keeps hearing the lower-priority master before it takes over (e.g. to let its services start after a reboot). Setting it together with `preempt = false` is an error, since it would do nothing."),
    key("addresses", "list of `\"ADDR/LEN\"`", "**required**", "at least one; one address family; no duplicates; a host address (not the network or broadcast address of an IPv4 subnet up to /30; not unspecified, loopback or multicast); at most 255 (IPv4) or 90 (IPv6, one 1500-byte advert); v2: IPv4 only", "a list of quoted \"ADDR/LEN\" strings, e.g. addresses = [\"192.0.2.97/24\"]", "The VIPs. The prefix length is the subnet's, as in `ip addr add 192.0.2.97/24`."),
    key("unicast_peers", "list of addresses", "`[]` (multicast)", "same family as `addresses`; not one of the VIPs; no duplicates", ADDRESSES, "Send adverts to these hosts' own addresses instead of the multicast group 224.0.0.18 / ff02::12, for networks that drop multicast. Each host lists the others."),
    key("checksum", "string", "`\"pseudo-header\"`", "`\"pseudo-header\"`, `\"message-only\"`, `\"accept-either\"`; only for VRRPv3 over IPv4 (an error elsewhere)", STRING, "VRRPv3-over-IPv4 checksum. `pseudo-header`: includes the IPv4 pseudo-header, as keepalived 2.2 and Wireshark do. `message-only`: RFC 9568's reading. `accept-either`: send with the pseudo-header, accept both. VRRPv2 never uses a pseudo-header; IPv6 always does."),
    key("announce", "table", "see below", "", "a table of its own: [instance.announce]", "[`[instance.announce]`](#instanceannounce).")
        .table(&ANNOUNCE)
        .in_place(),
    key("address_lifetime", "duration", "derived, `\"2s\"` at 1 s adverts (see [below](#the-address-lifetime))", "whole seconds, `1s` to `1h`; at least `advert_interval` + 0.5 s", DURATION, "The kernel lifetime (`valid_lft`/`preferred_lft`) the VIPs are added with, refreshed by the master with every advert. A killed or frozen daemon's VIPs expire by themselves.")
        .in_place(),
    key("witness", "list of addresses", "`[]` (no witness)", "same family as `addresses`; not a VIP; no duplicates", ADDRESSES, "A backup does not claim while none of these answered recently (typically the router). Stops a host that merely lost the LAN from becoming a second owner. It does not help when the witness itself is down for everyone: then no backup claims, by design.")
        .in_place(),
    key("track_interfaces", "list of interface names", "`[]`", "valid names; not `interface` itself (always tracked); no duplicates", "a list of quoted interface names, e.g. [\"eth1\"]", "FAULT (give up the VIPs, stop claiming) while any of these links is down, e.g. the uplink the clients come from.")
        .in_place(),
    key("vmac", "bool", "`false`", "", "true or false", "Virtual MAC (RFC 5798 7.3): the VIPs live on a macvlan with MAC 00:00:5e:00:01:{vrid} (IPv4) or 00:00:5e:00:02:{vrid} (IPv6), up only while master, so a failover moves a MAC, not an ARP entry. Changes `arp_ignore`/`arp_filter`/`arp_announce` on `interface` while running (see [Virtual MAC](#virtual-mac)). keepalived's `use_vmac`."),
    key("vmac_interface", "string", "`\"vrrp.{vrid}\"` (IPv4), `\"vrrp6.{vrid}\"` (IPv6)", "a Linux interface name (1-15 characters, no `/`, `:` or spaces), not `interface`; only with `vmac = true`", STRING, "The name of the virtual-MAC interface floatip creates (and removes on exit). keepalived's `use_vmac NAME`."),
    key("check", "array of tables", "none", "", "tables of their own, each headed [[instance.check]]", "[`[[instance.check]]`](#instancecheck).")
        .table(&CHECK)
        .in_place(),
    key("notify", "table", "none", "", "a table of its own: [instance.notify]", "[`[instance.notify]`](#instancenotify).")
        .table(&NOTIFY)
        .in_place(),
    key("election", "string", "`\"vrrp\"`", "`\"vrrp\"` or `\"etcd\"`; `\"etcd\"` needs an `[etcd]` table, is the same in every member of a `[[group]]` (the group has one owner key), and is not allowed with `vmac = true`, `witness`, `[instance.auth]` or `[[instance.track_file]]`", STRING, "Who decides the owner. `vrrp`: the VRRP election on the LAN (keepalived-compatible). `etcd`: the holder of a lease-backed key in etcd, a quorum decision that never leaves two owners in a partition ([docs/etcd.md](etcd.md)); `vrid`, `priority` and the announcement keys still apply, adverts are not sent."),
    key("track_file", "array of tables", "none", "", "tables of their own, each headed [[instance.track_file]]", "[`[[instance.track_file]]`](#instancetrack_file).")
        .table(&TRACK_FILE)
        .in_place(),
    key("auth", "table", "none (no authentication)", "", "a table of its own: [instance.auth]", "[`[instance.auth]`](#instanceauth): keepalived 2.4's `auth_hmac`, or VRRPv2's cleartext `PASS`.")
        .table(&AUTH)
        .in_place(),
    ],
};

/// `[instance.auth]`: advert authentication (keepalived's `auth_hmac` or `authentication { auth_type PASS }`).
pub(crate) static AUTH: Table = Table {
    name: "[instance.auth]",
    keys: &[
    key("type", "string", "**required**", "`\"hmac\"` or `\"pass\"` (`\"ah\"` is refused: use `\"hmac\"`)", STRING, "`hmac`: keepalived 2.4's `auth_hmac` trailer (HMAC-SHA256, key ids, anti-replay). `pass`: VRRPv2's 8-byte cleartext password, for existing keepalived pairs; no security at all."),
    key("password", "string", "**required** with `pass`", "1-8 bytes; `pass` only; `version = 2` only", STRING, "The password keepalived calls `auth_pass`, sent in cleartext in every advert."),
    key("key", "tables", "**required** with `hmac`", "1-255 entries with distinct ids; `hmac` only", "a table of its own: [[instance.auth.key]]", "[`[[instance.auth.key]]`](#instanceauthkey): the keys an advert may be signed with.")
        .table(&AUTH_KEY),
    key("active_key", "integer", "the only key, when there is one", "the id of one of the `key` entries", "a bare number, e.g. active_key = 1", "The key id this host signs with (keepalived's `active_key`)."),
    key("mode", "string", "`\"enforce\"`", "`\"enforce\"`, `\"permissive\"`, `\"receive-only\"`", STRING, "`enforce`: an advert without a valid trailer is dropped. `permissive`: sign, and still accept unsigned adverts. `receive-only`: verify a trailer when there is one, send none. A present but invalid trailer is dropped in every mode."),
    key("anti_replay", "string", "`\"time\"`", "`\"time\"` or `\"monotonic\"`", STRING, "`time`: the sender's clock must be within `time_window` of ours (NTP) and each sender's sequence must grow. `monotonic`: only the growth, no clock agreement."),
    key("time_window", "duration", "`max(3 × advert_interval, 5s)`, at most 300s", "`1s` to `300s`, whole seconds; `anti_replay = \"time\"` only", DURATION, "How far a sender's clock may be from ours."),
    ],
};

/// `[[instance.auth.key]]`: one key of `[instance.auth]`.
pub(crate) static AUTH_KEY: Table = Table {
    name: "[[instance.auth.key]]",
    keys: &[
    key("id", "integer", "**required**", "1-255, unique within the instance", "a bare number, e.g. id = 1", "The key id carried in each signed advert (keepalived's `key ID ...`)."),
    key("file", "path", "**required**", "absolute; mode 0600 or stricter and owned by root; or a systemd credential, written `\"$CREDENTIALS_DIRECTORY/NAME\"`", STRING, "The file holding the key as keepalived writes the value: `hex:` and 64-128 hex digits, or 32-64 bytes of ASCII text. Read at start and at every reload."),
    ],
};

/// `[instance.announce]`.
pub(crate) static ANNOUNCE: Table = Table {
    name: "[instance.announce]",
    keys: &[
    key("count", "integer", "`5`", "1-100", "a bare number, e.g. count = 5", "Packets per burst. There is no 0: every claim is announced."),
    key("spacing", "duration", "`\"200ms\"`", "`1ms` to `10s`", DURATION, "Time between the packets of a burst."),
    key("refresh", "duration", "unset (never)", "`1s` to `1h`", DURATION, "While master, repeat the burst this often, for switches and clients whose caches forget."),
    ],
};

/// `[[instance.check]]`.
pub(crate) static CHECK: Table = Table {
    name: "[[instance.check]]",
    keys: &[
    key("name", "string", "**required**", "1-32 characters from `a-z 0-9 _ -`; unique within the instance", STRING, "Shown in status and logs."),
    key("kind", "string", "**required**", "`\"icmp\"`, `\"tcp\"`, `\"http\"`, `\"exec\"`, `\"process\"`", STRING, "What the check does; see below."),
    key("target", "address", "**required**", "", STRING, "Echo request; a reply is success.").kinds(&["icmp"]),
    key("target", "`\"ADDR:PORT\"`", "**required**", "", STRING, "A TCP connect that succeeds is success. IPv6 as `\"[2001:db8::10]:445\"`.").kinds(&["tcp"]),
    key("url", "`\"http://...\"` or `\"https://...\"`", "**required**", "", STRING, "A GET. `https://` checks the certificate against the built-in web roots (or `ca_file`) and the URL's host (or `tls_server_name`).").kinds(&["http"]),
    key("expect_status", "integer", "unset: any 2xx", "100-599", "a bare number, e.g. expect_status = 200", "The status that counts as success.").kinds(&["http"]),
    key("expect_body", "string", "unset: any body", "not empty", STRING, "A substring the body must contain.").kinds(&["http"]),
    key("ca_file", "path", "unset: the built-in web roots", "absolute; a PEM file with at least one certificate; `https://` only", STRING, "The CA certificates (PEM) that sign the server's certificate, e.g. a home-lab CA.").kinds(&["http"]),
    key("tls_server_name", "string", "unset: the URL's host", "a DNS name or IP address; `https://` only", STRING, "The name sent as SNI and the certificate must be valid for, when the URL names an address: `url = \"https://192.0.2.10/\"` with `tls_server_name = \"nas.home.arpa\"`.").kinds(&["http"]),
    key("insecure_skip_verify", "bool", "`false`", "`https://` only; not with `ca_file`", "true or false", "Accept any certificate (self-signed, expired, any name): the check then proves only that the service answers. Warned about at start; prefer `ca_file`.").kinds(&["http"]),
    key("command", "command", "**required**", "", ARGV, "argv (no shell); exit status 0 is success.").kinds(&["exec"]),
    key("process", "string", "**required**", "not empty", STRING, "The process's name: the kernel's (`comm`, as `ps -e` shows it) or the file name of its `argv[0]` (for names over 15 characters). keepalived's `track_process` `process`.").kinds(&["process"]),
    key("args", "string", "unset: any", "not empty", STRING, "A piece its command line (the arguments after `argv[0]`, space-separated) must contain, e.g. `\"--foreground\"`.").kinds(&["process"]),
    key("min", "integer", "`1`", "0-65535", "a bare number", "Healthy with at least this many matching processes (keepalived's `quorum`).").kinds(&["process"]),
    key("max", "integer", "unset: no limit", "`min`-65535", "a bare number", "And at most this many (keepalived's `quorum_max`); `min = 0`, `max = 0`: healthy while none runs.").kinds(&["process"]),
    key("interval", "duration", "`\"2s\"`", "`10ms` to `1h`", DURATION, "Time between the starts of two runs."),
    key("timeout", "duration", "`\"1s\"`, or half the interval when that is shorter", "above 0, below `interval`", DURATION, "A run that has not answered by then is a failure (an `exec` command is killed, never left as a zombie)."),
    key("rise", "integer", "`2`", "1-100", COUNT, "Consecutive successes to become healthy."),
    key("fall", "integer", "`3`", "1-100", COUNT, "Consecutive failures to become failing."),
    key("weight", "integer", "unset (FAULT)", "-254 to 254, not 0", "a bare number, e.g. weight = -60", "Negative: added to the priority while failing, e.g. `-60`: 150 − 60 = 90 drops below a peer at 100. Positive: added while healthy. The result is clamped to 1–254."),
    ],
};

/// `[instance.notify]`.
pub(crate) static NOTIFY: Table = Table {
    name: "[instance.notify]",
    keys: &[
    key("master", "command", "unset", "non-empty argv, absolute program path", ARGV, "Runs when the instance becomes MASTER."),
    key("backup", "command", "unset", "non-empty argv, absolute program path", ARGV, "Runs when the instance becomes BACKUP."),
    key("fault", "command", "unset", "non-empty argv, absolute program path", ARGV, "Runs when the instance becomes FAULT (link down, failing check, tracked interface down)."),
    key("stop", "command", "unset", "non-empty argv, absolute program path", ARGV, "Runs when the instance becomes stopped (the daemon stops the instance)."),
    key("timeout", "duration", "`\"30s\"`", "`100ms` to `1h`", DURATION, "A hook still running after this is killed, and the next one runs."),
    ],
};

/// `[[group]]`: instances that live on one host together (keepalived's `vrrp_sync_group`).
pub(crate) static GROUP: Table = Table {
    name: "[[group]]",
    keys: &[
    key("name", "string", "**required**", "1-32 characters from `a-z 0-9 _ -`; unique among groups and instances", STRING, "Shown in logs and status, and used by commands: `floatip takeover fileserver` moves every member."),
    key("instances", "list of instance names", "**required**", "at least 2; each an `[[instance]]` of this file, in one group at most; no duplicates", "a list of quoted instance names, e.g. [\"files-v4\", \"files-v6\"]", "The members. They are MASTER on one host together: a member does not claim while a sibling hears a live master, follows a sibling that becomes MASTER or yields to a better master, and a FAULT of one hands the whole group over."),
    ],
};

/// `[[instance.track_file]]`: a priority offset read from a file (keepalived's `track_file`).
pub(crate) static TRACK_FILE: Table = Table {
    name: "[[instance.track_file]]",
    keys: &[
    key("path", "path", "**required**", "absolute; unique within the instance", STRING, "The file to watch (with inotify on its directory, so a rename over it and a file created later count). Its number (decimal, `0x` hex or leading-`0` octal, as keepalived's `strtol`) times `weight` is added to the priority. A missing, empty or non-numeric file counts as 0; a number outside 32 bits is ignored (the previous value stays)."),
    key("weight", "integer", "`1`", "-254 to 254; `0` when `priority = 255` (an address owner's priority does not move)", "a bare number, e.g. weight = -60", "Multiplies the file's number; the product is kept within -254..253, as keepalived does. `0`: any non-zero number puts the instance in FAULT. A product of -254, or a priority that ends at 0 or below, is FAULT too; otherwise the priority is kept within 1-254."),
    key("name", "string", "the file name (`drain` for `/run/floatip/drain`)", "when set, 1-32 characters from `a-z 0-9 _ -`; unique within the instance", STRING, "Shown in status, logs, metrics and events."),
    ],
};

/// `[etcd]`: the etcd cluster that decides ownership for `election = "etcd"` instances.
pub(crate) static ETCD: Table = Table {
    name: "[etcd]",
    keys: &[
    key("endpoints", "list of URLs", "**required**", "at least one `http://HOST:PORT` or `https://HOST:PORT`, no duplicates", "a list of quoted URLs, e.g. [\"https://192.0.2.11:2379\"]", "The cluster's client URLs; the client moves to another member when one fails."),
    key("ca_file", "path", "unset", "absolute; needed for `https://` endpoints", STRING, "PEM CA certificate(s) that sign the etcd members' certificates."),
    key("cert_file", "path", "unset", "absolute; together with `key_file`", STRING, "PEM client certificate, when etcd asks for one (`--client-cert-auth`)."),
    key("key_file", "path", "unset", "absolute; together with `cert_file`", STRING, "PEM private key of `cert_file`."),
    key("prefix", "string", "`\"/floatip/\"`", "starts and ends with `/`", STRING, "Where floatip keeps its keys: `PREFIX<name>/owner`, `PREFIX<name>/candidates/<address>` and `PREFIX<name>/handoff` (`<name>`: the instance's, or its group's)."),
    key("lease_ttl", "duration", "`\"5s\"`", "whole seconds, `3s` to `60s`", DURATION, "The lease's time to live: a dead or cut-off owner's VIP moves after about this long. The VIP's kernel lifetime ends before the lease can expire ([the timing argument](etcd.md#the-timing-argument))."),
    ],
};

/// What `key` takes, for the hint after a value of the wrong type (the line shows the key, not its table).
pub(super) fn key_type(key: &str) -> &'static str {
    TABLES_ALL
        .iter()
        .find_map(|t| t.key(key))
        .map_or(STRING, |k| k.takes)
}

/// The keys a check of `kind` takes besides the ones every check takes.
pub(super) fn check_kind_keys(kind: &str) -> Vec<&'static str> {
    CHECK
        .keys
        .iter()
        .filter(|k| k.kinds.contains(&kind))
        .map(|k| k.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::path::Path;
    use std::time::Duration;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use super::*;
    use crate::config::format_duration;
    use crate::config::model::*;
    use crate::config::raw::*;

    /// A deserializer that only asks a serde struct for its field names.
    struct FieldNames;

    #[derive(Debug)]
    struct Found(Option<&'static [&'static str]>);

    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not a struct")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Found(None)
        }
    }

    impl<'de> Deserializer<'de> for FieldNames {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(None))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(Some(fields)))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    fn fields<T: Deserialize<'static>>() -> &'static [&'static str] {
        match T::deserialize(FieldNames) {
            Err(Found(Some(fields))) => fields,
            _ => panic!("not a struct"),
        }
    }

    #[test]
    fn every_raw_field_is_a_defined_key_and_every_key_a_raw_field() {
        let pairs: [(&Table, &[&str]); 10] = [
            (&ROOT, fields::<RawFile>()),
            (&DAEMON, fields::<RawDaemon>()),
            (&INSTANCE, fields::<RawInstance>()),
            (&ANNOUNCE, fields::<RawAnnounce>()),
            (&CHECK, fields::<RawCheck>()),
            (&NOTIFY, fields::<RawNotify>()),
            (&AUTH, fields::<RawAuth>()),
            (&AUTH_KEY, fields::<RawAuthKey>()),
            (&GROUP, fields::<RawGroup>()),
            (&TRACK_FILE, fields::<RawTrackFile>()),
        ];
        for (table, raw) in pairs {
            assert_eq!(
                table.names(),
                raw,
                "the keys of {} in keys.rs and the fields of its struct in raw.rs differ (same names, same order)",
                table.name
            );
        }
    }

    #[test]
    fn a_key_in_several_tables_takes_the_same_thing_in_each() {
        // key_type() goes by the name on the line, without the table.
        for a in TABLES_ALL.iter().flat_map(|t| t.keys) {
            for b in TABLES_ALL.iter().flat_map(|t| t.keys) {
                if a.name == b.name {
                    assert_eq!(a.takes, b.takes, "`{}` takes two things", a.name);
                }
            }
        }
    }

    #[test]
    fn the_documented_defaults_are_the_constants() {
        let duration = |d: Duration| format!("`\"{}\"`", format_duration(d));
        let cases = [
            (DAEMON.key("socket"), format!("`\"{DEFAULT_SOCKET}\"`")),
            (
                DAEMON.key("state_dir"),
                format!("`\"{DEFAULT_STATE_DIR}\"`"),
            ),
            (INSTANCE.key("priority"), format!("`{DEFAULT_PRIORITY}`")),
            (
                INSTANCE.key("advert_interval"),
                duration(DEFAULT_ADVERT_INTERVAL),
            ),
            (ANNOUNCE.key("count"), format!("`{DEFAULT_ANNOUNCE_COUNT}`")),
            (ANNOUNCE.key("spacing"), duration(DEFAULT_ANNOUNCE_SPACING)),
            (CHECK.key("interval"), duration(DEFAULT_CHECK_INTERVAL)),
            (CHECK.key("rise"), format!("`{DEFAULT_CHECK_RISE}`")),
            (CHECK.key("fall"), format!("`{DEFAULT_CHECK_FALL}`")),
            (NOTIFY.key("timeout"), duration(DEFAULT_NOTIFY_TIMEOUT)),
        ];
        for (key, want) in cases {
            let key = key.expect("a defined key");
            assert_eq!(key.default, want, "the default of `{}`", key.name);
        }
        let timeout = CHECK.key("timeout").unwrap().default;
        assert!(timeout.starts_with(&duration(DEFAULT_CHECK_TIMEOUT)));
    }

    #[test]
    fn in_place_keys_are_the_ones_a_reload_applies_without_a_failover() {
        let text = "[[instance]]\nname = \"a\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n";
        let base = crate::config::parse(text, Path::new("t.toml"))
            .unwrap()
            .instances[0]
            .clone();
        for key in INSTANCE.keys {
            let mut new = base.clone();
            match key.name {
                "name" => new.name = "b".into(),
                "interface" => new.interface = "eth1".into(),
                "vrid" => new.vrid = 52,
                "priority" => new.priority = 150,
                "version" => new.version = vrrp::Version::V2,
                "advert_interval" => new.advert_interval = Duration::from_secs(2),
                "preempt" => new.preempt = false,
                "preempt_delay" => new.preempt_delay = Duration::from_secs(5),
                "addresses" => new.addresses.push("192.0.2.98/24".parse().unwrap()),
                "unicast_peers" => new.unicast_peers.push("192.0.2.2".parse().unwrap()),
                "checksum" => new.checksum = vrrp::ChecksumMode::MessageOnly,
                "announce" => new.announce.count = 3,
                "address_lifetime" => new.address_lifetime = Duration::from_secs(10),
                "witness" => new.witness.push("192.0.2.254".parse().unwrap()),
                "track_interfaces" => new.track_interfaces.push("eth1".into()),
                "vmac" => new.vmac = true,
                "vmac_interface" => new.vmac_interface = Some("vrrp.x".into()),
                "check" => new.checks.push(CheckConfig {
                    name: "c".into(),
                    kind: CheckKind::Icmp {
                        target: "192.0.2.1".parse().unwrap(),
                    },
                    interval: DEFAULT_CHECK_INTERVAL,
                    timeout: DEFAULT_CHECK_TIMEOUT,
                    rise: DEFAULT_CHECK_RISE,
                    fall: DEFAULT_CHECK_FALL,
                    weight: None,
                }),
                "notify" => new.notify.timeout = Duration::from_secs(5),
                "election" => new.election = crate::config::Election::Etcd,
                "track_file" => new.track_files.push(TrackFileConfig {
                    name: "drain".into(),
                    path: "/run/floatip/drain".into(),
                    weight: 1,
                }),
                "auth" => new.auth = vrrp::auth::Auth::Pass(*b"x\0\0\0\0\0\0\0"),
                other => panic!("a new instance key `{other}`: add a change of it to this test"),
            }
            assert_eq!(
                base.same_election(&new),
                key.in_place,
                "a change of `{}` (in_place = {})",
                key.name,
                key.in_place
            );
        }
        let mut owner = base.clone();
        owner.priority = 255;
        assert!(
            !base.same_election(&owner),
            "becoming the address owner is not in place"
        );
    }
}
