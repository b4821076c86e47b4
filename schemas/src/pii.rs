//! The guard against Swedish personal identity numbers (personnummer) and coordination numbers
//! (samordningsnummer), and their redaction.
//!
//! A match is 10 or 12 digits, optionally with `-` or `+` before the last four, not part of a
//! longer run of digits, whose date part is a real date (for a coordination number the day is the
//! real day + 60) and whose last digit passes the Luhn check over the last ten digits.
//! Organisation numbers (HSA-ids such as `SE2321000255-ABC1`) have a "month" of 20 or more and so
//! never match.

use std::ops::Range;

/// What replaces a personal identity number in a redacted text.
pub const REDACTED: &str = "[REDACTED-PERSONAL-IDENTITY-NUMBER]";

/// Byte ranges of every personal identity or coordination number in `text`.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        if let Some(token_end) = hex_token_end(bytes, i) {
            i = token_end; // a hash, pseudonym or other hex id: its digit runs are not numbers
            continue;
        }
        let start = i;
        let first_end = digit_run_end(bytes, start);
        let first = &bytes[start..first_end];
        // `YYMMDD-NNNC`, `YYMMDD+NNNC`, `YYYYMMDD-NNNC`
        if (first.len() == 6 || first.len() == 8)
            && first_end < bytes.len()
            && (bytes[first_end] == b'-' || bytes[first_end] == b'+')
        {
            let second_start = first_end + 1;
            let second_end = digit_run_end(bytes, second_start);
            if second_end - second_start == 4 {
                let mut digits = first.to_vec();
                digits.extend_from_slice(&bytes[second_start..second_end]);
                if is_identity_number(&digits) {
                    found.push(start..second_end);
                    i = second_end;
                    continue;
                }
            }
        }
        if (first.len() == 10 || first.len() == 12) && is_identity_number(first) {
            found.push(start..first_end);
        }
        i = first_end;
    }
    found
}

/// Whether `text` contains a personal identity or coordination number.
pub fn contains(text: &str) -> bool {
    !find(text).is_empty()
}

/// `text` with every personal identity or coordination number replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let ranges = find(text);
    if ranges.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for range in ranges {
        out.push_str(&text[last..range.start]);
        out.push_str(REDACTED);
        last = range.end;
    }
    out.push_str(&text[last..]);
    out
}

/// JSON paths (RFC 6901 pointers) of every string, key or number in `value` that holds a personal
/// identity or coordination number.
pub fn find_in_json(value: &serde_json::Value) -> Vec<String> {
    let mut paths = Vec::new();
    walk(value, &mut String::new(), &mut paths);
    paths
}

/// `value` with every personal identity or coordination number in its strings, keys and numbers
/// replaced by [`REDACTED`] (a number that is one becomes that string).
pub fn redact_json(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(redact(s)),
        Value::Number(n) => {
            let text = n.to_string();
            if contains(&text) {
                Value::String(REDACTED.to_string())
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (redact(k), redact_json(v))).collect()),
        Value::Bool(_) | Value::Null => value.clone(),
    }
}

/// Redacts text that may not be valid JSON (a malformed body): JSON `\u003N` escapes of digits,
/// `-` and `+` are decoded first so that an escaped number cannot slip through.
pub fn redact_raw(text: &str) -> String {
    let mut decoded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("\\u00") {
        decoded.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 6).unwrap_or("");
        let hex = escape.get(4..6).map(|h| h.to_ascii_lowercase());
        let replacement = match hex.as_deref() {
            Some(h) if h.len() == 2 && h.starts_with('3') && h.as_bytes()[1].is_ascii_digit() => {
                Some((b'0' + (h.as_bytes()[1] - b'0')) as char)
            }
            Some("2d") => Some('-'),
            Some("2b") => Some('+'),
            _ => None,
        };
        match replacement {
            Some(c) => {
                decoded.push(c);
                rest = &rest[pos + 6..];
            }
            None => {
                decoded.push_str("\\u00");
                rest = &rest[pos + 4..];
            }
        }
    }
    decoded.push_str(rest);
    redact(&decoded)
}

fn walk(value: &serde_json::Value, path: &mut String, found: &mut Vec<String>) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if contains(s) {
                found.push(path.clone());
            }
        }
        Value::Number(n) => {
            if contains(&n.to_string()) {
                found.push(path.clone());
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                walk(item, path, found);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                if contains(key) {
                    found.push(path.clone());
                }
                walk(item, path, found);
                path.truncate(len);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// When the alphanumeric token around `at` is a hex string of 16 or more characters with at least
/// one letter (a pseudonym, a hash, a hex id), where it ends. Its digit runs are parts of a number
/// in base 16, not personal identity numbers: 64-hex pseudonyms would otherwise be refused about
/// once in 15,000 (measured on the demo load).
fn hex_token_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut start = at;
    while start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        start -= 1;
    }
    let mut end = at;
    while end < bytes.len() && bytes[end].is_ascii_alphanumeric() {
        end += 1;
    }
    let token = &bytes[start..end];
    let is_hex = token.iter().all(u8::is_ascii_hexdigit);
    let has_letter = token.iter().any(u8::is_ascii_alphabetic);
    (token.len() >= 16 && is_hex && has_letter).then_some(end)
}

