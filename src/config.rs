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
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use serde::Deserialize;
use url::Url;

use crate::store::Location;

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
    pub database: DatabaseSettings,
    pub doctor: DoctorSettings,
    pub tracking: TrackingSettings,
    pub admin: AdminSettings,
    /// Folder of the config file; relative paths are taken from here.
    #[serde(skip)]
    pub root: PathBuf,
    /// `HERALD_SMTP_PASSWORD`.
    #[serde(skip)]
    pub smtp_password: Option<Secret>,
    /// `HERALD_IMAP_PASSWORD`: the bounce mailbox's password.
    #[serde(skip)]
    pub imap_password: Option<Secret>,
    /// `HERALD_DATABASE_PASSWORD`: PostgreSQL's password.
    #[serde(skip)]
    pub database_password: Option<Secret>,
    /// The webhook secrets, each from its own `HERALD_*` variable.
    #[serde(skip)]
    pub webhook_secrets: WebhookSecrets,
    /// `HERALD_ADMIN_PASSWORD_HASH`: the editor's password as an Argon2id
    /// PHC string (`herald admin hash-password`). Unset: no admin site.
    #[serde(skip)]
    pub admin_password_hash: Option<Secret>,
}

/// The admin site (README: "The dashboard"), served by `herald serve`
/// beside the public site when `HERALD_ADMIN_PASSWORD_HASH` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Where the admin site listens. Loopback by default: nothing of it is
    /// public unless the operator opens it.
    pub listen: String,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: "127.0.0.1:8081".into(),
        }
    }
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

/// `herald doctor`: where it asks DNS, and how long each check may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorSettings {
    /// `127.0.0.1:5353`: the DNS server to ask instead of the system's
    /// resolver (a split-horizon setup, or a test zone). Port 53 if none.
    pub nameserver: Option<String>,
    /// Seconds each check may take before it is reported as an error.
    pub timeout_secs: u64,
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
    /// The IANA time zone (`Asia/Shanghai`) in which `herald send --at`
    /// reads a wall-clock time and `herald status` shows scheduled sends.
    pub timezone: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathSettings {
    pub issues: PathBuf,
    pub templates: PathBuf,
    pub output: PathBuf,
    /// Deprecated: `[database] url = "sqlite://FILE"` says the same.
    pub database: Option<PathBuf>,
}

/// Where the list lives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (a file, relative to the config's folder; the
    /// default is `sqlite://herald.db`) or `postgres://USER@HOST[:PORT]/DB`
    /// (password in `HERALD_DATABASE_PASSWORD`, or PostgreSQL's own
    /// `PGPASSWORD` and `~/.pgpass`).
    pub url: Option<String>,
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
    /// The name given in EHLO. Unset: the machine's name when it is fully
    /// qualified, else the From address's domain.
    pub helo_name: Option<String>,
    /// A PEM file of extra CA certificates to trust for the relay's TLS (a
    /// private CA); the usual web roots are always trusted.
    pub ca_file: Option<PathBuf>,
    /// `[[smtp.relays]]`: several relays a campaign spreads its mail over
    /// by weight. Empty: `url` is the one relay. Both set is refused.
    pub relays: Vec<RelaySettings>,
    /// A relay's circuit breaker opens after this many connections to it
    /// in a row were refused (or failed before the greeting).
    pub breaker_refusals: u32,
    /// ... or when more than `breaker_threshold` of its last
    /// `breaker_window` attempts were deferred.
    pub breaker_window: usize,
    pub breaker_threshold: f64,
    /// Seconds an open breaker keeps its relay out before one probe
    /// message is let through (half-open).
    pub breaker_cooldown_secs: u64,
    /// Whether the file named `[smtp] url` explicitly (not the default):
    /// read from the raw TOML, since a default and an explicit value look
    /// the same once parsed.
    #[serde(skip)]
    pub url_given: bool,
}

/// One `[[smtp.relays]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Shown in logs, `herald status` and `herald doctor`; the key of its
    /// breaker's state. Unset: the URL's `host:port`.
    pub name: Option<String>,
    /// As `[smtp] url`: smtp://, smtps:// or file://.
    pub url: String,
    pub username: Option<String>,
    /// The environment variable holding this relay's password, e.g.
    /// `HERALD_RELAY_B_PASSWORD` (never the password itself).
    pub password_env: Option<String>,
    /// The relay's share of the messages: weights 3 and 1 send three
    /// quarters through the first.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Connections to this relay at once. Unset: `[send] concurrency`.
    pub concurrency: Option<usize>,
    /// Messages per second through this relay; unset or 0: no limit of its
    /// own (`[send] rate` still caps all relays together).
    pub rate: Option<u32>,
    /// The password, read from `password_env` when the config loads.
    #[serde(skip)]
    pub password: Option<Secret>,
}

