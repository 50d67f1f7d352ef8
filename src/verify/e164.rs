//! Phone numbers in E.164, the form the directory keys participants on and
//! caller IDs are matched in.

/// Normalises a phone number to E.164 (`+` and 8–15 digits): visual
/// separators are dropped, `00` and the national trunk prefix `0` are
/// handled, and numbers without a country code get `default_cc`.
pub fn normalize_e164(number: &str, default_cc: &str) -> Option<String> {
    let trimmed = number.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, trimmed),
    };
    let digits: String = rest
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let e164 = if plus {
        digits
    } else if let Some(intl) = digits.strip_prefix("00") {
        intl.to_string()
    } else if default_cc == "1" && digits.len() == 11 && digits.starts_with('1') {
        // North American numbers are often dialled with the leading 1.
        digits
    } else {
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        format!("{default_cc}{national}")
    };
    (8..=15).contains(&e164.len()).then(|| format!("+{e164}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_normalisation() {
        assert_eq!(
            normalize_e164("+1 (201) 555-0123", "1").as_deref(),
            Some("+12015550123")
        );
        assert_eq!(
            normalize_e164("2015550123", "1").as_deref(),
            Some("+12015550123")
        );
        assert_eq!(
            normalize_e164("12015550123", "1").as_deref(),
            Some("+12015550123")
        );
        assert_eq!(
            normalize_e164("0044 20 7946 0958", "1").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(
            normalize_e164("020 7946 0958", "44").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalize_e164("abc", "1"), None);
        assert_eq!(normalize_e164("+12", "1"), None);
        assert_eq!(normalize_e164("", "1"), None);
    }
}
