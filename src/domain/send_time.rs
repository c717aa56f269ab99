//! When a scheduled send starts (`herald send --at`): a wall-clock time in
//! the site's time zone, or an RFC 3339 instant with its own offset. Pure:
//! the caller gives the zone and the current instant, so every case is a
//! unit test.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

use super::quote_input;

/// The wall-clock forms read in the site's zone. Seconds are optional and
/// `T` may stand for the space, as in RFC 3339 without its offset.
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendTimeError {
    #[error(
        "--at {input}: not a time; write \"YYYY-MM-DD HH:MM\" in {zone} (the site's \
         time zone, [site] timezone) or RFC 3339 with an offset, e.g. \"2026-12-07T08:00:00+08:00\""
    )]
    Unreadable { input: String, zone: String },
    #[error(
        "--at {input}: {local} does not exist in {zone} (the clocks skip it for daylight \
         saving time); choose another time, or give the offset in RFC 3339"
    )]
    Skipped {
        input: String,
        local: String,
        zone: String,
    },
    #[error(
        "--at {input}: {local} happens twice in {zone} (the clocks go back), at offsets \
         {before} and {after}; give the one you mean in RFC 3339, e.g. \"{example}\""
    )]
    Repeated {
        input: String,
        local: String,
        zone: String,
        before: String,
        after: String,
        example: String,
    },
    #[error("--at {input}: {at} is in the past (it is now {now}); a send is scheduled for later")]
    Past {
        input: String,
        at: String,
        now: String,
    },
}

/// Reads `input` as the instant a scheduled send starts: `YYYY-MM-DD
/// HH:MM[:SS]` in `zone`, or RFC 3339 (which carries its own offset). A
/// wall-clock time the zone skips or repeats (a daylight-saving change) is
/// refused rather than guessed, and so is any instant not after `now`.
// A large error is fine here: it is made at most once per command, to be
// printed, never on a path that runs per message.
#[allow(clippy::result_large_err)]
pub fn parse_send_time(
    input: &str,
    zone: &TimeZone,
    now: Timestamp,
) -> Result<Timestamp, SendTimeError> {
    let text = input.trim();
    let quoted = quote_input(input);
    let zone_name = zone_name(zone);
    let local = LOCAL_FORMATS
        .iter()
        .find_map(|format| DateTime::strptime(format, text).ok());
    let at = match local {
        Some(local) => in_zone(local, zone, &quoted)?,
        // Only when an offset is written: without one the text was either
        // a wall-clock time (read above) or a mistake.
        None => text
            .parse::<Timestamp>()
            .ok()
            .filter(|_| has_offset(text))
            .ok_or_else(|| SendTimeError::Unreadable {
                input: quoted.clone(),
                zone: zone_name.clone(),
            })?,
    };
    if at <= now {
        return Err(SendTimeError::Past {
            input: quoted,
            at: describe_send_time(at, zone),
            now: describe_send_time(now, zone),
        });
    }
    Ok(at)
}

/// The instant `local` names in `zone`, unless a daylight-saving change
/// skips or repeats it there.
#[allow(clippy::result_large_err)]
fn in_zone(local: DateTime, zone: &TimeZone, quoted: &str) -> Result<Timestamp, SendTimeError> {
    let ambiguous = zone.to_ambiguous_timestamp(local);
    let shown = local.strftime("%Y-%m-%d %H:%M:%S").to_string();
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => {
            ambiguous
                .unambiguous()
                .map_err(|_| SendTimeError::Unreadable {
                    input: quoted.to_string(),
                    zone: zone_name(zone),
                })
        }
        AmbiguousOffset::Gap { .. } => Err(SendTimeError::Skipped {
            input: quoted.to_string(),
            local: shown,
            zone: zone_name(zone),
        }),
        AmbiguousOffset::Fold { before, after } => Err(SendTimeError::Repeated {
            input: quoted.to_string(),
            example: format!("{}{before}", local.strftime("%Y-%m-%dT%H:%M:%S")),
            local: shown,
            zone: zone_name(zone),
            before: before.to_string(),
            after: after.to_string(),
        }),
    }
}

/// Whether the text after the date ends in `Z` or a `+hh:mm`/`-hh:mm`
/// offset (jiff also reads bracketed zone names, which we do not offer).
fn has_offset(text: &str) -> bool {
    let Some(time) = text.get(10..) else {
        return false;
    };
    let time = time.split('[').next().unwrap_or(time);
    time.ends_with(['Z', 'z']) || time.contains(['+', '-'])
}

/// The zone's IANA name, or its offset for a fixed zone.
pub fn zone_name(zone: &TimeZone) -> String {
    zone.iana_name()
        .map(str::to_string)
        .unwrap_or_else(|| "UTC".to_string())
}

/// An instant as an editor reads it: wall-clock time in `zone` with its
/// offset, e.g. `2026-12-07 08:00 +08:00 (Asia/Shanghai)`.
pub fn describe_send_time(at: Timestamp, zone: &TimeZone) -> String {
    let zoned = at.to_zoned(zone.clone());
    format!(
        "{} ({})",
        zoned.strftime("%Y-%m-%d %H:%M %:z"),
        zone_name(zone)
    )
}

/// [`describe_send_time`] for a time column (milliseconds since the epoch).
pub fn describe_millis(millis: i64, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(millis) {
        Ok(at) => describe_send_time(at, zone),
        Err(_) => format!("{millis} ms after 1970 (out of range)"),
    }
}

