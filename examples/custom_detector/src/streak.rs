//! Step 4: state between evaluations.
//!
//! A plugin instance keeps nothing between calls: the host may reload it, restart,
//! or run it on another instance. To remember something per series, return it as
//! `Output::state` (any bytes); the host stores it and hands it back as
//! `Series::state` next time for the same series (`None` the first time).
//!
//! Here the memory is the number of consecutive evaluations the mean has been off.
//! Two habits: keep the encoding tiny and versionless-simple, and treat bytes you
//! cannot read as "no state" instead of failing (the format may change between
//! plugin versions, and the host keeps state across upgrades).

/// The streak after this evaluation: previous + 1 while firing, 0 otherwise.
pub fn next(previous: Option<&[u8]>, firing: bool) -> u32 {
    if firing {
        decode(previous).saturating_add(1)
    } else {
        0
    }
}

/// The state bytes for `streak`: 4 bytes, little-endian.
pub fn encode(streak: u32) -> Vec<u8> {
    streak.to_le_bytes().to_vec()
}

/// Reads [`encode`]'s bytes; anything else counts as no streak.
fn decode(state: Option<&[u8]>) -> u32 {
    state
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_while_firing_and_resets() {
        assert_eq!(next(None, true), 1);
        assert_eq!(next(Some(&encode(4)), true), 5);
        assert_eq!(next(Some(&encode(4)), false), 0);
        assert_eq!(next(Some(&encode(u32::MAX)), true), u32::MAX);
    }

    #[test]
    fn unreadable_state_is_no_state() {
        assert_eq!(next(Some(b"garbage"), true), 1);
        assert_eq!(next(Some(&[]), true), 1);
    }
}
