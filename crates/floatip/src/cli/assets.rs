//! The generated man pages and shell completions, for the Debian package.

use std::io;
use std::path::{Path, PathBuf};

/// Writes the man pages (`DIR/man/floatip.1` and one per subcommand, `floatip-run.1`, ...) and the
/// shell completions (`DIR/completions/floatip.bash`, `_floatip`, `floatip.fish`) for `cmd`
/// (`<floatip::cli::Cli as clap::CommandFactory>::command()`). Used by packaging/build-deb.sh via
/// `cargo run -p floatip --example gen-assets -- DIR`.
pub fn write_assets(dir: &Path, cmd: clap::Command) -> io::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut written = Vec::new();
    clap_mangen::generate_to(cmd.clone(), &man)?;
    for entry in std::fs::read_dir(&man)? {
        written.push(entry?.path());
    }
    let mut cmd = cmd;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "floatip",
            &completions,
        )?);
    }
    written.sort();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_written() {
        let dir = std::env::temp_dir().join(format!("floatip-assets-{}", std::process::id()));
        let cmd = clap::Command::new("floatip")
            .about("test")
            .subcommand(clap::Command::new("run"));
        let files = write_assets(&dir, cmd).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        for want in [
            "floatip.1",
            "floatip-run.1",
            "floatip.bash",
            "_floatip",
            "floatip.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
    }
}
