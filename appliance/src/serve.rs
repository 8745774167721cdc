//! `mogothrow77 serve`: bind, become the service user, TLS, database,
//! migrations, then serve until SIGTERM/SIGINT and drain.

use crate::db::Sql;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::app::{AppState, Caches, Shared};
use crate::config::Settings;
use crate::db::migrate;
use crate::exit::Exit;
use crate::http::rate_limiter::RateLimiter;
use crate::http::server;
use crate::identity::keys::ServerKeys;
use crate::identity::{setup, AuthSettings};
use crate::metrics::Metrics;
use crate::startup::{self, StartError};
use crate::{systemd, tls};

pub async fn run(settings: Settings) -> Exit {
    let started = Instant::now();
    match serve(settings, started).await {
        Ok(exit) => exit,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("mogothrow77: {e}");
            e.exit()
        }
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    let err = |e: std::io::Error| StartError::Bind {
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// SIGTERM/SIGINT (stop) and SIGHUP (reload), installed before anything
/// else so that a signal during start-up is never fatal by default.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum SignalEvent {
    Shutdown,
    Reload,
}

impl Signals {
    fn install() -> Result<Signals, StartError> {
        let install = |kind| {
            signal(kind)
                .map_err(|e| StartError::Other(format!("cannot install signal handlers: {e}")))
        };
        Ok(Signals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.term.recv() => SignalEvent::Shutdown,
            _ = self.int.recv() => SignalEvent::Shutdown,
            _ = self.hup.recv() => SignalEvent::Reload,
        }
    }

    /// True when SIGTERM/SIGINT arrived (during start-up); does not wait.
    fn shutdown_requested(&mut self) -> bool {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.term.poll_recv(&mut cx), Poll::Ready(_))
            || matches!(self.int.poll_recv(&mut cx), Poll::Ready(_))
    }
}

async fn serve(settings: Settings, started: Instant) -> Result<Exit, StartError> {
    let config = &settings.config;
    let signals = Signals::install()?;
    // Bind first: a port below 1024 needs root, which is dropped next.
    let listener = bind(settings.listen)?;
    let account = startup::become_service_user(&settings)?;
    if account.is_some() {
        tracing::info!(
            user = %config.service.user,
            group = %config.service.group,
            "dropped root privileges"
        );
    }

    let tls = if config.tls.enabled {
        let (paths, generated) = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => (
                tls::CertPaths {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                None,
            ),
            _ => {
                let paths = tls::self_signed_paths(&config.state_dir);
                let hostnames = self_signed_hostnames(config);
                keep_self_signed(&paths, &hostnames)?;
                (paths, Some(hostnames))
            }
        };
        let resolver = Arc::new(tls::CertResolver::new(paths.clone())?);
        tracing::info!(sha256 = %resolver.fingerprint(), "TLS certificate loaded");
        if let Some(hostnames) = generated {
            tokio::spawn(renew_self_signed(resolver.clone(), paths, hostnames));
        }
        Some(resolver)
    } else {
        tracing::warn!("TLS is disabled (tls.enabled = false): serving plain HTTP");
        None
    };

    // Before the database: a key file that cannot be read is the host's
    // configuration (exit 2), whatever the database's state.
    let vault = Arc::new(crate::secrets::Vault::open(&settings.key_file)?);

    systemd::status("opening the database");
    let database = startup::open_database(&settings, startup::Purpose::Serve).await?;
    let result = serve_with_database(
        &settings, listener, tls, &database, &vault, signals, started,
    )
    .await;
    database.close().await;
    result
}

