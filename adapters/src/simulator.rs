//! A seeded, realistic load for the 34 principals across all six areas, for `hub demo`, the
//! benchmarks and `adapter simulate`.
//!
//! The simulator plays scenarios, each a small story told by the systems that would tell it: an
//! SVU episode (plan by the region's hospital, admission notice, sometimes late; a SIP meeting,
//! often over video; days as ready for discharge drawn from a skewed distribution with a day-0
//! share; discharge, close), a ViSam assessment with its NEWS2 score and, for a medium or high band,
//! usually a plan within 48 h (a share stays unanswered), NPÖ consent and record access, SDK messages
//! and their receipts (some rejected, some never), risk flags and their acknowledgement, deviations
//! between principals (a share never answered), and video meetings with their identification. A
//! municipality is picked by its population, so Malmö is busy and Perstorp quiet; units get their
//! NPÖ roles and SDK addresses first.
//!
//! With [`SimulatorConfig::native`] the FHIR-shaped scenarios (consents, record access, messages,
//! care plans and encounters, vital-sign panels, adverse events, appointments) are written as FHIR
//! R4 resources with real (synthetic, Luhn-valid) personal identity numbers and go through the real
//! mappings and the pseudonymiser; otherwise typed events are made directly.
//!
//! ```
//! use sgd_adapters::simulator::{Simulator, SimulatorConfig};
//!
//! let events: Vec<_> = Simulator::new(7, SimulatorConfig::default()).take(1000).collect();
//! assert_eq!(events.len(), 1000);
//! let again: Vec<_> = Simulator::new(7, SimulatorConfig::default()).take(1000).collect();
//! assert_eq!(events, again, "seeded");
//! ```

use std::{collections::VecDeque, path::Path, time::Duration};

use chrono::{DateTime, FixedOffset};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use sgd_schemas::{
    events::{
        decision::{AssessmentCompleted, Consciousness, Recommendation, RiskAcknowledged, RiskFlagged, Vitals},
        deviation::{Actuality, AnalysisCompleted, CaseAnswered, CaseClosed, CaseLogged},
        npo::{AccessBasis, ConsentGiven, ConsentScope, RecordAccessed, Role, RoleActivated},
        plans::{
            AdmissionNotified, DischargeReady, MeetingMode, PatientDischarged, PlanClosed, PlanCreated, PlanKind,
            SipHeld,
        },
        sdk::{AddressPublished, DeliveryError, DeliveryStatus, MessageDelivered, MessageSent},
        video::{IdentificationMethod, MeetingBooked, MeetingHeld, MeetingPurpose, ParticipantAdmitted},
        DomainEvent, UnitKind,
    },
    principals,
};
use tokio::sync::watch;

use crate::{
    cloudevent::{Draft, SourceSystem},
    decision::news2,
    fhir::{self, Mapper},
    outbox::{Outbox, OutboxError, OutboxPublisher},
    pseudonym::Pseudonymiser,
};

/// How the simulated region behaves. Shares are probabilities per scenario.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Simulated time of the first scenario.
    pub start: DateTime<FixedOffset>,
    /// Simulated time between scenarios.
    pub spacing: chrono::Duration,
    /// Simulated days the load spans; used only by [`run`] to choose `spacing` for a known count.
    pub days: u32,
    /// Native inputs through the real mappings (true) or typed events directly (false).
    pub native: bool,
    /// Share of SVU admission notices sent later than 24 h. Default 0.15.
    pub late_notice_share: f64,
    /// Share of medium/high NEWS2 warnings with no plan within 48 h. Default 0.25.
    pub unanswered_warning_share: f64,
    /// Share of deviations a concerned principal never answers. Default 0.2.
    pub unanswered_deviation_share: f64,
    /// The pseudonym key of native mode (a demo key; never a real region's).
    pub pseudonym_key: Vec<u8>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            start: DateTime::parse_from_rfc3339("2026-01-05T07:00:00+01:00").unwrap_or_default(),
            spacing: chrono::Duration::seconds(60),
            days: 30,
            native: false,
            late_notice_share: 0.15,
            unanswered_warning_share: 0.25,
            unanswered_deviation_share: 0.2,
            pseudonym_key: b"sgd-simulator demo key, not a real secret".to_vec(),
        }
    }
}

/// Approximate population (thousands) of each municipality, for weighting.
const POPULATION: &[(&str, u32)] = &[
    ("1214", 14),
    ("1230", 26),
    ("1231", 20),
    ("1233", 37),
    ("1256", 15),
    ("1257", 10),
    ("1260", 16),
    ("1261", 32),
    ("1262", 25),
    ("1263", 23),
    ("1264", 16),
    ("1265", 19),
    ("1266", 16),
    ("1267", 17),
    ("1270", 14),
    ("1272", 13),
    ("1273", 13),
    ("1275", 7),
    ("1276", 17),
    ("1277", 16),
    ("1278", 15),
    ("1280", 360),
    ("1281", 129),
    ("1282", 47),
    ("1283", 150),
    ("1284", 27),
    ("1285", 35),
    ("1286", 31),
    ("1287", 47),
    ("1290", 87),
    ("1291", 19),
    ("1292", 44),
    ("1293", 53),
];

