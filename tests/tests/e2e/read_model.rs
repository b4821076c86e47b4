//! The read model end to end: a scenario published over NATS, the goals and follow-up checked
//! against numbers computed by hand, and a person's timeline behind role, consent and audit.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, HubProcess, InProcessHub, TestNats};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn ce(n: usize, principal: &str, event_type: &str, time: &str, data: Value) -> (String, Value) {
    let area = event_type.split('.').nth(2).unwrap();
    let event = json!({
        "specversion": "1.0", "id": format!("scenario-{n}"), "source": format!("/principals/{principal}/systems/scenario"),
        "type": event_type, "time": time, "principal": principal, "datacontenttype": "application/json", "data": data,
    });
    (format!("sgd.in.{principal}.{area}"), event)
}

fn scenario() -> Vec<(String, Value)> {
    let sets = json!(["GetCareDocumentation", "GetAlertInformation", "GetFunctionalStatus"]);
    let t = "2026-03-01T09:00:00+01:00";
    let items = vec![
        // NPÖ: 1280 both roles and the minimum; 1281 producer of one set; 12 loses its consumer
        (
            "1280",
            "se.sgd.npo.role.activated",
            t,
            json!({"unit": "SE2120001124-P", "role": "producer", "information_sets": sets}),
        ),
        ("1280", "se.sgd.npo.role.activated", t, json!({"unit": "SE2120001124-C", "role": "consumer"})),
        (
            "1281",
            "se.sgd.npo.role.activated",
            t,
            json!({"unit": "SE2120001173-P", "role": "producer", "information_sets": ["GetCareDocumentation"]}),
        ),
        (
            "12",
            "se.sgd.npo.role.activated",
            t,
            json!({"unit": "SE2321000255-P", "role": "producer", "information_sets": sets}),
        ),
        ("12", "se.sgd.npo.role.activated", t, json!({"unit": "SE2321000255-C", "role": "consumer"})),
        (
            "12",
            "se.sgd.npo.role.deactivated",
            "2026-04-01T09:00:00+02:00",
            json!({"unit": "SE2321000255-C", "role": "consumer"}),
        ),
        // SDK: two principals with an address
        (
            "1280",
            "se.sgd.sdk.address.published",
            t,
            json!({"unit": "SE2120001124-P", "function_address": "SE2120001124-FA1"}),
        ),
        (
            "1283",
            "se.sgd.sdk.address.published",
            t,
            json!({"unit": "SE2120001283-X", "function_address": "SE2120001283-FA1"}),
        ),
        // Mina Planer: p1 on time with a SIP before discharge, p2 late without SIP
        (
            "12",
            "se.sgd.plans.plan.created",
            t,
            json!({"plan_id": "p1", "kind": "svu", "person": A, "participants": ["12", "1280"]}),
        ),
        (
            "12",
            "se.sgd.plans.admission.notified",
            t,
            json!({"plan_id": "p1", "need_assessed_at": "2026-03-01T08:00:00+01:00", "sent_at": "2026-03-01T09:00:00+01:00"}),
        ),
        (
            "1280",
            "se.sgd.plans.sip.held",
            "2026-03-03T09:00:00+01:00",
            json!({"plan_id": "p1", "held_at": "2026-03-03T09:00:00+01:00", "mode": "video"}),
        ),
        (
            "12",
            "se.sgd.plans.patient.discharged",
            "2026-03-05T09:00:00+01:00",
            json!({"plan_id": "p1", "discharged_at": "2026-03-05T09:00:00+01:00"}),
        ),
        ("12", "se.sgd.plans.plan.created", t, json!({"plan_id": "p2", "kind": "svu", "person": B})),
        (
            "12",
            "se.sgd.plans.admission.notified",
            t,
            json!({"plan_id": "p2", "need_assessed_at": "2026-02-27T08:00:00+01:00", "sent_at": "2026-03-01T09:00:00+01:00"}),
        ),
        (
            "12",
            "se.sgd.plans.patient.discharged",
            "2026-03-06T09:00:00+01:00",
            json!({"plan_id": "p2", "discharged_at": "2026-03-06T09:00:00+01:00"}),
        ),
        // Decision support: A's medium score is followed by p1's creation within 48 h; B's high score is not
        (
            "1280",
            "se.sgd.decision.assessment.completed",
            "2026-02-28T10:00:00+01:00",
            json!({"person": A, "assessment_id": "a1", "recommendation": "stay_home"}),
        ),
        (
            "1280",
            "se.sgd.decision.score.raised",
            "2026-02-28T10:00:00+01:00",
            json!({"person": A, "assessment_id": "a1", "scale": "news2", "score": 5, "band": "medium"}),
        ),
        (
            "1280",
            "se.sgd.decision.score.raised",
            "2026-03-10T10:00:00+01:00",
            json!({"person": B, "assessment_id": "a2", "scale": "news2", "score": 8, "band": "high"}),
        ),
        // Deviations: d1 answered in 3 days, d2 never
        (
            "1283",
            "se.sgd.deviation.case.logged",
            t,
            json!({"deviation_id": "d1", "concerned_principals": ["12"], "category": "handover", "actuality": "actual", "probability": 1, "consequence": 1}),
        ),
        (
            "12",
            "se.sgd.deviation.case.answered",
            "2026-03-04T09:00:00+01:00",
            json!({"deviation_id": "d1", "answered_by": "12"}),
        ),
        (
            "1283",
            "se.sgd.deviation.case.logged",
            t,
            json!({"deviation_id": "d2", "concerned_principals": ["12"], "category": "handover", "actuality": "actual", "probability": 1, "consequence": 1}),
        ),
        // Video: m1 strongly identified, m2 not
        (
            "1290",
            "se.sgd.video.meeting.booked",
            t,
            json!({"meeting_id": "m1", "purpose": "sip", "principals": ["1290", "12"]}),
        ),
        ("1290", "se.sgd.video.participant.admitted", t, json!({"meeting_id": "m1", "method": "siths"})),
        ("1290", "se.sgd.video.participant.admitted", t, json!({"meeting_id": "m1", "method": "bankid"})),
        ("1290", "se.sgd.video.meeting.held", t, json!({"meeting_id": "m1", "duration_s": 1200, "participants": 2})),
        (
            "1290",
            "se.sgd.video.meeting.booked",
            t,
            json!({"meeting_id": "m2", "purpose": "consultation", "principals": ["1290"]}),
        ),
        ("1290", "se.sgd.video.participant.admitted", t, json!({"meeting_id": "m2", "method": "none"})),
        ("1290", "se.sgd.video.meeting.held", t, json!({"meeting_id": "m2", "duration_s": 600, "participants": 1})),
    ];
    items.into_iter().enumerate().map(|(n, (p, ty, time, data))| ce(n, p, ty, time, data)).collect()
}

