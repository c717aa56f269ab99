//! Auto-replies: RFC 3834 `Auto-Submitted`, the headers the common
//! responders add instead, and the subjects vacation messages use. They are
//! recognised so that an "I am away" never counts as a failure.
//!
//! Only headers and the subject are read, never the body: a person's
//! ordinary reply may well say "I was on vacation", and taking it for an
//! auto-reply costs nothing, but reading bodies would also catch bounces
//! quoting an auto-reply. Bounces are recognised before this runs (an Exim
//! bounce carries `Auto-Submitted: auto-replied` too).

/// The header names and values that mark an automatic reply.
pub struct AutoReplyHeaders<'a> {
    pub auto_submitted: Option<&'a str>,
    pub precedence: Option<&'a str>,
    /// X-Autoreply, X-Autorespond, X-Autoresponder, X-Vacation...: present
    /// at all.
    pub has_responder_header: bool,
    pub subject: &'a str,
}

/// Subject openings of vacation and auto-reply messages in the languages
/// subscribers write in, lowercased.
const SUBJECT_PREFIXES: &[&str] = &[
    "auto:",
    "autoreply",
    "auto reply",
    "auto-reply",
    "auto response",
    "auto-response",
    "autoresponse",
    "automatic reply",
    "automatic response",
    "automatische antwort",
    "abwesenheit",
    "réponse automatique",
    "reponse automatique",
    "absence",
    "risposta automatica",
    "respuesta automática",
    "resposta automática",
    "automatisch antwoord",
    "afwezig",
    "自动回复",
    "自動回覆",
    "自動応答",
    "自動返信",
    "不在",
];

/// Phrases anywhere in the subject.
const SUBJECT_PHRASES: &[&str] = &[
    "out of office",
    "out of the office",
    "out-of-office",
    "on vacation",
    "on holiday",
    "away from the office",
    "away until",
    "away from my",
    "i am away",
    "i'm away",
    "ooo:",
    "autoreply",
    "auto-reply",
    "auto reply",
    "abwesenheitsnotiz",
    "自动回复",
];

pub fn is_auto_reply(headers: &AutoReplyHeaders<'_>) -> bool {
    if headers
        .auto_submitted
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
    {
        return true;
    }
    if headers.has_responder_header {
        return true;
    }
    if headers
        .precedence
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("auto_reply"))
    {
        return true;
    }
    let subject = headers.subject.trim().to_lowercase();
    SUBJECT_PREFIXES.iter().any(|p| subject.starts_with(p))
        || SUBJECT_PHRASES.iter().any(|p| subject.contains(p))
}

/// Header names whose mere presence marks an auto-reply, lowercased.
pub fn is_responder_header(name_lower: &str) -> bool {
    matches!(
        name_lower,
        "x-autoreply" | "x-autorespond" | "x-autoresponder" | "x-autoresponse" | "x-vacation"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_subject(subject: &str) -> AutoReplyHeaders<'_> {
        AutoReplyHeaders {
            auto_submitted: None,
            precedence: None,
            has_responder_header: false,
            subject,
        }
    }

    #[test]
    fn subjects() {
        for (subject, want) in [
            ("Out of Office: Re: Weekly news", true),
            ("Auto: Herald #12", true),
            ("Automatic reply: Herald #12", true),
            ("自动回复: 周报", true),
            ("Abwesenheitsnotiz: Newsletter", true),
            ("Away until May 5", true),
            ("Re: your newsletter", false),
            ("Undeliverable: Herald #12", false),
        ] {
            assert_eq!(is_auto_reply(&with_subject(subject)), want, "{subject}");
        }
    }

    #[test]
    fn headers() {
        let mut h = with_subject("Re: hi");
        h.auto_submitted = Some("auto-replied");
        assert!(is_auto_reply(&h));
        h.auto_submitted = Some("no");
        assert!(!is_auto_reply(&h));
        h.precedence = Some("auto_reply");
        assert!(is_auto_reply(&h));
        h.precedence = Some("bulk");
        assert!(!is_auto_reply(&h));
        h.has_responder_header = true;
        assert!(is_auto_reply(&h));
    }
}
