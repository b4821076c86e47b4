//! Hostile input against the one validation function (`sgd_schemas::validate`): property tests
//! that build hostile CloudEvents from the valid examples (wrong types, huge strings, deep nesting,
//! random and invalid UTF-8 bytes, personal identity numbers in every spelling at random JSON
//! positions, spoofed principals, extreme times) and arbitrary bytes, and a replay of the kept
//! corpus in `tests/hostile/`.
//!
//! Properties, for every input: `validate` does not panic; it decides the same way twice; a
//! refusal has at least one problem, each with a reason, an RFC 6901 path and a message; nothing a
//! refusal keeps (redacted body, id, type, problem paths and messages) holds a personal identity
//! number; an accepted event holds none; and an event with a number in it is refused for `pii`.
//!
//! The suite runs a modest number of cases; `scripts/fuzz.sh MINUTES` runs them for longer
//! (`PROPTEST_CASES` sets the cases per property; a failing input is also written to
//! `SGD_FUZZ_SAVE_DIR` when set, to be added to `tests/hostile/`).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Map, Value};
use sgd_schemas::{pii, validate, RejectReason, ValidationContext};

/// The size limit used here: small, so that the `too_large` path is reached cheaply.
const MAX_BYTES: usize = 16 * 1024;

// --- personal identity numbers --------------------------------------------------------------

/// A person's number: the 12 digits `YYYYMMDDNNNC` (a coordination number has day + 60).
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

    /// Every spelling: with and without century, with `-` or `+` or nothing before the last four.
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

    /// The first spelling found in `text` as a number of its own (not inside a longer run of
    /// digits, which is not a personal identity number: the guard's own rule).
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

// --- the base events ------------------------------------------------------------------------

fn examples() -> &'static [Value] {
    static EXAMPLES: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut out = Vec::new();
        for area in std::fs::read_dir(&root).expect("examples").flatten() {
            for file in std::fs::read_dir(area.path()).expect("area").flatten() {
                if file.path().to_string_lossy().ends_with(".valid.json") {
                    out.push(serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap());
                }
            }
        }
        out.sort_by_key(|v: &Value| v.to_string());
        out
    })
}

// --- mutations ------------------------------------------------------------------------------

/// Where in the event a personal identity number goes, and how it is written.
#[derive(Debug, Clone)]
enum PinForm {
    /// The whole string value.
    Whole,
    /// Inside text: `pnr: <number>, ring`.
    InText,
    /// A JSON number (only spellings of bare digits not starting with 0).
    Number,
    /// An object key.
    Key,
    /// The string with every digit written as a JSON `\u00NN` escape.
    Escaped,
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at a random position (by index into all positions) with `value`.
    Replace(usize, Value),
    /// Remove an envelope attribute.
    Remove(&'static str),
    /// Set an envelope attribute.
    Set(&'static str, Value),
    /// Wrap a random position in `depth` arrays/objects.
    Nest(usize, usize, bool),
    /// Add an unknown attribute with a hostile name.
    Extension(String, Value),
}

/// Every attribute the validator knows: the ones hostile mutations remove or overwrite.
const ATTRIBUTES: &[&str] = sgd_schemas::validate::KNOWN_ATTRIBUTES;

/// Hostile text: scripts, SQL, control characters, odd Unicode, huge strings.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("'; DROP TABLE events; --".to_string()),
        Just("\" OR 1=1 --".to_string()),
        Just("{{7*7}}${jndi:ldap://x/a}".to_string()),
        Just("\u{0000}\u{0007}\u{001b}[31m\r\n".to_string()),
        Just("\u{202e}evil\u{200b}\u{feff}".to_string()),
        Just("../../../etc/passwd".to_string()),
        Just("１９１２１２１２－１２１２".to_string()), // full-width digits: not ASCII, not a number here
        Just(String::new()),
        "\\PC{0,40}",
        (1usize..40_000).prop_map(|n| "x".repeat(n)),
        (1usize..300).prop_map(|n| "ä".repeat(n)),
    ]
}

/// Hostile JSON values of every type.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        hostile_text().prop_map(Value::String),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null, 1, "a", {"b": []}])),
    ]
}

