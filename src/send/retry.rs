//! What to do after an attempt: the one place retry decisions are made.

use std::time::Duration;

use rand::Rng;

use super::error::SendError;
use crate::config::SendSettings;
use crate::store::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub give_up_after: Duration,
}

impl RetryPolicy {
    pub fn from_settings(send: &SendSettings) -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(send.retry_first_delay_secs),
            max_delay: Duration::from_secs(send.retry_max_delay_secs),
            give_up_after: Duration::from_secs(send.give_up_after_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time.
    Defer { at: Millis },
    /// Never try again.
    Fail { bounce: bool, gave_up: bool },
}

/// Transient errors back off exponentially (first delay, doubling, capped)
/// with ±20% jitter so a throttled batch does not come back as one burst;
/// a delivery still failing `give_up_after` past its first attempt fails.
/// Permanent errors fail at once, and a bad mailbox (5.1.x) bounces.
pub fn decide(
    error: &SendError,
    attempts: i64,
    first_attempt_at: Millis,
    now: Millis,
    policy: &RetryPolicy,
) -> Decision {
    if error.is_permanent() {
        return Decision::Fail {
            bounce: error.is_bad_mailbox(),
            gave_up: false,
        };
    }
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    let base = policy
        .first_delay
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(policy.max_delay);
    let jitter = rand::rng().random_range(0.8..1.2);
    let delay = base.mul_f64(jitter);
    let at = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
    if at - first_attempt_at > i64::try_from(policy.give_up_after.as_millis()).unwrap_or(i64::MAX) {
        return Decision::Fail {
            bounce: false,
            gave_up: true,
        };
    }
    Decision::Defer { at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Reply;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(300),
            max_delay: Duration::from_secs(4 * 3600),
            give_up_after: Duration::from_secs(2 * 24 * 3600),
        }
    }

    fn reply(code: u16, enhanced: Option<&str>) -> SendError {
        SendError {
            permanent: code >= 500,
            stage: super::super::error::Stage::Recipient,
            reply: Reply {
                code: Some(code),
                enhanced_code: enhanced.map(str::to_string),
                text: "x".into(),
            },
            connection_lost: true,
        }
    }

    #[test]
    fn transient_errors_back_off_exponentially_with_jitter_and_a_cap() {
        let now = 1_000_000_000;
        for (attempts, base_secs) in [(1, 300), (2, 600), (3, 1200), (10, 4 * 3600)] {
            let Decision::Defer { at } =
                decide(&reply(451, Some("4.7.1")), attempts, now, now, &policy())
            else {
                panic!("deferred expected");
            };
            let delay = (at - now) as f64 / 1000.0;
            let base = base_secs as f64;
            assert!(
                delay >= base * 0.8 && delay <= base * 1.2,
                "attempt {attempts}: {delay}"
            );
        }
    }

    #[test]
    fn a_refused_sender_defers_instead_of_failing_the_list() {
        let mut error = reply(553, Some("5.1.8"));
        error.stage = super::super::error::Stage::Sender;
        assert!(matches!(
            decide(&error, 1, 0, 0, &policy()),
            Decision::Defer { .. }
        ));
        let mut spam = reply(550, None);
        spam.stage = super::super::error::Stage::Message;
        assert_eq!(
            decide(&spam, 1, 0, 0, &policy()),
            Decision::Fail {
                bounce: false,
                gave_up: false
            },
            "a rejected message fails that row but says nothing about the mailbox"
        );
    }

    #[test]
    fn gives_up_after_the_configured_age() {
        let first = 0;
        let now = 2 * 24 * 3600 * 1000 - 60_000; // a minute before the limit
        assert_eq!(
            decide(&reply(421, None), 12, first, now, &policy()),
            Decision::Fail {
                bounce: false,
                gave_up: true
            }
        );
    }

    #[test]
    fn permanent_errors_fail_at_once_and_bad_mailboxes_bounce() {
        assert_eq!(
            decide(&reply(550, Some("5.1.1")), 1, 0, 0, &policy()),
            Decision::Fail {
                bounce: true,
                gave_up: false
            }
        );
        assert_eq!(
            decide(&reply(554, Some("5.7.1")), 1, 0, 0, &policy()),
            Decision::Fail {
                bounce: false,
                gave_up: false
            }
        );
    }
}
