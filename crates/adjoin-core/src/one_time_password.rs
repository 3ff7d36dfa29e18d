//! One-time join passwords: random, held only in memory while they are handed to SSM
//! Parameter Store, and never printed (their `Debug` is redacted, their memory zeroed
//! when dropped).
//!
//! A staged join ([`crate::config::JoinMode::Staged`]) gives each attempt a fresh one:
//! the AD tools host sets it on the computer account it creates, the instance joins with
//! it and at once sets a machine password of its own, so the one-time password binds
//! nothing after the join.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::Error;

/// Length in characters: 32 of 62 gives about 190 bits.
const LENGTH: usize = 32;
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Random bytes at or above this are dropped (rejection sampling: 248 = 4 × 62, so
/// every character is equally likely).
const LIMIT: u8 = 248;

/// A one-time password for one staged join attempt.
pub struct OneTimePassword(Zeroizing<String>);

impl OneTimePassword {
    /// A new password from the operating system's random source: 32 letters and digits,
    /// with at least one upper-case letter, one lower-case letter and one digit (Active
    /// Directory's complexity rule needs three kinds of character).
    pub fn generate() -> Result<Self, Error> {
        // A password without all three kinds (about 0.4 % of draws) is drawn again.
        for _ in 0..64 {
            let candidate = Self::draw()?;
            if candidate.is_complex() {
                return Ok(candidate);
            }
        }
        Err(Error::Invalid {
            operation: "getrandom",
            message: "the random source gave no usable one-time password in 64 draws".into(),
        })
    }

    fn draw() -> Result<Self, Error> {
        let mut out = Zeroizing::new(String::with_capacity(LENGTH));
        let mut bytes = Zeroizing::new([0u8; 64]);
        while out.len() < LENGTH {
            getrandom::fill(bytes.as_mut()).map_err(|e| Error::Unavailable {
                operation: "getrandom",
                message: e.to_string(),
            })?;
            for &b in bytes.iter().filter(|&&b| b < LIMIT) {
                if out.len() == LENGTH {
                    break;
                }
                if let Some(&c) = ALPHABET.get(usize::from(b % 62)) {
                    out.push(char::from(c));
                }
            }
        }
        Ok(OneTimePassword(out))
    }

    fn is_complex(&self) -> bool {
        let s = self.expose();
        s.chars().any(|c| c.is_ascii_uppercase())
            && s.chars().any(|c| c.is_ascii_lowercase())
            && s.chars().any(|c| c.is_ascii_digit())
    }

    /// The password itself: for the one call that stores it, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimePassword([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_complex_and_different() {
        let a = OneTimePassword::generate().unwrap();
        let b = OneTimePassword::generate().unwrap();
        assert_eq!(a.expose().len(), LENGTH);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a.is_complex());
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = OneTimePassword::generate().unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains(p.expose()), "{shown}");
        assert_eq!(shown, "OneTimePassword([redacted])");
    }

    #[test]
    fn every_character_of_the_alphabet_occurs() {
        // 200 passwords: 6 400 draws over 62 characters; a character never drawn would
        // mean a biased mapping.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(OneTimePassword::generate().unwrap().expose().chars());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }
}
