//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver, found
//! in `NODEKEEPER_CHROMEDRIVER` or PATH; `scripts/test.sh` installs Debian's `chromium` and
//! `chromium-driver`), against a real supervisord, simulated nodes and `nodekeeper run`: a plain
//! pool (live states, the token, the actions, the sparklines' history rule) and a leadership pool
//! (the leader line, its countdown and guard, the role badge, a hand-over from the page).

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::leadership::sole_leader;
use crate::support::{DaemonConfig, Supervisord, free_port, http, wait_until};

const WAIT: Duration = Duration::from_secs(20);
/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver`: `NODEKEEPER_CHROMEDRIVER`, else the first in PATH.
fn chromedriver() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("NODEKEEPER_CHROMEDRIVER") {
        return path.into();
    }
    find_in_path("chromedriver").unwrap_or_else(|| {
        panic!(
            "chromedriver not found: set NODEKEEPER_CHROMEDRIVER or install Debian's chromium and \
             chromium-driver (scripts/test.sh does)"
        )
    })
}

fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A headless Chromium session over raw WebDriver JSON; dropping it ends chromedriver and the
/// browser.
struct Browser {
    session: String,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        wait_until("chromedriver to answer", WAIT, || {
            let url = format!("{base}/status");
            async move {
                let answer = http().get(url).send().await.ok()?;
                answer.status().is_success().then_some(())
            }
        })
        .await;
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if let Some(chromium) = find_in_path("chromium") {
            options["binary"] = json!(chromium);
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "ignore",
        }}});
        let answer = send(
            reqwest::Method::POST,
            &format!("{base}/session"),
            &capabilities,
        )
        .await
        .unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        let id = answer["sessionId"].as_str().expect("a session id");
        Browser {
            session: format!("{base}/session/{id}"),
            driver,
            _profile: profile,
        }
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        send(method, &format!("{}{path}", self.session), &body).await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.try_call(method, path, body.clone())
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path} {body}: {e}"))
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    /// Runs `script` (a function body) in the page: its return value.
    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits until `script` returns something truthy (not false, null, "" or 0): that value.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        self.wait_for_within(what, WAIT, script).await
    }

    /// [`Browser::wait_for`] with its own time limit.
    async fn wait_for_within(&self, what: &str, within: Duration, script: &str) -> Value {
        wait_until(what, within, || async {
            let value = self.script(script).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            truthy.then_some(value)
        })
        .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// A real click (the element must be displayed).
    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Clicks `css` once it can be clicked (a button the live feed may hide for a moment).
    async fn click_when_shown(&self, css: &str) {
        wait_until(&format!("{css} to take a click"), WAIT, || async {
            let id = self.element(css).await;
            self.try_call(
                reqwest::Method::POST,
                &format!("/element/{id}/click"),
                json!({}),
            )
            .await
            .ok()
        })
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Accepts the confirmation the page asks for: its text.
    async fn confirm(&self) -> String {
        let text = wait_until("a confirmation", WAIT, || async {
            self.try_call(reqwest::Method::GET, "/alert/text", Value::Null)
                .await
                .ok()
        })
        .await;
        self.call(reqwest::Method::POST, "/alert/accept", json!({}))
            .await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// The browser's console since the last call.
    async fn console(&self) -> Vec<Value> {
        let entries = self
            .call(reqwest::Method::POST, "/se/log", json!({"type": "browser"}))
            .await;
        entries.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
    }
}

/// One WebDriver exchange: the answer's `value`, or the error's.
async fn send(method: reqwest::Method, url: &str, body: &Value) -> Result<Value, Value> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let request = client.request(method.clone(), url);
    let request = if method == reqwest::Method::GET {
        request
    } else {
        request
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let answer = request
        .send()
        .await
        .map_err(|e| json!(format!("{url}: {e}")))?;
    let ok = answer.status().is_success();
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| json!(format!("{url}: {e}")))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let value = value.get("value").cloned().unwrap_or(Value::Null);
    if ok { Ok(value) } else { Err(value) }
}

/// The text of `field` in `node`'s card.
fn field(node: &str, field: &str) -> String {
    format!(
        "const card = document.querySelector('[data-node=\"{node}\"]'); \
         return card ? card.querySelector('.{field}').textContent : null;"
    )
}

/// The page's `window.nkHistory.record` on crafted data follows the rule of
/// `src/api/dashboard/history.rs` (its unit tests, replayed in the browser).
async fn assert_the_history_rule(browser: &Browser) {
    let answer = browser
        .script(
            "const record = window.nkHistory.record; \
             const pool = (heights) => ({nodes: heights.map(([name, height]) => ({name, height}))}); \
             let steps = {step_secs: 10, window_secs: 60, nodes: {}}; \
             steps = record(steps, pool([['a', 1], ['b', null]]), 100); \
             steps = record(steps, pool([['a', 2], ['b', 7]]), 105); \
             steps = record(steps, pool([['a', 3], ['b', 8]]), 110); \
             const before = JSON.stringify(steps); \
             record(steps, pool([['a', 4]]), 200); \
             const pure = JSON.stringify(steps) === before; \
             let long = {step_secs: 10, window_secs: 60, nodes: {}}; \
             for (let t = 0; t < 1000; t++) long = record(long, pool([['a', t], ['b', 1]]), t); \
             const a = long.nodes.a; \
             const gone = Object.keys(record(long, pool([['a', 1000]]), 1000).nodes); \
             let back = {step_secs: 10, window_secs: 60, nodes: {}}; \
             back = record(back, pool([['a', 1]]), 100); \
             back = record(back, pool([['a', 2]]), 200); \
             back = record(back, pool([['a', 3]]), 150); \
             return {steps: steps.nodes, pure, first: a[0], last: a[a.length - 1], \
                     count: a.length, gone, back: back.nodes.a};",
        )
        .await;
    assert_eq!(
        answer,
        json!({
            "steps": {"a": [[100, 1], [110, 3]], "b": [[105, 7]]},
            "pure": true,
            "first": [940, 940],
            "last": [990, 990],
            "count": 6,
            "gone": ["a"],
            "back": [[150, 3]],
        })
    );
}

async fn held(config: &DaemonConfig, node: &str) -> Option<String> {
    let status = config.api().status().await.expect("the daemon's status");
    status
        .nodes
        .into_iter()
        .find(|line| line.name == node)
        .and_then(|line| line.held)
}

#[tokio::test]
async fn the_dashboard_shows_the_pool_live_and_acts_only_with_the_token() {
    let supervisord = Supervisord::builder().sims(3).start().await;
    let config = DaemonConfig::write(&supervisord, json!({}));
    let _daemon = config.start(&[]).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{}/", config.api_listen))
        .await;

    // The pool: every node, RUNNING, with a height, pushed by the live feed.
    let names = browser
        .wait_for(
            "the three nodes running with a height",
            "const cards = [...document.querySelectorAll('article[data-node]')]; \
             const ok = cards.length === 3 && cards.every(c => \
               c.querySelector('.program').textContent === 'RUNNING' && \
               /^[0-9]+$/.test(c.querySelector('.height').textContent)); \
             return ok ? cards.map(c => c.dataset.node) : null;",
        )
        .await;
    assert_eq!(names, json!(["node1", "node2", "node3"]));
    browser
        .wait_for(
            "the live badge",
            "return document.getElementById('live').textContent === 'live';",
        )
        .await;
    browser
        .wait_for("the chart", "const chart = document.getElementById('chart'); return chart.complete && chart.naturalWidth > 0;")
        .await;
    // A reload would lose this.
    browser
        .script("window.nkNotReloaded = true; return null;")
        .await;
    assert_the_history_rule(&browser).await;

    // Without the token the page is read-only, and the API refuses a mutation.
    let mode = browser
        .script("return document.getElementById('mode').textContent;")
        .await;
    assert!(mode.as_str().unwrap().starts_with("read-only"), "{mode}");
    let hidden = browser
        .script("return getComputedStyle(document.querySelector('[data-node=\"node2\"] .act-hold')).display;")
        .await;
    assert_eq!(hidden, "none", "the actions are hidden while read-only");
    let refused = browser
        .call(
            reqwest::Method::POST,
            "/execute/async",
            json!({"script": "const done = arguments[arguments.length - 1]; \
                fetch('/v1/nodes/node2/hold', {method: 'POST'}).then(r => done(r.status), e => done(String(e)));",
                "args": []}),
        )
        .await;
    assert_eq!(refused, 401);

    // A wrong token: the API refuses, the page says so and is read-only again.
    browser.type_into("#token", "not-the-token").await;
    browser.click("#token-save").await;
    browser
        .click_when_shown("[data-node=\"node2\"] .act-hold")
        .await;
    assert_eq!(browser.confirm().await, "hold node2?");
    let message = browser
        .wait_for(
            "the refusal",
            "const m = document.getElementById('message').textContent; return m.includes('refused') ? m : null;",
        )
        .await;
    assert!(message.as_str().unwrap().contains("read-only"), "{message}");
    let mode = browser
        .script("return document.getElementById('mode').textContent;")
        .await;
    assert!(mode.as_str().unwrap().starts_with("read-only"), "{mode}");
    assert_eq!(held(&config, "node2").await, None);

    // The right token: a hold set from the page reaches the daemon and comes back in the page.
    let token = std::fs::read_to_string(config.dir.join("api.token")).expect("the API token");
    browser.type_into("#token", token.trim()).await;
    browser.click("#token-save").await;
    let mode = browser
        .script("return document.getElementById('mode').textContent;")
        .await;
    assert!(mode.as_str().unwrap().starts_with("operator"), "{mode}");
    browser
        .click_when_shown("[data-node=\"node2\"] .act-hold")
        .await;
    assert_eq!(browser.confirm().await, "hold node2?");
    let reason = wait_until("the daemon to hold node2", WAIT, || held(&config, "node2")).await;
    assert!(reason.contains("operator"), "{reason}");
    browser
        .wait_for(
            "the held badge",
            &format!(
                "const t = (() => {{ {} }})(); return t && t.startsWith('held:');",
                field("node2", "held")
            ),
        )
        .await;

    // A crash (its process killed) appears without a reload; the hold leaves it down.
    let pid = supervisord.pids().await["node2"];
    assert!(pid > 0);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("a pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill node2");
    browser
        .wait_for(
            "node2 down in the page",
            "const card = document.querySelector('[data-node=\"node2\"]'); \
             return card.classList.contains('bad') && card.querySelector('.program').textContent !== 'RUNNING';",
        )
        .await;

    // Released from the page: the daemon starts it and the page shows it running again, with
    // the restart in its card and in the restart log (filtered to node2).
    browser
        .click_when_shown("[data-node=\"node2\"] .act-release")
        .await;
    assert_eq!(browser.confirm().await, "release node2?");
    browser
        .wait_for(
            "node2 running again with its restart",
            "const card = document.querySelector('[data-node=\"node2\"]'); \
             return !card.classList.contains('bad') && \
               card.querySelector('.program').textContent === 'RUNNING' && \
               card.querySelector('.restart').textContent.includes('start');",
        )
        .await;
    assert_eq!(held(&config, "node2").await, None);
    browser.click("#restart-node option[value=\"node2\"]").await;
    browser
        .wait_for(
            "the restart log filtered to node2",
            "const rows = [...document.querySelectorAll('#restart-rows tr')]; \
             return rows.length > 0 && rows.every(r => r.dataset.node === 'node2');",
        )
        .await;
    assert_eq!(
        browser
            .script("return window.nkNotReloaded === true;")
            .await,
        true,
        "the page was reloaded"
    );

    // No console errors, but the two refusals this test asked for.
    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            !(message.contains("/v1/nodes/node2/hold") && message.contains("401"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// The script that returns the nodes whose role badge shows.
const BADGES: &str = "return [...document.querySelectorAll('article[data-node]')] \
     .filter(c => getComputedStyle(c.querySelector('.role')).display !== 'none') \
     .map(c => c.dataset.node);";

/// Whether the page names `leader` in the leader line and shows the role badge on its card only.
async fn page_shows_leader(browser: &Browser, leader: &str) -> bool {
    let script = format!(
        "const line = document.getElementById('leader-line').textContent; \
         const badges = (() => {{ {BADGES} }})(); \
         return line.split(' · ')[0].endsWith(': {leader}') && \
           badges.length === 1 && badges[0] === '{leader}';"
    );
    browser.script(&script).await == true
}

/// Waits until exactly one simulator holds the key and the page shows that node as the holder:
/// its name. (On a loaded machine the daemon may move the key by itself, a node it starts boots
/// with the secret: the page is compared with the simulators at one moment.)
async fn page_agrees_with_the_sims(
    browser: &Browser,
    sup: &Supervisord,
    within: Duration,
) -> String {
    wait_until(
        "the page to show the simulators' sole holder",
        within,
        || async {
            let holder = sole_leader(sup).await?;
            page_shows_leader(browser, &holder).await.then_some(holder)
        },
    )
    .await
}

/// Hands the key to `node` from the page once its card says it can lead (Running, in sync);
/// asked again while the daemon refuses it as not yet in sync (a node it just started).
async fn hand_over_from_the_page(browser: &Browser, node: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        browser
            .wait_for_within(
                &format!("{node} to be able to lead"),
                Duration::from_secs(60),
                &format!(
                    "const card = document.querySelector('[data-node=\"{node}\"]'); \
                     return card.querySelector('.program').textContent === 'RUNNING' && \
                       card.querySelector('.state').textContent.startsWith('Running') && \
                       card.querySelector('.lag').textContent === '0';"
                ),
            )
            .await;
        browser
            .script("document.getElementById('message').textContent = ''; return null;")
            .await;
        browser
            .click_when_shown(&format!("[data-node=\"{node}\"] .act-hand"))
            .await;
        assert_eq!(
            browser.confirm().await,
            format!("hand the key over to {node}?")
        );
        let message = browser
            .wait_for(
                "the hand-over's answer",
                "const m = document.getElementById('message').textContent; \
                 return m === '' || m.endsWith(': sent') ? null : m;",
            )
            .await;
        let message = message.as_str().unwrap_or_default().to_string();
        if !message.contains("refused (409)") {
            assert!(!message.contains("refused"), "{message}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hand-over to {node} is still refused: {message}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_key_and_hands_it_over() {
    use crate::leadership::{leadership_patch, pool, wait_for_sole_leader};

    let sup = pool(2).await;
    let config = DaemonConfig::write(&sup, leadership_patch(&sup, json!({})));
    let daemon = config.start(&[]).await;
    wait_for_sole_leader(&sup, Duration::from_secs(30)).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{}/", config.api_listen))
        .await;
    browser
        .script("window.nkNotReloaded = true; return null;")
        .await;

    // The leader line names the node the simulators say holds the key; the badge is on it only.
    page_agrees_with_the_sims(&browser, &sup, Duration::from_secs(60)).await;

    // The countdown to the next slot goes down (a later slot, or none known after the epoch's
    // last pool slot, starts the reading again; a next slot is known within an epoch).
    let countdown = browser
        .wait_for_within(
            "the countdown to the next slot to go down",
            Duration::from_secs(60),
            "const line = document.getElementById('leader-line').textContent; \
             const m = line.match(/next slot (\\S+) in (?:(\\d+) min )?(\\d+) s$/); \
             if (!m) { window.nkCountdown = null; return null; } \
             const left = Number(m[2] || 0) * 60 + Number(m[3]); \
             const seen = window.nkCountdown; \
             if (!seen || seen.slot !== m[1] || left > seen.left) { \
               window.nkCountdown = {slot: m[1], left, at: Date.now()}; return null; } \
             return left < seen.left ? [seen.left, left, line] : null;",
        )
        .await;
    assert!(countdown[1].as_u64() < countdown[0].as_u64(), "{countdown}");

    // The guard line: a hand-over can go, or what it waits for.
    let guard = browser
        .script("return document.getElementById('guard-line').textContent;")
        .await;
    let guard = guard.as_str().unwrap_or_default();
    assert!(
        guard == "a hand-over can go now"
            || guard
                .strip_prefix("a hand-over waits: ")
                .is_some_and(|why| !why.trim().is_empty()),
        "{guard}"
    );

    // Every sparkline has a line (history and live), and the page's own history grows from the
    // live feed: each node gets a newer sample after a step (10 s), without a reload.
    browser
        .wait_for(
            "a sparkline of at least two points on every card",
            "const lines = [...document.querySelectorAll('article[data-node] .spark polyline')]; \
             return lines.length === 2 && lines.every(l => \
               (l.getAttribute('points') || '').trim().split(/\\s+/).length >= 2);",
        )
        .await;
    let newest = browser
        .wait_for(
            "the page's history of both nodes",
            "const nodes = window.nkHistory.current().nodes; \
             const newest = Object.values(nodes).map(s => s.length ? s[s.length - 1][0] : null); \
             return newest.length === 2 && newest.every(t => t !== null) ? nodes : null;",
        )
        .await;

    // Hand the key over from the page: the other node holds it, alone, and the badge follows.
    let leader = page_agrees_with_the_sims(&browser, &sup, Duration::from_secs(60)).await;
    let other = sup
        .sims
        .iter()
        .find(|s| s.name != leader)
        .unwrap()
        .name
        .clone();
    let token = std::fs::read_to_string(config.dir.join("api.token")).expect("the API token");
    browser.type_into("#token", token.trim()).await;
    browser.click("#token-save").await;
    hand_over_from_the_page(&browser, &other).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sole_leader(&sup).await.as_deref() != Some(other.as_str()) {
        if std::time::Instant::now() > deadline {
            let message = browser
                .script("return document.getElementById('message').textContent;")
                .await;
            panic!(
                "{other} does not hold the key alone after 60 s; the page says {message}\n{}",
                daemon.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        page_agrees_with_the_sims(&browser, &sup, WAIT).await,
        other,
        "{}",
        daemon.log_text()
    );

    let grown = browser
        .wait_for(
            "a newer sample of each node in the page's history",
            &format!(
                "const before = {newest}; \
                 const nodes = window.nkHistory.current().nodes; \
                 const last = (s) => s && s.length ? s[s.length - 1][0] : 0; \
                 return Object.keys(before).every(n => last(nodes[n]) > last(before[n])) \
                   ? nodes : null;"
            ),
        )
        .await;
    for (node, samples) in grown.as_object().unwrap() {
        let times: Vec<i64> = samples
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[0].as_i64().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= 10),
            "{node}: one sample per step: {times:?}"
        );
    }
    assert_eq!(
        browser
            .script("return window.nkNotReloaded === true;")
            .await,
        true,
        "the page was reloaded"
    );
    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            // A hand-over asked while the node was not yet in sync (asked again).
            let message = entry["message"].as_str().unwrap_or_default();
            !(message.contains(&format!("/v1/leader/{other}")) && message.contains("409"))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