fn default_weight() -> u32 {
    1
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

/// Link clicks (README: "Link clicks"). Off unless `clicks = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingSettings {
    /// Item links in the email lead through `<base_url>l/<campaign>/<link>`,
    /// which redirects to the item and counts the click.
    pub clicks: bool,
    /// Also records which subscriber clicked; needs `clicks`.
    pub per_subscriber: bool,
    /// Days a per-subscriber click is kept before it is deleted.
    pub per_subscriber_days: u64,
    /// A click this soon after the mail went out (the subscriber's copy
    /// with `per_subscriber`, else the campaign's start) counts as a bot's.
    pub bot_window_secs: u64,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        TrackingSettings {
            clicks: false,
            per_subscriber: false,
            // Long enough to see how an issue did; short enough that a
            // reader's clicks do not pile up into a profile.
            per_subscriber_days: 30,
            // Scanners open links within seconds of a message arriving;
            // people rarely read, scroll and click that fast.
            bot_window_secs: 30,
        }
    }
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
    /// Seconds a client has to send a request's headers (from when the
    /// connection opens, or its previous response was sent).
    pub header_timeout_secs: u64,
    /// Seconds a request body may stall between two pieces.
    pub body_timeout_secs: u64,
    /// Seconds a connection may move no byte before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds requests in flight get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
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
            database: DatabaseSettings::default(),
            doctor: DoctorSettings::default(),
            tracking: TrackingSettings::default(),
            admin: AdminSettings::default(),
            root: PathBuf::from("."),
            smtp_password: None,
            imap_password: None,
            database_password: None,
            webhook_secrets: WebhookSecrets::default(),
            admin_password_hash: None,
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
            timezone: "UTC".into(),
        }
    }
}

impl Default for PathSettings {
    fn default() -> Self {
        PathSettings {
            issues: "issues".into(),
            templates: "templates".into(),
            output: "public".into(),
            database: None,
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
            helo_name: None,
            ca_file: None,
            relays: Vec::new(),
            // Three refusals in a row: one can be a restart, three are an
            // outage. Half of the last twenty deferred: "most" of them,
            // over few enough attempts to react within seconds.
            breaker_refusals: 3,
            breaker_window: 20,
            breaker_threshold: 0.5,
            // A minute: long enough for a relay's restart, short enough
            // that a campaign soon spreads over all of them again.
            breaker_cooldown_secs: 60,
            url_given: false,
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
            // Ten seconds is long for a real client's headers and short
            // for a slow-loris one; the others follow nginx's defaults in
            // spirit (60 s keep-alive, a minute of stalled body).
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            // Far below the usual 1,024 descriptors, leaving room for the
            // database, the site's files and SMTP connections.
            max_connections: 512,
            shutdown_grace_secs: 10,
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

impl Default for DoctorSettings {
    fn default() -> Self {
        DoctorSettings {
            nameserver: None,
            // Long enough for a slow resolver's retries or a relay's
            // greeting delay, short enough that a whole run takes seconds.
            timeout_secs: 10,
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
        settings.smtp.url_given = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|table| table.get("smtp")?.get("url").map(|_| ()))
            .is_some();
        if !settings.site.base_url.path().ends_with('/') {
            // Url::join drops the last path segment unless it ends in '/'.
            let path = format!("{}/", settings.site.base_url.path());
            settings.site.base_url.set_path(&path);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses values that would only fail later, mid-send or mid-request:
    /// every value a command relies on is checked here, once, when the
    /// config loads.
    fn validate(&self) -> anyhow::Result<()> {
        let base = &self.site.base_url;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            anyhow::bail!(
                "[site] base_url = {:?} must be an absolute http(s) URL, e.g. \"https://news.example.com/\"",
                base.as_str()
            );
        }
        self.time_zone()?;
        parse_address(&self.mail.from, "[mail] from")?;
        if let Some(reply_to) = &self.mail.reply_to {
            parse_address(reply_to, "[mail] reply_to")?;
        }
        self.return_path()?;
        self.database()?;
        if self.paths.database.is_some() {
            tracing::warn!(
                "[paths] database is deprecated; write [database] url = \"sqlite://FILE\""
            );
        }
        validate_smtp_url(&self.smtp.url, "[smtp] url")?;
        self.validate_relays()?;
        if let Some(name) = &self.smtp.helo_name {
            if url::Host::parse(name).is_err() || name.is_empty() || !name.is_ascii() {
                anyhow::bail!("[smtp] helo_name = {name:?} is not a host name");
            }
        }
        self.server
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                anyhow::anyhow!(
                    "[server] listen = {:?} is not an address and port, e.g. \"127.0.0.1:8080\"",
                    self.server.listen
                )
            })?;
        self.admin
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                anyhow::anyhow!(
                    "[admin] listen = {:?} is not an address and port, e.g. \"127.0.0.1:8081\"",
                    self.admin.listen
                )
            })?;
        let server = &self.server;
        for (key, value) in [
            ("header_timeout_secs", server.header_timeout_secs),
            ("body_timeout_secs", server.body_timeout_secs),
            ("idle_timeout_secs", server.idle_timeout_secs),
            ("max_connections", server.max_connections as u64),
        ] {
            if value == 0 {
                anyhow::bail!("[server] {key} must be at least 1");
            }
        }
        if self.tracking.per_subscriber && !self.tracking.clicks {
            anyhow::bail!(
                "[tracking] per_subscriber = true needs clicks = true (there are no clicks to attribute otherwise)"
            );
        }
        if self.tracking.per_subscriber_days == 0 {
            anyhow::bail!("[tracking] per_subscriber_days must be at least 1");
        }
        let send = &self.send;
        for (key, value) in [
            ("concurrency", send.concurrency as u64),
            ("batch_size", u64::from(send.batch_size)),
            ("lease_secs", send.lease_secs),
            ("failure_window", send.failure_window as u64),
        ] {
            if value == 0 {
                anyhow::bail!("[send] {key} must be at least 1");
            }
        }
        if send.rate > MAX_RATE {
            anyhow::bail!(
                "[send] rate = {} is over the maximum of {MAX_RATE} messages a second",
                send.rate
            );
        }
        if !(send.failure_threshold > 0.0 && send.failure_threshold <= 1.0) {
            anyhow::bail!(
                "[send] failure_threshold = {} must be a share above 0 and at most 1, e.g. 0.5",
                send.failure_threshold
            );
        }
        self.doctor_nameserver()?;
        if self.doctor.timeout_secs == 0 {
            anyhow::bail!("[doctor] timeout_secs must be at least 1");
        }
        if self.bounces.soft_bounce_days == 0 {
            anyhow::bail!("[bounces] soft_bounce_days must be at least 1");
        }
        Ok(())
    }

