//! Access control end to end: every route of the API × every role, no token and a wrong token,
//! against one matrix that must list every route the router has; an integrator's principal
//! binding; token revocation and storage; the request size limit.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, Api, InProcessHub, TestNats};

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, without a token.
    Public,
    /// Any valid token.
    AnyToken,
    /// A valid token of one of these roles.
    Roles(&'static [Role]),
}

const ANALYST_OPERATOR: &[Role] = &[Role::Analyst, Role::Operator];
const FOLLOW_UP: &[Role] = &[Role::Analyst, Role::Operator, Role::Coordinator];
const OPERATOR: &[Role] = &[Role::Operator];
const INTEGRATOR: &[Role] = &[Role::Integrator];
const OPERATOR_INTEGRATOR: &[Role] = &[Role::Operator, Role::Integrator];
const COORDINATOR: &[Role] = &[Role::Coordinator];

/// One request of the matrix.
struct Case {
    method: &'static str,
    /// The route as the router (and the OpenAPI document) names it.
    route: &'static str,
    /// The concrete path and query asked for.
    path: String,
    /// Content type and body, for a POST.
    body: Option<(&'static str, Vec<u8>)>,
    access: Access,
    /// The status an allowed caller gets.
    allowed: u16,
}

impl Case {
    fn get(route: &'static str, path: impl Into<String>, access: Access) -> Self {
        Self { method: "GET", route, path: path.into(), body: None, access, allowed: 200 }
    }

    fn post(route: &'static str, content_type: &'static str, body: Vec<u8>, access: Access, allowed: u16) -> Self {
        Self { method: "POST", route, path: route.into(), body: Some((content_type, body)), access, allowed }
    }
}

/// The routes that are not in the OpenAPI document: the dashboard's page and assets.
const PAGE_ROUTES: &[(&str, &str)] = &[("GET", "/"), ("GET", "/assets/{name}")];

/// Every (method, route) the router serves: the OpenAPI document's operations (generated from
/// the same list the router is built from) and the dashboard's pages.
fn routed() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(sgd_hub::api::openapi_json()).expect("the OpenAPI document is JSON");
    let mut routes = BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes.extend(PAGE_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())));
    routes
}

/// A valid event of `event_type` for `principal`, made now.
fn event(id: &str, principal: &str, event_type: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": format!("/principals/{principal}/systems/access-test"),
        "type": event_type, "time": chrono::Utc::now().to_rfc3339(), "principal": principal,
        "datacontenttype": "application/json", "data": data,
    })
}