/// Checks this host's key file against the database, seals what the
/// previous release left unsealed, and reads the server keys.
async fn load_secrets(
    client: &tokio_postgres::Client,
    vault: &crate::secrets::Vault,
) -> Result<ServerKeys, StartError> {
    use crate::identity::keys::KeysError;
    use crate::secrets::VaultError;
    let unreachable = |what: &str, e: &tokio_postgres::Error| {
        StartError::Db(crate::db::DbError::Unreachable(format!(
            "{what}: {}",
            crate::db::describe_pg_error(e)
        )))
    };
    let sealing = vault.adopt(client).await.map_err(|e| match e {
        VaultError::Db(e) => unreachable("cannot read the sealing key's id", &e),
        other => StartError::Secrets(other),
    })?;
    let pass = vault.reconcile(client).await.map_err(|e| match e {
        VaultError::Db(e) => unreachable("cannot seal the secrets", &e),
        other => StartError::Secrets(other),
    })?;
    tracing::info!(
        key_id = %sealing.id,
        sealed = pass.current + pass.sealed,
        resealed = pass.sealed,
        unreadable = pass.unreadable,
        "secrets sealed with the key-encryption key"
    );
    if pass.unreadable > 0 {
        tracing::warn!(
            count = pass.unreadable,
            "sealed secrets that no key of secrets.key_file opens were sealed again from their clear copies"
        );
    }
    ServerKeys::load(client, vault).await.map_err(|e| match e {
        KeysError::Db(e) | KeysError::Vault(VaultError::Db(e)) => {
            unreachable("cannot load the server keys", &e)
        }
        KeysError::Vault(other) => StartError::Secrets(other),
        missing @ KeysError::Missing(_) => StartError::Other(missing.to_string()),
    })
}

/// Reads the CSRF and cursor keys again every [`REFRESH`](crate::identity::keys::REFRESH),
/// so a rotation on any host reaches this one before its keys sign.
async fn refresh_server_keys(keys: ServerKeys, pool: deadpool_postgres::Pool) {
    let mut tick = tokio::time::interval(crate::identity::keys::REFRESH);
    tick.tick().await;
    loop {
        tick.tick().await;
        let result = match pool.get().await {
            Ok(client) => keys.refresh(&client).await.map_err(|e| e.to_string()),
            Err(e) => Err(crate::db::describe_pool_error(&e)),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot read the server keys again; keeping the ones read before");
        }
    }
}

