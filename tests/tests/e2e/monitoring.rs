//! Monitoring (issue 24): the Prometheus alert rules (`deploy/prometheus/alerts.yml`) and the
//! Grafana dashboard (`deploy/grafana/sgd-hub.json`) name only metrics, and labels, that a
//! running hub exports at `GET /metrics`.
//!
//! The names come from a scrape of the `hub` binary after it took every valid example. A family
//! whose series are made only when something happens (an adapter's heartbeat, a routed copy, a
//! webhook delivery) and that the run did not make is taken from the hub's own metrics registry
//! with one series of it made; the test prints which those were.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use sgd_hub::tokens::Role;
use sgd_tests::{HubProcess, TestNats};

/// Labels Prometheus itself adds to every series (from the scrape) or that histograms have.
const ADDED_BY_PROMETHEUS: &[&str] = &["instance", "job", "le"];
/// Series Prometheus makes itself.
const PROMETHEUS_SERIES: &[&str] = &["up"];

/// What a scrape holds: each sample name (`…_total`, `…_bucket`, …) with the labels seen on it.
/// A family without series yet (a webhook figure before any subscription) still has its `# TYPE`
/// line, so its sample names are known, its labels not.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else { continue };
            let names: Vec<String> = match kind {
                "counter" if name.ends_with("_total") => vec![name.into()],
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect(),
                _ => vec![name.into()],
            };
            for name in names {
                out.entry(name).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let labels = out.entry(name.into()).or_default();
            if let Some((_, rest)) = line.split_once('{') {
                let inside = rest.split_once('}').map(|(i, _)| i).unwrap_or_default();
                for pair in inside.split(',').filter(|p| !p.is_empty()) {
                    labels.insert(pair.split('=').next().unwrap_or_default().trim().to_string());
                }
            }
        }
    }
    out
}

/// Every `sgd_…` series named in `text`, with the label names of the selector right after it.
fn named(text: &str) -> Vec<(String, Vec<String>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(found) = text[i..].find("sgd_") {
        let start = i + found;
        let word_before = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        i = end;
        if word_before {
            continue;
        }
        let mut labels = Vec::new();
        if bytes.get(end) == Some(&b'{') {
            let inside = text[end + 1..].split('}').next().unwrap_or_default();
            for matcher in inside.split(',') {
                let label = matcher.split(['=', '!', '~']).next().unwrap_or_default().trim();
                if !label.is_empty() {
                    labels.push(label.to_string());
                }
            }
        }
        out.push((text[start..end].to_string(), labels));
    }
    out
}

/// The hub's metrics registry with one series of every family that has labels, rendered.
fn registry_with_every_family() -> String {
    use sgd_hub::metrics::{AdapterLabels, HttpLabels, Metrics, RuleLabels, SubscriptionLabels};
    let metrics = Metrics::default();
    let subscription = SubscriptionLabels { subscription: "wh-test".into(), principal: "1280".into() };
    let rule = RuleLabels { rule: "test".into() };
    let _ =
        metrics.adapter_heartbeat_age.get_or_create(&AdapterLabels { principal: "1280".into(), adapter: "a".into() });
    let _ = metrics.http_seconds.get_or_create(&HttpLabels { method: "GET".into(), route: "/".into(), status: 200 });
    let _ = metrics.routed.get_or_create(&rule);
    let _ = metrics.routing_unresolved.get_or_create(&rule);
    let _ = metrics.webhook_deliveries.get_or_create(&subscription);
    let _ = metrics.webhook_failures.get_or_create(&subscription);
    let _ = metrics.webhook_parked.get_or_create(&subscription);
    let _ = metrics.webhook_lag_events.get_or_create(&subscription);
    let _ = metrics.webhook_lag_seconds.get_or_create(&subscription);
    let _ = metrics.webhook_last_error_time.get_or_create(&subscription);
    metrics.render()
}