/// Times at the edges: far past, far future, leap seconds, no offset, odd offsets, not times.
fn hostile_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("0001-01-01T00:00:00+14:00")),
        Just(json!("1970-01-01T00:00:00Z")),
        Just(json!("1899-12-31T23:59:59-12:00")),
        Just(json!("9999-12-31T23:59:59-23:59")),
        Just(json!("9999-12-31T23:59:59+23:59")),
        Just(json!("2099-01-01T00:00:00+01:00")),
        Just(json!("2026-06-30T23:59:60Z")),
        Just(json!("2026-02-30T10:00:00Z")),
        Just(json!("2026-03-02T10:15:00")),
        Just(json!("2026-03-02T10:15:00+25:00")),
        Just(json!("+275760-09-13T00:00:00Z")),
        Just(json!("2026-03-02T10:15:00.123456789123+01:00")),
        Just(json!(1772442900)),
        Just(json!("now")),
        (0u32..10_000, 1u32..=12, 1u32..=31, 0u32..24, -14i32..=14)
            .prop_map(|(y, m, d, h, o)| json!(format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00{o:+03}:00"))),
    ]
}

/// A principal code, a known one or a spoof.
fn principal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("12".to_string()),
        Just("1280".to_string()),
        Just("1281".to_string()),
        Just("1290".to_string()),
        Just("9999".to_string()),
        Just("0".to_string()),
        Just("1280 ".to_string()),
        Just("１２８０".to_string()),
        Just("*".to_string()),
        Just(">".to_string()),
        "[0-9]{1,6}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), hostile_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        prop::sample::select(ATTRIBUTES).prop_map(Mutation::Remove),
        (prop::sample::select(ATTRIBUTES), hostile_value()).prop_map(|(a, v)| Mutation::Set(a, v)),
        hostile_time().prop_map(|t| Mutation::Set("time", t)),
        principal().prop_map(|p| Mutation::Set("principal", json!(p))),
        (principal(), "[a-z.]{1,8}")
            .prop_map(|(p, s)| Mutation::Set("source", json!(format!("/principals/{p}/systems/{s}")))),
        prop::sample::select(
            &[
                "se.sgd.plans.plan.created",
                "se.sgd.hub.adapter.heartbeat",
                "se.sgd.plans",
                "se.sgd..x.y",
                "SE.SGD.PLANS.PLAN.CREATED",
                "com.example.x"
            ][..]
        )
        .prop_map(|t| Mutation::Set("type", json!(t))),
        prop::sample::select(
            &[
                "urn:sgd:schema:plans.plan.created:v0",
                "urn:sgd:schema:plans.plan.created:v99999999999",
                "urn:sgd:schema:sdk.message.delivered:v2",
                "urn:x"
            ][..]
        )
        .prop_map(|d| Mutation::Set("dataschema", json!(d))),
        prop::sample::select(
            &["text/html", "application/xml", "application/json; charset=utf-16", "APPLICATION/JSON", ""][..]
        )
        .prop_map(|c| Mutation::Set("datacontenttype", json!(c))),
        (any::<usize>(), 1usize..200, any::<bool>()).prop_map(|(i, d, arrays)| Mutation::Nest(i, d, arrays)),
        ("[a-zA-Z0-9_~/.-]{0,24}", hostile_value()).prop_map(|(n, v)| Mutation::Extension(n, v)),
    ]
}

/// Every JSON pointer in `value` (the root excluded).
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

fn apply(event: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Replace(i, v) => {
            let all = positions(event);
            if let Some(p) = all.get(i % all.len().max(1)) {
                if let Some(slot) = event.pointer_mut(p) {
                    *slot = v.clone();
                }
            }
        }
        Mutation::Remove(name) => {
            if let Some(o) = event.as_object_mut() {
                o.remove(*name);
            }
        }
        Mutation::Set(name, v) => {
            if let Some(o) = event.as_object_mut() {
                o.insert(name.to_string(), v.clone());
            }
        }
        Mutation::Nest(i, depth, arrays) => {
            let all = positions(event);
            if let Some(p) = all.get(i % all.len().max(1)) {
                if let Some(slot) = event.pointer_mut(p) {
                    let mut v = slot.take();
                    for _ in 0..*depth {
                        v = if *arrays { json!([v]) } else { json!({ "n": v }) };
                    }
                    *slot = v;
                }
            }
        }
        Mutation::Extension(name, v) => {
            if let Some(o) = event.as_object_mut() {
                o.insert(name.clone(), v.clone());
            }
        }
    }
}

