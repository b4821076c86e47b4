//! `hub demo`: a hub with its own `nats-server` (unless given one), a seeded sample of every event
//! type for several principals published through the real ingress, and a few refused events so the
//! dead-letter stream is not empty.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::server::embedded_nats;
use chrono::{DateTime, FixedOffset, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use sgd_adapters::{Draft, Publisher, SourceSystem};
use sgd_schemas::{
    events::{decision, deviation, hub, npo, plans, sdk, video},
    DomainEvent,
};
use sha2::{Digest, Sha256};

/// Principals in the demo sample: Region Skåne and a spread of municipalities.
pub const DEMO_PRINCIPALS: &[&str] = &["12", "1280", "1281", "1283", "1290", "1282", "1287", "1260"];

/// A sample of every event type for `principals`, seeded (the same seed gives the same ids, so
/// running the demo twice publishes nothing twice).
pub fn sample(principals: &[&str], per_type: usize, seed: u64) -> Vec<(SourceSystem, Draft)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Utc::now().fixed_offset();
    let mut out = Vec::new();
    for principal in principals {
        let system = |name: &str| SourceSystem::new(principal, name).expect("demo principals are known");
        let org = if *principal == "12" { "2321000255".to_string() } else { format!("212000{principal:0>4}") };
        let unit = |n: usize| format!("SE{org}-E{n}");
        for i in 0..per_type {
            let when = |rng: &mut StdRng| now - chrono::Duration::minutes(rng.random_range(0..60 * 24 * 60));
            let person = pseudonym(&format!("{principal}-{}", rng.random_range(0..400)));
            let others: Vec<&str> = DEMO_PRINCIPALS.iter().copied().filter(|p| p != principal).collect();
            let other = others[rng.random_range(0..others.len())].to_string();
            let case = format!("{principal}-{i}");
            let t = when(&mut rng);
            let hours = |h: i64| t + chrono::Duration::hours(h);
            let role = if i % 2 == 0 { npo::Role::Producer } else { npo::Role::Consumer };
            let events: Vec<(&str, DomainEvent, DateTime<FixedOffset>)> = vec![
                (
                    "npo",
                    npo::RoleActivated {
                        unit: unit(i % 5),
                        role,
                        information_sets: if role == npo::Role::Producer {
                            vec![
                                "GetCareDocumentation".into(),
                                "GetAlertInformation".into(),
                                "GetFunctionalStatus".into(),
                            ]
                        } else {
                            vec![]
                        },
                        unit_kind: Some(sgd_schemas::events::UnitKind::MunicipalHealthCare),
                    }
                    .into(),
                    t,
                ),
                (
                    "npo",
                    npo::RoleDeactivated {
                        unit: unit(i % 5 + 10),
                        role,
                        information_sets: vec![],
                        reason: Some("unit merged".into()),
                    }
                    .into(),
                    t,
                ),
                (
                    "npo",
                    npo::ConsentGiven {
                        person: person.clone(),
                        consumer_unit: unit(1),
                        scope: npo::ConsentScope::CareDocumentation,
                        valid_until: Some(hours(24 * 30)),
                    }
                    .into(),
                    t,
                ),
                (
                    "npo",
                    npo::ConsentRevoked {
                        person: person.clone(),
                        consumer_unit: unit(1),
                        scope: npo::ConsentScope::CareDocumentation,
                    }
                    .into(),
                    hours(48),
                ),
                (
                    "npo",
                    npo::RecordAccessed {
                        person: person.clone(),
                        consumer_unit: unit(1),
                        producer_principal: other.clone(),
                        information_sets: vec!["GetCareDocumentation".into()],
                        basis: if i % 10 == 0 { npo::AccessBasis::Emergency } else { npo::AccessBasis::Consent },
                    }
                    .into(),
                    hours(1),
                ),
                (
                    "sdk",
                    sdk::AddressPublished {
                        unit: unit(i % 5),
                        function_address: format!("{}-FA{}", unit(i % 5), i % 3),
                        unit_kind: None,
                    }
                    .into(),
                    t,
                ),
                (
                    "sdk",
                    sdk::MessageSent {
                        message_id: format!("m-{case}"),
                        recipient_principal: other.clone(),
                        recipient_address: None,
                        conversation_id: Some(format!("c-{case}")),
                    }
                    .into(),
                    t,
                ),
                (
                    "sdk",
                    sdk::MessageDelivered {
                        message_id: format!("m-{case}"),
                        status: if i % 7 == 0 { sdk::DeliveryStatus::Rejected } else { sdk::DeliveryStatus::Accepted },
                        received_at: hours(1),
                        error: (i % 7 == 0)
                            .then(|| sdk::DeliveryError { code: "RECIPIENT_UNKNOWN".into(), description: None }),
                    }
                    .into(),
                    hours(1),
                ),
                (
                    "plans",
                    plans::PlanCreated {
                        plan_id: format!("svu-{case}"),
                        kind: plans::PlanKind::Svu,
                        person: person.clone(),
                        participants: vec![principal.to_string(), other.clone()],
                    }
                    .into(),
                    t,
                ),
                (
                    "plans",
                    plans::AdmissionNotified {
                        plan_id: format!("svu-{case}"),
                        need_assessed_at: t,
                        sent_at: hours(if i % 5 == 0 { 30 } else { 6 }),
                    }
                    .into(),
                    hours(6),
                ),
                (
                    "plans",
                    plans::DischargeReady { plan_id: format!("svu-{case}"), ready_at: hours(72) }.into(),
                    hours(72),
                ),
                ("plans", plans::DischargeWithdrawn { plan_id: format!("svu-{case}-w") }.into(), hours(80)),
                (
                    "plans",
                    plans::PatientDischarged {
                        plan_id: format!("svu-{case}"),
                        discharged_at: hours(72 + 24 * (i as i64 % 4)),
                    }
                    .into(),
                    hours(96),
                ),
                (
                    "plans",
                    plans::SipHeld {
                        plan_id: format!("svu-{case}"),
                        held_at: hours(60),
                        mode: if i % 3 == 0 { plans::MeetingMode::Video } else { plans::MeetingMode::Physical },
                    }
                    .into(),
                    hours(60),
                ),
                ("plans", plans::PlanClosed { plan_id: format!("svu-{case}") }.into(), hours(120)),
                (
                    "decision",
                    decision::AssessmentCompleted {
                        person: person.clone(),
                        assessment_id: format!("a-{case}"),
                        vitals: Some(decision::Vitals {
                            respiration_rate: Some(22),
                            spo2: Some(94),
                            supplemental_oxygen: Some(false),
                            systolic_bp: Some(105),
                            pulse: Some(95),
                            consciousness: Some(decision::Consciousness::A),
                            temperature: Some(38.4),
                        }),
                        recommendation: decision::Recommendation::StayHome,
                    }
                    .into(),
                    t,
                ),
                (
                    "decision",
                    decision::ScoreRaised {
                        person: person.clone(),
                        assessment_id: format!("a-{case}"),
                        scale: decision::Scale::News2,
                        score: 6,
                        band: decision::Band::Medium,
                    }
                    .into(),
                    t,
                ),
                (
                    "decision",
                    decision::RiskFlagged {
                        person: person.clone(),
                        flag_id: format!("f-{case}"),
                        primary_care_unit: unit(2),
                        setting: Some("emergency_department".into()),
                    }
                    .into(),
                    t,
                ),
                ("decision", decision::RiskAcknowledged { flag_id: format!("f-{case}") }.into(), hours(20)),
                (
                    "deviation",
                    deviation::CaseLogged {
                        deviation_id: format!("d-{case}"),
                        concerned_principals: vec![other.clone()],
                        category: "information_transfer".into(),
                        actuality: deviation::Actuality::Actual,
                        probability: 2,
                        consequence: (i % 4 + 1) as u8,
                        plan_id: None,
                    }
                    .into(),
                    t,
                ),
                (
                    "deviation",
                    deviation::CaseAnswered { deviation_id: format!("d-{case}"), answered_by: other.clone() }.into(),
                    hours(24 * 5),
                ),
                (
                    "deviation",
                    deviation::AnalysisCompleted { deviation_id: format!("d-{case}"), lex_maria: false }.into(),
                    hours(24 * 20),
                ),
                ("deviation", deviation::CaseClosed { deviation_id: format!("d-{case}") }.into(), hours(24 * 25)),
                (
                    "video",
                    video::MeetingBooked {
                        meeting_id: format!("v-{case}"),
                        purpose: video::MeetingPurpose::Sip,
                        principals: vec![principal.to_string(), other.clone()],
                        plan_id: Some(format!("svu-{case}")),
                    }
                    .into(),
                    t,
                ),
                (
                    "video",
                    video::ParticipantAdmitted {
                        meeting_id: format!("v-{case}"),
                        method: if i % 9 == 0 {
                            video::IdentificationMethod::None
                        } else {
                            video::IdentificationMethod::Siths
                        },
                        role: Some("nurse".into()),
                    }
                    .into(),
                    hours(50),
                ),
                (
                    "video",
                    video::MeetingHeld { meeting_id: format!("v-{case}"), duration_s: 1800, participants: 3 }.into(),
                    hours(51),
                ),
                (
                    "hub",
                    hub::AdapterHeartbeat { adapter: "demo".into(), version: env!("CARGO_PKG_VERSION").into() }.into(),
                    t,
                ),
            ];
            for (n, (area, event, time)) in events.into_iter().enumerate() {
                let id = format!("demo-{seed}-{principal}-{i}-{n}");
                let time = time.min(now);
                out.push((system(area_system(area)), Draft::at(id, time, event)));
            }
        }
    }
    out
}