async fn publish(js: &async_nats::jetstream::Context, subject: &str, event: &Value) -> Result<()> {
    let msg_id = format!("{}/{}", event["source"].as_str().unwrap(), event["id"].as_str().unwrap());
    super::publish_raw(js, subject, &msg_id, serde_json::to_vec(event)?).await
}

/// Person A's timeline in the scenario (with A's consent), in time order.
const TIMELINE_OF_A: [&str; 7] = [
    "se.sgd.decision.assessment.completed",
    "se.sgd.decision.score.raised",
    "se.sgd.npo.consent.given",
    "se.sgd.plans.plan.created",
    "se.sgd.plans.admission.notified",
    "se.sgd.plans.sip.held",
    "se.sgd.plans.patient.discharged",
];

#[tokio::test]
async fn goals_follow_up_and_timeline_match_a_hand_computed_scenario() -> Result<()> {
    let nats = TestNats::start().await?;
    // Exact numbers: small-count suppression off here (tested on its own below).
    let hub = InProcessHub::start(&nats.url(), |c| c.privacy_threshold = 0).await?;
    let js = nats.jetstream().await?;
    let events = scenario();
    for (subject, event) in &events {
        publish(&js, subject, event).await?;
    }
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("").await? == events.len() as u64) }).await?;

    let goals = analyst.get_json("/api/v1/goals?as_of=2026-06-30").await?;
    let got = |id: &str| {
        let g = goals["goals"].as_array().unwrap().iter().find(|g| g["id"] == id).unwrap_or_else(|| panic!("{id}"));
        (g["numerator"].as_u64().unwrap(), g["denominator"].as_u64().unwrap())
    };
    assert_eq!(got("npo.both_roles"), (1, 34), "{goals}"); // 1280 (12 lost its consumer)
    assert_eq!(got("npo.minimum_sets"), (2, 34)); // 1280, 12
    assert_eq!(got("sdk.access"), (2, 34));
    assert_eq!(got("plans.connected"), (2, 34)); // 12 and 1280 (sip.held)
    assert_eq!(got("plans.admission_notice_24h"), (1, 2));
    assert_eq!(got("plans.sip_before_discharge"), (1, 2));
    assert_eq!(got("decision.digital"), (1, 34));
    assert_eq!(got("decision.warnings_followed_up"), (1, 2));
    assert_eq!(got("deviation.answered_in_time"), (1, 2));
    assert_eq!(got("video.adoption"), (1, 34));
    assert_eq!(got("video.strong_identification"), (1, 2));
    // before 12 deactivated its consumer, it had both roles
    let march = analyst.get_json("/api/v1/goals?as_of=2026-03-15").await?;
    let both = march["goals"].as_array().unwrap().iter().find(|g| g["id"] == "npo.both_roles").unwrap().clone();
    assert_eq!(both["numerator"], 2);

    let open = analyst.get_json("/api/v1/followup/open?as_of=2026-06-30").await?;
    let cases: Vec<String> = open["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["rule"].as_str().unwrap(),
                c["principal"].as_str().unwrap(),
                c["case_id"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "late_notice 12 p2",
        "svu_without_sip 12 p2",
        "open_warning 1280 a2",
        "overdue_deviation 1283 d2",
        "not_strongly_identified 1290 m2",
    ] {
        assert!(cases.contains(&expected.to_string()), "{expected} missing from {cases:?}");
    }
    assert_eq!(cases.len(), 5, "{cases:?}");
    let summary = analyst.get_json("/api/v1/followup/summary?as_of=2026-06-30").await?;
    let malmo = summary["principals"].as_array().unwrap().iter().find(|p| p["principal"] == "1280").unwrap().clone();
    assert_eq!(malmo["cases"]["open_warning"], 1);
    assert_eq!(malmo["discharge_episodes"], 0); // p1 has no ready-for-discharge date
    let adoption = analyst.get_json("/api/v1/adoption").await?;
    let p1280 = adoption["principals"].as_array().unwrap().iter().find(|p| p["principal"] == "1280").unwrap().clone();
    assert_eq!(p1280["name"], "Malmö");
    assert_eq!(p1280["areas"]["npo"]["units"], json!(["SE2120001124-C", "SE2120001124-P"]));
    assert_eq!(p1280["areas"]["npo"]["events"], 2);

    // A person's timeline: coordinators only, with a consent, every read audited.
    let coordinator = hub.api(Role::Coordinator, Some("1280"))?;
    let path = format!("/api/v1/persons/{A}/timeline");
    let refused = coordinator.get(&path).await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await?["error"], "no_consent");
    assert_eq!(analyst.get(&path).await?.status(), 403);
    let (subject, consent) = ce(
        900,
        "1280",
        "se.sgd.npo.consent.given",
        "2026-03-01T08:00:00+01:00",
        json!({"person": A, "consumer_unit": "SE2120001124-C", "scope": "care_documentation"}),
    );
    publish(&js, &subject, &consent).await?;
    wait_until(Duration::from_secs(20), || async { Ok(coordinator.get(&path).await?.status() == 200) }).await?;
    let timeline = coordinator.get_json(&path).await?;
    let types: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, TIMELINE_OF_A, "{timeline}");
    assert_eq!(coordinator.get("/api/v1/persons/19121212-1212/timeline").await?.status(), 400);

    let operator = hub.api(Role::Operator, None)?;
    let audit = operator.get_json("/api/v1/audit?limit=100").await?;
    let items = audit["items"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> =
        items.iter().map(|i| (i["role"].as_str().unwrap(), i["outcome"].as_str().unwrap())).collect();
    assert!(outcomes.contains(&("coordinator", "allowed")), "{audit}");
    assert!(outcomes.contains(&("coordinator", "refused")), "{audit}");
    assert!(outcomes.contains(&("analyst", "refused")), "{audit}");
    assert!(items.iter().all(|i| i["person"] == A || i["person"] == "(not a pseudonym)"), "{audit}");
    assert!(!sgd_schemas::pii::contains(&audit.to_string()), "{audit}");
    assert_eq!(analyst.get("/api/v1/audit").await?.status(), 403);
    // the audit stream refuses deletes
    let stream = js.get_stream("SGD_AUDIT").await?;
    assert!(stream.delete_message(1).await.is_err(), "an audit record could be deleted");

    // A second hub with an empty read model replays the log and gives the same answers.
    let rebuilt = InProcessHub::start(&nats.url(), |c| c.privacy_threshold = 0).await?;
    let again = rebuilt.api(Role::Analyst, None)?;
    let expected = analyst.usage_total("").await?;
    wait_until(Duration::from_secs(20), || async { Ok(again.usage_total("").await? == expected) }).await?;
    assert_same_answers_after_rebuild(&again, &analyst).await?;
    rebuilt.stop().await?;
    hub.stop().await
}