fn digit_run_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    end
}

/// `digits` is 10 (`YYMMDDNNNC`) or 12 (`YYYYMMDDNNNC`) ASCII digits.
fn is_identity_number(digits: &[u8]) -> bool {
    let d = |i: usize| u32::from(digits[i] - b'0');
    let (year, date_at) = match digits.len() {
        10 => (None, 0),
        12 => {
            let century = d(0) * 10 + d(1);
            if !(18..=20).contains(&century) {
                return false;
            }
            (Some(century * 100 + d(2) * 10 + d(3)), 2)
        }
        _ => return false,
    };
    let yy = d(date_at) * 10 + d(date_at + 1);
    let month = d(date_at + 2) * 10 + d(date_at + 3);
    let mut day = d(date_at + 4) * 10 + d(date_at + 5);
    if day > 60 {
        day -= 60; // samordningsnummer
    }
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = match year {
        Some(y) => (y % 4 == 0 && y % 100 != 0) || y % 400 == 0,
        None => yy % 4 == 0, // some century makes it a leap year (2000 was one)
    };
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days_in_month && luhn(&digits[digits.len() - 10..])
}

fn luhn(ten_digits: &[u8]) -> bool {
    let sum: u32 = ten_digits
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let n = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = n * 2;
                doubled / 10 + doubled % 10
            } else {
                n
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test numbers from Skatteverket's published test series (not real persons).
    const PIN: &str = "19121212-1212";

    #[test]
    fn finds_every_format() {
        for text in [
            "191212121212",
            "19121212-1212",
            "121212-1212",
            "1212121212",
            "121212+1212",
            "pnr 121212-1212 i text",
            "x19121212-1212y",
        ] {
            assert!(contains(text), "{text}");
        }
    }

    fn with_check_digit(nine: &str) -> String {
        let check = (0..10).find(|c| luhn(format!("{nine}{c}").as_bytes())).unwrap();
        format!("{nine}{check}")
    }

    #[test]
    fn finds_coordination_numbers() {
        // samordningsnummer: the day + 60 (12 → 72)
        let ten = with_check_digit("121272121");
        assert!(contains(&ten), "{ten}");
        assert!(contains(&format!("19{}-{}", &ten[..6], &ten[6..])));
    }

    #[test]
    fn leaves_non_numbers_alone() {
        for text in [
            "SE2321000255-ABC1", // HSA-id of Region Skåne: organisation number, "month" 21
            "232100-0255",       // organisation number
            "19121212-1213",     // wrong check digit
            "1912121212123",     // 13 digits
            "121312-1212",       // month 13
            "2026-03-02T10:15:00+01:00",
            "12345",
        ] {
            assert!(!contains(text), "{text}");
        }
        let day_zero = with_check_digit("121200121");
        assert!(!contains(&day_zero), "{day_zero}");
    }

    #[test]
    fn hex_pseudonyms_with_digit_runs_are_not_numbers() {
        // A 64-hex pseudonym whose digits happen to form a valid-looking number.
        let ten = with_check_digit("121212121");
        let pseudonym = format!("ab{ten}{}", "c".repeat(52));
        assert_eq!(pseudonym.len(), 64);
        assert!(!contains(&pseudonym), "{pseudonym}");
        // but a number after a word is still one
        assert!(contains(&format!("pnr{ten}")));
        assert!(contains(&format!("id:{ten}")));
    }

    #[test]
    fn regression_random_hex_pseudonyms_were_refused_as_personal_numbers() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let pseudonym: String = (0..4).map(|_| format!("{:016x}", next())).collect();
            assert!(!contains(&pseudonym), "{pseudonym}");
        }
    }

    #[test]
    fn feb_29_only_in_leap_years_when_century_is_known() {
        let ten = with_check_digit("000229123");
        assert!(contains(&format!("20{ten}")), "2000-02-29 exists");
        assert!(!contains(&format!("19{ten}")), "1900-02-29 does not");
    }

    #[test]
    fn redacts_in_text_json_and_raw() {
        assert_eq!(redact(&format!("a {PIN} b")), format!("a {REDACTED} b"));
        let value = serde_json::json!({"data": {"note": PIN, "n": 191212121212u64, PIN: 1}});
        let paths = find_in_json(&value);
        assert_eq!(paths.len(), 3, "{paths:?}");
        let redacted = redact_json(&value).to_string();
        assert!(!contains(&redacted), "{redacted}");
        let raw = r#"{"x": "\u0031\u0039121212-1212", broken"#;
        assert!(!contains(&redact_raw(raw)));
        assert!(redact_raw(raw).contains(REDACTED));
    }
}