async fn serve_with_database(
    settings: &Settings,
    listener: std::net::TcpListener,
    tls: Option<Arc<tls::CertResolver>>,
    database: &startup::Database,
    vault: &Arc<crate::secrets::Vault>,
    mut signals: Signals,
    started: Instant,
) -> Result<Exit, StartError> {
    let config = &settings.config;
    let connections = &database.connections;

    // A transaction-mode pooler in front of PostgreSQL breaks sessions
    // (notifications, prepared statements): refuse it before anything else.
    crate::listen::check_delivery(
        connections,
        Duration::from_secs(config.database.connect_timeout_secs),
    )
    .await?;
    systemd::status("checking the schema");
    // The schema owner is only needed to migrate: with auto_migrate off
    // (e.g. migrations run by a separate job) serve never holds its
    // credentials' privileges.
    if config.database.auto_migrate {
        let mut owner = connections.connect_owner().await?;
        crate::db::check_server_version(&owner).await?;
        let applied = migrate::migrate(&mut owner).await?;
        for m in &applied {
            tracing::info!(migration = %m, "applied migration");
        }
        if connections.shared_role {
            tracing::warn!(
                "database.migration_url is not set: migrations and the application share one role"
            );
        }
    }
    if let Some(pitr) = &database.pitr {
        // The appliance serves without it (its records are there); the
        // failure is logged, and `diagnose` and the archiver metrics show it.
        match pitr.set_up().await {
            Ok(()) => tracing::info!(
                repository = %pitr.repository(),
                archive_timeout_secs = pitr.policy.archive_timeout.as_secs(),
                "point-in-time recovery: WAL archived with pgBackRest"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "point-in-time recovery is NOT working: the stanza could not be set up; see docs/runbooks/point-in-time-recovery.md"
            ),
        }
    }
    let app = connections.connect_app().await?;
    crate::db::check_server_version(&app).await?;
    let status = migrate::status(&app).await?;
    status
        .check_serveable()
        .map_err(migrate::MigrateError::from)?;
    drop(app);

    let pool = connections.pool(config.database.pool_size, config.api.query_timeout_ms)?;
    // Fail fast (exit 4) when the application role cannot connect.
    let probe = pool.get().await.map_err(|e| {
        StartError::Db(crate::db::DbError::Unreachable(format!(
            "the application role cannot connect: {}",
            crate::db::describe_pool_error(&e)
        )))
    })?;
    let keys = load_secrets(&probe, vault).await?;
    let mut probe = probe;
    match crate::records::reserved::ensure_smoke(&mut probe).await {
        Ok(true) => tracing::info!(
            collection = crate::records::reserved::SMOKE,
            "created the smoke check's scratch collection"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            collection = crate::records::reserved::SMOKE,
            error = %e,
            "cannot create the smoke check's scratch collection; `mogothrow77 smoke` fails until it exists"
        ),
    }
    drop(probe);
    tokio::spawn(refresh_server_keys(keys.clone(), pool.clone()));
    let caches = Caches::new();
    let jobs_wake = Arc::new(tokio::sync::Notify::new());
    let delivery = Arc::new(crate::listen::Delivery::default());
    tokio::spawn(crate::listen::listen(
        connections.clone(),
        pool.clone(),
        delivery.clone(),
        vec![
            caches.clone(),
            Arc::new(crate::listen::Wake {
                channel: crate::listen::JOBS_CHANNEL,
                notify: jobs_wake.clone(),
            }),
        ],
    ));
    crate::telemetry::init(&settings.telemetry).map_err(StartError::TelemetryCa)?;
    let metrics = Metrics::shared();
    publish_certificate_expiry(tls.as_deref());
    crate::forwarding::spawn(&settings.audit, connections, metrics.clone());
    let watched_dirs = startup::watched_dirs(settings);
    let webhooks = Arc::new(crate::webhooks::Settings {
        outbound: crate::outbound::Outbound::new(
            settings.webhook_policy.clone(),
            Duration::from_secs(config.webhooks.timeout_secs),
            config.webhooks.ca_file.as_deref(),
            concat!("Mogothrow77-Webhooks/", env!("APPLIANCE_VERSION")),
        )?,
        max_attempts: i32::try_from(config.webhooks.max_attempts).unwrap_or(12),
        disable_after_failures: i32::try_from(config.webhooks.disable_after_failures)
            .unwrap_or(i32::MAX),
        disable_after: Duration::from_secs(config.webhooks.disable_after_hours * 3600),
    });
    let job_settings = crate::jobs::worker::Settings {
        workers: config.jobs.workers,
        lease: Duration::from_secs(config.jobs.lease_secs),
    };
    let scrape = Arc::new(crate::http::scrape::ScrapeAccess::new(
        &settings.metrics,
        config.tls.enabled,
    ));
    // Raised at SIGTERM: /readyz answers 503 from then on.
    let stopping = Arc::new(AtomicBool::new(false));
    let state = AppState::new(Shared {
        pool: pool.clone(),
        stopping: stopping.clone(),
        delivery,
        metrics: metrics.clone(),
        scrape: scrape.clone(),
        watched_dirs,
        db_timeout: Duration::from_secs(config.database.connect_timeout_secs),
        keys,
        vault: vault.clone(),
        auth: AuthSettings::from_config(&config.auth),
        caches,
        export_retention: Duration::from_secs(config.jobs.export_retention_hours * 3600),
        webhook_attempts: webhooks.max_attempts,
        exports: Arc::new(tokio::sync::Semaphore::new(
            (config.database.pool_size / 4).max(1),
        )),
        rate_limiter: Arc::new(RateLimiter::new(config.api.rate_limit_per_minute)),
        body_limits: crate::http::body_limit::BodyLimit {
            general: config.http.body_limit_bytes,
            import: usize::try_from(config.jobs.import_max_mb * 1024 * 1024).unwrap_or(usize::MAX),
            batch: config.api.batch_body_limit_bytes,
        },
        imports: Arc::new(tokio::sync::Semaphore::new(
            (config.database.pool_size / 4).max(1),
        )),
        allowed_hosts: allowed_hosts(config),
        backup_schedule: settings.backup.schedule.map(|s| s.to_string()),
        drill_schedule: settings.backup.drill_schedule.map(|s| s.to_string()),
        queries: crate::http::query_limit::QueryLimiter::new(
            config.api.max_concurrent_queries as usize,
        ),
    });
    let app = crate::router::router(state);
    let listener = TcpListener::from_std(listener).map_err(|e| StartError::Bind {
        addr: settings.listen.to_string(),
        reason: e.to_string(),
    })?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind {
        addr: settings.listen.to_string(),
        reason: e.to_string(),
    })?;

    let limits = server::Limits {
        header_read_timeout: Duration::from_secs(config.http.header_read_timeout_secs),
        tls_handshake_timeout: Duration::from_secs(config.http.tls_handshake_timeout_secs),
        drain_delay: Duration::from_secs(config.http.drain_delay_secs),
        shutdown_grace: Duration::from_secs(config.http.shutdown_grace_secs),
    };
    let server_config = match &tls {
        Some(resolver) => Some(tls::server_config(resolver.clone())?),
        None => None,
    };
    if signals.shutdown_requested() {
        tracing::info!("stop requested during start-up; not serving");
        systemd::stopping();
        return Ok(Exit::Ok);
    }
    let url = settings.console_url(addr.port());
    let email = match &settings.smtp {
        Some(relay) => Some(Arc::new(crate::mail::Email {
            mailer: crate::mail::smtp::Mailer::new(relay.clone(), config.smtp.ca_file.as_deref())?,
            console_url: url.clone(),
        })),
        None => None,
    };
    let backups =
        crate::backups::Backups::for_settings(settings, connections, database.pitr.as_ref())
            .map_err(|e| StartError::Other(format!("backup.schedule is set, but {e}")))?
            .map(Arc::new);
    let drills =
        crate::backups::drill::Drills::for_settings(settings, connections, database.pitr.as_ref())
            .map_err(|e| StartError::Other(format!("backup.drill_schedule is set, but {e}")))?
            .map(Arc::new);
    let handlers = crate::jobs::handlers(crate::jobs::Services {
        export_retention: Duration::from_secs(config.jobs.export_retention_hours * 3600),
        webhooks: webhooks.clone(),
        email,
        backups,
        drills,
    });
    let workers = crate::jobs::worker::start(
        pool.clone(),
        jobs_wake,
        metrics.clone(),
        job_settings,
        handlers,
    );
    let drain_delay_secs = config.http.drain_delay_secs;
    let shutdown = {
        let stopping = stopping.clone();
        let tls = tls.clone();
        let jobs_stopping = workers.stopping();
        async move {
            while let SignalEvent::Reload = signals.next().await {
                reload_tls(tls.as_deref());
                reload_scrape_token(&scrape);
            }
            // No new jobs from now; running ones get the grace alongside
            // the requests' drain.
            jobs_stopping.now();
            stopping.store(true, Ordering::SeqCst);
            systemd::stopping();
            // /readyz answers 503 from now; the server accepts for the
            // drain delay, then lets in-flight requests finish.
            tracing::info!(
                drain_delay_secs,
                "shutting down: draining in-flight requests"
            );
        }
    };
    if let Some(interval) = systemd::watchdog_interval() {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                systemd::watchdog();
            }
        });
    }

    let setup_link = first_admin_setup_link(connections, &url).await;
    tracing::info!(
        %addr,
        %url,
        startup_ms = started.elapsed().as_millis() as u64,
        version = env!("APPLIANCE_VERSION"),
        "ready"
    );
    systemd::ready(&format!("serving on {addr}"));
    if std::io::stderr().is_terminal() {
        eprintln!("\n  Mogothrow77 is ready: {url}\n  (health: {url}readyz; stop with Ctrl-C)\n");
        if let Some(link) = &setup_link {
            eprintln!(
                "  Create the first admin (one-time link, valid {} hours):\n  {link}\n",
                setup::VALIDITY_HOURS
            );
        }
    }
    tokio::spawn(crate::db::probe::watch(
        pool.clone(),
        metrics.clone(),
        Duration::from_secs(config.database.connect_timeout_secs),
    ));
    tokio::spawn(crate::audit::watch(pool.clone()));
    use crate::backups::scheduler::{self, Planned};
    if let Some(schedule) = settings.backup.schedule {
        tokio::spawn(scheduler::run(pool.clone(), schedule, Planned::Backup));
    }
    if let Some(schedule) = settings.backup.drill_schedule {
        tokio::spawn(scheduler::run(pool.clone(), schedule, Planned::Drill));
    }
    tokio::spawn(housekeeping(pool));
    let drain = server::serve(listener, server_config, app, limits, shutdown).await;
    if drain == server::Drain::TimedOut {
        tracing::warn!(
            grace_secs = config.http.shutdown_grace_secs,
            "shutdown grace period ended with requests still in flight"
        );
    }
    // Running jobs had the same grace, counted from the stop request; what
    // still runs then is given back to the queue for another replica (or
    // the next start).
    workers
        .stop(Duration::from_secs(config.http.shutdown_grace_secs))
        .await;
    tracing::info!("stopped");
    Ok(Exit::Ok)
}