    /// `[[smtp.relays]]` and the breaker's keys: one form or the other,
    /// unique names, weights, credentials named by variable.
    fn validate_relays(&self) -> anyhow::Result<()> {
        let smtp = &self.smtp;
        if smtp.breaker_refusals == 0 || smtp.breaker_window == 0 || smtp.breaker_cooldown_secs == 0
        {
            anyhow::bail!(
                "[smtp] breaker_refusals, breaker_window and breaker_cooldown_secs must be at least 1"
            );
        }
        if !(smtp.breaker_threshold > 0.0 && smtp.breaker_threshold <= 1.0) {
            anyhow::bail!(
                "[smtp] breaker_threshold = {} must be a share above 0 and at most 1, e.g. 0.5",
                smtp.breaker_threshold
            );
        }
        if smtp.relays.is_empty() {
            return Ok(());
        }
        if smtp.url_given || smtp.username.is_some() {
            anyhow::bail!(
                "[smtp] url (or username) and [[smtp.relays]] are both set: keep one. With \
                 [[smtp.relays]], each relay has its own url, username and password_env"
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, relay) in smtp.relays.iter().enumerate() {
            let key = format!("[[smtp.relays]] #{}", i + 1);
            validate_smtp_url(&relay.url, &format!("{key} url"))?;
            let name = relay_name(relay);
            if name.is_empty() || name.chars().any(char::is_control) || name.chars().count() > 100 {
                anyhow::bail!("{key} name = {name:?} must be 1 to 100 printable characters");
            }
            if !names.insert(name.clone()) {
                anyhow::bail!("{key}: a second relay named {name:?}; give each relay its own name");
            }
            if relay.weight == 0 {
                anyhow::bail!("{key} ({name}) weight must be at least 1");
            }
            if relay.concurrency == Some(0) {
                anyhow::bail!("{key} ({name}) concurrency must be at least 1");
            }
            if relay.rate.is_some_and(|rate| rate > MAX_RATE) {
                anyhow::bail!("{key} ({name}) rate is over the maximum of {MAX_RATE} a second");
            }
            if let Some(variable) = &relay.password_env {
                let valid = !variable.is_empty()
                    && !variable.starts_with(|c: char| c.is_ascii_digit())
                    && variable
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    // Not repeated: someone may have pasted the password.
                    anyhow::bail!(
                        "{key} ({name}) password_env must name an environment variable \
                         (A-Z, 0-9, _), e.g. \"HERALD_RELAY_B_PASSWORD\", not hold the password"
                    );
                }
                if relay.username.is_none() {
                    anyhow::bail!("{key} ({name}) has password_env but no username");
                }
            } else if relay.username.is_some() {
                anyhow::bail!(
                    "{key} ({name}) has a username but no password_env naming the variable \
                     that holds its password"
                );
            }
        }
        Ok(())
    }

    /// The relays a campaign sends through: `[[smtp.relays]]`, or `[smtp]
    /// url` (with `username`, `HERALD_SMTP_PASSWORD` and `[send]
    /// concurrency`) as a list of one.
    pub fn relays(&self) -> Vec<Relay> {
        if self.smtp.relays.is_empty() {
            return vec![Relay {
                name: relay_name_of_url(&self.smtp.url),
                url: self.smtp.url.clone(),
                username: self.smtp.username.clone(),
                password_env: "HERALD_SMTP_PASSWORD".into(),
                password: self.smtp_password.clone(),
                weight: 1,
                concurrency: None,
                rate: 0,
            }];
        }
        self.smtp
            .relays
            .iter()
            .map(|relay| Relay {
                name: relay_name(relay),
                url: relay.url.clone(),
                username: relay.username.clone(),
                password_env: relay.password_env.clone().unwrap_or_default(),
                password: relay.password.clone(),
                weight: relay.weight,
                concurrency: relay.concurrency,
                rate: relay.rate.unwrap_or(0),
            })
            .collect()
    }