/// Puts `spelling` at position `at` (an index into every position, or the root object) in `form`.
/// Returns the body: for [`PinForm::Escaped`] the escapes are made in the serialised text.
fn insert_pin(event: &mut Value, at: usize, spelling: &str, form: &PinForm) -> Vec<u8> {
    let all = positions(event);
    let target = all.get(at % (all.len() + 1)).cloned().unwrap_or_default();
    let marker = "\u{1}PIN\u{1}";
    let value = match form {
        PinForm::Whole | PinForm::Escaped => json!(spelling),
        PinForm::InText => json!(format!("pnr: {spelling}, ring")),
        PinForm::Number => match spelling.parse::<u64>() {
            Ok(n) if !spelling.starts_with('0') => json!(n),
            _ => json!(spelling),
        },
        PinForm::Key => json!({ spelling: true }),
    };
    let value = if matches!(form, PinForm::Escaped) { json!(marker) } else { value };
    match event.pointer_mut(&target) {
        Some(slot) if !target.is_empty() => *slot = value,
        _ => {
            if let Some(o) = event.as_object_mut() {
                o.insert("note".into(), value);
            } else {
                *event = json!({ "note": value });
            }
        }
    }
    let text = event.to_string();
    let text = if matches!(form, PinForm::Escaped) {
        let escaped: String = spelling
            .chars()
            .map(|c| if c.is_ascii_digit() { format!("\\u{:04x}", c as u32) } else { c.to_string() })
            .collect();
        let quoted = serde_json::to_string(marker).unwrap();
        text.replace(&quoted[1..quoted.len() - 1], &escaped)
    } else {
        text
    };
    text.into_bytes()
}

/// Byte-level damage: truncation, flipped bytes, invalid UTF-8, padding past the limit.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    InvalidUtf8(usize, Vec<u8>),
    Pad(usize),
    Bom,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => prop::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Damage::Flip),
        1 => (any::<usize>(), prop::sample::select(vec![vec![0xff], vec![0xc3], vec![0xed, 0xa0, 0x80], vec![0xf4, 0x90, 0x80, 0x80], vec![0xc0, 0xaf], vec![0x80]]))
            .prop_map(|(at, bytes)| Damage::InvalidUtf8(at, bytes)),
        1 => (MAX_BYTES - 64..MAX_BYTES * 3).prop_map(Damage::Pad),
        1 => Just(Damage::Bom),
    ]
}

fn apply_damage(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::None => {}
        Damage::Truncate(at) => bytes.truncate(at % (bytes.len() + 1)),
        Damage::Flip(flips) => {
            for (at, b) in flips {
                if !bytes.is_empty() {
                    let n = bytes.len();
                    bytes[at % n] = *b;
                }
            }
        }
        Damage::InvalidUtf8(at, bad) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, bad.iter().copied());
        }
        Damage::Pad(n) => {
            // whitespace before the closing brace keeps it JSON, only too large
            if bytes.last() == Some(&b'}') {
                bytes.pop();
                bytes.extend(std::iter::repeat_n(b' ', *n));
                bytes.push(b'}');
            } else {
                bytes.extend(std::iter::repeat_n(b' ', *n));
            }
        }
        Damage::Bom => bytes.splice(0..0, [0xef, 0xbb, 0xbf]).for_each(drop),
    }
    bytes
}

/// Where the event came from: offline, a NATS subject (the right one or a spoof), or a token.
fn transport() -> impl Strategy<Value = Option<(String, Option<String>)>> {
    prop_oneof![
        Just(None),
        Just(Some(("own".to_string(), Some("own".to_string())))),
        (
            principal(),
            prop::option::of(prop::sample::select(&["plans", "npo", "hub", "x", ""][..]).prop_map(str::to_string))
        )
            .prop_map(|(p, a)| Some((p, a))),
    ]
}

fn context<'a>(
    event: &'a Value,
    transport: &'a Option<(String, Option<String>)>,
    subject: &'a mut String,
) -> ValidationContext<'a> {
    let own_principal = event.get("principal").and_then(Value::as_str).unwrap_or("1280");
    let own_area = event.get("type").and_then(Value::as_str).and_then(|t| t.split('.').nth(2)).unwrap_or("plans");
    match transport {
        None => ValidationContext { max_bytes: MAX_BYTES, ..Default::default() },
        Some((p, area)) => {
            let p = if p == "own" { own_principal } else { p.as_str() };
            match area {
                // an HTTP token bound to `p`
                None => ValidationContext { transport_principal: Some(p), transport_area: None, max_bytes: MAX_BYTES },
                Some(a) => {
                    let a = if a == "own" { own_area } else { a.as_str() };
                    *subject = format!("sgd.in.{p}.{a}");
                    ValidationContext::from_ingress_subject(subject, MAX_BYTES)
                }
            }
        }
    }
}

