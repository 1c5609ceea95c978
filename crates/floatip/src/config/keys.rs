//! Every key of every table: the key lists, what each key takes, and the hints for a key that is not one.

const ROOT_KEYS: &[&str] = &["daemon", "instance"];
const DAEMON_KEYS: &[&str] = &["socket", "metrics", "state_dir", "log_level"];
const INSTANCE_KEYS: &[&str] = &[
    "name",
    "interface",
    "vrid",
    "priority",
    "version",
    "advert_interval",
    "preempt",
    "preempt_delay",
    "addresses",
    "unicast_peers",
    "checksum",
    "announce",
    "address_lifetime",
    "witness",
    "track_interfaces",
    "check",
    "notify",
];
const ANNOUNCE_KEYS: &[&str] = &["count", "spacing", "refresh"];
const CHECK_KEYS: &[&str] = &[
    "name",
    "kind",
    "target",
    "url",
    "expect_status",
    "expect_body",
    "command",
    "interval",
    "timeout",
    "rise",
    "fall",
    "weight",
];
const NOTIFY_KEYS: &[&str] = &["master", "backup", "fault", "stop", "timeout"];

/// keepalived's names for the same things, so a migrating admin is told the floatip key.
const KEEPALIVED_NAMES: &[(&str, &str)] = &[
    ("virtual_router_id", "vrid"),
    ("advert_int", "advert_interval"),
    ("virtual_ipaddress", "addresses"),
    ("unicast_peer", "unicast_peers"),
    (
        "unicast_src_ip",
        "the interface's own address (floatip uses the primary address of `interface`)",
    ),
    ("nopreempt", "preempt = false"),
    ("preempt_delay_secs", "preempt_delay"),
    ("vrrp_version", "version"),
    ("track_interface", "track_interfaces"),
    ("track_script", "[[instance.check]] with kind = \"exec\""),
    ("notify_master", "master = [...] in [instance.notify]"),
    ("notify_backup", "backup = [...] in [instance.notify]"),
    ("notify_fault", "fault = [...] in [instance.notify]"),
    ("notify_stop", "stop = [...] in [instance.notify]"),
    ("garp_master_repeat", "count in [instance.announce]"),
    ("garp_master_refresh", "refresh in [instance.announce]"),
    ("vips", "addresses"),
    ("vip", "addresses"),
    ("address", "addresses"),
    ("peers", "unicast_peers"),
    ("interval", "advert_interval"),
    ("router_id", "vrid"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Schema {
    Root,
    Daemon,
    Instance,
    Announce,
    Check,
    Notify,
}

impl Schema {
    pub(super) fn keys(self) -> &'static [&'static str] {
        match self {
            Schema::Root => ROOT_KEYS,
            Schema::Daemon => DAEMON_KEYS,
            Schema::Instance => INSTANCE_KEYS,
            Schema::Announce => ANNOUNCE_KEYS,
            Schema::Check => CHECK_KEYS,
            Schema::Notify => NOTIFY_KEYS,
        }
    }

    pub(super) fn table_name(self) -> &'static str {
        match self {
            Schema::Root => "the top level",
            Schema::Daemon => "[daemon]",
            Schema::Instance => "[[instance]]",
            Schema::Announce => "[instance.announce]",
            Schema::Check => "[[instance.check]]",
            Schema::Notify => "[instance.notify]",
        }
    }

    pub(super) fn child(self, key: &str) -> Option<Schema> {
        match (self, key) {
            (Schema::Root, "daemon") => Some(Schema::Daemon),
            (Schema::Root, "instance") => Some(Schema::Instance),
            (Schema::Instance, "announce") => Some(Schema::Announce),
            (Schema::Instance, "check") => Some(Schema::Check),
            (Schema::Instance, "notify") => Some(Schema::Notify),
            _ => None,
        }
    }

    const ALL: [Schema; 6] = [
        Schema::Root,
        Schema::Daemon,
        Schema::Instance,
        Schema::Announce,
        Schema::Check,
        Schema::Notify,
    ];
}

pub(super) fn unknown_key_hint(name: &str, schema: Schema) -> String {
    let valid = format!(
        "valid keys in {}: {}",
        schema.table_name(),
        schema.keys().join(", ")
    );
    if let Some((_, ours)) = KEEPALIVED_NAMES.iter().find(|(theirs, _)| *theirs == name) {
        return format!("`{name}` is keepalived's name; floatip calls it {ours}. {valid}");
    }
    if let Some(flat) = name.strip_prefix("announce_") {
        if ANNOUNCE_KEYS.contains(&flat) {
            return format!(
                "announcement settings go in their own table: write `{flat} = ...` under [instance.announce]"
            );
        }
    }
    if let Some(close) = closest(name, schema.keys()) {
        return format!("did you mean {close}? {valid}");
    }
    if let Some(other) = Schema::ALL
        .iter()
        .find(|s| **s != schema && **s != Schema::Root && s.keys().contains(&name))
    {
        return format!("`{name}` belongs in {}. {valid}", other.table_name());
    }
    valid
}

/// The valid key nearest to a misspelt one, if it is near enough to be what was meant.
fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // A prefix ("prio", "advert") is what someone remembering half the name writes.
    if name.len() >= 3 {
        if let Some(c) = candidates.iter().find(|c| c.starts_with(name)) {
            return Some(c);
        }
    }
    let best = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .min_by_key(|(d, _)| *d)?;
    let limit = (name.chars().count() / 3).max(2);
    (best.0 <= limit).then_some(best.1)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What each key takes, for type-error hints.
pub(super) fn key_type(key: &str) -> &'static str {
    match key {
        "vrid" => "a bare number 1-255, e.g. vrid = 51",
        "priority" => "a bare number 1-255, e.g. priority = 150",
        "version" => "a bare number, 2 or 3",
        "rise" | "fall" => "a bare number, e.g. 3",
        "count" => "a bare number, e.g. count = 5",
        "weight" => "a bare number, e.g. weight = -60",
        "expect_status" => "a bare number, e.g. expect_status = 200",
        "preempt" => "true or false",
        "addresses" => {
            "a list of quoted \"ADDR/LEN\" strings, e.g. addresses = [\"192.0.2.97/24\"]"
        }
        "unicast_peers" | "witness" => "a list of quoted addresses, e.g. [\"192.0.2.2\"]",
        "track_interfaces" => "a list of quoted interface names, e.g. [\"eth1\"]",
        "command" | "master" | "backup" | "fault" | "stop" => {
            "an argv array, e.g. [\"/usr/local/bin/x\", \"--flag\"]"
        }
        "advert_interval" | "preempt_delay" | "address_lifetime" | "spacing" | "refresh"
        | "interval" | "timeout" => "a quoted duration with a unit, e.g. \"1s\" or \"250ms\"",
        _ => "a quoted string",
    }
}
