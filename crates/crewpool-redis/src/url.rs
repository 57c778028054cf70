//! A Redis URL that never shows its password.

use std::fmt;

/// A `redis://` or `rediss://` URL whose password is hidden from `Debug` and `Display`.
///
/// The URL may carry an ACL user name and password
/// (`redis://worker:s3cret@10.0.0.5:6379/0`); both reach Redis when connecting, but the
/// password is printed as `***` everywhere this crate formats the URL: in `Debug`,
/// `Display`, error messages and logs.
///
/// # Examples
///
/// ```
/// use crewpool_redis::RedisUrl;
///
/// let url = RedisUrl::new("redis://worker:s3cret@10.0.0.5:6379/0");
/// assert_eq!(url.to_string(), "redis://worker:***@10.0.0.5:6379/0");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: String,
}

impl RedisUrl {
    /// Wraps a URL. It is checked when connecting, not here.
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl { url: url.into() }
    }

    /// The URL with its password, for handing to the Redis client only.
    pub(crate) fn expose(&self) -> &str {
        &self.url
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// The password in the URL, if any (still percent-encoded), for scrubbing messages.
    pub(crate) fn password(&self) -> Option<&str> {
        let (start, end) = self.password_span()?;
        Some(&self.url[start..end])
    }

    /// Byte range of the password inside `url`: after `scheme://user:` and before the
    /// `@` that ends the authority's user info.
    fn password_span(&self) -> Option<(usize, usize)> {
        let after_scheme = self.url.find("://")? + 3;
        let rest = &self.url[after_scheme..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let at = authority.rfind('@')?;
        let userinfo = &authority[..at];
        let colon = userinfo.find(':')?;
        let start = after_scheme + colon + 1;
        let end = after_scheme + at;
        (start < end).then_some((start, end))
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self.password_span() {
            Some((start, end)) => format!("{}***{}", &self.url[..start], &self.url[end..]),
            None => self.url.clone(),
        }
    }

    /// Replaces every occurrence of this URL's password (raw or percent-decoded) in
    /// `text` with `***`, for messages that come from the Redis client.
    pub(crate) fn scrub(&self, text: String) -> String {
        let Some(password) = self.password() else {
            return text;
        };
        let mut text = text;
        let decoded = percent_decode(password);
        for secret in [password, decoded.as_str()] {
            if !secret.is_empty() && text.contains(secret) {
                text = text.replace(secret, "***");
            }
        }
        text
    }
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        RedisUrl::new(url)
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        RedisUrl::new(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_password_everywhere() {
        let url = RedisUrl::new("rediss://crew:p%40ss@host:6380/2?x=1");
        assert_eq!(url.to_string(), "rediss://crew:***@host:6380/2?x=1");
        assert_eq!(
            format!("{url:?}"),
            r#"RedisUrl("rediss://crew:***@host:6380/2?x=1")"#
        );
        assert!(url.is_tls());
        assert_eq!(url.password(), Some("p%40ss"));
        assert_eq!(
            url.scrub("auth p@ss failed for p%40ss".to_owned()),
            "auth *** failed for ***"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for raw in [
            "redis://127.0.0.1:6379",
            "redis://user@host/0",
            "redis://host/0?a=b@c",
            "redis://:@host",
        ] {
            let url = RedisUrl::new(raw);
            assert_eq!(url.to_string(), raw);
            assert_eq!(url.scrub("text".to_owned()), "text");
        }
    }

    #[test]
    fn password_without_user_is_hidden() {
        let url = RedisUrl::new("redis://:hunter2@host:1/0");
        assert_eq!(url.to_string(), "redis://:***@host:1/0");
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