// --- the properties -------------------------------------------------------------------------

/// Checks every property for one input; `pins` are the numbers put in it, `must_refuse_pii` when
/// one of them is certainly still there, cleanly delimited.
fn check(bytes: &[u8], ctx: &ValidationContext<'_>, pins: &[Pin], must_refuse_pii: bool) -> Result<(), TestCaseError> {
    let first = validate(bytes, ctx);
    let second = validate(bytes, ctx);
    prop_assert_eq!(&first, &second, "validation is not deterministic");
    match first {
        Ok(event) => {
            prop_assert!(!must_refuse_pii, "an event with a personal identity number was accepted");
            let kept = serde_json::to_string(&event.envelope).unwrap();
            prop_assert!(!pii::contains(&kept), "accepted event holds a number: {}", kept);
            // the hub stores the body byte for byte: not even an escaped number may be in it
            let raw = pii::redact_raw(&String::from_utf8_lossy(bytes));
            prop_assert!(!raw.contains(pii::REDACTED), "accepted body holds a number: {}", raw);
            for pin in pins {
                prop_assert!(pin.leaked_in(&kept).is_none(), "accepted event holds {:?}: {}", pin, kept);
            }
            prop_assert!(event.events_subject.starts_with("sgd.events."));
            prop_assert!(event.msg_id.starts_with(&event.envelope.source));
        }
        Err(rejection) => {
            prop_assert!(!rejection.problems.is_empty(), "a refusal without a problem");
            prop_assert_eq!(rejection.reason(), rejection.problems[0].reason);
            for p in &rejection.problems {
                prop_assert!(RejectReason::ALL.contains(&p.reason));
                prop_assert!(!p.message.trim().is_empty(), "a problem without a message: {:?}", p);
                prop_assert!(p.path.is_empty() || p.path.starts_with('/'), "not a JSON pointer: {:?}", p.path);
            }
            if must_refuse_pii {
                prop_assert!(
                    rejection.problems.iter().any(|p| p.reason == RejectReason::Pii),
                    "a personal identity number not reported as pii: {}",
                    rejection
                );
            }
            let mut kept = vec![rejection.redacted_body.clone(), rejection.to_string()];
            kept.extend(rejection.event_id.clone());
            kept.extend(rejection.event_type.clone());
            kept.extend(rejection.problems.iter().map(|p| p.path.clone()));
            for text in &kept {
                prop_assert!(!pii::contains(text), "a refusal keeps a number: {}", text);
                for pin in pins {
                    prop_assert!(pin.leaked_in(text).is_none(), "a refusal keeps {:?}: {}", pin, text);
                }
            }
            prop_assert!(rejection.redacted_body.len() <= bytes.len().max(4096) * 2 + 4096);
        }
    }
    Ok(())
}

