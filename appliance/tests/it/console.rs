//! The web console in headless Chromium: first-admin setup, users, MFA
//! enrolment and sign-in with a code from oathtool, an API token created
//! and revoked, the audit page's filters, collections and records, exports,
//! jobs and webhooks. Every page is screenshotted,
//! scanned with axe-core (no serious or critical violations) and checked
//! for browser console errors (script errors, CSP violations, failed
//! asset loads).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::api::{setup_token, ApiClient, PASSWORD};
use crate::harness::app::AppConfig;
use crate::harness::browser::Browser;
use crate::harness::pg::shared;
use crate::harness::receiver::{Answer, Receiver};

/// axe-core's `axe.min.js`, installed by scripts/test with npm.
fn axe_source() -> String {
    let path = std::env::var("AXE_CORE_JS").unwrap_or_else(|_| {
        panic!(
            "AXE_CORE_JS is not set: point it at axe-core's axe.min.js (scripts/test installs \
             axe-core with npm and sets it)"
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn oathtool(secret: &str, unix_time: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "--base32", "--digits=6"])
        .arg(format!("--now=@{unix_time}"))
        .arg(secret)
        .output()
        .expect("oathtool is installed (apt-get install oathtool)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Browser console entries that are not expected: anything but the
/// network log lines for the API's deliberate 4xx answers.
fn unexpected(entries: Vec<String>) -> Vec<String> {
    entries
        .into_iter()
        .filter(|e| {
            let expected_status = [401, 403, 409, 422, 429].iter().any(|s| {
                e.contains(&format!("the server responded with a status of {s}"))
                    && e.contains("/api/v1/")
            });
            !expected_status && (e.starts_with("SEVERE") || e.starts_with("WARNING"))
        })
        .collect()
}

struct Checks {
    axe: String,
    problems: Vec<String>,
}

impl Checks {
    /// Screenshots at 1366 and 390 px wide (a phone: the page must not
    /// scroll sideways there), accessibility scan and console check of the
    /// page shown.
    async fn page(&mut self, browser: &mut Browser, name: &str) {
        for width in [390, 1366] {
            browser.set_width(width).await;
            // How far the page scrolls sideways, and the outermost elements
            // that stick out (not inside a box that scrolls on its own).
            let sideways = browser
                .script(
                    "const root = document.documentElement;\
                     const scrolls = (e) => { for (let p = e.parentElement; p; p = p.parentElement) {\
                       const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; } return false; };\
                     const out = [...document.body.querySelectorAll('*')].filter((e) =>\
                       e.getBoundingClientRect().right > root.clientWidth + 1 && !scrolls(e)\
                       && !(e.parentElement && e.parentElement.getBoundingClientRect().right > root.clientWidth + 1));\
                     return [root.scrollWidth - root.clientWidth, out.slice(0, 3).map((e) =>\
                       e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))];",
                    serde_json::json!([]),
                )
                .await;
            if sideways[0].as_i64().unwrap_or(0) > 0 {
                self.problems.push(format!(
                    "{name}: at {width} px the page scrolls sideways by {} px: {}",
                    sideways[0], sideways[1]
                ));
            }
            let shot = browser.screenshot(&format!("{name}-{width}")).await;
            assert!(std::fs::metadata(&shot)
                .map(|m| m.len() > 1000)
                .unwrap_or(false));
        }
        for v in browser.axe(&self.axe).await {
            self.problems.push(format!(
                "{name}: accessibility: {} ({}): {} {}",
                v["id"], v["impact"], v["help"], v["nodes"]
            ));
        }
        for e in unexpected(browser.console_log().await) {
            self.problems.push(format!("{name}: console: {e}"));
        }
    }
}

/// The browser flow is one long future; in a debug build its state does
/// not fit a test thread's default stack, so it runs on a runtime worker
/// with a bigger one.
#[test]
fn the_console_from_first_admin_to_audit_log() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(32 * 1024 * 1024)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(runtime.spawn(console_flow()))
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

async fn console_flow() {
    let db = shared().create_database().await;
    // A webhook receiver on this host is allow-listed for the webhooks page.
    let config = AppConfig::external(
        &shared().dsn(&db),
        "[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n",
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let token = setup_token(&mut app);
    let base = format!("https://localhost:{}", addr.port());
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut b = Browser::start(&shots).await;
    let mut checks = Checks {
        axe: axe_source(),
        problems: Vec::new(),
    };

    // A visit without a session lands on setup while no admin exists.
    b.goto(&format!("{base}/system")).await;
    b.page("setup").await;
    // First-admin setup from the link.
    b.goto(&format!("{base}/setup#token={token}")).await;
    b.page("setup").await;
    checks.page(&mut b, "setup").await;
    b.type_into("#setup-username", "chief").await;
    b.type_into("#setup-password", PASSWORD).await;
    b.type_into("#setup-password-confirm", "a different one entirely")
        .await;
    b.click("#setup-form button[type=submit]").await;
    b.wait_text("#setup-password-confirm-error", "differ").await;
    b.type_into("#setup-password-confirm", PASSWORD).await;
    b.click("#setup-form button[type=submit]").await;
    b.page("system").await;
    b.wait_text("#system-version", env!("CARGO_PKG_VERSION"))
        .await;
    b.wait_text("#system-schema", "compatible").await;
    b.wait_text("#system-docs", "Monitoring: metrics").await;
    // Nothing scheduled or drilled on a new installation, and it says so.
    b.wait_text("#backup-schedule", "taken only by hand").await;
    b.wait_text("#backup-drill", "never run").await;
    // The running release's notes, from the CHANGELOG.md compiled in.
    b.wait_text(
        "#release-notes",
        &format!("Release notes: {}", env!("CARGO_PKG_VERSION")),
    )
    .await;
    b.wait_text("#release-notes", "Might break").await;
    b.wait_text("#release-notes", "Known issues").await;
    checks.page(&mut b, "system").await;

    // Users: a weak password is explained inline; then a user is created.
    b.click("nav a[href='/users']").await;
    b.page("users").await;
    b.type_into("#new-username", "erin").await;
    b.click("#new-role option[value='editor']").await;
    b.type_into("#new-password", "password123").await;
    b.click("#user-create-form button[type=submit]").await;
    b.wait_text("#new-password-error", "12").await;
    b.type_into("#new-password", "orchid lantern drifts east")
        .await;
    b.click("#user-create-form button[type=submit]").await;
    b.wait_text("tr[data-username='erin'] td[data-field='role']", "editor")
        .await;
    checks.page(&mut b, "users").await;

    // My account: enrol TOTP with a code from an independent implementation.
    b.click("nav a[href='/account']").await;
    b.page("account").await;
    checks.page(&mut b, "account").await;
    b.click("#mfa-start").await;
    let secret = b.text("#mfa-secret").await;
    assert!(secret.len() >= 32, "{secret}");
    let enrolled_at = now();
    b.type_into("#mfa-code", &oathtool(&secret, enrolled_at))
        .await;
    b.click("#mfa-confirm-form button[type=submit]").await;
    b.find("#recovery-codes li").await;
    checks.page(&mut b, "account-mfa").await;

    // An API token: shown once, works, then revoked in the console.
    b.type_into("#token-name", "siem").await;
    b.click("#perm-audit-read").await;
    b.click("#token-create-form button[type=submit]").await;
    let secret_token = b.text("#token-secret").await;
    assert!(secret_token.starts_with("m77_"), "{secret_token}");
    let api = ApiClient::with_token(addr, &secret_token);
    assert_eq!(api.get("/api/v1/audit").await.status, 200);
    b.click("#tokens-table tr[data-token-id] button[data-action='revoke']")
        .await;
    b.click("#tokens-table tr[data-token-id] button[data-action='confirm-revoke']")
        .await;
    b.wait_text(
        "#tokens-table tr[data-token-id] td[data-field='status']",
        "revoked",
    )
    .await;
    assert_eq!(api.get("/api/v1/audit").await.status, 401);
    checks.page(&mut b, "account-tokens").await;

    Box::pin(collections_flow(&mut b, &mut checks)).await;
    // Every console address loads the console, also when opened directly
    // (a bookmark with its filter and sort).
    let filter = "%7B%22field%22%3A%22qty%22%2C%22op%22%3A%22gt%22%2C%22value%22%3A1%7D";
    b.goto(&format!(
        "{base}/collections/assets?filter={filter}&sort=-qty"
    ))
    .await;
    b.page("records").await;
    // Sorted by qty descending: the highest (the last bulk record) first.
    b.wait_text("#records-table td[data-field='label']", "bulk29")
        .await;
    b.wait_text("#records-count", "matching records").await;
    b.goto(&format!("{base}/collections/assets/schema")).await;
    b.page("schema").await;
    b.goto(&format!("{base}/collections")).await;
    b.page("collections").await;

    // Sign out, then sign in with password and TOTP (the next step's code:
    // the enrolment used the current one, and codes work once).
    b.click("#signout").await;
    b.page("login").await;
    checks.page(&mut b, "login").await;

    b.type_into("#login-username", "chief").await;
    b.type_into("#login-password", PASSWORD).await;
    b.click("#login-form button[type=submit]").await;
    b.find("#login-totp").await;
    checks.page(&mut b, "login-mfa").await;
    b.type_into("#login-totp", "000000").await;
    b.click("#login-form button[type=submit]").await;
    b.wait_text("#alert", "code is wrong").await;
    b.type_into("#login-totp", &oathtool(&secret, enrolled_at + 30))
        .await;
    b.click("#login-form button[type=submit]").await;
    b.page("system").await;

    // The audit page shows what happened, and its filters narrow it.
    b.click("nav a[href='/audit']").await;
    b.page("audit").await;
    for action in [
        "setup.complete",
        "user.create",
        "account.mfa_enable",
        "token.create",
        "token.revoke",
    ] {
        b.wait_text("#audit-table", action).await;
    }
    checks.page(&mut b, "audit").await;
    b.type_into("#filter-action", "token.revoke").await;
    b.click("#audit-filters button[type=submit]").await;
    b.page("audit").await;
    let rows = b
        .script(
            "return [...document.querySelectorAll('#audit-table tbody tr')].map(r => r.querySelector('[data-field=action]').textContent);",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(rows, serde_json::json!(["token.revoke"]), "filtered rows");
    let url = b
        .script("return location.search;", serde_json::json!([]))
        .await;
    assert_eq!(url, "?action=token.revoke", "the filter is in the URL");
    b.type_into("#filter-actor", "nobody-did-this").await;
    b.click("#audit-filters button[type=submit]").await;
    b.page("audit").await;
    b.find("#audit-empty").await;
    checks.page(&mut b, "audit-empty").await;

    // A reset link from the host (`admin reset-password`) sets erin's
    // password in the console — here in a browser where chief is signed
    // in, whose session the reset neither needs nor touches.
    let issued = config.run(&["admin", "reset-password", "erin"]);
    assert_eq!(issued.code(), Some(0), "{}", issued.all());
    let reset_token = issued
        .stdout
        .trim()
        .split_once("#token=")
        .expect("a reset link")
        .1
        .to_string();
    b.goto(&format!("{base}/reset-password#token={reset_token}"))
        .await;
    b.page("reset-password").await;
    checks.page(&mut b, "reset-password").await;
    b.type_into("#reset-new-password", "violet harbour sings twice")
        .await;
    b.type_into("#reset-new-password-confirm", "something else entirely")
        .await;
    b.click("#reset-form button[type=submit]").await;
    b.wait_text("#reset-new-password-confirm-error", "differ")
        .await;
    b.type_into("#reset-new-password-confirm", "violet harbour sings twice")
        .await;
    b.click("#reset-form button[type=submit]").await;
    b.wait_text("#reset-done", "Your password is set").await;
    checks.page(&mut b, "reset-password-done").await;
    let erin = ApiClient::login(addr, "erin", "violet harbour sings twice").await;
    assert_eq!(erin.get("/api/v1/me").await.status, 200);
    b.click("#reset-done a[href='/login']").await;
    b.page("login").await;
    // Chief's session in this browser was not touched.
    b.goto(&format!("{base}/system")).await;
    b.page("system").await;
    webhooks_flow(&mut b, &mut checks).await;
    imports_flow(&mut b, &mut checks, &shots).await;

    assert!(
        checks.problems.is_empty(),
        "console problems (screenshots in {}):\n{}",
        shots.display(),
        checks.problems.join("\n")
    );
    assert!(app.stop().success());
}

/// Collections: create one, give it fields, add and edit records, filter
/// and sort them, see a record's history.
/// The labels of the records table, top to bottom.
async fn shown_labels(b: &Browser) -> serde_json::Value {
    b.script(
        "return [...document.querySelectorAll('#records-table td[data-field=label]')].map(c => c.textContent);",
        serde_json::json!([]),
    )
    .await
}

async fn collections_flow(b: &mut Browser, checks: &mut Checks) {
    // Collections: create one, give it fields, add and edit records, filter
    // and sort them, see a record's history.
    b.click("nav a[href='/collections']").await;
    b.page("collections").await;
    b.find("#collections-empty").await;
    checks.page(b, "collections").await;
    b.type_into("#collection-name", "assets").await;
    b.type_into("#collection-title", "Hardware assets").await;
    b.click("#collection-create-form button[type=submit]").await;
    b.page("schema").await;
    for (name, kind, extra) in [
        ("label", "text", ""),
        ("qty", "integer", "#field-indexed"),
        ("kind", "enum", ""),
    ] {
        b.type_into("#field-name", name).await;
        b.click(&format!("#field-type option[value='{kind}']"))
            .await;
        if kind == "enum" {
            b.type_into("#field-enum", "laptop, phone").await;
        }
        if !extra.is_empty() {
            b.click(extra).await;
        }
        b.click("#field-add-form button[type=submit]").await;
        b.page("schema").await;
        b.find(&format!("#fields-table tr[data-field='{name}']"))
            .await;
    }
    checks.page(b, "schema").await;
    b.click("a[href='/collections/assets']").await;
    b.page("records").await;
    b.find("#records-empty").await;
    for (label, qty) in [("ThinkPad", "3"), ("Pixel", "1")] {
        b.click("#new-record").await;
        b.type_into("#rec-label", label).await;
        b.type_into("#rec-qty", qty).await;
        b.click("#rec-kind option[value='laptop']").await;
        b.click("#record-form button[type=submit]").await;
        b.wait_text("#records-table", label).await;
    }
    checks.page(b, "records").await;
    // A bad value is explained next to its field.
    b.click("#records-table tr[data-record-id] button[data-action='open']")
        .await;
    b.find("#record-history li[data-action='record.create']")
        .await;
    b.type_into("#rec-qty", "12.5").await;
    b.click("#record-form button[type=submit]").await;
    b.wait_text("#rec-qty-error", "integer").await;
    checks.page(b, "record-form").await;
    // Filter builder: qty greater than 1; the URL keeps it.
    b.click("#add-condition").await;
    b.click("#cond-field-0 option[value='qty']").await;
    b.click("#cond-op-0 option[value='gt']").await;
    b.type_into("#cond-value-0", "1").await;
    b.click("#records-filter button[type=submit]").await;
    b.page("records").await;
    let url = b
        .script("return location.search;", serde_json::json!([]))
        .await;
    assert!(url.as_str().unwrap_or("").contains("filter="), "{url}");
    let labels = b
        .script(
            "return [...document.querySelectorAll('#records-table td[data-field=label]')].map(c => c.textContent);",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(labels, serde_json::json!(["ThinkPad"]));
    // An alternative in the same group (OR), restored from the URL: qty > 1
    // or label = Pixel; then the alternative negated: qty > 1 or not Pixel.
    b.click("#add-alternative-0").await;
    b.click("#cond-field-1 option[value='label']").await;
    b.click("#cond-op-1 option[value='eq']").await;
    b.type_into("#cond-value-1", "Pixel").await;
    b.click("#records-filter button[type=submit]").await;
    b.page("records").await;
    let search = b
        .script(
            "return decodeURIComponent(location.search);",
            serde_json::json!([]),
        )
        .await;
    assert!(
        search.as_str().unwrap_or("").contains(r#"{"or":["#),
        "{search}"
    );
    assert_eq!(
        shown_labels(b).await,
        serde_json::json!(["ThinkPad", "Pixel"])
    );
    checks.page(b, "records-filter-or").await;
    b.click("#cond-not-1").await;
    b.click("#records-filter button[type=submit]").await;
    b.page("records").await;
    assert_eq!(shown_labels(b).await, serde_json::json!(["ThinkPad"]));
    // The export link carries the view's filter: the file holds what the
    // table shows (fetched by the page, with the session, as a download is).
    let csv = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.querySelector('#records-export').href)\
               .then(r => r.text().then(t => done(r.status + ' ' + r.headers.get('content-type') + '\\n' + t)))\
               .catch(e => done('failed: ' + e));",
        )
        .await;
    let csv = csv.as_str().unwrap_or("");
    assert!(
        csv.starts_with("200 text/csv; charset=utf-8; header=present\nid,label,qty,kind\r\n"),
        "{csv:?}"
    );
    assert!(csv.contains(",ThinkPad,3,laptop\r\n"), "{csv:?}");
    assert!(!csv.contains("Pixel"), "{csv:?}");
    // The same view as a background export: progress until ready, then a
    // download link; the file holds the view's records.
    b.click("#records-export-job").await;
    b.page("exports").await;
    b.wait_text(
        "#exports-table tr.highlight td[data-field='state']",
        "ready",
    )
    .await;
    let csv = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.querySelector('#exports-table tr.highlight a[data-action=download]').href)\
               .then(r => r.text().then(t => done(r.status + '\\n' + t)))\
               .catch(e => done('failed: ' + e));",
        )
        .await;
    let csv = csv.as_str().unwrap_or("");
    assert!(csv.starts_with("200\nid,label,qty,kind\r\n"), "{csv:?}");
    assert!(
        csv.contains(",ThinkPad,3,laptop\r\n") && !csv.contains("Pixel"),
        "{csv:?}"
    );
    checks.page(b, "exports").await;
    // The job that wrote it, with its attempt, on the admin's jobs page.
    b.click("a[href='/jobs']").await;
    b.page("jobs").await;
    b.wait_text("#jobs-table td[data-field='state']", "succeeded")
        .await;
    b.click("#jobs-table button[data-action='attempts']").await;
    b.wait_text("#job-attempts td[data-field='outcome']", "succeeded")
        .await;
    checks.page(b, "jobs").await;
    // A running job's progress as the pages draw it on each poll: rows and
    // share first, then the recent rate and the time left.
    let shown = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             import('/assets/components/progress.js').then(async (m) => {\
               const first = m.progressView('t', 'Test', m.measure('export', { rows: 500, estimate: 1000 }));\
               await new Promise((r) => setTimeout(r, 700));\
               const next = m.progressView('t', 'Test', m.measure('export', { rows: 800, estimate: 1000 }));\
               done([first.textContent, next.textContent, next.querySelector('progress').value]);\
             }).catch((e) => done(['failed: ' + e]));",
        )
        .await;
    assert_eq!(shown[0], " 500 rows, about 50 %", "{shown}");
    let next = shown[1].as_str().unwrap_or_default();
    assert!(
        next.starts_with(" 800 rows, about 80 %, ")
            && next.contains(" rows/s, about ")
            && next.ends_with(" s left"),
        "{shown}"
    );
    assert_eq!(shown[2], 800, "{shown}");
    b.script(
        "location.href = '/collections/assets'; return null;",
        serde_json::json!([]),
    )
    .await;
    b.page("records").await;
    // Sorting by a column heading.
    b.click("#records-clear").await;
    b.page("records").await;
    b.click("#records-table a[data-sort='qty']").await;
    b.page("records").await;
    let sorted = b
        .script(
            "return [...document.querySelectorAll('#records-table td[data-field=label]')].map(c => c.textContent);",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(sorted, serde_json::json!(["Pixel", "ThinkPad"]));
    checks.page(b, "records-sorted").await;

    // Paging: 30 more records (made through the API from the page, with
    // the session's CSRF token), then next and previous page.
    let made = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             (async () => {\
               const me = await (await fetch('/api/v1/me')).json();\
               for (let i = 0; i < 30; i++) {\
                 const r = await fetch('/api/v1/collections/assets/records', { method: 'POST',\
                   headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },\
                   body: JSON.stringify({ data: { label: 'bulk' + String(i).padStart(2, '0'), qty: 100 + i } }) });\
                 if (r.status !== 201) return done('failed: ' + r.status);\
               }\
               done('ok');\
             })();",
        )
        .await;
    assert_eq!(made, "ok");
    b.click("#records-clear").await;
    b.page("records").await;
    // The page says how many records there are (the API's exact count).
    let total = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/api/v1/collections/assets/records?limit=1&count=exact')\
               .then((r) => r.json()).then((p) => done(String(p.count.value)));",
        )
        .await;
    let total = total.as_str().unwrap_or_default().to_string();
    assert!(total.parse::<u32>().is_ok_and(|n| n > 30), "{total}");
    b.wait_text("#records-count", &format!("{total} records"))
        .await;
    let first_page = b
        .script(
            "return [...document.querySelectorAll('#records-table tr[data-record-id]')].map(r => r.dataset.recordId);",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(first_page.as_array().map(Vec::len), Some(25));
    b.click("#records-next").await;
    b.wait_text("#records-table", "bulk29").await;
    b.find("#records-prev").await;
    checks.page(b, "records-page-2").await;
    b.click("#records-prev").await;
    b.wait_text("#records-table", "ThinkPad").await;
}

/// Webhooks page: add one for the assets collection, see the secret once,
/// a record created fires a delivery that shows up in the log with its
/// attempt, redeliver it, rotate the secret.
async fn webhooks_flow(b: &mut Browser, checks: &mut Checks) {
    let receiver = Receiver::start("127.0.0.1", vec![Answer::status(204)]).await;
    b.click("a[href='/webhooks']").await;
    b.page("webhooks").await;
    b.find("#webhooks-empty").await;
    b.type_into("#webhook-url", &receiver.url("/in")).await;
    b.type_into("#webhook-description", "inventory sync").await;
    b.script(
        "document.getElementById('webhook-collection').value = 'assets'; return null;",
        serde_json::json!([]),
    )
    .await;
    // No event picked: the form says so before asking the server.
    b.click("#webhook-create-form button[type=submit]").await;
    b.wait_text("#webhook-events-error", "at least one event")
        .await;
    b.click("#event-record-created").await;
    b.click("#webhook-create-form button[type=submit]").await;
    b.wait_text("#webhook-secret", "whsec_").await;
    b.wait_text("#webhooks-table td[data-field='state']", "enabled")
        .await;
    let made = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             (async () => {\
               const me = await (await fetch('/api/v1/me')).json();\
               const r = await fetch('/api/v1/collections/assets/records', { method: 'POST',\
                 headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },\
                 body: JSON.stringify({ data: { label: 'Hooked', qty: 1 } }) });\
               done(String(r.status));\
             })();",
        )
        .await;
    assert_eq!(made, "201");
    receiver.wait_for(1, Duration::from_secs(20)).await;
    b.click("#webhooks-table button[data-action='deliveries']")
        .await;
    b.wait_text("#deliveries-table td[data-field='state']", "delivered")
        .await;
    b.click("#deliveries-table button[data-action='attempts']")
        .await;
    b.wait_text("#delivery-attempts td[data-field='status']", "204")
        .await;
    b.wait_text("#delivery-payload", "Hooked").await;
    checks.page(b, "webhooks").await;
    b.click("#deliveries-table button[data-action='redeliver']")
        .await;
    b.wait_text("#notice", "queued again").await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    b.click("#webhooks-table button[data-action='rotate']")
        .await;
    b.wait_text("#webhook-created", "new secret").await;
}

