//! Any text as an issue's front matter, around a valid body: refused with
//! a diagnostic or accepted, never a crash; accepted means it renders.
#![no_main]

use std::path::Path;

use herald::config::Settings;
use herald::render::{rendering_problems, Templates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(front) = std::str::from_utf8(data) else {
        return;
    };
    let text =
        format!("+++\n{front}\n+++\n## Section\n\n### [Item](https://example.com/)\n\nBody.\n");
    let settings = Settings::default();
    let checked = herald::issue::parse_issue(
        Path::new("fuzz.md"),
        text.as_bytes(),
        &settings.site.base_url,
    );
    if let Some(issue) = checked.issue {
        let problems = rendering_problems(&[issue], &settings, &Templates::builtin());
        assert!(problems.is_empty(), "{problems:?}");
    }
});
