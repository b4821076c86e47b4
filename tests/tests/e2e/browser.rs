//! The dashboard in a real browser: Debian's headless `chromium`, driven over the DevTools
//! protocol, against an in-process hub loaded with simulated data. The page must load without a
//! console error, show exactly the numbers the API returns, filter, follow the live log, keep
//! hostile text as text, and show each role only what it may see.
//!
//! `UPDATE_SCREENSHOTS=1` writes a screenshot of each view to `docs/screenshots/`.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use chromiumoxide::{
    browser::{Browser, BrowserConfig},
    cdp::{
        browser_protocol::{
            emulation::SetDeviceMetricsOverrideParams,
            log::{EventEntryAdded, LogEntryLevel},
            page::{CaptureScreenshotFormat, EventJavascriptDialogOpening, HandleJavaScriptDialogParams},
        },
        js_protocol::runtime::{ConsoleApiCalledType, EvaluateParams, EventConsoleApiCalled, EventExceptionThrown},
    },
    page::ScreenshotParams,
    Page,
};
use futures::StreamExt;
use serde_json::{json, Value};
use sgd_adapters::{Publisher, SourceSystem};
use sgd_hub::tokens::Role;
use sgd_tests::{wait_until, Api, InProcessHub, TestNats};

/// Where Debian's `chromium` package puts the browser (`CHROMIUM` overrides).
const CHROMIUM: &str = "/usr/bin/chromium";
/// An event id and type that would run script if the page ever parsed data as markup.
const HOSTILE: &str = r#"<img src=x onerror="alert(1)"><script>alert(2)</script>'; DROP TABLE x;--"#;
const LAPTOP: (u32, u32) = (1366, 900);
const PHONE: (u32, u32) = (390, 844);

