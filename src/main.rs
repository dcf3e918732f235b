//! The `evstore` binary: glue around [`evstore::cli::run`].

fn main() -> std::process::ExitCode {
    evstore::cli::run()
}
