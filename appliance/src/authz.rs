//! Authorization: roles, the permissions each grants, and who is asking.
//!
//! Every API route declares one [`Access`] when it is registered
//! (`api::Api::route`); the check happens in one place, `api::authorize`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The four roles. A user has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Editor,
    Viewer,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Editor, Role::Viewer, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
        }
    }

    /// The permissions this role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &Permission::ALL,
            Role::Editor => &[SystemRead, RecordsRead, RecordsWrite, RecordsExport],
            Role::Viewer => &[SystemRead, RecordsRead],
            Role::Auditor => &[SystemRead, RecordsRead, UsersRead, AuditRead],
        }
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Role, UnknownName> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// What a role (or an API token scoped to a subset of its creator's
/// permissions) may do. The names are part of the API: tokens list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "system:read")]
    SystemRead,
    #[serde(rename = "users:read")]
    UsersRead,
    #[serde(rename = "users:manage")]
    UsersManage,
    #[serde(rename = "settings:manage")]
    SettingsManage,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "records:read")]
    RecordsRead,
    #[serde(rename = "records:write")]
    RecordsWrite,
    #[serde(rename = "records:export")]
    RecordsExport,
    #[serde(rename = "collections:manage")]
    CollectionsManage,
    #[serde(rename = "jobs:manage")]
    JobsManage,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::SystemRead,
        Permission::UsersRead,
        Permission::UsersManage,
        Permission::SettingsManage,
        Permission::AuditRead,
        Permission::RecordsRead,
        Permission::RecordsWrite,
        Permission::RecordsExport,
        Permission::CollectionsManage,
        Permission::JobsManage,
        Permission::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::SystemRead => "system:read",
            Permission::UsersRead => "users:read",
            Permission::UsersManage => "users:manage",
            Permission::SettingsManage => "settings:manage",
            Permission::AuditRead => "audit:read",
            Permission::RecordsRead => "records:read",
            Permission::RecordsWrite => "records:write",
            Permission::RecordsExport => "records:export",
            Permission::CollectionsManage => "collections:manage",
            Permission::JobsManage => "jobs:manage",
            Permission::WebhooksManage => "webhooks:manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Permission, UnknownName> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

/// What a route requires. Declared at registration; there is no default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in, first-admin setup, the OpenAPI
    /// document).
    Public,
    /// A person signed in with a browser session, acting on their own
    /// account (password, MFA, their API tokens, sign-out). API tokens
    /// cannot do these: a leaked token must not be able to mint more.
    Session,
    /// Any signed-in user or API token (e.g. "who am I").
    Authenticated,
    /// A signed-in user or an API token holding the permission.
    Permission(Permission),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Session => f.write_str("session"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Permission(p) => write!(f, "{p}"),
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A browser session; `id_digest` identifies the row, `csrf` is the
    /// token state-changing requests must echo.
    Session { id_digest: Vec<u8>, csrf: String },
    /// An API token with its own permission subset.
    Token {
        id: i64,
        permissions: Vec<Permission>,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    /// The permissions in effect: the role's, narrowed by a token's scope.
    /// A token never grants more than its owner's current role.
    pub fn has(&self, permission: Permission) -> bool {
        self.role.allows(permission)
            && match &self.credential {
                Credential::Session { .. } => true,
                Credential::Token { permissions, .. } => permissions.contains(&permission),
            }
    }

    pub fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }

    /// The effective permission list, for `/me`.
    pub fn effective_permissions(&self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.has(*p))
            .collect()
    }

    /// Key for per-caller state (idempotency records, rate limits).
    pub fn key(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => format!("user:{}", self.user_id),
            Credential::Token { id, .. } => format!("token:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().expect("role"), r);
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().expect("permission"), p);
            assert_eq!(
                serde_json::to_value(p).expect("json"),
                serde_json::json!(p.as_str())
            );
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn only_admins_manage_users_and_settings() {
        for r in Role::ALL {
            assert_eq!(r.allows(Permission::UsersManage), r == Role::Admin);
            assert_eq!(r.allows(Permission::SettingsManage), r == Role::Admin);
        }
        assert!(Role::Auditor.allows(Permission::AuditRead));
        assert!(!Role::Editor.allows(Permission::AuditRead));
        assert!(!Role::Viewer.allows(Permission::RecordsExport));
        assert!(!Role::Auditor.allows(Permission::RecordsExport));
    }

    #[test]
    fn a_token_never_exceeds_its_owners_role() {
        let p = Principal {
            user_id: 1,
            username: "v".into(),
            role: Role::Viewer,
            credential: Credential::Token {
                id: 1,
                permissions: vec![Permission::RecordsRead, Permission::UsersManage],
            },
        };
        assert!(p.has(Permission::RecordsRead));
        assert!(!p.has(Permission::UsersManage));
        assert!(!p.has(Permission::SystemRead));
    }
}