/// Import from the records page: a CSV with one good and one bad row,
/// valid rows kept; the imports page follows it to the end and offers the
/// error report.
async fn imports_flow(b: &mut Browser, checks: &mut Checks, dir: &std::path::Path) {
    let file = dir.join("to-import.csv");
    std::fs::write(
        &file,
        "label,qty\r\nImported from a file,5\r\nbad row,many\r\n",
    )
    .expect("write the file to import");
    b.click("nav a[href='/collections']").await;
    b.page("collections").await;
    b.click("a[href='/collections/assets']").await;
    b.page("records").await;
    b.click("#records-import summary").await;
    b.click("#import-submit").await;
    b.wait_text("#import-file-error", "Choose a file").await;
    b.choose_file("#import-file", &file).await;
    b.script(
        "document.getElementById('import-mode').value = 'skip_invalid'; return null;",
        serde_json::json!([]),
    )
    .await;
    b.click("#import-submit").await;
    b.page("imports").await;
    b.wait_text(
        "#imports-table tr.highlight td[data-field='state']",
        "completed",
    )
    .await;
    b.wait_text(
        "#imports-table tr.highlight td[data-field='rows']",
        "1 of 2 imported, 1 invalid",
    )
    .await;
    let report = b
        .cmd_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.querySelector('#imports-table tr.highlight a[data-action=errors]').href)\
               .then(r => r.text().then(t => done(r.status + '\\n' + t)))\
               .catch(e => done('failed: ' + e));",
        )
        .await;
    let report = report.as_str().unwrap_or("");
    assert!(
        report.starts_with("200\nline,field,message\r\n3,qty,"),
        "{report:?}"
    );
    checks.page(b, "imports").await;
}