    fn read_environment(&mut self) {
        self.smtp_password = non_empty_env("HERALD_SMTP_PASSWORD").map(Secret::new);
        for relay in &mut self.smtp.relays {
            relay.password = relay
                .password_env
                .as_deref()
                .and_then(non_empty_env)
                .map(Secret::new);
        }
        self.imap_password = non_empty_env("HERALD_IMAP_PASSWORD").map(Secret::new);
        self.database_password = non_empty_env("HERALD_DATABASE_PASSWORD").map(Secret::new);
        let secret = |name| non_empty_env(name).map(Secret::new);
        self.webhook_secrets = WebhookSecrets {
            mailgun_signing_key: secret("HERALD_MAILGUN_SIGNING_KEY"),
            sendgrid_verification_key: secret("HERALD_SENDGRID_VERIFICATION_KEY"),
            postmark_password: secret("HERALD_POSTMARK_WEBHOOK_PASSWORD"),
            generic_secret: secret("HERALD_WEBHOOK_SECRET"),
        };
        self.admin_password_hash = secret("HERALD_ADMIN_PASSWORD_HASH");
    }

    /// `[site] timezone`, from the time zone database built into Herald
    /// (jiff's bundled copy), so it means the same on a machine without
    /// /usr/share/zoneinfo. Checked when the config loads.
    pub fn time_zone(&self) -> anyhow::Result<jiff::tz::TimeZone> {
        let name = self.site.timezone.trim();
        jiff::tz::TimeZone::get(name).map_err(|_| {
            anyhow::anyhow!(
                "[site] timezone = {} is not a time zone; write an IANA name such as \"Asia/Shanghai\", \"Europe/Berlin\" or \"UTC\"",
                crate::domain::quote_input(&self.site.timezone)
            )
        })
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

    /// `[doctor] nameserver` as an address (port 53 when none is given).
    pub fn doctor_nameserver(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        let Some(text) = self.doctor.nameserver.as_deref() else {
            return Ok(None);
        };
        let text = text.trim();
        if let Ok(address) = text.parse::<std::net::SocketAddr>() {
            return Ok(Some(address));
        }
        text.parse::<std::net::IpAddr>()
            .map(|ip| Some(std::net::SocketAddr::new(ip, 53)))
            .map_err(|_| {
                anyhow::anyhow!(
                    "[doctor] nameserver = {text:?} is not an IP address with an optional port, \
                     e.g. \"127.0.0.1:5353\""
                )
            })
    }

    /// The CAs of `[smtp] ca_file` (none when unset), for a relay with a
    /// private CA.
    pub fn smtp_ca_certificates(
        &self,
    ) -> anyhow::Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>> {
        use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
        let Some(file) = &self.smtp.ca_file else {
            return Ok(Vec::new());
        };
        let path = self.resolve(file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading [smtp] ca_file {}", path.display()))?;
        let certificates = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                anyhow::anyhow!(
                    "[smtp] ca_file {}: not PEM certificates: {e}",
                    path.display()
                )
            })?;
        if certificates.is_empty() {
            anyhow::bail!(
                "[smtp] ca_file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            );
        }
        Ok(certificates)
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
    /// The database `[database] url` names (or the deprecated `[paths]
    /// database`), checked when the config loads.
    pub fn database(&self) -> anyhow::Result<Location> {
        let url = match (&self.database.url, &self.paths.database) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both [database] url and [paths] database are set; \
                 keep [database] url (the other is its deprecated spelling)"
            ),
            (None, Some(path)) => return Ok(Location::Sqlite(self.resolve(path))),
            (None, None) => DEFAULT_DATABASE_URL,
            (Some(url), None) => url.trim(),
        };
        self.database_at(url)
    }

