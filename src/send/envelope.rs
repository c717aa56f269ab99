//! The envelope sender (MAIL FROM, which becomes Return-Path): where
//! bounces go. With `[bounces] return_path` it names the delivery (VERP).

use crate::domain::Verp;

use super::error::SendError;

#[derive(Debug, Clone)]
pub enum EnvelopeSender {
    /// `[mail] from`, the same for every message.
    Fixed(lettre::Address),
    /// `return_path+TAG@domain`, TAG naming the delivery row.
    Verp(Verp),
}

impl From<lettre::Address> for EnvelopeSender {
    fn from(address: lettre::Address) -> Self {
        EnvelopeSender::Fixed(address)
    }
}

/// A fixed sender from its address.
impl std::str::FromStr for EnvelopeSender {
    type Err = lettre::address::AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(EnvelopeSender::Fixed)
    }
}

impl EnvelopeSender {
    /// `[bounces] return_path` tagged with the key when it is set, else
    /// `from`.
    pub fn new(from: lettre::Address, verp: Option<Verp>) -> Self {
        match verp {
            Some(verp) => EnvelopeSender::Verp(verp),
            None => EnvelopeSender::Fixed(from),
        }
    }

    /// The sender of one message. Mail that is no delivery (a test copy)
    /// gets the untagged return path: its bounces still reach Herald.
    pub fn for_delivery(&self, delivery_id: Option<i64>) -> Result<lettre::Address, SendError> {
        let text = match (self, delivery_id) {
            (EnvelopeSender::Fixed(address), _) => return Ok(address.clone()),
            (EnvelopeSender::Verp(verp), Some(id)) => verp.address_for(id),
            (EnvelopeSender::Verp(verp), None) => verp.return_path().address(),
        };
        text.parse()
            .map_err(|e| SendError::permanent(format!("envelope sender {text:?}: {e}")))
    }
}

/// The VERP codec when `[bounces] return_path` is set: the key is made on
/// first use and kept in the database, so every process on this list (a
/// send, `herald serve`, `herald bounces process`) signs and checks with
/// the same one.
pub async fn load_verp(
    settings: &crate::config::Settings,
    store: &crate::store::Store,
) -> anyhow::Result<Option<Verp>> {
    let Some(return_path) = settings.return_path()? else {
        return Ok(None);
    };
    let mut tx = store.begin().await?;
    let key = crate::store::secrets::verp_key(&mut tx, crate::store::now_millis()).await?;
    tx.commit().await?;
    Ok(Some(Verp::new(return_path, key)))
}
