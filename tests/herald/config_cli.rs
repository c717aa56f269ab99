//! Config mistakes are caught when the config loads, with exit 1 and a
//! message naming the key, whichever command meets them first.

use crate::helpers::{herald, repo_path, stderr};

fn vol_001() -> String {
    repo_path("examples/issues/vol-001.md")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn a_config_named_on_the_command_line_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(&["--config", "missing.toml", "check"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("missing.toml"),
        "{}",
        stderr(&output)
    );
    // Even when it is the default name: naming it says it should be there.
    let output = herald(&["--config", "herald.toml", "check"], dir.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}

#[test]
fn a_bad_from_address_is_exit_1_for_preview_and_send_alike() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[mail]\nfrom = \"not an address\"\n",
    )
    .unwrap();
    for args in [
        vec!["preview", vol_001().as_str()],
        vec!["send", "--dry-run", vol_001().as_str()],
    ] {
        let output = herald(&args, dir.path());
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("[mail] from"), "{args:?}: {err}");
    }
}

#[test]
fn a_javascript_base_url_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[site]\nbase_url = \"javascript:alert(1)\"\n",
    )
    .unwrap();
    for args in [vec!["build"], vec!["preview", vol_001().as_str()]] {
        let output = herald(&args, dir.path());
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("absolute http(s) URL"), "{args:?}: {err}");
    }
}

#[test]
fn an_impossible_rate_is_a_usage_error_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald(
        &["send", "--rate", "4000000000", vol_001().as_str()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        !dir.path().join("herald.db").exists(),
        "nothing was started"
    );
    let output = herald(
        &["send", "--concurrency", "0", vol_001().as_str()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn a_password_in_the_smtp_url_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("herald.toml"),
        "[smtp]\nurl = \"smtp://user:hunter2@mail.example.com:587\"\n",
    )
    .unwrap();
    let output = herald(
        &["send", "--to", "a@example.com", vol_001().as_str()],
        dir.path(),
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("HERALD_SMTP_PASSWORD") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn several_commands_may_open_a_new_database_at_once() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
                    .args(["subscribers", "count"])
                    .current_dir(dir.path())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("herald starts")
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: {}",
                stderr(&output)
            );
        }
    }
}
