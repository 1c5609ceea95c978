//! The parts of a keepalived instance that become floatip tables of their own: `authentication` /
//! `auth_hmac` (`[instance.auth]`, keys in files), the notify scripts (`[instance.notify]`, keepalived's
//! generic `notify` with its arguments) and the garp settings, the instance's or the global
//! `vrrp_garp_*` ones (`[instance.announce]`).

use super::instance::{fmt_secs, Inst};
use super::map::{flat, q, seconds, Ctx};
use super::reader::ImportError;
use super::script::to_argv;
use super::tree::Node;

pub(super) fn auth(
    cx: &mut Ctx,
    pass: Option<&Node>,
    hmac: Option<&Node>,
    version: u8,
    name: &str,
    inst: &mut Inst,
) {
    if let Some(n) = pass {
        let get = |k: &str| {
            n.children()
                .iter()
                .rev()
                .find(|c| c.keyword() == k)
                .and_then(|c| c.arg(0))
        };
        match get("auth_type") {
            Some("PASS") if version == 2 && get("auth_pass").is_none_or(str::is_empty) => inst.note(
                cx,
                &n.pos,
                "authentication PASS without auth_pass: keepalived ignores it (\"Authentication specified but no password given. Ignoring\"); so does this import",
            ),
            Some("PASS") if version == 2 => {
                let full = get("auth_pass").unwrap_or("");
                // keepalived keeps the first 8 bytes; a character cut in two is not a string.
                let mut cut = full.len().min(8);
                while !full.is_char_boundary(cut) {
                    cut -= 1;
                }
                let pw = &full[..cut];
                if full.len() > 8 {
                    let at = n
                        .children()
                        .iter()
                        .rev()
                        .find(|c| c.keyword() == "auth_pass")
                        .map_or(&n.pos, |c| &c.pos);
                    if cut == 8 {
                        inst.note(cx, at, format!("auth_pass is {} characters: keepalived cuts it to 8 (\"Truncating auth_pass to 8 characters\"); so does floatip (the password line holds the 8 that are sent)", full.len()));
                    } else {
                        inst.needs(cx, at, "auth_pass: keepalived cuts it to its first 8 bytes, which splits a non-ASCII character; floatip's password is text: give both hosts an ASCII password of at most 8 characters".into());
                    }
                }
                inst.auth.push(format!("type = \"pass\"            # authentication {{ auth_type PASS }} ({})", n.pos));
                inst.auth.push(format!("password = {}", q(pw)));
            }
            Some("PASS") => inst.note(cx, &n.pos, "authentication PASS with VRRPv3: keepalived ignores it (v3 has no authentication); so does this import"),
            Some("AH") => inst.needs(cx, &n.pos, "authentication AH (IPsec AH): floatip does not implement it; the pair cannot talk until both sides drop it or move to auth_hmac. Needs a person".into()),
            other => inst.needs(cx, &n.pos, format!("authentication auth_type {}: not imported", other.unwrap_or("(none)"))),
        }
    }
    let Some(n) = hmac else { return };
    inst.auth.push(format!(
        "type = \"hmac\"            # auth_hmac ({})",
        n.pos
    ));
    let mut keys = Vec::new();
    for c in n.children() {
        match (c.keyword(), c.arg(0)) {
            ("key", Some(id)) => {
                let value = c.arg(1).unwrap_or("");
                let file = match value.strip_prefix("file:") {
                    Some(path) => path.to_string(),
                    None => {
                        let path = format!("/etc/floatip/keys/{name}-{id}");
                        inst.needs(cx, &c.pos, format!("auth_hmac key {id} is written in keepalived.conf: floatip reads keys from files; put the value (as written, hex:... or ASCII) into {path}, mode 0600, owned by root"));
                        path
                    }
                };
                keys.push(format!(
                    "[[instance.auth.key]]\nid = {id}\nfile = {}",
                    q(&file)
                ));
            }
            ("active_key", Some(v)) => inst.auth.push(format!("active_key = {v}")),
            ("mode", Some(v)) | ("anti_replay", Some(v)) => {
                inst.auth.push(format!("{} = {}", c.keyword(), q(v)))
            }
            ("time_window", Some(v)) => inst.auth.push(format!("time_window = \"{v}s\"")),
            _ => inst.needs(
                cx,
                &c.pos,
                format!("auth_hmac {}: not imported", c.words.join(" ")),
            ),
        }
    }
    inst.auth_keys = keys;
}

