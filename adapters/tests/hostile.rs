//! Hostile input against the adapters' parsers: the FHIR R4 mapping (every area, resources and
//! Bundles) and the three CSV mappings, fed mutated fixtures (hostile values at random positions,
//! personal identity numbers in every spelling at random positions, deep nesting, broken bytes)
//! and arbitrary bytes.
//!
//! Properties: no panic; a refused input or resource has an error naming where and why; no error
//! message and no event produced holds a personal identity number (the number is read only where
//! a person is named, and pseudonymised there). `scripts/fuzz.sh` runs these for longer.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};
use sgd_adapters::{
    deviation,
    fhir::{self, Mapped},
    npo,
    pseudonym::Pseudonymiser,
    sdk, SourceSystem,
};
use sgd_schemas::pii;

// --- personal identity numbers (as in schemas/tests/hostile.rs) -----------------------------

#[derive(Debug, Clone)]
struct Pin {
    twelve: String,
}

impl Pin {
    fn new(year: u32, month: u32, day: u32, coordination: bool, serial: u32) -> Self {
        let day = if coordination { day + 60 } else { day };
        let nine = format!("{:02}{month:02}{day:02}{serial:03}", year % 100);
        let check = (0..10).find(|c| luhn(&format!("{nine}{c}"))).expect("a check digit exists");
        Self { twelve: format!("{}{nine}{check}", year / 100) }
    }

    fn spellings(&self) -> Vec<String> {
        let t = &self.twelve;
        let ten = &t[2..];
        vec![
            t.clone(),
            format!("{}-{}", &t[..8], &t[8..]),
            ten.to_string(),
            format!("{}-{}", &ten[..6], &ten[6..]),
            format!("{}+{}", &ten[..6], &ten[6..]),
        ]
    }

    /// A spelling found in `text` as a number of its own (not inside a longer run of digits).
    fn leaked_in(&self, text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        self.spellings().into_iter().find(|s| {
            text.match_indices(s.as_str()).any(|(at, _)| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + s.len()).copied();
                !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
            })
        })
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let n = u32::from(b - b'0');
            if i % 2 == 0 {
                let d = n * 2;
                d / 10 + d % 10
            } else {
                n
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn pin() -> impl Strategy<Value = Pin> {
    (1890u32..2026, 1u32..=12, 1u32..=28, any::<bool>(), 0u32..1000)
        .prop_map(|(year, month, day, coordination, serial)| Pin::new(year, month, day, coordination, serial))
}

// --- fixtures -------------------------------------------------------------------------------

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every FHIR fixture (JSON).
fn fhir_fixtures() -> &'static [Value] {
    static FIXTURES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut out = Vec::new();
        for dir in std::fs::read_dir(fixtures_dir()).unwrap().flatten().filter(|e| e.path().is_dir()) {
            for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
                if file.path().extension().is_some_and(|e| e == "json") {
                    out.push(serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap());
                }
            }
        }
        out.sort_by_key(|v: &Value| v.to_string());
        assert!(out.len() >= 10, "FHIR fixtures missing");
        out
    })
}

type CsvMapper = fn(&[u8]) -> Result<Mapped, sgd_adapters::tabular::CsvError>;

/// The CSV kinds: a good file and its mapping.
fn csv_kinds() -> Vec<(String, CsvMapper)> {
    let read = |name: &str| std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    vec![
        (read("npo-roles.csv"), npo::map_roles_csv as CsvMapper),
        (read("sdk-addresses.csv"), sdk::map_addresses_csv as CsvMapper),
        (read("deviation-history.csv"), deviation::map_history_csv as CsvMapper),
    ]
}

fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(b"hostile-input test key, 32 bytes or more".to_vec()).unwrap()
}

