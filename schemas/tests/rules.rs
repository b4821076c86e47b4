//! Every validation rule, one test each: a valid event broken in one way is refused with the
//! right reason and path, and a personal identity number never survives into what is kept.

use serde_json::{json, Value};
use sgd_schemas::{pii, validate, RejectReason, Rejection, ValidationContext};

fn valid() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plans/plan.created.v1.valid.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn principal_of(event: &Value) -> String {
    event["principal"].as_str().unwrap().to_string()
}

fn over_nats(event: &Value) -> Result<sgd_schemas::ValidatedEvent, Rejection> {
    let subject = format!("sgd.in.{}.plans", principal_of(&valid()));
    validate(&serde_json::to_vec(event).unwrap(), &ValidationContext::from_ingress_subject(&subject, 256 * 1024))
}

fn refused(event: &Value) -> Rejection {
    over_nats(event).expect_err("should be refused")
}

fn has(rejection: &Rejection, reason: RejectReason, path: &str) -> bool {
    rejection.problems.iter().any(|p| p.reason == reason && p.path == path)
}

#[test]
fn the_base_event_is_valid() {
    let event = over_nats(&valid()).unwrap();
    assert!(event.msg_id.ends_with(&format!("/{}", valid()["id"].as_str().unwrap())));
}

#[test]
fn malformed_bodies() {
    let ctx = ValidationContext::default();
    for body in [&b"\xff\xfe{}"[..], b"{\"specversion\":", b"[1,2]", b"\"text\"", b""] {
        let r = validate(body, &ctx).unwrap_err();
        assert_eq!(r.reason(), RejectReason::Malformed, "{:?}: {r}", String::from_utf8_lossy(body));
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(validate(deep.as_bytes(), &ctx).unwrap_err().reason(), RejectReason::Malformed);
}

#[test]
fn too_large() {
    let event = valid();
    let big = format!("{}{}", serde_json::to_string(&event).unwrap(), " ".repeat(300 * 1024));
    let r = validate(big.as_bytes(), &ValidationContext::default()).unwrap_err();
    assert_eq!(r.reason(), RejectReason::TooLarge);
    assert!(r.redacted_body.len() <= 4096);
}

#[test]
fn envelope_rules() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("specversion", json!("0.3"), "/specversion"),
        ("id", json!(""), "/id"),
        ("id", json!(17), "/id"),
        ("time", json!("yesterday"), "/time"),
        ("time", json!("2026-03-02T10:15:00"), "/time"),
        ("source", json!("treserva"), "/source"),
        ("datacontenttype", json!("text/xml"), "/datacontenttype"),
        ("data", json!("a string"), "/data"),
        ("traceparent", json!("not-a-trace"), "/traceparent"),
        ("Bad_Ext", json!("x"), "/Bad_Ext"),
        ("nested", json!({"a": 1}), "/nested"),
        ("dataschema", json!("urn:sgd:schema:npo.consent.given:v1"), "/dataschema"),
    ];
    for (attribute, value, path) in cases {
        let mut event = valid();
        event[attribute] = value.clone();
        let r = refused(&event);
        assert!(has(&r, RejectReason::Envelope, path), "{attribute}={value}: {r}");
    }
    for attribute in ["specversion", "id", "source", "time", "data", "principal"] {
        let mut event = valid();
        event.as_object_mut().unwrap().remove(attribute);
        let r = refused(&event);
        assert!(has(&r, RejectReason::Envelope, &format!("/{attribute}")), "without {attribute}: {r}");
    }
    let mut event = valid();
    event["data_base64"] = json!("e30=");
    assert!(has(&refused(&event), RejectReason::Envelope, "/data_base64"));
}

#[test]
fn unknown_types_and_versions() {
    let mut event = valid();
    event["type"] = json!("se.sgd.plans.plan.deleted");
    assert_eq!(refused(&event).reason(), RejectReason::UnknownType);
    event["type"] = json!("com.example.something");
    assert_eq!(refused(&event).reason(), RejectReason::UnknownType);
    let mut event = valid();
    event["dataschema"] = json!("urn:sgd:schema:plans.plan.created:v9");
    assert!(has(&refused(&event), RejectReason::UnknownVersion, "/dataschema"));
}

