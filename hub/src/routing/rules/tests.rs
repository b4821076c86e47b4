//! Given (earlier events) / when (an event) / then (its recipients), without I/O.

use serde_json::json;
use sgd_schemas::events::DomainEvent;

use super::{route, Routing};
use crate::routing::RoutingState;

fn event(event_type: &str, data: serde_json::Value) -> DomainEvent {
    DomainEvent::decode(event_type, data).expect("a valid event")
}

/// Applies `given` (principal, event) in order, then returns where `when` goes.
fn routing(given: &[(&str, DomainEvent)], when: (&str, DomainEvent)) -> (Option<Routing>, RoutingState) {
    let mut state = RoutingState::default();
    for (principal, e) in given {
        route(&mut state, principal, e).expect("no store to fail");
    }
    let routed = route(&mut state, when.0, &when.1).expect("no store to fail");
    (routed, state)
}

fn recipients(routed: Option<Routing>) -> Vec<String> {
    routed.expect("a rule applies").recipients
}

fn unit_of(unit: &str) -> DomainEvent {
    event("se.sgd.npo.role.activated", json!({"unit": unit, "role": "consumer"}))
}

fn risk_flag(unit: &str) -> DomainEvent {
    event(
        "se.sgd.decision.risk.flagged",
        json!({"person": "p1", "flag_id": "f1", "primary_care_unit": unit, "setting": "emergency_department"}),
    )
}

fn plan(plan_id: &str, person: &str, participants: &[&str]) -> DomainEvent {
    event(
        "se.sgd.plans.plan.created",
        json!({"plan_id": plan_id, "kind": "svu", "person": person, "participants": participants}),
    )
}

fn score(person: &str, band: &str) -> DomainEvent {
    event(
        "se.sgd.decision.score.raised",
        json!({"person": person, "assessment_id": "a1", "scale": "news2", "score": 6, "band": band}),
    )
}

#[test]
fn a_risk_flag_goes_to_the_principal_of_the_primary_care_unit_not_the_sender() {
    let given = [("1283", unit_of("SE2120001283-VC1")), ("1281", unit_of("SE2120001281-VC1"))];
    let (routed, _) = routing(&given, ("1280", risk_flag("SE2120001283-VC1")));
    assert_eq!(recipients(routed), ["1283"]);
}

#[test]
fn a_unit_introduced_by_an_sdk_address_counts_too() {
    let address =
        event("se.sgd.sdk.address.published", json!({"unit": "SE2120001283-VC2", "function_address": "vc2@1283"}));
    let (routed, _) = routing(&[("1283", address)], ("12", risk_flag("SE2120001283-VC2")));
    assert_eq!(recipients(routed), ["1283"]);
}

#[test]
fn a_risk_flag_for_an_unknown_unit_is_unresolved_not_sent_anywhere() {
    let (routed, _) = routing(&[], ("1280", risk_flag("SE2120009999-X")));
    let routed = routed.expect("the rule applies");
    assert_eq!(routed.rule, "risk_flag_to_primary_care");
    assert!(routed.recipients.is_empty());
}

#[test]
fn deviation_events_go_to_every_concerned_principal_until_closed() {
    let logged = event(
        "se.sgd.deviation.case.logged",
        json!({"deviation_id": "d1", "concerned_principals": ["12", "1280", "1280"], "category": "discharge",
               "actuality": "actual", "probability": 2, "consequence": 2}),
    );
    let (routed, mut state) = routing(&[], ("1280", logged));
    assert_eq!(recipients(routed), ["12", "1280"]);
    let answered = event("se.sgd.deviation.case.answered", json!({"deviation_id": "d1", "answered_by": "12"}));
    assert_eq!(recipients(route(&mut state, "12", &answered).unwrap()), ["12", "1280"]);
    let closed = event("se.sgd.deviation.case.closed", json!({"deviation_id": "d1"}));
    assert_eq!(recipients(route(&mut state, "1280", &closed).unwrap()), ["12", "1280"]);
    assert!(state.deviations.is_empty(), "a closed deviation is forgotten");
}