// --- mutations ------------------------------------------------------------------------------

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("<script>alert(1)</script>")),
        Just(json!("'; DROP TABLE events; --")),
        Just(json!("")),
        Just(json!("9999-12-31T23:59:59+01:00")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("2026-03-02T10:15:00")),
        Just(json!("Patient/")),
        Just(json!("#")),
        Just(json!("urn:oid:1.2.752.129.2.1.3.1")),
        Just(json!("urn:sgd:principal")),
        Just(Value::Null),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{}])),
        any::<i64>().prop_map(|n| json!(n)),
        any::<bool>().prop_map(Value::Bool),
        "\\PC{0,30}".prop_map(Value::String),
        (1usize..20_000).prop_map(|n| json!("x".repeat(n))),
    ]
}

#[derive(Debug, Clone)]
enum PinForm {
    Whole,
    InText,
    Number,
    Key,
}

fn positions(value: &Value) -> Vec<String> {
    fn walk(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let p = format!("{path}/{i}");
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn replace_at(value: &mut Value, at: usize, with: Value) {
    let all = positions(value);
    if let Some(p) = all.get(at % all.len().max(1)) {
        if let Some(slot) = value.pointer_mut(p) {
            *slot = with;
        }
    }
}

fn pin_value(spelling: &str, form: &PinForm) -> Value {
    match form {
        PinForm::Whole => json!(spelling),
        PinForm::InText => json!(format!("pnr: {spelling}, ring")),
        PinForm::Number => match spelling.parse::<u64>() {
            Ok(n) if !spelling.starts_with('0') => json!(n),
            _ => json!(spelling),
        },
        PinForm::Key => json!({ spelling: "x" }),
    }
}

fn pin_form() -> impl Strategy<Value = PinForm> {
    prop_oneof![Just(PinForm::Whole), Just(PinForm::InText), Just(PinForm::Number), Just(PinForm::Key)]
}

// --- the properties -------------------------------------------------------------------------

/// Checks a mapping outcome: errors name where and why, nothing holds a number.
fn check_mapped(mapped: &Mapped, pins: &[Pin]) -> Result<(), TestCaseError> {
    let source = SourceSystem::new("12", "hostile").unwrap();
    for error in &mapped.errors {
        prop_assert!(!error.resource.is_empty() && !error.field.is_empty() && !error.reason.trim().is_empty());
        no_number(&error.to_string(), pins, "a mapping error")?;
    }
    for draft in &mapped.drafts {
        // A draft that cannot be written out is an error the outbox reports; it must not panic.
        if let Ok(bytes) = draft.to_json(&source) {
            no_number(&String::from_utf8_lossy(&bytes), pins, "an event")?;
        }
        no_number(&draft.id, pins, "an event id")?;
    }
    Ok(())
}

fn no_number(text: &str, pins: &[Pin], what: &str) -> Result<(), TestCaseError> {
    prop_assert!(!pii::contains(text), "{} holds a personal identity number: {}", what, text);
    for pin in pins {
        prop_assert!(pin.leaked_in(text).is_none(), "{} holds {:?}: {}", what, pin, text);
    }
    Ok(())
}

fn check_fhir(bytes: &[u8], pins: &[Pin]) -> Result<(), TestCaseError> {
    match fhir::map_input(bytes, &pseudonymiser(), fhir::any_area) {
        Ok(mapped) => check_mapped(&mapped, pins),
        Err(e) => no_number(&e.to_string(), pins, "an input error"),
    }
}

fn check_csv(bytes: &[u8], mapper: CsvMapper, pins: &[Pin]) -> Result<(), TestCaseError> {
    match mapper(bytes) {
        Ok(mapped) => check_mapped(&mapped, pins),
        Err(e) => no_number(&e.to_string(), pins, "a CSV error"),
    }
}

fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.max_shrink_iters = 2048;
    config
}

/// A CSV cell: hostile text, quotes, separators, newlines.
fn hostile_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("=cmd|' /C calc'!A0".to_string()),
        Just("\"".to_string()),
        Just("\"\"\"".to_string()),
        Just("a,b".to_string()),
        Just("a\nb".to_string()),
        Just(";;;".to_string()),
        Just(String::new()),
        Just("9999-12-31T23:59:59+01:00".to_string()),
        Just("true".to_string()),
        "\\PC{0,20}",
        (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// FHIR fixtures with hostile values at random positions.
    #[test]
    fn fhir_with_hostile_values(base in 0usize..100, changes in prop::collection::vec((any::<usize>(), hostile_value()), 1..5)) {
        let mut value = fhir_fixtures()[base % fhir_fixtures().len()].clone();
        for (at, with) in changes {
            replace_at(&mut value, at, with);
        }
        check_fhir(&serde_json::to_vec(&value).unwrap(), &[])?;
    }

    /// A personal identity number at a random position of a FHIR fixture, in any spelling and form:
    /// it may be read as a person's number (and pseudonymised) but never copied anywhere.
    #[test]
    fn fhir_with_personal_identity_numbers(base in 0usize..100, person in pin(), spelling in 0usize..5, at in any::<usize>(), form in pin_form()) {
        let mut value = fhir_fixtures()[base % fhir_fixtures().len()].clone();
        let spelling = person.spellings()[spelling].clone();
        replace_at(&mut value, at, pin_value(&spelling, &form));
        check_fhir(&serde_json::to_vec(&value).unwrap(), &[person])?;
    }

    /// Deep nesting and broken bytes.
    #[test]
    fn fhir_deep_and_broken(base in 0usize..100, depth in 0usize..400, at in any::<usize>(), cut in any::<usize>(), junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut value = fhir_fixtures()[base % fhir_fixtures().len()].clone();
        let mut nested = json!("x");
        for _ in 0..depth {
            nested = json!([nested]);
        }
        replace_at(&mut value, at, nested);
        let mut bytes = serde_json::to_vec(&value).unwrap();
        check_fhir(&bytes, &[])?;
        bytes.truncate(cut % (bytes.len() + 1));
        bytes.extend(junk);
        check_fhir(&bytes, &[])?;
    }

    /// Arbitrary bytes to every parser.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_fhir(&bytes, &[])?;
        for (_, mapper) in csv_kinds() {
            check_csv(&bytes, mapper, &[])?;
        }
    }

    /// CSV files with hostile cells, extra or missing cells, and personal identity numbers in any
    /// cell.
    #[test]
    fn csv_with_hostile_cells(
        kind in 0usize..3,
        changes in prop::collection::vec((any::<usize>(), any::<usize>(), hostile_cell()), 1..6),
        person in pin(),
        spelling in 0usize..5,
        pin_at in prop::option::of((any::<usize>(), any::<usize>(), any::<bool>())),
        ragged in prop::option::of(any::<usize>()),
    ) {
        let (good, mapper) = csv_kinds().swap_remove(kind);
        let mut rows: Vec<Vec<String>> = good.lines().map(|l| l.split(',').map(str::to_string).collect()).collect();
        let quote = |cell: &str| if cell.contains([',', '"', '\n']) { format!("\"{}\"", cell.replace('"', "\"\"")) } else { cell.to_string() };
        for (r, c, cell) in &changes {
            // the header (row 0) is changed too, sometimes
            let r = r % rows.len();
            let n = rows[r].len();
            rows[r][c % n] = quote(cell);
        }
        let mut pins = Vec::new();
        if let Some((r, c, in_text)) = pin_at {
            let spelling = person.spellings()[spelling].clone();
            let r = r % rows.len();
            let n = rows[r].len();
            rows[r][c % n] = if in_text { quote(&format!("pnr: {spelling}, ring")) } else { spelling };
            pins.push(person);
        }
        if let Some(r) = ragged {
            let r = r % rows.len();
            rows[r].push("extra".into());
        }
        let text: String = rows.iter().map(|r| r.join(",") + "\n").collect();
        check_csv(text.as_bytes(), mapper, &pins)?;
    }
}

