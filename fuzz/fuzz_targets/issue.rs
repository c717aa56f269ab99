//! Any bytes as an issue file: `check` may refuse them, never crash, and
//! what it accepts must render (the email, the site and its feeds).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use herald::config::Settings;
use herald::render::{rendering_problems, Templates};
use libfuzzer_sys::fuzz_target;

fn fixtures() -> &'static (Settings, Templates) {
    static FIXTURES: OnceLock<(Settings, Templates)> = OnceLock::new();
    FIXTURES.get_or_init(|| (Settings::default(), Templates::builtin()))
}

fuzz_target!(|data: &[u8]| {
    let (settings, templates) = fixtures();
    let checked = herald::issue::parse_issue(Path::new("fuzz.md"), data, &settings.site.base_url);
    if let Some(issue) = checked.issue {
        let problems = rendering_problems(&[issue], settings, templates);
        assert!(
            problems.is_empty(),
            "check accepted what does not render: {problems:?}"
        );
    }
});
