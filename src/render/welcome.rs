//! The welcome mail sent once a subscription is confirmed: rendered from
//! templates like the issue, with the subscriber's unsubscribe link in its
//! footer and in List-Unsubscribe (it is list mail from then on).

use lettre::message::MultiPart;
use serde::Serialize;

use super::confirmation::{transactional_builder, TransactionalHeaders};
use super::email::mjml_to_html;
use super::message::with_list_headers;
use super::personalize::{marker_values, Personalized, Recipient};
use super::subscription_texts::SubscriptionTexts;
use super::templates::Templates;

pub struct WelcomeContext<'a> {
    pub site_title: &'a str,
    pub language: &'a str,
    /// The archive's front page.
    pub archive_url: &'a str,
}

/// The welcome mail with per-recipient markers left in.
#[derive(Debug, Clone)]
pub struct WelcomeEmail {
    pub subject: String,
    html: Personalized,
    text: Personalized,
    archive_url: String,
}

#[derive(Serialize)]
struct WelcomeView<'a> {
    site_title: &'a str,
    language: &'a str,
    subject: &'a str,
    texts: &'static SubscriptionTexts,
    archive_url: &'a str,
    unsubscribe_url: &'static str,
    recipient: &'static str,
}

pub fn render_welcome(
    context: &WelcomeContext,
    templates: &Templates,
) -> anyhow::Result<WelcomeEmail> {
    let texts = SubscriptionTexts::for_language(context.language);
    let subject = texts.welcome_subject.replace("{site}", context.site_title);
    let (unsubscribe_url, _, recipient) = marker_values();
    let view = WelcomeView {
        site_title: context.site_title,
        language: context.language,
        subject: &subject,
        texts,
        archive_url: context.archive_url,
        unsubscribe_url,
        recipient,
    };
    let html = mjml_to_html(&templates.render("welcome.mjml.hbs", &view)?)?;
    let text = templates.render("welcome.txt.hbs", &view)?;
    Ok(WelcomeEmail {
        subject,
        html: Personalized::new(&html, true),
        text: Personalized::new(&text, false),
        archive_url: context.archive_url.to_string(),
    })
}

/// The list a welcome belongs to, for its List-* headers.
pub struct ListIdentity<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
}

/// The whole MIME message, to the bare address.
pub fn build_welcome_message(
    email: &WelcomeEmail,
    to: &lettre::Address,
    unsubscribe_url: &str,
    headers: &TransactionalHeaders,
    list: &ListIdentity,
) -> anyhow::Result<lettre::Message> {
    let values = Recipient {
        email: to.as_ref(),
        unsubscribe_url,
        web_url: &email.archive_url,
        click_query: "",
    };
    let builder = transactional_builder(headers, to, &email.subject);
    let builder = with_list_headers(
        builder,
        list.name,
        list.id,
        unsubscribe_url,
        list.unsubscribe_mailto,
    );
    Ok(builder.multipart(MultiPart::alternative_plain_html(
        email.text.fill(&values),
        email.html.fill(&values),
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_the_site_language_with_archive_and_unsubscribe_links() {
        for (language, words) in [("en", "You are subscribed"), ("zh-CN", "订阅成功")] {
            let email = render_welcome(
                &WelcomeContext {
                    site_title: "Weekly & Co",
                    language,
                    archive_url: "https://s.example/",
                },
                &Templates::builtin(),
            )
            .unwrap();
            let values = Recipient {
                email: "a@example.com",
                unsubscribe_url: "https://s.example/unsubscribe/tok",
                web_url: "https://s.example/",
                click_query: "",
            };
            let (html, text) = (email.html.fill(&values), email.text.fill(&values));
            assert!(html.contains(words) && text.contains(words), "{language}");
            assert!(html.contains("href=\"https://s.example/unsubscribe/tok\""));
            assert!(text.contains("https://s.example/unsubscribe/tok"));
            assert!(html.contains("Weekly &amp; Co"));
            assert!(!html.contains("%%herald:") && !text.contains("%%herald:"));
        }
    }
}

#[cfg(test)]
mod punctuation_tests {
    use super::*;
    use crate::render::subscription_texts::{mixed_punctuation, visible_text};

    #[test]
    fn the_chinese_welcome_uses_full_width_punctuation_throughout() {
        let email = render_welcome(
            &WelcomeContext {
                site_title: "云原生周报",
                language: "zh-CN",
                archive_url: "https://news.example/",
            },
            &Templates::builtin(),
        )
        .unwrap();
        let html = visible_text(&email.html.template());
        for (part, words) in [
            ("subject", &email.subject),
            ("text", &email.text.template()),
            ("html", &html),
        ] {
            assert_eq!(mixed_punctuation(words), Vec::<String>::new(), "{part}");
        }
    }
}
