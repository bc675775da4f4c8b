//! `speedcamd`: the speedcam daemon and its offline tools.

mod cli;

/// jemalloc serves every Rust allocation. With glibc malloc the 4-camera load soak
/// (`scripts/soak-load.sh 600`) grew RSS by 340-1000 KiB/min over its second half, in every
/// arena setting tried: multi-MB frames and tract's scratch tensors are allocated on one thread
/// and freed on another, and small long-lived allocations pinned the holes between them. The
/// same soak with jemalloc: RSS flat (see the README's load figures), and tract's detection
/// about 30% faster (its per-inference scratch buffers no longer cost an mmap and page faults
/// each).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings (read at its first allocation; `_RJEM_MALLOC_CONF` in the environment
/// overrides them). Stock jemalloc keeps freed pages for 10 s in each of 4 x CPUs arenas, and
/// only purges them when that arena allocates again: with frames of a few MB at 30 fps per
/// camera that held ~60 MB more than glibc. Pages freed for over a second now go back (the
/// daemon allocates frames all the time, so purging never waits long), and four arenas are
/// plenty for its few busy threads. No `background_thread`: the aarch64 binary hung at start
/// with it under qemu-user, where the cross build's tests run.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:1000,muzzy_decay_ms:0,narenas:4\0";

fn main() -> std::process::ExitCode {
    pin_mmap_threshold();
    cli::main()
}

/// Keeps glibc's mmap threshold at its 128 KiB default (glibc now serves only C and C++ code:
/// the openh264 decoder, FFmpeg, ONNX Runtime). Why, from before jemalloc served Rust: frames
/// (1.4 MB at 1280x720) were allocated on decode threads and freed on camera threads; after the
/// first such free glibc raised the threshold to the frame size and served frames from its
/// per-thread heaps, which then fragmented: the 4-camera soak (scripts/soak-load.sh) grew RSS by
/// 22 MiB/min that way, against ~1 MiB/min with the threshold pinned (every frame its own
/// mapping, returned to the OS when freed).
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
