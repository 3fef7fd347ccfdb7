//! Access rules of the API: the optional bearer token, and the checks that keep web
//! pages in a browser from reaching an API that has no token.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use super::response::ApiError;

/// Minimum length of a bearer token in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token that requests must present. Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Failure to read a token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("failed to read the token file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The token is shorter than [`MIN_TOKEN_LEN`].
    #[error(
        "the token in {} is {len} bytes long; use at least {MIN_TOKEN_LEN}, for example \
         the output of `head -c 32 /dev/urandom | base64`",
        path.display()
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The token's length in bytes.
        len: usize,
    },
    /// The token has characters that an HTTP header cannot carry.
    #[error(
        "the token in {} contains spaces or characters outside printable ASCII; \
         a bearer token must be one word of printable ASCII",
        path.display()
    )]
    InvalidCharacters {
        /// The file.
        path: PathBuf,
    },
}

impl Token {
    /// Creates a token from its text, which must be at least [`MIN_TOKEN_LEN`] bytes of
    /// printable ASCII without spaces. `origin` names where it came from, for errors.
    pub fn new(text: &str, origin: &Path) -> Result<Token, TokenError> {
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(TokenError::InvalidCharacters {
                path: origin.to_owned(),
            });
        }
        if text.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                path: origin.to_owned(),
                len: text.len(),
            });
        }
        Ok(Token(text.to_owned()))
    }

    /// Reads a token from a file; whitespace around it, such as a final newline, is
    /// ignored.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenError::Read {
            path: path.to_owned(),
            error,
        })?;
        Token::new(text.trim(), path)
    }

    /// Checks the `Authorization` header of a request. Compares in constant time for
    /// tokens of equal length, so response times do not reveal matching prefixes.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let unauthorized =
            |reason: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason);
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "missing bearer token: send the header \"Authorization: Bearer TOKEN\"",
            ));
        };
        // HTTP compares authentication scheme names without regard to case.
        let presented = value
            .as_bytes()
            .split_at_checked(SCHEME.len())
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(SCHEME))
            .map(|(_, token)| token)
            .ok_or_else(|| unauthorized("the Authorization header must be \"Bearer TOKEN\""))?;
        if bool::from(self.0.as_bytes().ct_eq(presented)) {
            Ok(())
        } else {
            Err(unauthorized("wrong bearer token"))
        }
    }
}

/// The authentication scheme of an Authorization header, with the space after it.
const SCHEME: &[u8] = b"Bearer ";

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Rejects requests that a browser sends on behalf of a web page. Browsers add an
/// `Origin` header to cross-origin requests, and a page can send a simple POST to a
/// loopback port without asking first, so such requests never reach the engine.
pub fn reject_browser_requests(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::ORIGIN) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests with an Origin header (from web pages in a browser) are not accepted",
        ));
    }
    Ok(())
}

/// Without a token, accepts only requests whose `Host` is a loopback name or address,
/// so a web page that points its own host name at 127.0.0.1 (DNS rebinding) is rejected.
/// Requests without a `Host` header (HTTP/1.0) pass.
pub fn require_loopback_host(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or("");
    if is_loopback_host(host) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "Host {host:?} is not a loopback name or address; without a token the API \
             answers only requests addressed to localhost, 127.0.0.1 or [::1]"
        ),
    ))
}

/// Returns whether a `Host` header value names the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // "[::1]:7878" or "[::1]"
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_header(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn token() -> Token {
        Token::new("0123456789abcdef", Path::new("test")).unwrap()
    }

    #[test]
    fn token_rules() {
        let origin = Path::new("t");
        assert!(matches!(
            Token::new("short", origin),
            Err(TokenError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            Token::new("with a space inside it", origin),
            Err(TokenError::InvalidCharacters { .. })
        ));
        assert!(Token::new("0123456789abcdef", origin).is_ok());
        assert_eq!(format!("{:?}", token()), "Token(..)");
    }

    #[test]
    fn bearer_check() {
        let token = token();
        assert!(token.check(&HeaderMap::new()).is_err());
        let right = with_header(header::AUTHORIZATION, "Bearer 0123456789abcdef");
        assert!(token.check(&right).is_ok());
        let wrong = with_header(header::AUTHORIZATION, "Bearer 0123456789abcdeX");
        assert_eq!(
            token.check(&wrong).unwrap_err().reason,
            "wrong bearer token"
        );
        let lower = with_header(header::AUTHORIZATION, "bearer 0123456789abcdef");
        assert!(token.check(&lower).is_ok());
        let prefix = with_header(header::AUTHORIZATION, "Bearer 0123");
        assert!(token.check(&prefix).is_err());
        let basic = with_header(header::AUTHORIZATION, "Basic 0123456789abcdef");
        assert!(token.check(&basic).is_err());
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST:7878",
            "127.0.0.1",
            "127.0.0.1:7878",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:7878",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "evil.test:7878",
            "10.0.0.1:7878",
            "[::2]:1",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn browser_requests_rejected() {
        let headers = with_header(header::ORIGIN, "https://example.com");
        assert_eq!(
            reject_browser_requests(&headers).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(reject_browser_requests(&HeaderMap::new()).is_ok());
    }
}
