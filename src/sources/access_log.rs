//! Parser for web server access log lines in the Common and Combined Log Formats, as
//! Apache httpd and nginx write them by default:
//!
//! ```text
//! host ident authuser [dd/Mon/yyyy:HH:MM:SS +zzzz] "request" status bytes "referer" "user-agent"
//! ```
//!
//! The last two quoted fields are the Combined format's additions and may be absent.
//! Text after the user agent, such as a response time some servers append, is ignored.
//!
//! The parser reads raw bytes, because log lines may hold invalid UTF-8 or binary
//! garbage, and returns slices of the input without copying. Quoted fields are returned
//! as logged: the parser finds the closing quote past `\"` escapes but does not decode
//! escapes. Decoding would turn nginx's `\xHH` escapes back into control bytes, which a
//! session id may not contain. The timestamp is parsed by hand into UTC, honouring the
//! line's offset.
//!
//! # Session key
//!
//! Replay keys a session by client address and user agent, so two browsers behind one
//! address count as two sessions. The id is `"{address} {agent}"`, or the address alone
//! when the line has no user agent field (Common format). An agent logged as `-` or `""`
//! is kept as that text. The address never contains a space, so distinct keys give
//! distinct ids.
//!
//! That text may not be a valid [`SessionId`], because it contains invalid UTF-8 or
//! control characters or is longer than [`SessionId::MAX_LEN`] bytes. [`session_id`]
//! then builds a shortened id. It replaces invalid bytes and control characters by
//! U+FFFD, cuts the text on a character boundary and marks the cut with `…`, and
//! appends ` #` and the 128-bit SipHash-1-3 of the raw address and agent in hex. The
//! hash keeps shortened ids unique per key, and a key gets the same id in every run.

use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Utc};
use memchr::{memchr, memchr2};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::engine::session::SessionId;

/// One parsed access log line. Byte fields borrow from the input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogLine<'a> {
    /// Client address (the `host` field): an IP address, or a host name when the server
    /// resolves names.
    pub client: &'a [u8],
    /// Time the server logged the request, converted to UTC.
    pub time: DateTime<Utc>,
    /// Request line as logged, such as `GET / HTTP/1.1`, escapes not decoded.
    pub request: &'a [u8],
    /// HTTP status code, or `None` when logged as `-`.
    pub status: Option<u16>,
    /// Response size in bytes, or `None` when logged as `-`.
    pub size: Option<u64>,
    /// Referer as logged, or `None` in the Common format.
    pub referer: Option<&'a [u8]>,
    /// User agent as logged, or `None` in the Common format.
    pub user_agent: Option<&'a [u8]>,
}

impl AccessLogLine<'_> {
    /// Builds the session id for this line's client address and user agent.
    pub fn session_id(&self) -> SessionId {
        session_id(self.client, self.user_agent)
    }

    /// Returns the session id for this line's client address and user agent, the same
    /// as [`AccessLogLine::session_id`], reusing the one in `ids` if it contains it.
    pub fn cached_session_id(&self, ids: &mut IdCache) -> SessionId {
        ids.session_id(self.client, self.user_agent)
    }
}

/// Session ids built recently, so the lines of a client seen recently share one id
/// instead of each validating and allocating its own. Owned by one replay.
///
/// Each id has one place, picked by the hash of its text. A newer id with the same place
/// replaces it. Lookups compare the text, so a replaced or colliding id costs a rebuild,
/// never a wrong id.
#[derive(Debug)]
pub struct IdCache {
    places: Vec<Option<SessionId>>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl IdCache {
    /// Number of places, so the cache keeps at most 4,096 ids.
    const PLACES: usize = 4096;

    /// Creates an empty cache.
    pub fn new() -> Self {
        IdCache {
            places: vec![None; Self::PLACES],
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// Returns the session id for a client address and user agent, as [`session_id`]
    /// builds it.
    pub fn session_id(&mut self, client: &[u8], user_agent: Option<&[u8]>) -> SessionId {
        let mut text = [0u8; SessionId::MAX_LEN];
        let Some(key) = join_key(client, user_agent, &mut text) else {
            return shortened_session_id(client, user_agent);
        };
        let place = self.hasher.hash_one(key) as usize % Self::PLACES;
        if let Some(id) = &self.places[place]
            && id.as_str().as_bytes() == key
        {
            return id.clone();
        }
        match SessionId::from_bytes(key) {
            Ok(id) => {
                self.places[place] = Some(id.clone());
                id
            }
            Err(_) => shortened_session_id(client, user_agent),
        }
    }
}

impl Default for IdCache {
    fn default() -> Self {
        Self::new()
    }
}

/// A field of an access log line, named in parse errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The bracketed timestamp.
    Timestamp,
    /// The quoted request line.
    Request,
    /// The HTTP status code.
    Status,
    /// The response size in bytes.
    Size,
    /// The quoted referer.
    Referer,
    /// The quoted user agent.
    UserAgent,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Timestamp => "timestamp",
            Field::Request => "quoted request",
            Field::Status => "status",
            Field::Size => "response size",
            Field::Referer => "quoted referer",
            Field::UserAgent => "quoted user agent",
        })
    }
}

