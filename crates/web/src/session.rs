//! Sessions and CSRF tokens, signed with the lab-wide secret.
//!
//! A session is not stored anywhere: the cookie *is* the session, a token
//! `<payload>.<mac>` where `payload` is the base64url JSON of [`Session`] and `mac` its
//! HMAC-SHA256 under the lab's secret. Any input node holding the secret verifies it, so a user
//! logged in at one input node is logged in at all of them (SPEC §5). Changing one byte of the
//! payload (say, `pos` or `uuid`) breaks the MAC; an expired session is refused like a forged one.
//! The read position of read-your-writes (SPEC §4) lives inside the token, under the MAC; without
//! a session, a separate signed `labctl_pos` cookie holds it, and a position in any other form
//! (an unsigned `labctl_pos`, a `labctl_seq` of an older version) is ignored.
//!
//! Logging out must end the token too, not only the browser's copy of it: the token carries its
//! user's session *generation*, a number in the replicated store that logging out raises, and
//! every request with a session first reads the user's generation (at a node that holds the
//! session's position): a token of an older generation is no session at all.
//!
//! Every MAC is computed over a purpose label first (`session`, `csrf-session`, `csrf-cookie`), so
//! a value signed for one purpose is never accepted for another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use labctl_chat::ops::User;
use labctl_core::log::Pos;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A logged-in user, as carried by the session cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The user's id.
    pub uuid: String,
    /// The user's name.
    pub username: String,
    /// The user's tag.
    pub tag: String,
    /// When the session ends, in milliseconds since the Unix epoch.
    pub exp: u64,
    /// The log position of the user's last write: reads are served only where it is committed.
    pub pos: Pos,
    /// The user's session generation when it logged in: once it logs out (the generation goes
    /// up, in the replicated store), this token is refused at every input node.
    #[serde(default)]
    pub generation: u64,
}

impl Session {
    /// A session for `user`, issued in its session `generation`, that ends `ttl` after `now`.
    pub fn new(user: User, generation: u64, now: u64, ttl: Duration, pos: Pos) -> Self {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Session {
            uuid: user.uuid,
            username: user.username,
            tag: user.tag,
            exp: now.saturating_add(ttl),
            pos,
            generation,
        }
    }

    /// The user.
    pub fn user(&self) -> User {
        User {
            uuid: self.uuid.clone(),
            username: self.username.clone(),
            tag: self.tag.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Signs and checks sessions and CSRF tokens with the lab's secret.
#[derive(Clone)]
pub(crate) struct Keys {
    secret: Vec<u8>,
}

impl Keys {
    /// Keys over `secret` (not empty: [`crate::router`] checks).
    pub fn new(secret: Vec<u8>) -> Self {
        Keys { secret }
    }

    /// An HMAC over `purpose`, a separator, then `data`.
    fn mac(&self, purpose: &str, data: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data);
        mac
    }

    /// The session as a cookie-safe token.
    pub fn sign(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).expect("a session serialises");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = self
            .mac("session", payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session in `token`, if this lab signed it and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Option<Session> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac("session", payload.as_bytes())
            .verify_slice(&tag)
            .ok()?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let session: Session = serde_json::from_slice(&json).ok()?;
        (session.exp > now).then_some(session)
    }

    /// A read position as a cookie-safe token, for a browser without a session (SPEC §4: an
    /// unsigned or forged position is ignored).
    pub fn sign_pos(&self, pos: Pos) -> String {
        let payload = format!("{}.{}", pos.epoch, pos.seq);
        let tag = self.mac("position", payload.as_bytes()).finalize();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.into_bytes()))
    }

