//! The dashboard in real headless Chromium, against a real host, with a script playing the
//! agents through the agent routes. Screenshots of each step land in
//! `target/dashboard-screenshots/`.

use pacsync_tests::{Api, Stream, TestHost, state};
use serde_json::{Value, json};

use super::driver::Browser;

const WIDE: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

const TARGET: &[(&str, &str)] = &[("linux", "6.1-1"), ("vim", "9.0-1")];
const OLDER: &[(&str, &str)] = &[("linux", "6.0-1"), ("vim", "9.0-1")];

/// Signs in with the host's admin token by pasting it, as an operator would.
async fn sign_in(browser: &Browser, api: &Api) {
    browser.goto("/").await;
    browser
        .find("#token")
        .await
        .send_keys(&api.admin)
        .await
        .unwrap();
    browser.button("Sign in").await.click().await.unwrap();
    browser.text_until("main h1", |t| t == "Fleet").await;
}

/// The id at the end of the page's `#/kind/{id}` address.
async fn id_in_address(browser: &Browser) -> String {
    let url = browser.client.current_url().await.unwrap();
    let fragment = url.fragment().unwrap_or_default().to_owned();
    fragment.rsplit('/').next().unwrap().to_owned()
}

/// Registers `name` with an enrollment token, as `pacsync register` does: `(id, token)`.
async fn register(api: &Api, enrollment_token: &str, name: &str) -> (String, String) {
    let reply = api
        .anonymous()
        .post("/api/endpoints/register")
        .json(json!({"name": name, "hostname": format!("{name}.lan"), "enrollment_token": enrollment_token}))
        .await;
    let body = reply.expect(201, None);
    (
        body["endpoint"]["endpoint_id"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// `POST /api/sync/operations/{op}/{step}` as the endpoint's agent.
async fn agent(api: &Api, token: &str, op: &str, step: &str, body: Option<Value>) {
    let request = api
        .as_(token)
        .post(&format!("/api/sync/operations/{op}/{step}"));
    let reply = match body {
        Some(body) => request.json(body).await,
        None => request.await,
    };
    reply.expect(200, None);
}

/// The value of the progress bar of operation `op` once it is `percentage`.
async fn progress_reaches(browser: &Browser, op: &str, percentage: i64) {
    let script = format!("(document.querySelector('#op-{op} progress.op-progress') || {{}}).value");
    browser
        .value_until(&script, |v| v.as_f64() == Some(percentage as f64))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_creates_a_pool_enrolls_a_machine_and_watches_it_sync() {
    let t = TestHost::start().await;
    let api = &t.api;
    let browser = Browser::open(&api.base, WIDE).await;
    sign_in(&browser, api).await;

    browser
        .find("#pool-name")
        .await
        .send_keys("web")
        .await
        .unwrap();
    browser.button("Create pool").await.click().await.unwrap();
    browser.text_until("main h1", |t| t.contains("web")).await;
    let pool = id_in_address(&browser).await;

    // A token made on the page enrolls a machine, which appears without a reload.
    browser
        .button("Create enrollment token")
        .await
        .click()
        .await
        .unwrap();
    let field = browser.find("#enrollment-token").await;
    let token = field
        .prop("value")
        .await
        .unwrap()
        .expect("the token is shown");
    let command = browser
        .text_until("#register-command", |t| !t.is_empty())
        .await;
    assert!(command.contains("pacsync register --server"), "{command}");
    assert!(
        !command.contains(&token),
        "the token stays out of the command line"
    );
    let (reference, reference_token) = register(api, &token, "ref").await;
    browser
        .text_until("#endpoints-table", |t| t.contains("ref"))
        .await;
    browser.screenshot("pool-wide").await;

    // A second machine, behind the target the first one sets.
    let (desk, desk_token) = api.register(&pool, "desk").await;
    api.put_state(&reference, &reference_token, state(TARGET))
        .await
        .expect(200, None);
    api.set_as_latest(&reference, &reference_token)
        .await
        .expect(202, None);
    api.put_state(&desk, &desk_token, state(OLDER))
        .await
        .expect(200, None);
    browser.goto(&format!("/#/endpoints/{desk}")).await;
    browser
        .text_until("#endpoint-status", |t| t.contains("Behind"))
        .await;
    // Its agent connects: the page says it is online, without a reload.
    let stream = format!("/api/sync/{desk}/status");
    let agent_stream = Stream::open(&api.base, &stream, Some(&desk_token))
        .await
        .unwrap();
    browser
        .text_until("#endpoint-online", |t| t.starts_with("Online"))
        .await;

    browser.click("#sync-to-latest").await;
    browser
        .text_until("#action-result", |t| !t.is_empty())
        .await;
    let ops = api.get(&format!("/api/sync/{desk}/operations")).await;
    let ops = ops.expect(200, None).clone();
    let op = ops["items"][0]["operation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an operation in {ops}"))
        .to_owned();
    browser.find(&format!("#op-{op}")).await;
    agent(api, &desk_token, &op, "start", None).await;
    for percentage in [40, 80] {
        let report = json!({"percentage": percentage, "stage": "installing", "current_action": "upgrading linux"});
        agent(api, &desk_token, &op, "progress", Some(report)).await;
        progress_reaches(&browser, &op, percentage).await;
    }
    browser.screenshot("endpoint-progress-wide").await;
    let done = json!({ "state": state(TARGET) });
    agent(api, &desk_token, &op, "complete", Some(done)).await;
    browser
        .text_until("#endpoint-status", |t| t.contains("In sync"))
        .await;
    progress_reaches(&browser, &op, 100).await;

    browser.goto("/#/").await;
    browser
        .text_until(&format!("#pool-{pool} td[data-status=in_sync]"), |t| {
            t.trim() == "2"
        })
        .await;
    browser
        .text_until(&format!("#pool-{pool} td[data-status=online]"), |t| {
            t.trim() == "1"
        })
        .await;
    browser.screenshot("fleet-wide").await;
    drop(agent_stream);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_config_error_shows_next_to_the_field_and_a_revert_starts_from_the_history() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("lab").await;
    let (machine, machine_token) = api.register(&pool, "bench").await;
    api.put_state(&machine, &machine_token, state(OLDER))
        .await
        .expect(200, None);
    api.put_state(&machine, &machine_token, state(TARGET))
        .await
        .expect(200, None);
    let browser = Browser::open(&api.base, WIDE).await;
    sign_in(&browser, api).await;

    browser.goto(&format!("/#/pools/{pool}")).await;
    browser.find("#policy-plugin option[value='holds']").await;
    browser
        .find("#policy-plugin")
        .await
        .select_by_value("holds")
        .await
        .unwrap();
    let config = browser.find("#policy-config").await;
    config.clear().await.unwrap();
    config.send_keys(r#"{"bogus": true}"#).await.unwrap();
    browser.button("Save policy").await.click().await.unwrap();
    let error = browser.text_until("#policy-error", |t| !t.is_empty()).await;
    assert!(error.contains("unknown holds setting"), "{error}");
    let invalid = browser
        .find("#policy-config")
        .await
        .attr("aria-invalid")
        .await;
    assert_eq!(invalid.unwrap().as_deref(), Some("true"));

    // The older of the two recorded states, from the endpoint's history.
    browser.goto(&format!("/#/endpoints/{machine}")).await;
    let history = api.get(&format!("/api/endpoints/{machine}/states")).await;
    let history = history.expect(200, None).clone();
    let older = history
        .as_array()
        .unwrap()
        .iter()
        .min_by_key(|e| e["history_id"].as_i64())
        .unwrap()
        .clone();
    let row = format!("#state-{} button.revert", older["history_id"]);
    browser.click(&row).await;
    browser.client.accept_alert().await.unwrap();
    browser
        .text_until("#revert-result", |t| t.contains("Revert requested"))
        .await;
    let ops = api.get(&format!("/api/sync/{machine}/operations")).await;
    let ops = ops.expect(200, None).to_string();
    assert!(
        ops.contains("\"revert\""),
        "a revert operation exists: {ops}"
    );

    browser.click("#sign-out").await;
    browser.text_until("main h1", |t| t == "Sign in").await;
    let kept = browser
        .client
        .execute(
            "return sessionStorage.getItem('pacsync.admin_token');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, Value::Null, "signing out forgets the token");
    browser.close().await;
}

/// Presses Tab until the focused element `el` makes `test` (JavaScript) true; fails after 60
/// presses.
async fn tab_to(browser: &Browser, test: &str) {
    let focused = format!("(el => !!el && ({test}))(document.activeElement)");
    for _ in 0..60 {
        let here = browser
            .client
            .execute(&format!("return {focused};"), vec![])
            .await;
        if here.unwrap() == Value::Bool(true) {
            return;
        }
        let active = browser.client.active_element().await.unwrap();
        active.send_keys(TAB).await.unwrap();
    }
    panic!("Tab never reached an element where {test}");
}

/// Types `keys` into the focused element.
async fn type_keys(browser: &Browser, keys: &str) {
    let active = browser.client.active_element().await.unwrap();
    active.send_keys(keys).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_signs_in_creates_a_pool_and_a_token_and_signs_out() {
    let t = TestHost::start().await;
    let browser = Browser::open(&t.api.base, WIDE).await;
    browser.goto("/").await;
    browser.find("#token").await;
    tab_to(&browser, "el.id === 'token'").await;
    type_keys(&browser, &t.api.admin).await;
    tab_to(&browser, "el.id === 'sign-in'").await;
    type_keys(&browser, ENTER).await;
    browser.text_until("main h1", |t| t == "Fleet").await;

    tab_to(&browser, "el.id === 'pool-name'").await;
    type_keys(&browser, &format!("keys{ENTER}")).await;
    browser.text_until("main h1", |t| t.contains("keys")).await;
    tab_to(
        &browser,
        "el.tagName === 'BUTTON' && el.textContent.trim() === 'Create enrollment token'",
    )
    .await;
    type_keys(&browser, ENTER).await;
    let token = browser.find("#enrollment-token").await;
    assert!(
        token
            .prop("value")
            .await
            .unwrap()
            .is_some_and(|v| !v.is_empty())
    );

    tab_to(&browser, "el.id === 'sign-out'").await;
    type_keys(&browser, ENTER).await;
    browser.text_until("main h1", |t| t == "Sign in").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_screen_without_sideways_scrolling() {
    let t = TestHost::start().await;
    let api = &t.api;
    let pool = api.create_pool("pocket").await;
    let (machine, token) = api.register(&pool, "phone").await;
    api.put_state(&machine, &token, state(TARGET))
        .await
        .expect(200, None);
    let browser = Browser::open(&api.base, PHONE).await;
    sign_in(&browser, api).await;
    for (page, name) in [
        ("/#/".to_owned(), "fleet-phone"),
        (format!("/#/pools/{pool}"), "pool-phone"),
        (format!("/#/endpoints/{machine}"), "endpoint-phone"),
    ] {
        browser.goto(&page).await;
        browser.text_until("main h1", |t| !t.is_empty()).await;
        browser
            .value_until(
                "document.documentElement.scrollWidth <= window.innerWidth",
                |v| v == &Value::Bool(true),
            )
            .await;
        browser.screenshot(name).await;
    }
    browser.close().await;
}