/// While no user exists: a one-time setup link, logged so that an admin
/// finds it in the journal (`journalctl -u mogothrow77`). A link issued by
/// an earlier start that is still valid is kept (and not repeated: only
/// its digest is stored).
async fn first_admin_setup_link(connections: &crate::db::Connections, url: &str) -> Option<String> {
    let issued = async {
        let mut client = connections.connect_app().await.map_err(|e| e.to_string())?;
        let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
        let tx = client.transaction().await.map_err(pg)?;
        let issued = setup::issue(&tx, false).await.map_err(pg)?;
        if let setup::Issued::New(_) = &issued {
            let ctx = crate::audit::Context {
                actor: "system".to_string(),
                ..Default::default()
            };
            let event =
                crate::audit::Event::new("setup.token_issue", "", crate::audit::Outcome::Success)
                    .details(serde_json::json!({ "by": "server start" }));
            crate::audit::append(&tx, &ctx, &event)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(pg)?;
        Ok::<_, String>(issued)
    }
    .await;
    match issued {
        Ok(setup::Issued::New(token)) => {
            let link = setup::link(url, &token);
            tracing::info!(
                setup_link = %link,
                valid_hours = setup::VALIDITY_HOURS,
                "no admin exists yet: open the first-admin setup link (one-time; \
                 `mogothrow77 admin setup-token` issues a new one)"
            );
            Some(link)
        }
        Ok(setup::Issued::StillValid) => {
            tracing::info!(
                "no admin exists yet: the setup link logged by an earlier start is still valid; \
                 `mogothrow77 admin setup-token` issues a new one"
            );
            None
        }
        Ok(setup::Issued::NotRequired) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue the first-admin setup link");
            None
        }
    }
}

