//! `[instance.auth]` and its `[[instance.auth.key]]`s: PASS or auth_hmac, with the key files read
//! and checked here (mode, owner, size, format), so `floatip check` reports a bad key file at the
//! line of its `file` key and a reload re-reads every key.

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use vrrp::auth::{AntiReplay, Auth, HmacConfig, Key, Mode};

use crate::config::error::Cx;
use crate::config::raw::RawAuth;

/// The longest key file read: `hex:`, 128 digits, a line end and some slack (as keepalived).
const MAX_KEY_FILE: u64 = 4 + 128 + 8;
/// The freshness window's bounds and its floor when derived from the advert interval (keepalived's).
const WINDOW_MIN: Duration = Duration::from_secs(1);
const WINDOW_MAX: Duration = Duration::from_secs(300);
const WINDOW_FLOOR: Duration = Duration::from_secs(5);

/// The default freshness window: max(3 x advert_interval, 5s), at most 300s, whole seconds.
pub(crate) fn default_window(advert_interval: Duration) -> Duration {
    let secs = (advert_interval * 3).as_secs();
    Duration::from_secs(secs).clamp(WINDOW_FLOOR, WINDOW_MAX)
}

pub(super) fn validate_auth(
    cx: &mut Cx<'_>,
    spanned: &Spanned<RawAuth>,
    version: Option<vrrp::Version>,
    advert_interval: Option<Duration>,
) -> Option<Auth> {
    let raw = spanned.get_ref();
    let table = spanned.span();
    let Some(kind) = &raw.kind else {
        cx.missing(
            table,
            "type",
            "[instance.auth]",
            "type = \"hmac\" (keepalived 2.4's auth_hmac) or type = \"pass\" (VRRPv2 cleartext)",
        );
        return None;
    };
    match kind.get_ref().as_str() {
        "pass" => pass(cx, raw, kind, version),
        "hmac" => hmac(cx, raw, &table, advert_interval),
        "ah" => {
            cx.at(
                kind.span(),
                "type = \"ah\" (keepalived's IPsec AH for VRRPv2) is not supported",
                "use type = \"hmac\" on every router (keepalived 2.4: auth_hmac): it protects v2 and v3, IPv4 and IPv6, against forgery and replay; keepalived's own man page calls AH \"not recommended\"",
            );
            None
        }
        other => {
            cx.at(
                kind.span(),
                format!("auth type \"{other}\" is not one floatip knows"),
                "use type = \"hmac\" (recommended) or type = \"pass\" (VRRPv2 cleartext password, for existing keepalived pairs)",
            );
            None
        }
    }
}

fn pass(
    cx: &mut Cx<'_>,
    raw: &RawAuth,
    kind: &Spanned<String>,
    version: Option<vrrp::Version>,
) -> Option<Auth> {
    let mut ok = true;
    for (present, key) in [
        (!raw.key.is_empty(), "key"),
        (raw.active_key.is_some(), "active_key"),
        (raw.mode.is_some(), "mode"),
        (raw.anti_replay.is_some(), "anti_replay"),
        (raw.time_window.is_some(), "time_window"),
    ] {
        if present {
            cx.at(
                kind.span(),
                format!("`{key}` belongs to type = \"hmac\", but this is type = \"pass\""),
                format!("remove `{key}`, or use type = \"hmac\" (recommended)"),
            );
            ok = false;
        }
    }
    if version == Some(vrrp::Version::V3) {
        cx.at(
            kind.span(),
            "type = \"pass\" needs version = 2: VRRPv3 adverts have no authentication field",
            "set version = 2 (keepalived's default for IPv4), or use type = \"hmac\", which works with VRRPv2 and v3",
        );
        ok = false;
    }
    let Some(password) = &raw.password else {
        cx.at(
            kind.span(),
            "type = \"pass\" needs a `password`",
            "add password = \"...\" (1-8 bytes, keepalived's auth_pass)",
        );
        return None;
    };
    let bytes = password.get_ref().as_bytes();
    if bytes.is_empty() || bytes.len() > 8 {
        cx.at(
            password.span(),
            format!("password is {} bytes; it must be 1-8", bytes.len()),
            "keepalived uses only the first 8 bytes of auth_pass: write those 8 here",
        );
        return None;
    }
    ok.then(|| Auth::Pass(vrrp::auth::pass_bytes(bytes)))
}

