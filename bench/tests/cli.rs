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

#[test]
fn the_lists_of_built_ins_align_their_descriptions_whatever_the_names_length() {
    for list in ["nemeses", "profiles"] {
        let o = bench(&[list]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        // Where each description starts: after the name and the run of spaces that follows it.
        let starts: Vec<usize> = out
            .lines()
            .map(|l| {
                let name = l.find(' ').expect("name then description");
                name + l[name..].find(|c: char| c != ' ').expect("a description")
            })
            .collect();
        assert!(starts.len() > 3, "{out}");
        assert!(starts.iter().all(|&s| s == starts[0]), "{list}:\n{out}");
    }
}
