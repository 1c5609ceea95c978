//! The process check (keepalived's `track_process`): healthy while the number of running processes
//! that match is within bounds. A process matches by name (the kernel's name for it, `comm`, or the
//! file name of its `argv[0]`) and, if `args` is set, by a piece of its command line. It reads
//! `/proc/<pid>/comm` and `cmdline` of every process: no `ps`, nothing to install.

use std::path::Path;

/// What one check looks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Want<'a> {
    pub name: &'a str,
    pub args: Option<&'a str>,
    pub min: u32,
    pub max: Option<u32>,
}

/// The check: `Err` says how many matched and what was wanted.
pub(super) fn check(want: Want<'_>) -> Result<(), String> {
    let n = count(Path::new("/proc"), want.name, want.args)
        .map_err(|e| format!("cannot read /proc: {e}"))?;
    judge(want, n)
}

/// Healthy while `min <= n <= max`.
fn judge(want: Want<'_>, n: u32) -> Result<(), String> {
    let what = match want.args {
        Some(a) => format!("{} with \"{a}\" in its command line", want.name),
        None => want.name.to_string(),
    };
    if n < want.min {
        let running = if n == 0 {
            "none is running".to_string()
        } else {
            format!("{n} running")
        };
        return Err(format!(
            "process {what}: {running}, at least {} wanted",
            want.min
        ));
    }
    if let Some(max) = want.max.filter(|m| n > *m) {
        return Err(format!("process {what}: {n} running, at most {max} wanted"));
    }
    Ok(())
}

/// How many processes under `proc` (a `/proc`) match. A process that ends while it is read is
/// not counted.
fn count(proc: &Path, name: &str, args: Option<&str>) -> std::io::Result<u32> {
    let mut n = 0;
    for entry in std::fs::read_dir(proc)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = proc.join(pid);
        let (Ok(comm), Ok(cmdline)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read(dir.join("cmdline")),
        ) else {
            continue;
        };
        if matches(name, args, comm.trim_end_matches('\n'), &cmdline) {
            n += 1;
        }
    }
    Ok(n)
}

/// Whether a process with kernel name `comm` and NUL-separated `cmdline` is one we look for. The
/// kernel cuts `comm` to 15 bytes, so a longer `name` is matched against `argv[0]`'s file name.
fn matches(name: &str, args: Option<&str>, comm: &str, cmdline: &[u8]) -> bool {
    let mut argv = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(String::from_utf8_lossy);
    let argv0 = argv.next().unwrap_or_default();
    let base = argv0.rsplit('/').next().unwrap_or_default();
    if comm != name && base != name {
        return false;
    }
    match args {
        None => true,
        Some(want) => argv.collect::<Vec<_>>().join(" ").contains(want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_matches_by_comm_or_argv0_and_by_args() {
        let line = b"/usr/sbin/smbd\0--foreground\0--no-process-group\0";
        assert!(matches("smbd", None, "smbd", line));
        assert!(matches("smbd", Some("--foreground"), "smbd", line));
        assert!(matches(
            "smbd",
            Some("--foreground --no-process"),
            "smbd",
            line
        ));
        assert!(!matches("smbd", Some("--debug"), "smbd", line));
        assert!(!matches("nmbd", None, "smbd", line));
        // comm is cut to 15 bytes: a longer name is found through argv[0].
        let long = b"/opt/bin/nfs-ganesha-daemon\0-F\0";
        assert!(matches("nfs-ganesha-daemon", None, "nfs-ganesha-dae", long));
        // A kernel thread has no command line.
        assert!(matches("kworker", None, "kworker", b""));
        assert!(!matches("kworker", Some("x"), "kworker", b""));
    }

    #[test]
    fn the_count_must_be_within_bounds_and_says_why_not() {
        let want = Want {
            name: "smbd",
            args: None,
            min: 1,
            max: Some(2),
        };
        assert!(judge(want, 1).is_ok() && judge(want, 2).is_ok());
        assert_eq!(
            judge(want, 0).unwrap_err(),
            "process smbd: none is running, at least 1 wanted"
        );
        assert_eq!(
            judge(want, 3).unwrap_err(),
            "process smbd: 3 running, at most 2 wanted"
        );
        let none = Want {
            name: "rsync",
            args: Some("--daemon"),
            min: 0,
            max: Some(0),
        };
        assert!(judge(none, 0).is_ok());
        assert!(judge(none, 1)
            .unwrap_err()
            .contains("rsync with \"--daemon\""));
    }

    #[test]
    fn this_test_process_is_found_in_proc() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        let n = count(Path::new("/proc"), me.trim_end(), None).unwrap();
        assert!(n >= 1, "{me}");
    }
}
