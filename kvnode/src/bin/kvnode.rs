//! `kvnode --config cluster.toml --id n1 --data-dir DIR`: runs one node of the cluster.

fn main() -> std::process::ExitCode {
    kvnode::cli::main_from(std::env::args().skip(1))
}
