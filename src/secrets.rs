//! Secrets at rest: the AEAD key that encrypts smart-host passwords and
//! private keys, argon2 hashes for login passwords, and the admin token.

use anyhow::{Context, bail};
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The key that seals secrets stored in the database.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// Takes the key from `env_key` (base64 of 32 bytes) when given, otherwise
    /// from `<data-dir>/secret.key`. A new key is made (mode 0600) only when
    /// `may_create`: for a data directory that holds no configuration yet, or
    /// when the admin has said to drop what the lost key protected. A missing
    /// key is never replaced silently: the stored private keys and smart-host
    /// passwords could not be decrypted with a new one.
    pub fn load(data_dir: &Path, env_key: Option<&str>, may_create: bool) -> anyhow::Result<Self> {
        let raw = match env_key {
            Some(k) => STANDARD
                .decode(k.trim())
                .context("FERRY_SECRET_KEY is not valid base64")?,
            None => {
                let path = data_dir.join("secret.key");
                if path.exists() {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    STANDARD
                        .decode(text.trim())
                        .with_context(|| format!("{} is not valid base64", path.display()))?
                } else if may_create {
                    let mut k = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut k);
                    write_private_file(&path, STANDARD.encode(k).as_bytes())?;
                    k.to_vec()
                } else {
                    bail!(
                        "{} is missing. It is the key that decrypts the private keys of stored \
                         certificates and the passwords of smart-host credentials in this data \
                         directory. Restore it from a backup (or pass it as FERRY_SECRET_KEY). To \
                         start anyway with a new key, knowingly dropping the private keys and \
                         smart-host passwords that can no longer be decrypted, start once with \
                         --discard-undecryptable-secrets",
                        path.display()
                    );
                }
            }
        };
        if raw.len() != 32 {
            bail!("the secret key must be 32 bytes (got {})", raw.len());
        }
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new(Key::from_slice(&raw)),
        })
    }

    /// Seals `plain`, bound to `context` (the owning object's id) so a
    /// ciphertext cannot be moved to another object.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory buffers");
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < 24 {
            bail!("sealed secret is truncated");
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("secret cannot be decrypted: wrong key or corrupted data"))
    }
}

/// Writes a file readable by its owner only.
pub fn write_private_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(())
}

/// An argon2id hash in PHC form.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh admin token: 32 random bytes, URL-safe base64.
pub fn generate_token() -> String {
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    URL_SAFE_NO_PAD.encode(k)
}

/// Tokens are long random strings, so a plain SHA-256 is enough to store them.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares without leaking where two strings differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_in_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::load(dir.path(), None, true).unwrap();
        let sealed = b.seal("id-1", b"hunter2");
        assert_eq!(b.open("id-1", &sealed).unwrap(), b"hunter2");
        assert!(b.open("id-2", &sealed).is_err());
        // The key file is private and reused.
        let meta = std::fs::metadata(dir.path().join("secret.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = SecretBox::load(dir.path(), None, true).unwrap();
        assert_eq!(again.open("id-1", &sealed).unwrap(), b"hunter2");
    }

    #[test]
    fn passwords_verify_against_their_hash() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "wrong"));
    }
}
