//! Any bytes as a message to the bounce address: a report or "not a
//! report", never a crash, and never more recipients than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one caught inside the code
    // under test; `bounce::parse` deliberately catches mail-parser's panics
    // on malformed multipart nestings. Back to the default hook: a panic
    // that escapes still aborts, in libfuzzer-sys's own catch_unwind.
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let report = herald::bounce::parse(data);
    assert!(report.recipients.len() <= 1_000);
});
