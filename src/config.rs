//! Settings from `herald.toml` plus the `HERALD_*` environment.
//!
//! Every key has a default, so Herald runs with no config file at all (the
//! quick start relies on that). Relative paths are resolved against the
//! folder that holds the config file, so `herald --config site/herald.toml`
//! works from anywhere. Secrets are never read from the file: only from the
//! environment, wrapped in [`Secret`] so they never reach a log line.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use url::Url;

/// A value that must never be printed: `Debug` shows `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub site: SiteSettings,
    pub paths: PathSettings,
    pub mail: MailSettings,
    pub smtp: SmtpSettings,
    pub send: SendSettings,
    pub feeds: FeedSettings,
    pub server: ServerSettings,
    pub bounces: BounceSettings,
    pub webhooks: WebhookSettings,
    /// Folder of the config file; relative paths are taken from here.
    #[serde(skip)]
    pub root: PathBuf,
    /// `HERALD_SMTP_PASSWORD`.
    #[serde(skip)]
    pub smtp_password: Option<Secret>,
    /// `HERALD_IMAP_PASSWORD`: the bounce mailbox's password.
    #[serde(skip)]
    pub imap_password: Option<Secret>,
    /// The webhook secrets, each from its own `HERALD_*` variable.
    #[serde(skip)]
    pub webhook_secrets: WebhookSecrets,
}

/// What happens after the hand-off: bounces and complaints (README:
/// "Bounces and complaints").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BounceSettings {
    /// The VERP return path: each message's envelope sender becomes
    /// `local+TAG@domain`, TAG naming its delivery. Unset: `[mail] from`.
    pub return_path: Option<String>,
    /// Soft bounces (full mailbox, greylisting) tolerated within
    /// `soft_bounce_days` before the subscriber is marked bounced.
    pub soft_bounce_limit: u32,
    pub soft_bounce_days: u32,
    /// Days a report's raw message is kept, for audit and correction.
    pub keep_days: u32,
    /// `imaps://user@host:993/INBOX`: a bounce mailbox `herald serve`
    /// polls (password in `HERALD_IMAP_PASSWORD`). Unset: no polling.
    pub imap_url: Option<String>,
    /// Where a processed report is moved.
    pub imap_processed_folder: String,
    pub imap_poll_secs: u64,
    /// A PEM file of extra CA certificates to trust for the IMAP server
    /// (a private CA); the system's web roots are always trusted.
    pub imap_ca_file: Option<PathBuf>,
}

/// Provider webhooks that report bounces and complaints (served by
/// `herald serve` under `/webhooks/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Requests older (or newer) than this are refused as replays.
    pub max_age_secs: u64,
    /// Amazon SNS topics whose notifications are accepted; none: the SES
    /// endpoint is off.
    pub ses_topic_arns: Vec<String>,
    /// Hosts the SNS signing certificate may be fetched from.
    pub ses_certificate_hosts: Vec<String>,
    /// The user of Postmark's basic auth (the password in
    /// `HERALD_POSTMARK_WEBHOOK_PASSWORD`).
    pub postmark_username: Option<String>,
}

