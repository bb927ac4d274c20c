use std::process::ExitCode;

fn main() -> ExitCode {
    tierforge_data::allocator::keep_freed_memory();
    tierforge_model::settle_thread_count();
    tierforge_cli::main(std::env::args_os())
}
