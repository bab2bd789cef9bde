//! Reading and setting the service's cookies (all `HttpOnly; SameSite=Lax; Path=/`).

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};

/// The session token.
pub(crate) const SESSION: &str = "labctl_session";
/// The random value that CSRF tokens of pages without a session are bound to.
pub(crate) const CSRF: &str = "labctl_csrf";
/// The log position of this browser's last write, kept without a session (after registering,
/// after logging out) so the next login reads at least that state; signed, like the session.
pub(crate) const SEEN: &str = "labctl_pos";

/// The value of cookie `name`, if the request carries it.
pub(crate) fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

/// A `Set-Cookie` value; `max_age` in seconds, `None` for a cookie that ends with the browser.
/// `value` must be cookie-safe (base64url, digits).
pub(crate) fn set(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut line = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(seconds) = max_age {
        line.push_str(&format!("; Max-Age={seconds}"));
    }
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub(crate) fn clear(name: &str) -> HeaderValue {
    set(name, "", Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; labctl_csrf=xyz"));
        headers.append(COOKIE, HeaderValue::from_static("labctl_session=tok.en"));
        assert_eq!(get(&headers, CSRF).as_deref(), Some("xyz"));
        assert_eq!(get(&headers, SESSION).as_deref(), Some("tok.en"));
        assert_eq!(get(&headers, SEEN), None);
        assert_eq!(
            set(SEEN, "7", Some(60)),
            "labctl_pos=7; Path=/; HttpOnly; SameSite=Lax; Max-Age=60"
        );
    }
}
