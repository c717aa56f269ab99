//! What a report means for a subscriber: the one place bounce and
//! complaint decisions are made. Pure; the recorder gathers the facts.

use crate::config::BounceSettings;
use crate::store::Millis;

use super::report::{FailureClass, ReportKind};

const DAY_MILLIS: Millis = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BouncePolicy {
    /// Soft-bounced deliveries within `soft_bounce_window` that mark a
    /// subscriber bounced; 0 turns soft-bounce counting off.
    pub soft_bounce_limit: u32,
    pub soft_bounce_window: Millis,
}

impl BouncePolicy {
    pub fn from_settings(bounces: &BounceSettings) -> Self {
        BouncePolicy {
            soft_bounce_limit: bounces.soft_bounce_limit,
            soft_bounce_window: Millis::from(bounces.soft_bounce_days).saturating_mul(DAY_MILLIS),
        }
    }

    /// Soft bounces recorded at or after this time count.
    pub fn window_start(&self, now: Millis) -> Millis {
        now.saturating_sub(self.soft_bounce_window)
    }
}

/// What one reported recipient does to their subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes: a delay, an auto-reply, not a report.
    Nothing,
    /// A soft bounce under the limit: counted, nothing else.
    SoftBounceCounted { count: u32, limit: u32 },
    /// No more mail: the address is dead.
    Bounce(BounceCause),
    /// No more mail, ever: they told their mailbox provider it is spam.
    Complain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceCause {
    Hard,
    /// `count` soft-bounced deliveries within the window reached the limit.
    SoftLimit {
        count: u32,
        days: u32,
    },
}

/// The kind a report is acted on as. An ARF report of feedback type
/// `auth-failure` (RFC 6591: a DMARC, DKIM or SPF failure) is about our
/// mail's authentication, not a reader's wish: it is kept as the complaint
/// report it is, but changes no subscriber and no delivery.
pub fn kind_to_act_on(kind: ReportKind, feedback_type: Option<&str>) -> ReportKind {
    match (kind, feedback_type) {
        (ReportKind::Complaint, Some(feedback))
            if feedback.eq_ignore_ascii_case("auth-failure") =>
        {
            ReportKind::None
        }
        _ => kind,
    }
}

