//! Deterministic, NetBIOS-safe AD computer names derived from instance ids.
//!
//! NetBIOS names hold at most 15 characters; instance ids have 19 (`i-` and 17 hex
//! digits), so truncating them collides. Instead the 68-bit number in the id is written
//! in Crockford base 32 (digits and upper-case letters without I, L, O, U): 14
//! characters. Without a prefix the name is `I` followed by all 14, so different
//! instances always get different names. With a prefix of up to 6 characters the name
//! keeps the last `15 - prefix` digits (at least 45 bits): two concurrently joined
//! instances collide with odds of about n²/2⁴⁶ (under 2 in a million for 10 000).

use crate::ids::InstanceId;

/// The longest NetBIOS computer name.
pub const MAX_LEN: usize = 15;
/// The longest prefix, so that at least 9 base-32 digits (45 bits) remain.
pub const MAX_PREFIX_LEN: usize = 6;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Checks a configured prefix: 1–6 characters, letters, digits and `-`, starting with a letter.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "computerNamePrefix {prefix:?} must be 1-{MAX_PREFIX_LEN} letters, digits or '-', starting with a letter"
        ))
    }
}

/// The computer name for an instance, with an optional (already checked) prefix.
pub fn computer_name(instance: &InstanceId, prefix: Option<&str>) -> String {
    // InstanceId guarantees 8 or 17 hex digits: at most 68 bits.
    let number = u128::from_str_radix(instance.hex(), 16).unwrap_or_default();
    let digits = if instance.hex().len() == 8 { 7 } else { 14 };
    let encoded: String = (0..digits)
        .rev()
        .filter_map(|i| ALPHABET.get(((number >> (5 * i)) & 31) as usize))
        .map(|&b| char::from(b))
        .collect();
    match prefix {
        Some(p) => {
            let prefix = p.to_ascii_uppercase();
            let room = MAX_LEN - prefix.len().min(MAX_PREFIX_LEN);
            let tail = encoded
                .get(encoded.len().saturating_sub(room)..)
                .unwrap_or_default();
            format!("{prefix}{tail}")
        }
        None => format!("I{encoded}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("valid id")
    }

    #[test]
    fn names_are_fifteen_characters_at_most_and_stable() {
        let n = computer_name(&id("i-0abcd1234ef567890"), None);
        assert_eq!(n.len(), 15);
        assert_eq!(n, computer_name(&id("i-0abcd1234ef567890"), None));
        assert_eq!(computer_name(&id("i-1234abcd"), None).len(), 8);
        assert_eq!(
            computer_name(&id("i-0abcd1234ef567890"), Some("web")).len(),
            15
        );
        assert!(computer_name(&id("i-0abcd1234ef567890"), Some("web")).starts_with("WEB"));
    }

    #[test]
    fn ids_that_share_a_truncated_prefix_get_different_names() {
        let a = computer_name(&id("i-0abcd1234ef567890"), None);
        let b = computer_name(&id("i-0abcd1234ef567891"), None);
        assert_ne!(a, b);
    }

    #[test]
    fn prefixes_are_checked() {
        for (prefix, valid) in [
            ("web", true),
            ("WEB-01", true),
            ("", false),
            ("1web", false),
            ("toolong", false),
            ("we b", false),
        ] {
            assert_eq!(check_prefix(prefix).is_ok(), valid, "{prefix:?}");
        }
    }

    proptest! {
        #[test]
        fn every_name_is_netbios_safe(hex in "[0-9a-f]{17}", prefix in proptest::option::of("[A-Za-z][A-Za-z0-9-]{0,5}")) {
            let name = computer_name(&id(&format!("i-{hex}")), prefix.as_deref());
            prop_assert!(name.len() <= MAX_LEN);
            prop_assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'));
            prop_assert!(name.as_bytes()[0].is_ascii_alphabetic());
        }

        #[test]
        fn without_prefix_distinct_ids_give_distinct_names(a in "[0-9a-f]{17}", b in "[0-9a-f]{17}") {
            prop_assume!(a != b);
            prop_assert_ne!(computer_name(&id(&format!("i-{a}")), None), computer_name(&id(&format!("i-{b}")), None));
        }
    }
}
