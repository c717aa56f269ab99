//! Any bytes as a message to the bounce address: a report or "not a
//! report", never a crash, and never more recipients than the cap.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = herald::bounce::parse(data);
    assert!(report.recipients.len() <= 1_000);
});
