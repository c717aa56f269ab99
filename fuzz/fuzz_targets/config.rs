//! Any text as herald.toml: an error or settings, never a crash; settings
//! that load give a greeting name and a DKIM answer without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(settings) = herald::config::Settings::parse(text) {
        let _ = settings.helo_name("vm");
        let _ = settings.from_mailbox();
        let _ = settings.return_path();
    }
});
