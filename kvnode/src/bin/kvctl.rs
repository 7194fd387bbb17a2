//! `kvctl`: the store's command-line client (see [`kvnode::kvctl`]).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(kvnode::kvctl::main_from("kvctl", std::env::args().skip(1)))
}
