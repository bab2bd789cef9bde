//! A client of the chat's HTTP API (SPEC §5) as labctl's own tools use it: `bench http`, `chaos`
//! and `bench failover` register users, log them in and read answers through these, so none of
//! them imports another command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use labctl_topology::rng::SplitMix64;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::json;

/// How long one measured request may take before it counts as a `timeout` error.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one registration or login may take (the password hash is slow on purpose).
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to wait for a TCP connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Registrations tried per client before giving up on finding a free tag.
pub(crate) const TAG_ATTEMPTS: usize = 20;
/// The longest error example kept per error kind, in characters.
pub(crate) const EXAMPLE_CHARS: usize = 200;

/// Registers `username` at `base` (with a tag drawn from `tag_seed`, another while one is
/// taken) and logs it in: an HTTP client whose cookie jar holds the session, and the tag.
///
/// On a fresh lab the tag follows the seed. Once one is taken (by an earlier run with the same
/// seed, say), the next are drawn from the seed mixed with the clock: the same seed's tags would
/// all be taken after [`TAG_ATTEMPTS`] runs on one lab.
pub(crate) async fn user(
    username: &str,
    base: &Url,
    tag_seed: u64,
) -> Result<(reqwest::Client, String)> {
    let (http, jar) = session_client()?;
    let password = password_of(username);
    let mut tags = SplitMix64::new(tag_seed);

    // Register, drawing another tag while this one is taken (say, by an earlier run).
    let register = base.join("register").expect("a valid path");
    let mut tag = None;
    for attempt in 0..TAG_ATTEMPTS {
        if attempt == 1 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            tags = SplitMix64::new(tag_seed ^ now ^ u64::from(std::process::id()));
        }
        let candidate = random_tag(&mut tags);
        let body = json!({"username": username, "tag": candidate, "password": password});
        let (status, text) = setup_request(&http, &register, &body)
            .await
            .with_context(|| format!("registering user {username}#{candidate}"))?;
        match status {
            StatusCode::CREATED => {
                tag = Some(candidate);
                break;
            }
            StatusCode::CONFLICT => continue,
            _ => bail!(
                "registering user {username}#{candidate}: POST {register} answered {status}: {}",
                shorten(&error_text(&text))
            ),
        }
    }
    let Some(tag) = tag else {
        bail!("registering user {username}: {TAG_ATTEMPTS} tags in a row were taken (409)");
    };

    login(&http, &jar, base, username, &tag).await?;
    Ok((http, tag))
}

/// The password [`user`] gives `username`.
pub(crate) fn password_of(username: &str) -> String {
    format!("{username}-password")
}

/// A JSON client with a cookie jar of its own (for a session), and the jar.
pub(crate) fn session_client() -> Result<(reqwest::Client, Arc<Jar>)> {
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .no_proxy()
        .cookie_provider(Arc::clone(&jar))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .default_headers(json_headers())
        .build()
        .context("building the HTTP client")?;
    Ok((http, jar))
}

/// Log `username#tag` (registered by [`user`]) in at `base`: the session cookie lands in `jar`.
pub(crate) async fn login(
    http: &reqwest::Client,
    jar: &Jar,
    base: &Url,
    username: &str,
    tag: &str,
) -> Result<()> {
    let login = base.join("login").expect("a valid path");
    let body = json!({"username": username, "tag": tag, "password": password_of(username)});
    let (status, text) = setup_request(http, &login, &body)
        .await
        .with_context(|| format!("logging in as {username}#{tag}"))?;
    if status != StatusCode::OK {
        bail!(
            "logging in as {username}#{tag}: POST {login} answered {status}: {}",
            shorten(&error_text(&text))
        );
    }
    if jar.cookies(base).is_none() {
        bail!("logging in as {username}#{tag}: POST {login} answered {status} but set no cookie");
    }
    Ok(())
}

/// One setup POST with a JSON body: its status and body text.
///
/// A 503 with `Retry-After` (the input node's password hashers are all busy: nothing was done,
/// SPEC §5) is tried again after that many seconds, until [`SETUP_TIMEOUT`] has passed: every
/// client registers and logs in at once, more than an input node hashes at a time.
pub(crate) async fn setup_request(
    http: &reqwest::Client,
    url: &Url,
    body: &serde_json::Value,
) -> Result<(StatusCode, String)> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let response = http
            .post(url.clone())
            .timeout(SETUP_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("POST {url}: {}", chain(&e)))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let text = response
            .text()
            .await
            .map_err(|e| anyhow::anyhow!("POST {url}: reading the answer: {}", chain(&e)))?;
        match retry_after {
            Some(wait) if status == StatusCode::SERVICE_UNAVAILABLE => {
                if Instant::now() + wait >= deadline {
                    return Ok((status, text));
                }
                tokio::time::sleep(wait).await;
            }
            _ => return Ok((status, text)),
        }
    }
}

/// A response's `Retry-After` in seconds (1 to 60; the date form is not used here).
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.clamp(1, 60)))
}

/// `Accept` and `Content-Type: application/json`, sent with every request.
pub(crate) fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    let json = HeaderValue::from_static("application/json");
    headers.insert(ACCEPT, json.clone());
    headers.insert(CONTENT_TYPE, json);
    headers
}

/// A tag of 3 to 6 digits (SPEC §5).
pub(crate) fn random_tag(rng: &mut SplitMix64) -> String {
    let digits = 3 + rng.below(4);
    (0..digits)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

/// An error and its causes on one line (reqwest's own message leaves the causes out).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The message of a JSON error body (`{"error": "..."}`), else the body itself.
pub(crate) fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

/// `text` on one line, at most [`EXAMPLE_CHARS`] characters.
pub(crate) fn shorten(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= EXAMPLE_CHARS {
        line
    } else {
        let cut: String = line.chars().take(EXAMPLE_CHARS).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_three_to_six_digits_and_reproducible() {
        let mut a = SplitMix64::new(9);
        let mut b = SplitMix64::new(9);
        for _ in 0..1000 {
            let tag = random_tag(&mut a);
            assert!((3..=6).contains(&tag.len()), "{tag}");
            assert!(tag.bytes().all(|c| c.is_ascii_digit()), "{tag}");
            assert_eq!(tag, random_tag(&mut b));
        }
    }

    #[test]
    fn error_bodies_are_read_and_shortened() {
        assert_eq!(error_text(r#"{"error": "no writer"}"#), "no writer");
        assert_eq!(error_text(" plain\n"), "plain");
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), EXAMPLE_CHARS + 1);
        assert_eq!(shorten("a\n  b"), "a b");
    }
}
