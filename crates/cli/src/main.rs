use std::process::ExitCode;

fn main() -> ExitCode {
    keep_freed_memory();
    tierforge_model::settle_thread_count();
    tierforge_cli::main(std::env::args_os())
}

/// Makes glibc's allocator keep and reuse the memory that is freed.
///
/// Training allocates and frees tensors of tens to hundreds of megabytes at every step. By default
/// glibc serves each of those from a fresh `mmap` and unmaps it on free, so every step faulted its
/// whole working set in again and the kernel zeroed it page by page: a quarter of the CPU time of
/// a training step went to page faults. With allocations served from the heap and the heap never
/// trimmed, freed blocks are reused; `tierforge train` runs about 20% more tokens per second
/// (`scripts/bench-train`). Peak memory is unchanged: only pages that were in use stay mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1); // -1: never trim
        libc::mallopt(libc::M_TOP_PAD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}