/// As [`check`], and when it fails and `SGD_FUZZ_SAVE_DIR` is set, the input is saved there.
fn check_and_keep(
    bytes: &[u8],
    ctx: &ValidationContext<'_>,
    pins: &[Pin],
    must_refuse_pii: bool,
) -> Result<(), TestCaseError> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(bytes, ctx, pins, must_refuse_pii)));
    let failed = !matches!(result, Ok(Ok(())));
    if failed {
        if let Some(dir) = std::env::var_os("SGD_FUZZ_SAVE_DIR") {
            let _ = std::fs::create_dir_all(&dir);
            let name = format!("failure-{:016x}.bin", xxhash(bytes));
            let _ = std::fs::write(PathBuf::from(dir).join(name), bytes);
        }
    }
    match result {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn xxhash(bytes: &[u8]) -> u64 {
    // FNV-1a: only to name a saved file
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The suite's case count unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config.max_shrink_iters = 2048;
    config
}

proptest! {
    #![proptest_config(config(512))]

    /// Valid events with one to four hostile mutations, maybe damaged as bytes, maybe spoofed.
    #[test]
    fn mutated_events(
        base in 0usize..1000,
        mutations in prop::collection::vec(mutation(), 1..4),
        damage in damage(),
        transport in transport(),
    ) {
        let mut event = examples()[base % examples().len()].clone();
        for m in &mutations {
            apply(&mut event, m);
        }
        let bytes = apply_damage(serde_json::to_vec(&event).unwrap(), &damage);
        let mut subject = String::new();
        let ctx = context(&event, &transport, &mut subject);
        check_and_keep(&bytes, &ctx, &[], false)?;
    }

    /// A personal identity or coordination number, in any spelling, at any position, in any form,
    /// after other mutations: always refused for `pii`, never kept.
    #[test]
    fn personal_identity_numbers_anywhere(
        base in 0usize..1000,
        before in prop::collection::vec(mutation(), 0..3),
        person in pin(),
        spelling in 0usize..5,
        at in any::<usize>(),
        form in prop_oneof![Just(PinForm::Whole), Just(PinForm::InText), Just(PinForm::Number), Just(PinForm::Key), Just(PinForm::Escaped)],
        damage in damage(),
        transport in transport(),
    ) {
        let mut event = examples()[base % examples().len()].clone();
        for m in &before {
            apply(&mut event, m);
        }
        let spelling = person.spellings()[spelling].clone();
        let clean = insert_pin(&mut event, at, &spelling, &form);
        let intact = matches!(damage, Damage::None | Damage::Pad(_) | Damage::Bom);
        let bytes = apply_damage(clean, &damage);
        let mut subject = String::new();
        let ctx = context(&event, &transport, &mut subject);
        check_and_keep(&bytes, &ctx, &[person], intact)?;
    }

    /// Arbitrary bytes, and arbitrary bytes after a valid prefix.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), base in 0usize..1000, cut in any::<usize>()) {
        let ctx = ValidationContext { max_bytes: MAX_BYTES, ..Default::default() };
        check_and_keep(&bytes, &ctx, &[], false)?;
        let mut prefixed = serde_json::to_vec(&examples()[base % examples().len()]).unwrap();
        prefixed.truncate(cut % (prefixed.len() + 1));
        prefixed.extend(&bytes);
        check_and_keep(&prefixed, &ctx, &[], false)?;
    }

    /// Arbitrary JSON documents (any shape, any depth up to the parser's limit and beyond).
    #[test]
    fn arbitrary_json(value in json_documents(), wrap in 0usize..200) {
        let mut v = value;
        for _ in 0..wrap {
            v = json!([v]);
        }
        let ctx = ValidationContext { max_bytes: MAX_BYTES, ..Default::default() };
        check_and_keep(&serde_json::to_vec(&v).unwrap(), &ctx, &[], false)?;
        let as_data = json!({"specversion": "1.0", "id": "x", "source": "/principals/1280/systems/x",
            "type": "se.sgd.plans.plan.created", "time": "2026-03-02T10:15:00+01:00", "principal": "1280", "data": v});
        check_and_keep(&serde_json::to_vec(&as_data).unwrap(), &ctx, &[], false)?;
    }
}

fn json_documents() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

// --- the kept corpus ------------------------------------------------------------------------

/// Every file in `tests/hostile/`: `<name>.<reason>.json` must be refused for `<reason>` (first),
/// `<name>.ok.json` accepted, `<name>.any.<ext>` only keep the general properties. Personal
/// identity numbers in the files are Skatteverket's test number 19121212-1212 and its spellings.
#[test]
fn the_kept_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let test_pin = Pin { twelve: "191212121212".into() };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("tests/hostile").flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is missing: {}", dir.display());
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(file).unwrap();
        let expected = name.split('.').nth(1).unwrap_or("any").to_string();
        let transport = name.contains("spoof").then(|| "sgd.in.1281.plans".to_string());
        let ctx = match &transport {
            Some(subject) => ValidationContext::from_ingress_subject(subject, MAX_BYTES),
            None => ValidationContext { max_bytes: MAX_BYTES, ..Default::default() },
        };
        let has_pin = expected == "pii";
        check(&bytes, &ctx, std::slice::from_ref(&test_pin), has_pin).unwrap_or_else(|e| panic!("{name}: {e}"));
        let result = validate(&bytes, &ctx);
        match expected.as_str() {
            "any" => {}
            "ok" => assert!(result.is_ok(), "{name}: {:?}", result.err()),
            reason => {
                let rejection = result.expect_err(&name);
                assert_eq!(rejection.reason().as_str(), reason, "{name}: {rejection}");
            }
        }
    }
    eprintln!("{} kept hostile inputs replayed", files.len());
}
