//! The web side, as a mail client and a feed reader meet it: `base_url`
//! over HTTPS, the one-click unsubscribe endpoint (RFC 8058), the feeds.

use std::time::Duration;

use url::Url;

use super::Finding;
use crate::config::Settings;
use crate::domain::Token;

/// The feeds `herald build` writes (README: "Feeds and the web archive").
pub const FEEDS: [&str; 3] = ["feed.xml", "atom.xml", "feed.json"];

pub fn https_check(base_url: &Url) -> Finding {
    if base_url.scheme() == "https" {
        Finding::ok("web-https", format!("base_url {base_url} is https"))
    } else {
        Finding::error(
            "web-https",
            format!(
                "base_url {base_url} is not https: mail clients (Gmail among them) only offer one-click unsubscribe over https"
            ),
            "serve the site over https and set [site] base_url to its https:// address",
        )
    }
}

/// The verdict on the status a POST for an unknown token got.
pub fn judge_unsubscribe(url: &str, status: u16) -> Finding {
    match status {
        404 => Finding::ok(
            "web-unsubscribe",
            format!("one-click unsubscribe answers an unknown token with 404 ({url})"),
        ),
        300..=399 => Finding::error(
            "web-unsubscribe",
            format!("a one-click unsubscribe POST to {url} is redirected ({status}): mail clients do not follow it"),
            "serve /unsubscribe/ from `herald serve` directly at base_url, without a redirect (to https or elsewhere)",
        ),
        500..=599 => Finding::error(
            "web-unsubscribe",
            format!("a one-click unsubscribe POST to {url} fails with {status}"),
            "look at `herald serve`'s log (and its database) for the error",
        ),
        _ => Finding::error(
            "web-unsubscribe",
            format!("a one-click unsubscribe POST for an unknown token at {url} answers {status}, not 404: is this Herald?"),
            "route base_url's /unsubscribe/ to `herald serve`",
        ),
    }
}

pub async fn checks(settings: &Settings, timeout: Duration) -> Vec<Finding> {
    let base = &settings.site.base_url;
    let mut findings = vec![https_check(base)];
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("herald-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            findings.push(Finding::error(
                "web-unsubscribe",
                format!("cannot set up an HTTP client: {e}"),
                "report this as a bug",
            ));
            return findings;
        }
    };
    let (unsubscribe, feeds) =
        tokio::join!(unsubscribe_check(&client, base), feeds_check(&client, base));
    findings.push(unsubscribe);
    findings.push(feeds);
    findings
}

async fn unsubscribe_check(client: &reqwest::Client, base: &Url) -> Finding {
    // A fresh random token of the real shape: nobody has it, so nobody is
    // unsubscribed, yet the request goes all the way to the database.
    let url = match base.join(&format!("unsubscribe/{}", Token::generate().as_str())) {
        Ok(url) => url,
        Err(e) => {
            return Finding::error(
                "web-unsubscribe",
                format!("base_url: {e}"),
                "fix [site] base_url",
            )
        }
    };
    let shown = format!("{base}unsubscribe/…");
    let sent = client
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await;
    match sent {
        Ok(response) => judge_unsubscribe(&shown, response.status().as_u16()),
        Err(e) => Finding::error(
            "web-unsubscribe",
            format!("cannot reach {shown}: {}", request_error(&e.without_url())),
            "run `herald serve` where base_url points (mail clients POST there when a reader unsubscribes)",
        ),
    }
}

async fn feeds_check(client: &reqwest::Client, base: &Url) -> Finding {
    let mut problems = Vec::new();
    for feed in FEEDS {
        let Ok(url) = base.join(feed) else { continue };
        match client.get(url.clone()).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => problems.push(format!("{url} answers {}", response.status().as_u16())),
            Err(e) => problems.push(format!("{url}: {}", request_error(&e.without_url()))),
        }
    }
    if problems.is_empty() {
        Finding::ok(
            "web-feeds",
            format!("the feeds answer at {base} ({})", FEEDS.join(", ")),
        )
    } else {
        Finding::error(
            "web-feeds",
            format!("feeds unreachable: {}", problems.join("; ")),
            "run `herald build` and serve its output (`herald serve`) at base_url",
        )
    }
}

/// reqwest's message plus its cause ("error sending request" alone says
/// nothing).
fn request_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    #[test]
    fn only_https_passes() {
        let https = Url::parse("https://news.example.com/").unwrap();
        let http = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(https_check(&https).level, Level::Ok);
        assert_eq!(https_check(&http).level, Level::Error);
    }

    #[test]
    fn an_unknown_token_must_get_404() {
        assert_eq!(judge_unsubscribe("u", 404).level, Level::Ok);
        for status in [200, 301, 302, 308, 403, 500, 503] {
            assert_eq!(
                judge_unsubscribe("u", status).level,
                Level::Error,
                "{status}"
            );
        }
        assert!(judge_unsubscribe("u", 302).message.contains("redirected"));
    }
}