#[test]
fn a_message_goes_to_its_recipient_and_its_receipt_to_the_sender() {
    let sent = event("se.sgd.sdk.message.sent", json!({"message_id": "m1", "recipient_principal": "1281"}));
    let (routed, mut state) = routing(&[], ("1280", sent));
    assert_eq!(recipients(routed), ["1281"]);
    let delivered = event(
        "se.sgd.sdk.message.delivered",
        json!({"message_id": "m1", "status": "accepted", "received_at": "2026-03-01T10:00:00+01:00"}),
    );
    assert_eq!(recipients(route(&mut state, "1281", &delivered).unwrap()), ["1280"]);
    assert!(state.messages.is_empty());
}

#[test]
fn plan_events_go_to_the_participants_and_a_closed_plan_is_forgotten() {
    let (routed, mut state) = routing(&[], ("12", plan("pl1", "p1", &["12", "1280"])));
    assert_eq!(recipients(routed), ["12", "1280"]);
    let ready =
        event("se.sgd.plans.discharge.ready", json!({"plan_id": "pl1", "ready_at": "2026-03-01T10:00:00+01:00"}));
    assert_eq!(recipients(route(&mut state, "12", &ready).unwrap()), ["12", "1280"]);
    let closed = event("se.sgd.plans.plan.closed", json!({"plan_id": "pl1"}));
    assert_eq!(recipients(route(&mut state, "12", &closed).unwrap()), ["12", "1280"]);
    assert!(state.plans.is_empty() && state.person_plans.is_empty());
}

#[test]
fn a_medium_or_high_score_goes_to_the_participants_of_the_persons_open_plans_only() {
    let given = [
        ("12", plan("pl1", "p1", &["12", "1280"])),
        ("12", plan("pl2", "p1", &["1281"])),
        ("12", plan("pl3", "p2", &["1290"])),
        ("12", event("se.sgd.plans.plan.closed", json!({"plan_id": "pl2"}))),
    ];
    let (routed, mut state) = routing(&given, ("1280", score("p1", "high")));
    assert_eq!(recipients(routed), ["12", "1280"], "not 1281 (plan closed), not 1290 (another person)");
    assert_eq!(recipients(route(&mut state, "1280", &score("p1", "medium")).unwrap()), ["12", "1280"]);
    assert_eq!(route(&mut state, "1280", &score("p1", "low_medium")).unwrap(), None, "low bands go to no one");
    assert_eq!(recipients(route(&mut state, "1280", &score("p9", "high")).unwrap()), Vec::<String>::new());
}

#[test]
fn a_meeting_goes_to_its_principals_when_booked_and_held() {
    let booked = event(
        "se.sgd.video.meeting.booked",
        json!({"meeting_id": "v1", "purpose": "sip", "principals": ["1283", "12"]}),
    );
    let (routed, mut state) = routing(&[], ("12", booked));
    assert_eq!(recipients(routed), ["12", "1283"]);
    let held = event("se.sgd.video.meeting.held", json!({"meeting_id": "v1", "duration_s": 600, "participants": 3}));
    assert_eq!(recipients(route(&mut state, "12", &held).unwrap()), ["12", "1283"]);
    assert!(state.meetings.is_empty());
}

#[test]
fn person_level_events_without_a_rule_go_to_no_one() {
    let consent = event(
        "se.sgd.npo.consent.given",
        json!({"person": "p1", "consumer_unit": "SE2321000255-A", "scope": "care_documentation"}),
    );
    assert_eq!(routing(&[], ("12", consent)).0, None);
    let assessment = event(
        "se.sgd.decision.assessment.completed",
        json!({"person": "p1", "assessment_id": "a1", "recommendation": "stay_home"}),
    );
    assert_eq!(routing(&[], ("1280", assessment)).0, None);
}
