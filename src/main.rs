//! `speedcamd`: the speedcam daemon and its offline tools.

mod cli;

fn main() -> std::process::ExitCode {
    pin_mmap_threshold();
    cli::main()
}

/// Keeps glibc's mmap threshold at its 128 KiB default. Frames (1.4 MB at 1280x720) are allocated
/// on decode threads and freed on camera threads; after the first such free glibc raises the
/// threshold to the frame size and serves frames from its per-thread heaps, which then fragment:
/// the 4-camera soak (scripts/soak-load.sh) grew RSS by 22 MiB/min that way, against ~1 MiB/min
/// with the threshold pinned (every frame its own mapping, returned to the OS when freed).
/// `MALLOC_MMAP_THRESHOLD_` in the environment still wins.
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; called before any thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
