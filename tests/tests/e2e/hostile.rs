//! A catalogue of hostile inputs against a real hub process, over NATS and over HTTP (structured
//! and binary modes, wrong content types), then the privacy grep: no personal identity number that
//! was sent, in any of its spellings, may be in any stream, in the hub's data directory, in its log
//! or in any HTTP answer. `docs/security.md` describes the classes and what each gets.

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use async_nats::jetstream;
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, HubProcess, TestNats};

/// Persons whose numbers are sent: Skatteverket's test number 19121212-1212, a coordination
/// number (day + 60) and the fixtures' 19900101-2385; with every spelling of each.
fn persons() -> Vec<String> {
    let coordination = {
        let nine = "121272121";
        let check = (0..10).find(|c| luhn(&format!("{nine}{c}"))).unwrap();
        format!("19{nine}{check}")
    };
    vec!["191212121212".into(), coordination, "199001012385".into()]
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let n = u32::from(b - b'0');
            if i % 2 == 0 {
                (n * 2) / 10 + (n * 2) % 10
            } else {
                n
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `YYYYMMDDNNNC`, `YYYYMMDD-NNNC`, `YYMMDDNNNC`, `YYMMDD-NNNC`, `YYMMDD+NNNC`.
fn spellings(twelve: &str) -> Vec<String> {
    let ten = &twelve[2..];
    vec![
        twelve.to_string(),
        format!("{}-{}", &twelve[..8], &twelve[8..]),
        ten.to_string(),
        format!("{}-{}", &ten[..6], &ten[6..]),
        format!("{}+{}", &ten[..6], &ten[6..]),
    ]
}

fn all_spellings() -> Vec<String> {
    persons().iter().flat_map(|p| spellings(p)).collect()
}

/// Every spelling of every person found in `bytes` as a number of its own.
fn numbers_in(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for s in all_spellings() {
        let needle = s.as_bytes();
        let hit = bytes.windows(needle.len()).enumerate().any(|(at, w)| {
            w == needle
                && !at.checked_sub(1).is_some_and(|i| bytes[i].is_ascii_digit())
                && !bytes.get(at + needle.len()).is_some_and(u8::is_ascii_digit)
        });
        if hit {
            found.push(s);
        }
    }
    found
}

/// What a hostile input must get.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refused by validation with this main reason (NATS: a dead letter; HTTP: 400 invalid_events).
    Refused(&'static str),
    /// Accepted into the log (valid but odd).
    Accepted,
}

/// A change to an event.
type Mutate = Box<dyn Fn(&mut Value)>;

/// A binary-mode request: name, `ce-*` (and content-type) headers, data, status and error code.
type BinaryCase = (String, Vec<(&'static str, String)>, Vec<u8>, u16, &'static str);

struct Case {
    name: String,
    body: Vec<u8>,
    /// The NATS subject when not the event's own ingress subject.
    subject: Option<String>,
    expect: Expect,
    /// Also sent over HTTP with an integrator token of the event's principal.
    http: bool,
}

fn base() -> Value {
    serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/examples/plans/plan.created.v1.valid.json"))
            .unwrap(),
    )
    .unwrap()
}

/// The catalogue. Each event gets its own id (`hostile-<n>`) unless the case is about the id.
fn catalogue() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, body: Vec<u8>, subject: Option<String>, expect: Expect, http: bool| {
        cases.push(Case { name: name.to_string(), body, subject, expect, http });
    };
    let with = |n: usize, f: &dyn Fn(&mut Value)| {
        let mut e = base();
        e["id"] = json!(format!("hostile-{n}"));
        f(&mut e);
        serde_json::to_vec(&e).unwrap()
    };
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };

    // Personal identity numbers: every person, every spelling, in every field position.
    for (p, person) in persons().iter().enumerate() {
        for (s, spelling) in spellings(person).iter().enumerate() {
            let spelling = spelling.clone();
            let positions: Vec<(&str, Mutate)> = vec![
                (
                    "id",
                    Box::new({
                        let v = spelling.clone();
                        move |e: &mut Value| e["id"] = json!(v)
                    }),
                ),
                (
                    "subject",
                    Box::new({
                        let v = format!("Patient {spelling} ringde");
                        move |e: &mut Value| e["subject"] = json!(v)
                    }),
                ),
                (
                    "data.person",
                    Box::new({
                        let v = spelling.clone();
                        move |e: &mut Value| e["data"]["person"] = json!(v)
                    }),
                ),
                (
                    "data.plan_id",
                    Box::new({
                        let v = format!("svu-{spelling}");
                        move |e: &mut Value| e["data"]["plan_id"] = json!(v)
                    }),
                ),
                (
                    "data key",
                    Box::new({
                        let v = spelling.clone();
                        move |e: &mut Value| e["data"][v.as_str()] = json!(true)
                    }),
                ),
                (
                    "extension",
                    Box::new({
                        let v = spelling.clone();
                        move |e: &mut Value| e["note"] = json!(v)
                    }),
                ),
                (
                    "source system",
                    Box::new({
                        let v = format!("/principals/12/systems/{spelling}");
                        move |e: &mut Value| e["source"] = json!(v)
                    }),
                ),
                (
                    "traceparent",
                    Box::new({
                        let v = format!("00-{spelling}-0-0");
                        move |e: &mut Value| e["traceparent"] = json!(v)
                    }),
                ),
                (
                    "participants (number)",
                    Box::new({
                        let v: Value =
                            spelling.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(spelling.clone()));
                        move |e: &mut Value| e["data"]["participants"] = json!(["12", v.clone()])
                    }),
                ),
            ];
            // every position for the first spelling of each person, one position per other spelling
            for (i, (position, f)) in positions.iter().enumerate() {
                if s == 0 || i == (s + p) % positions.len() {
                    let id = next();
                    add(
                        &format!("pin {spelling} in {position}"),
                        with(id, f.as_ref()),
                        None,
                        Expect::Refused("pii"),
                        true,
                    );
                }
            }
            // escaped in the raw JSON, and in a body that is not JSON at all
            let escaped: String = spelling
                .chars()
                .map(|c| if c.is_ascii_digit() { format!("\\u{:04x}", c as u32) } else { c.to_string() })
                .collect();
            let id = next();
            let text = String::from_utf8(with(id, &|e| e["subject"] = json!("@@")))
                .unwrap()
                .replace("\"@@\"", &format!("\"{escaped}\""));
            add(&format!("pin {spelling} escaped"), text.into_bytes(), None, Expect::Refused("pii"), true);
            if s == 0 {
                add(
                    &format!("pin {spelling} in broken JSON"),
                    format!("{{\"subject\": \"{spelling}\", oops").into_bytes(),
                    None,
                    Expect::Refused("pii"),
                    true,
                );
                let mut bytes = format!("{{\"subject\": \"{spelling}\", \"x\": \"").into_bytes();
                bytes.extend([0xff, 0xfe, b'"', b'}']);
                add(&format!("pin {spelling} in invalid UTF-8"), bytes, None, Expect::Refused("pii"), true);
                let id = next();
                let text = String::from_utf8(with(id, &|_| {})).unwrap();
                let dup = format!(
                    "{}, \"subject\": \"{spelling}\", \"subject\": \"svu-2026-0481\"}}",
                    &text[..text.len() - 1]
                );
                add(
                    &format!("pin {spelling} behind a repeated key"),
                    dup.into_bytes(),
                    None,
                    Expect::Refused("pii"),
                    true,
                );
                let id = next();
                add(
                    &format!("pin {spelling} in a huge event"),
                    with(id, &|e| {
                        e["subject"] = json!(spelling);
                        e["pad"] = json!("x".repeat(300 * 1024));
                    }),
                    None,
                    Expect::Refused("pii"),
                    true,
                );
                // the principal of the NATS subject
                let id = next();
                add(
                    &format!("pin {spelling} as the subject's principal"),
                    with(id, &|_| {}),
                    Some(format!("sgd.in.{spelling}.plans")),
                    Expect::Refused("principal_mismatch"),
                    false,
                );
            }
        }
    }

    // Size, depth, encoding.
    let id = next();
    add(
        "huge payload (300 KiB)",
        with(id, &|e| e["pad"] = json!("x".repeat(300 * 1024))),
        None,
        Expect::Refused("too_large"),
        true,
    );
    add(
        "deep JSON (10,000 arrays)",
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        None,
        Expect::Refused("malformed"),
        true,
    );
    let id = next();
    add(
        "deep JSON in data (200 objects)",
        {
            let mut nested = json!("x");
            for _ in 0..200 {
                nested = json!({ "n": nested });
            }
            with(id, &|e| e["data"]["extra"] = nested.clone())
        },
        None,
        Expect::Refused("malformed"),
        true,
    );
    add(
        "invalid UTF-8",
        b"{\"specversion\": \"1.0\", \"id\": \"\xc3\x28\"}".to_vec(),
        None,
        Expect::Refused("malformed"),
        true,
    );
    add("overlong UTF-8", b"{\"id\": \"\xc0\xaf\"}".to_vec(), None, Expect::Refused("malformed"), true);
    add("lone surrogate", br#"{"id": "\ud800"}"#.to_vec(), None, Expect::Refused("malformed"), true);
    add(
        "byte order mark",
        [&[0xef, 0xbb, 0xbf][..], &with(next(), &|_| {})].concat(),
        None,
        Expect::Refused("malformed"),
        true,
    );
    add("empty body", Vec::new(), None, Expect::Refused("malformed"), true);
    add("NUL bytes", vec![0; 16], None, Expect::Refused("malformed"), true);
    add("a JSON string", b"\"event\"".to_vec(), None, Expect::Refused("malformed"), true);
    add(
        "number out of range",
        String::from_utf8(with(next(), &|e| e["time"] = json!("@@"))).unwrap().replace("\"@@\"", "1e400").into_bytes(),
        None,
        Expect::Refused("malformed"),
        true,
    );

    // Envelope: wrong types, wrong content types inside the event.
    add(
        "wrong types",
        with(next(), &|e| {
            e["id"] = json!(17);
            e["time"] = json!(1772442900);
            e["specversion"] = json!(1.0);
        }),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "datacontenttype xml",
        with(next(), &|e| e["datacontenttype"] = json!("application/xml")),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "data_base64",
        with(next(), &|e| {
            e.as_object_mut().unwrap().remove("data");
            e["data_base64"] = json!("eyJ4IjoxfQ==");
        }),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "unknown type",
        with(next(), &|e| e["type"] = json!("se.sgd.plans.plan.archived")),
        None,
        Expect::Refused("unknown_type"),
        true,
    );
    add(
        "unknown version",
        with(next(), &|e| e["dataschema"] = json!("urn:sgd:schema:plans.plan.created:v7")),
        None,
        Expect::Refused("unknown_version"),
        true,
    );

    // Spoofed principal.
    add(
        "principal vs source",
        with(next(), &|e| e["principal"] = json!("1280")),
        None,
        Expect::Refused("principal_mismatch"),
        true,
    );
    add(
        "principal of another subject",
        with(next(), &|_| {}),
        Some("sgd.in.1281.plans".into()),
        Expect::Refused("principal_mismatch"),
        false,
    );
    add(
        "unknown principal subject",
        with(next(), &|_| {}),
        Some("sgd.in.9999.plans".into()),
        Expect::Refused("principal_mismatch"),
        false,
    );
    add(
        "wrong area subject",
        with(next(), &|_| {}),
        Some("sgd.in.12.npo".into()),
        Expect::Refused("area_mismatch"),
        false,
    );
    add(
        "full-width principal",
        with(next(), &|e| e["principal"] = json!("１２")),
        None,
        Expect::Refused("principal_mismatch"),
        true,
    );

    // Times.
    add(
        "time without offset",
        with(next(), &|e| e["time"] = json!("2026-03-02T10:15:00")),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "time 9999-12-31 (far future)",
        with(next(), &|e| e["time"] = json!("9999-12-31T23:59:59+01:00")),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "time in 2099 (far future)",
        with(next(), &|e| e["time"] = json!("2099-01-01T00:00:00+01:00")),
        None,
        Expect::Refused("envelope"),
        true,
    );
    add(
        "time Feb 30",
        with(next(), &|e| e["time"] = json!("2026-02-30T10:00:00+01:00")),
        None,
        Expect::Refused("envelope"),
        true,
    );

    // Script and SQL text: valid where the contract allows any text (id, subject), kept verbatim
    // and shown as text; refused where a schema says what the value looks like.
    add(
        "script in id",
        with(next(), &|e| e["id"] = json!("<script>alert('sgd')</script>")),
        None,
        Expect::Accepted,
        true,
    );
    add(
        "SQL in subject",
        with(next(), &|e| e["subject"] = json!("'; DROP TABLE events; --")),
        None,
        Expect::Accepted,
        true,
    );
    add(
        "script in data",
        with(next(), &|e| e["data"]["kind"] = json!("<img src=x onerror=alert(1)>")),
        None,
        Expect::Refused("schema"),
        true,
    );
    cases
}

