//! Any bytes as a subscriber CSV: every field goes through what an import
//! does to it (formula restoring, address and name validation), and what
//! an export writes of a valid row reads back the same.
#![no_main]

use std::borrow::Cow;

use herald::domain::{neutralise_formula, restore_formula, SubscriberEmail, SubscriberName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(data);
    for record in reader.records().take(100) {
        let Ok(record) = record else { continue };
        let email = restore_formula(record.get(0).unwrap_or(""));
        let name = record.get(1).map(restore_formula);
        if let Ok(email) = SubscriberEmail::parse(email) {
            assert_eq!(
                restore_formula(&neutralise_formula(Cow::Borrowed(email.as_str()))),
                email.as_str()
            );
        }
        if let Ok(Some(name)) = SubscriberName::parse_optional(name) {
            assert_eq!(
                restore_formula(&neutralise_formula(Cow::Borrowed(name.as_str()))),
                name.as_str()
            );
        }
    }
});
