fn main() {
    std::process::exit(plesk_reseller_agent::cli::run());
}