// --- regressions found by the fuzz run ------------------------------------------------------

/// Regression (scripts/fuzz.sh, round 4): a Patient identifier of 11 or 13 bytes that is not
/// ASCII (`"! \u{2de0}𞹡aA"`) made the pseudonymiser split a string inside a character: a panic
/// in the adapter. Now it is a mapping error like any other malformed number.
#[test]
fn regression_a_non_ascii_identifier_of_eleven_or_thirteen_bytes_does_not_panic() {
    for value in ["! \u{2de0}\u{1ee61}aA", "12345\u{e9}1234", "1912121\u{e9}1234"] {
        assert!(value.len() == 11 || value.len() == 13, "{value}: {}", value.len());
        assert!(pseudonymiser().pseudonym(value).is_err(), "{value}");
        let mut resource: Value =
            serde_json::from_slice(&std::fs::read(fixtures_dir().join("plans/careplan.json")).unwrap()).unwrap();
        resource["contained"][0]["identifier"][0]["value"] = json!(value);
        let mapped =
            fhir::map_input(&serde_json::to_vec(&resource).unwrap(), &pseudonymiser(), fhir::any_area).unwrap();
        assert!(mapped.drafts.is_empty(), "{value}");
        assert_eq!(mapped.errors.len(), 1, "{value}: {:?}", mapped.errors);
    }
}