/// Reason a line is not a Common or Combined Log Format line. Quoted values are cut to
/// a few dozen characters, with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line has no characters besides its line ending.
    #[error("empty line")]
    Empty,
    /// The line starts with a space, so it has no client address.
    #[error("missing client address")]
    MissingClient,
    /// No `[` follows the client, ident and user fields.
    #[error("missing [timestamp]")]
    MissingTimestamp,
    /// The timestamp does not have the `dd/Mon/yyyy:HH:MM:SS +zzzz` shape.
    #[error("invalid timestamp '{text}': expected dd/Mon/yyyy:HH:MM:SS +zzzz")]
    InvalidTimestamp {
        /// The text between the brackets.
        text: String,
    },
    /// The month is not an English three-letter abbreviation.
    #[error("invalid month '{month}': expected Jan to Dec")]
    InvalidMonth {
        /// The month as logged.
        month: String,
    },
    /// The day does not exist in its month.
    #[error("invalid day {day} in {month} {year}")]
    InvalidDay {
        /// Day of the month as logged.
        day: u32,
        /// Month abbreviation.
        month: &'static str,
        /// Year as logged.
        year: i32,
    },
    /// The hour, minute or second is out of range.
    #[error("invalid time of day '{text}'")]
    InvalidTimeOfDay {
        /// The `HH:MM:SS` text.
        text: String,
    },
    /// The UTC offset's hours or minutes are out of range.
    #[error("invalid UTC offset '{text}'")]
    InvalidOffset {
        /// The `+zzzz` text.
        text: String,
    },
    /// A field ends before it starts, as in a line cut short.
    #[error("missing {field}")]
    Missing {
        /// The missing field.
        field: Field,
    },
    /// A quoted field has no closing quote, as in a line cut short.
    #[error("unterminated {field}: no closing quote")]
    Unterminated {
        /// The unterminated field.
        field: Field,
    },
    /// The status is neither three digits nor `-`.
    #[error("invalid status '{text}'")]
    InvalidStatus {
        /// The status as logged.
        text: String,
    },
    /// The response size is neither a number nor `-`.
    #[error("invalid response size '{text}'")]
    InvalidSize {
        /// The size as logged.
        text: String,
    },
    /// Something other than ` "referer" "user-agent"` follows the response size.
    #[error("unexpected text after the {after}: '{text}'")]
    TrailingText {
        /// The field the text follows.
        after: Field,
        /// The start of the unexpected text.
        text: String,
    },
}

/// Parses one Common or Combined Log Format line. A trailing `\n` or `\r\n` is ignored.
///
/// ```
/// use session_monitor::sources::access_log::parse_line;
///
/// let line = br#"10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326 "-" "curl/8.5""#;
/// let parsed = parse_line(line).unwrap();
/// assert_eq!(parsed.client, b"10.0.0.1");
/// assert_eq!(parsed.time.to_rfc3339(), "2000-10-10T20:55:36+00:00");
/// assert_eq!(parsed.user_agent, Some(&b"curl/8.5"[..]));
/// ```
pub fn parse_line(line: &[u8]) -> Result<AccessLogLine<'_>, ParseError> {
    let line = trim_line_ending(line);
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    Cursor { line, pos: 0 }.parse()
}

fn trim_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Maximum length in bytes of a timestamp between `[` and `]`: 26, plus a fraction of
/// up to nine digits.
const MAX_TIMESTAMP_LEN: usize = 36;

