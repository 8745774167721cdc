//! An appliance site on a [`Cluster`]: HAProxy, two replicas, the first
//! admin, a collection to load and an API token to load it with; and the
//! checks every scenario ends with.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::api::{setup_token, ApiClient};
use crate::load::Report;
use crate::topology::{free_port, Balancer, Cluster, Replica};

const PASSWORD: &str = "correct horse battery staple";

pub struct Site<C: Cluster> {
    pub cluster: C,
    pub balancer: Balancer,
    pub replicas: Vec<Replica>,
    pub token: String,
    sql_dsn: String,
}

impl<C: Cluster> Site<C> {
    /// How long HAProxy takes to see a replica's /readyz change
    /// (`inter 1s`, `fall 2` / `rise 2`), with margin.
    pub const BALANCER_NOTICES: Duration = Duration::from_secs(3);

    /// Creates the database, starts HAProxy and two replicas of `binary`,
    /// and sets up the admin, the `load` collection and a token.
    pub async fn start(cluster: C, binary: &Path) -> Site<C> {
        let (sql, connection) =
            tokio_postgres::connect(&cluster.primary_dsn(), tokio_postgres::NoTls)
                .await
                .expect("connect to the primary");
        tokio::spawn(connection);
        sql.batch_execute("CREATE DATABASE m77")
            .await
            .expect("database");
        drop(sql);

        let ports = [free_port(), free_port()];
        let balancer = Balancer::start(cluster.dir(), &cluster.balanced(), &ports);
        let dsn = cluster.app_dsn(balancer.db_port, "m77");
        wait_for_primary_only(&dsn).await;
        let mut replicas: Vec<Replica> = ports
            .iter()
            .map(|p| Replica::new(&dsn, *p, binary))
            .collect();
        for r in &mut replicas {
            r.start();
        }
        let link_token = setup_token(replicas[0].app());
        let mut admin = ApiClient::anonymous(balancer.app());
        tokio::time::sleep(Self::BALANCER_NOTICES).await;
        let r = admin
            .post(
                "/api/v1/setup",
                json!({ "token": link_token, "username": "admin", "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        admin.adopt_session(&r);
        let r = admin
            .post(
                "/api/v1/collections",
                json!({ "name": "load", "fields": [{ "name": "n", "type": "integer" }] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = admin
            .post(
                "/api/v1/me/tokens",
                json!({ "name": "load", "permissions": ["records:read", "records:write", "records:export"] }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let token = r.json()["token"].as_str().expect("token").to_string();
        Site {
            cluster,
            balancer,
            replicas,
            token,
            sql_dsn: dsn,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.balancer.app()
    }

    /// A connection to the primary, as the replicas reach it. Right after
    /// a fault the primary may still be restarting (Patroni restarts a
    /// crashed postmaster; the balancer follows a new leader): retried for
    /// up to 30 s, as the replicas do.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.sql_dsn, tokio_postgres::NoTls).await {
                Ok((sql, connection)) => {
                    tokio::spawn(connection);
                    return sql;
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("connecting to the primary: {e}; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => panic!("connect to the primary: {e}"),
            }
        }
    }

    /// The `load` collection's records as (id, n), read once the primary
    /// answers (retried for up to 30 s, like [`Site::sql`]).
    pub async fn stored(&self) -> std::collections::HashMap<i64, i64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match self.read_stored().await {
                Ok(stored) => return stored,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("reading the stored records: {e}; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(e) => panic!("reading the stored records: {e}"),
            }
        }
    }

    async fn read_stored(
        &self,
    ) -> Result<std::collections::HashMap<i64, i64>, tokio_postgres::Error> {
        let sql = self.sql().await;
        let ids = sql
            .query_one(
                "SELECT c.id, f.id FROM collections c JOIN collection_fields f \
                 ON f.collection_id = c.id WHERE c.name = 'load' AND f.name = 'n'",
                &[],
            )
            .await?;
        let (c, f): (i64, i64) = (ids.get(0), ids.get(1));
        Ok(sql
            .query(
                &format!("SELECT id, \"f_{f}\"::bigint FROM records.\"c_{c}\""),
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Prints the scenario's figures and checks that no acknowledged
    /// write is missing; returns the failures by status.
    pub async fn report(
        &self,
        scenario: &str,
        report: &Report,
        event: Instant,
    ) -> Vec<(u16, usize)> {
        let stored = self.stored().await;
        let lost: Vec<_> = report
            .acknowledged
            .iter()
            .filter(|(id, n)| stored.get(id) != Some(n))
            .collect();
        let failures: Vec<(u16, usize)> = report.failures().into_iter().collect();
        println!(
            "HA [{}] {scenario}: {} requests ({} acknowledged writes), failures by status {:?} \
             (0 = no answer), lost writes {}, recovery {}, took {:.1} s",
            self.cluster.engine(),
            report.outcomes.len(),
            report.acknowledged.len(),
            failures,
            lost.len(),
            report
                .recovery(event)
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "- (nothing failed)".to_string()),
            report.duration.as_secs_f64()
        );
        assert!(
            lost.is_empty(),
            "{scenario}: acknowledged writes lost: {lost:?}"
        );
        assert!(
            report.acknowledged.len() >= 20,
            "{scenario}: too little load to prove anything"
        );
        failures
    }

    /// Stops every replica (SIGTERM), each exiting 0.
    pub fn stop(&mut self) {
        for r in &mut self.replicas {
            let status = r.app().stop();
            assert!(status.success(), "{}", r.app().output());
        }
    }
}

/// Writes until one succeeds after `since`; how long from `since`.
pub async fn until_writes_succeed(addr: SocketAddr, token: &str, since: Instant) -> Duration {
    let client = ApiClient::with_token(addr, token);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = client
            .post(
                "/api/v1/collections/load/records",
                json!({ "data": { "n": -1 } }),
            )
            .await;
        if r.status == 201 {
            return since.elapsed();
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(
            Instant::now() < deadline,
            "writes did not come back: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Until the way to the database has settled (HAProxy starts its servers
/// as up): ten connections in a row reach the writable primary.
async fn wait_for_primary_only(dsn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut in_a_row = 0;
    while in_a_row < 10 {
        assert!(
            Instant::now() < deadline,
            "the way to the database never settled on the primary"
        );
        let writable = async {
            let (sql, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(connection);
            let row = sql
                .query_one("SELECT NOT pg_is_in_recovery()", &[])
                .await
                .ok()?;
            Some(row.get::<_, bool>(0))
        }
        .await;
        if writable == Some(true) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
