//! Opening a data directory: creating on first start what Exchange creates at
//! install for the role (spec §1.5, §1.7, §1.10), and checking on later
//! starts that the directory is the server it claims to be.

use anyhow::{Context, bail};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use uuid::Uuid;

use super::ConfigService;
use crate::model::{
    Binding, CertificateKind, CertificateRecord, Domain, ReceiveConnector, Role, ServerContext,
    TransportSettings,
};
use crate::secrets::{SecretBox, generate_token, hash_token, write_private_file};
use crate::store::{ServerRow, Store, Table};
use crate::tls::certs;

/// What `ferry serve` knows before the database is open.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub data_dir: PathBuf,
    /// Required to match the stored role on later starts, when given.
    pub role: Option<Role>,
    pub server_name: Option<String>,
    pub fqdn: Option<String>,
    /// Address and port of the default SMTP receive connector (first start only).
    pub default_smtp_bind: Binding,
    /// Address and port of the Hub's Client connector (first start only).
    pub default_submission_bind: Binding,
    /// An admin token chosen by the operator; replaces the stored one.
    pub admin_token: Option<String>,
    /// The AEAD key, base64, instead of `<data-dir>/secret.key`.
    pub secret_key: Option<String>,
    /// Make a new secret key although the configuration exists, and drop
    /// the certificate private keys sealed with the lost one.
    pub discard_undecryptable_secrets: bool,
}

/// What the first start created, for the log.
#[derive(Debug, Clone)]
pub struct FirstStart {
    pub role: Role,
    /// Where the generated admin token was written, if one was generated.
    pub token_file: Option<PathBuf>,
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

impl Bootstrap {
    pub async fn open(self) -> anyhow::Result<(ConfigService, Option<FirstStart>)> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))?;
        let configured = self.data_dir.join("ferry.db").exists();
        let key_lost = configured && !self.data_dir.join("secret.key").exists();
        let secrets = SecretBox::load(
            &self.data_dir,
            self.secret_key.as_deref(),
            !configured || self.discard_undecryptable_secrets,
        )?;
        let store = Store::open(&self.data_dir.join("ferry.db")).await?;
        if key_lost && self.secret_key.is_none() {
            Store::discard_sealed_secrets(&store).await?;
        }
        let mut tx = store.begin().await?;
        let (server, first) = match Store::server(&mut tx).await? {
            Some(server) => {
                if let Some(role) = self.role
                    && role != server.role
                {
                    bail!(
                        "{} holds the configuration of a{} {} server; it cannot start as {}",
                        self.data_dir.display(),
                        if server.role == Role::Edge { "n" } else { "" },
                        server.role.as_str(),
                        role.as_str()
                    );
                }
                if let Some(token) = &self.admin_token {
                    Store::set_admin_token_hash(&mut tx, &hash_token(token)).await?;
                }
                (server, None)
            }
            None => self.first_start(&mut tx, &secrets).await?,
        };
        let fqdn: Domain = Store::transport_settings::<TransportSettings>(&mut tx)
            .await?
            .spec
            .server_fqdn;
        tx.commit().await?;
        let ctx = ServerContext {
            role: server.role,
            server_name: server.server_name,
            fqdn,
        };
        Ok((ConfigService::start(store, secrets, ctx).await?, first))
    }

    async fn first_start(
        &self,
        tx: &mut crate::store::Tx,
        secrets: &SecretBox,
    ) -> anyhow::Result<(ServerRow, Option<FirstStart>)> {
        let role = self.role.unwrap_or(Role::Edge);
        let host = host_name();
        let fqdn: Domain = self
            .fqdn
            .clone()
            .unwrap_or_else(|| host.clone())
            .parse()
            .map_err(|e| anyhow::anyhow!("the server FQDN: {e}; set it with --fqdn"))?;
        let server_name = self.server_name.clone().unwrap_or_else(|| {
            fqdn.as_str()
                .split('.')
                .next()
                .unwrap_or("FERRY")
                .to_ascii_uppercase()
        });
        let (token, token_file) = match &self.admin_token {
            Some(t) => (t.clone(), None),
            None => (generate_token(), Some(self.data_dir.join("admin-token"))),
        };
        let server = ServerRow {
            role,
            server_name: server_name.clone(),
            admin_token_sha256: hash_token(&token),
        };
        Store::insert_server(tx, &server).await?;
        let ctx = ServerContext {
            role,
            server_name: server_name.clone(),
            fqdn: fqdn.clone(),
        };
        Store::put_transport_settings(tx, &TransportSettings::defaults(role, fqdn.clone()), None)
            .await?;
        for c in ReceiveConnector::install_defaults(
            &ctx,
            self.default_smtp_bind,
            self.default_submission_bind,
        ) {
            c.validate(&ctx)
                .map_err(|e| anyhow::anyhow!("default receive connector: {e}"))?;
            Store::insert(
                tx,
                Table::ReceiveConnectors,
                Uuid::new_v4(),
                &c.name,
                &c,
                None,
            )
            .await?;
        }
        // Spec §1.10: a self-signed certificate for the server, valid 5 years, SHA-256.
        let mut names = vec![fqdn.to_string()];
        if server_name.parse::<Domain>().is_ok() && !server_name.eq_ignore_ascii_case(fqdn.as_str())
        {
            names.push(server_name.to_ascii_lowercase());
        }
        let (chain_pem, key_pem) =
            certs::self_signed(&server_name, &names, 5 * 365 + 1).map_err(anyhow::Error::msg)?;
        let record = CertificateRecord {
            kind: CertificateKind::Certificate,
            friendly_name: Some("Ferry self-signed certificate".into()),
            chain_pem,
            acme: None,
        };
        let id = Uuid::new_v4();
        let sealed = secrets.seal(&id.to_string(), key_pem.as_bytes());
        Store::insert(
            tx,
            Table::Certificates,
            id,
            &crate::config::ConfigObject::name(&record),
            &record,
            Some(&sealed),
        )
        .await?;
        if let Some(path) = &token_file {
            let _ = std::fs::remove_file(path);
            write_private_file(path, format!("{token}\n").as_bytes())?;
        }
        Ok((server, Some(FirstStart { role, token_file })))
    }
}