/// The applied identities and the persons' timelines leave memory for sorted runs on disk (here
/// after a handful of each): retries past the log's duplicate window are still skipped, a
/// timeline read from the views and the runs together is whole and in order, and a hub rebuilt
/// from the log (handing over at other moments) answers the same.
#[tokio::test]
async fn identities_and_timelines_on_disk_keep_answers_exact() -> Result<()> {
    let nats = TestNats::start().await?;
    let small = |c: &mut sgd_hub::config::HubConfig| {
        c.privacy_threshold = 0;
        c.dedup_window_secs = 1;
        c.identities_in_memory = 3;
        c.timeline_entries_in_memory = 2;
    };
    let hub = InProcessHub::start(&nats.url(), small).await?;
    let js = nats.jetstream().await?;
    let mut events = scenario();
    events.push(ce(
        900,
        "1280",
        "se.sgd.npo.consent.given",
        "2026-03-01T08:00:00+01:00",
        json!({"person": A, "consumer_unit": "SE2120001124-C", "scope": "care_documentation"}),
    ));
    for (subject, event) in &events {
        publish(&js, subject, event).await?;
    }
    let analyst = hub.api(Role::Analyst, None)?;
    let total = events.len() as u64;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("").await? == total) }).await?;
    // Every event again, past the log's one-second duplicate window: the log takes them, the
    // projection must skip each one (most of their identities are on disk by now).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (subject, event) in &events {
        publish(&js, subject, event).await?;
    }
    // Acknowledged by the ingress stream; the validator moves each to the log a moment later.
    let in_log =
        || async { Ok::<u64, anyhow::Error>(js.get_stream("SGD_EVENTS").await?.info().await?.state.last_sequence) };
    wait_until(Duration::from_secs(20), || async { Ok(in_log().await? >= 2 * total) }).await?;
    let log_last = in_log().await?;
    assert_eq!(log_last, 2 * total, "the log should hold the retries past its window");
    let operator = hub.api(Role::Operator, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(super::faults::checkpoint(&operator).await? >= log_last) })
        .await?;
    assert_eq!(analyst.usage_total("").await?, total, "a retry past the duplicate window was counted again");
    let files = |dir: &str| -> Result<usize> {
        let path = hub.config.data_dir.join("read-model").join(dir);
        Ok(std::fs::read_dir(&path).with_context(|| format!("{}", path.display()))?.count())
    };
    assert!(files("identities")? > 0 && files("timelines")? > 0, "nothing was handed over to disk");

    let coordinator = hub.api(Role::Coordinator, Some("1280"))?;
    let path = format!("/api/v1/persons/{A}/timeline");
    let timeline = coordinator.get_json(&path).await?;
    let types: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, TIMELINE_OF_A, "{timeline}");

    let rebuilt = InProcessHub::start(&nats.url(), |c| {
        small(c);
        c.identities_in_memory = 5;
        c.timeline_entries_in_memory = 3;
    })
    .await?;
    let again = rebuilt.api(Role::Analyst, None)?;
    let rebuilt_operator = rebuilt.api(Role::Operator, None)?;
    wait_until(Duration::from_secs(20), || async {
        Ok(super::faults::checkpoint(&rebuilt_operator).await? >= log_last)
    })
    .await?;
    assert_same_answers_after_rebuild(&again, &analyst).await?;
    let coordinator_again = rebuilt.api(Role::Coordinator, Some("1280"))?;
    let entries = |t: &Value| t["entries"].clone();
    assert_eq!(entries(&coordinator_again.get_json(&path).await?), entries(&timeline));
    rebuilt.stop().await?;
    hub.stop().await
}