/// POSTs events in structured mode with `api`'s token.
async fn post_event(api: &Api, event: &Value) -> Result<reqwest::Response> {
    Ok(api
        .client
        .post(format!("{}/api/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("Content-Type", "application/cloudevents+json")
        .body(serde_json::to_vec(event)?)
        .send()
        .await?)
}

const PERSON: &str = "5d1c0a8e6f2b4c7d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";

/// Every route × analyst, operator, integrator, coordinator, no token and a wrong token: allowed
/// callers get the route's answer, the others 401 (no or wrong token) or 403 (role). The matrix
/// must list every route the router has, so a new route cannot go untested.
#[tokio::test]
async fn every_route_answers_each_role_as_the_matrix_says() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |c| c.rate_limit_per_second = 0).await?;
    let analyst = hub.api(Role::Analyst, None)?;
    let operator = hub.api(Role::Operator, None)?;
    let integrator = hub.api(Role::Integrator, Some("1280"))?;
    let coordinator = hub.api(Role::Coordinator, Some("1280"))?;

    // A dead letter to read and replay, and a consent so the coordinator may read a timeline.
    let js = nats.jetstream().await?;
    js.publish("sgd.in.1280.plans", "not json".into()).await?.await?;
    let consent = event(
        "access-consent-1",
        "1280",
        "se.sgd.npo.consent.given",
        json!({"person": PERSON, "consumer_unit": "SE2120001124-C", "scope": "care_documentation"}),
    );
    let posted = post_event(&integrator, &consent).await?;
    assert_eq!(posted.status(), 202, "{}", posted.text().await?);
    let timeline = format!("/api/v1/persons/{PERSON}/timeline");
    wait_until(Duration::from_secs(20), || async { Ok(coordinator.get(&timeline).await?.status() == 200) }).await?;
    wait_until(Duration::from_secs(20), || async {
        let items = operator.get_json("/api/v1/dlq").await?;
        Ok(items["items"].as_array().is_some_and(|items| !items.is_empty()))
    })
    .await?;
    let items = operator.get_json("/api/v1/dlq").await?;
    let dead_letter = items["items"][0]["seq"].as_u64().with_context(|| format!("no dead letter in {items}"))?;
    wait_until(Duration::from_secs(20), || async { Ok(operator.get("/readyz").await?.status() == 200) }).await?;

    let plan = event(
        "access-plan-1",
        "1280",
        "se.sgd.plans.plan.created",
        json!({"plan_id": "svu-access-1", "kind": "svu", "person": PERSON, "participants": ["1280"]}),
    );
    let json_body = |v: Value| serde_json::to_vec(&v).expect("JSON");
    // A webhook subscription of the integrator's principal (its URL is never reached here).
    let made = integrator
        .client
        .post(format!("{}/api/v1/subscriptions", integrator.base))
        .bearer_auth(&integrator.token)
        .json(&json!({"url": "https://receiver.example.se/hook", "areas": ["plans"]}))
        .send()
        .await?;
    assert_eq!(made.status(), 201);
    let subscription = made.json::<Value>().await?["id"].as_str().context("an id")?.to_string();
    let subscriptions = |tail: &str| format!("/api/v1/subscriptions/{subscription}{tail}");
    let cases = vec![
        Case::get("/healthz", "/healthz", Access::Public),
        Case::get("/readyz", "/readyz", Access::AnyToken),
        Case::get("/metrics", "/metrics", Access::Roles(OPERATOR)),
        Case::get("/api/v1/openapi.json", "/api/v1/openapi.json", Access::AnyToken),
        Case::get("/api/v1/asyncapi.json", "/api/v1/asyncapi.json", Access::AnyToken),
        Case::get("/api/v1/schemas/{type}/{version}", "/api/v1/schemas/se.sgd.plans.plan.created/1", Access::AnyToken),
        Case::get("/api/v1/usage", "/api/v1/usage?bucket=month", Access::Roles(ANALYST_OPERATOR)),
        Case::get("/api/v1/usage", "/api/v1/usage?format=csv", Access::Roles(ANALYST_OPERATOR)),
        Case::get("/api/v1/goals", "/api/v1/goals", Access::Roles(ANALYST_OPERATOR)),
        Case::get("/api/v1/adoption", "/api/v1/adoption", Access::Roles(ANALYST_OPERATOR)),
        Case::get("/api/v1/followup/summary", "/api/v1/followup/summary", Access::Roles(FOLLOW_UP)),
        Case::get("/api/v1/followup/open", "/api/v1/followup/open", Access::Roles(FOLLOW_UP)),
        Case::get("/api/v1/dlq", "/api/v1/dlq?limit=5", Access::Roles(OPERATOR_INTEGRATOR)),
        Case::get("/api/v1/dlq/{seq}", format!("/api/v1/dlq/{dead_letter}"), Access::Roles(OPERATOR)),
        Case::post(
            "/api/v1/dlq/replay",
            "application/json",
            json_body(json!({"seq": [dead_letter]})),
            Access::Roles(OPERATOR),
            200,
        ),
        Case::get("/api/v1/persons/{pseudonym}/timeline", timeline.clone(), Access::Roles(COORDINATOR)),
        Case::get("/api/v1/audit", "/api/v1/audit?limit=5", Access::Roles(OPERATOR)),
        Case::post(
            "/api/v1/events",
            "application/cloudevents+json",
            json_body(plan.clone()),
            Access::Roles(INTEGRATOR),
            202,
        ),
        Case::get("/api/v1/me", "/api/v1/me", Access::AnyToken),
        Case::get("/api/v1/stream", "/api/v1/stream", Access::Roles(ANALYST_OPERATOR)),
        Case::get("/api/v1/stream", "/api/v1/stream?dlq=true", Access::Roles(OPERATOR)),
        Case::get("/api/v1/status", "/api/v1/status", Access::Roles(OPERATOR)),
        Case::post(
            "/api/v1/admin/rebuild",
            "application/json",
            json_body(json!({"check": true})),
            Access::Roles(OPERATOR),
            202,
        ),
        Case::get("/api/v1/admin/rebuild", "/api/v1/admin/rebuild", Access::Roles(OPERATOR)),
        Case::post(
            "/api/v1/subscriptions",
            "application/json",
            json_body(json!({"url": "https://receiver.example.se/other", "principal": "1280"})),
            Access::Roles(OPERATOR_INTEGRATOR),
            201,
        ),
        Case::get("/api/v1/subscriptions", "/api/v1/subscriptions", Access::Roles(OPERATOR_INTEGRATOR)),
        Case::get("/api/v1/subscriptions/{id}", subscriptions(""), Access::Roles(OPERATOR_INTEGRATOR)),
        // A well-formed id of no subscription: both allowed roles get 404, the others 401/403.
        Case {
            method: "DELETE",
            route: "/api/v1/subscriptions/{id}",
            path: "/api/v1/subscriptions/wh-0000000000000000".into(),
            body: None,
            access: Access::Roles(OPERATOR_INTEGRATOR),
            allowed: 404,
        },
        Case {
            method: "POST",
            route: "/api/v1/subscriptions/{id}/pause",
            path: subscriptions("/pause"),
            body: None,
            access: Access::Roles(OPERATOR_INTEGRATOR),
            allowed: 200,
        },
        Case {
            method: "POST",
            route: "/api/v1/subscriptions/{id}/resume",
            path: subscriptions("/resume"),
            body: None,
            access: Access::Roles(OPERATOR_INTEGRATOR),
            allowed: 200,
        },
        Case::get("/api/v1/subscriptions/{id}/parked", subscriptions("/parked"), Access::Roles(OPERATOR_INTEGRATOR)),
        Case {
            method: "POST",
            route: "/api/v1/subscriptions/{id}/parked/replay",
            path: subscriptions("/parked/replay"),
            body: None,
            access: Access::Roles(OPERATOR_INTEGRATOR),
            allowed: 200,
        },
        Case::get("/", "/", Access::Public),
        Case::get("/assets/{name}", "/assets/app.js", Access::Public),
    ];

    // The matrix covers the router, no more and no less.
    let listed: BTreeSet<(String, String)> =
        cases.iter().map(|c| (c.method.to_string(), c.route.to_string())).collect();
    let routed = routed();
    let untested: Vec<_> = routed.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&routed).collect();
    assert!(untested.is_empty(), "routes the access matrix does not list: {untested:?}");
    assert!(unknown.is_empty(), "matrix entries the router does not have: {unknown:?}");

    let wrong = Api { token: "sgd_deadbeef_not-a-token-of-this-hub".into(), ..analyst.clone() };
    let callers: Vec<(&str, Option<Role>, Option<&Api>)> = vec![
        ("no token", None, None),
        ("wrong token", None, Some(&wrong)),
        ("analyst", Some(Role::Analyst), Some(&analyst)),
        ("operator", Some(Role::Operator), Some(&operator)),
        ("integrator", Some(Role::Integrator), Some(&integrator)),
        ("coordinator", Some(Role::Coordinator), Some(&coordinator)),
    ];
    let mut failures = Vec::new();
    let mut requests = 0;
    for case in &cases {
        for (name, role, api) in &callers {
            let url = format!("{}{}", analyst.base, case.path);
            let mut request = match case.method {
                "GET" => analyst.client.get(&url),
                "POST" => analyst.client.post(&url),
                "DELETE" => analyst.client.delete(&url),
                other => bail!("no such method in the matrix: {other}"),
            };
            if let Some(api) = api {
                request = request.bearer_auth(&api.token);
            }
            if let Some((content_type, body)) = &case.body {
                request = request.header("Content-Type", *content_type).body(body.clone());
            }
            let response = request.timeout(Duration::from_secs(30)).send().await?;
            requests += 1;
            let status = response.status().as_u16();
            let (expected, code) = match (case.access, role) {
                (Access::Public, _) => (case.allowed, None),
                (_, None) => (401, Some("unauthorized")),
                (Access::AnyToken, Some(_)) => (case.allowed, None),
                (Access::Roles(roles), Some(role)) if roles.contains(role) => (case.allowed, None),
                (Access::Roles(_), Some(_)) => (403, Some("forbidden")),
            };
            // A live stream never ends: read its status only.
            let body = if case.route == "/api/v1/stream" && status == 200 {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            let code_ok = code
                .is_none_or(|code| serde_json::from_str::<Value>(&body).map(|v| v["error"] == code).unwrap_or(false));
            if status != expected || !code_ok {
                failures.push(format!(
                    "{} {} as {name}: {status}, expected {expected} {}: {}",
                    case.method,
                    case.path,
                    code.unwrap_or(""),
                    body.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {requests} answers are wrong:\n{}", failures.len(), failures.join("\n"));

    // Spelled out: an analyst reaches neither the dead letters, nor a person, nor the audit.
    for path in ["/api/v1/dlq", &format!("/api/v1/dlq/{dead_letter}"), &timeline, "/api/v1/audit", "/metrics"] {
        assert_eq!(analyst.get(path).await?.status(), 403, "an analyst reached {path}");
    }
    // Every person-level read of the matrix, refused ones too, is in the audit.
    let audit = operator.get_json("/api/v1/audit?limit=1000").await?;
    let items = audit["items"].as_array().context("audit items")?;
    for role in ["analyst", "operator", "integrator"] {
        assert!(items.iter().any(|i| i["role"] == role && i["outcome"] == "refused"), "{role}: {audit}");
    }
    assert!(items.iter().any(|i| i["role"] == "coordinator" && i["outcome"] == "allowed"), "{audit}");
    println!("access matrix: {} routes, {} cases, {requests} requests", routed.len(), cases.len());
    hub.stop().await
}

/// An integrator token is bound to its principal: an event for another principal (by its
/// `principal`, or by a `source` naming another) is refused as `principal_mismatch` and nothing
/// of it is stored; its own principal's event is accepted.
#[tokio::test]
async fn an_integrator_ingests_only_for_its_own_principal() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |c| c.rate_limit_per_second = 0).await?;
    let malmo = hub.api(Role::Integrator, Some("1280"))?;
    let data = json!({"plan_id": "svu-bound-1", "kind": "svu", "person": PERSON, "participants": ["1280"]});

    let for_lund = event("bound-1", "1281", "se.sgd.plans.plan.created", data.clone());
    let mut lund_source = event("bound-2", "1280", "se.sgd.plans.plan.created", data.clone());
    lund_source["source"] = "/principals/1281/systems/access-test".into();
    for spoof in [&for_lund, &lund_source] {
        let response = post_event(&malmo, spoof).await?;
        assert_eq!(response.status(), 400, "{spoof}");
        let body: Value = response.json().await?;
        assert_eq!(body["error"], "invalid_events", "{body}");
        assert_eq!(body["details"][0]["reason"], "principal_mismatch", "{body}");
    }
    // In a batch with a valid event: all or nothing.
    let own = event("bound-3", "1280", "se.sgd.plans.plan.created", data);
    let batch = malmo
        .client
        .post(format!("{}/api/v1/events", malmo.base))
        .bearer_auth(&malmo.token)
        .header("Content-Type", "application/cloudevents-batch+json")
        .body(serde_json::to_vec(&json!([own, for_lund]))?)
        .send()
        .await?;
    assert_eq!(batch.status(), 400);

    assert_eq!(post_event(&malmo, &own).await?.status(), 202);
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("principal=1280").await? == 1) }).await?;
    assert_eq!(analyst.usage_total("principal=1281").await?, 0, "an event for 1281 was stored");
    assert_eq!(analyst.usage_total("").await?, 1);
    hub.stop().await
}

