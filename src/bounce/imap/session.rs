//! Opening an authenticated IMAP session over TLS (implicit, or STARTTLS
//! that is required), with a deadline on every step.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::config::{ImapConfig, Security};
use super::ImapError;

pub type ImapSession = async_imap::Session<TlsStream<TcpStream>>;

/// A server that stops answering must not hang the poller: every command
/// gets this long. Generous, because one command may carry a message of
/// several megabytes over a slow link.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one IMAP step under [`COMMAND_TIMEOUT`], naming it in the error.
pub async fn step<T, E: std::fmt::Display>(
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ImapError::Server(format!("{what}: {e}"))),
        Err(_) => Err(ImapError::Server(format!(
            "{what}: no answer within {}s",
            COMMAND_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects, secures the connection and logs in. The password is sent only
/// inside TLS, and never appears in an error.
pub async fn connect(config: &ImapConfig) -> Result<ImapSession, ImapError> {
    let address = format!("{}:{}", config.host, config.port);
    let tcp = step(
        &format!("connecting to {address}"),
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await?;
    let tls = match config.security {
        Security::Implicit => {
            let tls = handshake(config, tcp).await?;
            let mut client = async_imap::Client::new(tls);
            read_greeting(&mut client, &address).await?;
            client
        }
        Security::StartTls => {
            let mut plain = async_imap::Client::new(tcp);
            read_greeting(&mut plain, &address).await?;
            // Asking for STARTTLS (rather than trusting a capability list
            // an attacker could strip) and failing when refused is what
            // keeps LOGIN off a plain-text connection.
            step(
                &format!("STARTTLS with {address} (required: LOGIN is never sent in plain text)"),
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let tls = handshake(config, plain.into_inner()).await?;
            async_imap::Client::new(tls)
        }
    };
    match tokio::time::timeout(
        COMMAND_TIMEOUT,
        tls.login(&config.user, config.password.expose()),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(ImapError::Server(format!(
            "logging in to {address} as {:?}: {}",
            config.user,
            scrub(&e.to_string(), config)
        ))),
        Err(_) => Err(ImapError::Server(format!(
            "logging in to {address}: no answer"
        ))),
    }
}

async fn handshake(config: &ImapConfig, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ImapError> {
    step(
        &format!("TLS handshake with {}:{}", config.host, config.port),
        TlsConnector::from(config.tls.clone()).connect(config.server_name.clone(), tcp),
    )
    .await
}

async fn read_greeting<T>(
    client: &mut async_imap::Client<T>,
    address: &str,
) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    match step(
        &format!("reading {address}'s greeting"),
        client.read_response(),
    )
    .await?
    {
        Some(_) => Ok(()),
        None => Err(ImapError::Server(format!(
            "{address} closed the connection before its greeting"
        ))),
    }
}

/// A server may echo the command it refused; make sure the password never
/// reaches a log line that way.
fn scrub(message: &str, config: &ImapConfig) -> String {
    let password = config.password.expose();
    if password.is_empty() {
        message.to_string()
    } else {
        message.replace(password, "***")
    }
}
