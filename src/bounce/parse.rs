//! Parsing a raw message into a [`ParsedReport`]. Pure: no I/O, no clock.

use super::report::ParsedReport;

/// Reads one raw message (RFC 5322 bytes, any line endings, possibly
/// truncated or not UTF-8) and says what it reports. Never panics.
pub fn parse(_raw: &[u8]) -> ParsedReport {
    ParsedReport::not_a_report()
}
