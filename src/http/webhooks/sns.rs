//! Amazon SNS message signatures, as SNS documents them ("Verifying the
//! signatures of Amazon SNS messages"): the canonical string of the
//! message's fields, RSA PKCS#1 v1.5 with SHA-1 (SignatureVersion 1) or
//! SHA-256 (2), under the certificate at `SigningCertURL`.
//!
//! Trust comes from where the certificate is fetched: only over HTTPS
//! (so TLS, with the web's roots, vouches for the host) and only from a
//! host in `[webhooks] ses_certificate_hosts`. The one exception is a
//! loopback host written out literally in that list (no wildcard), which
//! may be fetched over plain HTTP: loopback traffic never leaves the
//! machine, so TLS would add nothing, and it takes an explicit line of
//! config (the tests' local certificate server) — the default list has no
//! such host.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde::Deserialize;
use url::Url;
use x509_cert::der::{DecodePem, Encode};
use x509_cert::Certificate;

use super::verify::Refusal;
use super::WebhookError;
use crate::store::Millis;

/// An SNS message as POSTed to an HTTP(S) subscriber.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
}

/// The three kinds of SNS message an HTTP subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsKind {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl SnsMessage {
    pub fn kind(&self) -> Option<SnsKind> {
        match self.kind.as_str() {
            "Notification" => Some(SnsKind::Notification),
            "SubscriptionConfirmation" => Some(SnsKind::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(SnsKind::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The signed `Timestamp` (ISO 8601) in Unix seconds.
    pub fn timestamp_secs(&self) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(&self.timestamp)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// The string SNS signs: each field's name and value on lines of their
/// own, in this order; `Subject` only when the notification has one. A
/// confirmation without `SubscribeURL` or `Token` cannot be verified.
pub fn sns_string_to_sign(message: &SnsMessage) -> Option<String> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("Message", &message.message),
        ("MessageId", &message.message_id),
    ];
    match message.kind()? {
        SnsKind::Notification => {
            if let Some(subject) = &message.subject {
                fields.push(("Subject", subject));
            }
            fields.push(("Timestamp", &message.timestamp));
        }
        SnsKind::SubscriptionConfirmation | SnsKind::UnsubscribeConfirmation => {
            fields.push(("SubscribeURL", message.subscribe_url.as_deref()?));
            fields.push(("Timestamp", &message.timestamp));
            fields.push(("Token", message.token.as_deref()?));
        }
    }
    fields.push(("TopicArn", &message.topic_arn));
    fields.push(("Type", &message.kind));
    let mut text = String::new();
    for (name, value) in fields {
        text.push_str(name);
        text.push('\n');
        text.push_str(value);
        text.push('\n');
    }
    Some(text)
}

/// Which digest a `SignatureVersion` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureDigest {
    Sha1,
    Sha256,
}

/// Whether `signature_b64` is `key`'s signature of `text`.
fn signature_matches(
    key: &RsaPublicKey,
    version: SignatureDigest,
    text: &[u8],
    signature_b64: &str,
) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
        return false;
    };
    match version {
        SignatureDigest::Sha1 => VerifyingKey::<sha1::Sha1>::new(key.clone())
            .verify(text, &signature)
            .is_ok(),
        SignatureDigest::Sha256 => VerifyingKey::<sha2::Sha256>::new(key.clone())
            .verify(text, &signature)
            .is_ok(),
    }
}

/// A host pattern from `ses_certificate_hosts`: labels, where `*` stands
/// for exactly one label (`sns.*.amazonaws.com` matches
/// `sns.us-east-1.amazonaws.com`, not `evil.com.sns.x.amazonaws.com`).
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let host: Vec<&str> = host.split('.').collect();
    pattern.len() == host.len()
        && pattern
            .iter()
            .zip(&host)
            .all(|(p, h)| !h.is_empty() && (*p == "*" || p.eq_ignore_ascii_case(h)))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether SNS's `SigningCertURL` or `SubscribeURL` may be fetched: HTTPS
