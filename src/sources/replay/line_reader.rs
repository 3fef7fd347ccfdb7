//! Line reading for replay: bounded lines from a reused buffer.

use std::io::{self, BufRead, BufReader, Read};

use memchr::memchr;

use super::MAX_LINE_LEN;

/// Capacity of the file read buffer in bytes.
const READ_BUFFER_LEN: usize = 256 * 1024;

/// Result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadLine {
    /// The line is in [`LineReader::line`].
    Complete,
    /// The line is over [`MAX_LINE_LEN`] bytes. It was read and dropped.
    TooLong,
    /// The line goes on past [`MAX_LINE_SCAN`] bytes read in this call. The next call
    /// reads on in the same line, which counts once.
    Unfinished,
}

/// Bytes scanned for one line before [`LineReader::next_line`] returns, so a file with
/// no line ends (a device, a pipe of zeros) cannot keep the reader from checking its stop
/// signal.
const MAX_LINE_SCAN: usize = 16 * 1024 * 1024;

/// Reads lines of up to [`MAX_LINE_LEN`] bytes into a reused buffer.
#[derive(Debug)]
pub(super) struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    number: u64,
    bytes_read: u64,
    /// Whether the latest call stopped inside an overlong line.
    unfinished: bool,
}

impl<R: Read> LineReader<R> {
    pub(super) fn new(inner: R) -> Self {
        LineReader {
            inner: BufReader::with_capacity(READ_BUFFER_LEN, inner),
            line: Vec::new(),
            number: 0,
            bytes_read: 0,
            unfinished: false,
        }
    }

    /// Returns the number of bytes consumed so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Returns the number of lines read so far.
    pub(super) fn line_number(&self) -> u64 {
        self.number
    }

    /// Returns the last line read, without its `\n`.
    pub(super) fn line(&self) -> &[u8] {
        &self.line
    }

    /// Reads the next line, or returns `None` at the end of the file. A last line
    /// without `\n` counts as a line.
    pub(super) fn next_line(&mut self) -> io::Result<Option<ReadLine>> {
        self.line.clear();
        // The rest of a line whose start was already over the limit is over it too.
        let mut length = match std::mem::take(&mut self.unfinished) {
            true => MAX_LINE_LEN + 1,
            false => 0,
        };
        let mut scanned = 0usize;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                if length == 0 {
                    return Ok(None);
                }
                break;
            }
            let newline = memchr(b'\n', available);
            let content = &available[..newline.unwrap_or(available.len())];
            length = length.saturating_add(content.len());
            if length <= MAX_LINE_LEN {
                self.line.extend_from_slice(content);
            } else {
                self.line.clear();
            }
            let consumed = newline.map_or(available.len(), |index| index + 1);
            self.inner.consume(consumed);
            self.bytes_read += consumed as u64;
            scanned += consumed;
            if newline.is_some() {
                // An empty line has length 0 but still counts as a line.
                length = length.max(1);
                break;
            }
            if scanned > MAX_LINE_SCAN {
                self.unfinished = true;
                return Ok(Some(ReadLine::Unfinished));
            }
        }
        self.number += 1;
        if self.number == 1 && self.line.starts_with(b"\xEF\xBB\xBF") {
            self.line.drain(..3);
        }
        if length > MAX_LINE_LEN {
            return Ok(Some(ReadLine::TooLong));
        }
        Ok(Some(ReadLine::Complete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> Vec<Result<Vec<u8>, ReadLine>> {
        let mut reader = LineReader::new(input);
        let mut lines = Vec::new();
        while let Some(read) = reader.next_line().unwrap() {
            lines.push(match read {
                ReadLine::Complete => Ok(reader.line().to_vec()),
                ReadLine::TooLong | ReadLine::Unfinished => Err(read),
            });
        }
        lines
    }

    #[test]
    fn reader_splits_lines() {
        let lines = read_all(b"one\ntwo\r\n\nlast");
        assert_eq!(
            lines,
            vec![
                Ok(b"one".to_vec()),
                Ok(b"two\r".to_vec()),
                Ok(Vec::new()),
                Ok(b"last".to_vec())
            ]
        );
    }

    #[test]
    fn reader_skips_long_line_and_goes_on() {
        let mut input = vec![b'x'; MAX_LINE_LEN + 1];
        input.extend_from_slice(b"\nnext\n");
        input.extend(vec![b'y'; MAX_LINE_LEN]);
        let lines = read_all(&input);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], Err(ReadLine::TooLong));
        assert_eq!(lines[1], Ok(b"next".to_vec()));
        assert_eq!(lines[2].as_ref().map(Vec::len), Ok(MAX_LINE_LEN));
    }

    #[test]
    fn line_past_scan_limit_counts_once() {
        let mut input = vec![b'x'; MAX_LINE_SCAN * 3 + 10];
        input.extend_from_slice(b"\nnext\n");
        let mut reader = LineReader::new(&input[..]);
        let mut reads = Vec::new();
        let mut last = Vec::new();
        while let Some(read) = reader.next_line().unwrap() {
            reads.push((read, reader.line_number()));
            last = reader.line().to_vec();
        }
        assert_eq!(
            reads,
            [
                (ReadLine::Unfinished, 0),
                (ReadLine::Unfinished, 0),
                (ReadLine::TooLong, 1),
                (ReadLine::Complete, 2),
            ]
        );
        assert_eq!(last, b"next");
    }

    #[test]
    fn reader_drops_byte_order_mark() {
        let lines = read_all(b"\xEF\xBB\xBFfirst\n\xEF\xBB\xBFsecond");
        assert_eq!(lines[0], Ok(b"first".to_vec()));
        assert_eq!(lines[1], Ok(b"\xEF\xBB\xBFsecond".to_vec()));
    }
}
