//! Writes the man pages and shell completions into a directory, for the Debian package:
//! `cargo run -p floatip --example gen-assets -- target/assets` (packaging/build-deb.sh runs it).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen-assets DIR");
        return ExitCode::from(2);
    };
    match floatip::cli::assets::write_assets(&dir, floatip::cli::Cli::command()) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-assets: cannot write into {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
