//! The `eventlake` command line; see `eventlake --help`.

fn main() -> std::process::ExitCode {
    eventlake::cli::main()
}