/// `hub token revoke` takes effect at the very next request (the hub re-reads the file when it
/// changes), other tokens keep working, and the tokens file holds hashes, never a secret.
#[tokio::test]
async fn a_revoked_token_is_refused_at_its_next_request_and_tokens_are_stored_hashed() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |c| c.rate_limit_per_second = 0).await?;
    let (record, secret) = sgd_hub::tokens::add(&hub.tokens_file, Role::Operator, None)?;
    let revoked = Api::new(hub.http_addr, secret.clone());
    let other = hub.api(Role::Analyst, None)?;
    assert_eq!(revoked.get("/api/v1/me").await?.status(), 200);

    let text = std::fs::read_to_string(&hub.tokens_file)?;
    for token in [&secret, &other.token] {
        let random = token.rsplit('_').next().unwrap_or(token);
        assert!(!text.contains(token.as_str()) && !text.contains(random), "a secret is in the tokens file");
    }
    let stored: Value = serde_json::from_str(&text)?;
    let hashes: Vec<&str> =
        stored["tokens"].as_array().context("tokens")?.iter().filter_map(|t| t["sha256"].as_str()).collect();
    assert_eq!(hashes.len(), 2);
    assert!(hashes.iter().all(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())), "{hashes:?}");

    let output = std::process::Command::new(sgd_tests::hub_binary()?)
        .args(["token", "revoke", &record.id, "--tokens-file"])
        .arg(&hub.tokens_file)
        .output()?;
    assert!(output.status.success(), "hub token revoke: {}", String::from_utf8_lossy(&output.stderr));
    let refused = revoked.get("/api/v1/me").await?;
    assert_eq!(refused.status(), 401, "a revoked token was served");
    assert_eq!(refused.json::<Value>().await?["error"], "unauthorized");
    assert_eq!(revoked.get("/api/v1/dlq").await?.status(), 401);
    assert_eq!(other.get("/api/v1/me").await?.status(), 200, "revoking one token refused another");
    let listed = std::process::Command::new(sgd_tests::hub_binary()?)
        .args(["token", "list", "--tokens-file"])
        .arg(&hub.tokens_file)
        .output()?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(!listed.contains(&record.id) && listed.contains("analyst"), "{listed}");
    hub.stop().await
}

