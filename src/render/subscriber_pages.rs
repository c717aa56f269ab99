//! The small web pages of the subscriber side: the form, the confirm and
//! unsubscribe buttons, and what comes after them. Every value is
//! HTML-escaped by the template registry.

use serde::Serialize;

use super::subscription_texts::SubscriptionTexts;
use super::templates::Templates;

#[derive(Debug, Clone)]
pub struct PageContext<'a> {
    pub site_title: &'a str,
    pub language: &'a str,
    /// The site's home, linked from the site name.
    pub home_url: &'a str,
    /// Where the "subscribe again" links point.
    pub subscribe_url: &'a str,
}

/// Which page to show.
#[derive(Debug, Clone)]
pub enum SubscriberPage<'a> {
    /// The form, again with what was typed and why it was refused.
    SubscribeForm {
        error: Option<&'a str>,
        email: &'a str,
        name: &'a str,
    },
    CheckInbox,
    RateLimited,
    /// A button that POSTs back to the page's own URL.
    ConfirmPrompt,
    Confirmed,
    AlreadyConfirmed,
    ConfirmLinkUnknown,
    ConfirmLinkExpired,
    ConfirmLinkUsed,
    UnsubscribePrompt {
        email: &'a str,
    },
    Unsubscribed,
    UnsubscribeLinkUnknown,
    ServerError,
}

#[derive(Serialize)]
struct PageView<'a> {
    language: &'a str,
    site_title: &'a str,
    home_url: &'a str,
    texts: &'static SubscriptionTexts,
    title: &'static str,
    error: Option<&'a str>,
    paragraphs: Vec<&'a str>,
    subscribe_form: Option<FormView<'a>>,
    button: Option<ButtonView>,
    link: Option<LinkView<'a>>,
}

#[derive(Serialize)]
struct FormView<'a> {
    /// Empty: the form posts to the URL it was served from, wherever the
    /// router is mounted.
    action: &'static str,
    email: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ButtonView {
    action: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct LinkView<'a> {
    href: &'a str,
    label: &'static str,
}

pub fn render_subscriber_page(
    page: &SubscriberPage,
    context: &PageContext,
    templates: &Templates,
) -> anyhow::Result<String> {
    let t = SubscriptionTexts::for_language(context.language);
    let button = |label| Some(ButtonView { action: "", label });
    let subscribe_again = Some(LinkView {
        href: context.subscribe_url,
        label: t.subscribe_again,
    });
    let (title, paragraphs, button, link) = match page {
        SubscriberPage::SubscribeForm { .. } => {
            (t.subscribe_title, vec![t.subscribe_intro], None, None)
        }
        SubscriberPage::CheckInbox => (t.check_inbox_title, vec![t.check_inbox_body], None, None),
        SubscriberPage::RateLimited => {
            (t.rate_limited_title, vec![t.rate_limited_body], None, None)
        }
        SubscriberPage::ConfirmPrompt => (
            t.confirm_title,
            vec![t.confirm_prompt],
            button(t.confirm_button),
            None,
        ),
        SubscriberPage::Confirmed => (t.confirmed_title, vec![t.confirmed_body], None, None),
        SubscriberPage::AlreadyConfirmed => (
            t.confirmed_title,
            vec![t.already_confirmed_body],
            None,
            None,
        ),
        SubscriberPage::ConfirmLinkUnknown => (
            t.link_invalid_title,
            vec![t.link_unknown_body],
            None,
            subscribe_again,
        ),
        SubscriberPage::ConfirmLinkExpired => (
            t.link_invalid_title,
            vec![t.link_expired_body],
            None,
            subscribe_again,
        ),
        SubscriberPage::ConfirmLinkUsed => (
            t.link_invalid_title,
            vec![t.link_used_body],
            None,
            subscribe_again,
        ),
        SubscriberPage::UnsubscribePrompt { email } => (
            t.unsubscribe_title,
            vec![t.unsubscribe_prompt, email],
            button(t.unsubscribe_button),
            None,
        ),
        SubscriberPage::Unsubscribed => (
            t.unsubscribed_title,
            vec![t.unsubscribed_body],
            None,
            subscribe_again,
        ),
        SubscriberPage::UnsubscribeLinkUnknown => (
            t.link_invalid_title,
            vec![t.unsubscribe_unknown_body],
            None,
            None,
        ),
        SubscriberPage::ServerError => {
            (t.server_error_title, vec![t.server_error_body], None, None)
        }
    };
    let (error, subscribe_form) = match page {
        SubscriberPage::SubscribeForm { error, email, name } => (
            *error,
            Some(FormView {
                action: "",
                email,
                name,
            }),
        ),
        _ => (None, None),
    };
    let view = PageView {
        language: context.language,
        site_title: context.site_title,
        home_url: context.home_url,
        texts: t,
        title,
        error,
        paragraphs,
        subscribe_form,
        button,
        link,
    };
    templates.render("subscriber_page.html.hbs", &view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(language: &str) -> PageContext<'_> {
        PageContext {
            site_title: "Weekly",
            language,
            home_url: "https://s.example/",
            subscribe_url: "https://s.example/subscribe",
        }
    }

    #[test]
    fn what_was_typed_comes_back_escaped() {
        let html = render_subscriber_page(
            &SubscriberPage::SubscribeForm {
                error: Some("bad"),
                email: "\"><script>alert(1)</script>",
                name: "<b>Eve</b>",
            },
            &context("en"),
            &Templates::builtin(),
        )
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(html.contains("&lt;b&gt;Eve&lt;/b&gt;"));
        assert!(html.contains("name=\"website\""), "honeypot field");
    }

    #[test]
    fn pages_speak_the_site_language() {
        let html = render_subscriber_page(
            &SubscriberPage::ConfirmPrompt,
            &context("zh-CN"),
            &Templates::builtin(),
        )
        .unwrap();
        assert!(html.contains("确认订阅") && html.contains("<html lang=\"zh-CN\">"));
        assert!(html.contains("method=\"post\""));
        let html = render_subscriber_page(
            &SubscriberPage::ConfirmLinkExpired,
            &context("en"),
            &Templates::builtin(),
        )
        .unwrap();
        assert!(html.contains("expired") && html.contains("href=\"https://s.example/subscribe\""));
    }
}