/// The region's code.
const REGION: &str = "12";

/// A seeded stream of `(source, draft)` pairs. Endless; take what you need.
pub struct Simulator {
    rng: StdRng,
    config: SimulatorConfig,
    pseudonymiser: Pseudonymiser,
    municipalities: Vec<(&'static str, u32)>,
    queue: VecDeque<(SourceSystem, Draft)>,
    clock: DateTime<FixedOffset>,
    scenario: u64,
    seed: u64,
    /// Mapping errors in native mode (a bug if ever non-zero).
    pub mapping_errors: u64,
}

impl Simulator {
    /// A simulator with `seed`.
    pub fn new(seed: u64, config: SimulatorConfig) -> Self {
        let pseudonymiser = Pseudonymiser::new(config.pseudonym_key.clone())
            .or_else(|_| Pseudonymiser::new(SimulatorConfig::default().pseudonym_key))
            .expect("the default key is long enough");
        let municipalities =
            POPULATION.iter().copied().filter(|(code, _)| principals::is_known(code)).collect::<Vec<_>>();
        let mut sim = Self {
            rng: StdRng::seed_from_u64(seed),
            clock: config.start,
            config,
            pseudonymiser,
            municipalities,
            queue: VecDeque::new(),
            scenario: 0,
            seed,
            mapping_errors: 0,
        };
        sim.registers();
        sim
    }

    fn source(principal: &str, system: &str) -> SourceSystem {
        SourceSystem::new(principal, system).expect("known principals and plain system names")
    }

    fn push(&mut self, principal: &str, system: &str, id: String, time: DateTime<FixedOffset>, event: DomainEvent) {
        self.queue.push_back((Self::source(principal, system), Draft::at(id, time, event)));
    }

    fn push_fhir(&mut self, principal: &str, system: &str, mapper: Mapper, resource: Value) {
        let source = Self::source(principal, system);
        match fhir::map_value(&resource, &self.pseudonymiser, mapper) {
            Ok(mapped) => {
                self.mapping_errors += mapped.errors.len() as u64;
                for e in &mapped.errors {
                    tracing::error!(error = %e, "simulator resource not mapped (a bug)");
                }
                self.queue.extend(mapped.drafts.into_iter().map(|d| (source.clone(), d)));
            }
            Err(e) => {
                self.mapping_errors += 1;
                tracing::error!(error = %e, "simulator input not read (a bug)");
            }
        }
    }

    fn unit(&mut self, principal: &str, suffix: &str) -> String {
        // A plausible HSA-id: SE + a 10-digit organisation number per principal + suffix.
        let org = if principal == REGION { "2321000255".to_string() } else { format!("21200{principal}0") };
        format!("SE{org}-{suffix}")
    }

    /// NPÖ roles and SDK addresses of every principal's units, at the start.
    fn registers(&mut self) {
        let start = self.config.start - chrono::Duration::days(1);
        let mut all: Vec<&str> = vec![REGION];
        all.extend(self.municipalities.iter().map(|(c, _)| *c));
        for (n, principal) in all.into_iter().enumerate() {
            let kinds: &[(&str, UnitKind)] = if principal == REGION {
                &[("SUS1", UnitKind::Hospital), ("VC1", UnitKind::PrimaryCare), ("PSY1", UnitKind::Psychiatry)]
            } else {
                &[("HSL1", UnitKind::MunicipalHealthCare), ("EH1", UnitKind::SchoolHealth)]
            };
            for (suffix, kind) in kinds {
                let unit = self.unit(principal, suffix);
                let time = start + chrono::Duration::minutes(n as i64);
                let consumer = RoleActivated {
                    unit: unit.clone(),
                    role: Role::Consumer,
                    information_sets: vec![],
                    unit_kind: Some(*kind),
                };
                self.push(principal, "hsa-register", format!("npo-role/{unit}/consumer"), time, consumer.into());
                // not every municipality produces for NPÖ (the goal is that all do)
                if principal == REGION || self.rng.random_bool(0.6) {
                    let sets = vec!["GetCareDocumentation".to_string(), "GetCareContacts".to_string()];
                    let producer = RoleActivated {
                        unit: unit.clone(),
                        role: Role::Producer,
                        information_sets: sets,
                        unit_kind: Some(*kind),
                    };
                    self.push(principal, "hsa-register", format!("npo-role/{unit}/producer"), time, producer.into());
                }
                let address = AddressPublished {
                    unit: unit.clone(),
                    function_address: format!("{unit}-FA"),
                    unit_kind: Some(*kind),
                };
                self.push(principal, "hsa-register", format!("sdk-address/{unit}"), time, address.into());
            }
        }
    }

