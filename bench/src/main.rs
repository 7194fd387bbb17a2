//! `bench`: kvlab's test bench. Thin: parses the command line and hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(bench::commands::main())
}
