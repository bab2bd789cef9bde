//! The rules a value must follow before it reaches the database (SPEC §5: "422 invalid value").
//!
//! Pure functions, no I/O: the input node may call them to answer early, and the writer calls them
//! again before accepting a write, because it trusts nothing that travelled up the tree. Each error
//! names the value (shortened if long, never for a password) and the rule it broke.

use crate::ops::AppError;

/// The longest username, in characters.
pub const MAX_USERNAME: usize = 32;
/// The fewest digits in a tag.
pub const MIN_TAG: usize = 3;
/// The most digits in a tag.
pub const MAX_TAG: usize = 6;
/// The shortest password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password, in characters.
pub const MAX_PASSWORD: usize = 128;
/// The longest message, in characters.
pub const MAX_CONTENT: usize = 4000;
/// The longest group name, in characters (after trimming).
pub const MAX_GROUP_NAME: usize = 64;

/// A username: 1 to [`MAX_USERNAME`] characters, each a letter or a digit (any script) or one of
/// `_`, `-`, `.`, not only dots (`.` and `..` are path segments); so no whitespace.
///
/// # Errors
/// [`AppError::Invalid`] naming the value and the rule.
pub fn username(s: &str) -> Result<(), AppError> {
    let length = s.chars().count();
    if !(1..=MAX_USERNAME).contains(&length) {
        return Err(AppError::Invalid(format!(
            "username must be 1 to {MAX_USERNAME} characters long, got {length} in {}",
            shown(s)
        )));
    }
    if let Some(bad) = s.chars().find(|&c| !username_char(c)) {
        return Err(AppError::Invalid(format!(
            "username may only contain letters, digits, '_', '-' and '.', got {} ({bad:?} is not allowed)",
            shown(s)
        )));
    }
    if s.chars().all(|c| c == '.') {
        // `.` and `..` are path segments: /users/.. would name no user, or another route.
        return Err(AppError::Invalid(format!(
            "username must hold a letter, a digit, '_' or '-', not only dots: got {}",
            shown(s)
        )));
    }
    Ok(())
}

/// Whether `c` may appear in a username.
fn username_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A tag: [`MIN_TAG`] to [`MAX_TAG`] ASCII digits (`[0-9]{3,6}`).
///
/// # Errors
/// [`AppError::Invalid`], e.g. `tag must be 3 to 6 digits, got "12"`.
pub fn tag(s: &str) -> Result<(), AppError> {
    if (MIN_TAG..=MAX_TAG).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "tag must be {MIN_TAG} to {MAX_TAG} digits, got {}",
            shown(s)
        )))
    }
}

/// A password, before hashing: [`MIN_PASSWORD`] to [`MAX_PASSWORD`] characters. The message
/// gives its length, never the password.
///
/// # Errors
/// [`AppError::Invalid`].
pub fn password(s: &str) -> Result<(), AppError> {
    let length = s.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long, got {length}"
        )))
    }
}

/// A message's content: not empty once trimmed, at most [`MAX_CONTENT`] characters (counted as
/// sent; the content is stored as sent, surrounding whitespace included).
///
/// # Errors
/// [`AppError::Invalid`].
pub fn content(s: &str) -> Result<(), AppError> {
    if s.trim().is_empty() {
        return Err(AppError::Invalid("a message must not be empty".to_string()));
    }
    let length = s.chars().count();
    if length > MAX_CONTENT {
        return Err(AppError::Invalid(format!(
            "a message may be at most {MAX_CONTENT} characters long, got {length}"
        )));
    }
    Ok(())
}

/// A group name: 1 to [`MAX_GROUP_NAME`] characters once trimmed (the store keeps the trimmed
/// name).
///
/// # Errors
/// [`AppError::Invalid`].
pub fn group_name(s: &str) -> Result<(), AppError> {
    let length = s.trim().chars().count();
    if (1..=MAX_GROUP_NAME).contains(&length) {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "a group name must be 1 to {MAX_GROUP_NAME} characters long (not counting surrounding spaces), got {length} in {}",
            shown(s)
        )))
    }
}

