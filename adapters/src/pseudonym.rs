//! The pseudonymiser: a person's personal identity number (personnummer, or coordination number,
//! samordningsnummer) becomes lowercase hex HMAC-SHA256 of its normalised 12-digit form, keyed with
//! the region's secret. The number itself never leaves the adapter, and no error message repeats it.
//!
//! Normalisation: `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDDNNNC`, `YYMMDD-NNNC` and `YYMMDD+NNNC` of the
//! same person give the same 12 digits. With 10 digits the century is the one that makes the person
//! younger than 100 years, or 100 or older with `+` (Skatteverket's rule). The date must be real (a
//! coordination number's day is the real day + 60) and the last digit must pass the Luhn check.
//!
//! ```
//! use sgd_adapters::pseudonym::Pseudonymiser;
//!
//! let pseudonymiser = Pseudonymiser::new(b"the region's secret, 32 bytes or more!".to_vec())?;
//! let a = pseudonymiser.pseudonym("19121212-1212")?;
//! let b = pseudonymiser.pseudonym("121212+1212")?; // the same person, 100 or older
//! assert_eq!(a, b);
//! assert_eq!(a.len(), 64);
//! # Ok::<(), sgd_adapters::pseudonym::PseudonymError>(())
//! ```

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable naming the key file.
pub const KEY_FILE_ENV: &str = "SGD_PSEUDONYM_KEY_FILE";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Why a pseudonym could not be made. No variant carries the number itself.
#[derive(Debug, thiserror::Error)]
pub enum PseudonymError {
    /// The input is not 10 or 12 digits with an optional `-` or `+` before the last four → refuse
    /// the record (per-resource error) and ask the source to fix it.
    #[error("not a personal identity number: {0}")]
    Format(&'static str),
    /// The date part is not a real date (nor a real date + 60 for a coordination number) → refuse
    /// the record.
    #[error("not a personal identity number: the date part is not a real date")]
    Date,
    /// The check digit fails the Luhn check → refuse the record (likely a typo at the source).
    #[error("not a personal identity number: the check digit is wrong")]
    Checksum,
    /// No key is configured → set `SGD_PSEUDONYM_KEY_FILE` or pass the key file; do not start.
    #[error("no pseudonym key: set {KEY_FILE_ENV} to the key file")]
    NoKey,
    /// The key file cannot be read → fix the path or its permissions; do not start.
    #[error("cannot read the pseudonym key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is too short to be a secret → make a new one (e.g. `openssl rand -hex 32`); do not
    /// start.
    #[error("the pseudonym key has {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    KeyTooShort(usize),
}

/// Makes pseudonyms with one key. `Debug` does not show the key.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser { key: <secret> }")
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with `key` (at least [`MIN_KEY_BYTES`] bytes).
    pub fn new(key: Vec<u8>) -> Result<Self, PseudonymError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(PseudonymError::KeyTooShort(key.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| PseudonymError::KeyTooShort(key.len()))?;
        Ok(Self { mac })
    }