pub(super) fn notify(cx: &mut Ctx, kids: &[Node], kname: &str, priority: u32, inst: &mut Inst) {
    let generic = kids.iter().rev().find(|n| n.keyword() == "notify");
    for state in ["master", "backup", "fault", "stop"] {
        let own = kids
            .iter()
            .rev()
            .find(|n| n.keyword() == format!("notify_{state}"));
        let argv = match (own, generic) {
            (Some(n), Some(g)) => {
                inst.needs(cx, &g.pos, format!("notify and notify_{state} both set: floatip runs one hook per state; notify_{state} kept, add the other to it"));
                Some(n)
            }
            (Some(n), None) => Some(n),
            (None, Some(g)) => Some(g),
            (None, None) => None,
        };
        let Some(n) = argv else { continue };
        if n.words.len() > 2 {
            inst.needs(
                cx,
                &n.pos,
                format!(
                    "{}: the hook runs as floatip's user (root), not as {}",
                    n.keyword(),
                    n.words[2..].join(":")
                ),
            );
        }
        let script = n.arg(0).unwrap_or("");
        let a = to_argv(script, cx.exists);
        let mut argv = a.argv;
        if n.keyword() == "notify" {
            argv.extend([
                "INSTANCE".into(),
                kname.into(),
                state.to_uppercase(),
                priority.to_string(),
            ]);
            inst.note(cx, &n.pos, format!("notify: called for {state} with keepalived's arguments; the last one is the configured priority {priority}, and FLOATIP_STATE etc. are in the environment"));
        }
        let mut line = format!(
            "{state} = [{}]",
            argv.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        );
        line.push_str(&flat(&format!("   # {} ({})", n.keyword(), n.pos)));
        if let Some(why) = a.via_shell {
            line.push_str(&format!("; through /bin/sh: {why}"));
        }
        inst.notify.push(line);
    }
    if let Some(n) = kids.iter().find(|n| {
        n.keyword() == "notify_master_rx_lower_pri" || n.keyword() == "notify_priority_changes"
    }) {
        inst.needs(
            cx,
            &n.pos,
            format!("{}: no floatip equivalent", n.keyword()),
        );
    }
}

pub(super) fn announce(cx: &mut Ctx, kids: &[Node], inst: &mut Inst) -> Result<(), ImportError> {
    let get = |key: &str| -> Option<&Node> {
        kids.iter()
            .rev()
            .find(|n| n.keyword() == key)
            .or_else(|| cx.garp.get(key))
    };
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    if let Some(n) = get("garp_master_repeat") {
        let v: u32 = n.arg(0).and_then(|v| v.parse().ok()).unwrap_or(5);
        lines.push(format!(
            "count = {}   # {} ({})",
            v.clamp(1, 100),
            n.keyword(),
            n.pos
        ));
    }
    if let Some(n) = get("garp_interval") {
        let s = seconds(n, 0)?;
        let ms = (s * 1000.0).round().clamp(1.0, 10_000.0) as u64;
        lines.push(format!(
            "spacing = \"{ms}ms\"   # {} ({})",
            n.keyword(),
            n.pos
        ));
    }
    if let Some(n) = get("garp_master_refresh") {
        let s = seconds(n, 0)?;
        if s >= 1.0 {
            lines.push(format!(
                "refresh = {}   # {} ({})",
                q(&fmt_secs(s.min(3600.0).round())),
                n.keyword(),
                n.pos
            ));
        }
    }
    if let Some(n) = get("garp_master_delay") {
        notes.push((n.pos.clone(), format!("{} {}: floatip sends one burst at the claim, keepalived a second one after this delay; set `refresh` for repeats", n.keyword(), n.arg(0).unwrap_or(""))));
    }
    if let Some(n) = get("garp_master_refresh_repeat") {
        notes.push((
            n.pos.clone(),
            format!(
                "{} {}: a floatip refresh sends a whole burst (`count`)",
                n.keyword(),
                n.arg(0).unwrap_or("")
            ),
        ));
    }
    for (pos, text) in notes {
        inst.note(cx, &pos, text);
    }
    inst.announce = lines;
    Ok(())
}
