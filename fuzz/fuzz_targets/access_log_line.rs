//! Feeds arbitrary bytes to the access log line parser and checks what it accepts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use session_monitor::engine::session::SessionId;
use session_monitor::sources::access_log::parse_line;

fuzz_target!(|line: &[u8]| {
    if let Ok(parsed) = parse_line(line) {
        // Every accepted line yields a valid session id, whatever its bytes.
        let id = parsed.session_id();
        assert!(SessionId::validate(id.as_str()).is_ok(), "invalid id {id:?}");
    }
});
