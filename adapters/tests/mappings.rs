//! Every mapping against small fixtures in the shape of the official FHIR R4 examples, and the CSV
//! inputs with happy and broken files. Every event produced must pass the hub's validator
//! (`sgd_schemas::validate`: envelope, schema, PII guard) and never carry a personal number.

use std::{collections::BTreeSet, path::PathBuf};

use sgd_adapters::{
    decision, deviation,
    fhir::{self, Mapped, Mapper},
    npo, plans,
    pseudonym::Pseudonymiser,
    sdk, video, Draft, SourceSystem,
};
use sgd_schemas::{events::DomainEvent, subjects, validate, ValidationContext};

/// The personal identity numbers in the fixtures, in every form they take there.
const NUMBERS: &[&str] = &["19121212-1212", "191212121212", "121212-1212", "1212121212", "199001012385", "9001012385"];

fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn pseudonymiser() -> Pseudonymiser {
    Pseudonymiser::new(b"test key for the mapping tests, 32+ bytes".to_vec()).unwrap()
}

fn person(number: &str) -> String {
    pseudonymiser().pseudonym(number).unwrap()
}

/// Checks every draft as the hub would and returns their data by type.
fn validated(mapped: &Mapped) -> Vec<DomainEvent> {
    let source = SourceSystem::new("12", "fixtures").unwrap();
    let mut ids = BTreeSet::new();
    for draft in &mapped.drafts {
        assert!(ids.insert(draft.id.clone()), "duplicate event id {}", draft.id);
        let bytes = draft.to_json(&source).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for number in NUMBERS {
            assert!(!text.contains(number), "{number} leaked into {text}");
        }
        let subject = subjects::ingress("12", draft.area());
        validate(&bytes, &ValidationContext::from_ingress_subject(&subject, 1 << 20))
            .unwrap_or_else(|e| panic!("{} refused: {e:?}\n{text}", draft.id));
    }
    mapped.drafts.iter().map(|d| d.event.clone()).collect()
}

fn map(path: &str, mapper: Mapper) -> Mapped {
    fhir::map_input(&fixture(path), &pseudonymiser(), mapper).unwrap()
}

fn types(events: &[DomainEvent]) -> Vec<&'static str> {
    events.iter().map(DomainEvent::event_type).collect()
}

mod npo_mappings {
    use super::*;
    use sgd_schemas::events::npo::{AccessBasis, ConsentScope};