/// Webhook secrets; an endpoint whose secret is unset is off (404).
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    /// `HERALD_MAILGUN_SIGNING_KEY`.
    pub mailgun_signing_key: Option<Secret>,
    /// `HERALD_SENDGRID_VERIFICATION_KEY`: SendGrid's public key (base64).
    pub sendgrid_verification_key: Option<Secret>,
    /// `HERALD_POSTMARK_WEBHOOK_PASSWORD`.
    pub postmark_password: Option<Secret>,
    /// `HERALD_WEBHOOK_SECRET`: HMAC-SHA256 key of the generic endpoint.
    pub generic_secret: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteSettings {
    pub title: String,
    pub base_url: Url,
    pub language: String,
    pub description: String,
    /// Shown as the feeds' author and the archive's footer.
    pub author: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathSettings {
    pub issues: PathBuf,
    pub templates: PathBuf,
    pub output: PathBuf,
    pub database: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    pub from: String,
    pub reply_to: Option<String>,
    /// The `List-Id` header's identifier, e.g. `weekly.example.com`.
    pub list_id: String,
    /// The mailto half of `List-Unsubscribe`; none when empty.
    pub unsubscribe_mailto: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp://host:port` (STARTTLS when offered, `?tls=required` to insist,
    /// `?tls=none` for plain), `smtps://host:port` (implicit TLS) or
    /// `file://DIR` (write one .eml per message).
    pub url: String,
    pub username: Option<String>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendSettings {
    /// SMTP connections used at once.
    pub concurrency: usize,
    /// Messages per second across all connections; 0 means unlimited.
    pub rate: u32,
    /// Rows a worker claims at a time.
    pub batch_size: u32,
    /// How long a claimed row belongs to a worker before another may take it.
    pub lease_secs: u64,
    pub retry_first_delay_secs: u64,
    pub retry_max_delay_secs: u64,
    pub give_up_after_secs: u64,
    /// Attempts looked at when deciding whether the server is broken.
    pub failure_window: usize,
    /// Share of failed attempts in the window that pauses the campaign.
    pub failure_threshold: f64,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
    pub dkim_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    pub max_items: usize,
    pub websub_hub: Option<Url>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    pub cache_max_age_secs: u64,
    pub confirm_token_ttl_hours: u64,
    /// Subscribe requests one IP may make per minute.
    pub subscribe_per_ip_per_minute: u32,
    /// Sign-up requests for one address per hour, from anywhere (429 past
    /// it): rotating IPs does not get around it.
    pub subscribe_per_address_per_hour: u32,
    /// Confirmation mails one address may get per hour.
    pub confirmations_per_address_per_hour: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            site: SiteSettings::default(),
            paths: PathSettings::default(),
            mail: MailSettings::default(),
            smtp: SmtpSettings::default(),
            send: SendSettings::default(),
            feeds: FeedSettings::default(),
            server: ServerSettings::default(),
            bounces: BounceSettings::default(),
            webhooks: WebhookSettings::default(),
            root: PathBuf::from("."),
            smtp_password: None,
            imap_password: None,
            webhook_secrets: WebhookSecrets::default(),
        }
    }
}

impl Default for SiteSettings {
    fn default() -> Self {
        SiteSettings {
            title: "Herald Weekly".into(),
            base_url: Url::parse("http://127.0.0.1:8080/").expect("static URL"),
            language: "zh-CN".into(),
            description: "A weekly newsletter delivered by Herald.".into(),
            author: "Herald".into(),
        }
    }
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings {
            issues: "issues".into(),
            templates: "templates".into(),
            output: "public".into(),
            database: "herald.db".into(),
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            from: "Herald Weekly <newsletter@example.com>".into(),
            reply_to: None,
            list_id: "weekly.example.com".into(),
            unsubscribe_mailto: None,
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            url: "file://outbox".into(),
            username: None,
            timeout_secs: 30,
        }
    }
}

impl Default for SendSettings {
    fn default() -> Self {
        SendSettings {
            concurrency: 4,
            rate: 0,
            batch_size: 100,
            lease_secs: 300,
            retry_first_delay_secs: 300,
            retry_max_delay_secs: 4 * 3600,
            give_up_after_secs: 2 * 24 * 3600,
            failure_window: 200,
            failure_threshold: 0.5,
            dkim_selector: None,
            dkim_domain: None,
            dkim_key_file: None,
        }
    }
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            max_items: 20,
            websub_hub: None,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            cache_max_age_secs: 300,
            confirm_token_ttl_hours: 72,
            subscribe_per_ip_per_minute: 10,
            subscribe_per_address_per_hour: 10,
            confirmations_per_address_per_hour: 3,
        }
    }
}

impl Default for BounceSettings {
    fn default() -> Self {
        BounceSettings {
            return_path: None,
            // Three soft bounces in a month: a mailbox full for weeks is as
            // good as dead, while one full week (or a greylisting server)
            // does not lose a reader.
            soft_bounce_limit: 3,
            soft_bounce_days: 30,
            // Three months: long enough to notice and fix a wrong call.
            keep_days: 90,
            imap_url: None,
            imap_processed_folder: "Herald/Processed".into(),
            imap_poll_secs: 60,
            imap_ca_file: None,
        }
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            // Five minutes: what Mailgun and SendGrid allow for clock skew
            // and their own retries' timestamps.
            max_age_secs: 300,
            ses_topic_arns: Vec::new(),
            ses_certificate_hosts: vec!["sns.*.amazonaws.com".into()],
            postmark_username: None,
        }
    }
}

