//! `[instance.auth]`: what is accepted, and every refusal with its line and hint.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use vrrp::auth::{AntiReplay, Auth, Mode};

use crate::config::parse;

const HEX_KEY: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

/// A fresh directory for this test's key files.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("floatip-auth-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.display().to_string()
}

fn instance(extra: &str, auth: &str) -> String {
    format!(
        "[[instance]]\nname = \"files\"\ninterface = \"eth0\"\nvrid = 51\naddresses = [\"192.0.2.97/24\"]\n{extra}\n[instance.auth]\n{auth}"
    )
}

fn ok(text: &str) -> Auth {
    match parse(text, Path::new("t.toml")) {
        Ok(c) => c.instances[0].auth.clone(),
        Err(e) => panic!("refused:\n{e}\n---\n{text}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, Path::new("t.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn hmac_with_one_key_file() {
    if !is_root() {
        eprintln!("SKIP: key files must be root-owned; this test runs as root");
        return;
    }
    let d = dir("one");
    let f = key_file(&d, "k1", HEX_KEY, 0o600);
    let Auth::Hmac(cfg) = ok(&instance(
        "",
        &format!("type = \"hmac\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"),
    )) else {
        panic!("not hmac")
    };
    assert_eq!(cfg.active_key, 1);
    assert_eq!(cfg.keys[0].bytes, (0u8..32).collect::<Vec<_>>());
    assert_eq!(cfg.mode, Mode::Enforce);
    assert_eq!(cfg.anti_replay, AntiReplay::Time { window_secs: 5 });
    // The window follows the interval: max(3 x advert_interval, 5s).
    let text = instance("advert_interval = \"3s\"", &format!("type = \"hmac\"\nmode = \"permissive\"\n[[instance.auth.key]]\nid = 9\nfile = \"{f}\"\n"));
    let Auth::Hmac(cfg) = ok(&text) else { panic!() };
    assert_eq!(cfg.anti_replay, AntiReplay::Time { window_secs: 9 });
    assert_eq!(cfg.mode, Mode::Permissive);
    assert_eq!(cfg.active_key, 9);
    // Two keys for a rotation, ASCII and hex, monotonic.
    let g = key_file(&d, "k2", &"k".repeat(40), 0o400);
    let text = instance("", &format!("type = \"hmac\"\nactive_key = 2\nanti_replay = \"monotonic\"\nmode = \"receive-only\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n[[instance.auth.key]]\nid = 2\nfile = \"{g}\"\n"));
    let Auth::Hmac(cfg) = ok(&text) else { panic!() };
    assert_eq!(cfg.keys.len(), 2);
    assert_eq!(cfg.keys[1].bytes, vec![b'k'; 40]);
    assert_eq!(cfg.anti_replay, AntiReplay::Monotonic);
    assert_eq!(cfg.mode, Mode::ReceiveOnly);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn bad_key_files_are_named_at_their_line() {
    if !is_root() {
        eprintln!("SKIP: key files must be root-owned; this test runs as root");
        return;
    }
    let d = dir("bad");
    let cases = [
        (
            key_file(&d, "open", HEX_KEY, 0o644),
            "mode 0644",
            "chmod 600",
        ),
        (
            key_file(&d, "big", &"a".repeat(500), 0o600),
            "too large",
            "one key",
        ),
        (key_file(&d, "short", "hex:0011", 0o600), "2 bytes", "hex:"),
        (key_file(&d, "odd", "hex:abc", 0o600), "even number", "hex:"),
        (
            d.join("missing").display().to_string(),
            "cannot read",
            "openssl rand",
        ),
        (
            "keys/relative".to_string(),
            "not an absolute path",
            "full path",
        ),
    ];
    for (f, what, hint) in cases {
        let text = instance(
            "",
            &format!("type = \"hmac\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"),
        );
        let e = err(&text);
        // The `file` key is on line 11.
        assert!(e.contains("t.toml:11:"), "{e}");
        assert!(e.contains(what), "{what}: {e}");
        assert!(e.contains(hint), "{hint}: {e}");
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_credentials_directory_file_needs_no_mode_check() {
    if !is_root() {
        eprintln!("SKIP: key files must be root-owned; this test runs as root");
        return;
    }
    let d = dir("cred");
    let f = key_file(&d, "vrrp51", HEX_KEY, 0o644);
    let text = instance(
        "",
        &format!("type = \"hmac\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"),
    );
    assert!(err(&text).contains("mode 0644"));
    // Only this test sets the variable; no other test reads it.
    // `$CREDENTIALS_DIRECTORY/NAME` names the credential wherever systemd put the directory.
    let by_name = instance(
        "",
        "type = \"hmac\"\n[[instance.auth.key]]\nid = 1\nfile = \"$CREDENTIALS_DIRECTORY/vrrp51\"\n",
    );
    assert!(err(&by_name).contains("$CREDENTIALS_DIRECTORY is not set"));
    std::env::set_var("CREDENTIALS_DIRECTORY", &d);
    let got = parse(&text, Path::new("t.toml"));
    let got_by_name = parse(&by_name, Path::new("t.toml"));
    std::env::remove_var("CREDENTIALS_DIRECTORY");
    assert!(matches!(got.unwrap().instances[0].auth, Auth::Hmac(_)));
    assert!(matches!(
        got_by_name.unwrap().instances[0].auth,
        Auth::Hmac(_)
    ));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn key_rules() {
    if !is_root() {
        eprintln!("SKIP: key files must be root-owned; this test runs as root");
        return;
    }
    let d = dir("rules");
    let f = key_file(&d, "k", HEX_KEY, 0o600);
    let two = |active: &str| {
        instance("", &format!("type = \"hmac\"\n{active}\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n[[instance.auth.key]]\nid = 2\nfile = \"{f}\"\n"))
    };
    assert!(err(&two("")).contains("no active_key"));
    assert!(err(&two("active_key = 3")).contains("active_key 3 is not one of the keys (1, 2)"));
    let dup = instance("", &format!("type = \"hmac\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"));
    assert!(err(&dup).contains("defined twice"));
    let mono = instance("", &format!("type = \"hmac\"\nanti_replay = \"monotonic\"\ntime_window = \"5s\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"));
    assert!(err(&mono).contains("no window"));
    let wide = instance("", &format!("type = \"hmac\"\ntime_window = \"301s\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"));
    assert!(err(&wide).contains("out of range"));
    let mode = instance(
        "",
        &format!(
            "type = \"hmac\"\nmode = \"strict\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"
        ),
    );
    assert!(err(&mode).contains("receive-only"));
    let pw = instance(
        "",
        &format!(
            "type = \"hmac\"\npassword = \"x\"\n[[instance.auth.key]]\nid = 1\nfile = \"{f}\"\n"
        ),
    );
    assert!(err(&pw).contains("belongs to type = \"pass\""));
    assert!(err(&instance("", "type = \"hmac\"\n")).contains("at least one [[instance.auth.key]]"));
    assert!(err(&instance(
        "",
        "type = \"hmac\"\n[[instance.auth.key]]\nfile = \"/x\"\n"
    ))
    .contains("no `id`"));
    let unknown = err(&instance(
        "",
        "type = \"hmac\"\n[[instance.auth.key]]\nid = 1\npath = \"/x\"\n",
    ));
    assert!(
        unknown.contains("unknown key `path` in [[instance.auth.key]]"),
        "{unknown}"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn pass_is_vrrpv2_only() {
    let Auth::Pass(p) = ok(&instance(
        "version = 2",
        "type = \"pass\"\npassword = \"1234\"\n",
    )) else {
        panic!()
    };
    assert_eq!(&p, b"1234\0\0\0\0");
    let e = err(&instance("", "type = \"pass\"\npassword = \"1234\"\n"));
    assert!(
        e.contains("needs version = 2")
            && e.contains("VRRPv3 adverts have no authentication field"),
        "{e}"
    );
    assert!(err(&instance(
        "version = 2",
        "type = \"pass\"\npassword = \"123456789\"\n"
    ))
    .contains("first 8 bytes"));
    assert!(err(&instance("version = 2", "type = \"pass\"\n")).contains("needs a `password`"));
    assert!(err(&instance(
        "version = 2",
        "type = \"pass\"\npassword = \"1\"\nmode = \"enforce\"\n"
    ))
    .contains("belongs to type = \"hmac\""));
}

#[test]
fn ah_is_refused_with_a_pointer_to_hmac() {
    let e = err(&instance("version = 2", "type = \"ah\"\n"));
    assert!(
        e.contains("not supported") && e.contains("type = \"hmac\""),
        "{e}"
    );
    assert!(err(&instance("", "password = \"x\"\n")).contains("no `type`"));
    assert!(err(&instance("", "type = \"md5\"\n")).contains("not one floatip knows"));
}

#[test]
fn the_default_window() {
    use super::default_window;
    use std::time::Duration;
    assert_eq!(
        default_window(Duration::from_millis(10)),
        Duration::from_secs(5)
    );
    assert_eq!(
        default_window(Duration::from_secs(2)),
        Duration::from_secs(6)
    );
    assert_eq!(
        default_window(Duration::from_millis(2500)),
        Duration::from_secs(7)
    );
    assert_eq!(
        default_window(Duration::from_secs(200)),
        Duration::from_secs(300)
    );
}
