//! One recipient's copy of an email as a MIME message, with every header a
//! real send carries. lettre does the MIME work: multipart/alternative,
//! RFC 2047 subjects, line folding, transfer encodings.

use std::time::SystemTime;

use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use super::email::RenderedEmail;
use super::personalize::Recipient;

/// The envelope-level facts of one message.
#[derive(Debug, Clone)]
pub struct MessageHeaders<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub to: Mailbox,
    /// The newsletter's name, shown in List-Id when it is plain ASCII.
    pub list_name: &'a str,
    /// `weekly.example.com`, the List-Id identifier.
    pub list_id: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
    /// `<unique@domain>`, so retries of one delivery keep one id.
    pub message_id: String,
    pub date: SystemTime,
}

pub fn build_message(
    email: &RenderedEmail,
    recipient: &Recipient,
    headers: &MessageHeaders,
) -> anyhow::Result<lettre::Message> {
    let mut builder = lettre::Message::builder()
        .from(headers.from.clone())
        .to(headers.to.clone())
        .subject(email.subject.clone())
        .date(headers.date)
        .message_id(Some(headers.message_id.clone()));
    if let Some(reply_to) = headers.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    builder = with_list_headers(
        builder,
        headers.list_name,
        headers.list_id,
        recipient.unsubscribe_url,
        headers.unsubscribe_mailto,
    );
    let html = Body::dangerous_pre_encoded(
        email.html_encoded.fill(recipient),
        ContentTransferEncoding::QuotedPrintable,
    );
    let text =
        match &email.text_encoded {
            Some(encoded) => SinglePart::builder().header(ContentType::TEXT_PLAIN).body(
                Body::dangerous_pre_encoded(
                    encoded.fill(recipient),
                    ContentTransferEncoding::QuotedPrintable,
                ),
            ),
            None => SinglePart::plain(email.text.fill(recipient)),
        };
    let message = builder.multipart(
        MultiPart::alternative().singlepart(text).singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        ),
    )?;
    Ok(message)
}

/// List-Id, List-Unsubscribe (the HTTPS link, and a mailto when there is
/// one) and RFC 8058's List-Unsubscribe-Post, for any mail of the list.
pub fn with_list_headers(
    builder: lettre::message::MessageBuilder,
    list_name: &str,
    list_id: &str,
    unsubscribe_url: &str,
    unsubscribe_mailto: Option<&str>,
) -> lettre::message::MessageBuilder {
    // The phrase goes in quotes (a title may hold "," or "."), and only when
    // plain ASCII: an RFC 2047 word is not allowed inside a quoted string.
    let printable = |c: char| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\';
    let list_id = if !list_name.is_empty() && list_name.chars().all(printable) {
        format!("\"{list_name}\" <{list_id}>")
    } else {
        format!("<{list_id}>")
    };
    let mut unsubscribe = format!("<{unsubscribe_url}>");
    if let Some(mailto) = unsubscribe_mailto {
        unsubscribe.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe>"));
    }
    builder
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Id"),
            list_id,
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            unsubscribe,
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click".to_string(),
        ))
}
