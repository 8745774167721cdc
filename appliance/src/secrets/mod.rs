//! Secrets at rest (ADR 0027): the values the database holds that would
//! let someone sign as the appliance or pass a second factor — webhook
//! signing secrets, TOTP seeds, the CSRF and cursor keys — are sealed with
//! AES-256-GCM under a key-encryption key read from `secrets.key_file`,
//! never stored in the database. The database names the key that seals
//! (`secrets_key`); the file may hold more (staged, or retired ones).
//!
//! [`Vault`] is the key file as a server holds it: read at start, read
//! again when a value names a key it does not know (another replica's
//! rotation). `columns` lists the sealed columns and keeps them in step;
//! `admin rotate-keys` (admin.rs) stages a key with
//! `file`, then [`Vault::switch_to`] and [`Vault::reseal_all`] in one transaction.

pub mod columns;
pub mod file;
pub mod seal;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::config::{Kek, KeyFile, KeyFileError, KeyFileLocation, KeyId};
use crate::db::Sql;
use columns::{Pass, Table};

/// Why secrets cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("secrets.key_file: {0}")]
    File(#[from] KeyFileError),
    #[error("secrets.key_file: cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error(
        "secrets.key_file: {path} lacks key {id}, which this installation's secrets are sealed \
         with: copy the key file from a replica that has it (a restore onto a new host needs the \
         old host's key file; see docs/security.md#secrets-at-rest)"
    )]
    KeyMissing { id: KeyId, path: String },
    #[error("the database names a sealing key that is not a key id: {0:?}")]
    BadKeyId(String),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

impl VaultError {
    /// A problem of the host's key file (exit 2), not of the database.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, VaultError::Db(_))
    }
}

/// The key-encryption keys as a server holds them.
pub struct Vault {
    path: PathBuf,
    keys: RwLock<KeyFile>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({})", self.path.display())
    }
}

impl Vault {
    /// Reads the key file; the default one under `state_dir` is made on
    /// first use (mode 0600, the caller's user: run after the privilege drop).
    pub fn open(location: &KeyFileLocation) -> Result<Vault, VaultError> {
        if location.generate && !location.path.exists() {
            file::create(&location.path)?;
            tracing::info!(path = %location.path.display(), "made the key-encryption key file");
        }
        Ok(Vault {
            path: location.path.clone(),
            keys: RwLock::new(KeyFile::read(&location.path)?),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys as last read.
    pub fn keys(&self) -> KeyFile {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again (a key added by a rotation elsewhere).
    pub fn reload(&self) -> Result<KeyFile, VaultError> {
        let fresh = KeyFile::read(&self.path)?;
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        Ok(fresh)
    }

    /// The key `id`, reading the file again when it is not known yet.
    pub fn key(&self, id: &KeyId) -> Result<Kek, VaultError> {
        if let Some(k) = self.keys().get(id) {
            return Ok(k.clone());
        }
        self.reload()?
            .get(id)
            .cloned()
            .ok_or_else(|| VaultError::KeyMissing {
                id: id.clone(),
                path: self.path.display().to_string(),
            })
    }

    /// The key that seals, as the database names it; held FOR SHARE to
    /// the end of the caller's transaction, so a rotation waits for it.
    pub async fn sealing_key<C: Sql>(&self, client: &C) -> Result<Kek, VaultError> {
        let row = client
            .query_opt("SELECT key_id FROM secrets_key FOR SHARE", &[])
            .await?;
        let id = match row {
            Some(row) => {
                let text: String = row.get(0);
                KeyId::parse(&text).ok_or(VaultError::BadKeyId(text))?
            }
            // Only before the first start's `adopt`.
            None => return self.adopt(client).await,
        };
        self.key(&id)
    }

    /// At start: the first server names the file's newest key as the one
    /// that seals; every server checks it has the key named.
    pub async fn adopt<C: Sql>(&self, client: &C) -> Result<Kek, VaultError> {
        let newest = self.keys().newest().id.clone();
        client
            .execute(
                "INSERT INTO secrets_key (key_id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                &[&newest.as_str()],
            )
            .await?;
        let text: String = client
            .query_one("SELECT key_id FROM secrets_key", &[])
            .await?
            .get(0);
        let id = KeyId::parse(&text).ok_or(VaultError::BadKeyId(text))?;
        self.key(&id)
    }

    /// Seals the secret columns of one row of `table` after a write to
    /// them, in the writer's transaction.
    pub async fn seal_row<C: Sql>(
        &self,
        client: &C,
        table: &Table,
        key: &str,
    ) -> Result<Pass, VaultError> {
        let kek = self.sealing_key(client).await?;
        Ok(columns::sync(client, &self.keys(), &kek, table, Some(key)).await?)
    }

    /// Seals every value whose sealed twin is missing, stale or under
    /// another key (rows the previous release wrote); at start.
    pub async fn reconcile<C: Sql>(&self, client: &C) -> Result<Pass, VaultError> {
        let kek = self.sealing_key(client).await?;
        let keys = self.keys();
        let mut pass = Pass::default();
        for table in columns::TABLES {
            pass.add(columns::sync(client, &keys, &kek, table, None).await?);
        }
        Ok(pass)
    }

    /// The id of the key that seals, as the database names it (none
    /// before the first start); the key itself need not be in the file.
    pub async fn in_force<C: Sql>(&self, client: &C) -> Result<Option<KeyId>, VaultError> {
        match client
            .query_opt("SELECT key_id FROM secrets_key", &[])
            .await?
        {
            Some(row) => {
                let text: String = row.get(0);
                Ok(Some(KeyId::parse(&text).ok_or(VaultError::BadKeyId(text))?))
            }
            None => Ok(None),
        }
    }

    /// Makes `to` the key that seals, waiting for transactions sealing
    /// under the old one. In the caller's transaction, with
    /// [`Vault::reseal_all`] after it.
    pub async fn switch_to<C: Sql>(&self, client: &C, to: &Kek) -> Result<(), VaultError> {
        client
            .query_opt("SELECT key_id FROM secrets_key FOR UPDATE", &[])
            .await?;
        client
            .execute(
                "INSERT INTO secrets_key (key_id) VALUES ($1) \
                 ON CONFLICT (id) DO UPDATE SET key_id = EXCLUDED.key_id, since = now()",
                &[&to.id.as_str()],
            )
            .await?;
        Ok(())
    }

    /// Seals every secret value again under `to`.
    pub async fn reseal_all<C: Sql>(&self, client: &C, to: &Kek) -> Result<Pass, VaultError> {
        let keys = self.keys();
        let mut pass = Pass::default();
        for table in columns::TABLES {
            pass.add(columns::sync(client, &keys, to, table, None).await?);
        }
        Ok(pass)
    }
}
