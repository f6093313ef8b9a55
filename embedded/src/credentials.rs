//! Generated credentials for the embedded servers, kept in their data directories.

use std::fmt;

use crate::EmbedError;
use crate::safe_fs::{DirFd, Owner};

/// The file, in a server's data directory, that holds its credentials (mode 0600).
pub(crate) const CREDENTIALS_FILE: &str = "credentials.json";
/// 32 characters out of 62: about 190 bits.
const PASSWORD_LEN: usize = 32;
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A user name and the password that admits it to an embedded server.
///
/// Passwords are letters and digits only, so they can be written into URLs and configuration
/// files without escaping. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

impl Credentials {
    /// `user` with a new random password from the operating system's random source.
    pub(crate) fn generate(user: &str) -> Result<Self, EmbedError> {
        let mut password = String::with_capacity(PASSWORD_LEN);
        let mut bytes = [0u8; 64];
        while password.len() < PASSWORD_LEN {
            getrandom::fill(&mut bytes).map_err(|e| {
                EmbedError::io("cannot get random bytes from the operating system")(std::io::Error::other(
                    e.to_string(),
                ))
            })?;
            // Only bytes below 248 = 4 × 62, so every character is equally likely.
            for &b in bytes.iter().filter(|&&b| usize::from(b) < 4 * ALPHABET.len()) {
                if password.len() == PASSWORD_LEN {
                    break;
                }
                password.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
        Ok(Self {
            user: user.to_owned(),
            password,
        })
    }

    /// The credentials stored in `dir`, if any. The file must be private to `owner_uid`
    /// (see [`DirFd::read_private`]) and name `user`.
    pub(crate) fn load(dir: &DirFd, owner_uid: u32, user: &str) -> Result<Option<Self>, EmbedError> {
        let Some(text) = dir.read_private(CREDENTIALS_FILE, owner_uid)? else {
            return Ok(None);
        };
        let path = dir.path().join(CREDENTIALS_FILE);
        let malformed = |reason: &str| EmbedError::Unsafe {
            path: path.clone(),
            reason: format!("{reason}; remove it to have new credentials generated"),
        };
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| malformed("it is not valid JSON"))?;
        let field = |name: &str| {
            json.get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let (Some(stored_user), Some(password)) = (field("user"), field("password")) else {
            return Err(malformed("it lacks \"user\" or \"password\""));
        };
        if stored_user != user {
            return Err(malformed(&format!(
                "it is for user {stored_user:?}, not {user:?}"
            )));
        }
        if password.len() < 16 || !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(malformed("its password is not one Prism generated"));
        }
        Ok(Some(Self {
            user: stored_user,
            password,
        }))
    }

    /// Stores these credentials in `dir`, readable and writable by `owner` (or this process's
    /// user) only.
    pub(crate) fn store(&self, dir: &DirFd, owner: Option<Owner>) -> Result<(), EmbedError> {
        let json = serde_json::json!({ "user": self.user, "password": self.password });
        let text = format!("{json:#}\n");
        dir.write_private(CREDENTIALS_FILE, text.as_bytes(), 0o600, owner)
    }

    /// The stored credentials of `user` in `dir`, or new ones, stored there first.
    pub(crate) fn load_or_create(dir: &DirFd, owner_uid: u32, user: &str) -> Result<Self, EmbedError> {
        if let Some(credentials) = Self::load(dir, owner_uid, user)? {
            return Ok(credentials);
        }
        let credentials = Self::generate(user)?;
        credentials.store(dir, None)?;
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn passwords_are_long_alphanumeric_and_different() {
        let a = Credentials::generate("u").unwrap();
        let b = Credentials::generate("u").unwrap();
        assert_eq!(a.password.len(), PASSWORD_LEN);
        assert!(a.password.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a.password, b.password);
        assert!(!format!("{a:?}").contains(&a.password));
    }

    #[test]
    fn stored_once_and_reused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DirFd::open(&temp.path().canonicalize().unwrap()).unwrap();
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        let first = Credentials::load_or_create(&dir, me, "prism").unwrap();
        let mode = std::fs::metadata(temp.path().join(CREDENTIALS_FILE))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Credentials::load_or_create(&dir, me, "prism").unwrap(), first);
        assert!(Credentials::load(&dir, me, "other").is_err());
    }
}