fn hmac(
    cx: &mut Cx<'_>,
    raw: &RawAuth,
    table: &Range<usize>,
    advert_interval: Option<Duration>,
) -> Option<Auth> {
    let mut ok = true;
    if let Some(p) = &raw.password {
        cx.at(
            p.span(),
            "`password` belongs to type = \"pass\", but this is type = \"hmac\"",
            "remove it; hmac keys come from [[instance.auth.key]] files",
        );
        ok = false;
    }
    if raw.key.is_empty() {
        cx.at(
            table.clone(),
            "type = \"hmac\" needs at least one [[instance.auth.key]]",
            "add [[instance.auth.key]] with id = 1 and file = \"/etc/floatip/keys/NAME\" (mode 0600, e.g. `(umask 077; printf 'hex:%s' \"$(openssl rand -hex 32)\" > FILE)`)",
        );
        return None;
    }
    let mut keys: Vec<Key> = Vec::new();
    for k in &raw.key {
        let key = k.get_ref();
        let id = match &key.id {
            None => {
                cx.missing(k.span(), "id", "[[instance.auth.key]]", "id = 1");
                ok = false;
                None
            }
            Some(id) => {
                let v = cx.int_in(id, "id", 1..=255, "a key id is 1-255");
                if let Some(v) = v {
                    if keys.iter().any(|k| i64::from(k.id) == v) {
                        cx.at(
                            id.span(),
                            format!("key id {v} is defined twice"),
                            "give each [[instance.auth.key]] its own id",
                        );
                        ok = false;
                    }
                }
                v.map(|v| v as u8)
            }
        };
        let bytes = match &key.file {
            None => {
                cx.missing(
                    k.span(),
                    "file",
                    "[[instance.auth.key]]",
                    "file = \"/etc/floatip/keys/files-1\"",
                );
                None
            }
            Some(file) => read_key_file(cx, file),
        };
        match (id, bytes) {
            (Some(id), Some(bytes)) => keys.push(Key { id, bytes }),
            _ => ok = false,
        }
    }
    let active_key = match &raw.active_key {
        Some(a) => match cx.int_in(a, "active_key", 1..=255, "active_key is a key id, 1-255") {
            Some(v) if ok && !keys.iter().any(|k| i64::from(k.id) == v) => {
                let ids: Vec<String> = keys.iter().map(|k| k.id.to_string()).collect();
                cx.at(
                    a.span(),
                    format!("active_key {v} is not one of the keys ({})", ids.join(", ")),
                    "set active_key to the id of an [[instance.auth.key]], or add that key",
                );
                None
            }
            v => v.map(|v| v as u8),
        },
        None if raw.key.len() == 1 => keys.first().map(|k| k.id),
        None => {
            cx.at(
                table.clone(),
                "several [[instance.auth.key]]s and no active_key",
                "add active_key = ID: the key this host signs with (during a rotation, every host keeps the old one until all have the new key)",
            );
            None
        }
    };
    let mode = match raw.mode.as_ref() {
        None => Some(Mode::Enforce),
        Some(m) => match m.get_ref().as_str() {
            "enforce" => Some(Mode::Enforce),
            "permissive" => Some(Mode::Permissive),
            "receive-only" => Some(Mode::ReceiveOnly),
            other => {
                cx.at(
                    m.span(),
                    format!("mode \"{other}\" is not one floatip knows"),
                    "mode is \"enforce\" (default), \"permissive\" or \"receive-only\" (keepalived 2.4's meanings)",
                );
                None
            }
        },
    };
    let time = match raw.anti_replay.as_ref() {
        None => Some(true),
        Some(a) => match a.get_ref().as_str() {
            "time" => Some(true),
            "monotonic" => Some(false),
            other => {
                cx.at(
                    a.span(),
                    format!("anti_replay \"{other}\" is not one floatip knows"),
                    "anti_replay is \"time\" (default; needs NTP) or \"monotonic\"",
                );
                None
            }
        },
    };
    let anti_replay = match (time, &raw.time_window) {
        (Some(false), Some(w)) => {
            cx.at(
                w.span(),
                "time_window is set but anti_replay = \"monotonic\" has no window",
                "remove time_window, or use anti_replay = \"time\"",
            );
            None
        }
        (Some(false), None) => Some(AntiReplay::Monotonic),
        (Some(true), w) => {
            let default = default_window(advert_interval.unwrap_or(Duration::from_secs(1)));
            let window = cx.duration(w.as_ref(), "time_window", default, WINDOW_MIN, WINDOW_MAX);
            match (window, w) {
                (Some(d), Some(w)) if d.subsec_nanos() != 0 => {
                    cx.at(
                        w.span(),
                        "time_window is not whole seconds",
                        "the window is compared in seconds: e.g. time_window = \"5s\"",
                    );
                    None
                }
                (Some(d), _) => Some(AntiReplay::Time {
                    window_secs: d.as_secs() as u32,
                }),
                (None, _) => None,
            }
        }
        (None, _) => None,
    };
    if !ok {
        return None;
    }
    Some(Auth::Hmac(HmacConfig {
        keys,
        active_key: active_key?,
        mode: mode?,
        anti_replay: anti_replay?,
    }))
}

