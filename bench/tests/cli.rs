//! `bench` as a whole: what it says and returns with no command or when asked for help.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .output()
        .expect("run bench")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn no_command_prints_the_help_and_exits_254_as_documented_there() {
    let o = bench(&[]);
    assert_eq!(o.status.code(), Some(254), "{}", text(&o));
    let text = text(&o);
    assert!(text.contains("Usage: bench <COMMAND>"), "{text}");
    assert!(
        text.contains("254 bad arguments") && text.contains("also bench with no command"),
        "{text}"
    );
}

#[test]
fn help_lists_every_exit_code_and_exits_0() {
    let o = bench(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    for code in [
        "0 valid",
        "1 anomaly",
        "2 unknown",
        "254 bad arguments",
        "docs/exit-codes.md",
    ] {
        assert!(help.contains(code), "{code:?} missing in:\n{help}");
    }
}