fn area_system(area: &str) -> &'static str {
    match area {
        "npo" => "npo-adapter",
        "sdk" => "sdk-gateway",
        "plans" => "minaplaner",
        "decision" => "visam",
        "deviation" => "avvikelse",
        "video" => "video-platform",
        _ => "adapter",
    }
}

/// A stand-in pseudonym for the demo (real ones are keyed HMACs made by the adapter SDK).
fn pseudonym(seed: &str) -> String {
    hex::encode(Sha256::digest(format!("sgd-demo-person:{seed}").as_bytes()))
}

/// Refused events for the demo's dead-letter stream: (subject, body).
pub fn refused_samples() -> Vec<(String, Vec<u8>)> {
    let event = |principal: &str, ty: &str, data: serde_json::Value, id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0", "id": id, "source": format!("/principals/{principal}/systems/demo"),
            "type": ty, "time": "2026-03-02T10:15:00+01:00", "principal": principal,
            "datacontenttype": "application/json", "data": data,
        }))
        .unwrap_or_default()
    };
    vec![
        (
            "sgd.in.1280.plans".into(),
            event(
                "1280",
                "se.sgd.plans.plan.created",
                serde_json::json!({"plan_id": "p1", "kind": "svu", "person": "19121212-1212"}),
                "demo-bad-pii",
            ),
        ),
        (
            "sgd.in.1280.plans".into(),
            event("1280", "se.sgd.plans.plan.archived", serde_json::json!({"plan_id": "p1"}), "demo-bad-type"),
        ),
        (
            "sgd.in.1280.sdk".into(),
            event(
                "1281",
                "se.sgd.sdk.message.sent",
                serde_json::json!({"message_id": "m1", "recipient_principal": "12"}),
                "demo-bad-principal",
            ),
        ),
        ("sgd.in.1283.video".into(), b"{not json".to_vec()),
    ]
}

