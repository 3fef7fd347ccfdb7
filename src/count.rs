//! A count with its noun in the right number: "1 session", "2 sessions", "0 sessions".
//! Plain formatting with no state, used on the engine, source and UI threads.

use std::fmt;

/// A number and a noun that takes "s" in the plural, shown as "1 sweep" or "3 sweeps".
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    count: u64,
    noun: &'static str,
}

/// Returns `count` with `noun` in the singular for one and in the plural otherwise.
/// The noun must form its plural with a final "s".
pub fn counted(count: impl TryInto<u64>, noun: &'static str) -> Counted {
    Counted {
        count: count.try_into().unwrap_or(u64::MAX),
        noun,
    }
}

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ending = if self.count == 1 { "" } else { "s" };
        write!(f, "{} {}{ending}", self.count, self.noun)
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_others_plural() {
        assert_eq!(counted(0u64, "session").to_string(), "0 sessions");
        assert_eq!(counted(1usize, "session").to_string(), "1 session");
        assert_eq!(
            counted(2u32, "stale session").to_string(),
            "2 stale sessions"
        );
    }
}
