//! The REST API as a caller sees it: anonymous, a browser session (cookie
//! plus CSRF token) or an API token; and a `Site`, a running server with its
//! own database and a first admin already set up.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::app::{App, AppConfig};
use super::client::{self, Response};
use super::pg::{shared, PgCluster};

pub const ADMIN: &str = "root-admin";
/// Passes the password policy; every test user gets it unless a test
/// changes it.
pub const PASSWORD: &str = "violet tractor sings at noon";

/// A caller of the API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    pub addr: SocketAddr,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// Extra headers sent on every request (e.g. `Origin`).
    pub extra: Vec<(String, String)>,
}

impl ApiClient {
    pub fn anonymous(addr: SocketAddr) -> ApiClient {
        ApiClient {
            addr,
            cookie: None,
            csrf: None,
            bearer: None,
            extra: Vec::new(),
        }
    }

    pub fn with_token(addr: SocketAddr, token: &str) -> ApiClient {
        ApiClient {
            bearer: Some(token.to_string()),
            ..ApiClient::anonymous(addr)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> ApiClient {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    /// One request; a JSON body when given.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let body = body.map(|b| b.to_string());
        self.call_raw(method, path, body.as_deref(), &[]).await
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("__Host-mogothrow77_session={c}"));
        if let Some(c) = &cookie {
            all.push(("Cookie", c));
        }
        if let Some(csrf) = &self.csrf {
            all.push(("X-CSRF-Token", csrf));
        }
        let bearer = self.bearer.as_ref().map(|t| format!("Bearer {t}"));
        if let Some(b) = &bearer {
            all.push(("Authorization", b));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            all.push(("Content-Type", "application/json"));
        }
        for (k, v) in &self.extra {
            all.push((k, v));
        }
        client::request(self.addr, method, path, &all, body.map(str::as_bytes))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call("POST", path, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.call("PATCH", path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.call("DELETE", path, None).await
    }

    /// Takes the session cookie and CSRF token from a sign-in response.
    pub fn adopt_session(&mut self, response: &Response) {
        self.cookie = Some(session_cookie(response).expect("a session cookie"));
        self.csrf = response.json()["csrf_token"].as_str().map(str::to_string);
    }

    /// Signs in with a password (and optionally a TOTP code); panics unless
    /// it works.
    pub async fn login(addr: SocketAddr, username: &str, password: &str) -> ApiClient {
        let mut client = ApiClient::anonymous(addr);
        let r = client
            .post(
                "/api/v1/auth/login",
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(r.status, 200, "login as {username}: {}", r.body);
        client.adopt_session(&r);
        client
    }
}

/// The session id from a response's `Set-Cookie`, if it sets one.
pub fn session_cookie(response: &Response) -> Option<String> {
    response
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.strip_prefix("__Host-mogothrow77_session=")
                .and_then(|rest| rest.split(';').next())
                .filter(|id| !id.is_empty())
                .map(str::to_string)
        })
}

/// Asserts an error response's status and `code`.
#[track_caller]
pub fn assert_error(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    let body = response.json();
    assert_eq!(body["code"], code, "{}", response.body);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        response.body
    );
    assert!(
        body["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        response.body
    );
}

/// A running server on its own database, with the first admin created
/// through the setup link.
pub struct Site {
    pub app: App,
    pub config: AppConfig,
    pub db: String,
    pub addr: SocketAddr,
    pub admin: ApiClient,
}

impl Site {
    pub async fn start() -> Site {
        Site::start_with("").await
    }

    /// `extra_toml` goes after `[database]` (use table headers for others).
    pub async fn start_with(extra_toml: &str) -> Site {
        Site::start_on(shared(), extra_toml).await
    }

    /// As [`Site::start_with`], on a database of `cluster`.
    pub async fn start_on(cluster: &PgCluster, extra_toml: &str) -> Site {
        let db = cluster.create_database().await;
        let config = AppConfig::external(&cluster.dsn(&db), extra_toml);
        Site::set_up(config, db).await
    }

    /// A site on its own managed cluster (no `database.url`); `db` names
    /// no database of the shared cluster, so [`Site::sql`] is not for it.
    pub async fn start_managed(extra_toml: &str) -> Site {
        Site::set_up(AppConfig::new(extra_toml), String::new()).await
    }

    /// A site with `config` on database `db` (of the shared cluster, or none).
    pub async fn set_up(config: AppConfig, db: String) -> Site {
        let mut app = config.spawn();
        let addr = app.wait_ready();
        let token = setup_token(&mut app);
        let mut admin = ApiClient::anonymous(addr);
        let r = admin
            .post(
                "/api/v1/setup",
                json!({ "token": token, "username": ADMIN, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        admin.adopt_session(&r);
        Site {
            app,
            config,
            db,
            addr,
            admin,
        }
    }

    /// Creates a user with `role` and signs them in.
    pub async fn user(&self, username: &str, role: &str) -> (i64, ApiClient) {
        let r = self
            .admin
            .post(
                "/api/v1/users",
                json!({ "username": username, "role": role, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_i64().expect("id");
        (id, ApiClient::login(self.addr, username, PASSWORD).await)
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        shared().connect(&self.db).await
    }
}

/// Percent-encodes a query parameter's value (unreserved characters kept).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Repeats a GET until it answers `status`, and returns the body. For
/// changes made outside the replica asked (by SQL, or on another replica),
/// which reach its caches by notification; well under the caches' 30 s
/// lifetime, so passing means the notification did the work.
pub async fn eventually(client: &ApiClient, path: &str, status: u16) -> Value {
    let within = std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();
    loop {
        let r = client.get(path).await;
        if r.status == status {
            return r.json();
        }
        assert!(
            started.elapsed() < within,
            "{path} still answers {} after {within:?}: {}",
            r.status,
            r.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The token from the "no admin exists yet" log event's setup link.
pub fn setup_token(app: &mut App) -> String {
    let event = app.wait_event(
        "no admin exists yet: open the first-admin setup link (one-time; `mogothrow77 admin setup-token` issues a new one)",
        std::time::Duration::from_secs(30),
    );
    let link = event["setup_link"].as_str().expect("setup_link");
    link.split_once("#token=")
        .expect("token in link")
        .1
        .to_string()
}