impl Settings {
    /// Reads `path`. A missing file is fine only when the caller did not name
    /// it explicitly (the default `./herald.toml`): then every default applies.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Settings> {
        let mut settings = match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::parse(&text).with_context(|| format!("reading config {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Settings::default(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading config {}", path.display()));
            }
        };
        settings.root = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        settings.read_environment();
        Ok(settings)
    }

    pub fn parse(text: &str) -> anyhow::Result<Settings> {
        let mut settings: Settings = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !settings.site.base_url.path().ends_with('/') {
            // Url::join drops the last path segment unless it ends in '/'.
            let path = format!("{}/", settings.site.base_url.path());
            settings.site.base_url.set_path(&path);
        }
        settings.return_path()?;
        Ok(settings)
    }

    fn read_environment(&mut self) {
        self.smtp_password = non_empty_env("HERALD_SMTP_PASSWORD").map(Secret::new);
        self.imap_password = non_empty_env("HERALD_IMAP_PASSWORD").map(Secret::new);
        let secret = |name| non_empty_env(name).map(Secret::new);
        self.webhook_secrets = WebhookSecrets {
            mailgun_signing_key: secret("HERALD_MAILGUN_SIGNING_KEY"),
            sendgrid_verification_key: secret("HERALD_SENDGRID_VERIFICATION_KEY"),
            postmark_password: secret("HERALD_POSTMARK_WEBHOOK_PASSWORD"),
            generic_secret: secret("HERALD_WEBHOOK_SECRET"),
        };
    }

    /// `[bounces] return_path`, validated (checked when the config loads,
    /// so a bad address is refused before any mail goes out).
    pub fn return_path(&self) -> anyhow::Result<Option<crate::domain::ReturnPath>> {
        self.bounces
            .return_path
            .as_deref()
            .map(|text| {
                crate::domain::ReturnPath::parse(text)
                    .map_err(|e| anyhow::anyhow!("[bounces] return_path: {e}"))
            })
            .transpose()
    }

    /// A path from the config, taken relative to the config's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    pub fn issues_dir(&self) -> PathBuf {
        self.resolve(&self.paths.issues)
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.resolve(&self.paths.templates)
    }
    pub fn output_dir(&self) -> PathBuf {
        self.resolve(&self.paths.output)
    }
    pub fn database_path(&self) -> PathBuf {
        self.resolve(&self.paths.database)
    }

    /// The permanent web page of an issue; the email's "view in browser"
    /// link and every feed entry point here.
    pub fn issue_url(&self, slug: &str) -> Url {
        self.site
            .base_url
            .join(&format!("issues/{slug}/"))
            .expect("a slug is URL-safe by construction")
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../config.example.toml");
        let parsed = Settings::parse(text).expect("config.example.toml parses");
        let defaults = Settings::default();
        assert_eq!(parsed.site.base_url, defaults.site.base_url);
        assert_eq!(parsed.smtp.url, defaults.smtp.url);
        assert_eq!(parsed.send.concurrency, defaults.send.concurrency);
        assert_eq!(
            parsed.send.give_up_after_secs,
            defaults.send.give_up_after_secs
        );
        assert_eq!(parsed.feeds.max_items, defaults.feeds.max_items);
        assert_eq!(parsed.server.listen, defaults.server.listen);
        assert_eq!(parsed.paths.database, defaults.paths.database);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Settings::parse("[smtp]\npassword = \"hunter2\"\n").unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn a_bad_return_path_is_refused_when_the_config_loads() {
        let err =
            Settings::parse("[bounces]\nreturn_path = \"bounces+x@example.com\"\n").unwrap_err();
        assert!(err.to_string().contains("[bounces] return_path"), "{err}");
        let err = Settings::parse("[bounces]\nreturn_path = \"nobody\"\n").unwrap_err();
        assert!(err.to_string().contains("not an email address"), "{err}");
        let ok = Settings::parse("[bounces]\nreturn_path = \"bounces@example.com\"\n").unwrap();
        assert_eq!(
            ok.return_path().unwrap().unwrap().address(),
            "bounces@example.com"
        );
    }

    #[test]
    fn base_url_gains_a_trailing_slash() {
        let s =
            Settings::parse("[site]\nbase_url = \"https://news.example.com/weekly\"\n").unwrap();
        assert_eq!(
            s.issue_url("vol-001").as_str(),
            "https://news.example.com/weekly/issues/vol-001/"
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