/// The Combined format's referer and user agent, both `None` in the Common format.
type RefererAndAgent<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn parse(mut self) -> Result<AccessLogLine<'a>, ParseError> {
        let client = self.client()?;
        let time = self.timestamp()?;

        self.expect_space(Field::Request)?;
        let request = self.quoted(Field::Request)?;
        self.expect_space(Field::Status)?;
        let status = self.status()?;
        self.expect_space(Field::Size)?;
        let size = self.size()?;

        let (referer, user_agent) = self.referer_and_agent()?;
        Ok(AccessLogLine {
            client,
            time,
            request,
            status,
            size,
            referer,
            user_agent,
        })
    }

    /// Reads the client address and skips the ident and user fields, leaving the cursor
    /// on the `[` of the timestamp.
    fn client(&mut self) -> Result<&'a [u8], ParseError> {
        let client_end = memchr(b' ', self.line).ok_or(ParseError::MissingTimestamp)?;
        if client_end == 0 {
            return Err(ParseError::MissingClient);
        }
        let ident_end = memchr(b' ', &self.line[client_end + 1..])
            .map(|offset| client_end + 1 + offset)
            .ok_or(ParseError::MissingTimestamp)?;

        // The user field may contain spaces and brackets, so the timestamp is the first
        // `[` after a space that starts with `dd/`. Without one, the first `[` after a
        // space is parsed, so the error names what is there.
        let mut first_candidate = None;
        let mut search = ident_end + 1;
        while let Some(offset) = memchr(b'[', &self.line[search..]) {
            let bracket = search + offset;
            search = bracket + 1;
            if self.line[bracket - 1] != b' ' {
                continue;
            }
            if starts_like_timestamp(&self.line[bracket + 1..]) {
                first_candidate = Some(bracket);
                break;
            }
            first_candidate.get_or_insert(bracket);
        }
        self.pos = first_candidate.ok_or(ParseError::MissingTimestamp)?;
        Ok(&self.line[..client_end])
    }

    fn timestamp(&mut self) -> Result<DateTime<Utc>, ParseError> {
        let start = self.pos + 1;
        let window_end = self.line.len().min(start + MAX_TIMESTAMP_LEN + 1);
        let Some(length) = memchr(b']', &self.line[start..window_end]) else {
            let text = &self.line[start..window_end.min(start + MAX_TIMESTAMP_LEN)];
            return Err(ParseError::InvalidTimestamp {
                text: snippet(text),
            });
        };
        self.pos = start + length + 1;
        parse_timestamp(&self.line[start..start + length])
    }

    fn expect_space(&mut self, next: Field) -> Result<(), ParseError> {
        match self.line.get(self.pos) {
            Some(b' ') => {
                self.pos += 1;
                Ok(())
            }
            None => Err(ParseError::Missing { field: next }),
            Some(_) => Err(self.trailing_text(previous_field(next))),
        }
    }

    /// Reads a quoted field starting at the cursor and leaves the cursor after the
    /// closing quote.
    fn quoted(&mut self, field: Field) -> Result<&'a [u8], ParseError> {
        if self.line.get(self.pos) != Some(&b'"') {
            return Err(ParseError::Missing { field });
        }
        let start = self.pos + 1;
        let mut search = start;
        loop {
            let found = memchr2(b'"', b'\\', &self.line[search..])
                .map(|offset| search + offset)
                .ok_or(ParseError::Unterminated { field })?;
            if self.line[found] == b'\\' {
                if found + 1 >= self.line.len() {
                    return Err(ParseError::Unterminated { field });
                }
                search = found + 2;
                continue;
            }
            // Apache httpd before 1.3.25 and 2.0.46 wrote quotes unescaped (see the
            // mod_log_config manual), so a quote that is not followed by a space or the
            // line's end belongs to the value.
            if matches!(self.line.get(found + 1), None | Some(b' ')) {
                self.pos = found + 1;
                return Ok(&self.line[start..found]);
            }
            search = found + 1;
        }
    }

    fn token(&mut self) -> &'a [u8] {
        let rest = &self.line[self.pos..];
        let length = memchr(b' ', rest).unwrap_or(rest.len());
        self.pos += length;
        &rest[..length]
    }

    fn status(&mut self) -> Result<Option<u16>, ParseError> {
        let text = self.token();
        match text {
            b"" => Err(ParseError::Missing {
                field: Field::Status,
            }),
            b"-" => Ok(None),
            [_, _, _] => match parse_digits(text) {
                Some(code) => Ok(Some(code as u16)),
                None => Err(ParseError::InvalidStatus {
                    text: snippet(text),
                }),
            },
            _ => Err(ParseError::InvalidStatus {
                text: snippet(text),
            }),
        }
    }

    fn size(&mut self) -> Result<Option<u64>, ParseError> {
        let text = self.token();
        match text {
            b"" => Err(ParseError::Missing { field: Field::Size }),
            b"-" => Ok(None),
            _ => parse_size(text)
                .map(Some)
                .ok_or_else(|| ParseError::InvalidSize {
                    text: snippet(text),
                }),
        }
    }

    /// Reads the Combined format's referer and user agent, or nothing at the line's end.
    fn referer_and_agent(&mut self) -> Result<RefererAndAgent<'a>, ParseError> {
        let rest = &self.line[self.pos..];
        if rest.is_empty() {
            return Ok((None, None));
        }
        if !rest.starts_with(b" \"") {
            return Err(self.trailing_text(Field::Size));
        }
        self.pos += 1;
        let referer = self.quoted(Field::Referer)?;
        self.expect_space(Field::UserAgent)?;
        let user_agent = self.quoted(Field::UserAgent)?;
        Ok((Some(referer), Some(user_agent)))
    }

    fn trailing_text(&self, after: Field) -> ParseError {
        ParseError::TrailingText {
            after,
            text: snippet(&self.line[self.pos..]),
        }
    }
}

/// Returns the field that comes before `next` on a line, for error messages.
fn previous_field(next: Field) -> Field {
    match next {
        Field::Timestamp | Field::Request => Field::Timestamp,
        Field::Status => Field::Request,
        Field::Size => Field::Status,
        Field::Referer => Field::Size,
        Field::UserAgent => Field::Referer,
    }
}