/// to an allow-listed host, or plain HTTP to a loopback host listed
/// literally (see the module's note). No user info, no odd ports hidden in
/// a pattern: the host alone is compared.
pub fn allowed_url(text: &str, allowed_hosts: &[String]) -> Result<Url, Refusal> {
    let url = Url::parse(text).map_err(|_| Refusal::UntrustedUrl)?;
    let host = url
        .host_str()
        .ok_or(Refusal::UntrustedUrl)?
        .to_ascii_lowercase();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::UntrustedUrl);
    }
    let allowed = match url.scheme() {
        "https" => allowed_hosts.iter().any(|p| host_matches(p, &host)),
        "http" => is_loopback(&host) && allowed_hosts.iter().any(|p| p.eq_ignore_ascii_case(&host)),
        _ => false,
    };
    if allowed {
        Ok(url)
    } else {
        Err(Refusal::UntrustedUrl)
    }
}

/// The largest certificate fetched: a PEM certificate is 2 kB or so.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Certificates kept; SNS uses one per region at a time, so this is never
/// reached except by churn, and then the cache starts over.
const MAX_CACHED_CERTIFICATES: usize = 32;

/// Fetches, checks and caches SNS signing certificates.
pub struct SnsVerifier {
    client: reqwest::Client,
    allowed_hosts: Vec<String>,
    keys: Mutex<HashMap<String, CachedKey>>,
}

#[derive(Clone)]
struct CachedKey {
    key: RsaPublicKey,
    not_before: Millis,
    not_after: Millis,
}

