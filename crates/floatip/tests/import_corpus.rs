//! `floatip import keepalived`, through the real binary, over a corpus of keepalived.conf files
//! written for it (`tests/fixtures/keepalived/`, see its README) and over the samples keepalived
//! ships: no panic, no hang (each run is bounded), an exit status of 0, 2 or 3 (the one each corpus
//! file names in its first line), and every file written passes floatip's own config parser. The
//! counts are printed (`-- --nocapture`). A property test: the import of any text never writes what
//! the parser refuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floatip::cli::import::import_text;
use proptest::prelude::*;

/// One run of the binary: far more than an import takes, so that a hang fails the test instead of
/// holding it.
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

fn debian_samples() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/share/doc/keepalived/samples") else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf."))
        })
        .collect();
    files.sort();
    files
}

struct Run {
    code: Option<i32>,
    stderr: String,
    written: Option<String>,
}

/// `floatip import keepalived FILE --output OUT`, killed after [`RUN_LIMIT`].
fn import(file: &Path, out: &Path, config_id: &str) -> Run {
    let _ = std::fs::remove_file(out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_floatip"))
        .args(["import", "keepalived"])
        .arg(file)
        .arg("--output")
        .arg(out)
        .args(["--config-id", config_id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run floatip");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{}: the import hangs (killed after {RUN_LIMIT:?})",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    Run {
        code: status.code(),
        stderr,
        written: std::fs::read_to_string(out).ok(),
    }
}

/// The exit status a corpus file names in its first line (`# expect: N`).
fn expected(file: &Path) -> i32 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no `# expect: N` first line", file.display()))
}

/// What the parser says about a written file, leaving out the key files this host does not hold
/// (the import says those need a person).
fn check(text: &str) -> Result<(), String> {
    match floatip::config::parse(text, Path::new("imported.toml")) {
        Ok(_) => Ok(()),
        Err(e) if e.problems.iter().all(|p| p.what.contains("key file \"")) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Default)]
struct Tally {
    files: usize,
    complete: usize,
    person_written: usize,
    person_nothing: usize,
    refused: usize,
    failing_check: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: &str, run: &Run) {
        self.files += 1;
        match (run.code, &run.written) {
            (Some(0), Some(_)) => self.complete += 1,
            (Some(3), Some(_)) => self.person_written += 1,
            (Some(3), None) => self.person_nothing += 1,
            (Some(2), None) => self.refused += 1,
            (code, written) => panic!(
                "{name}: exit status {code:?}, {} written; the import exits 0 or 3 with a file, 3 or 2 without:\n{}",
                if written.is_some() { "a file" } else { "nothing" },
                run.stderr
            ),
        }
        assert!(
            !run.stderr.contains("panicked"),
            "{name}: the import panicked:\n{}",
            run.stderr
        );
        if let Some(text) = &run.written {
            if let Err(e) = check(text) {
                self.failing_check
                    .push(format!("{name}:\n{e}\n--- output ---\n{text}"));
            }
        }
    }

    fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} files; complete (exit 0): {} ({:.0}%); needs a person, written: {}; needs a person, nothing written: {}; refused (exit 2): {}; written files failing floatip check: {}; panics/hangs: 0",
            self.files,
            self.complete,
            100.0 * self.complete as f64 / self.files.max(1) as f64,
            self.person_written,
            self.person_nothing,
            self.refused,
            self.failing_check.len()
        );
    }
}

