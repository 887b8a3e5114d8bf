//! The `plesk-reseller-central` binary: see `cli`.

fn main() {
    std::process::exit(plesk_reseller_central::cli::main());
}
