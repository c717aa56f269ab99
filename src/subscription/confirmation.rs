//! Queuing a confirmation mail. The finished message goes into the durable
//! queue in the caller's transaction; the send worker delivers it. Nothing
//! here talks to SMTP, so a slow or absent mail server never slows down or
//! fails a sign-up.

use std::time::SystemTime;

use crate::domain::{SubscriberEmail, Token};
use crate::render::{self, TransactionalHeaders};
use crate::store::{confirmation_tokens, deliveries, Millis, Tx};

use super::{confirm_url, Subscriptions};

impl Subscriptions {
    /// A new token (stored as its hash, expiring after the configured TTL)
    /// and the mail carrying its link, queued.
    pub(super) async fn queue_confirmation(
        &self,
        tx: &mut Tx<'_>,
        subscriber_id: i64,
        email: &SubscriberEmail,
        now: Millis,
    ) -> anyhow::Result<()> {
        let token = Token::generate();
        let ttl_millis = i64::try_from(self.settings.server.confirm_token_ttl_hours)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        confirmation_tokens::insert_confirmation_token(
            tx,
            &token.hash(),
            subscriber_id,
            now,
            now.saturating_add(ttl_millis),
        )
        .await?;
        let url = confirm_url(&self.settings.site.base_url, &token);
        let message_id = format!(
            "<herald.confirm.{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.from.email.domain()
        );
        let headers = TransactionalHeaders {
            from: &self.from,
            reply_to: self.reply_to.as_ref(),
            message_id: message_id.clone(),
            date: SystemTime::now(),
        };
        let message = render::build_confirmation_message(
            &self.confirmation,
            email.address(),
            url.as_str(),
            &headers,
        )?;
        deliveries::enqueue_transactional(
            tx,
            "confirmation",
            Some(subscriber_id),
            email.as_str(),
            &message_id,
            &message.formatted(),
            now,
        )
        .await?;
        Ok(())
    }
}