#[test]
fn every_corpus_file_imports_with_its_exit_status_and_a_valid_output() {
    let dir = std::env::temp_dir().join(format!("floatip-import-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.toml");
    let mut tally = Tally::default();
    let mut wrong = Vec::new();
    for file in corpus() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let run = import(&file, &out, "lb1");
        tally.add(&name, &run);
        let want = expected(&file);
        if run.code != Some(want) {
            wrong.push(format!(
                "{name}: exit status {:?}, expected {want}:\n{}",
                run.code, run.stderr
            ));
        }
        if run.code == Some(0) {
            assert!(
                run.stderr.contains("import complete"),
                "{name}: {}",
                run.stderr
            );
        } else {
            assert!(
                run.stderr.contains(".conf:") || run.stderr.contains("nothing"),
                "{name}: exit {:?} without saying where or why:\n{}",
                run.code,
                run.stderr
            );
        }
    }
    tally.print("keepalived corpus (tests/fixtures/keepalived)");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        tally.failing_check.is_empty(),
        "written files that fail floatip check:\n{}",
        tally.failing_check.join("\n")
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_debian_sample_imports_through_the_binary_with_a_valid_output() {
    let files = debian_samples();
    if files.is_empty() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no keepalived samples: install Debian's keepalived package");
        }
        eprintln!("SKIPPED: no keepalived samples (install Debian's keepalived package)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("floatip-import-samples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.toml");
    let mut tally = Tally::default();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        // Samples with @ lines are written for config-id "high" or "low".
        let run = import(file, &out, "high");
        assert_ne!(
            run.code,
            Some(2),
            "{name}: keepalived runs this sample:\n{}",
            run.stderr
        );
        tally.add(&name, &run);
    }
    tally.print("Debian's keepalived samples");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        tally.failing_check.is_empty(),
        "written files that fail floatip check:\n{}",
        tally.failing_check.join("\n")
    );
}

#[test]
fn a_missing_input_is_no_such_file() {
    let dir = std::env::temp_dir().join(format!("floatip-import-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = import(&dir.join("absent.conf"), &dir.join("out.toml"), "h");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.written.is_none());
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
    assert!(!run.stderr.contains("would refuse"), "{}", run.stderr);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// Lines of keepalived statements in any order and nesting: what the import would write always
    /// passes floatip's parser; what it would not write says why.
    #[test]
    fn what_would_be_written_always_passes_the_parser(lines in prop::collection::vec(prop::sample::select(vec![
        "vrrp_instance A {", "vrrp_instance B {", "vrrp_instance a {", "}", "interface eth0", "interface eth1",
        "interface this-name-is-far-too-long", "virtual_router_id 51", "virtual_router_id 52", "virtual_router_id 0",
        "priority 255", "priority 1", "priority 0", "state MASTER", "state BACKUP", "nopreempt", "preempt_delay 5",
        "advert_int 0.01", "advert_int 3", "advert_int 300", "version 2", "version 3", "virtual_ipaddress {",
        "192.0.2.1/24", "192.0.2.1", "192.0.2.2/32", "2001:db8::1/64", "fe80::1/64", "0.0.0.0/0", "224.0.0.18",
        "192.0.2.1/33", "192.0.2.10-12", "unicast_peer {", "192.0.2.9", "2001:db8::9", "vrrp_sync_group G {",
        "group {", "A", "B", "a", "track_script {", "chk", "chk weight -300", "vrrp_script chk {",
        "script \"/bin/true\"", "script \"true | false\"", "weight 10", "interval 1", "timeout 5", "rise 0",
        "fall 1000", "track_interface {", "eth1 weight -20", "eth0", "track_file {", "drain", "track_file drain {",
        "file /run/drain", "file relative", "weight 0", "authentication {", "auth_type PASS", "auth_pass 0123456789",
        "auth_pass é€ü", "notify /bin/n", "notify_master /bin/m", "notify_backup \"a b\"", "use_vmac", "use_vmac x",
        "garp_master_repeat 0", "garp_interval 100", "garp_master_refresh 0.5", "global_defs {", "vrrp_version 3",
        "sync_group_tracking_weight", "virtual_routes {", "dev eth1",
    ]), 0..60)) {
        let text = lines.join("\n");
        let fake = std::env::temp_dir().join("floatip-import-proptest/none/keepalived.conf");
        match import_text(&fake, &text, "h", &|_| true) {
            Ok(imported) => match &imported.unwritable {
                None => prop_assert!(check(&imported.toml).is_ok(), "written but refused by the parser:\n{}\n--- input ---\n{text}\n--- output ---\n{}", check(&imported.toml).unwrap_err(), imported.toml),
                Some(why) => prop_assert!(!imported.complete() && !why.is_empty()),
            },
            Err(e) => prop_assert!(e.pos.is_some(), "an error without file:line: {e}"),
        }
    }
}