/// An id: a UUID in its canonical hyphenated lowercase form, as this crate generates them.
///
/// An id that is not a UUID answers [`AppError::NotFound`], not `Invalid`: ids travel in paths
/// (`/groups/{uuid}`), and a path naming something that cannot exist names an unknown resource, so
/// the client sees the same 404 as for a well-formed id that matches nothing.
///
/// # Errors
/// [`AppError::NotFound`].
pub fn uuid(s: &str) -> Result<(), AppError> {
    match uuid::Uuid::try_parse(s) {
        Ok(id) if id.hyphenated().to_string() == s => Ok(()),
        _ => Err(AppError::NotFound(format!(
            "no such id {}: not a UUID",
            shown(s)
        ))),
    }
}

/// `s` quoted for a message, cut to its first 40 characters.
fn shown(s: &str) -> String {
    const LIMIT: usize = 40;
    if s.chars().count() <= LIMIT {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(LIMIT).collect();
        format!("{head:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(result: Result<(), AppError>) -> String {
        match result {
            Err(AppError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn usernames() {
        for good in [
            "alice",
            "a",
            "Zoë",
            "名前",
            "bob_2",
            "x-y.z",
            &"a".repeat(32),
        ] {
            assert_eq!(username(good), Ok(()), "{good:?}");
        }
        let message = invalid(username(""));
        assert!(message.contains("1 to 32"), "{message}");
        let message = invalid(username(&"a".repeat(33)));
        assert!(message.contains("got 33"), "{message}");
        let message = invalid(username("ali ce"));
        assert!(
            message.contains("\"ali ce\"") && message.contains("' '"),
            "{message}"
        );
        for bad in ["tab\there", "new\nline", "a/b", "a#1", "é\u{a0}"] {
            invalid(username(bad));
        }
        for dots in [".", "..", "..."] {
            let message = invalid(username(dots));
            assert!(message.contains("not only dots"), "{message}");
        }
        assert_eq!(username(".a."), Ok(()));
    }

    #[test]
    fn tags() {
        for good in ["000", "123", "123456"] {
            assert_eq!(tag(good), Ok(()));
        }
        assert_eq!(invalid(tag("12")), "tag must be 3 to 6 digits, got \"12\"");
        for bad in ["", "1234567", "12a", "١٢٣", " 123"] {
            invalid(tag(bad));
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(password("12345678"), Ok(()));
        assert_eq!(password(&"p".repeat(128)), Ok(()));
        let message = invalid(password("secret1"));
        assert!(
            !message.contains("secret1"),
            "a password is never echoed: {message}"
        );
        invalid(password(&"p".repeat(129)));
    }

    #[test]
    fn contents() {
        assert_eq!(content("hi"), Ok(()));
        assert_eq!(content(&"x".repeat(MAX_CONTENT)), Ok(()));
        invalid(content(""));
        invalid(content(" \n\t"));
        let message = invalid(content(&"x".repeat(MAX_CONTENT + 1)));
        assert!(message.contains("4001"), "{message}");
    }

    #[test]
    fn group_names() {
        assert_eq!(group_name("lab 7"), Ok(()));
        assert_eq!(group_name(&format!("  {}  ", "g".repeat(64))), Ok(()));
        invalid(group_name("   "));
        invalid(group_name(&"g".repeat(65)));
    }

    #[test]
    fn uuids() {
        assert_eq!(uuid("67e55044-10b1-426f-9247-bb680e5fe0c8"), Ok(()));
        for bad in [
            "",
            "nope",
            "67e5504410b1426f9247bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
        ] {
            assert!(matches!(uuid(bad), Err(AppError::NotFound(_))), "{bad:?}");
        }
    }
}