    /// The read position in `token`, if this lab signed it.
    pub fn verify_pos(&self, token: &str) -> Option<Pos> {
        let (payload, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac("position", payload.as_bytes())
            .verify_slice(&tag)
            .ok()?;
        let (epoch, seq) = payload.split_once('.')?;
        Some(Pos::new(epoch.parse().ok()?, seq.parse().ok()?))
    }

    /// The CSRF token of a session: stable while the session lasts (a re-issued cookie with a new
    /// position keeps it), different for every user and every login.
    pub fn csrf_for_session(&self, session: &Session) -> String {
        let bound = format!("{}|{}", session.uuid, session.exp);
        let tag = self.mac("csrf-session", bound.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(tag.into_bytes())
    }

    /// The CSRF token for a browser without a session (register, login): bound to the random
    /// value of its CSRF cookie (double submit, signed so that a cookie planted by a sibling
    /// site cannot be paired with a token of its choosing).
    pub fn csrf_for_cookie(&self, nonce: &str) -> String {
        let tag = self.mac("csrf-cookie", nonce.as_bytes()).finalize();
        URL_SAFE_NO_PAD.encode(tag.into_bytes())
    }

    /// Whether `token` is the CSRF token of `session` or of the CSRF cookie `nonce` (compared in
    /// constant time).
    pub fn check_csrf(&self, token: &str, session: Option<&Session>, nonce: Option<&str>) -> bool {
        let Ok(token) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        let by_session = session.is_some_and(|session| {
            let bound = format!("{}|{}", session.uuid, session.exp);
            self.mac("csrf-session", bound.as_bytes())
                .verify_slice(&token)
                .is_ok()
        });
        let by_cookie = nonce.is_some_and(|nonce| {
            self.mac("csrf-cookie", nonce.as_bytes())
                .verify_slice(&token)
                .is_ok()
        });
        by_session || by_cookie
    }
}

/// A fresh random value for a CSRF cookie (128 bits, base64url).
pub(crate) fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(exp: u64, seq: u64) -> Session {
        Session {
            uuid: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
            username: "alice".into(),
            tag: "123".into(),
            exp,
            pos: Pos::new(1, seq),
            generation: 0,
        }
    }

    #[test]
    fn read_positions_are_signed() {
        let keys = Keys::new(b"secret".to_vec());
        let token = keys.sign_pos(Pos::new(3, 41));
        assert_eq!(keys.verify_pos(&token), Some(Pos::new(3, 41)));
        assert_eq!(Keys::new(b"other".to_vec()).verify_pos(&token), None);
        let (_, tag) = token.rsplit_once('.').unwrap();
        assert_eq!(keys.verify_pos(&format!("3.999999.{tag}")), None, "forged");
        for garbage in ["", "7", "999999", "1.2", "a.b.c", "..."] {
            assert_eq!(keys.verify_pos(garbage), None, "{garbage:?}");
        }
        // A session token is no position, and a position no session.
        let session = keys.sign(&alice(1_000, 7));
        assert_eq!(keys.verify_pos(&session), None);
        assert_eq!(keys.verify(&token, 0), None);
    }

    #[test]
    fn signed_sessions_verify_until_they_expire() {
        let keys = Keys::new(b"secret".to_vec());
        let token = keys.sign(&alice(1_000, 7));
        assert_eq!(keys.verify(&token, 999), Some(alice(1_000, 7)));
        assert_eq!(keys.verify(&token, 1_000), None, "expired");
        assert_eq!(Keys::new(b"other".to_vec()).verify(&token, 0), None);
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let keys = Keys::new(b"secret".to_vec());
        let token = keys.sign(&alice(1_000, 7));
        let (_, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&alice(1_000, 99)).unwrap());
        assert_eq!(keys.verify(&format!("{forged}.{tag}"), 0), None);
        for garbage in ["", ".", "abc", "abc.def", "a.b.c"] {
            assert_eq!(keys.verify(garbage, 0), None, "{garbage:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session_or_cookie() {
        let keys = Keys::new(b"secret".to_vec());
        let session = alice(1_000, 1);
        let token = keys.csrf_for_session(&session);
        assert!(keys.check_csrf(&token, Some(&session), None));
        // A write re-issues the cookie with a new seq: the page's token still holds.
        assert!(keys.check_csrf(&token, Some(&alice(1_000, 2)), None));
        assert!(!keys.check_csrf(&token, Some(&alice(2_000, 1)), None));
        assert!(!keys.check_csrf(&token, None, Some("nonce")));
        let anonymous = keys.csrf_for_cookie("nonce");
        assert!(keys.check_csrf(&anonymous, None, Some("nonce")));
        assert!(!keys.check_csrf(&anonymous, None, Some("other")));
        assert!(!keys.check_csrf("not base64!", Some(&session), Some("nonce")));
        assert_ne!(nonce(), nonce());
    }
}
