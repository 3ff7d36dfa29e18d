//! Cutting outside text safely: never inside a character, never panicking.

/// At most the first `max` characters of `text`.
pub fn first_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

/// The last `max` bytes of `text` or fewer (cut at a character boundary), marked with
/// `…` when cut.
pub fn clip_end(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", text.get(start..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_fall_between_characters() {
        let text = "é".repeat(40);
        assert_eq!(first_chars(&text, 10).chars().count(), 10);
        assert_eq!(first_chars("abc", 10), "abc");
        let clipped = clip_end(&text, 5);
        assert!(clipped.starts_with('…'));
        assert_eq!(clipped.trim_start_matches('…'), "éé");
        assert_eq!(clip_end("short", 10), "short");
    }

    proptest! {
        #[test]
        fn any_text_any_length_never_panics(text in any::<String>(), max in 0usize..64) {
            prop_assert!(first_chars(&text, max).chars().count() <= max);
            prop_assert!(text.starts_with(first_chars(&text, max)));
            let clipped = clip_end(&text, max);
            prop_assert!(text.ends_with(clipped.trim_start_matches('…')) || text.len() <= max);
        }
    }
}
