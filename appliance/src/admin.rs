//! Break-glass administration from the host (`mogothrow77 admin …`): what
//! an administrator does in the console, for when nobody can sign in to
//! it — lift a lockout, reset a lost second factor, disable an account,
//! end its sessions, list the accounts. Each runs with the server's
//! configuration as the application role, in one transaction with its
//! audit entry, whose actor is `cli:<os-user>@<host>` (the user who ran
//! `sudo`, when run through it).

use crate::db::Sql;
use serde_json::json;

use crate::audit::{self, Event, Outcome};
use crate::authz::Role;
use crate::cli::{AdminCommand, SessionsCommand, UsersCommand};
use crate::commands::with_app_connection;
use crate::config::Settings;
use crate::exit::Exit;
use crate::identity::{reset, sessions, throttle, users};
use crate::startup::Purpose;

/// Runs one `admin` subcommand other than `setup-token`.
pub async fn run(settings: Settings, command: AdminCommand) -> Exit {
    // Before the privilege drop: who ran it.
    let actor = crate::startup::cli_actor();
    let (what, action) = match command {
        AdminCommand::SetupToken => return crate::commands::setup_token(settings).await,
        AdminCommand::Users {
            command: UsersCommand::List,
        } => ("admin users list", Action::List),
        AdminCommand::Unlock { target } => ("admin unlock", Action::Unlock(target)),
        AdminCommand::ResetMfa { username } => ("admin reset-mfa", Action::ResetMfa(username)),
        AdminCommand::ResetPassword { username } => {
            ("admin reset-password", Action::ResetPassword(username))
        }
        AdminCommand::Disable { username } => ("admin disable", Action::Disable(username)),
        AdminCommand::Sessions {
            command: SessionsCommand::Revoke { username },
        } => ("admin sessions revoke", Action::RevokeSessions(username)),
        AdminCommand::RotateKeys {
            stage,
            overlap_hours,
        } => return crate::commands::keys::rotate(&settings, stage, overlap_hours).await,
    };
    let base_url = settings.console_url(settings.listen.port());
    with_app_connection(&settings, Purpose::Migrate, what, async |client| {
        let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
        let tx = client.transaction().await.map_err(pg)?;
        let ctx = audit::Context {
            actor: actor.clone(),
            ..Default::default()
        };
        let event = match action {
            Action::List => {
                list(&tx).await.map_err(pg)?;
                return Ok(Exit::Ok);
            }
            Action::Unlock(target) => {
                let key = unlock_key(&target);
                let lifted =
                    Sql::execute(&tx, "DELETE FROM login_throttle WHERE key = $1", &[&key])
                        .await
                        .map_err(pg)?;
                if lifted == 0 {
                    println!(
                        "{target}: no lockout and no failed sign-ins on record; nothing to lift"
                    );
                } else {
                    println!(
                        "{target}: lockout lifted (failed sign-ins forgotten), on every replica"
                    );
                }
                Event::new("auth.unlock", key, Outcome::Success)
                    .details(json!({ "had_record": lifted > 0 }))
            }
            Action::ResetMfa(username) => {
                let user = find(&tx, &username).await?;
                users::reset_mfa(&tx, user.id).await.map_err(pg)?;
                let ended = sessions::revoke_all(&tx, user.id).await.map_err(pg)?;
                println!(
                    "{username}: two-factor authentication is off ({ended} sessions ended); \
                     they sign in with their password and may enrol again"
                );
                Event::new(
                    "user.mfa_reset",
                    format!("user:{}", user.id),
                    Outcome::Success,
                )
                .details(json!({ "sessions_ended": ended }))
            }
            Action::ResetPassword(username) => {
                let user = find(&tx, &username).await?;
                let token = reset::issue(&tx, user.id).await.map_err(pg)?;
                println!("{}", reset::link(&base_url, &token));
                eprintln!(
                    "one-time link for {username}, valid {} hours; an earlier link no longer \
                     works. Send it over a channel you trust: whoever opens it sets the password.",
                    reset::VALIDITY_HOURS
                );
                if user.disabled {
                    eprintln!(
                        "note: {username} is disabled; they can set a password but not sign in \
                         until an admin enables the account"
                    );
                }
                Event::new(
                    "user.password_reset_link",
                    format!("user:{}", user.id),
                    Outcome::Success,
                )
                .details(json!({ "valid_hours": reset::VALIDITY_HOURS }))
            }
            Action::Disable(username) => {
                let user = find(&tx, &username).await?;
                if user.disabled {
                    println!("{username} is disabled already");
                    return Ok(Exit::Ok);
                }
                if user.role == Role::Admin
                    && users::other_active_admins(&tx, user.id).await.map_err(pg)? == 0
                {
                    return Err(format!(
                        "{username} is the last enabled admin; make another user admin first \
                         (nothing was changed)"
                    ));
                }
                users::update(&tx, user.id, None, Some(true), None)
                    .await
                    .map_err(pg)?;
                let ended = sessions::revoke_all(&tx, user.id).await.map_err(pg)?;
                println!(
                    "{username}: disabled, {ended} sessions ended; their API tokens stop working"
                );
                Event::new("user.update", format!("user:{}", user.id), Outcome::Success).details(
                    json!({
                        "role": { "from": user.role, "to": user.role },
                        "disabled": { "from": false, "to": true },
                        "display_name_changed": false,
                        "email_changed": false,
                        "sessions_ended": ended,
                    }),
                )
            }
            Action::RevokeSessions(username) => {
                let user = find(&tx, &username).await?;
                let ended = sessions::revoke_all(&tx, user.id).await.map_err(pg)?;
                println!("{username}: {ended} sessions ended");
                Event::new(
                    "user.sessions_revoke",
                    format!("user:{}", user.id),
                    Outcome::Success,
                )
                .details(json!({ "sessions_ended": ended }))
            }
        };
        let mut event = event;
        if let Some(details) = event.details.as_object_mut() {
            details.insert("by".to_string(), json!(format!("mogothrow77 {what}")));
        }
        audit::append(&tx, &ctx, &event)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(pg)?;
        Ok(Exit::Ok)
    })
    .await
}

