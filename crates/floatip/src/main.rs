use std::process::ExitCode;

fn main() -> ExitCode {
    floatip::cli::main()
}