impl SnsVerifier {
    pub fn new(allowed_hosts: &[String]) -> anyhow::Result<SnsVerifier> {
        let client = reqwest::Client::builder()
            // A redirect could lead off the allow-listed host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client for SNS")?;
        Ok(SnsVerifier {
            client,
            allowed_hosts: allowed_hosts.to_vec(),
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `message`'s signature; `now` checks the certificate's
    /// validity period.
    pub async fn verify(&self, message: &SnsMessage, now: Millis) -> Result<(), WebhookError> {
        let digest = match message.signature_version.as_str() {
            "1" => SignatureDigest::Sha1,
            "2" => SignatureDigest::Sha256,
            _ => return Err(Refusal::BadSignature.into()),
        };
        let text = sns_string_to_sign(message).ok_or(Refusal::Unsigned)?;
        let url = allowed_url(&message.signing_cert_url, &self.allowed_hosts)?;
        if !url.path().ends_with(".pem") {
            return Err(Refusal::UntrustedUrl.into());
        }
        let key = self.key_for(&url, now).await?;
        if signature_matches(&key, digest, text.as_bytes(), &message.signature) {
            Ok(())
        } else {
            Err(Refusal::BadSignature.into())
        }
    }

    async fn key_for(&self, url: &Url, now: Millis) -> Result<RsaPublicKey, WebhookError> {
        let cached = self.lock_keys().get(url.as_str()).cloned();
        let cached = match cached {
            Some(cached) => cached,
            None => {
                let fetched = self.fetch_key(url).await?;
                let mut keys = self.lock_keys();
                if keys.len() >= MAX_CACHED_CERTIFICATES {
                    keys.clear();
                }
                keys.insert(url.as_str().to_string(), fetched.clone());
                fetched
            }
        };
        if now < cached.not_before || now > cached.not_after {
            // Expired or not yet valid: a message signed with it is not
            // trusted, and the next message refetches (SNS rotates keys).
            self.lock_keys().remove(url.as_str());
            return Err(Refusal::BadSignature.into());
        }
        Ok(cached.key)
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKey>> {
        // A panic while holding the lock left at worst a stale cache entry.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn fetch_key(&self, url: &Url) -> Result<CachedKey, WebhookError> {
        let pem = self
            .get_capped(url, MAX_CERTIFICATE_BYTES)
            .await
            .map_err(|e| {
                // A 4xx is an answer: there is no certificate at that URL
                // (a made-up path on an allowed host), so the message is
                // refused. Anything else may pass; SNS will retry.
                let missing = e
                    .downcast_ref::<reqwest::Error>()
                    .and_then(reqwest::Error::status)
                    .is_some_and(|status| status.is_client_error());
                if missing {
                    WebhookError::Refused(Refusal::BadSignature)
                } else {
                    WebhookError::Unavailable(format!("fetching the SNS certificate: {e:#}"))
                }
            })?;
        parse_certificate(&pem).map_err(|e| {
            tracing::warn!(error = ?format!("{e:#}"), "SNS signing certificate unusable");
            WebhookError::Refused(Refusal::BadSignature)
        })
    }

    /// GETs `SubscribeURL`, which is how an SNS subscription is confirmed.
    pub async fn confirm_subscription(&self, subscribe_url: &str) -> Result<(), WebhookError> {
        let url = allowed_url(subscribe_url, &self.allowed_hosts)?;
        self.get_capped(&url, MAX_CERTIFICATE_BYTES)
            .await
            .map_err(|e| {
                WebhookError::Unavailable(format!("confirming the SNS subscription: {e:#}"))
            })?;
        Ok(())
    }

    /// A GET that must answer 2xx, read up to `max_bytes`.
    async fn get_capped(&self, url: &Url, max_bytes: usize) -> anyhow::Result<Vec<u8>> {
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > max_bytes {
                anyhow::bail!("the response is larger than {max_bytes} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The RSA key and validity period of a PEM certificate.
fn parse_certificate(pem: &[u8]) -> anyhow::Result<CachedKey> {
    let certificate = Certificate::from_pem(pem).context("not a PEM certificate")?;
    let tbs = &certificate.tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .context("the certificate's public key")?;
    let key = RsaPublicKey::from_public_key_der(&spki).context("not an RSA public key")?;
    let millis = |time: &x509_cert::time::Time| {
        i64::try_from(time.to_unix_duration().as_millis()).unwrap_or(i64::MAX)
    };
    Ok(CachedKey {
        key,
        not_before: millis(&tbs.validity.not_before),
        not_after: millis(&tbs.validity.not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(subject: Option<&str>) -> SnsMessage {
        SnsMessage {
            kind: "Notification".into(),
            message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".into(),
            topic_arn: "arn:aws:sns:us-west-2:123456789012:MyTopic".into(),
            subject: subject.map(str::to_string),
            message: "Hello world!".into(),
            timestamp: "2012-05-02T00:54:06.655Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem".into(),
            subscribe_url: None,
            token: None,
        }
    }

    #[test]
    fn a_notification_signs_its_fields_in_order_with_subject_when_present() {
        assert_eq!(
            sns_string_to_sign(&notification(Some("My First Message"))).unwrap(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Subject\nMy First Message\nTimestamp\n2012-05-02T00:54:06.655Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        assert_eq!(
            sns_string_to_sign(&notification(None)).unwrap(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             Timestamp\n2012-05-02T00:54:06.655Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
    }

    #[test]
    fn a_confirmation_signs_its_url_and_token_and_needs_both() {
        let mut message = notification(Some("ignored for confirmations"));
        message.kind = "SubscriptionConfirmation".into();
        message.subscribe_url = Some(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=abc".into(),
        );
        message.token = Some("abc".into());
        assert_eq!(
            sns_string_to_sign(&message).unwrap(),
            "Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
             SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=abc\n\
             Timestamp\n2012-05-02T00:54:06.655Z\nToken\nabc\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nSubscriptionConfirmation\n"
        );
        message.token = None;
        assert_eq!(sns_string_to_sign(&message), None);
        message.kind = "SomethingElse".into();
        assert_eq!(sns_string_to_sign(&message), None);
    }

    #[test]
    fn certificate_urls_must_be_https_on_an_allowed_host() {
        let hosts = vec!["sns.*.amazonaws.com".to_string(), "127.0.0.1".to_string()];
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
            "https://SNS.eu-west-1.AMAZONAWS.com/SimpleNotificationService-x.pem",
            "http://127.0.0.1:8123/cert.pem",
            "https://127.0.0.1/cert.pem",
        ] {
            assert!(allowed_url(good, &hosts).is_ok(), "{good} was refused");
        }
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.a.b.amazonaws.com/x.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
            "http://localhost/x.pem",
            "http://127.0.0.2/x.pem",
            "ftp://sns.us-east-1.amazonaws.com/x.pem",
            "not a url",
        ] {
            assert_eq!(
                allowed_url(bad, &hosts),
                Err(Refusal::UntrustedUrl),
                "{bad}"
            );
        }
        // A wildcard never lets plain HTTP in, even for loopback.
        let wildcard = vec!["*.0.0.1".to_string()];
        assert!(allowed_url("http://127.0.0.1/x.pem", &wildcard).is_err());
    }
}
