//! `bench`'s commands: the command line parsed ([`crate::cli`]) and handed to each command.

use crate::cli::{Cli, Command, EXIT_USAGE, ReportArgs};
use clap::Parser;

/// Runs the command line; returns the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => crate::run::main(&args),
        Command::Compare(args) => crate::compare::main(&args),
        Command::Check(args) => crate::check::run(&args),
        Command::Report(args) => report(&args),
        Command::Cluster(args) => crate::run::cluster_main(&args),
        Command::Profiles => {
            print!("{}", two_columns(crate::profile::BUILTINS));
            0
        }
        Command::Kvctl { args } => kvnode::kvctl::main_from("bench kvctl", args),
        Command::Kvnode { args } => {
            // Exit codes of kvnode are small; anything else maps to failure.
            match kvnode::cli::main_from(args) {
                c if c == std::process::ExitCode::SUCCESS => 0,
                _ => 1,
            }
        }
        Command::Nemeses => {
            print!("{}", two_columns(nemesis::schedule::builtin_names()));
            0
        }
    }
}

/// `name  description` lines, the descriptions aligned however long the names are.
fn two_columns(rows: &[(&str, &str)]) -> String {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, what)| format!("{name:<width$}  {what}\n"))
        .collect()
}

/// `bench report`: renders the report of one run, then the index of the runs beside it.
fn report(args: &ReportArgs) -> u8 {
    let dir = match args.run_dir.canonicalize() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("bench report: {}: {e}", args.run_dir.display());
            return EXIT_USAGE;
        }
    };
    match reports::render(&dir) {
        Ok(report) => println!("report: {}", report.html.display()),
        Err(e) => {
            eprintln!("bench report: {e}");
            return EXIT_USAGE;
        }
    }
    // A run directory is <runs>/<test>/<time>: the index goes in <runs>.
    if let Some(root) = dir.parent().and_then(|p| p.parent()) {
        match reports::write_index(root) {
            Ok(index) => println!("index: {}", index.display()),
            Err(e) => eprintln!("bench report: no runs index: {e}"),
        }
    }
    0
}