    #[test]
    fn consent_with_a_contained_patient_is_consent_given() {
        let mapped = map("npo/consent-given.json", npo::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::NpoConsentGiven(given)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(given.person, person("19121212-1212"));
        assert_eq!(given.consumer_unit, "SE2321000255-ABC1");
        assert_eq!(given.scope, ConsentScope::CareDocumentation);
        assert_eq!(given.valid_until.unwrap().to_rfc3339(), "2026-09-02T10:15:00+02:00");
        assert_eq!(mapped.drafts[0].id, "Consent/consent-npo-1/given");
    }

    #[test]
    fn a_bundle_maps_what_it_can_and_names_the_field_of_what_it_cannot() {
        let mapped = map("npo/consent-bundle.json", npo::map_fhir);
        let events = validated(&mapped);
        assert_eq!(types(&events), ["se.sgd.npo.consent.revoked", "se.sgd.npo.consent.given"]);
        let DomainEvent::NpoConsentRevoked(revoked) = &events[0] else { panic!() };
        assert_eq!(revoked.person, person("199001012385"), "resolved through the entry's fullUrl");
        let DomainEvent::NpoConsentGiven(given) = &events[1] else { panic!() };
        assert_eq!(given.person, revoked.person, "resolved through Patient/<id>");
        assert_eq!(mapped.errors.len(), 1);
        let error = &mapped.errors[0];
        assert_eq!(error.resource, "Consent/consent-npo-3");
        assert_eq!(error.field, "Consent.provision.actor");
        assert!(error.reason.contains("consuming unit"), "{error}");
    }

    #[test]
    fn audit_event_is_record_accessed_with_emergency_basis() {
        let mapped = map("npo/audit-event.json", npo::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::NpoRecordAccessed(accessed)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(accessed.person, person("19121212-1212"));
        assert_eq!(accessed.producer_principal, "1280");
        assert_eq!(accessed.information_sets, ["GetCareDocumentation", "GetMedicationHistory"]);
        assert_eq!(accessed.basis, AccessBasis::Emergency);
    }

    #[test]
    fn role_csv_happy_file() {
        let mapped = npo::map_roles_csv(&fixture("npo-roles.csv")).unwrap();
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        assert_eq!(
            types(&events),
            [
                "se.sgd.npo.role.activated",
                "se.sgd.npo.role.activated",
                "se.sgd.npo.role.activated",
                "se.sgd.npo.role.deactivated"
            ]
        );
    }

    #[test]
    fn role_csv_broken_rows_are_reported_by_line_and_column() {
        let mapped = npo::map_roles_csv(&fixture("npo-roles-broken.csv")).unwrap();
        assert_eq!(validated(&mapped).len(), 1);
        let errors: Vec<(String, String)> =
            mapped.errors.iter().map(|e| (e.resource.clone(), e.field.clone())).collect();
        assert_eq!(
            errors,
            [
                ("line 3".into(), "time".into()),
                ("line 4".into(), "role".into()),
                ("line 5".into(), "action".into()),
                ("line 6".into(), "unit_kind".into())
            ]
        );
    }
}

mod sdk_mappings {
    use super::*;
    use sgd_schemas::events::sdk::DeliveryStatus;

    #[test]
    fn communication_is_message_sent() {
        let mapped = map("sdk/communication-sent.json", sdk::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::SdkMessageSent(sent)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(sent.message_id, "sdk-msg-1001");
        assert_eq!(sent.recipient_principal, "1283");
        assert_eq!(sent.recipient_address.as_deref(), Some("SE2120000829-FA12"));
        assert_eq!(sent.conversation_id.as_deref(), Some("conv-77"));
    }

    #[test]
    fn receipts_are_message_delivered_and_a_rejection_needs_its_code() {
        let mapped = map("sdk/receipts-bundle.json", sdk::map_fhir);
        let events = validated(&mapped);
        let [DomainEvent::SdkMessageDelivered(accepted), DomainEvent::SdkMessageDelivered(rejected)] =
            events.as_slice()
        else {
            panic!("{events:?}")
        };
        assert_eq!((accepted.message_id.as_str(), accepted.status), ("sdk-msg-1001", DeliveryStatus::Accepted));
        assert_eq!((rejected.message_id.as_str(), rejected.status), ("msg-1002", DeliveryStatus::Rejected));
        assert_eq!(rejected.error.as_ref().unwrap().code, "RECIPIENT_UNKNOWN");
        assert_eq!(mapped.errors.len(), 1);
        assert_eq!(mapped.errors[0].field, "Communication.statusReason");
    }

    #[test]
    fn address_csv_happy_and_bad_header() {
        let mapped = sdk::map_addresses_csv(&fixture("sdk-addresses.csv")).unwrap();
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        assert_eq!(types(&validated(&mapped)), ["se.sgd.sdk.address.published"; 2]);
        let error = sdk::map_addresses_csv(&fixture("sdk-addresses-bad-header.csv")).unwrap_err();
        assert!(error.to_string().contains("time,unit,function_address,unit_kind"), "{error}");
    }
}

mod plans_mappings {
    use super::*;
    use sgd_schemas::events::plans::{MeetingMode, PlanKind};

    #[test]
    fn a_completed_care_plan_is_created_and_closed() {
        let mapped = map("plans/careplan.json", plans::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::PlansPlanCreated(created), DomainEvent::PlansPlanClosed(closed)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!((created.plan_id.as_str(), created.kind), ("svu-2026-0815", PlanKind::Svu));
        assert_eq!(created.participants, ["12", "1280"]);
        assert_eq!(created.person, person("19121212-1212"));
        assert_eq!(closed.plan_id, "svu-2026-0815");
    }

    #[test]
    fn an_svu_encounter_is_notice_ready_and_discharged() {
        let mapped = map("plans/encounter-svu.json", plans::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        assert_eq!(
            types(&events),
            ["se.sgd.plans.admission.notified", "se.sgd.plans.discharge.ready", "se.sgd.plans.patient.discharged"]
        );
        let DomainEvent::PlansAdmissionNotified(notice) = &events[0] else { panic!() };
        assert_eq!(notice.plan_id, "svu-2026-0815");
        assert_eq!((notice.sent_at - notice.need_assessed_at).num_hours(), 26, "a late notice");
    }

    #[test]
    fn sip_meetings_withdrawals_and_an_encounter_without_a_plan() {
        let mapped = map("plans/encounter-bundle.json", plans::map_fhir);
        let events = validated(&mapped);
        assert_eq!(types(&events), ["se.sgd.plans.sip.held", "se.sgd.plans.discharge.withdrawn"]);
        let DomainEvent::PlansSipHeld(sip) = &events[0] else { panic!() };
        assert_eq!((sip.plan_id.as_str(), sip.mode), ("svu-2026-0815", MeetingMode::Video));
        assert_eq!(mapped.errors.len(), 1);
        assert_eq!(
            (mapped.errors[0].resource.as_str(), mapped.errors[0].field.as_str()),
            ("Encounter/enc-no-plan", "Encounter.episodeOfCare")
        );
    }
}

mod decision_mappings {
    use super::*;
    use sgd_schemas::events::decision::{Band, Recommendation};

    #[test]
    fn a_vital_signs_panel_is_an_assessment_and_a_raised_news2_score() {
        let mapped = map("decision/observation-vitals.json", decision::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::DecisionAssessmentCompleted(assessment), DomainEvent::DecisionScoreRaised(score)] =
            events.as_slice()
        else {
            panic!("{events:?}")
        };
        assert_eq!(assessment.recommendation, Recommendation::EmergencyDepartment);
        assert_eq!(assessment.vitals.as_ref().unwrap().temperature, Some(38.2));
        // RR 22 → 2, SpO2 95 → 1, air → 0, BP 105 → 1, pulse 95 → 1, A → 0, 38.2 → 1
        assert_eq!((score.score, score.band), (6, Band::Medium));
        assert_eq!(score.person, person("19121212-1212"));
    }

    #[test]
    fn scale_2_incomplete_panels_and_risk_flags() {
        let mapped = map("decision/scale2-bundle.json", decision::map_fhir);
        let events = validated(&mapped);
        assert_eq!(
            types(&events),
            ["se.sgd.decision.score.raised", "se.sgd.decision.risk.flagged", "se.sgd.decision.risk.acknowledged"]
        );
        // scale 2, SpO2 97 on oxygen → 3, oxygen → 2: a single 3 with total 5 is medium
        let DomainEvent::DecisionScoreRaised(score) = &events[0] else { panic!() };
        assert_eq!((score.score, score.band), (5, Band::Medium));
        let DomainEvent::DecisionRiskFlagged(flag) = &events[1] else { panic!() };
        assert_eq!(flag.primary_care_unit, "SE2321000255-VC77");
        assert_eq!(flag.setting.as_deref(), Some("emergency_department"));
        assert_eq!(mapped.errors.len(), 1);
        assert!(mapped.errors[0].reason.contains("spo2"), "{}", mapped.errors[0]);
    }
}

mod deviation_mappings {
    use super::*;
    use sgd_schemas::events::deviation::Actuality;

    #[test]
    fn an_adverse_event_is_logged_answered_analysed_and_closed() {
        let mapped = map("deviation/adverse-event.json", deviation::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        assert_eq!(
            types(&events),
            [
                "se.sgd.deviation.case.logged",
                "se.sgd.deviation.case.answered",
                "se.sgd.deviation.analysis.completed",
                "se.sgd.deviation.case.closed"
            ]
        );
        let DomainEvent::DeviationCaseLogged(logged) = &events[0] else { panic!() };
        assert_eq!(logged.concerned_principals, ["12", "1280"]);
        assert_eq!((logged.probability, logged.consequence, logged.actuality), (3, 3, Actuality::Actual));
        assert!(logged.requires_analysis());
    }

    #[test]
    fn history_csv_happy_and_broken() {
        let mapped = deviation::map_history_csv(&fixture("deviation-history.csv")).unwrap();
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        assert_eq!(validated(&mapped).len(), 5);
        let mapped = deviation::map_history_csv(&fixture("deviation-history-broken.csv")).unwrap();
        assert_eq!(validated(&mapped).len(), 1);
        let fields: Vec<&str> = mapped.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["concerned_principals", "probability", "answered_at", "actuality"]);
    }
}

mod video_mappings {
    use super::*;
    use sgd_schemas::events::video::{IdentificationMethod, MeetingPurpose};

    #[test]
    fn a_fulfilled_appointment_is_booked_admitted_and_held() {
        let mapped = map("video/appointment.json", video::map_fhir);
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        assert_eq!(
            types(&events),
            [
                "se.sgd.video.meeting.booked",
                "se.sgd.video.participant.admitted",
                "se.sgd.video.participant.admitted",
                "se.sgd.video.participant.admitted",
                "se.sgd.video.meeting.held"
            ]
        );
        let DomainEvent::VideoMeetingBooked(booked) = &events[0] else { panic!() };
        assert_eq!((booked.purpose, booked.plan_id.as_deref()), (MeetingPurpose::Sip, Some("svu-2026-0815")));
        assert_eq!(booked.principals, ["12", "1280"]);
        let DomainEvent::VideoParticipantAdmitted(last) = &events[3] else { panic!() };
        assert_eq!(last.method, IdentificationMethod::None);
        let DomainEvent::VideoMeetingHeld(held) = &events[4] else { panic!() };
        assert_eq!((held.duration_s, held.participants), (2700, 3));
    }
}

mod across_areas {
    use super::*;

    #[test]
    fn the_wrong_area_and_garbage_are_clear_errors() {
        let mapped = map("video/appointment.json", npo::map_fhir);
        assert!(mapped.drafts.is_empty());
        assert_eq!(mapped.errors[0].field, "Appointment.resourceType");
        assert!(mapped.errors[0].reason.contains("not mapped by the npo adapter"), "{}", mapped.errors[0]);
        assert!(fhir::map_input(b"not json", &pseudonymiser(), fhir::any_area).is_err());
        assert!(fhir::map_input(b"{\"id\": 1}", &pseudonymiser(), fhir::any_area).is_err());
    }

    #[test]
    fn a_bad_personal_number_is_an_error_that_does_not_repeat_it() {
        let text =
            String::from_utf8(fixture("npo/consent-given.json")).unwrap().replace("19121212-1212", "19121212-1213");
        let mapped = fhir::map_input(text.as_bytes(), &pseudonymiser(), fhir::any_area).unwrap();
        assert!(mapped.drafts.is_empty());
        assert_eq!(mapped.errors[0].field, "Consent.patient");
        assert!(mapped.errors[0].reason.contains("check digit"), "{}", mapped.errors[0]);
        assert!(!mapped.errors[0].to_string().contains("1213"));
    }

    #[test]
    fn every_type_of_the_catalogue_comes_from_a_documented_input() {
        let mut all = Mapped::default();
        for path in [
            "npo/consent-given.json",
            "npo/consent-bundle.json",
            "npo/audit-event.json",
            "sdk/communication-sent.json",
            "sdk/receipts-bundle.json",
            "plans/careplan.json",
            "plans/encounter-svu.json",
            "plans/encounter-bundle.json",
            "decision/observation-vitals.json",
            "decision/scale2-bundle.json",
            "deviation/adverse-event.json",
            "video/appointment.json",
        ] {
            all.extend(map(path, fhir::any_area));
        }
        all.extend(npo::map_roles_csv(&fixture("npo-roles.csv")).unwrap());
        all.extend(sdk::map_addresses_csv(&fixture("sdk-addresses.csv")).unwrap());
        all.extend(deviation::map_history_csv(&fixture("deviation-history.csv")).unwrap());
        all.drafts.push(sgd_adapters::publisher::heartbeat("fixtures-adapter"));
        let produced: BTreeSet<&str> = validated(&all).iter().map(DomainEvent::event_type).collect();
        let missing: Vec<&&str> = DomainEvent::TYPES.iter().filter(|t| !produced.contains(**t)).collect();
        assert!(missing.is_empty(), "no documented input produces {missing:?}");
    }

    #[test]
    fn the_same_input_twice_gives_the_same_event_ids() {
        let first: Vec<String> =
            map("video/appointment.json", fhir::any_area).drafts.into_iter().map(|d: Draft| d.id).collect();
        let second: Vec<String> =
            map("video/appointment.json", fhir::any_area).drafts.into_iter().map(|d| d.id).collect();
        assert_eq!(first, second);
    }
}

mod regressions {
    use super::*;

    /// Found by the simulator: an AuditEvent whose patient is a Bundle entry referenced by its
    /// `fullUrl` (`urn:uuid:…`) was refused as having no person.
    #[test]
    fn regression_audit_event_patient_referenced_by_bundle_full_url() {
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:0b8a3c1e-aaaa-4bbb-8ccc-000000000001",
                 "resource": {"resourceType": "Patient", "id": "x", "identifier": [{"system": fhir::PERSONNUMMER, "value": "199001012385"}]}},
                {"resource": {
                    "resourceType": "AuditEvent", "id": "a1", "recorded": "2026-03-03T14:02:11+01:00",
                    "agent": [{"who": {"identifier": {"system": fhir::HSA_ID, "value": "SE2321000255-ABC1"}}, "requestor": true}],
                    "source": {"observer": {"identifier": {"system": fhir::PRINCIPAL, "value": "12"}}},
                    "entity": [
                        {"what": {"reference": "urn:uuid:0b8a3c1e-aaaa-4bbb-8ccc-000000000001"},
                         "detail": [{"type": "information_set", "valueString": "GetCareDocumentation"}]}
                    ]
                }}
            ]
        });
        let mapped = fhir::map_value(&bundle, &pseudonymiser(), fhir::any_area).unwrap();
        assert!(mapped.errors.is_empty(), "{:?}", mapped.errors);
        let events = validated(&mapped);
        let [DomainEvent::NpoRecordAccessed(accessed)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(accessed.person, person("199001012385"));
    }
}
