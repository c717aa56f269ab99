use std::path::{Path, PathBuf};
use std::process::Output;

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn example_issues() -> Vec<PathBuf> {
    herald::issue::issue_files(&repo_path("examples/issues")).expect("examples folder")
}

/// Runs the real `herald` binary.
pub fn herald(args: &[&str], cwd: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(cwd)
        .env_remove("HERALD_SECRET")
        .env_remove("HERALD_SMTP_PASSWORD")
        .output()
        .expect("herald runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
