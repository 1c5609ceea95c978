//! What to tell someone who wrote a key no table knows: keepalived's name for it, the key they probably
//! meant, or the table it belongs in.

use super::keys::{Table, ANNOUNCE, TABLES};

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
    (
        "use_vmac",
        "vmac = true (and vmac_interface = \"NAME\" for `use_vmac NAME`)",
    ),
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

pub(super) fn unknown_key_hint(name: &str, table: &Table) -> String {
    let valid = format!("valid keys in {}: {}", table.name, table.names().join(", "));
    if let Some((_, ours)) = KEEPALIVED_NAMES.iter().find(|(theirs, _)| *theirs == name) {
        return format!("`{name}` is keepalived's name; floatip calls it {ours}. {valid}");
    }
    if let Some(flat) = name.strip_prefix("announce_") {
        if ANNOUNCE.has(flat) {
            return format!(
                "announcement settings go in their own table: write `{flat} = ...` under [instance.announce]"
            );
        }
    }
    if let Some(close) = closest(name, &table.names()) {
        return format!("did you mean {close}? {valid}");
    }
    if let Some(other) = TABLES
        .iter()
        .find(|t| !std::ptr::eq(**t, table) && t.has(name))
    {
        return format!("`{name}` belongs in {}. {valid}", other.name);
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