/// Parses the text between the brackets: `dd/Mon/yyyy:HH:MM:SS +zzzz`, with an optional
/// fraction of a second after the seconds. A second of 60 (a leap second) counts as the
/// first second of the next minute.
fn parse_timestamp(text: &[u8]) -> Result<DateTime<Utc>, ParseError> {
    let invalid = || ParseError::InvalidTimestamp {
        text: snippet(text),
    };
    if text.len() < 26 || !has_timestamp_separators(text) {
        return Err(invalid());
    }
    let day = parse_digits(&text[0..2]).ok_or_else(invalid)?;
    let year = parse_digits(&text[7..11]).ok_or_else(invalid)? as i32;
    let hour = parse_digits(&text[12..14]).ok_or_else(invalid)?;
    let minute = parse_digits(&text[15..17]).ok_or_else(invalid)?;
    let second = parse_digits(&text[18..20]).ok_or_else(invalid)?;
    let (nanos, offset_text) = split_fraction(&text[20..]).ok_or_else(invalid)?;
    let offset_seconds = parse_offset(offset_text).ok_or_else(invalid)?;

    let month = month_number(&text[3..6]).ok_or_else(|| ParseError::InvalidMonth {
        month: snippet(&text[3..6]),
    })?;
    if day == 0 || day > days_in_month(year, month) {
        return Err(ParseError::InvalidDay {
            day,
            month: MONTHS[month as usize - 1],
            year,
        });
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(ParseError::InvalidTimeOfDay {
            text: snippet(&text[12..20]),
        });
    }
    let Some(offset_seconds) = offset_seconds else {
        return Err(ParseError::InvalidOffset {
            text: snippet(offset_text),
        });
    };

    let local_seconds =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    DateTime::from_timestamp(local_seconds - offset_seconds, nanos).ok_or_else(invalid)
}

fn starts_like_timestamp(text: &[u8]) -> bool {
    matches!(text, [day1, day2, b'/', ..] if day1.is_ascii_digit() && day2.is_ascii_digit())
}

fn has_timestamp_separators(text: &[u8]) -> bool {
    text[2] == b'/' && text[6] == b'/' && text[11] == b':' && text[14] == b':' && text[17] == b':'
}

/// Splits `[.fraction] +zzzz` into nanoseconds and the offset text.
fn split_fraction(text: &[u8]) -> Option<(u32, &[u8])> {
    let Some(fraction) = text.strip_prefix(b".") else {
        return Some((0, text));
    };
    let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let nanos = parse_digits(&fraction[..digits])? * 10u32.pow(9 - digits as u32);
    Some((nanos, &fraction[digits..]))
}

/// Parses ` +hhmm` into seconds east of UTC. The outer `None` means the text has the
/// wrong shape, and the inner `None` means hours or minutes are out of range.
fn parse_offset(text: &[u8]) -> Option<Option<i64>> {
    let [b' ', sign @ (b'+' | b'-'), digits @ ..] = text else {
        return None;
    };
    if digits.len() != 4 {
        return None;
    }
    let hours = i64::from(parse_digits(&digits[..2])?);
    let minutes = i64::from(parse_digits(&digits[2..])?);
    if hours > 23 || minutes > 59 {
        return Some(None);
    }
    let seconds = hours * 3_600 + minutes * 60;
    Some(Some(if *sign == b'-' { -seconds } else { seconds }))
}

/// Parses up to nine ASCII digits. Returns `None` if any byte is not a digit.
fn parse_digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u32::from(byte - b'0'))
    })
}

fn parse_size(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |value, &byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Returns the month number (1 to 12) of an English abbreviation, ignoring ASCII case.
fn month_number(text: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|name| name.as_bytes().eq_ignore_ascii_case(text))
        .map(|index| index as u32 + 1)
}

fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Returns the number of days from 1970-01-01 to the given proleptic Gregorian date.
///
/// Counting years from March puts the leap day at the end of the year, so the day of
/// the year follows from the month by one linear formula. A 400-year era has exactly
/// 146,097 days.
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days separate 0000-03-01, the start of era 0, from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// Maximum characters of a logged value quoted in an error message.
const SNIPPET_CHARS: usize = 40;