fn chromium() -> Result<PathBuf> {
    let path = std::env::var_os("CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(CHROMIUM));
    if !path.exists() {
        bail!(
            "the dashboard's browser tests need Chromium at {} and it is not there: run `scripts/install-deps.sh \
             --with-python` (it runs `apt-get install -y chromium`), or set CHROMIUM to a Chromium binary",
            path.display()
        );
    }
    Ok(path)
}

/// A headless Chromium with one page whose console errors, uncaught exceptions, failed loads,
/// policy violations and dialogs are collected.
struct Chromium {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    page: Page,
    problems: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Result<Self> {
        let profile = tempfile::tempdir()?;
        let config = BrowserConfig::builder()
            .chrome_executable(chromium()?)
            .user_data_dir(profile.path())
            .no_sandbox() // tests run as root in CI
            .window_size(LAPTOP.0, LAPTOP.1)
            .viewport(None)
            .args(["--disable-gpu", "--disable-dev-shm-usage", "--lang=en-GB", "--hide-scrollbars"])
            .build()
            .map_err(|e| anyhow::anyhow!("chromium configuration: {e}"))?;
        let (browser, mut events) = Browser::launch(config).await.context("starting chromium")?;
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await?;
        let problems = Arc::new(Mutex::new(Vec::new()));
        let record = |problems: &Arc<Mutex<Vec<String>>>, text: String| {
            problems.lock().unwrap_or_else(|e| e.into_inner()).push(text);
        };
        let mut console = page.event_listener::<EventConsoleApiCalled>().await?;
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if matches!(event.r#type, ConsoleApiCalledType::Error | ConsoleApiCalledType::Assert) {
                    let args: Vec<String> = event
                        .args
                        .iter()
                        .map(|a| a.value.as_ref().map(|v| v.to_string()).or(a.description.clone()).unwrap_or_default())
                        .collect();
                    record(&sink, format!("console.error: {}", args.join(" ")));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await?;
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                let details = &event.exception_details;
                let description = details.exception.as_ref().and_then(|e| e.description.clone()).unwrap_or_default();
                record(&sink, format!("uncaught: {} {description}", details.text));
            }
        });
        let mut log = page.event_listener::<EventEntryAdded>().await?;
        let sink = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = log.next().await {
                if event.entry.level == LogEntryLevel::Error {
                    let url = event.entry.url.clone().unwrap_or_default();
                    record(&sink, format!("log: {} {url}", event.entry.text));
                }
            }
        });
        let mut dialogs = page.event_listener::<EventJavascriptDialogOpening>().await?;
        let sink = problems.clone();
        let dismisser = page.clone();
        tokio::spawn(async move {
            while let Some(event) = dialogs.next().await {
                record(&sink, format!("a dialog opened (script ran): {}", event.message));
                let _ = dismisser.execute(HandleJavaScriptDialogParams::new(false)).await;
            }
        });
        page.enable_log().await?;
        page.enable_runtime().await?;
        let chromium = Self { browser, handler, page, problems, _profile: profile };
        chromium.set_viewport(LAPTOP, false).await?;
        Ok(chromium)
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn set_viewport(&self, (width, height): (u32, u32), mobile: bool) -> Result<()> {
        let scale = if mobile { 2.0 } else { 1.0 };
        self.page.execute(SetDeviceMetricsOverrideParams::new(width as i64, height as i64, scale, mobile)).await?;
        Ok(())
    }

    /// Evaluates `expression` in the page and returns its value (JSON).
    async fn eval(&self, expression: &str) -> Result<Value> {
        let params = EvaluateParams::builder()
            .expression(format!("JSON.stringify({expression})"))
            .return_by_value(true)
            .build()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let result = self.page.evaluate(params).await.with_context(|| format!("evaluating {expression}"))?;
        let text: Option<String> = result.into_value().unwrap_or(None);
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?.unwrap_or(Value::Null))
    }

    /// Waits until `condition` (a JavaScript expression) is true.
    async fn wait_for(&self, condition: &str, what: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.eval(&format!("Boolean({condition})")).await? == json!(true) {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let problems = self.problems();
                bail!("timed out waiting for {what} ({condition}); page problems: {problems:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, selector: &str) -> Result<()> {
        self.page.find_element(selector).await.with_context(|| format!("no {selector}"))?.click().await?;
        Ok(())
    }

    /// Chooses `value` in the `<select>` `id` as a person would, firing its change event.
    async fn choose(&self, id: &str, value: &str) -> Result<()> {
        let script = format!(
            "(() => {{ const s = document.getElementById({id:?}); s.focus(); s.value = {value:?}; \
             s.dispatchEvent(new Event('change', {{ bubbles: true }})); return s.value; }})()"
        );
        assert_eq!(self.eval(&script).await?, json!(value), "{id} has no option {value}");
        Ok(())
    }

    async fn sign_in(&self, base: &str, token: &str) -> Result<()> {
        self.page.goto(format!("{base}/")).await?;
        self.wait_for("!document.getElementById('sign-in').hidden", "the sign-in form").await?;
        self.page.find_element("#token").await?.click().await?.type_str(token).await?;
        self.click("#sign-in-button").await?;
        self.wait_for("!document.getElementById('app').hidden", "the signed-in page").await
    }

    async fn open_view(&self, view: &str) -> Result<()> {
        self.click(&format!("#nav a[data-view={view}]")).await?;
        if view == "live" {
            return self
                .wait_for("document.getElementById('live-status').textContent === 'live'", "the live tail")
                .await;
        }
        self.wait_for(&format!("document.getElementById('view-{view}').dataset.state === 'ready'"), view).await
    }

    /// With `UPDATE_SCREENSHOTS=1`, writes the whole page at the current width to `docs/screenshots/`.
    async fn screenshot(&self, name: &str, (width, height): (u32, u32), mobile: bool) -> Result<()> {
        if std::env::var_os("UPDATE_SCREENSHOTS").is_none() {
            return Ok(());
        }
        // A laptop shot holds the whole view (up to 2400 px); a phone shot is one screen.
        let full = self.eval("document.documentElement.scrollHeight").await?.as_u64().unwrap_or(height as u64);
        let tall = if mobile { height } else { (full as u32).clamp(height, 2400) };
        self.set_viewport((width, tall), mobile).await?;
        tokio::time::sleep(Duration::from_millis(300)).await; // let the chart redraw for the width
        let png =
            self.page.screenshot(ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build()).await?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        self.set_viewport((width, height), mobile).await
    }

    async fn close(mut self) -> Result<()> {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
        Ok(())
    }
}

/// Text as displayed, without any kind of space (numbers are grouped with no-break spaces).
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A count as the page shows it: the number, or "hidden" when the API suppressed it.
fn shown(count: &Value) -> String {
    count.as_u64().map(|n| n.to_string()).unwrap_or_else(|| "hidden".into())
}

fn percent(value: f64) -> String {
    format!("{}%", (value * 100.0).round())
}

fn encode(value: &str) -> String {
    value.replace('+', "%2B").replace(':', "%3A")
}

/// Publishes bytes to ingress with a `Nats-Msg-Id`, waiting for the ack.
async fn publish(js: &async_nats::jetstream::Context, subject: &str, msg_id: &str, body: Vec<u8>) -> Result<()> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), headers, body.into())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A valid Mina Planer event of now, with `id`.
fn plan_created(id: &str, n: usize) -> Result<Value> {
    let mut event: Value = serde_json::from_slice(&std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/examples/plans/plan.created.v1.valid.json"
    ))?)?;
    event["id"] = json!(id);
    event["time"] = json!(chrono::Utc::now().to_rfc3339());
    event["data"]["plan_id"] = json!(format!("browser-plan-{n}"));
    Ok(event)
}

