use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::{success, user_error};

const STARTER_CONFIG: &str = include_str!("../../config.example.toml");
const SAMPLE_ISSUE: &str = include_str!("../../examples/issues/vol-001.md");

/// Writes a starter `herald.toml` and `issues/vol-001.md` into `dir`.
/// Nothing is written if either already exists.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let files = [
        (dir.join("herald.toml"), STARTER_CONFIG),
        (dir.join("issues").join("vol-001.md"), SAMPLE_ISSUE),
    ];
    for (path, _) in &files {
        if path.exists() {
            return Err(user_error(format!(
                "{} already exists; herald init never overwrites a file",
                path.display()
            )));
        }
    }
    for (path, contents) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut file, contents.as_bytes())?;
        println!("wrote {}", path.display());
    }
    println!(
        "next: herald --config {} preview {}",
        files[0].0.display(),
        files[1].0.display()
    );
    success()
}