/// A request body over the limit (64 × `max_event_bytes`, at least 1 MiB) gets 413 `too_large`,
/// on the ingest route and on every other route that takes a body; without a token it is refused
/// before the body is read.
#[tokio::test]
async fn a_request_body_over_the_size_limit_gets_413() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |c| {
        c.rate_limit_per_second = 0;
        c.max_event_bytes = 16 * 1024;
    })
    .await?;
    let limit = 1 << 20;
    let integrator = hub.api(Role::Integrator, Some("1280"))?;
    let operator = hub.api(Role::Operator, None)?;
    let padding = "x".repeat(limit + 1);
    let huge_event = format!(r#"{{"specversion":"1.0","id":"huge","padding":"{padding}"}}"#);
    let huge_json = format!(r#"{{"seq":[1],"padding":"{padding}"}}"#);
    let cases = [
        (&integrator, "/api/v1/events", "application/cloudevents+json", &huge_event),
        (&operator, "/api/v1/dlq/replay", "application/json", &huge_json),
        (&operator, "/api/v1/admin/rebuild", "application/json", &huge_json),
    ];
    for (api, path, content_type, body) in cases {
        let response = api
            .client
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .header("Content-Type", content_type)
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 413, "{path}: {answer}");
        assert_eq!(answer["error"], "too_large", "{path}: {answer}");
    }
    let anonymous = integrator
        .client
        .post(format!("{}/api/v1/events", integrator.base))
        .header("Content-Type", "application/cloudevents+json")
        .body(huge_event)
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    hub.stop().await
}
