use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::Settings;
use crate::issue::{self, Diagnostic};
use crate::render::{self, Templates};

use super::user_error;

/// Checks issue files (or folders of them) and prints every diagnostic.
/// Returns the diagnostics too, for tests and for `build`.
pub fn check_paths(
    settings: &Settings,
    paths: &[PathBuf],
) -> anyhow::Result<(usize, Vec<Diagnostic>)> {
    let mut files = Vec::new();
    let default = [settings.issues_dir()];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    for path in paths {
        if path.is_dir() {
            files.extend(issue::issue_files(path)?);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(user_error(format!(
                "{}: no such file or folder",
                path.display()
            )));
        }
    }
    let (issues, mut diagnostics) = issue::check_files(&files, &settings.site.base_url)?;
    let templates = Templates::load(&settings.templates_dir())?;
    diagnostics.extend(render::rendering_problems(&issues, settings, &templates));
    Ok((files.len(), diagnostics))
}

pub fn run(settings: &Settings, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (count, diagnostics) = check_paths(settings, paths)?;
    report(&diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    eprintln!("checked {count} issue file(s): {errors} error(s), {warnings} warning(s)");
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn report(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}

/// Reads one issue for a command that needs it whole (preview, send):
/// warnings are printed, any error fails the command.
pub fn load_one(settings: &Settings, path: &Path) -> anyhow::Result<issue::Issue> {
    if !path.is_file() {
        return Err(user_error(format!(
            "{}: no such issue file",
            path.display()
        )));
    }
    let checked = issue::read_issue(path, &settings.site.base_url)?;
    report(&checked.diagnostics);
    checked.issue.ok_or_else(|| {
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        user_error(format!("{}: {errors} error(s), see above", path.display()))
    })
}
