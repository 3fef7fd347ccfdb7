//! Sessions and their ids. Owned by the engine worker; views of them are sent to the UI.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ecow::EcoString;
use serde::Serialize;

use super::clock::MonoTime;

/// A validated session id: non-empty UTF-8, at most [`SessionId::MAX_LEN`] bytes, with no
/// control characters. It takes 16 bytes: an id of up to 15 bytes is stored inline, with
/// no allocation, and a longer one is shared on the heap, so cloning never copies its
/// text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(EcoString);

/// Reason a session id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// The id has no characters.
    #[error("session id is empty")]
    Empty,
    /// The id is longer than [`SessionId::MAX_LEN`] bytes.
    #[error("session id is {len} bytes long; the maximum is {max}", max = SessionId::MAX_LEN)]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
    },
    /// The id is not valid UTF-8.
    #[error("session id is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The id contains a control character such as a newline or escape.
    #[error("session id contains control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// The code point of the control character.
        code: u32,
        /// Byte offset of the control character.
        offset: usize,
    },
}

impl SessionId {
    /// Maximum length of an id in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates `text` as a session id.
    pub fn new(text: &str) -> Result<Self, InvalidId> {
        Self::validate(text)?;
        Ok(SessionId(EcoString::from(text)))
    }

    /// Validates raw bytes as a session id, rejecting invalid UTF-8.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidId> {
        if bytes.len() > Self::MAX_LEN {
            return Err(InvalidId::TooLong { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|error| InvalidId::NotUtf8 {
            offset: error.valid_up_to(),
        })?;
        Self::new(text)
    }

    /// Checks `text` against the id rules without allocating.
    pub fn validate(text: &str) -> Result<(), InvalidId> {
        if text.is_empty() {
            return Err(InvalidId::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidId::TooLong { len: text.len() });
        }
        // Control characters are U+0000 to U+001F, U+007F, and U+0080 to U+009F, which
        // UTF-8 encodes as 0xC2 and a second byte. One pass over the bytes, without
        // decoding, clears most ids. Only ids with a suspect byte are decoded.
        let suspect = text.bytes().fold(false, |found, byte| {
            found | (byte < 0x20) | (byte == 0x7f) | (byte == 0xc2)
        });
        if !suspect {
            return Ok(());
        }
        match text.char_indices().find(|(_, c)| c.is_control()) {
            Some((offset, c)) => Err(InvalidId::ControlCharacter {
                code: u32::from(c),
                offset,
            }),
            None => Ok(()),
        }
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns an empty id, which fails validation, for slots of session tables that
    /// hold no session. It never equals a valid id and allocates nothing.
    pub(crate) fn placeholder() -> SessionId {
        SessionId(EcoString::new())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Origin of a session's activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The built-in traffic simulator.
    Simulator,
    /// Replay of a web server access log.
    Replay,
    /// An application reporting over the local API.
    Api,
}

impl Source {
    /// Returns the lower-case name shown in the table and the log.
    pub fn name(self) -> &'static str {
        match self {
            Source::Simulator => "simulator",
            Source::Replay => "replay",
            Source::Api => "api",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Small key-value metadata that an application attaches to a session, such as the user
/// name. Shared, so copies sent to the UI do not copy the map. Whoever accepts metadata
/// from outside bounds its size; the engine stores it as given.
pub type SessionMeta = Arc<BTreeMap<String, String>>;

/// A session as the engine stores it. Times are engine monotonic times.
///
/// Laid out in declaration order (`repr(C)`), so the id sits first and aligned. With the
/// compiler's own order, a sweep writing removed sessions in place copied each id through
/// a misaligned stack slot, and the copy stalled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Session {
    /// The session's key.
    pub id: SessionId,
    /// Origin of its activity.
    pub source: Source,
    /// When its first activity happened.
    pub created: MonoTime,
    /// Its latest activity; never moves backwards.
    pub last_active: MonoTime,
    /// How many activity reports it has received, including the first.
    pub activity_count: u64,
    /// Metadata from the latest activity report that carried any.
    pub meta: Option<SessionMeta>,
}

impl Session {
    /// Returns how long the session has been idle at `now` (zero if `now` is earlier).
    pub fn idle_at(&self, now: MonoTime) -> std::time::Duration {
        now - self.last_active
    }

    /// Returns whether the session has been idle for at least `idle_timeout` at `now`.
    pub fn is_stale_at(&self, now: MonoTime, idle_timeout: std::time::Duration) -> bool {
        self.idle_at(now) >= idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_accepts_plain_text() {
        let id = SessionId::new("10.0.0.1 Mozilla/5.0 (X11; Linux x86_64)").unwrap();
        assert_eq!(id.as_str(), "10.0.0.1 Mozilla/5.0 (X11; Linux x86_64)");
    }

    #[test]
    fn id_accepts_non_ascii() {
        assert!(SessionId::new("مرحبا-ü-e\u{301}").is_ok());
    }

    #[test]
    fn id_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<SessionId>(), 16);
        let long = SessionId::new(&"x".repeat(200)).unwrap();
        assert_eq!(long.clone().as_str(), "x".repeat(200));
    }

    #[test]
    fn placeholder_is_not_a_valid_id() {
        let placeholder = SessionId::placeholder();
        assert_eq!(
            SessionId::validate(placeholder.as_str()),
            Err(InvalidId::Empty)
        );
    }

    #[test]
    fn id_rejects_empty() {
        assert_eq!(SessionId::new(""), Err(InvalidId::Empty));
    }

    #[test]
    fn id_limit_is_in_bytes() {
        assert!(SessionId::new(&"a".repeat(256)).is_ok());
        assert_eq!(
            SessionId::new(&"a".repeat(257)),
            Err(InvalidId::TooLong { len: 257 })
        );
        // 86 three-byte characters are 258 bytes.
        assert_eq!(
            SessionId::new(&"€".repeat(86)),
            Err(InvalidId::TooLong { len: 258 })
        );
    }

    #[test]
    fn id_rejects_control_characters() {
        assert_eq!(
            SessionId::new("ab\ncd"),
            Err(InvalidId::ControlCharacter {
                code: 0x0A,
                offset: 2
            })
        );
        assert_eq!(
            SessionId::new("\u{1b}[31m"),
            Err(InvalidId::ControlCharacter {
                code: 0x1B,
                offset: 0
            })
        );
        assert_eq!(
            SessionId::new("x\u{85}"),
            Err(InvalidId::ControlCharacter {
                code: 0x85,
                offset: 1
            })
        );
    }

    #[test]
    fn id_check_matches_control_category() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            assert_eq!(
                SessionId::validate(&text).is_err(),
                c.is_control(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn id_rejects_invalid_utf8() {
        assert_eq!(
            SessionId::from_bytes(b"ok\xff"),
            Err(InvalidId::NotUtf8 { offset: 2 })
        );
    }

    #[test]
    fn invalid_id_message_names_the_limit() {
        let message = InvalidId::TooLong { len: 300 }.to_string();
        assert_eq!(message, "session id is 300 bytes long; the maximum is 256");
    }
}