/// Options of `hub demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the read model, tokens and (when started here) nats-server's storage live.
    pub data_dir: PathBuf,
    /// A NATS server to use; `None` starts one.
    pub nats_url: Option<String>,
    /// The hub's nkey seed file, for a `nats_url` that requires one (`hub nats-config`).
    pub nats_nkey_file: Option<PathBuf>,
    /// The API address; if taken, a free port is used instead.
    pub http_addr: SocketAddr,
    /// Events per type and principal in the every-type sample.
    pub per_type: usize,
    /// Events from the simulator (all 34 principals, native inputs through the real mappings).
    pub simulated: u64,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// nats-server could not be started.
    #[error(transparent)]
    NatsServer(#[from] embedded_nats::NatsServerError),
    /// The hub failed.
    #[error(transparent)]
    Hub(#[from] crate::server::HubError),
    /// The log's stream could not be read while waiting for the projection.
    #[error("cannot read SGD_EVENTS: {0}")]
    Log(async_nats::jetstream::context::GetStreamError),
    /// Tokens could not be made.
    #[error(transparent)]
    Tokens(#[from] crate::tokens::TokenError),
    /// Publishing the sample failed.
    #[error(transparent)]
    Publish(#[from] sgd_adapters::PublishError),
    /// The simulator failed.
    #[error(transparent)]
    Simulator(#[from] sgd_adapters::simulator::SimulatorError),
}

/// Runs the demo until Ctrl-C (or `shutdown`).
pub async fn run(options: DemoOptions, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<(), DemoError> {
    std::fs::create_dir_all(&options.data_dir).map_err(embedded_nats::NatsServerError::Io)?;
    let data_dir = std::fs::canonicalize(&options.data_dir).unwrap_or(options.data_dir.clone());
    let (_server, nats_url) = match &options.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = embedded_nats::NatsServer::start(embedded_nats::NatsServerOptions {
                store_dir: data_dir.join("nats"),
                port: None,
                extra_config: String::new(),
            })?;
            let url = server.url();
            println!("started nats-server {url} (storage {})", server.store_dir().display());
            (Some(server), url)
        }
    };
    let http_addr = match std::net::TcpListener::bind(options.http_addr) {
        Ok(_) => options.http_addr,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let config = crate::config::HubConfig {
        nats_url: nats_url.clone(),
        nats_nkey_file: options.nats_nkey_file.clone(),
        data_dir: data_dir.clone(),
        http_addr,
        ..Default::default()
    };
    let tokens_file = config.tokens_path();
    let (_, analyst) = crate::tokens::add(&tokens_file, crate::tokens::Role::Analyst, None)?;
    let (_, operator) = crate::tokens::add(&tokens_file, crate::tokens::Role::Operator, None)?;
    let hub = crate::server::start(&config, shutdown.clone()).await?;
    let url = format!("http://{}", hub.http_addr.unwrap_or(http_addr));

    let sample = sample(DEMO_PRINCIPALS, options.per_type, 2026);
    let mut by_source: std::collections::BTreeMap<String, (SourceSystem, Vec<Draft>)> = Default::default();
    for (source, draft) in sample {
        by_source.entry(source.source()).or_insert_with(|| (source, Vec::new())).1.push(draft);
    }
    let started = std::time::Instant::now();
    let mut published = 0;
    for (source, drafts) in by_source.into_values() {
        published += Publisher::new(hub.js.clone(), source).publish_pipelined(&drafts, 256).await?;
    }
    for (subject, body) in refused_samples() {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(crate::log::streams::MSG_ID_HEADER, format!("demo-refused-{subject}-{}", body.len()).as_str());
        if let Ok(ack) = hub.js.publish_with_headers(subject, headers, body.into()).await {
            let _ = ack.await;
        }
    }
    println!("published {published} sample events of every type (and 4 that the validator refuses)");
    if options.simulated > 0 {
        let days = 60;
        let simulator = sgd_adapters::simulator::SimulatorConfig {
            start: chrono::Utc::now().fixed_offset() - chrono::Duration::days(days),
            days: days as u32,
            native: true,
            ..Default::default()
        };
        let report = sgd_adapters::simulator::run(
            hub.js.clone(),
            &data_dir.join("outbox"),
            2026,
            simulator,
            Some(options.simulated),
            0.0,
            shutdown,
        )
        .await?;
        published += report.acknowledged as usize;
        println!(
            "simulated {} events for the 34 principals over {days} days (FHIR and CSV through the adapters' mappings)",
            report.acknowledged
        );
    }
    let published_in = started.elapsed();
    println!("published {published} events in {published_in:.1?}");
    if let Some(model) = &hub.model {
        for _ in 0..6000 {
            let mut stream = hub.js.get_stream(crate::log::streams::EVENTS).await.map_err(DemoError::Log)?;
            let last = stream.info().await.map(|i| i.state.last_sequence).unwrap_or(0);
            if model.get().checkpoint().unwrap_or(0) >= last && last > 0 {
                let elapsed = started.elapsed();
                println!(
                    "validated and projected in {elapsed:.1?}: {:.0} events/s from publish to read model",
                    published as f64 / elapsed.as_secs_f64()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!();
    println!("sgd-hub demo is running at {url}  (Ctrl-C stops it)");
    println!("  dashboard:       open {url}/ in a browser and sign in with a token below");
    println!(
        "  operators:       HUB_API_URL={url} HUB_TOKEN=<operator token> hub status   (also hub dlq list, hub rebuild)"
    );
    println!("  usage by month:  curl -H \"Authorization: Bearer $TOKEN\" '{url}/api/v1/usage?bucket=month'");
    println!("  readiness:       curl -H \"Authorization: Bearer $TOKEN\" {url}/readyz");
    println!("  operator token (DLQ, metrics): {operator}");
    println!("  dead letters:    curl -H \"Authorization: Bearer <operator token>\" {url}/api/v1/dlq");
    println!("analyst token:");
    println!("{analyst}");
    hub.wait().await?;
    Ok(())
}
