use std::process::ExitCode;

fn main() -> ExitCode {
    tierforge_cli::main(std::env::args_os())
}