/// Every ten minutes: forget expired sessions, setup tokens, sign-in
/// counters and idempotency records. Any replica may do it; the deletes
/// are idempotent.
async fn housekeeping(pool: deadpool_postgres::Pool) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        let result = async {
            client
                .batch_execute(
                    "DELETE FROM sessions WHERE expires_at < now(); \
                     DELETE FROM setup_tokens WHERE expires_at < now(); \
                     DELETE FROM login_throttle WHERE coalesce(locked_until, window_started_at) \
                       < now() - interval '1 day';",
                )
                .await?;
            crate::api::idempotency::sweep(&client).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %crate::db::describe_pg_error(&e), "housekeeping failed");
        }
    }
}

fn reload_scrape_token(scrape: &crate::http::scrape::ScrapeAccess) {
    match scrape.reload() {
        Ok(true) => tracing::info!("SIGHUP: metrics.token_file re-read"),
        Ok(false) => {}
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: cannot read metrics.token_file; keeping the current token"
        ),
    }
}

/// The served certificate's expiry, for `/metrics` (at start and after
/// each reload).
fn publish_certificate_expiry(resolver: Option<&tls::CertResolver>) {
    if let Some(not_after) = resolver.and_then(tls::CertResolver::not_after) {
        Metrics::shared().tls_expiry.set(not_after);
    }
}