/// Regression: mapping errors quoted the value they refused (a time, a principal code, a resource
/// id, a CSV header), so a personal identity number there went into the adapter's log and the
/// error report sent back to the source. And a number in an id was copied into the event id.
#[test]
fn regression_errors_and_events_do_not_repeat_a_number_from_the_input() {
    let pin = Pin { twelve: "191212121212".into() };
    let careplan = || -> Value {
        serde_json::from_slice(&std::fs::read(fixtures_dir().join("plans/careplan.json")).unwrap()).unwrap()
    };
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("time", Box::new(|r: &mut Value| r["created"] = json!("19121212-1212"))),
        ("principal", Box::new(|r: &mut Value| r["contributor"][0]["identifier"]["value"] = json!("191212121212"))),
        ("id", Box::new(|r: &mut Value| r["id"] = json!("121212-1212"))),
        ("reference", Box::new(|r: &mut Value| r["subject"]["reference"] = json!("Patient/1212121212"))),
    ];
    for (name, change) in cases {
        let mut resource = careplan();
        change(&mut resource);
        let mapped =
            fhir::map_input(&serde_json::to_vec(&resource).unwrap(), &pseudonymiser(), fhir::any_area).unwrap();
        assert!(mapped.drafts.is_empty(), "{name}: an event was made: {:?}", mapped.drafts);
        assert_eq!(mapped.errors.len(), 1, "{name}");
        let text = mapped.errors[0].to_string();
        assert!(!pii::contains(&text) && pin.leaked_in(&text).is_none(), "{name}: {text}");
        assert!(text.contains(pii::REDACTED) || name == "id", "{name}: the error names what it refused: {text}");
    }
    let (roles, map) = (csv_kinds()[0].0.clone(), csv_kinds()[0].1);
    let with_pin_time = roles.replacen("2026-01-10T08:00:00+01:00", "19121212-1212", 1);
    let mapped = map(with_pin_time.as_bytes()).unwrap();
    let text: String = mapped.errors.iter().map(ToString::to_string).collect();
    assert!(!text.is_empty() && !pii::contains(&text), "{text}");
    let header = roles.replacen("reason", "191212121212", 1);
    let error = map(header.as_bytes()).unwrap_err().to_string();
    assert!(!pii::contains(&error) && error.contains(pii::REDACTED), "{error}");
    let deviations = &csv_kinds()[2];
    let with_pin_id = deviations.0.replacen("avv-2025-0001", "avv-19121212-1212", 1);
    let mapped = (deviations.1)(with_pin_id.as_bytes()).unwrap();
    assert!(mapped.drafts.iter().all(|d| !d.id.contains("1212")), "{:?}", mapped.drafts);
    assert_eq!(mapped.errors.len(), 1, "{:?}", mapped.errors);
    assert!(!pii::contains(&mapped.errors[0].to_string()));
}
