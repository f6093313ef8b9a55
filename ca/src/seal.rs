//! Private keys at rest: sealed with AES-256-GCM under a key-encryption key from configuration, and
//! kept behind [`KeyStore`], so that a hardware security module or a cloud KMS can take the store's
//! place later. A key never reaches a store in clear; a sealed key names what it is (the additional
//! authenticated data), so one sealed blob cannot be swapped for another.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Format of a sealed blob: this byte, the nonce, then the ciphertext with its tag.
const FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the key-encryption key must be 32 bytes, not {0}")]
    KeyLength(usize),
    #[error("sealed key `{0}` does not open with this key-encryption key (wrong key, or altered)")]
    Open(String),
    #[error("no random numbers: {0}")]
    Random(String),
}

/// Seals and opens private keys under one key-encryption key.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    pub fn new(kek: &[u8]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, kek).map_err(|_| SealError::KeyLength(kek.len()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        })
    }

    /// `secret` sealed under the name `name`.
    pub fn seal(&self, name: &str, secret: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|e| SealError::Random(e.to_string()))?;
        let mut buffer = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| SealError::Open(name.to_owned()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        sealed.push(FORMAT);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&buffer);
        Ok(sealed)
    }

    /// The secret sealed under `name`, if this key sealed it and nothing changed it since.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let refused = || SealError::Open(name.to_owned());
        let (&format, rest) = sealed.split_first().ok_or_else(refused)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(refused());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let opened = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buffer)
            .map_err(|_| refused())?
            .len();
        buffer.truncate(opened);
        Ok(buffer)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("`{0}` is not a key name: use 1–128 characters from a–z, 0–9, `.`, `_` and `-`")]
    Name(String),
    #[error("key store: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Where sealed private keys are kept, by name. It holds only sealed blobs; [`SealedKeys`] seals and
/// opens.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), KeyStoreError>;
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, KeyStoreError>;
    async fn delete(&self, name: &str) -> Result<(), KeyStoreError>;
}

fn check_name(name: &str) -> Result<(), KeyStoreError> {
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if name.is_empty() || name.len() > 128 || name.starts_with('.') || !name.chars().all(valid) {
        return Err(KeyStoreError::Name(name.to_owned()));
    }
    Ok(())
}

/// Sealed keys in a directory, one file each, readable by the owner only.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// Keys in `dir`, which is created (mode 0700) when missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, KeyStoreError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        set_mode(&dir, 0o700)?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeyStoreError> {
        check_name(name)?;
        Ok(self.dir.join(format!("{name}.sealed")))
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

#[async_trait]
impl KeyStore for FileKeyStore {
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), KeyStoreError> {
        let path = self.path(name)?;
        let temporary = path.with_extension("sealed.new");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary)?;
            file.write_all(&sealed)?;
            // A key acknowledged as stored survives a crash: data, then the name.
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let path = self.path(name)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), KeyStoreError> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Sealed keys in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<String, Vec<u8>>>,
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), KeyStoreError> {
        check_name(name)?;
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), sealed);
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        check_name(name)?;
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned())
    }

    async fn delete(&self, name: &str) -> Result<(), KeyStoreError> {
        check_name(name)?;
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(())
    }
}

/// A [`KeyStore`] with its [`Sealer`]: keys go in and come out in clear, and are sealed in between.
#[derive(Debug)]
pub struct SealedKeys {
    sealer: Sealer,
    store: Box<dyn KeyStore>,
}

impl SealedKeys {
    pub fn new(sealer: Sealer, store: impl KeyStore) -> Self {
        Self {
            sealer,
            store: Box::new(store),
        }
    }

    pub async fn put(&self, name: &str, secret: &[u8]) -> Result<(), KeyStoreError> {
        check_name(name)?;
        let sealed = self.sealer.seal(name, secret)?;
        self.store.put(name, sealed).await
    }

    pub async fn get(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyStoreError> {
        match self.store.get(name).await? {
            Some(sealed) => Ok(Some(self.sealer.open(name, &sealed)?)),
            None => Ok(None),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), KeyStoreError> {
        self.store.delete(name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_under_its_name_and_key_unaltered() {
        let sealer = Sealer::new(&[7; 32]).unwrap();
        let sealed = sealer.seal("ca.intermediate", b"private key").unwrap();
        assert!(
            !sealed.windows(11).any(|w| w == b"private key"),
            "nothing in clear"
        );
        assert_eq!(
            sealer.open("ca.intermediate", &sealed).unwrap().as_slice(),
            b"private key"
        );
        assert!(sealer.open("ca.root", &sealed).is_err(), "another name");
        assert!(
            Sealer::new(&[8; 32])
                .unwrap()
                .open("ca.intermediate", &sealed)
                .is_err(),
            "another key"
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("ca.intermediate", &altered).is_err(), "altered");
        assert!(sealer.open("ca.intermediate", &[]).is_err());
        assert!(matches!(Sealer::new(&[0; 16]), Err(SealError::KeyLength(16))));
        assert_ne!(
            sealer.seal("a", b"x").unwrap(),
            sealer.seal("a", b"x").unwrap(),
            "fresh nonces"
        );
    }

    #[tokio::test]
    async fn a_file_store_keeps_sealed_keys_private() {
        let dir = std::env::temp_dir().join(format!("prism-keys-{}", uuid::Uuid::now_v7()));
        let keys = SealedKeys::new(Sealer::new(&[7; 32]).unwrap(), FileKeyStore::open(&dir).unwrap());
        keys.put("ca.root", b"root key").await.unwrap();
        assert_eq!(
            keys.get("ca.root").await.unwrap().unwrap().as_slice(),
            b"root key"
        );
        let file = std::fs::read(dir.join("ca.root.sealed")).unwrap();
        assert!(!file.windows(8).any(|w| w == b"root key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join("ca.root.sealed"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(keys.get("missing").await.unwrap().is_none());
        assert!(matches!(
            keys.put("../escape", b"x").await,
            Err(KeyStoreError::Name(_))
        ));
        keys.delete("ca.root").await.unwrap();
        assert!(keys.get("ca.root").await.unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