enum Action {
    List,
    Unlock(String),
    ResetMfa(String),
    ResetPassword(String),
    Disable(String),
    RevokeSessions(String),
}

/// `address:…` for an IP address, else the account name's key.
fn unlock_key(target: &str) -> String {
    match target.parse::<std::net::IpAddr>() {
        Ok(ip) => throttle::address_key(&ip.to_string()),
        Err(_) => throttle::account_key(target),
    }
}

async fn find(tx: &tokio_postgres::Transaction<'_>, username: &str) -> Result<users::User, String> {
    users::by_username(tx, username)
        .await
        .map_err(|e| crate::db::describe_pg_error(&e))?
        .ok_or_else(|| {
            format!(
                "no user named {username:?}; `mogothrow77 admin users list` shows every account"
            )
        })
}

async fn list(tx: &tokio_postgres::Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let locked: std::collections::HashMap<String, i64> = Sql::query(
        &tx,
        "SELECT key, ceil(extract(epoch FROM locked_until - now()))::bigint \
             FROM login_throttle WHERE locked_until > now()",
        &[],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    println!(
        "{:<32} {:<8} {:<9} {:<10} LOCKED",
        "USERNAME", "ROLE", "DISABLED", "TWO-FACTOR"
    );
    for u in users::list(tx).await? {
        let lock = locked
            .get(&throttle::account_key(&u.username))
            .map(|s| format!("{s} s"))
            .unwrap_or_else(|| "-".to_string());
        println!(
            "{:<32} {:<8} {:<9} {:<10} {lock}",
            u.username,
            u.role.as_str(),
            if u.disabled { "yes" } else { "no" },
            if u.mfa_enabled { "on" } else { "off" },
        );
    }
    let addresses: Vec<_> = locked
        .iter()
        .filter_map(|(k, s)| Some((k.strip_prefix("address:")?, s)))
        .collect();
    for (address, seconds) in addresses {
        println!("locked client address {address}: {seconds} s left (`mogothrow77 admin unlock {address}`)");
    }
    Ok(())
}