#[tokio::test]
async fn small_counts_about_persons_are_suppressed_with_the_cell_that_would_reveal_them() -> Result<()> {
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?; // default threshold: 5
    let js = nats.jetstream().await?;
    let t = "2026-03-02T09:00:00+01:00";
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(("1280", "se.sgd.plans.plan.closed", json!({"plan_id": format!("p{i}")})));
    }
    for i in 0..8 {
        events.push((
            "1281",
            "se.sgd.npo.role.activated",
            json!({"unit": format!("SE2120001173-U{i}"), "role": "consumer"}),
        ));
    }
    for i in 0..20 {
        events.push((
            "1283",
            "se.sgd.npo.role.activated",
            json!({"unit": format!("SE2120001283-U{i}"), "role": "consumer"}),
        ));
    }
    for (n, (principal, event_type, data)) in events.iter().enumerate() {
        let (subject, event) = ce(n, principal, event_type, t, data.clone());
        publish(&js, &subject, &event).await?;
    }
    let analyst = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(20), || async { Ok(analyst.usage_total("").await? == 31) }).await?;
    let usage = analyst.get_json("/api/v1/usage").await?;
    let row = |principal: &str| {
        usage["rows"].as_array().unwrap().iter().find(|r| r["principal"] == principal).unwrap().clone()
    };
    assert_eq!(row("1280")["count"], Value::Null, "{usage}"); // 3 plans: about persons, below 5
    assert_eq!(row("1280")["suppressed"], true);
    assert_eq!(row("1281")["count"], Value::Null, "{usage}"); // 8 roles: would reveal the 3 from the total
    assert_eq!(row("1283")["count"], 20);
    assert_eq!(usage["total"], 31);
    let csv = analyst.get("/api/v1/usage?format=csv").await?.text().await?;
    assert!(csv.contains(",1280,<5"), "{csv}");
    hub.stop().await
}