/// `soft_bounces` counts this subscriber's distinct soft-bounced deliveries
/// within the window, this report's included: one campaign's copy counts
/// once however many messages report it, so recording the same bounce
/// twice never tips anyone over.
pub fn decide(
    kind: ReportKind,
    class: FailureClass,
    soft_bounces: u32,
    policy: &BouncePolicy,
) -> Verdict {
    match (kind, class) {
        (ReportKind::Complaint, _) => Verdict::Complain,
        (ReportKind::Bounce, FailureClass::Hard) => Verdict::Bounce(BounceCause::Hard),
        (ReportKind::Bounce, FailureClass::Soft) => {
            let limit = policy.soft_bounce_limit;
            if limit > 0 && soft_bounces >= limit {
                Verdict::Bounce(BounceCause::SoftLimit {
                    count: soft_bounces,
                    days: u32::try_from(policy.soft_bounce_window / DAY_MILLIS).unwrap_or(u32::MAX),
                })
            } else {
                Verdict::SoftBounceCounted {
                    count: soft_bounces,
                    limit,
                }
            }
        }
        (ReportKind::Delay | ReportKind::AutoReply | ReportKind::None, _) => Verdict::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(limit: u32) -> BouncePolicy {
        BouncePolicy {
            soft_bounce_limit: limit,
            soft_bounce_window: 30 * DAY_MILLIS,
        }
    }

    #[test]
    fn an_authentication_failure_report_is_no_complaint() {
        assert_eq!(
            kind_to_act_on(ReportKind::Complaint, Some("auth-failure")),
            ReportKind::None
        );
        for feedback in [Some("abuse"), Some("fraud"), Some("unsubscribe"), None] {
            assert_eq!(
                kind_to_act_on(ReportKind::Complaint, feedback),
                ReportKind::Complaint
            );
        }
        assert_eq!(
            kind_to_act_on(ReportKind::Bounce, Some("auth-failure")),
            ReportKind::Bounce
        );
    }

    #[test]
    fn a_hard_bounce_marks_bounced_at_once() {
        assert_eq!(
            decide(ReportKind::Bounce, FailureClass::Hard, 0, &policy(3)),
            Verdict::Bounce(BounceCause::Hard)
        );
    }

    #[test]
    fn soft_bounces_count_up_to_the_limit() {
        let p = policy(3);
        for count in 1..3 {
            assert_eq!(
                decide(ReportKind::Bounce, FailureClass::Soft, count, &p),
                Verdict::SoftBounceCounted { count, limit: 3 }
            );
        }
        for count in [3, 4, 100] {
            assert_eq!(
                decide(ReportKind::Bounce, FailureClass::Soft, count, &p),
                Verdict::Bounce(BounceCause::SoftLimit { count, days: 30 })
            );
        }
    }

    #[test]
    fn a_zero_limit_never_bounces_for_soft_failures() {
        assert_eq!(
            decide(ReportKind::Bounce, FailureClass::Soft, 50, &policy(0)),
            Verdict::SoftBounceCounted {
                count: 50,
                limit: 0
            }
        );
    }

    #[test]
    fn a_complaint_complains_whatever_its_class() {
        for class in [FailureClass::Hard, FailureClass::Soft] {
            assert_eq!(
                decide(ReportKind::Complaint, class, 0, &policy(3)),
                Verdict::Complain
            );
        }
    }

    #[test]
    fn delays_auto_replies_and_non_reports_change_nothing() {
        for kind in [ReportKind::Delay, ReportKind::AutoReply, ReportKind::None] {
            for class in [FailureClass::Hard, FailureClass::Soft] {
                assert_eq!(decide(kind, class, 99, &policy(1)), Verdict::Nothing);
            }
        }
    }

    #[test]
    fn the_window_is_days_back_from_now() {
        let p = BouncePolicy::from_settings(&BounceSettings::default());
        assert_eq!(p.soft_bounce_limit, 3);
        assert_eq!(p.window_start(100 * DAY_MILLIS), 70 * DAY_MILLIS);
        let huge = BouncePolicy {
            soft_bounce_limit: 3,
            soft_bounce_window: Millis::MAX,
        };
        assert_eq!(huge.window_start(5), 5 - Millis::MAX);
    }
}

/// Complaints at or past this share of what was sent: mailbox providers
/// start to act (Gmail's and Yahoo's bulk-sender rules want spam reports
/// kept under 0.3%, and filtering starts well before).
pub const COMPLAINT_RATE_WARNING: f64 = 0.001;
/// Hard bounces at or past this share: the list is rotting, and providers
/// read it as a sender that does not look after its list.
pub const HARD_BOUNCE_RATE_WARNING: f64 = 0.02;

/// One campaign's rates against what it sent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rates {
    pub hard_bounce_rate: f64,
    pub soft_bounce_rate: f64,
    pub complaint_rate: f64,
    /// What crossed a warning level, in words.
    pub warnings: Vec<String>,
}

pub fn rates(sent: i64, hard_bounces: i64, soft_bounces: i64, complaints: i64) -> Rates {
    let share = |n: i64| {
        if sent > 0 {
            n as f64 / sent as f64
        } else {
            0.0
        }
    };
    let (hard_bounce_rate, complaint_rate) = (share(hard_bounces), share(complaints));
    let mut warnings = Vec::new();
    if sent > 0 && complaint_rate >= COMPLAINT_RATE_WARNING {
        warnings.push(format!(
            "complaints at {:.2}% of sent (mailbox providers act from {:.1}%)",
            complaint_rate * 100.0,
            COMPLAINT_RATE_WARNING * 100.0
        ));
    }
    if sent > 0 && hard_bounce_rate >= HARD_BOUNCE_RATE_WARNING {
        warnings.push(format!(
            "hard bounces at {:.2}% of sent (mailbox providers act from {:.0}%)",
            hard_bounce_rate * 100.0,
            HARD_BOUNCE_RATE_WARNING * 100.0
        ));
    }
    Rates {
        hard_bounce_rate,
        soft_bounce_rate: share(soft_bounces),
        complaint_rate,
        warnings,
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn warnings_start_at_the_providers_levels() {
        assert!(rates(1000, 19, 50, 0).warnings.is_empty());
        let at = rates(1000, 20, 0, 1);
        assert_eq!(at.warnings.len(), 2, "{:?}", at.warnings);
        assert!(at.warnings[0].contains("complaints at 0.10%"));
        assert!(at.warnings[1].contains("hard bounces at 2.00%"));
        assert_eq!(at.complaint_rate, 0.001);
        assert!(rates(10_000, 0, 0, 9).warnings.is_empty());
    }

    #[test]
    fn nothing_sent_is_no_rate_and_no_warning() {
        let none = rates(0, 3, 3, 3);
        assert_eq!((none.hard_bounce_rate, none.complaint_rate), (0.0, 0.0));
        assert!(none.warnings.is_empty());
    }
}
