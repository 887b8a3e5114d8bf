//! The `plesk-reseller-agent` binary, kept thin: the library's `cli::run` does the work and
//! returns the exit code.

fn main() {
    std::process::exit(plesk_reseller_agent::cli::run());
}
