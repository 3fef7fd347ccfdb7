//! Feeds arbitrary bytes to the session id validator and checks its rules.

#![no_main]

use libfuzzer_sys::fuzz_target;
use session_monitor::engine::session::SessionId;

fuzz_target!(|bytes: &[u8]| {
    match SessionId::from_bytes(bytes) {
        Ok(id) => {
            let text = id.as_str();
            assert!(!text.is_empty());
            assert!(text.len() <= SessionId::MAX_LEN);
            assert!(!text.chars().any(char::is_control));
            assert_eq!(text.as_bytes(), bytes);
        }
        Err(_) => {
            let valid = std::str::from_utf8(bytes).is_ok_and(|text| {
                !text.is_empty()
                    && text.len() <= SessionId::MAX_LEN
                    && !text.chars().any(char::is_control)
            });
            assert!(!valid, "valid id rejected: {bytes:?}");
        }
    }
});