/// `http.allowed_hosts`, or by default `tls.hostnames`, this host's name
/// and `localhost`.
fn allowed_hosts(config: &crate::config::Config) -> crate::http::host::AllowedHosts {
    if !config.http.allowed_hosts.is_empty() {
        return crate::http::host::AllowedHosts::new(config.http.allowed_hosts.clone());
    }
    let mut names = config.tls.hostnames.clone();
    names.push(crate::privileges::host_name());
    names.push("localhost".to_string());
    crate::http::host::AllowedHosts::new(names)
}

/// The names a generated certificate is for: `tls.hostnames` and the
/// host's own name, so it fits the URL an admin is most likely to type.
fn self_signed_hostnames(config: &crate::config::Config) -> Vec<String> {
    let mut hostnames = config.tls.hostnames.clone();
    let host = crate::privileges::host_name();
    if !hostnames.contains(&host) {
        hostnames.push(host);
    }
    hostnames
}

/// Creates or renews the generated certificate; says what it did.
fn keep_self_signed(paths: &tls::CertPaths, hostnames: &[String]) -> Result<bool, tls::TlsError> {
    match tls::ensure_self_signed(paths, hostnames)? {
        tls::SelfSigned::Kept => Ok(false),
        tls::SelfSigned::Created => {
            tracing::info!(cert = %paths.cert.display(), hostnames = ?hostnames, valid_days = tls::SELF_SIGNED_DAYS, "generated a self-signed certificate");
            Ok(true)
        }
        tls::SelfSigned::Renewed(why) => {
            tracing::info!(cert = %paths.cert.display(), hostnames = ?hostnames, valid_days = tls::SELF_SIGNED_DAYS, reason = why, "renewed the self-signed certificate (same key)");
            Ok(true)
        }
    }
}

/// Twice a day: renews the generated certificate when it is due, and
/// serves the new one.
async fn renew_self_signed(
    resolver: Arc<tls::CertResolver>,
    paths: tls::CertPaths,
    hostnames: Vec<String>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(12 * 3600));
    tick.tick().await;
    loop {
        tick.tick().await;
        let (p, h) = (paths.clone(), hostnames.clone());
        let renewed = tokio::task::spawn_blocking(move || keep_self_signed(&p, &h)).await;
        match renewed {
            Ok(Ok(true)) => match resolver.reload() {
                Ok(fingerprint) => {
                    publish_certificate_expiry(Some(&resolver));
                    tracing::info!(sha256 = %fingerprint, "serving the renewed self-signed certificate");
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the renewed self-signed certificate; keeping the current one")
                }
            },
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot renew the self-signed certificate"),
            Err(e) => tracing::error!(error = %e, "the certificate renewal task failed"),
        }
    }
}

fn reload_tls(resolver: Option<&tls::CertResolver>) {
    let Some(resolver) = resolver else {
        tracing::info!("SIGHUP: TLS is disabled, nothing to reload");
        return;
    };
    match resolver.reload() {
        Ok(fingerprint) => {
            publish_certificate_expiry(Some(resolver));
            tracing::info!(sha256 = %fingerprint, "SIGHUP: TLS certificate reloaded")
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: cannot reload the TLS certificate; keeping the current one")
        }
    }
}