    /// A pseudonymiser with the key in `path`: the file's bytes, trailing whitespace (a final
    /// newline) removed.
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self, PseudonymError> {
        let path = path.as_ref();
        let mut key =
            std::fs::read(path).map_err(|source| PseudonymError::KeyFile { path: path.to_path_buf(), source })?;
        while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
            key.pop();
        }
        Self::new(key)
    }

    /// A pseudonymiser with the key file named by `SGD_PSEUDONYM_KEY_FILE`.
    pub fn from_env() -> Result<Self, PseudonymError> {
        match std::env::var_os(KEY_FILE_ENV) {
            Some(path) if !path.is_empty() => Self::from_key_file(PathBuf::from(path)),
            _ => Err(PseudonymError::NoKey),
        }
    }

    /// The pseudonym of the person with personal identity number `number` (any accepted format),
    /// with today as the reference date for 10-digit numbers.
    pub fn pseudonym(&self, number: &str) -> Result<String, PseudonymError> {
        self.pseudonym_at(number, chrono::Local::now().date_naive())
    }

    /// As [`pseudonym`](Self::pseudonym), with `today` as the reference date.
    pub fn pseudonym_at(&self, number: &str, today: NaiveDate) -> Result<String, PseudonymError> {
        let normalised = normalise_at(number, today)?;
        let mut mac = self.mac.clone();
        mac.update(normalised.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

/// The 12-digit form `YYYYMMDDNNNC` of a personal identity or coordination number, checked; `today`
/// decides the century of a 10-digit number.
pub fn normalise_at(number: &str, today: NaiveDate) -> Result<String, PseudonymError> {
    let trimmed = number.trim();
    // Lengths below are in bytes and the splits by byte: anything but ASCII is not a number (and
    // would split inside a character: found by the fuzz run, a panic in the adapter).
    if !trimmed.is_ascii() {
        return Err(PseudonymError::Format("expected digits only (and '-' or '+' before the last four)"));
    }
    let (digits, plus) = match trimmed.len() {
        10 | 12 => (trimmed.to_string(), false),
        11 | 13 => {
            let (head, tail) = trimmed.split_at(trimmed.len() - 5);
            let (separator, last_four) = tail.split_at(1);
            let plus = match separator {
                "-" => false,
                "+" => true,
                _ => return Err(PseudonymError::Format("only '-' or '+' may separate the last four digits")),
            };
            (format!("{head}{last_four}"), plus)
        }
        _ => return Err(PseudonymError::Format("expected 10 or 12 digits")),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PseudonymError::Format("expected digits only (and '-' or '+' before the last four)"));
    }
    let number_of = |s: &str| s.parse::<u32>().map_err(|_| PseudonymError::Format("expected digits"));
    let (year, rest) = if digits.len() == 12 {
        (number_of(&digits[..4])? as i32, &digits[2..])
    } else {
        let yy = number_of(&digits[..2])? as i32;
        let mut year = today.year() - (today.year() - yy).rem_euclid(100);
        let month = number_of(&digits[2..4])?;
        let day = number_of(&digits[4..6])?;
        let day = if day > 60 { day - 60 } else { day };
        // Born later this year than today: the previous century.
        if NaiveDate::from_ymd_opt(year, month, day).is_some_and(|born| born > today) {
            year -= 100;
        }
        if plus {
            year -= 100;
        }
        (year, digits.as_str())
    };
    let month = number_of(&rest[2..4])?;
    let mut day = number_of(&rest[4..6])?;
    if day > 60 {
        day -= 60; // coordination number
    }
    if NaiveDate::from_ymd_opt(year, month, day).is_none() {
        return Err(PseudonymError::Date);
    }
    if !luhn_ok(rest) {
        return Err(PseudonymError::Checksum);
    }
    Ok(format!("{year:04}{rest}", rest = &rest[2..]))
}

/// The Luhn check over the 10 digits `YYMMDDNNNC`.
fn luhn_ok(ten: &str) -> bool {
    let sum: u32 = ten
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    matches!(sum % 10, 0) // not is_multiple_of: the workspace promises Rust 1.85
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
    }

    #[test]
    fn the_same_person_in_any_format_gets_the_same_pseudonym() {
        let p = Pseudonymiser::new(KEY.to_vec()).unwrap();
        let forms = ["199001012385", "19900101-2385", "9001012385", "900101-2385", " 900101-2385 "];
        let pseudonyms: Vec<String> = forms.iter().map(|f| p.pseudonym_at(f, today()).unwrap()).collect();
        assert!(pseudonyms.windows(2).all(|w| w[0] == w[1]), "{pseudonyms:?}");
        // 100 or older: '+' with 10 digits, the full year with 12
        let old = ["191212121212", "19121212-1212", "121212+1212"];
        let pseudonyms: Vec<String> = old.iter().map(|f| p.pseudonym_at(f, today()).unwrap()).collect();
        assert!(pseudonyms.windows(2).all(|w| w[0] == w[1]), "{pseudonyms:?}");
        // without '+', 121212-1212 is someone born in 2012: another person
        assert_ne!(p.pseudonym_at("121212-1212", today()).unwrap(), pseudonyms[0]);
        assert_eq!(normalise_at("121212-1212", today()).unwrap(), "201212121212");
    }

    #[test]
    fn the_century_of_ten_digits_keeps_the_person_under_100_unless_plus() {
        assert_eq!(normalise_at("261124-2385", today()).unwrap(), "202611242385"); // born yesterday
        assert_eq!(normalise_at("261126-2383", today()).unwrap(), "192611262383"); // tomorrow: a 1926 birth
        assert_eq!(normalise_at("261126+2383", today()).unwrap(), "182611262383");
        assert_eq!(normalise_at("900161-2382", today()).unwrap(), "199001612382");
        // coordination number
    }

    #[test]
    fn pseudonyms_are_stable_keyed_hex_and_never_contain_the_number() {
        let p = Pseudonymiser::new(KEY.to_vec()).unwrap();
        let a = p.pseudonym_at("19900101-2385", today()).unwrap();
        assert_eq!(a, p.pseudonym_at("19900101-2385", today()).unwrap(), "stable");
        assert_eq!(
            a, "95d592f59cfdc24b79a553efd22e84f51426fe4bc8729acfe520da303e939733",
            "HMAC-SHA256(KEY, \"199001012385\")"
        );
        assert!(a.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let other = Pseudonymiser::new(b"another key, also 32 bytes long!".to_vec()).unwrap();
        assert_ne!(a, other.pseudonym_at("19900101-2385", today()).unwrap(), "keyed");
        assert_ne!(a, p.pseudonym_at("19900102-2384", today()).unwrap(), "another person");
        for needle in ["199001012385", "9001012385", "900101", "2385"] {
            assert!(!a.contains(needle) || needle.len() <= 4, "{needle} in {a}");
        }
        assert!(!sgd_schemas::pii::contains(&a), "the hub's PII guard accepts it");
        // not a bare SHA-256 of the number (which anyone could compute back from the 10^8 numbers
        // of a birth year)
        use sha2::Digest;
        assert_ne!(a, hex::encode(Sha256::digest(b"199001012385")));
    }

    #[test]
    fn bad_input_is_a_clear_error_without_the_number() {
        let p = Pseudonymiser::new(KEY.to_vec()).unwrap();
        let cases = [
            ("", "10 or 12 digits"),
            ("12345", "10 or 12 digits"),
            ("19900101_2385", "'-' or '+'"),
            ("1990O1012385", "digits only"),
            ("19901301-2385", "real date"),
            ("19900230-2385", "real date"),
            ("19900101-2386", "check digit"),
        ];
        for (input, expected) in cases {
            let error = p.pseudonym_at(input, today()).unwrap_err().to_string();
            assert!(error.contains(expected), "{input:?}: {error}");
            if input.len() >= 10 {
                assert!(!error.contains(input), "the error repeats the input: {error}");
            }
        }
    }

    #[test]
    fn keys_come_from_a_file_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, [KEY, b"\n"].concat()).unwrap();
        let from_file = Pseudonymiser::from_key_file(&file).unwrap();
        let direct = Pseudonymiser::new(KEY.to_vec()).unwrap();
        assert_eq!(
            from_file.pseudonym_at("9001012385", today()).unwrap(),
            direct.pseudonym_at("9001012385", today()).unwrap(),
            "a final newline is not part of the key"
        );
        assert!(!format!("{from_file:?}").contains("0123456789"), "Debug hides the key");
        assert!(matches!(Pseudonymiser::new(b"short".to_vec()), Err(PseudonymError::KeyTooShort(5))));
        assert!(matches!(
            Pseudonymiser::from_key_file(dir.path().join("missing")),
            Err(PseudonymError::KeyFile { .. })
        ));
    }
}
