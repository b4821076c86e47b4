//! The `hub` binary: everything is in the library; see `sgd_hub::cli`.

fn main() -> std::process::ExitCode {
    sgd_hub::cli::main()
}