/// The views are written every few seconds, not every batch: a hub killed before it wrote them
/// replays the log into them at start and answers exactly as a clean rebuild does.
#[tokio::test]
async fn a_hub_killed_before_its_views_were_written_answers_like_a_clean_rebuild() -> Result<()> {
    let nats = TestNats::start().await?;
    let dir = tempfile::tempdir()?;
    let (_, mut hub, logged) =
        hub_given_the_scenario(&nats, dir.path(), "views_flush_ms = 600000\nprivacy_threshold = 0\n").await?;
    // Sled writes the checkpoint to disk every FLUSH_EVERY_MS (the views only every 10 min here):
    // after several of those the restart has a stretch of the log to replay into the views.
    tokio::time::sleep(Duration::from_millis(10 * sgd_hub::store::read_model::FLUSH_EVERY_MS)).await;
    hub.kill();
    hub.restart().await?;
    let rebuilt = InProcessHub::start(&nats.url(), |c| c.privacy_threshold = 0).await?;
    let clean = rebuilt.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(30), || async { Ok(clean.usage_total("").await? == logged) }).await?;
    let restarted = hub.api(Role::Analyst, None)?;
    for path in [
        "/api/v1/goals?as_of=2026-06-30",
        "/api/v1/followup/summary?as_of=2026-06-30",
        "/api/v1/followup/open?as_of=2026-06-30",
    ] {
        let after_crash = restarted.get_json(path).await?;
        assert_eq!(after_crash, clean.get_json(path).await?, "{path} differs after a crash");
    }
    let goals = restarted.get_json("/api/v1/goals?as_of=2026-06-30").await?;
    assert!(goals["goals"].as_array().unwrap().iter().any(|g| g["numerator"].as_u64().unwrap_or(0) > 0), "{goals}");
    // The replayed views are written at once: killed again, the hub would not replay that stretch
    // again. (Where the replay ended depends on how much of the first hub's last batches sled had
    // flushed when it was killed; the batches after it are projected live and written later.)
    let replayed_to = wait_for_view_replay(&hub).await?;
    let operator = hub.api(Role::Operator, None)?;
    wait_until(Duration::from_secs(30), || async { Ok(operator.stored_views_sequence().await? >= replayed_to) })
        .await?;
    hub.kill();
    let dir = sgd_hub::store::read_model::ModelDirs::new(&hub.data_dir).serving();
    let model = sgd_hub::store::read_model::ReadModel::open(&dir)?;
    assert!(model.views_sequence()? >= replayed_to, "the replayed views were not written");
    rebuilt.stop().await
}