/// The ingress subject of a Mina Planer event: its own principal's.
fn ingress(event: &Value) -> String {
    format!("sgd.in.{}.plans", event["principal"].as_str().unwrap_or_default())
}

/// What the newcomer's demo publishes: every type for a few principals, the simulator for all 34
/// over the last 60 days through the adapters' real mappings, and the demo's refused samples.
async fn load_simulated_data(hub: &InProcessHub, js: &async_nats::jetstream::Context) -> Result<()> {
    let mut by_source: std::collections::BTreeMap<String, (SourceSystem, Vec<sgd_adapters::Draft>)> =
        Default::default();
    for (source, draft) in sgd_hub::demo::sample(sgd_hub::demo::DEMO_PRINCIPALS, 2, 2026) {
        by_source.entry(source.source()).or_insert_with(|| (source, Vec::new())).1.push(draft);
    }
    for (source, drafts) in by_source.into_values() {
        Publisher::new(js.clone(), source).publish_pipelined(&drafts, 256).await?;
    }
    let outbox = tempfile::tempdir()?;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let simulator = sgd_adapters::simulator::SimulatorConfig {
        start: chrono::Utc::now().fixed_offset() - chrono::Duration::days(60),
        days: 60,
        native: true,
        ..Default::default()
    };
    let report =
        sgd_adapters::simulator::run(js.clone(), outbox.path(), 2026, simulator, Some(10_000), 0.0, shutdown).await?;
    assert_eq!(report.mapping_errors, 0, "{report}");
    for (subject, body) in sgd_hub::demo::refused_samples() {
        publish(js, &subject, &format!("refused-{subject}-{}", body.len()), body).await?;
    }
    // a dead letter whose type and id are hostile text
    let mut hostile = plan_created(HOSTILE, 0)?;
    hostile["type"] = json!(HOSTILE);
    publish(js, &ingress(&hostile), "hostile-dead-letter", serde_json::to_vec(&hostile)?).await?;

    let operator = hub.api(Role::Operator, None)?;
    wait_until(Duration::from_secs(60), || async {
        let mut ingress = js.get_stream("SGD_INGRESS").await?;
        let waiting = ingress.info().await?.state.messages;
        let ready = operator.get("/readyz").await?;
        let dlq = operator.get_json("/api/v1/dlq").await?;
        Ok(waiting == 0 && ready.status() == 200 && dlq["total"] == 5)
    })
    .await
    .context("the hub did not take in the simulated data")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_numbers_filters_follows_the_log_and_keeps_hostile_text_as_text() -> Result<()> {
    let started = Instant::now();
    chromium()?; // fail first, and clearly, when the browser is missing
    let nats = TestNats::start().await?;
    let hub = InProcessHub::start(&nats.url(), |_| {}).await?;
    let js = nats.jetstream().await?;
    load_simulated_data(&hub, &js).await?;
    let analyst = hub.api(Role::Analyst, None)?;
    let operator = hub.api(Role::Operator, None)?;
    let base = analyst.base.clone();
    eprintln!("hub loaded in {:?}", started.elapsed());

    let chromium = Chromium::launch().await?;
    let result = drive(&chromium, &base, &js, &analyst, &operator).await;
    let problems = chromium.problems();
    chromium.close().await?;
    result?;
    assert!(problems.is_empty(), "the page logged problems: {problems:#?}");
    eprintln!("browser test done in {:?}", started.elapsed());
    hub.stop().await
}

async fn drive(
    chromium: &Chromium,
    base: &str,
    js: &async_nats::jetstream::Context,
    analyst: &Api,
    operator: &Api,
) -> Result<()> {
    // The page and its assets carry the policy that forbids inline script.
    let page = analyst.client.get(format!("{base}/")).send().await?;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str()?.contains("script-src 'self'"));

    chromium.sign_in(base, &analyst.token).await?;
    assert_eq!(chromium.eval("document.getElementById('who-role').textContent").await?, json!("analyst"));

    // Goals: every gauge shows the API's numerator, denominator and share.
    chromium.open_view("goals").await?;
    let shown_goals = chromium
        .eval(
            "({ asOf: document.getElementById('view-goals').dataset.asOf, goals: [...document.querySelectorAll('#goals \
             .gauge')].map(g => ({ id: g.dataset.goal, value: g.querySelector('.value').textContent, count: \
             g.querySelector('.count').textContent })) })",
        )
        .await?;
    let as_of = shown_goals["asOf"].as_str().context("no as_of on the goals view")?;
    let goals = analyst.get_json(&format!("/api/v1/goals?as_of={}", encode(as_of))).await?;
    let api_goals = goals["goals"].as_array().context("goals")?;
    let page_goals = shown_goals["goals"].as_array().context("gauges")?;
    assert_eq!(page_goals.len(), api_goals.len(), "one gauge per goal");
    for (page, api) in page_goals.iter().zip(api_goals) {
        assert_eq!(page["id"], api["id"]);
        let count = format!("{}/{}", shown(&api["numerator"]), shown(&api["denominator"]));
        assert_eq!(squeeze(page["count"].as_str().unwrap_or_default()), count, "goal {}", api["id"]);
        let value = match (api["value"].as_f64(), api["denominator"].as_u64()) {
            (Some(v), _) => percent(v),
            (None, Some(0)) => "nothingdueyet".into(),
            (None, _) => "–".into(),
        };
        assert_eq!(squeeze(page["value"].as_str().unwrap_or_default()), value, "goal {}", api["id"]);
    }
    assert!(api_goals.iter().any(|g| g["value"].as_f64().is_some_and(|v| v > 0.0)), "no goal has a value: {goals}");
    chromium.screenshot("goals", LAPTOP, false).await?;

    // Adoption: every cell of the 34 × 6 heatmap holds the API's count.
    chromium.open_view("adoption").await?;
    let cells = chromium
        .eval(
            "[...document.querySelectorAll('#heatmap td')].map(td => [td.dataset.principal, td.dataset.area, \
             td.textContent])",
        )
        .await?;
    let cells = cells.as_array().context("heatmap cells")?;
    assert_eq!(cells.len(), 34 * 6);
    let adoption = analyst.get_json("/api/v1/adoption").await?;
    let mut active = 0;
    for cell in cells {
        let (principal, area) = (cell[0].as_str().unwrap_or_default(), cell[1].as_str().unwrap_or_default());
        let row = adoption["principals"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["principal"] == principal))
            .with_context(|| format!("no principal {principal} in the API's answer"))?;
        let events = row["areas"][area]["events"].as_u64().context("events")?;
        assert_eq!(squeeze(cell[2].as_str().unwrap_or_default()), events.to_string(), "{principal} × {area}");
        active += usize::from(events > 0);
    }
    assert!(active > 100, "only {active} active cells: the data did not load");
    chromium.screenshot("adoption", LAPTOP, false).await?;

    // Usage: the total and every bucket for each filter equal the API's.
    chromium.open_view("usage").await?;
    check_usage(chromium, analyst, "bucket=day").await?;
    chromium.screenshot("usage", LAPTOP, false).await?;
    chromium.choose("usage-principal", "1280").await?;
    check_usage(chromium, analyst, "bucket=day&principal=1280").await?;
    chromium.choose("usage-area", "plans").await?;
    check_usage(chromium, analyst, "bucket=day&principal=1280&area=plans").await?;
    let series =
        chromium.eval("[...document.querySelectorAll('#usage-chart polyline')].map(p => p.dataset.area)").await?;
    assert_eq!(series, json!(["plans"]), "one line for the chosen area");
    chromium.choose("usage-bucket", "month").await?;
    check_usage(chromium, analyst, "bucket=month&principal=1280&area=plans").await?;

    // Follow-up: each rule's count equals the API's open cases for it; a rule lists its cases.
    chromium.open_view("followup").await?;
    let rules = chromium
        .eval(
            "({ asOf: document.getElementById('view-followup').dataset.asOf, rules: [...document.querySelectorAll('#rules \
             .rule')].map(r => [r.dataset.rule, r.querySelector('.rule-count').textContent]) })",
        )
        .await?;
    let as_of = encode(rules["asOf"].as_str().context("no as_of on the follow-up view")?);
    let mut busiest = (String::new(), 0);
    let page_rules = rules["rules"].as_array().context("rules")?;
    assert_eq!(page_rules.len(), 10, "{rules}");
    for rule in page_rules {
        let name = rule[0].as_str().unwrap_or_default();
        let open = analyst.get_json(&format!("/api/v1/followup/open?rule={name}&as_of={as_of}")).await?;
        let total = open["total"].as_u64().context("total")?;
        assert_eq!(squeeze(rule[1].as_str().unwrap_or_default()), total.to_string(), "rule {name}");
        if total > busiest.1 {
            busiest = (name.to_string(), total);
        }
    }
    assert!(busiest.1 > 0, "no open case for any rule: {rules}");
    chromium.click(&format!("#rules .rule[data-rule={}]", busiest.0)).await?;
    chromium
        .wait_for(
            &format!(
                "document.getElementById('rule-cases').dataset.state === 'ready' && \
                 document.getElementById('rule-cases').dataset.rule === '{}'",
                busiest.0
            ),
            "the rule's cases",
        )
        .await?;
    let rows = chromium.eval("document.querySelectorAll('#rule-cases-table tbody tr').length").await?;
    assert_eq!(rows, json!(busiest.1.min(200)));
    chromium.screenshot("followup", LAPTOP, false).await?;

    // The live tail: the last 50 events of the log, then each new one, hostile text as text.
    chromium.open_view("live").await?;
    chromium.wait_for("document.querySelectorAll('#live-rows tr').length === 50", "the last 50 events").await?;
    let last: u64 =
        chromium.eval("Number(document.querySelector('#live-rows tr').dataset.seq)").await?.as_u64().unwrap_or(0);
    let ready = analyst.get_json("/readyz").await?;
    assert_eq!(Some(last), ready["log_last_sequence"].as_u64(), "the tail starts at the log's newest event");
    for n in 1..=3 {
        let id = if n == 3 { HOSTILE.to_string() } else { format!("browser-live-{n}") };
        let event = plan_created(&id, n)?;
        publish(js, &ingress(&event), &format!("browser-live-{n}"), serde_json::to_vec(&event)?).await?;
    }
    let grown = chromium.wait_for("document.querySelectorAll('#live-rows tr').length === 53", "three new events").await;
    if let Err(e) = grown {
        let state = chromium
            .eval("[document.querySelectorAll('#live-rows tr').length, document.getElementById('live-status').textContent]")
            .await?;
        let ready = analyst.get_json("/readyz").await?;
        let dlq = operator.get_json("/api/v1/dlq").await?;
        bail!("{e}: the tail shows {state}; readyz {ready}; dlq {dlq}");
    }
    let newest = chromium
        .eval(
            "(() => { const td = document.querySelector('#live-rows tr td.id'); return { text: td.textContent, \
             children: td.children.length, seq: Number(td.parentElement.dataset.seq) }; })()",
        )
        .await?;
    assert_eq!(newest["text"], json!(HOSTILE), "the hostile id is shown as text");
    assert_eq!(newest["children"], json!(0), "the hostile id became markup");
    assert_eq!(newest["seq"], json!(last + 3));
    chromium.screenshot("live", LAPTOP, false).await?;

    // Dead letters are for operators: an analyst has no such view, and is told why.
    let nav = chromium.eval("[...document.querySelectorAll('#nav a')].map(a => a.dataset.view)").await?;
    assert_eq!(nav, json!(["goals", "adoption", "usage", "followup", "live"]));
    let note = chromium.eval("document.getElementById('role-note').textContent").await?;
    assert!(
        note.as_str().unwrap_or_default().contains("Dead letters (operators; integrators see their own)"),
        "{note}"
    );

    // An operator sees them, with their reasons; hostile type and id stay text.
    chromium.click("#sign-out").await?;
    chromium.sign_in(base, &operator.token).await?;
    chromium.open_view("dlq").await?;
    let dlq = operator.get_json("/api/v1/dlq?limit=100").await?;
    let page_dlq = chromium
        .eval(
            "({ total: document.getElementById('dlq-total').textContent, rows: [...document.querySelectorAll('#dlq-table \
             tbody tr')].map(tr => ({ seq: Number(tr.dataset.seq), reason: tr.querySelector('.reason').textContent, \
             type: tr.children[3].textContent, id: tr.children[4].textContent, markup: tr.children[3].children.length + \
             tr.children[4].children.length })) })",
        )
        .await?;
    assert_eq!(squeeze(page_dlq["total"].as_str().unwrap_or_default()), format!("{}deadletters", dlq["total"]));
    let items = dlq["items"].as_array().context("items")?;
    let rows = page_dlq["rows"].as_array().context("rows")?;
    assert_eq!(rows.len(), items.len());
    for (row, item) in rows.iter().zip(items) {
        assert_eq!(row["seq"], item["seq"]);
        assert_eq!(row["reason"], item["reason"]);
        assert_eq!(row["markup"], json!(0));
    }
    assert!(
        rows.iter().any(|r| r["type"] == json!(HOSTILE) && r["id"] == json!(HOSTILE) && r["reason"] == "unknown_type"),
        "the hostile dead letter is not shown as text: {page_dlq}"
    );
    assert_eq!(chromium.eval("document.querySelectorAll('script').length").await?, json!(1), "a script was injected");
    assert_eq!(chromium.eval("document.querySelectorAll('img').length").await?, json!(1), "an image was injected");
    chromium.screenshot("dlq", LAPTOP, false).await?;

    // Deliveries: each webhook subscription as the API lists it, with its figures.
    let made = operator
        .client
        .post(format!("{base}/api/v1/subscriptions"))
        .bearer_auth(&operator.token)
        .json(&json!({"url": "https://receiver.example.se/hook", "principal": "1280", "areas": ["plans"]}))
        .send()
        .await?;
    assert_eq!(made.status(), 201);
    chromium.open_view("deliveries").await?;
    let listed = operator.get_json("/api/v1/subscriptions").await?;
    let page_rows = chromium
        .eval(
            "[...document.querySelectorAll('#deliveries-table tbody tr')].map(tr => ({ id: tr.dataset.subscription, \
             principal: tr.children[1].textContent, url: tr.children[2].textContent }))",
        )
        .await?;
    let items = listed["items"].as_array().context("items")?;
    let rows = page_rows.as_array().context("rows")?;
    assert_eq!(rows.len(), items.len(), "{page_rows}");
    for (row, item) in rows.iter().zip(items) {
        assert_eq!((&row["id"], &row["principal"], &row["url"]), (&item["id"], &item["principal"], &item["url"]));
    }

    // On a phone: the same page, readable at 390 px.
    chromium.set_viewport(PHONE, true).await?;
    chromium.open_view("goals").await?;
    let overflow = chromium.eval("document.documentElement.scrollWidth - window.innerWidth").await?;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the page is wider than a phone: {overflow}");
    chromium.screenshot("phone", PHONE, true).await?;
    chromium.set_viewport(LAPTOP, false).await?;

    // Everything so far without one console error; now a bad token, which is refused with a message.
    let problems = chromium.problems();
    assert!(problems.is_empty(), "the page logged problems: {problems:#?}");
    chromium.click("#sign-out").await?;
    chromium.page.find_element("#token").await?.click().await?.type_str("sgd_00000000_not-a-token").await?;
    chromium.click("#sign-in-button").await?;
    chromium
        .wait_for("document.getElementById('sign-in-error').textContent.includes('not accepted')", "the refusal")
        .await?;
    chromium.problems.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| !p.contains("401"));
    Ok(())
}