/// How late something started, for a log line: `3h 12m 5s`.
pub fn describe_delay(millis: i64) -> String {
    let secs = millis.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn instant(rfc3339: &str) -> Timestamp {
        rfc3339.parse().unwrap()
    }

    #[test]
    fn wall_clock_times_are_read_in_the_site_zone() {
        let now = instant("2026-11-29T08:00:00Z");
        let shanghai = zone("Asia/Shanghai");
        for (input, expected) in [
            ("2026-12-07 08:00", "2026-12-07T00:00:00Z"),
            ("2026-12-07 08:00:30", "2026-12-07T00:00:30Z"),
            ("2026-12-07T08:00", "2026-12-07T00:00:00Z"),
            (" 2026-12-07 08:00 ", "2026-12-07T00:00:00Z"),
        ] {
            assert_eq!(
                parse_send_time(input, &shanghai, now),
                Ok(instant(expected)),
                "{input}"
            );
        }
        // The same wall-clock time is another instant in another zone,
        // summer time included.
        assert_eq!(
            parse_send_time("2027-07-01 09:00", &zone("Europe/Berlin"), now),
            Ok(instant("2027-07-01T07:00:00Z"))
        );
        assert_eq!(
            parse_send_time("2026-12-07 08:00", &TimeZone::UTC, now),
            Ok(instant("2026-12-07T08:00:00Z"))
        );
    }

    #[test]
    fn rfc3339_carries_its_own_offset_whatever_the_site_zone() {
        let now = instant("2026-11-29T08:00:00Z");
        for input in [
            "2026-12-07T08:00:00+08:00",
            "2026-12-07T00:00:00Z",
            "2026-12-07T00:00:00z",
            "2026-12-06T19:00:00-05:00",
        ] {
            assert_eq!(
                parse_send_time(input, &zone("America/Los_Angeles"), now),
                Ok(instant("2026-12-07T00:00:00Z")),
                "{input}"
            );
        }
    }

    #[test]
    fn the_past_and_the_present_are_refused() {
        let now = instant("2026-11-29T08:00:00Z");
        let utc = TimeZone::UTC;
        for input in [
            "2026-11-29 08:00",
            "2026-11-29 07:59",
            "2020-01-01T00:00:00Z",
        ] {
            let error = parse_send_time(input, &utc, now).unwrap_err();
            assert!(matches!(error, SendTimeError::Past { .. }), "{input}");
            assert!(error.to_string().contains("in the past"), "{error}");
        }
        // In the site's zone, 16:30 in Shanghai on the 29th is already gone
        // at 08:45 UTC.
        let error = parse_send_time(
            "2026-11-29 16:30",
            &zone("Asia/Shanghai"),
            instant("2026-11-29T08:45:00Z"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--at \"2026-11-29 16:30\": 2026-11-29 16:30 +08:00 (Asia/Shanghai) is in the past \
             (it is now 2026-11-29 16:45 +08:00 (Asia/Shanghai)); a send is scheduled for later"
        );
    }

    #[test]
    fn garbage_is_refused_with_the_forms_that_work() {
        let now = instant("2026-11-29T08:00:00Z");
        for input in [
            "",
            "tomorrow",
            "2026-12-07",
            "08:00",
            "2026-13-01 08:00",
            "2026-02-30 08:00",
            "2026-12-07 25:00",
            "2026-12-07 08:00 extra",
            "07/12/2026 08:00",
            "2026-12-07T08:00:00+08:00[Asia/Shanghai]x",
            "2026-12-07 08:00\u{202e}",
            "2026-12-07T08:00:00+99:00",
        ] {
            let error = parse_send_time(input, &zone("Asia/Shanghai"), now).unwrap_err();
            assert!(
                matches!(error, SendTimeError::Unreadable { .. }),
                "{input:?}: {error}"
            );
            let message = error.to_string();
            assert!(message.contains("Asia/Shanghai"), "{message}");
            assert!(message.contains("RFC 3339"), "{message}");
            assert!(!message.contains('\u{202e}'), "escaped: {message}");
        }
    }

    #[test]
    fn times_a_daylight_saving_change_skips_or_repeats_are_refused() {
        let now = instant("2026-11-29T08:00:00Z");
        let new_york = zone("America/New_York");
        // 2027-03-14: 02:00 jumps to 03:00.
        let skipped = parse_send_time("2027-03-14 02:30", &new_york, now).unwrap_err();
        assert!(
            matches!(skipped, SendTimeError::Skipped { .. }),
            "{skipped}"
        );
        // 2027-11-07: 01:00 to 02:00 happens twice.
        let repeated = parse_send_time("2027-11-07 01:30", &new_york, now).unwrap_err();
        assert!(
            matches!(repeated, SendTimeError::Repeated { .. }),
            "{repeated}"
        );
        assert!(
            repeated.to_string().contains("2027-11-07T01:30:00-04"),
            "{repeated}"
        );
        // The offsets it suggests are accepted.
        assert!(parse_send_time("2027-11-07T01:30:00-05:00", &new_york, now).is_ok());
    }

    #[test]
    fn delays_and_times_read_plainly() {
        assert_eq!(describe_delay(4_000), "4s");
        assert_eq!(describe_delay(125_000), "2m 5s");
        assert_eq!(describe_delay(3_600_000 * 3 + 61_000), "3h 1m 1s");
        assert_eq!(describe_delay(-5), "0s");
        assert_eq!(
            describe_millis(1_796_601_600_000, &zone("Asia/Shanghai")),
            "2026-12-07 08:00 +08:00 (Asia/Shanghai)"
        );
    }
}
