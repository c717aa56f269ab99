//! What `cargo install` users put in place: shell completions and man
//! pages, checked by the real shells and the real man/groff. Bash is always
//! there; zsh and fish are behind `HERALD_TEST_SHELLS=1`, man and groff
//! behind `HERALD_TEST_MAN=1` (both set by `.ci/run`, which installs them).

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{herald, stderr};

/// A few subcommands every script and page must know, nested ones too.
const SUBCOMMANDS: &[&str] = &[
    "send",
    "serve",
    "subscribers",
    "bounces",
    "completions",
    "man",
];

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn completions(shell: &str, dir: &Path) -> String {
    let output = herald(&["completions", shell], dir);
    assert!(output.status.success(), "{shell}: {}", stderr(&output));
    let script = stdout(&output);
    for name in SUBCOMMANDS {
        assert!(
            script.contains(name),
            "{shell} script lacks {name}:\n{script}"
        );
    }
    script
}

/// Off: returns false with a line on stderr. On: the tool must be there.
fn switched_on(switch: &str, tools: &[&str]) -> bool {
    if std::env::var_os(switch).is_none() {
        eprintln!(
            "skipped: set {switch}=1 to run it (needs {})",
            tools.join(", ")
        );
        return false;
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{switch} is set but {tool} is not installed");
    }
    true
}

#[test]
fn the_bash_script_registers_and_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("herald.bash");
    std::fs::write(&script, completions("bash", dir.path())).unwrap();
    // Source it as bash-completion would, then ask bash what it registered
    // and what it completes: `herald su<TAB>` and `herald subscribers <TAB>`.
    let probe = r#"
        set -e
        source "$1"
        complete -p herald
        COMP_WORDS=(herald su); COMP_CWORD=1; COMP_LINE="herald su"; COMP_POINT=${#COMP_LINE}
        _herald herald su herald
        echo "first: ${COMPREPLY[*]}"
        COMP_WORDS=(herald subscribers ""); COMP_CWORD=2; COMP_LINE="herald subscribers "; COMP_POINT=${#COMP_LINE}
        _herald herald "" subscribers
        echo "second: ${COMPREPLY[*]}"
    "#;
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", probe, "probe"])
        .arg(&script)
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("-F _herald"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("complete ") && l.ends_with(" herald")),
        "{out}"
    );
    let first = out.lines().find(|l| l.starts_with("first:")).unwrap();
    assert_eq!(first, "first: subscribers", "{out}");
    let second = out.lines().find(|l| l.starts_with("second:")).unwrap();
    for name in ["add", "remove", "import", "export"] {
        assert!(second.split_whitespace().any(|w| w == name), "{out}");
    }
}

#[test]
fn the_zsh_and_fish_scripts_parse() {
    let dir = tempfile::tempdir().unwrap();
    // Generated whatever the switch says: the names must be there anyway.
    let zsh = completions("zsh", dir.path());
    let fish = completions("fish", dir.path());
    assert!(zsh.starts_with("#compdef herald"), "{zsh}");
    if !switched_on("HERALD_TEST_SHELLS", &["zsh", "fish"]) {
        return;
    }
    for (shell, script, check) in [("zsh", zsh, "-n"), ("fish", fish, "--no-execute")] {
        let path = dir.path().join(format!("herald.{shell}"));
        std::fs::write(&path, script).unwrap();
        let output = Command::new(shell).arg(check).arg(&path).output().unwrap();
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
    }
    // fish loads it and completes from it, not only parses it.
    let path = dir.path().join("herald.fish");
    let output = Command::new("fish")
        .args(["--no-config", "-c"])
        .arg(format!(
            "source {}; complete -C 'herald subscribers '",
            path.display()
        ))
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.lines().any(|l| l.starts_with("add")), "{out}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(&["completions", "cmd.exe"], dir.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("bash"), "{}", stderr(&output));
}

#[test]
fn man_writes_the_top_page_or_every_page_into_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let top = herald(&["man"], dir.path());
    assert!(top.status.success(), "{}", stderr(&top));
    let page = stdout(&top);
    assert!(page.contains(".TH herald 1"), "{page}");
    for name in SUBCOMMANDS {
        assert!(
            page.contains(&format!("herald\\-{name}(1)")),
            "lacks {name}:\n{page}"
        );
    }

    let man1 = dir.path().join("man/man1");
    let output = herald(&["man", man1.to_str().unwrap()], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let written = std::fs::read_dir(&man1).unwrap().count();
    assert!(stdout(&output).contains(&format!("wrote {written} man pages")));
    for name in ["herald.1", "herald-send.1", "herald-subscribers-add.1"] {
        assert!(man1.join(name).is_file(), "{name} missing");
    }
    assert_eq!(std::fs::read(man1.join("herald.1")).unwrap(), top.stdout);

    // A folder that cannot be made is the user's mistake, said plainly.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let output = herald(&["man", "file/man1"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("file/man1"), "{}", stderr(&output));
}

#[test]
fn man_and_groff_render_every_page_cleanly() {
    if !switched_on("HERALD_TEST_MAN", &["man", "groff"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    let output = herald(&["man", man1.to_str().unwrap()], dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    for entry in std::fs::read_dir(&man1).unwrap() {
        let path = entry.unwrap().path();
        // -ww: every groff warning; a page with broken roff prints some.
        let groff = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            groff.status.success(),
            "{}: {}",
            path.display(),
            stderr(&groff)
        );
        assert_eq!(stderr(&groff), "", "{}", path.display());
    }
    let rendered = Command::new("man")
        .arg("-l")
        .arg(man1.join("herald-send.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = stdout(&rendered);
    assert!(rendered.status.success(), "{}", stderr(&rendered));
    for heading in ["NAME", "SYNOPSIS", "OPTIONS"] {
        assert!(text.contains(heading), "{text}");
    }
    assert!(text.contains("herald-send"), "{text}");
    assert!(text.contains("--dry-run"), "{text}");
}