/// Waits until the usage view shows `query`, then checks its total and every bucket against the API.
async fn check_usage(chromium: &Chromium, api: &Api, query: &str) -> Result<()> {
    chromium
        .wait_for(
            &format!(
                "document.getElementById('view-usage').dataset.query === {query:?} && \
                 document.getElementById('view-usage').dataset.state === 'ready'"
            ),
            query,
        )
        .await?;
    let answer = api.get_json(&format!("/api/v1/usage?{query}")).await?;
    let page = chromium
        .eval(
            "({ total: document.getElementById('usage-total').textContent, buckets: [...document.querySelectorAll('#usage-table \
             tbody tr')].map(tr => [tr.dataset.bucket, tr.querySelector('td[data-area=all]').textContent]) })",
        )
        .await?;
    assert_eq!(squeeze(page["total"].as_str().unwrap_or_default()), answer["total"].to_string(), "total for {query}");
    let mut expected: std::collections::BTreeMap<String, (u64, bool)> = Default::default();
    for row in answer["rows"].as_array().context("rows")? {
        let entry = expected.entry(row["bucket"].as_str().unwrap_or_default().to_string()).or_default();
        match row["count"].as_u64() {
            Some(n) => entry.0 += n,
            None => entry.1 = true,
        }
    }
    assert!(!expected.is_empty(), "no usage for {query}");
    let mut seen = 0;
    for bucket in page["buckets"].as_array().context("buckets")? {
        let (name, text) = (bucket[0].as_str().unwrap_or_default(), squeeze(bucket[1].as_str().unwrap_or_default()));
        match expected.get(name) {
            Some((n, hidden)) => {
                seen += 1;
                let want = if *hidden { format!("{n}+hidden") } else { n.to_string() };
                assert_eq!(text, want, "{query}: bucket {name}");
            }
            None => assert_eq!(text, "0", "{query}: bucket {name} has no events in the API's answer"),
        }
    }
    assert_eq!(seen, expected.len(), "{query}: every bucket of the API's answer is on the page");
    Ok(())
}