/// How a `file` names a systemd credential: the rest is the credential's name.
const CREDENTIALS_PREFIX: &str = "$CREDENTIALS_DIRECTORY/";

/// Read one key file: an absolute path, root-owned and mode 0600 or stricter (or a systemd
/// credential, `$CREDENTIALS_DIRECTORY/NAME`), at most [`MAX_KEY_FILE`] bytes, holding a
/// keepalived key value.
fn read_key_file(cx: &mut Cx<'_>, file: &Spanned<String>) -> Option<Vec<u8>> {
    let name = file.get_ref();
    let expanded;
    let path = match name.strip_prefix(CREDENTIALS_PREFIX) {
        Some(rest) => match std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
            Some(dir) => {
                expanded = Path::new(&dir).join(rest);
                expanded.as_path()
            }
            None => {
                cx.at(
                    file.span(),
                    format!("key file \"{name}\" is a systemd credential, but $CREDENTIALS_DIRECTORY is not set"),
                    "systemd sets it for a unit with `LoadCredential=NAME:/path/to/key`; outside systemd (or to check the file by hand) give the key file's absolute path",
                );
                return None;
            }
        },
        None => Path::new(name),
    };
    if !path.is_absolute() {
        cx.at(
            file.span(),
            format!("key file \"{name}\" is not an absolute path"),
            "give the full path, e.g. file = \"/etc/floatip/keys/files-1\"",
        );
        return None;
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            cx.at(
                file.span(),
                format!("cannot read key file \"{name}\": {e}"),
                "create it with the key as keepalived writes it (`hex:` and 64 hex digits): `(umask 077; printf 'hex:%s' \"$(openssl rand -hex 32)\" > FILE)`, the same on every router",
            );
            return None;
        }
    };
    if !meta.is_file() {
        cx.at(
            file.span(),
            format!("key file \"{name}\" is not a regular file"),
            "point `file` at the file that holds the key",
        );
        return None;
    }
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .filter(|d| !d.is_empty())
        .is_some_and(|d| path.starts_with(d));
    if !credential {
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            cx.at(
                file.span(),
                format!("key file \"{name}\" is mode {mode:04o}: group or others can read the key"),
                format!("chmod 600 {name} (0600 or stricter), or load it as a systemd credential ($CREDENTIALS_DIRECTORY)"),
            );
            return None;
        }
        if meta.uid() != 0 {
            cx.at(
                file.span(),
                format!("key file \"{name}\" is owned by uid {}, not root", meta.uid()),
                format!("chown root: {name}, or load it as a systemd credential ($CREDENTIALS_DIRECTORY)"),
            );
            return None;
        }
    }
    if meta.len() > MAX_KEY_FILE {
        cx.at(
            file.span(),
            format!(
                "key file \"{name}\" is {} bytes, too large for a key",
                meta.len()
            ),
            "it holds one key: `hex:` and 64-128 hex digits, or 32-64 ASCII characters",
        );
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            cx.at(
                file.span(),
                format!("cannot read key file \"{name}\": {e}"),
                "floatip reads key files as root; check the path and permissions",
            );
            return None;
        }
    };
    match vrrp::auth::parse_key_value(&text) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            cx.at(
                file.span(),
                format!("key file \"{name}\": {e}"),
                "write the key as keepalived does: `hex:` and 64 hex digits (`openssl rand -hex 32`), or 32-64 ASCII characters",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