    fn municipality(&mut self) -> &'static str {
        let total: u32 = self.municipalities.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total.max(1));
        for (code, weight) in &self.municipalities {
            if pick < *weight {
                return code;
            }
            pick -= weight;
        }
        "1280"
    }

    /// A synthetic, Luhn-valid personal identity number (12 digits).
    fn person_number(&mut self) -> String {
        let year = self.rng.random_range(1925..2012);
        let month = self.rng.random_range(1..=12);
        let day = self.rng.random_range(1..=28);
        let serial = self.rng.random_range(0..1000);
        let nine = format!("{:02}{month:02}{day:02}{serial:03}", year % 100);
        let sum: u32 = nine
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0') * if i % 2 == 0 { 2 } else { 1 };
                d / 10 + d % 10
            })
            .sum();
        format!("{year}{}{}", &nine[2..], (10 - sum % 10) % 10)
    }

    fn hours(&mut self, low: f64, high: f64) -> chrono::Duration {
        chrono::Duration::seconds((self.rng.random_range(low..high) * 3600.0) as i64)
    }

    fn scenario(&mut self) {
        self.scenario += 1;
        self.clock += self.config.spacing;
        let roll: f64 = self.rng.random();
        let m = self.municipality();
        match roll {
            r if r < 0.22 => self.svu_episode(m),
            r if r < 0.38 => self.assessment(m),
            r if r < 0.55 => self.npo_use(m),
            r if r < 0.75 => self.sdk_message(m),
            r if r < 0.82 => self.risk_flag(m),
            r if r < 0.90 => self.deviation(m),
            _ => self.video_meeting(m),
        }
    }

    fn svu_episode(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let plan_id = format!("svu-{n}");
        let number = self.person_number();
        let t0 = self.clock;
        let need_assessed = t0 + self.hours(2.0, 20.0);
        let late = self.rng.random_bool(self.config.late_notice_share);
        let sent = need_assessed + if late { self.hours(24.5, 72.0) } else { self.hours(0.2, 23.5) };
        // Days as ready for discharge: a day-0 share, most within the 3-day threshold, a long tail.
        let ready_days = match self.rng.random::<f64>() {
            r if r < 0.35 => 0.0,
            r if r < 0.70 => self.rng.random_range(1.0..3.0),
            r if r < 0.92 => self.rng.random_range(3.0..7.0),
            _ => self.rng.random_range(7.0..21.0),
        };
        let ready = sent + self.hours(24.0, 24.0 * 8.0);
        let discharged = ready + chrono::Duration::seconds((ready_days * 86_400.0) as i64) + self.hours(1.0, 6.0);
        let sip = self.rng.random_bool(0.6);
        let sip_video = self.rng.random_bool(0.4);
        let sip_at = ready - self.hours(2.0, 20.0);
        let closed = discharged + self.hours(24.0, 24.0 * 10.0);
        if self.config.native {
            let class = if sip_video { "VR" } else { "AMB" };
            let plan = json!({
                "resourceType": "CarePlan", "id": plan_id, "status": "completed", "intent": "plan",
                "category": [{"coding": [{"code": "svu"}]}],
                "contained": [{"resourceType": "Patient", "id": "p", "identifier": [{"system": fhir::PERSONNUMMER, "value": number}]}],
                "subject": {"reference": "#p"},
                "created": t0.to_rfc3339(), "period": {"start": t0.to_rfc3339(), "end": closed.to_rfc3339()},
                "contributor": [{"identifier": {"system": fhir::PRINCIPAL, "value": REGION}}, {"identifier": {"system": fhir::PRINCIPAL, "value": m}}]
            });
            self.push_fhir(REGION, "cosmic", crate::plans::map_fhir, plan);
            let encounter = json!({
                "resourceType": "Bundle", "type": "collection", "entry": [
                    {"resource": {
                        "resourceType": "Encounter", "id": format!("{plan_id}-stay"), "status": "finished", "class": {"code": "IMP"},
                        "extension": [
                            {"url": "urn:sgd:fhir:need-assessed", "valueDateTime": need_assessed.to_rfc3339()},
                            {"url": "urn:sgd:fhir:admission-notice-sent", "valueDateTime": sent.to_rfc3339()},
                            {"url": "urn:sgd:fhir:ready-for-discharge", "valueDateTime": ready.to_rfc3339()}
                        ],
                        "episodeOfCare": [{"reference": format!("EpisodeOfCare/{plan_id}")}],
                        "period": {"start": t0.to_rfc3339(), "end": discharged.to_rfc3339()}
                    }}
                ]
            });
            self.push_fhir(REGION, "cosmic", crate::plans::map_fhir, encounter);
            if sip {
                let meeting = json!({
                    "resourceType": "Encounter", "id": format!("{plan_id}-sip"), "status": "finished", "class": {"code": class},
                    "type": [{"coding": [{"code": "sip"}]}],
                    "episodeOfCare": [{"reference": format!("EpisodeOfCare/{plan_id}")}],
                    "period": {"start": sip_at.to_rfc3339(), "end": (sip_at + chrono::Duration::minutes(45)).to_rfc3339()}
                });
                self.push_fhir(m, "lifecare", crate::plans::map_fhir, meeting);
            }
            return;
        }
        let person = self.pseudonymiser.pseudonym(&number).unwrap_or_default();
        let id = |what: &str| format!("{plan_id}/{what}");
        self.push(
            REGION,
            "cosmic",
            id("created"),
            t0,
            PlanCreated {
                plan_id: plan_id.clone(),
                kind: PlanKind::Svu,
                person,
                participants: vec![REGION.into(), m.into()],
            }
            .into(),
        );
        self.push(
            REGION,
            "cosmic",
            id("notified"),
            sent,
            AdmissionNotified { plan_id: plan_id.clone(), need_assessed_at: need_assessed, sent_at: sent }.into(),
        );
        if sip {
            let mode = if sip_video { MeetingMode::Video } else { MeetingMode::Physical };
            self.push(
                m,
                "lifecare",
                id("sip"),
                sip_at,
                SipHeld { plan_id: plan_id.clone(), held_at: sip_at, mode }.into(),
            );
        }
        self.push(
            REGION,
            "cosmic",
            id("ready"),
            ready,
            DischargeReady { plan_id: plan_id.clone(), ready_at: ready }.into(),
        );
        self.push(
            REGION,
            "cosmic",
            id("discharged"),
            discharged,
            PatientDischarged { plan_id: plan_id.clone(), discharged_at: discharged }.into(),
        );
        self.push(REGION, "cosmic", id("closed"), closed, PlanClosed { plan_id }.into());
    }

    fn vitals(&mut self) -> Vitals {
        // Mostly mild deviations; some really sick.
        let sick = self.rng.random::<f64>();
        let spread = if sick < 0.6 {
            0.2
        } else if sick < 0.9 {
            0.6
        } else {
            1.0
        };
        let consciousness =
            if spread >= 1.0 && self.rng.random_bool(0.3) { Consciousness::C } else { Consciousness::A };
        let oxygen = spread >= 1.0 && self.rng.random_bool(0.3);
        let rng = &mut self.rng;
        let mut around = |normal: f64, bad: f64| normal + (bad - normal) * spread * rng.random::<f64>();
        Vitals {
            respiration_rate: Some(around(16.0, 28.0).round() as u32),
            spo2: Some(around(97.0, 88.0).round() as u32),
            supplemental_oxygen: Some(oxygen),
            systolic_bp: Some(around(125.0, 88.0).round() as u32),
            pulse: Some(around(75.0, 125.0).round() as u32),
            consciousness: Some(consciousness),
            temperature: Some((around(37.0, 39.4) * 10.0).round() / 10.0),
        }
    }

    fn assessment(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let assessment_id = format!("visam-{n}");
        let number = self.person_number();
        let vitals = self.vitals();
        let time = self.clock;
        let score = news2::score(&vitals, news2::SpO2Scale::Scale1).ok();
        let recommendation = match score.map(|s| s.score).unwrap_or(0) {
            0..=2 => Recommendation::StayHome,
            3..=6 => Recommendation::EmergencyDepartment,
            _ => Recommendation::DirectAdmission,
        };
        let warned = score.is_some_and(|s| s.band >= sgd_schemas::events::decision::Band::Medium);
        let answered = warned && !self.rng.random_bool(self.config.unanswered_warning_share);
        if self.config.native {
            let code = |c: &str| json!({"coding": [{"system": "http://loinc.org", "code": c}]});
            let q = |c: &str, v: f64| json!({"code": code(c), "valueQuantity": {"value": v}});
            let mut components = vec![
                q("9279-1", f64::from(vitals.respiration_rate.unwrap_or(16))),
                q("59408-5", f64::from(vitals.spo2.unwrap_or(97))),
                q("8480-6", f64::from(vitals.systolic_bp.unwrap_or(120))),
                q("8867-4", f64::from(vitals.pulse.unwrap_or(70))),
                q("8310-5", vitals.temperature.unwrap_or(37.0)),
                json!({"code": code("67775-7"), "valueCodeableConcept": {"coding": [{"code": format!("{:?}", vitals.consciousness.unwrap_or(Consciousness::A))}]}}),
            ];
            if vitals.supplemental_oxygen == Some(true) {
                components.push(q("3151-8", 2.0));
            }
            let recommendation = serde_json::to_value(recommendation).unwrap_or_default();
            let observation = json!({
                "resourceType": "Observation", "id": assessment_id, "status": "final",
                "extension": [{"url": "urn:sgd:fhir:visam-recommendation", "valueCode": recommendation}],
                "code": code(decision_panel()),
                "subject": {"identifier": {"system": fhir::PERSONNUMMER, "value": number}},
                "effectiveDateTime": time.to_rfc3339(),
                "component": components
            });
            self.push_fhir(m, "visam", crate::decision::map_fhir, observation);
        } else {
            let person = self.pseudonymiser.pseudonym(&number).unwrap_or_default();
            let event = AssessmentCompleted {
                person: person.clone(),
                assessment_id: assessment_id.clone(),
                vitals: Some(vitals),
                recommendation,
            };
            self.push(m, "visam", format!("{assessment_id}/assessment"), time, event.into());
            if let Some(raised) = score.and_then(|s| s.score_raised(&person, &assessment_id)) {
                self.push(m, "visam", format!("{assessment_id}/news2"), time, raised.into());
            }
        }
        if answered {
            // the warning is followed up: a plan for the same person within 48 h
            let person = self.pseudonymiser.pseudonym(&number).unwrap_or_default();
            let at = time + self.hours(1.0, 40.0);
            let plan = PlanCreated {
                plan_id: format!("akut-{n}"),
                kind: PlanKind::Akutblad,
                person,
                participants: vec![m.into(), REGION.into()],
            };
            self.push(m, "lifecare", format!("akut-{n}/created"), at, plan.into());
        }
    }

    fn npo_use(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let number = self.person_number();
        let (reader, producer) = if self.rng.random_bool(0.5) { (REGION, m) } else { (m, REGION) };
        let consumer_unit = if reader == REGION { self.unit(REGION, "VC1") } else { self.unit(m, "HSL1") };
        let time = self.clock;
        let emergency = self.rng.random_bool(0.08);
        let scope = if self.rng.random_bool(0.7) { "care_documentation" } else { "medication_list" };
        if self.config.native {
            let mut entries = vec![
                json!({"fullUrl": format!("urn:uuid:sim-{n}"), "resource": {"resourceType": "Patient", "id": format!("p{n}"), "identifier": [{"system": fhir::PERSONNUMMER, "value": number}]}}),
            ];
            if !emergency {
                entries.push(json!({"resource": {
                    "resourceType": "Consent", "id": format!("consent-{n}"), "status": "active",
                    "category": [{"coding": [{"code": scope}]}], "patient": {"reference": format!("Patient/p{n}")},
                    "dateTime": time.to_rfc3339(),
                    "provision": {"actor": [{"reference": {"identifier": {"system": fhir::HSA_ID, "value": consumer_unit}}}]}
                }}));
            }
            let basis = if emergency { "ETREAT" } else { "TREAT" };
            entries.push(json!({"resource": {
                "resourceType": "AuditEvent", "id": format!("access-{n}"), "recorded": (time + chrono::Duration::minutes(5)).to_rfc3339(),
                "purposeOfEvent": [{"coding": [{"code": basis}]}],
                "agent": [{"who": {"identifier": {"system": fhir::HSA_ID, "value": consumer_unit}}, "requestor": true}],
                "source": {"observer": {"identifier": {"system": fhir::PRINCIPAL, "value": producer}}},
                "entity": [{"what": {"reference": format!("urn:uuid:sim-{n}")}, "detail": [{"type": "information_set", "valueString": "GetCareDocumentation"}]}]
            }}));
            self.push_fhir(
                reader,
                "npo-log",
                crate::npo::map_fhir,
                json!({"resourceType": "Bundle", "type": "collection", "entry": entries}),
            );
            return;
        }
        let person = self.pseudonymiser.pseudonym(&number).unwrap_or_default();
        if !emergency {
            let scope = if scope == "care_documentation" {
                ConsentScope::CareDocumentation
            } else {
                ConsentScope::MedicationList
            };
            let consent =
                ConsentGiven { person: person.clone(), consumer_unit: consumer_unit.clone(), scope, valid_until: None };
            self.push(reader, "npo-log", format!("consent-{n}/given"), time, consent.into());
        }
        let basis = if emergency { AccessBasis::Emergency } else { AccessBasis::Consent };
        let access = RecordAccessed {
            person,
            consumer_unit,
            producer_principal: producer.into(),
            information_sets: vec!["GetCareDocumentation".into()],
            basis,
        };
        self.push(
            reader,
            "npo-log",
            format!("access-{n}/accessed"),
            time + chrono::Duration::minutes(5),
            access.into(),
        );
    }

    fn sdk_message(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let (from, to) = if self.rng.random_bool(0.5) { (REGION, m) } else { (m, REGION) };
        let message_id = format!("sdk-{n}");
        let sent = self.clock;
        let outcome = self.rng.random::<f64>();
        let received = sent + chrono::Duration::seconds(self.rng.random_range(2..900));
        let address = self.unit(to, if to == REGION { "VC1" } else { "HSL1" }) + "-FA";
        let message = MessageSent {
            message_id: message_id.clone(),
            recipient_principal: to.into(),
            recipient_address: Some(address),
            conversation_id: Some(format!("conv-{}-{}", self.seed, self.scenario / 3)),
        };
        self.push(from, "sdk-gateway", format!("{message_id}/sent"), sent, message.into());
        // 90 % accepted, 5 % rejected, 5 % never receipted
        if outcome < 0.95 {
            let (status, error) = if outcome < 0.90 {
                (DeliveryStatus::Accepted, None)
            } else {
                (DeliveryStatus::Rejected, Some(DeliveryError { code: "RECIPIENT_UNKNOWN".into(), description: None }))
            };
            let receipt = MessageDelivered { message_id: message_id.clone(), status, received_at: received, error };
            self.push(from, "sdk-gateway", format!("{message_id}/delivered"), received, receipt.into());
        }
    }

    fn risk_flag(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let flag_id = format!("risk-{n}");
        let person = {
            let number = self.person_number();
            self.pseudonymiser.pseudonym(&number).unwrap_or_default()
        };
        let time = self.clock;
        let unit = self.unit(REGION, "VC1");
        let flag = RiskFlagged {
            person,
            flag_id: flag_id.clone(),
            primary_care_unit: unit,
            setting: Some(format!("emergency_department/{m}")),
        };
        self.push(REGION, "riskprofil", format!("{flag_id}/flagged"), time, flag.into());
        // most within 3 days, some late, some never
        let r = self.rng.random::<f64>();
        if r < 0.85 {
            let days = if r < 0.7 { self.rng.random_range(0.1..3.0) } else { self.rng.random_range(3.0..10.0) };
            let at = time + chrono::Duration::seconds((days * 86_400.0) as i64);
            self.push(REGION, "riskprofil", format!("{flag_id}/acknowledged"), at, RiskAcknowledged { flag_id }.into());
        }
    }

    fn deviation(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let deviation_id = format!("avv-{n}");
        let (reporter, concerned) = if self.rng.random_bool(0.5) { (REGION, m) } else { (m, REGION) };
        let probability = self.rng.random_range(1..=4u8);
        let consequence = self.rng.random_range(1..=4u8);
        let category =
            ["information_transfer", "medication", "discharge_planning", "other"][self.rng.random_range(0..4)];
        let actuality = if self.rng.random_bool(0.7) { Actuality::Actual } else { Actuality::NearMiss };
        let logged = CaseLogged {
            deviation_id: deviation_id.clone(),
            concerned_principals: vec![concerned.into()],
            category: category.into(),
            actuality,
            probability,
            consequence,
            plan_id: None,
        };
        let requires_analysis = logged.requires_analysis();
        let time = self.clock;
        let answered = !self.rng.random_bool(self.config.unanswered_deviation_share);
        let answered_at = time + self.hours(24.0, 24.0 * 20.0);
        let analysed = requires_analysis && self.rng.random_bool(0.7);
        let analysis_at = time + self.hours(24.0 * 5.0, 24.0 * 45.0);
        let lex_maria = consequence >= 4 && self.rng.random_bool(0.5);
        let closed_at = time + self.hours(24.0 * 20.0, 24.0 * 60.0);
        if self.config.native {
            let mut extension = vec![
                json!({"url": "urn:sgd:fhir:concerned-principal", "valueString": concerned}),
                json!({"url": "urn:sgd:fhir:probability", "valueInteger": probability}),
                json!({"url": "urn:sgd:fhir:consequence", "valueInteger": consequence}),
            ];
            if answered {
                extension.push(json!({"url": "urn:sgd:fhir:answered", "extension": [{"url": "principal", "valueString": concerned}, {"url": "at", "valueDateTime": answered_at.to_rfc3339()}]}));
            }
            if analysed {
                extension.push(json!({"url": "urn:sgd:fhir:analysis-completed", "extension": [{"url": "lexMaria", "valueBoolean": lex_maria}, {"url": "at", "valueDateTime": analysis_at.to_rfc3339()}]}));
            }
            if answered && (!requires_analysis || analysed) {
                extension.push(json!({"url": "urn:sgd:fhir:closed", "valueDateTime": closed_at.to_rfc3339()}));
            }
            let actuality = if actuality == Actuality::Actual { "actual" } else { "potential" };
            let resource = json!({"resourceType": "AdverseEvent", "id": deviation_id, "extension": extension, "actuality": actuality,
                "category": [{"coding": [{"code": category}]}], "recordedDate": time.to_rfc3339()});
            self.push_fhir(reporter, "synergi", crate::deviation::map_fhir, resource);
            return;
        }
        let id = |what: &str| format!("{deviation_id}/{what}");
        self.push(reporter, "synergi", id("logged"), time, logged.into());
        if answered {
            self.push(
                concerned,
                "synergi",
                id("answered"),
                answered_at,
                CaseAnswered { deviation_id: deviation_id.clone(), answered_by: concerned.into() }.into(),
            );
        }
        if analysed {
            self.push(
                reporter,
                "synergi",
                id("analysis"),
                analysis_at,
                AnalysisCompleted { deviation_id: deviation_id.clone(), lex_maria }.into(),
            );
        }
        if answered && (!requires_analysis || analysed) {
            self.push(reporter, "synergi", id("closed"), closed_at, CaseClosed { deviation_id }.into());
        }
    }

    fn video_meeting(&mut self, m: &'static str) {
        let n = format!("{}-{}", self.seed, self.scenario);
        let meeting_id = format!("video-{n}");
        let purpose = [MeetingPurpose::Sip, MeetingPurpose::Svu, MeetingPurpose::Consultation, MeetingPurpose::Other]
            [self.rng.random_range(0..4)];
        let booked = self.clock;
        let start = booked + self.hours(24.0, 24.0 * 7.0);
        let minutes = self.rng.random_range(15..75);
        let participants = self.rng.random_range(2..5usize);
        let methods: Vec<IdentificationMethod> = (0..participants)
            .map(|_| match self.rng.random::<f64>() {
                r if r < 0.5 => IdentificationMethod::Bankid,
                r if r < 0.85 => IdentificationMethod::Siths,
                r if r < 0.9 => IdentificationMethod::Freja,
                _ => IdentificationMethod::None,
            })
            .collect();
        if self.config.native {
            let code = |p: MeetingPurpose| serde_json::to_value(p).unwrap_or_default();
            let participant: Vec<Value> = methods
                .iter()
                .enumerate()
                .map(|(i, method)| {
                    let actor = if i == 0 { REGION } else { m };
                    json!({"extension": [{"url": "urn:sgd:fhir:identification-method", "valueCode": serde_json::to_value(method).unwrap_or_default()}],
                        "actor": {"identifier": {"system": fhir::PRINCIPAL, "value": actor}}, "status": "accepted"})
                })
                .collect();
            let resource = json!({"resourceType": "Appointment", "id": meeting_id, "status": "fulfilled",
                "serviceType": [{"coding": [{"code": code(purpose)}]}], "created": booked.to_rfc3339(),
                "start": start.to_rfc3339(), "end": (start + chrono::Duration::minutes(minutes)).to_rfc3339(), "participant": participant});
            self.push_fhir(REGION, "video-platform", crate::video::map_fhir, resource);
            return;
        }
        let id = |what: &str| format!("{meeting_id}/{what}");
        self.push(
            REGION,
            "video-platform",
            id("booked"),
            booked,
            MeetingBooked {
                meeting_id: meeting_id.clone(),
                purpose,
                principals: vec![REGION.into(), m.into()],
                plan_id: None,
            }
            .into(),
        );
        for (i, method) in methods.into_iter().enumerate() {
            self.push(
                REGION,
                "video-platform",
                id(&format!("admitted/{i}")),
                start,
                ParticipantAdmitted { meeting_id: meeting_id.clone(), method, role: None }.into(),
            );
        }
        let held_id = id("held");
        let held = MeetingHeld { meeting_id, duration_s: minutes as u64 * 60, participants: participants as u32 };
        self.push(REGION, "video-platform", held_id, start + chrono::Duration::minutes(minutes), held.into());
    }
}