    /// The database a URL names (`sqlite://FILE`, relative to the config's
    /// folder, or `postgres://...` with the password from the
    /// environment): `[database] url`, or `herald db copy --to`.
    pub fn database_at(&self, url: &str) -> anyhow::Result<Location> {
        let url = url.trim();
        let shown = redact_url(url);
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() || path.contains('?') {
                anyhow::bail!(
                    "[database] url = {shown:?} must name a file, e.g. \"sqlite://herald.db\""
                );
            }
            return Ok(Location::Sqlite(self.resolve(Path::new(path))));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!(
                "[database] url = {shown:?}: the scheme must be sqlite:// or postgres://"
            );
        }
        let parsed =
            Url::parse(url).map_err(|e| anyhow::anyhow!("[database] url = {shown:?}: {e}"))?;
        if parsed.password().is_some() {
            anyhow::bail!(
                "[database] url = {shown:?} holds a password; put it in HERALD_DATABASE_PASSWORD instead"
            );
        }
        Ok(Location::Postgres {
            url: url.to_string(),
            password: self
                .database_password
                .as_ref()
                .map(|secret| secret.expose().to_string()),
        })
    }

    /// DKIM from `[send] dkim_*`, for every mail Herald sends (issues,
    /// confirmations, welcomes): off unless selector, domain and key file are
    /// all set. The signed headers include both List-Unsubscribe headers, which
    /// lettre's default list leaves out and Gmail wants covered. Content-Type
    /// is not signed: lettre adds the multipart one after signing.
    pub fn dkim(&self) -> anyhow::Result<Option<DkimConfig>> {
        let send = &self.send;
        let (Some(selector), Some(domain), Some(key_file)) =
            (&send.dkim_selector, &send.dkim_domain, &send.dkim_key_file)
        else {
            return Ok(None);
        };
        let path = self.resolve(key_file);
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading DKIM key {}", path.display()))?;
        if pem.contains("BEGIN PRIVATE KEY") {
            anyhow::bail!(
                "DKIM key {} is PKCS#8; convert it to PKCS#1 (`openssl rsa -in KEY -traditional`)",
                path.display()
            );
        }
        let algorithm = if pem.contains("RSA PRIVATE KEY") {
            DkimSigningAlgorithm::Rsa
        } else {
            DkimSigningAlgorithm::Ed25519
        };
        let key = DkimSigningKey::new(pem.trim(), algorithm).map_err(|e| {
            anyhow::anyhow!(
                "DKIM key {}: {e:?} (RSA: PKCS#1 PEM; Ed25519: base64 of the 32-byte key)",
                path.display()
            )
        })?;
        let headers = [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        Ok(Some(DkimConfig::new(
            selector.clone(),
            domain.clone(),
            key,
            headers,
            // relaxed/relaxed: lettre's default simple header canonicalization
            // does not survive its own header folding (seen with dkimpy).
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        )))
    }

    /// `[mail] from` as a mailbox: the one place the From of every mail
    /// (issues, confirmations, welcomes, previews) is made. Checked when the
    /// config loads, so this fails only for settings built by hand.
    pub fn from_mailbox(&self) -> anyhow::Result<lettre::message::Mailbox> {
        parse_address(&self.mail.from, "[mail] from")
    }

    /// `[mail] reply_to` as a mailbox, when set.
    pub fn reply_to_mailbox(&self) -> anyhow::Result<Option<lettre::message::Mailbox>> {
        self.mail
            .reply_to
            .as_deref()
            .map(|r| parse_address(r, "[mail] reply_to"))
            .transpose()
    }

    /// The name Herald greets SMTP servers with: `[smtp] helo_name`, else
    /// `machine` (the host's own name) when it is fully qualified, else the
    /// domain of `[mail] from`. Strict servers refuse, and spam filters
    /// score, a bare name such as `vm`.
    pub fn helo_name(&self, machine: &str) -> String {
        if let Some(name) = &self.smtp.helo_name {
            return name.clone();
        }
        if machine.contains('.') && !machine.ends_with(".localdomain") {
            return machine.to_string();
        }
        // The A-label: EHLO takes ASCII only.
        self.from_mailbox()
            .map(|from| from.email.domain().to_string())
            .unwrap_or_else(|_| machine.to_string())
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

/// The highest `[send] rate` (and `--rate`): far above what any relay
/// takes, and low enough that the limiter's arithmetic never overflows.
pub const MAX_RATE: u32 = 1_000_000;

/// An address from the config, its domain as the A-label: `news@例子.中国`
/// goes out as `news@xn--fsqu00a.xn--fiqs8s` in MAIL FROM and in From, so
/// a relay without SMTPUTF8 takes it (and DKIM's d= matches it).
fn parse_address(value: &str, key: &str) -> anyhow::Result<lettre::message::Mailbox> {
    let mailbox: lettre::message::Mailbox = value
        .parse()
        .map_err(|e| anyhow::anyhow!("{key} = {value:?} is not a valid address: {e}"))?;
    let email = crate::domain::a_label_address(&mailbox.email)
        .map_err(|e| anyhow::anyhow!("{key} = {value:?} is not a valid address: {e}"))?;
    Ok(lettre::message::Mailbox::new(mailbox.name, email))
}

/// The URL as it may be shown: any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparseable: the userinfo may still hold a password, so show
        // nothing between the scheme and the host.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}://***{}", &url[..scheme_end], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

/// A relay as the send stage uses it, from either config form.
#[derive(Debug, Clone)]
pub struct Relay {
    pub name: String,
    pub url: String,
    pub username: Option<String>,
    /// Where the password comes from, for error messages.
    pub password_env: String,
    pub password: Option<Secret>,
    pub weight: u32,
    /// Its own connection count; `None`: `[send] concurrency`.
    pub concurrency: Option<usize>,
    /// Its own messages per second; 0: none.
    pub rate: u32,
}

fn relay_name(relay: &RelaySettings) -> String {
    match &relay.name {
        Some(name) => name.trim().to_string(),
        None => relay_name_of_url(&relay.url),
    }
}

/// `host:port` of an SMTP URL (port as written, or the scheme's), or the
/// URL itself for a file outbox: a name that says which relay it is.
fn relay_name_of_url(url: &str) -> String {
    let url = url.trim();
    match Url::parse(url) {
        Ok(parsed) if parsed.scheme() != "file" => {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed
                .port()
                .unwrap_or(if parsed.scheme() == "smtps" { 465 } else { 25 });
            format!("{host}:{port}")
        }
        _ => redact_url(url),
    }
}

/// An SMTP URL (`key` names it in errors): a scheme Herald speaks, and
/// never a password (which belongs in the environment, and is not
/// repeated in the error).
fn validate_smtp_url(url: &str, key: &str) -> anyhow::Result<()> {
    let url = url.trim();
    if url.starts_with("file://") {
        return Ok(());
    }
    let shown = redact_url(url);
    let parsed = Url::parse(url).map_err(|e| anyhow::anyhow!("{key} = {shown:?}: {e}"))?;
    if parsed.password().is_some() {
        anyhow::bail!(
            "{key} = {shown:?} holds a password; put it in the environment (HERALD_SMTP_PASSWORD, \
             or the variable a relay's password_env names) instead"
        );
    }
    if !matches!(parsed.scheme(), "smtp" | "smtps") {
        anyhow::bail!("{key} = {shown:?}: the scheme must be smtp, smtps or file");
    }
    Ok(())
}

const DEFAULT_DATABASE_URL: &str = "sqlite://herald.db";

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
        assert_eq!(
            parsed.database().unwrap().describe(),
            defaults.database().unwrap().describe()
        );
    }

    #[test]
    fn per_subscriber_clicks_need_clicks_and_a_retention() {
        let err = Settings::parse("[tracking]\nper_subscriber = true\n").unwrap_err();
        assert!(err.to_string().contains("needs clicks = true"), "{err}");
        let err =
            Settings::parse("[tracking]\nclicks = true\nper_subscriber_days = 0\n").unwrap_err();
        assert!(err.to_string().contains("per_subscriber_days"), "{err}");
        let ok = Settings::parse("[tracking]\nclicks = true\nper_subscriber = true\n").unwrap();
        assert!(ok.tracking.clicks && ok.tracking.per_subscriber);
        assert!(!Settings::default().tracking.clicks, "off by default");
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
    fn the_site_time_zone_is_an_iana_name_checked_when_the_config_loads() {
        let zone = Settings::parse("[site]\ntimezone = \"Asia/Shanghai\"\n")
            .unwrap()
            .time_zone()
            .unwrap();
        assert_eq!(zone.iana_name(), Some("Asia/Shanghai"));
        assert_eq!(
            Settings::default().time_zone().unwrap().iana_name(),
            Some("UTC")
        );
        for bad in ["Mars/Olympus_Mons", "", "+08:00", "Asia/Shang hai"] {
            let text = format!("[site]\ntimezone = {bad:?}\n");
            let error = format!("{:#}", Settings::parse(&text).expect_err(bad));
            assert!(error.contains("[site] timezone"), "{bad}: {error}");
            assert!(error.contains("IANA name"), "{bad}: {error}");
        }
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
    fn values_that_would_fail_later_are_refused_when_the_config_loads() {
        let cases = [
            (
                "[site]\nbase_url = \"javascript:alert(1)\"\n",
                "absolute http(s) URL",
            ),
            (
                "[site]\nbase_url = \"mailto:a@example.com\"\n",
                "absolute http(s) URL",
            ),
            ("[mail]\nfrom = \"not an address\"\n", "[mail] from"),
            ("[mail]\nreply_to = \"@@\"\n", "[mail] reply_to"),
            (
                "[bounces]\nreturn_path = \"nope\"\n",
                "[bounces] return_path",
            ),
            ("[server]\nlisten = \"not-an-addr\"\n", "[server] listen"),
            (
                "[send]\nconcurrency = 0\n",
                "concurrency must be at least 1",
            ),
            ("[send]\nfailure_threshold = nan\n", "failure_threshold"),
            ("[send]\nfailure_threshold = 1.5\n", "failure_threshold"),
            ("[send]\nrate = 4000000000\n", "over the maximum"),
            ("[smtp]\nurl = \"gopher://x\"\n", "scheme must be"),
            (
                "[doctor]\nnameserver = \"dns.example\"\n",
                "[doctor] nameserver",
            ),
            ("[doctor]\ntimeout_secs = 0\n", "[doctor] timeout_secs"),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", Settings::parse(text).expect_err(text));
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_password_in_the_smtp_url_is_refused_without_being_repeated() {
        for url in [
            "smtp://user:hunter2@mail.example.com:587",
            "smtp://user:hunter2@exa mple.com",
        ] {
            let text = format!("[smtp]\nurl = \"{url}\"\n");
            let error = format!("{:#}", Settings::parse(&text).unwrap_err());
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.contains("[smtp] url"), "{error}");
        }
    }

    /// The keys serde accepts in a section (`None`: the top level), read
    /// from the error it gives for an unknown one, which lists them all.
    fn accepted_keys(section: Option<&str>) -> Vec<String> {
        let text = match section {
            Some(section) if section.contains('.') => format!("[[{section}]]\nno_such_key = 1\n"),
            Some(section) => format!("[{section}]\nno_such_key = 1\n"),
            None => "no_such_key = 1\n".to_string(),
        };
        let error = Settings::parse(&text).unwrap_err().to_string();
        let list = error
            .split("expected one of ")
            .nth(1)
            .or_else(|| error.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("no key list in {error}"));
        list.lines()
            .next()
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|word| word.starts_with('`'))
            .map(|key| key.trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn the_example_config_shows_every_key_the_config_accepts() {
        let example = include_str!("../config.example.toml");
        let mut shown: std::collections::BTreeSet<String> = Default::default();
        let mut section = String::new();
        for line in example.lines() {
            let line = line.trim();
            let setting = line.trim_start_matches('#').trim_start();
            // An array of tables, shown commented out: [[smtp.relays]].
            if let Some(name) = setting
                .strip_prefix("[[")
                .and_then(|l| l.strip_suffix("]]"))
            {
                shown.insert(name.to_string());
                section = name.to_string();
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            if let Some((key, _)) = setting.split_once(" = ") {
                if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    shown.insert(format!("{section}.{key}"));
                }
            }
        }
        let mut missing = Vec::new();
        let mut sections = accepted_keys(None);
        // Tables inside sections: [[smtp.relays]].
        sections.push("smtp.relays".into());
        for section in sections {
            for key in accepted_keys(Some(&section)) {
                if !shown.contains(&format!("{section}.{key}")) {
                    missing.push(format!("[{section}] {key}"));
                }
            }
        }
        assert!(missing.is_empty(), "config.example.toml lacks {missing:?}");
    }

    #[test]
    fn the_database_url_names_a_file_or_a_server_and_never_a_password() {
        let at = |text: &str| {
            let mut settings = Settings::parse(text)?;
            settings.root = PathBuf::from("/srv/news");
            settings.database()
        };
        let sqlite = |path: &str| Location::Sqlite(PathBuf::from(path)).describe();
        assert_eq!(at("").unwrap().describe(), sqlite("/srv/news/herald.db"));
        assert_eq!(
            at("[database]\nurl = \"sqlite://data/list.db\"\n")
                .unwrap()
                .describe(),
            sqlite("/srv/news/data/list.db")
        );
        assert_eq!(
            at("[database]\nurl = \"sqlite:///var/lib/herald.db\"\n")
                .unwrap()
                .describe(),
            sqlite("/var/lib/herald.db")
        );
        // The deprecated spelling still works.
        assert_eq!(
            at("[paths]\ndatabase = \"old.db\"\n").unwrap().describe(),
            sqlite("/srv/news/old.db")
        );
        assert!(matches!(
            at("[database]\nurl = \"postgres://herald@db.internal/news\"\n").unwrap(),
            Location::Postgres { .. }
        ));
        let refusals = [
            (
                "[paths]\ndatabase = \"a.db\"\n[database]\nurl = \"sqlite://b.db\"\n",
                "both",
            ),
            ("[database]\nurl = \"mysql://x/y\"\n", "scheme"),
            ("[database]\nurl = \"sqlite://\"\n", "must name a file"),
            (
                "[database]\nurl = \"postgres://herald:hunter2@db/news\"\n",
                "HERALD_DATABASE_PASSWORD",
            ),
        ];
        for (text, expected) in refusals {
            let error = format!("{:#}", Settings::parse(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
            assert!(
                !error.contains("hunter2"),
                "the password is never shown: {error}"
            );
        }
    }

    #[test]
    fn the_greeting_is_a_fully_qualified_name() {
        let mut settings = Settings::default();
        assert_eq!(settings.helo_name("vm"), "example.com");
        assert_eq!(settings.helo_name("mx1.example.org"), "mx1.example.org");
        assert_eq!(settings.helo_name("box.localdomain"), "example.com");
        settings.smtp.helo_name = Some("mail.news.example".into());
        assert_eq!(settings.helo_name("vm"), "mail.news.example");
        assert!(Settings::parse("[smtp]\nhelo_name = \"bad name\"\n").is_err());
    }

    #[test]
    fn configured_addresses_in_an_idn_domain_take_its_a_label() {
        let settings = Settings::parse(
            "[mail]\nfrom = \"新闻 <news@例子.中国>\"\nreply_to = \"编辑@例子.中国\"\n",
        )
        .unwrap();
        let from = settings.from_mailbox().unwrap();
        assert_eq!(from.email.to_string(), "news@xn--fsqu00a.xn--fiqs8s");
        assert_eq!(from.name.as_deref(), Some("新闻"));
        let reply_to = settings.reply_to_mailbox().unwrap().unwrap();
        assert_eq!(reply_to.email.to_string(), "编辑@xn--fsqu00a.xn--fiqs8s");
        assert_eq!(settings.helo_name("vm"), "xn--fsqu00a.xn--fiqs8s");
    }

    #[test]
    fn the_single_smtp_url_is_a_list_of_one_relay() {
        let mut settings = Settings::parse(
            "[smtp]\nurl = \"smtp://mail.example.com:587?tls=required\"\nusername = \"herald\"\n",
        )
        .unwrap();
        settings.smtp_password = Some(Secret::new("hunter2"));
        let relays = settings.relays();
        assert_eq!(relays.len(), 1);
        let relay = &relays[0];
        assert_eq!(relay.name, "mail.example.com:587");
        assert_eq!(relay.url, "smtp://mail.example.com:587?tls=required");
        assert_eq!(relay.username.as_deref(), Some("herald"));
        assert_eq!(relay.password_env, "HERALD_SMTP_PASSWORD");
        assert_eq!(relay.password.as_ref().map(Secret::expose), Some("hunter2"));
        // [send] concurrency and rate apply, as before relays existed.
        assert_eq!((relay.weight, relay.concurrency, relay.rate), (1, None, 0));
        assert!(!format!("{relays:?}").contains("hunter2"));
        // The default: the file outbox, named by its URL.
        assert_eq!(Settings::default().relays()[0].name, "file://outbox");
    }

    #[test]
    fn several_relays_read_every_key_and_their_passwords_from_the_variables_they_name() {
        let text = "[smtp]\nbreaker_refusals = 5\nbreaker_window = 40\nbreaker_threshold = 0.8\n\
                    breaker_cooldown_secs = 30\n\
                    [[smtp.relays]]\nname = \"a\"\nurl = \"smtp://a.example.com:587\"\n\
                    username = \"herald\"\npassword_env = \"HERALD_TEST_CONFIG_RELAY_A\"\n\
                    weight = 3\nconcurrency = 8\nrate = 50\n\
                    [[smtp.relays]]\nurl = \"smtps://b.example.com\"\n";
        let mut settings = Settings::parse(text).unwrap();
        // A variable no other test reads: set once, read here only.
        std::env::set_var("HERALD_TEST_CONFIG_RELAY_A", "s3cret-a");
        settings.read_environment();
        assert!(!settings.smtp.url_given);
        let smtp = &settings.smtp;
        assert_eq!(
            (
                smtp.breaker_refusals,
                smtp.breaker_window,
                smtp.breaker_cooldown_secs
            ),
            (5, 40, 30)
        );
        assert_eq!(smtp.breaker_threshold, 0.8);
        let relays = settings.relays();
        assert_eq!(relays.len(), 2);
        let (a, b) = (&relays[0], &relays[1]);
        assert_eq!(a.name, "a");
        assert_eq!(a.password.as_ref().map(Secret::expose), Some("s3cret-a"));
        assert_eq!((a.weight, a.concurrency, a.rate), (3, Some(8), 50));
        // Defaults: named by host and port, weight 1, [send]'s concurrency.
        assert_eq!(b.name, "b.example.com:465");
        assert_eq!((b.weight, b.concurrency, b.rate), (1, None, 0));
        assert!(b.username.is_none() && b.password.is_none());
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret-a"), "a password printed: {shown}");
    }

    #[test]
    fn relay_mistakes_are_refused_when_the_config_loads() {
        let relay = |body: &str| format!("[[smtp.relays]]\n{body}\n");
        let cases = [
            (
                format!(
                    "[smtp]\nurl = \"smtp://x:25\"\n{}",
                    relay("url = \"smtp://y:25\"")
                ),
                "both set",
            ),
            (
                format!(
                    "[smtp]\nurl = \"file://outbox\"\n{}",
                    relay("url = \"smtp://y:25\"")
                ),
                "both set",
            ),
            (
                format!(
                    "[smtp]\nusername = \"u\"\n{}",
                    relay("url = \"smtp://y:25\"")
                ),
                "both set",
            ),
            (
                relay("url = \"smtp://y:25\"").repeat(2),
                "a second relay named \"y:25\"",
            ),
            (
                relay("url = \"smtp://y:25\"\nweight = 0"),
                "weight must be at least 1",
            ),
            (
                relay("url = \"smtp://y:25\"\nconcurrency = 0"),
                "concurrency must be",
            ),
            (relay("url = \"gopher://y\""), "scheme must be"),
            (
                relay("url = \"smtp://y:25\"\nusername = \"u\""),
                "no password_env",
            ),
            (
                relay("url = \"smtp://y:25\"\npassword_env = \"HERALD_X\""),
                "no username",
            ),
            (
                relay("url = \"smtp://y:25\"\nusername = \"u\"\npassword_env = \"hunter2!\""),
                "must name an environment variable",
            ),
            (relay("url = \"smtp://u:hunter2@y:25\""), "holds a password"),
            (
                relay("url = \"smtp://y:25\"\nname = \"\""),
                "1 to 100 printable",
            ),
            (relay("name = \"no url\""), "url"),
            ("[smtp]\nbreaker_window = 0\n".to_string(), "at least 1"),
            (
                "[smtp]\nbreaker_threshold = 0.0\n".to_string(),
                "breaker_threshold",
            ),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", Settings::parse(&text).expect_err(&text));
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("hunter2"), "a password repeated: {error}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