#[test]
fn principal_must_agree_with_source_and_transport() {
    let mut event = valid();
    event["principal"] = json!("1281");
    // principal ≠ source (and ≠ the subject's principal)
    assert!(has(&refused(&event), RejectReason::PrincipalMismatch, "/principal"));

    // principal = source, but published on another principal's subject
    let event = valid();
    let bytes = serde_json::to_vec(&event).unwrap();
    let r = validate(&bytes, &ValidationContext::from_ingress_subject("sgd.in.1281.plans", 1 << 20)).unwrap_err();
    assert_eq!(r.reason(), RejectReason::PrincipalMismatch, "{r}");

    // an unknown principal code
    let mut event = valid();
    event["principal"] = json!("9999");
    event["source"] = json!("/principals/9999/systems/x");
    assert!(has(&refused(&event), RejectReason::Envelope, "/principal"));

    // a subject of the wrong shape vouches for nothing
    let r = validate(&bytes, &ValidationContext::from_ingress_subject("sgd.in.x", 1 << 20)).unwrap_err();
    assert_eq!(r.reason(), RejectReason::PrincipalMismatch);
}

#[test]
fn area_must_match_the_ingress_subject() {
    let event = valid();
    let subject = format!("sgd.in.{}.npo", principal_of(&event));
    let r = validate(&serde_json::to_vec(&event).unwrap(), &ValidationContext::from_ingress_subject(&subject, 1 << 20))
        .unwrap_err();
    assert_eq!(r.reason(), RejectReason::AreaMismatch);
}

#[test]
fn schema_errors_carry_the_data_path() {
    let mut event = valid();
    event["data"]["kind"] = json!("rehab");
    event["data"]["extra"] = json!(1);
    let r = refused(&event);
    assert!(has(&r, RejectReason::Schema, "/data/kind"), "{r}");
    assert!(r.problems.iter().all(|p| p.reason == RejectReason::Schema));
}

#[test]
fn personal_identity_numbers_anywhere_are_refused_and_redacted() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let positions: Vec<(&str, Mutation)> = vec![
        ("/data/person", Box::new(|e: &mut Value| e["data"]["person"] = json!("19121212-1212"))),
        ("/subject", Box::new(|e: &mut Value| e["subject"] = json!("121212-1212"))),
        ("/id", Box::new(|e: &mut Value| e["id"] = json!("191212121212"))),
        ("/data/plan_id", Box::new(|e: &mut Value| e["data"]["plan_id"] = json!("plan for 121212+1212"))),
        ("/note", Box::new(|e: &mut Value| e["note"] = json!(1212121212u64))),
        ("/data/participants/0", Box::new(|e: &mut Value| e["data"]["participants"] = json!(["19121212-1212"]))),
    ];
    for (path, mutate) in positions {
        let mut event = valid();
        mutate(&mut event);
        let r = refused(&event);
        assert_eq!(r.reason(), RejectReason::Pii, "{path}: {r}");
        assert!(has(&r, RejectReason::Pii, path), "{path}: {r}");
        assert!(!pii::contains(&r.redacted_body), "{path}: {}", r.redacted_body);
        assert!(r.problems.iter().all(|p| !pii::contains(&p.message)), "{path}: {r}");
        assert!(r.event_id.iter().all(|id| !pii::contains(id)));
    }
    // even in a body that is not JSON, and with escaped digits
    let body = br#"{"person": "\u0031\u0039121212-1212", "x": 19121212-1212 oops"#;
    let r = validate(body, &ValidationContext::default()).unwrap_err();
    assert!(!pii::contains(&r.redacted_body), "{}", r.redacted_body);
}

#[test]
fn hsa_ids_are_not_personal_identity_numbers() {
    let mut event = valid();
    event["subject"] = json!("SE2321000255-ABC1");
    over_nats(&event).unwrap();
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let mut event = valid();
    event["specversion"] = json!("0.3");
    event["time"] = json!("soon");
    event["data"]["kind"] = json!("rehab");
    let r = refused(&event);
    assert!(r.problems.len() >= 3, "{r}");
}