/// Every PromQL expression of the dashboard (targets and template queries), with where it is.
fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((format!("panel {:?}", panel["title"]), target["expr"].as_str().unwrap_or_default().to_string()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push((format!("variable {:?}", variable["name"]), query.to_string()));
        }
    }
    out
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported() -> Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let alerts = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))?;
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{root}/deploy/grafana/sgd-hub.json"))?)
            .context("the dashboard is not JSON")?;

    // The hub binary's own scrape, after it took every valid example and answered a request (so
    // the HTTP histogram has a series and its labels are known).
    let nats = TestNats::start().await?;
    let hub = HubProcess::start(&nats.url(), &[]).await?;
    let operator = hub.api(Role::Operator, None)?;
    let published = super::containers::publish_examples(&nats.jetstream().await?).await?;
    super::faults::wait_for_total(&operator, published, std::time::Duration::from_secs(30), || hub.log()).await?;
    let response = operator.get("/metrics").await?;
    ensure!(response.status().is_success(), "GET /metrics: {}", response.status());
    let mut scraped = exported(&response.text().await?);
    ensure!(scraped.len() > 20, "the scrape holds only {scraped:?}");
    let mut from_registry = Vec::new();
    for (name, labels) in exported(&registry_with_every_family()) {
        if let std::collections::btree_map::Entry::Vacant(entry) = scraped.entry(name) {
            from_registry.push(entry.key().clone());
            entry.insert(labels);
        }
    }

    // Each alert rule has an expression, a severity and a summary.
    let rules = alerts.matches("- alert:").count();
    ensure!(rules >= 10, "only {rules} alert rules");
    for (what, count) in [("expr:", rules), ("severity:", rules), ("summary:", rules)] {
        ensure!(
            alerts.matches(what).count() == count,
            "{} of {rules} alert rules have {what}",
            alerts.matches(what).count()
        );
    }
    // Each dashboard panel with a query reads from the dashboard's Prometheus variable.
    let expressions = dashboard_expressions(&dashboard);
    ensure!(expressions.len() >= 20, "only {} dashboard queries", expressions.len());

    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    let sources = std::iter::once(("alerts.yml".to_string(), alerts.clone()))
        .chain(expressions.into_iter().map(|(place, expr)| (format!("sgd-hub.json {place}"), expr)));
    for (place, text) in sources {
        for (name, labels) in named(&text) {
            checked.insert(name.clone());
            match scraped.get(&name) {
                None => problems.push(format!("{place}: {name} is not exported")),
                Some(known) if !known.is_empty() => {
                    for label in labels.iter().filter(|l| !ADDED_BY_PROMETHEUS.contains(&l.as_str())) {
                        if !known.contains(label) {
                            problems.push(format!("{place}: {name} has no label {label} (it has {known:?})"));
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }
    for series in PROMETHEUS_SERIES {
        ensure!(alerts.contains(series), "the alerts do not watch {series}");
    }
    ensure!(problems.is_empty(), "names the hub does not export:\n{}", problems.join("\n"));
    // Every family the hub exports is on the dashboard or in an alert (a new metric gets a panel).
    let families: BTreeSet<&str> = scraped
        .keys()
        .filter(|name| name.starts_with("sgd_"))
        .map(|name| {
            ["_bucket", "_sum", "_count", "_total", "_created"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        })
        .collect();
    let unwatched: Vec<&&str> =
        families.iter().filter(|family| !checked.iter().any(|name| name.starts_with(**family))).collect();
    ensure!(unwatched.is_empty(), "exported but on no panel and in no alert: {unwatched:?}");
    eprintln!(
        "monitoring: {} metric names checked against a scrape of {} series names ({} of them from the registry: \
         {from_registry:?})",
        checked.len(),
        scraped.len(),
        from_registry.len()
    );
    Ok(())
}

#[test]
fn the_name_scanner_finds_names_and_selector_labels() {
    let found = named(
        r#"sum by (le) (rate(sgd_http_request_duration_seconds_bucket{route!="/x", status=~"5.."}[5m])) / xsgd_no"#,
    );
    assert_eq!(
        found,
        vec![("sgd_http_request_duration_seconds_bucket".to_string(), vec!["route".to_string(), "status".to_string()])]
    );
    let scraped = exported("# TYPE sgd_a counter\nsgd_a_total{x=\"1\"} 2\n# TYPE sgd_h histogram\n");
    assert!(scraped["sgd_a_total"].contains("x"));
    assert!(scraped.contains_key("sgd_h_bucket") && scraped.contains_key("sgd_h_count"));
}
