//! What a keepalived instance tracks, as floatip sees it: `track_interface` (without a weight: floatip's
//! `track_interfaces`; with one: an exec check of the link state with that weight), `track_script`
//! with its `vrrp_script` (exec checks: script, interval, timeout, rise, fall, weight) and
//! `track_file` with its definition (`[[instance.track_file]]`).

use super::instance::{fmt_secs, Inst};
use super::map::{check_name, flat, q, seconds, Ctx};
use super::script::to_argv;
use super::tree::Node;

pub(super) fn interfaces(cx: &mut Ctx, block: Option<&Node>, own: &str, inst: &mut Inst) {
    let Some(block) = block else { return };
    let mut plain = Vec::new();
    for t in block.children() {
        let ifname = t.keyword();
        let shown = flat(ifname);
        let weight = match (t.arg(0), t.arg(1)) {
            (Some("weight"), Some(w)) => w.parse::<i32>().ok(),
            _ => None,
        };
        if t.words.iter().any(|w| w == "reverse") {
            inst.needs(
                cx,
                &t.pos,
                format!(
                    "track_interface {}: `reverse` has no floatip equivalent",
                    t.words.join(" ")
                ),
            );
            continue;
        }
        let weight = match (weight, &cx.weightless) {
            (Some(w), Some(why)) if w != 0 => {
                let why = why.clone();
                inst.note(cx, &t.pos, format!("track_interface {shown} weight {w}: the weight of an interface tracked by {why}; the link going down puts the instance in FAULT; imported so, without the weight"));
                None
            }
            (w, _) => w,
        };
        match weight {
            None | Some(0) if ifname == own => inst.note(
                cx,
                &t.pos,
                format!(
                    "track_interface {ifname}: floatip always tracks the instance's own interface"
                ),
            ),
            None | Some(0) => plain.push(q(ifname)),
            Some(w) => {
                let w = w.clamp(-254, 254);
                let name = check_name(&format!("link-{ifname}"), &inst.checks);
                let grep = if (cx.exists)(std::path::Path::new("/usr/bin/grep")) {
                    "/usr/bin/grep"
                } else {
                    "/bin/grep"
                };
                let state = format!("/sys/class/net/{ifname}/operstate");
                inst.checks.push(format!(
                    "[[instance.check]]   # track_interface {shown} weight {w} ({}): floatip reads the link state every second\nname = {}\nkind = \"exec\"\ncommand = [{}, \"-qx\", \"up\", {}]\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = 1\nfall = 1\nweight = {w}",
                    flat(&t.pos.to_string()),
                    q(&name),
                    q(grep),
                    q(&state)
                ));
            }
        }
    }
    if !plain.is_empty() {
        inst.line(
            "track_interfaces",
            format!("[{}]", plain.join(", ")),
            &block.pos,
            "track_interface",
        );
    }
}

