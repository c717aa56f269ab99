//! Builds each recipient's copy of a campaign's email.

use std::time::SystemTime;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::message::dkim::DkimConfig;
use lettre::message::Mailbox;
use url::Url;

use super::envelope::EnvelopeSender;
use crate::config::Settings;
use crate::domain::ClickKey;
use crate::render::{build_message, MessageHeaders, Recipient, RenderedEmail};

/// Everything fixed for a campaign, so that per recipient only the
/// personalisation and the MIME encoding remain.
pub struct MessageFactory {
    email: RenderedEmail,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_name: String,
    list_id: String,
    unsubscribe_mailto: Option<String>,
    base_url: Url,
    web_url: String,
    dkim: Option<DkimConfig>,
    sender: EnvelopeSender,
    /// Signs each copy's click token (`[tracking] per_subscriber`).
    click_key: Option<ClickKey>,
}

impl MessageFactory {
    pub fn new(settings: &Settings, email: RenderedEmail, web_url: String) -> anyhow::Result<Self> {
        let from = settings.from_mailbox()?;
        let reply_to = settings.reply_to_mailbox()?;
        Ok(MessageFactory {
            sender: EnvelopeSender::Fixed(from.email.clone()),
            email,
            from,
            reply_to,
            list_name: settings.site.title.clone(),
            list_id: settings.mail.list_id.clone(),
            unsubscribe_mailto: settings.mail.unsubscribe_mailto.clone(),
            base_url: settings.site.base_url.clone(),
            web_url,
            dkim: settings.dkim()?,
            click_key: None,
        })
    }

    /// Bounces go to `sender` instead of `[mail] from` (VERP).
    pub fn with_envelope_sender(mut self, sender: EnvelopeSender) -> Self {
        self.sender = sender;
        self
    }

    /// Tracked links carry a token naming the delivery (per-subscriber
    /// clicks); without this they carry nothing of the recipient's.
    pub fn with_click_key(mut self, key: ClickKey) -> Self {
        self.click_key = Some(key);
        self
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    pub fn unsubscribe_url(&self, token: &str) -> String {
        self.base_url
            .join(&format!("unsubscribe/{token}"))
            .map(String::from)
            .unwrap_or_default()
    }

    /// One recipient's message, signed when DKIM is configured. The
    /// envelope sender names `delivery_id` when VERP is on.
    pub fn build(
        &self,
        delivery_id: Option<i64>,
        recipient: &str,
        unsubscribe_token: &str,
        message_id: &str,
    ) -> anyhow::Result<(Envelope, Vec<u8>)> {
        let unsubscribe_url = self.unsubscribe_url(unsubscribe_token);
        let to: Mailbox = recipient
            .parse()
            .with_context(|| format!("recipient {recipient:?} is not a valid address"))?;
        let headers = MessageHeaders {
            from: &self.from,
            reply_to: self.reply_to.as_ref(),
            to,
            list_name: &self.list_name,
            list_id: &self.list_id,
            unsubscribe_mailto: self.unsubscribe_mailto.as_deref(),
            message_id: message_id.to_string(),
            date: SystemTime::now(),
        };
        // Test copies and dry runs have no delivery, so no token.
        let click_query = match (&self.click_key, delivery_id) {
            (Some(key), Some(id)) => format!("?s={}", key.token_for(id)),
            _ => String::new(),
        };
        let values = Recipient {
            email: recipient,
            unsubscribe_url: &unsubscribe_url,
            web_url: &self.web_url,
            click_query: &click_query,
        };
        let mut message = build_message(&self.email, &values, &headers)?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        let sender = self.sender.for_delivery(delivery_id)?;
        let envelope = Envelope::new(Some(sender), message.envelope().to().to_vec())
            .context("the message's envelope")?;
        Ok((envelope, message.formatted()))
    }
}
