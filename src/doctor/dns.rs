//! DNS for the doctor: hickory-resolver (as re-exported by mail-auth, so
//! the DKIM verifier and the record checks share one resolver and one
//! cache), pointed at `[doctor] nameserver` when set, else the system's.

use std::time::Duration;

use mail_auth::hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::Name;
use mail_auth::MessageAuthenticator;

use crate::config::Settings;

/// What a query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// NXDOMAIN, or the name has no record of that type.
    Missing,
    /// The resolver could not answer (timeout, SERVFAIL, no server).
    Failed(String),
}

pub struct Dns {
    resolver: Result<MessageAuthenticator, String>,
    /// Where queries go, for messages.
    pub server: String,
}

impl Dns {
    pub fn new(settings: &Settings, timeout: Duration) -> Dns {
        let mut options = ResolverOpts::default();
        // Two tries inside the check's own timeout.
        options.timeout = (timeout / 3).max(Duration::from_millis(500));
        options.attempts = 2;
        let (config, server) = match settings.doctor_nameserver() {
            Ok(Some(address)) => (
                Ok(ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[address.ip()], address.port(), true),
                )),
                address.to_string(),
            ),
            Ok(None) => (
                mail_auth::hickory_resolver::system_conf::read_system_conf()
                    .map(|(config, _)| config)
                    .map_err(|e| format!("reading the system's resolver configuration: {e}")),
                "the system resolver".to_string(),
            ),
            Err(e) => (Err(e.to_string()), "nowhere".to_string()),
        };
        let resolver = config.and_then(|config| {
            MessageAuthenticator::new(config, options)
                .map_err(|e| format!("setting up the resolver: {e}"))
        });
        Dns { resolver, server }
    }

    pub fn authenticator(&self) -> Result<&MessageAuthenticator, String> {
        self.resolver.as_ref().map_err(Clone::clone)
    }

    /// Every TXT record at `name`, each one's strings joined (a long DKIM
    /// key is published as several strings of at most 255 bytes).
    pub async fn txt(&self, name: &str) -> Lookup<Vec<String>> {
        let resolver = match self.authenticator() {
            Ok(r) => r.resolver(),
            Err(e) => return Lookup::Failed(e),
        };
        let query = match absolute_name(name) {
            Ok(q) => q,
            Err(e) => return Lookup::Failed(e),
        };
        match resolver.txt_lookup(query).await {
            Ok(answer) => {
                let records: Vec<String> = answer
                    .as_lookup()
                    .record_iter()
                    .filter_map(|r| r.data().as_txt())
                    .map(|txt| {
                        let bytes: Vec<u8> =
                            txt.txt_data().iter().flat_map(|s| s.to_vec()).collect();
                        String::from_utf8_lossy(&bytes).into_owned()
                    })
                    .collect();
                if records.is_empty() {
                    Lookup::Missing
                } else {
                    Lookup::Found(records)
                }
            }
            Err(e) if e.is_no_records_found() => Lookup::Missing,
            Err(e) => Lookup::Failed(format!("asking {} for TXT {name}: {e}", self.server)),
        }
    }

    /// The mail exchangers of `name`, best first.
    pub async fn mx(&self, name: &str) -> Lookup<Vec<String>> {
        let resolver = match self.authenticator() {
            Ok(r) => r.resolver(),
            Err(e) => return Lookup::Failed(e),
        };
        let query = match absolute_name(name) {
            Ok(q) => q,
            Err(e) => return Lookup::Failed(e),
        };
        match resolver.mx_lookup(query).await {
            Ok(answer) => {
                let mut exchanges: Vec<(u16, String)> = answer
                    .as_lookup()
                    .records()
                    .iter()
                    .filter_map(|r| r.data().as_mx())
                    .map(|mx| (mx.preference(), mx.exchange().to_string()))
                    .collect();
                exchanges.sort();
                if exchanges.is_empty() {
                    Lookup::Missing
                } else {
                    Lookup::Found(exchanges.into_iter().map(|(_, name)| name).collect())
                }
            }
            Err(e) if e.is_no_records_found() => Lookup::Missing,
            Err(e) => Lookup::Failed(format!("asking {} for MX {name}: {e}", self.server)),
        }
    }
}

/// `example.com` → `example.com.`: no search domain is ever appended.
fn absolute_name(name: &str) -> Result<Name, String> {
    let absolute = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_str_relaxed(&absolute).map_err(|e| format!("{name:?} is not a DNS name: {e}"))
}
