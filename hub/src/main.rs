//! The `hub` binary: everything is in the library; see `sgd_hub::cli`.

/// jemalloc instead of glibc's allocator: the projection allocates and frees a few dozen small
/// blocks per event on several threads, and glibc's arenas spent about a quarter of a rebuild's
/// CPU on it (docs/performance.md, "Allocator"). Options: `_RJEM_MALLOC_CONF` at run time.
/// Built in with the default `jemalloc` feature.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options built into the binary (read before `main`; `_RJEM_MALLOC_CONF` set at run
/// time still overrides them). One arena instead of four per core, and freed pages handed back
/// after 1 s instead of 10 s: the hub's peak RSS about 15–25 MB lower through 1,000,000 events, no
/// measurable cost in speed (docs/performance.md, "Allocator").
#[cfg(feature = "jemalloc")]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: Option<&'static std::ffi::c_char> =
    // SAFETY: a pointer to the first byte of a 'static, NUL-terminated string, which is what
    // jemalloc reads through this symbol (`const char *malloc_conf`).
    Some(unsafe { &*c"narenas:1,dirty_decay_ms:1000".as_ptr() });

fn main() -> std::process::ExitCode {
    sgd_hub::cli::main()
}
