//! CLI habits: every subcommand's help carries an example; completions are generated.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_credit-risk");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run the binary");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let top = run(&["--help"]);
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    for c in commands {
        let help = run(&[c, "--help"]);
        assert!(
            help.contains("Example"),
            "`{c} --help` has no example:\n{help}"
        );
    }
}

#[test]
fn shell_completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(script.contains("classify"), "{shell}");
    }
}