/// The goals and the follow-up summary are counted with the follow-up limits: a hub restarted with
/// other limits counts its aggregates again from the stored cases and answers as a clean rebuild
/// with those limits does.
#[tokio::test]
async fn a_hub_restarted_with_other_follow_up_limits_answers_as_a_rebuild_with_them() -> Result<()> {
    let nats = TestNats::start().await?;
    let dir = tempfile::tempdir()?;
    // Views written with every batch: stored with the default limits before the restart.
    let settings = "privacy_threshold = 0\nviews_flush_ms = 0\n";
    let (config, mut hub, logged) = hub_given_the_scenario(&nats, dir.path(), settings).await?;
    let analyst = hub.api(Role::Analyst, None)?;
    let summary = "/api/v1/followup/summary?as_of=2026-06-30";
    let before = analyst.get_json(summary).await?;
    let operator = hub.api(Role::Operator, None)?;
    wait_until(Duration::from_secs(30), || async { Ok(operator.stored_views_sequence().await? >= logged) }).await?;

    let limits = "[followup]\nreceipt_hours = 1\ndeviation_answer_days = 1\nrisk_acknowledge_days = 1\n\
                  admission_notice_hours = 1\npayment_threshold_days = 0\nwarning_follow_up_hours = 1\n";
    std::fs::write(&config, format!("{settings}{limits}"))?;
    hub.restart().await?;
    let counted_again = || {
        hub.log().lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).any(|line| {
            let fields = &line["fields"];
            fields["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the goals' and follow-up aggregates were counted"))
                && fields["records"].as_u64().is_some_and(|records| records > 0)
        })
    };
    assert!(counted_again(), "no line says the aggregates were counted again; log:\n{}", hub.log());
    let restarted = hub.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(30), || async { Ok(restarted.usage_total("").await? == logged) }).await?;
    let rebuilt = InProcessHub::start(&nats.url(), |c| {
        c.privacy_threshold = 0;
        c.followup = sgd_hub::projections::followup::FollowupLimits {
            receipt_hours: 1,
            deviation_answer_days: 1,
            risk_acknowledge_days: 1,
            admission_notice_hours: 1,
            payment_threshold_days: 0,
            warning_follow_up_hours: 1,
            ..Default::default()
        };
    })
    .await?;
    let clean = rebuilt.api(Role::Analyst, None)?;
    wait_until(Duration::from_secs(30), || async { Ok(clean.usage_total("").await? == logged) }).await?;
    assert_same_answers_after_rebuild(&clean, &restarted).await?;
    let after = restarted.get_json(summary).await?;
    assert_ne!(after["principals"], before["principals"], "the new limits changed nothing: {after}");
    assert_eq!(after["limits"]["receipt_hours"], 1);
    hub.kill();
    rebuilt.stop().await
}

/// A hub process with the configuration `settings` (written to `<dir>/hub.toml`, returned for a
/// restart with other settings), given the hand-computed scenario over NATS and waited for until
/// it counted every event (how many, also returned).
async fn hub_given_the_scenario(
    nats: &TestNats,
    dir: &std::path::Path,
    settings: &str,
) -> Result<(std::path::PathBuf, HubProcess, u64)> {
    let config = dir.join("hub.toml");
    std::fs::write(&config, settings)?;
    let args = ["--config", config.to_str().context("a temporary path is text")?, "--log-format", "json"];
    let hub = HubProcess::start(&nats.url(), &args).await?;
    let js = nats.jetstream().await?;
    let events = scenario();
    for (subject, event) in &events {
        publish(&js, subject, event).await?;
    }
    let analyst = hub.api(Role::Analyst, None)?;
    let logged = events.len() as u64;
    wait_until(Duration::from_secs(30), || async { Ok(analyst.usage_total("").await? == logged) }).await?;
    Ok((config, hub, logged))
}

/// The log sequence up to which a restarted hub replayed its views (from its JSON log), after
/// checking that there was something to replay.
async fn wait_for_view_replay(hub: &HubProcess) -> Result<u64> {
    let replay = || {
        hub.log().lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).find(|line| {
            line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("replaying the log into the views"))
        })
    };
    wait_until(Duration::from_secs(30), || async { Ok(replay().is_some()) })
        .await
        .with_context(|| format!("the restarted hub did not replay its views; log:\n{}", hub.log()))?;
    let fields = &replay().context("the replay line")?["fields"];
    let (from, to) = (fields["from"].as_u64().unwrap_or(u64::MAX), fields["to"].as_u64().unwrap_or(0));
    assert!(from < to, "nothing was replayed: {fields}");
    Ok(to)
}

/// `rebuilt` answers goals, follow-up and monthly usage as `original` does.
async fn assert_same_answers_after_rebuild(rebuilt: &sgd_tests::Api, original: &sgd_tests::Api) -> Result<()> {
    for path in [
        "/api/v1/goals?as_of=2026-06-30",
        "/api/v1/followup/summary?as_of=2026-06-30",
        "/api/v1/followup/open?as_of=2026-06-30",
        "/api/v1/usage?bucket=month",
    ] {
        assert_eq!(rebuilt.get_json(path).await?, original.get_json(path).await?, "{path} differs after a rebuild");
    }
    Ok(())
}