/// Returns the start of `bytes` for an error message: invalid UTF-8 replaced, control
/// characters escaped, cut to [`SNIPPET_CHARS`] characters.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(SNIPPET_CHARS * 4));
    for (index, c) in text.chars().enumerate() {
        if index == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Fixed SipHash keys, so shortened ids are the same in every run. They are not secret:
/// the hash only has to separate keys that share a shortened prefix.
const ID_HASH_KEYS: (u64, u64) = (0x7365_7373_696f_6e2d, 0x6d6f_6e69_746f_7221);

/// Builds the session id for a client address and user agent, as described in the
/// module documentation.
pub fn session_id(client: &[u8], user_agent: Option<&[u8]>) -> SessionId {
    if let Some(id) = plain_session_id(client, user_agent) {
        return id;
    }
    shortened_session_id(client, user_agent)
}

fn plain_session_id(client: &[u8], user_agent: Option<&[u8]>) -> Option<SessionId> {
    // Joined on the stack: the id's own allocation is then the only one.
    let mut text = [0u8; SessionId::MAX_LEN];
    SessionId::from_bytes(join_key(client, user_agent, &mut text)?).ok()
}

/// Writes the client address and user agent, joined by a space, into `text` and returns
/// them, or returns `None` when they are too long for a plain id.
fn join_key<'t>(
    client: &[u8],
    user_agent: Option<&[u8]>,
    text: &'t mut [u8; SessionId::MAX_LEN],
) -> Option<&'t [u8]> {
    let length = client.len() + user_agent.map_or(0, |agent| agent.len() + 1);
    if length > SessionId::MAX_LEN {
        return None;
    }
    text[..client.len()].copy_from_slice(client);
    if let Some(agent) = user_agent {
        text[client.len()] = b' ';
        text[client.len() + 1..length].copy_from_slice(agent);
    }
    Some(&text[..length])
}