fn decision_panel() -> &'static str {
    crate::decision::VITAL_SIGNS_PANEL
}

impl Iterator for Simulator {
    type Item = (SourceSystem, Draft);

    fn next(&mut self) -> Option<Self::Item> {
        while self.queue.is_empty() {
            self.scenario();
        }
        self.queue.pop_front()
    }
}

/// What a [`run`] did.
#[derive(Debug)]
pub struct SimulationReport {
    /// Events enqueued.
    pub events: u64,
    /// Events acknowledged by JetStream.
    pub acknowledged: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Resources the real mappings refused (native mode; a bug if not zero).
    pub mapping_errors: u64,
}

impl std::fmt::Display for SimulationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events enqueued, {} acknowledged in {:.1?} ({:.0} events/s); {} mapping errors",
            self.events,
            self.acknowledged,
            self.elapsed,
            self.events as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.mapping_errors
        )
    }
}

/// Why a run stopped → check the outbox directory and the NATS URL.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The outbox failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Runs the simulator into NATS through a durable outbox in `outbox_dir`: `limit` events (or until
/// `shutdown`), at `rate` events per second (0: as fast as possible), then waits for the outbox
/// to drain (at most 5 minutes).
pub async fn run(
    jetstream: async_nats::jetstream::Context,
    outbox_dir: &Path,
    seed: u64,
    mut config: SimulatorConfig,
    limit: Option<u64>,
    rate: f64,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SimulationReport, SimulatorError> {
    if let Some(limit) = limit {
        // about four events per scenario
        let scenarios = (limit / 4).max(1) as i64;
        config.spacing = chrono::Duration::seconds((i64::from(config.days) * 86_400 / scenarios).max(1));
    }
    let outbox = Outbox::open(outbox_dir)?;
    let placeholder = SourceSystem::new(REGION, "simulator").expect("a valid source");
    let publisher = OutboxPublisher::new(jetstream, placeholder, outbox);
    let mut simulator = Simulator::new(seed, config);
    let started = std::time::Instant::now();
    let mut produced = 0u64;
    let batch = if rate > 0.0 { ((rate / 10.0).ceil() as u64).clamp(1, 1000) } else { 1000 };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let take = limit.map(|l| batch.min(l - produced)).unwrap_or(batch);
        if take == 0 {
            break;
        }
        let chunk: Vec<(SourceSystem, Draft)> = simulator.by_ref().take(take as usize).collect();
        publisher.enqueue_all_from(chunk.iter().map(|(s, d)| (s, d))).await?;
        produced += take;
        if rate > 0.0 {
            let due = Duration::from_secs_f64(produced as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        } else if publisher.outbox().len() > 200_000 {
            // do not run away from the hub: let the outbox drain a little
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let drained = publisher.wait_empty(Duration::from_secs(300)).await;
    let report = SimulationReport {
        events: produced,
        acknowledged: publisher.stats().acknowledged(),
        elapsed: started.elapsed(),
        mapping_errors: simulator.mapping_errors,
    };
    publisher.close().await;
    drained?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use sgd_schemas::{subjects, validate, ValidationContext};

    use super::*;

    fn check(native: bool) -> (BTreeMap<&'static str, usize>, BTreeSet<String>) {
        let config = SimulatorConfig { native, ..Default::default() };
        let mut sim = Simulator::new(42, config);
        let mut types = BTreeMap::new();
        let mut principals = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (source, draft) in sim.by_ref().take(6000) {
            let bytes = draft.to_json(&source).unwrap();
            let subject = subjects::ingress(source.principal(), draft.area());
            validate(&bytes, &ValidationContext::from_ingress_subject(&subject, 1 << 20))
                .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&bytes)));
            assert!(ids.insert(format!("{}/{}", source.source(), draft.id)), "duplicate identity {}", draft.id);
            *types.entry(draft.event.event_type()).or_insert(0) += 1;
            principals.insert(source.principal().to_string());
        }
        assert_eq!(sim.mapping_errors, 0);
        (types, principals)
    }

    #[test]
    fn direct_events_are_valid_cover_every_area_and_principal() {
        let (types, principals) = check(false);
        let missing: Vec<_> = DomainEvent::TYPES
            .iter()
            .filter(|t| {
                !types.contains_key(**t)
                    && ![
                        "se.sgd.hub.adapter.heartbeat",
                        "se.sgd.npo.consent.revoked",
                        "se.sgd.npo.role.deactivated",
                        "se.sgd.plans.discharge.withdrawn",
                    ]
                    .contains(t)
            })
            .collect();
        assert!(missing.is_empty(), "never produced: {missing:?}");
        assert_eq!(principals.len(), 34, "every principal is active");
    }

    #[test]
    fn native_inputs_go_through_the_real_mappings() {
        let (types, principals) = check(true);
        for area in ["npo", "sdk", "plans", "decision", "deviation", "video"] {
            assert!(types.keys().any(|t| t.split('.').nth(2) == Some(area)), "no {area} events: {types:?}");
        }
        assert!(principals.len() >= 30, "{principals:?}");
        assert!(types.contains_key("se.sgd.decision.score.raised"));
    }

    #[test]
    fn follow_up_shares_show_up() {
        let sim = Simulator::new(3, SimulatorConfig::default());
        let mut late = 0;
        let mut notices = 0;
        let mut ready_days = Vec::new();
        let mut ready = BTreeMap::new();
        for (_, draft) in sim.take(20_000) {
            match draft.event {
                DomainEvent::PlansAdmissionNotified(n) => {
                    notices += 1;
                    if n.sent_at - n.need_assessed_at > chrono::Duration::hours(24) {
                        late += 1;
                    }
                }
                DomainEvent::PlansDischargeReady(r) => {
                    ready.insert(r.plan_id, r.ready_at);
                }
                DomainEvent::PlansPatientDischarged(d) => {
                    if let Some(at) = ready.get(&d.plan_id) {
                        ready_days.push((d.discharged_at - *at).num_days());
                    }
                }
                _ => {}
            }
        }
        let share = late as f64 / notices as f64;
        assert!((0.08..0.25).contains(&share), "late share {share}");
        let day0 = ready_days.iter().filter(|d| **d == 0).count() as f64 / ready_days.len() as f64;
        assert!((0.2..0.5).contains(&day0), "day-0 share {day0}");
        assert!(ready_days.iter().any(|d| *d > 3), "some beyond the payment threshold");
    }
}
