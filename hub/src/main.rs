//! The `hub` binary: everything is in the library; see `sgd_hub::cli`.

/// jemalloc instead of glibc's allocator: the projection allocates and frees a few dozen small
/// blocks per event on several threads, and glibc's arenas spent about a quarter of a rebuild's
/// CPU on it (docs/performance.md, "fourth session"). Options: `_RJEM_MALLOC_CONF` at run time.
/// Built in with the default `jemalloc` feature.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    sgd_hub::cli::main()
}