/// Publishes to JetStream and returns the ingress sequence.
async fn publish(js: &jetstream::Context, subject: &str, msg_id: &str, body: Vec<u8>) -> Result<u64> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    let ack = js
        .publish_with_headers(subject.to_string(), headers, body.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ack.sequence)
}

/// Every message of a stream: subject, headers and payload as one text, by sequence.
async fn messages(js: &jetstream::Context, name: &str) -> Result<Vec<(u64, String, Vec<u8>)>> {
    let mut stream = js.get_stream(name).await?;
    let info = stream.info().await?.clone();
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return Ok(out);
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(message) = stream.get_raw_message(seq).await {
            let headers = message.headers.iter().map(|(k, v)| format!("{k}: {v:?}\n")).collect::<String>();
            out.push((seq, format!("{}\n{headers}", message.subject), message.payload.to_vec()));
        }
    }
    Ok(out)
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_over_nats_and_http_are_refused_with_reasons_and_no_number_survives() -> Result<()> {
    let nats = TestNats::start().await?;
    // exact small counts for the out-of-order check (suppression is tested in read_model); no
    // rate limit, since one token sends hundreds of requests at once (the limit is tested in security)
    let config = tempfile::NamedTempFile::new()?;
    std::fs::write(config.path(), "privacy_threshold = 0\nrate_limit_per_second = 0\n")?;
    let hub = HubProcess::start(&nats.url(), &["--config", config.path().to_str().unwrap()]).await?;
    let js = nats.jetstream().await?;
    let integrator = hub.api(Role::Integrator, Some("12"))?;
    let operator = hub.api(Role::Operator, None)?;
    let coordinator = hub.api(Role::Coordinator, Some("12"))?;
    let url = format!("{}/api/v1/events", integrator.base);
    let cases = catalogue();
    let mut tried = 0usize;
    let mut http_bodies: Vec<(String, String)> = Vec::new();

    // --- over NATS ---------------------------------------------------------------------------
    let mut by_seq: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let subject = case.subject.clone().unwrap_or_else(|| "sgd.in.12.plans".into());
        let seq = publish(&js, &subject, &format!("hostile-case-{i}"), case.body.clone())
            .await
            .with_context(|| format!("publishing {}", case.name))?;
        by_seq.insert(seq, i);
        tried += 1;
    }
    // Bigger than NATS carries (1 MiB by default): refused by the server, never stored.
    let oversized = publish(&js, "sgd.in.12.plans", "hostile-oversized", vec![b' '; 2 << 20]).await;
    assert!(oversized.is_err(), "a 2 MiB message was stored");
    tried += 1;
    let refused = cases.iter().filter(|c| c.expect != Expect::Accepted).count();
    let accepted = cases.len() - refused;
    wait_until(Duration::from_secs(30), || async {
        let dlq = js.get_stream("SGD_DLQ").await?.info().await?.state.messages;
        let events = js.get_stream("SGD_EVENTS").await?.info().await?.state.messages;
        Ok(dlq as usize >= refused && events as usize >= accepted)
    })
    .await
    .map_err(|e| e.context(hub.log()))?;
    for (_, _, payload) in messages(&js, "SGD_DLQ").await? {
        let letter: Value = serde_json::from_slice(&payload)?;
        let seq = letter["ingress_seq"].as_u64().context("dead letter without ingress_seq")?;
        let case = &cases[*by_seq.get(&seq).context("a dead letter of no case")?];
        let reason = letter["reason"].as_str().unwrap_or("?");
        let expected = match case.expect {
            Expect::Refused(r) => r,
            Expect::Accepted => "accepted",
        };
        assert_eq!(reason, expected, "NATS: {}: {letter}", case.name);
        let problems = letter["problems"].as_array().context("no problems")?;
        assert!(!problems.is_empty(), "NATS: {}: a dead letter without a problem", case.name);
        for p in problems {
            assert!(
                !p["message"].as_str().unwrap_or("").is_empty() && p["path"].is_string(),
                "NATS: {}: {p}",
                case.name
            );
        }
    }
    let logged: Vec<Value> =
        messages(&js, "SGD_EVENTS").await?.iter().map(|(_, _, p)| serde_json::from_slice(p).unwrap()).collect();
    for case in cases.iter().filter(|c| c.expect == Expect::Accepted) {
        let event: Value = serde_json::from_slice(&case.body)?;
        assert!(logged.iter().any(|l| l["id"] == event["id"]), "NATS: {} not in the log", case.name);
    }
    assert_eq!(logged.len(), accepted, "the log holds more than the accepted cases");

    // --- over HTTP, structured mode ----------------------------------------------------------
    let post = |content_type: &str, body: Vec<u8>| {
        integrator
            .client
            .post(&url)
            .bearer_auth(&integrator.token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    for case in cases.iter().filter(|c| c.http) {
        // a new id, so that the accepted ones are not duplicates of the NATS run
        let body = match serde_json::from_slice::<Value>(&case.body) {
            Ok(mut e) if case.expect == Expect::Accepted => {
                e["id"] = json!(format!("{}-http", e["id"].as_str().unwrap()));
                serde_json::to_vec(&e)?
            }
            _ => case.body.clone(),
        };
        let response = post("application/cloudevents+json", body).await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        tried += 1;
        match case.expect {
            Expect::Accepted => assert_eq!(status, 202, "HTTP: {}: {text}", case.name),
            Expect::Refused(reason) => {
                assert_eq!(status, 400, "HTTP: {}: {text}", case.name);
                let answer: Value = serde_json::from_str(&text)?;
                assert_eq!(answer["error"], "invalid_events", "HTTP: {}: {text}", case.name);
                assert_eq!(answer["details"][0]["reason"], reason, "HTTP: {}: {text}", case.name);
                assert!(!answer["details"][0]["problems"].as_array().unwrap().is_empty());
            }
        }
        http_bodies.push((case.name.clone(), text));
    }

    // --- over HTTP, binary mode, batch mode and wrong content types --------------------------
    let event = base();
    let binary = |headers: &[(&str, String)], data: Vec<u8>| {
        let mut request = integrator.client.post(&url).bearer_auth(&integrator.token);
        let mut all: BTreeMap<&str, String> = [
            ("content-type", "application/json".to_string()),
            ("ce-specversion", "1.0".into()),
            ("ce-id", "hostile-binary".into()),
            ("ce-source", event["source"].as_str().unwrap().into()),
            ("ce-type", event["type"].as_str().unwrap().into()),
            ("ce-time", event["time"].as_str().unwrap().into()),
            ("ce-principal", "12".into()),
        ]
        .into_iter()
        .collect();
        for (k, v) in headers {
            all.insert(k, v.clone());
        }
        for (k, v) in all {
            request = request.header(k, v);
        }
        request.body(data).send()
    };
    let data = serde_json::to_vec(&event["data"])?;
    let mut binary_cases: Vec<BinaryCase> = Vec::new();
    for spelling in all_spellings() {
        for header in
            ["ce-id", "ce-subject", "ce-specversion", "ce-time", "ce-source", "ce-principal", "ce-traceparent"]
        {
            // the CloudEvents SDK itself refuses a bad specversion or time; the rest reach validation
            let code = if matches!(header, "ce-specversion" | "ce-time") { "bad_request" } else { "invalid_events" };
            binary_cases.push((
                format!("pin {spelling} in {header}"),
                vec![(header, spelling.clone())],
                data.clone(),
                400,
                code,
            ));
        }
        let mut with_pin = event["data"].clone();
        with_pin["person"] = json!(spelling);
        binary_cases.push((
            format!("pin {spelling} in binary data"),
            vec![],
            serde_json::to_vec(&with_pin)?,
            400,
            "invalid_events",
        ));
        binary_cases.push((
            format!("pin {spelling} as Content-Type"),
            vec![("content-type", spelling.clone()), ("ce-specversion", String::new())],
            data.clone(),
            415,
            "unsupported_media_type",
        ));
    }
    binary_cases.push(("binary data not JSON".into(), vec![], b"{oops".to_vec(), 400, "bad_request"));
    binary_cases.push((
        "binary data deep".into(),
        vec![],
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        400,
        "bad_request",
    ));
    binary_cases.push(("binary data a string".into(), vec![], b"\"plan\"".to_vec(), 400, "invalid_events"));
    binary_cases.push((
        "binary time far future".into(),
        vec![("ce-time", "9999-12-31T23:59:59+01:00".into())],
        data.clone(),
        400,
        "invalid_events",
    ));
    binary_cases.push((
        "binary spoofed principal".into(),
        vec![("ce-principal", "1280".into()), ("ce-source", "/principals/1280/systems/x".into())],
        data.clone(),
        400,
        "invalid_events",
    ));
    for (name, headers, body, status, code) in binary_cases {
        // no ce-specversion: the empty value is dropped below so that the content type decides
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        let response = if headers.iter().any(|(k, v)| *k == "ce-specversion" && v.is_empty()) {
            let content_type = headers.iter().find(|(k, _)| *k == "content-type").map(|(_, v)| v.clone()).unwrap();
            post(&content_type, body).await?
        } else {
            binary(&headers, body).await?
        };
        let got = response.status().as_u16();
        let text = response.text().await?;
        tried += 1;
        assert_eq!(got, status, "HTTP binary: {name}: {text}");
        let answer: Value = serde_json::from_str(&text).with_context(|| format!("{name}: {text}"))?;
        assert_eq!(answer["error"], code, "HTTP binary: {name}: {text}");
        assert!(!answer["message"].as_str().unwrap_or("").is_empty(), "HTTP binary: {name}: no reason");
        http_bodies.push((name, text));
    }
    let valid = serde_json::to_vec(&event)?;
    for (content_type, status, code) in [
        ("text/plain", 415, "unsupported_media_type"),
        ("application/xml", 415, "unsupported_media_type"),
        ("multipart/form-data; boundary=x", 415, "unsupported_media_type"),
        ("", 415, "unsupported_media_type"),
        ("application/cloudevents-batch+json", 400, "bad_request"),
    ] {
        let response = post(content_type, valid.clone()).await?;
        let got = response.status().as_u16();
        let text = response.text().await?;
        tried += 1;
        assert_eq!(got, status, "Content-Type {content_type:?}: {text}");
        assert_eq!(serde_json::from_str::<Value>(&text)?["error"], code, "Content-Type {content_type:?}");
        http_bodies.push((format!("Content-Type {content_type:?}"), text));
    }
    // A batch with a number in its second event: nothing published, the index named.
    let mut second = event.clone();
    second["id"] = json!("hostile-batch-2");
    second["subject"] = json!("19121212-1212");
    let mut first = event.clone();
    first["id"] = json!("hostile-batch-1");
    let response = post("application/cloudevents-batch+json", serde_json::to_vec(&json!([first, second]))?).await?;
    assert_eq!(response.status(), 400);
    let text = response.text().await?;
    tried += 1;
    assert_eq!(serde_json::from_str::<Value>(&text)?["details"][0]["index"], 1, "{text}");
    http_bodies.push(("batch".into(), text));
    // Larger than a request may be (64 × the event limit): 413 before anything is read.
    let response = post("application/cloudevents+json", vec![b' '; 17 << 20]).await?;
    assert_eq!(response.status(), 413);
    let text = response.text().await?;
    tried += 1;
    assert_eq!(serde_json::from_str::<Value>(&text)?["error"], "too_large", "{text}");
    http_bodies.push(("17 MiB".into(), text));

    // --- valid but odd: out of order and far past ----------------------------------------------
    let analyst = hub.api(Role::Analyst, None)?;
    let mut closed: Value = serde_json::from_slice(&std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/examples/plans/plan.closed.v1.valid.json"
    ))?)?;
    let principal = closed["principal"].as_str().unwrap().to_string();
    for (i, time) in
        ["2026-03-20T10:00:00+01:00", "2026-03-18T10:00:00+01:00", "1999-12-31T23:30:00Z", "2026-03-19T10:00:00+01:00"]
            .iter()
            .enumerate()
    {
        closed["id"] = json!(format!("odd-{i}"));
        closed["time"] = json!(time);
        publish(&js, &format!("sgd.in.{principal}.plans"), &format!("odd-{i}"), serde_json::to_vec(&closed)?).await?;
        tried += 1;
    }
    wait_until(Duration::from_secs(30), || async {
        Ok(analyst.usage_total("type=se.sgd.plans.plan.closed").await? == 4)
    })
    .await
    .map_err(|e| e.context(hub.log()))?;
    for (day, expected) in
        [("2026-03-18", 1), ("2026-03-19", 1), ("2026-03-20", 1), ("2000-01-01", 1), ("1999-12-31", 0)]
    {
        // 23:30 UTC on 31 December 1999 is 1 January 2000 in Sweden
        let got = analyst.usage_total(&format!("type=se.sgd.plans.plan.closed&from={day}&to={day}")).await?;
        assert_eq!(got, expected, "out of order / far past: {day}");
    }

    // --- person-level reads: every one audited, none writes the number -----------------------
    let mut reads = 0;
    for spelling in all_spellings() {
        let response = coordinator.get(&format!("/api/v1/persons/{spelling}/timeline")).await?;
        assert_eq!(response.status(), 400, "a number as the person");
        http_bodies.push((format!("timeline {spelling}"), response.text().await?));
        reads += 1;
    }
    let pseudonym = base()["data"]["person"].as_str().unwrap().to_string();
    let response = coordinator.get(&format!("/api/v1/persons/{pseudonym}/timeline")).await?;
    assert_eq!(response.status(), 403, "no consent for the example person");
    http_bodies.push(("timeline pseudonym".into(), response.text().await?));
    reads += 1;
    let audit = messages(&js, "SGD_AUDIT").await?;
    assert_eq!(audit.len(), reads, "every person-level read is audited");

    // --- the privacy grep --------------------------------------------------------------------
    wait_until(Duration::from_secs(20), || async {
        Ok(js.get_stream("SGD_INGRESS").await?.info().await?.state.messages == 0)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the views are written every 2 s
    let mut searched = 0usize;
    let mut leaks = Vec::new();
    for stream in ["SGD_INGRESS", "SGD_EVENTS", "SGD_DLQ", "SGD_AUDIT"] {
        for (seq, meta, payload) in messages(&js, stream).await? {
            searched += 1;
            for found in numbers_in(meta.as_bytes()).into_iter().chain(numbers_in(&payload)) {
                leaks.push(format!("{stream} #{seq}: {found}"));
            }
        }
    }
    let mut files = Vec::new();
    files_under(&hub.data_dir, &mut files);
    assert!(!files.is_empty(), "the hub's data directory is empty");
    for file in &files {
        searched += 1;
        let bytes = std::fs::read(file)?;
        for found in numbers_in(&bytes) {
            leaks.push(format!("{}: {found}", file.display()));
        }
    }
    let log = hub.log();
    assert!(log.contains("refused"), "the hub logged no refusal:\n{log}");
    for found in numbers_in(log.as_bytes()) {
        leaks.push(format!("hub log: {found}"));
    }
    for (name, body) in &http_bodies {
        searched += 1;
        for found in numbers_in(body.as_bytes()) {
            leaks.push(format!("HTTP answer to {name}: {found}: {body}"));
        }
    }
    assert!(leaks.is_empty(), "personal identity numbers kept:\n{}", leaks.join("\n"));
    let operator_view = operator.get("/api/v1/dlq?limit=1000").await?.text().await?;
    assert!(numbers_in(operator_view.as_bytes()).is_empty(), "GET /api/v1/dlq shows a number");
    eprintln!(
        "hostile: {tried} hostile inputs tried ({} catalogue cases over NATS, then HTTP), {} spellings of {} persons \
         searched for in {searched} messages, files and answers; none found",
        cases.len(),
        all_spellings().len(),
        persons().len()
    );
    Ok(())
}
