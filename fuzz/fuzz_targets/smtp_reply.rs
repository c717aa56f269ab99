//! Any text as an SMTP server's reply: lettre parses it, and Herald's own
//! readings of it (PIPELINING offered, the reply normalised for grouping)
//! never crash.
#![no_main]

use std::str::FromStr;

use lettre::transport::smtp::response::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(response) = Response::from_str(text) {
        let _ = herald::send::transaction::offers_pipelining(&response);
    }
    let _ = herald::store::deliveries::normalise_reply(text);
});
