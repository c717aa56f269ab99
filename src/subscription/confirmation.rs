//! Confirmation mail. Signing up only queues it (in the caller's
//! transaction, so a subscriber and their mail are written together); the
//! token and the message are made when the transactional worker sends it.
//! So the database never holds a usable link: the token lives only in the
//! mail and, stored, as its SHA-256. Nothing here talks to SMTP, so a slow
//! or absent mail server never slows down or fails a sign-up.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::domain::{SubscriberEmail, Token};
use crate::render::{self, TransactionalHeaders};
use crate::send::worker::TransactionalMail;
use crate::send::SendError;
use crate::store::deliveries::ClaimedDelivery;
use crate::store::subscribers::{self, SubscriberState};
use crate::store::{confirmation_tokens, deliveries, now_millis, Millis, Store, Tx};

use super::{confirm_url, Subscriptions};

/// The `kind` of a confirmation row in the delivery queue.
pub const CONFIRMATION: &str = "confirmation";
/// The `kind` of a welcome row: sent once a subscription is confirmed.
pub const WELCOME: &str = "welcome";

impl Subscriptions {
    /// Queues a confirmation mail for a pending subscriber.
    pub(super) async fn queue_confirmation(
        &self,
        tx: &mut Tx<'_>,
        subscriber_id: i64,
        email: &SubscriberEmail,
        now: Millis,
    ) -> anyhow::Result<()> {
        let message_id = format!(
            "<herald.confirm.{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.from.email.domain()
        );
        deliveries::enqueue_transactional(
            tx,
            CONFIRMATION,
            Some(subscriber_id),
            email.as_str(),
            &message_id,
            None,
            now,
        )
        .await?;
        Ok(())
    }

    /// Queues the welcome mail of a subscriber who just confirmed.
    pub(super) async fn queue_welcome(
        &self,
        tx: &mut Tx<'_>,
        subscriber_id: i64,
        now: Millis,
    ) -> sqlx::Result<()> {
        let Some(subscriber) = subscribers::find_subscriber_by_id(tx, subscriber_id).await? else {
            return Ok(());
        };
        let message_id = format!(
            "<herald.welcome.{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.from.email.domain()
        );
        deliveries::enqueue_transactional(
            tx,
            WELCOME,
            Some(subscriber_id),
            &subscriber.email,
            &message_id,
            None,
            now,
        )
        .await?;
        Ok(())
    }

    /// The welcome mail, with the subscriber's unsubscribe link. `None`
    /// when they are no longer active: a welcome after leaving would be odd.
    pub async fn prepare_welcome(
        &self,
        tx: &mut Tx<'_>,
        subscriber_id: i64,
        message_id: &str,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(subscriber) = subscribers::find_subscriber_by_id(tx, subscriber_id).await? else {
            return Ok(None);
        };
        if subscriber.state != SubscriberState::Active {
            return Ok(None);
        }
        let email = SubscriberEmail::parse(&subscriber.email)?;
        let unsubscribe =
            super::unsubscribe_url(&self.settings.site.base_url, &subscriber.unsubscribe_token);
        let headers = TransactionalHeaders {
            from: &self.from,
            reply_to: self.reply_to.as_ref(),
            message_id: message_id.to_string(),
            date: SystemTime::now(),
        };
        let list = render::ListIdentity {
            name: &self.settings.site.title,
            id: &self.settings.mail.list_id,
            unsubscribe_mailto: self.settings.mail.unsubscribe_mailto.as_deref(),
        };
        let message = render::build_welcome_message(
            &self.welcome,
            email.address(),
            unsubscribe.as_str(),
            &headers,
            &list,
        )?;
        Ok(Some(self.signed(message)))
    }

    /// A new token (stored as its hash, expiring after the configured TTL)
    /// and the mail carrying its link. `None` when the subscriber is no
    /// longer pending (confirmed, left or erased since): nothing to send.
    pub async fn prepare_confirmation(
        &self,
        tx: &mut Tx<'_>,
        subscriber_id: i64,
        message_id: &str,
        now: Millis,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(subscriber) = subscribers::find_subscriber_by_id(tx, subscriber_id).await? else {
            return Ok(None);
        };
        if subscriber.state != SubscriberState::Pending {
            return Ok(None);
        }
        let email = SubscriberEmail::parse(&subscriber.email)?;
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
        let headers = TransactionalHeaders {
            from: &self.from,
            reply_to: self.reply_to.as_ref(),
            message_id: message_id.to_string(),
            date: SystemTime::now(),
        };
        let message = render::build_confirmation_message(
            &self.confirmation,
            email.address(),
            url.as_str(),
            &headers,
        )?;
        Ok(Some(self.signed(message)))
    }

    /// The message's bytes, DKIM-signed when DKIM is configured.
    fn signed(&self, mut message: lettre::Message) -> Vec<u8> {
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        message.formatted()
    }
}

/// The subscription rules as the send stage's [`TransactionalMail`].
pub struct SubscriberMail {
    store: Store,
    subscriptions: Arc<Subscriptions>,
}

impl SubscriberMail {
    pub fn new(store: Store, subscriptions: Arc<Subscriptions>) -> Self {
        SubscriberMail {
            store,
            subscriptions,
        }
    }

    async fn make(&self, delivery: &ClaimedDelivery) -> Result<Vec<u8>, SendError> {
        let Some(subscriber_id) = delivery.subscriber_id else {
            return Err(SendError::permanent(
                "the subscriber was erased; nothing to send",
            ));
        };
        let transient =
            |e: anyhow::Error| SendError::transient(format!("preparing the mail: {e:#}"));
        // What the mail needs (a confirmation's token) is committed before
        // the mail goes: a link that arrives always works.
        let mut tx = self.store.begin().await.map_err(|e| transient(e.into()))?;
        let message = match delivery.kind.as_str() {
            CONFIRMATION => {
                self.subscriptions
                    .prepare_confirmation(
                        &mut tx,
                        subscriber_id,
                        &delivery.message_id,
                        now_millis(),
                    )
                    .await
            }
            WELCOME => {
                self.subscriptions
                    .prepare_welcome(&mut tx, subscriber_id, &delivery.message_id)
                    .await
            }
            other => {
                return Err(SendError::permanent(format!(
                    "no {other} mail is made at send time"
                )))
            }
        }
        .map_err(transient)?;
        tx.commit().await.map_err(|e| transient(e.into()))?;
        message.ok_or_else(|| {
            SendError::permanent("the subscriber's state changed since; nothing to send")
        })
    }
}

impl TransactionalMail for SubscriberMail {
    fn build<'a>(
        &'a self,
        delivery: &'a ClaimedDelivery,
    ) -> BoxFuture<'a, Result<Vec<u8>, SendError>> {
        Box::pin(self.make(delivery))
    }
}