fn shortened_session_id(client: &[u8], user_agent: Option<&[u8]>) -> SessionId {
    let suffix = format!("#{:032x}", key_hash(client, user_agent));
    let mut text = String::with_capacity(SessionId::MAX_LEN);
    push_replacing_controls(&mut text, client);
    if let Some(agent) = user_agent {
        text.push(' ');
        push_replacing_controls(&mut text, agent);
    }

    // Room for the suffix, a space and an ellipsis of three bytes.
    let room = SessionId::MAX_LEN - suffix.len() - 4;
    if text.len() > room {
        let cut = (0..=room)
            .rev()
            .find(|&index| text.is_char_boundary(index))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    if text.is_empty() {
        text.push('\u{FFFD}');
    }
    text.push(' ');
    text.push_str(&suffix);
    SessionId::new(&text).expect("shortened id is non-empty, short and free of controls")
}

/// Appends `bytes` as text, replacing invalid UTF-8 and control characters by U+FFFD.
fn push_replacing_controls(text: &mut String, bytes: &[u8]) {
    for c in String::from_utf8_lossy(bytes).chars() {
        text.push(if c.is_control() { '\u{FFFD}' } else { c });
    }
}

/// Hashes the raw key. The client's length goes first, so the split between client and
/// agent is part of the hash.
fn key_hash(client: &[u8], user_agent: Option<&[u8]>) -> u128 {
    let mut hasher = SipHasher13::new_with_keys(ID_HASH_KEYS.0, ID_HASH_KEYS.1);
    hasher.write(&(client.len() as u64).to_le_bytes());
    hasher.write(client);
    match user_agent {
        Some(agent) => {
            hasher.write(&[1]);
            hasher.write(agent);
        }
        None => hasher.write(&[0]),
    }
    hasher.finish128().as_u128()
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate, TimeZone};

    use super::*;

    const APACHE: &[u8] = br#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#;

    const NGINX: &[u8] = br#"192.0.2.7 - - [14/Sep/2020:00:02:05 +0000] "GET /robots.txt HTTP/1.1" 301 0 "-" "Mozilla/5.0 (compatible; SemrushBot/6~bl; +http://www.semrush.com/bot.html)""#;

    fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, minute, second)
            .unwrap()
    }

    fn line_with_time(time: &str) -> String {
        format!(r#"10.0.0.1 - - [{time}] "GET / HTTP/1.1" 200 5 "-" "agent""#)
    }

    #[test]
    fn apache_combined_line() {
        let line = parse_line(APACHE).unwrap();
        assert_eq!(line.client, b"83.149.9.216");
        assert_eq!(line.time, utc(2015, 5, 17, 10, 5, 3));
        assert_eq!(
            line.request,
            b"GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1"
        );
        assert_eq!(line.status, Some(200));
        assert_eq!(line.size, Some(203_023));
        assert_eq!(
            line.referer,
            Some(&b"http://semicomplete.com/presentations/logstash-monitorama-2013/"[..])
        );
        assert!(
            line.user_agent
                .unwrap()
                .starts_with(b"Mozilla/5.0 (Macintosh;")
        );
        assert!(line.user_agent.unwrap().ends_with(b"Safari/537.36"));
    }

    #[test]
    fn nginx_combined_line() {
        let line = parse_line(NGINX).unwrap();
        assert_eq!(line.client, b"192.0.2.7");
        assert_eq!(line.time, utc(2020, 9, 14, 0, 2, 5));
        assert_eq!(line.status, Some(301));
        assert_eq!(line.size, Some(0));
        assert_eq!(line.referer, Some(&b"-"[..]));
        assert_eq!(
            line.user_agent,
            Some(
                &b"Mozilla/5.0 (compatible; SemrushBot/6~bl; +http://www.semrush.com/bot.html)"[..]
            )
        );
    }

    #[test]
    fn line_ending_is_ignored() {
        let mut crlf = NGINX.to_vec();
        crlf.extend_from_slice(b"\r\n");
        assert_eq!(parse_line(&crlf).unwrap(), parse_line(NGINX).unwrap());
    }

    #[test]
    fn common_format_has_no_agent() {
        let line = parse_line(
            br#"127.0.0.1 user-identifier frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
        )
        .unwrap();
        assert_eq!(line.client, b"127.0.0.1");
        assert_eq!(line.time, utc(2000, 10, 10, 20, 55, 36));
        assert_eq!(line.status, Some(200));
        assert_eq!(line.size, Some(2326));
        assert_eq!(line.referer, None);
        assert_eq!(line.user_agent, None);
    }

    #[test]
    fn dash_status_and_size() {
        let line = parse_line(br#"::1 - - [01/Jan/2024:00:00:00 +0000] "-" - - "-" "-""#).unwrap();
        assert_eq!(line.client, b"::1");
        assert_eq!(line.request, b"-");
        assert_eq!(line.status, None);
        assert_eq!(line.size, None);
        assert_eq!(line.user_agent, Some(&b"-"[..]));
    }

    #[test]
    fn user_field_with_space_and_bracket() {
        let line = parse_line(
            br#"10.1.1.1 - John [Doe] Smith [01/Feb/2021:09:30:00 +0000] "GET / HTTP/1.1" 200 1"#,
        )
        .unwrap();
        assert_eq!(line.client, b"10.1.1.1");
        assert_eq!(line.time, utc(2021, 2, 1, 9, 30, 0));
    }

    #[test]
    fn escaped_quotes_inside_fields() {
        let line = parse_line(
            br#"10.0.0.1 - - [01/Mar/2022:12:00:00 +0000] "GET /q?x=\"a b\" HTTP/1.1" 200 10 "http://x/\"r\"" "Agent \"quoted\" \\ end""#,
        )
        .unwrap();
        assert_eq!(line.request, br#"GET /q?x=\"a b\" HTTP/1.1"#);
        assert_eq!(line.referer, Some(&br#"http://x/\"r\""#[..]));
        assert_eq!(line.user_agent, Some(&br#"Agent \"quoted\" \\ end"#[..]));
    }

    #[test]
    fn unescaped_inner_quote_stays_in_value() {
        let line = parse_line(
            br#"10.0.0.1 - - [01/Mar/2022:12:00:00 +0000] "GET / HTTP/1.1" 200 10 "-" "Agent "v2"x""#,
        )
        .unwrap();
        assert_eq!(line.user_agent, Some(&br#"Agent "v2"x"#[..]));
    }

    #[test]
    fn text_after_agent_is_ignored() {
        let line = parse_line(
            br#"10.0.0.1 - - [01/Mar/2022:12:00:00 +0000] "GET / HTTP/1.1" 200 10 "-" "curl/8" 0.004 "-""#,
        )
        .unwrap();
        assert_eq!(line.user_agent, Some(&b"curl/8"[..]));
    }

    #[test]
    fn offsets_are_applied() {
        let cases = [
            ("10/Oct/2000:13:55:36 -0700", utc(2000, 10, 10, 20, 55, 36)),
            ("10/Oct/2000:13:55:36 +0000", utc(2000, 10, 10, 13, 55, 36)),
            ("01/Jan/2021:01:00:00 +0530", utc(2020, 12, 31, 19, 30, 0)),
            ("31/Dec/2020:23:30:00 -0045", utc(2021, 1, 1, 0, 15, 0)),
            ("29/Feb/2024:12:00:00 +1400", utc(2024, 2, 28, 22, 0, 0)),
        ];
        for (text, expected) in cases {
            let line = line_with_time(text);
            assert_eq!(
                parse_line(line.as_bytes()).unwrap().time,
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn fraction_of_second_and_month_case() {
        let line = line_with_time("05/may/2015:10:05:03.250 +0000");
        let time = parse_line(line.as_bytes()).unwrap().time;
        assert_eq!(
            time,
            utc(2015, 5, 5, 10, 5, 3) + chrono::Duration::milliseconds(250)
        );
    }

    #[test]
    fn leap_second_rolls_over() {
        let line = line_with_time("31/Dec/2016:23:59:60 +0000");
        let time = parse_line(line.as_bytes()).unwrap().time;
        assert_eq!(time, utc(2017, 1, 1, 0, 0, 0));
    }

    #[test]
    fn civil_days_match_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut date = NaiveDate::from_ymd_opt(1599, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2401, 3, 1).unwrap();
        while date <= end {
            let expected = (date - epoch).num_days();
            let days = days_from_civil(date.year(), date.month(), date.day());
            assert_eq!(days, expected, "{date}");
            date = date.succ_opt().unwrap();
        }
    }

    #[test]
    fn invalid_month() {
        let line = line_with_time("10/Foo/2000:13:55:36 -0700");
        let error = parse_line(line.as_bytes()).unwrap_err();
        assert_eq!(
            error,
            ParseError::InvalidMonth {
                month: "Foo".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "invalid month 'Foo': expected Jan to Dec"
        );
    }

    #[test]
    fn invalid_day() {
        let cases = [
            ("31/Apr/2015:00:00:00 +0000", 31, "Apr", 2015),
            ("29/Feb/2023:00:00:00 +0000", 29, "Feb", 2023),
            ("29/Feb/1900:00:00:00 +0000", 29, "Feb", 1900),
            ("00/Jan/2020:00:00:00 +0000", 0, "Jan", 2020),
        ];
        for (text, day, month, year) in cases {
            let line = line_with_time(text);
            assert_eq!(
                parse_line(line.as_bytes()),
                Err(ParseError::InvalidDay { day, month, year }),
                "{text}"
            );
        }
        let leap = line_with_time("29/Feb/2000:00:00:00 +0000");
        assert!(parse_line(leap.as_bytes()).is_ok());
        let april = line_with_time("31/Apr/2015:00:00:00 +0000");
        let error = parse_line(april.as_bytes()).unwrap_err();
        assert_eq!(error.to_string(), "invalid day 31 in Apr 2015");
    }

    #[test]
    fn invalid_time_of_day_and_offset() {
        let hour = line_with_time("10/Oct/2000:24:00:00 +0000");
        assert_eq!(
            parse_line(hour.as_bytes()),
            Err(ParseError::InvalidTimeOfDay {
                text: "24:00:00".into()
            })
        );
        let offset = line_with_time("10/Oct/2000:12:00:00 +0075");
        assert_eq!(
            parse_line(offset.as_bytes()),
            Err(ParseError::InvalidOffset {
                text: " +0075".into()
            })
        );
    }

    #[test]
    fn malformed_timestamps() {
        let cases = [
            "10/Oct/2000 13:55:36 -0700",
            "1/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:13:55:36",
            "10/Oct/2000:13:55:36 0700",
            "10/Oct/2000:13:55:36 -07:00",
            "10/Oct/2000:13:5x:36 -0700",
            "2000-10-10T13:55:36Z",
            "",
        ];
        for text in cases {
            let line = line_with_time(text);
            let error = parse_line(line.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ParseError::InvalidTimestamp { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn empty_and_blank_lines() {
        assert_eq!(parse_line(b""), Err(ParseError::Empty));
        assert_eq!(parse_line(b"\n"), Err(ParseError::Empty));
        assert_eq!(parse_line(b"\r\n"), Err(ParseError::Empty));
        assert_eq!(parse_line(b" - - [x]"), Err(ParseError::MissingClient));
    }

    #[test]
    fn binary_garbage() {
        let garbage: Vec<u8> = (0..=255u8).cycle().take(2_000).collect();
        assert!(parse_line(&garbage).is_err());
        assert_eq!(
            parse_line(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Err(ParseError::MissingTimestamp)
        );
        assert_eq!(
            parse_line(b"\x00\x00 \x00 \x00 [\x00\x00\x00"),
            Err(ParseError::InvalidTimestamp {
                text: "\\0\\0\\0".into()
            })
        );
    }

    #[test]
    fn every_prefix_of_line_is_handled() {
        for end in 0..NGINX.len() {
            let _ = parse_line(&NGINX[..end]);
        }
        for end in 0..APACHE.len() {
            let _ = parse_line(&APACHE[..end]);
        }
    }

    #[test]
    fn missing_timestamp() {
        assert_eq!(
            parse_line(b"10.0.0.1 - - \"GET / HTTP/1.1\" 200 5"),
            Err(ParseError::MissingTimestamp)
        );
        assert_eq!(
            ParseError::MissingTimestamp.to_string(),
            "missing [timestamp]"
        );
    }

    #[test]
    fn invalid_utf8_in_agent() {
        let line = parse_line(
            b"10.0.0.1 - - [01/Mar/2022:12:00:00 +0000] \"GET / HTTP/1.1\" 200 10 \"-\" \"Bot\xff\xfe/1\"",
        )
        .unwrap();
        assert_eq!(line.user_agent, Some(&b"Bot\xff\xfe/1"[..]));
        let id = line.session_id();
        assert!(id.as_str().starts_with("10.0.0.1 Bot\u{FFFD}\u{FFFD}/1 #"));
    }

    #[test]
    fn truncated_lines() {
        let cases: [(&[u8], ParseError); 6] = [
            (
                b"10.0.0.1 - - [17/May/2015:10:0",
                ParseError::InvalidTimestamp {
                    text: "17/May/2015:10:0".into(),
                },
            ),
            (
                b"10.0.0.1 - - [17/May/2015:10:05:03 +0000]",
                ParseError::Missing {
                    field: Field::Request,
                },
            ),
            (
                b"10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET /index.ht",
                ParseError::Unterminated {
                    field: Field::Request,
                },
            ),
            (
                b"10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200",
                ParseError::Missing { field: Field::Size },
            ),
            (
                b"10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\"",
                ParseError::Missing {
                    field: Field::UserAgent,
                },
            ),
            (
                b"10.0.0.1 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"Mozi",
                ParseError::Unterminated {
                    field: Field::UserAgent,
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(
                parse_line(line),
                Err(expected),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn invalid_status_and_size() {
        assert_eq!(
            parse_line(br#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /" 20x 5"#),
            Err(ParseError::InvalidStatus { text: "20x".into() })
        );
        assert_eq!(
            parse_line(br#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /" 200 5k"#),
            Err(ParseError::InvalidSize { text: "5k".into() })
        );
        assert_eq!(
            parse_line(br#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /" 200 5 extra"#),
            Err(ParseError::TrailingText {
                after: Field::Size,
                text: " extra".into()
            })
        );
    }

    #[test]
    fn error_snippet_is_short_and_escaped() {
        let line = line_with_time(&format!("\x1b[31m{}", "9".repeat(100)));
        let ParseError::InvalidTimestamp { text } = parse_line(line.as_bytes()).unwrap_err() else {
            panic!("expected an invalid timestamp");
        };
        assert!(text.starts_with("\\u{1b}[31m"), "{text}");
        assert!(text.chars().count() <= SNIPPET_CHARS + 10, "{text}");
    }

    #[test]
    fn cached_ids_match_built_ids() {
        let mut ids = IdCache::new();
        let agents = [
            None,
            Some(&b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"[..]),
            Some(&b"bad\x07agent"[..]),
            Some(&[b'a'; 300][..]),
            Some(&b"\xff\xfe not utf-8"[..]),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        // More clients than the cache has places, so ids are replaced and looked up again.
        for _ in 0..40_000 {
            let client = format!("10.0.{}.{}", rng.u8(0..40), rng.u8(..));
            let agent = agents[rng.usize(..agents.len())];
            let cached = ids.session_id(client.as_bytes(), agent);
            assert_eq!(cached, session_id(client.as_bytes(), agent));
        }
    }

    #[test]
    fn cached_id_is_shared() {
        let mut ids = IdCache::new();
        let agent = Some(&b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"[..]);
        let first = ids.session_id(b"10.0.0.1", agent);
        let second = ids.session_id(b"10.0.0.1", agent);
        assert_eq!(first, second);
        assert_eq!(first.as_str().as_ptr(), second.as_str().as_ptr());
    }

    #[test]
    fn plain_session_id() {
        let id = session_id(b"10.0.0.1", Some(b"Mozilla/5.0 (X11)"));
        assert_eq!(id.as_str(), "10.0.0.1 Mozilla/5.0 (X11)");
        assert_eq!(session_id(b"10.0.0.1", Some(b"-")).as_str(), "10.0.0.1 -");
        assert_eq!(session_id(b"10.0.0.1", Some(b"")).as_str(), "10.0.0.1 ");
        assert_eq!(session_id(b"10.0.0.1", None).as_str(), "10.0.0.1");
    }

    #[test]
    fn long_agent_is_shortened_uniquely() {
        let long_a = "A".repeat(300);
        let long_b = format!("{}B", "A".repeat(299));
        let first = session_id(b"10.0.0.1", Some(long_a.as_bytes()));
        let second = session_id(b"10.0.0.1", Some(long_b.as_bytes()));
        assert_ne!(first, second);
        assert!(first.as_str().len() <= SessionId::MAX_LEN);
        assert!(first.as_str().starts_with("10.0.0.1 AAAA"));
        assert!(first.as_str().contains("… #"));
        assert_eq!(first, session_id(b"10.0.0.1", Some(long_a.as_bytes())));
    }

    #[test]
    fn shortened_id_cuts_on_char_boundary() {
        let agent = "€".repeat(200);
        let id = session_id(b"10.0.0.1", Some(agent.as_bytes()));
        assert!(id.as_str().len() <= SessionId::MAX_LEN);
        assert!(id.as_str().starts_with("10.0.0.1 €€€"));
    }

    #[test]
    fn control_characters_are_replaced() {
        let id = session_id(b"10.0.0.1", Some(b"evil\x1b[31m\nagent"));
        assert!(
            id.as_str()
                .starts_with("10.0.0.1 evil\u{FFFD}[31m\u{FFFD}agent #"),
            "{id}"
        );
        let other = session_id(b"10.0.0.1", Some(b"evil\x07[31m\nagent"));
        assert_ne!(id, other);
    }

    #[test]
    fn key_split_is_part_of_hash() {
        let first = session_id(b"a\x01", Some(b"b"));
        let second = session_id(b"a", Some(b"\x01b"));
        assert_ne!(first, second);
        let without = session_id(b"a\x01", None);
        let empty = session_id(b"a\x01", Some(b""));
        assert_ne!(without, empty);
    }

    #[test]
    fn huge_client_is_shortened() {
        let client = "h".repeat(1_000);
        let id = session_id(client.as_bytes(), Some(b"agent"));
        assert!(id.as_str().len() <= SessionId::MAX_LEN);
        assert!(id.as_str().starts_with("hhhh"));
    }
}