pub(super) fn scripts(cx: &mut Ctx, block: Option<&Node>, inst: &mut Inst) {
    let Some(block) = block else { return };
    for t in block.children() {
        let sname = t.keyword();
        let Some(def) = cx.scripts.get(sname).cloned() else {
            inst.needs(cx, &t.pos, format!("track_script {sname}: no vrrp_script {sname} is defined (keepalived ignores it too); nothing imported"));
            continue;
        };
        cx.used_scripts.insert(sname.to_string());
        let get = |k: &str| def.children().iter().rev().find(|c| c.keyword() == k);
        let Some(script) = get("script").and_then(|n| n.arg(0)) else {
            inst.needs(
                cx,
                &def.pos,
                format!("vrrp_script {sname} has no script; keepalived ignores it"),
            );
            continue;
        };
        let interval = get("interval")
            .map_or(Ok(1.0), |n| seconds(n, 0))
            .unwrap_or(1.0)
            .clamp(0.01, 3600.0);
        let timeout = get("timeout")
            .map_or(Ok(interval), |n| seconds(n, 0))
            .unwrap_or(interval);
        let mut weight: i32 = get("weight")
            .and_then(|n| n.arg(0))
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        let mut reverse = get("weight").is_some_and(|n| n.words.iter().any(|w| w == "reverse"));
        if let (Some("weight"), Some(w)) = (t.arg(0), t.arg(1)) {
            weight = w.parse().unwrap_or(weight);
            reverse = t.words.iter().any(|w| w == "reverse");
        }
        if weight != 0 {
            if let Some(why) = cx.weightless.clone() {
                inst.note(cx, &t.pos, format!("track_script {sname}: weight {weight} of a script tracked by {why}; a failing script puts the instance in FAULT; imported so, without the weight"));
                weight = 0;
            }
        }
        let count = |k: &str| {
            get(k)
                .and_then(|n| n.arg(0))
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1)
        };
        let (rise, fall) = (count("rise"), count("fall"));
        let a = to_argv(script, cx.exists);
        let name = check_name(sname, &inst.checks);
        let mut head = flat(&format!(
            "[[instance.check]]   # track_script {sname} -> vrrp_script {sname} ({})",
            def.pos
        ));
        if let Some(why) = a.via_shell {
            head.push_str(&format!("; through /bin/sh: {why}"));
        }
        let mut lines = vec![
            head,
            format!("name = {}", q(&name)),
            "kind = \"exec\"".into(),
        ];
        lines.push(format!(
            "command = [{}]",
            a.argv.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
        ));
        lines.push(format!("interval = {}", q(&fmt_secs(interval))));
        let max_timeout = interval - 0.01;
        let t_out = if timeout >= interval {
            if timeout > interval {
                inst.needs(cx, &def.pos, format!("vrrp_script {sname}: timeout {timeout}s is longer than its interval {interval}s; floatip needs it below the interval, so it kills the script after {}", fmt_secs(max_timeout)));
            } else {
                inst.note(cx, &def.pos, format!("vrrp_script {sname}: keepalived's timeout defaults to the interval; floatip's must be below it: {}", fmt_secs(max_timeout)));
            }
            max_timeout.max(0.001)
        } else {
            timeout
        };
        lines.push(format!("timeout = {}", q(&fmt_secs(t_out))));
        for (k, v) in [("rise", rise), ("fall", fall)] {
            if v > 100 {
                inst.needs(
                    cx,
                    &def.pos,
                    format!("vrrp_script {sname}: {k} {v} is above floatip's 100"),
                );
            }
            lines.push(format!("{k} = {}", v.clamp(1, 100)));
        }
        if reverse {
            inst.needs(cx, &t.pos, format!("track_script {sname}: `reverse` has no floatip equivalent; the check is imported without it"));
        }
        if weight != 0 {
            lines.push(format!("weight = {}", weight.clamp(-254, 254)));
        }
        if let Some(u) = get("user") {
            inst.needs(
                cx,
                &u.pos,
                format!(
                    "vrrp_script {sname}: `{}`: floatip runs checks as its own user (root)",
                    u.words.join(" ")
                ),
            );
        }
        if let Some(n) = get("init_fail") {
            inst.note(cx, &n.pos, format!("vrrp_script {sname} init_fail: a floatip check counts as failing until it has risen"));
        }
        for c in def.children() {
            if !matches!(
                c.keyword(),
                "script"
                    | "interval"
                    | "timeout"
                    | "weight"
                    | "rise"
                    | "fall"
                    | "user"
                    | "init_fail"
            ) {
                inst.needs(
                    cx,
                    &c.pos,
                    format!("vrrp_script {sname}: `{}` not imported", c.words.join(" ")),
                );
            }
        }
        inst.checks.push(lines.join("\n"));
    }
}

pub(super) fn files(cx: &mut Ctx, block: Option<&Node>, inst: &mut Inst) {
    let Some(block) = block else { return };
    for t in block.children() {
        let fname = t.keyword();
        let Some(def) = cx.track_files.get(fname).cloned() else {
            inst.needs(cx, &t.pos, format!("track_file {fname}: no track_file {fname} {{ file ... }} is defined; nothing imported"));
            continue;
        };
        cx.used_files.insert(fname.to_string());
        let get = |k: &str| def.children().iter().rev().find(|c| c.keyword() == k);
        let Some(path) = get("file").and_then(|n| n.arg(0)) else {
            inst.needs(cx, &def.pos, format!("track_file {fname} has no file"));
            continue;
        };
        let mut weight: i64 = get("weight")
            .and_then(|n| n.arg(0))
            .and_then(|w| w.parse().ok())
            .unwrap_or(1);
        let mut reverse = get("weight").is_some_and(|n| n.words.iter().any(|w| w == "reverse"));
        if let (Some("weight"), Some(w)) = (t.arg(0), t.arg(1)) {
            weight = w.parse().unwrap_or(weight);
            reverse = t.words.iter().any(|w| w == "reverse");
        }
        if reverse {
            inst.needs(
                cx,
                &t.pos,
                format!(
                    "track_file {fname}: `reverse` has no floatip equivalent; imported without it"
                ),
            );
        }
        if weight != 0 {
            if let Some(why) = cx.weightless.clone() {
                inst.note(cx, &t.pos, format!("track_file {fname}: weight {weight} of a file tracked by {why}; a non-zero number in the file puts the instance in FAULT; imported so, with weight 0"));
                weight = 0;
            }
        }
        if !(-254..=254).contains(&weight) {
            inst.needs(
                cx,
                &def.pos,
                format!(
                    "track_file {fname}: weight {weight} is outside floatip's -254..254; clamped"
                ),
            );
        }
        if let Some(n) = get("init_file") {
            inst.needs(cx, &n.pos, format!("track_file {fname}: `{}`: floatip does not create the file; create it before starting", n.words.join(" ")));
        }
        let name = check_name(fname, &inst.track_files);
        inst.track_files.push(format!(
            "[[instance.track_file]]   # track_file {} ({})\nname = {}\npath = {}\nweight = {}",
            flat(fname),
            flat(&def.pos.to_string()),
            q(&name),
            q(path),
            weight.clamp(-254, 254)
        ));
    }
}
