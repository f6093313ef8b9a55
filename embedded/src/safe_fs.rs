//! File-system work that root does in directories another user controls.
//!
//! As root, PostgreSQL runs as `nobody`, so root hands the cluster's files to `nobody` and later
//! reads and writes a few files in a directory `nobody` owns. Whoever owns a directory can put
//! anything in it (a symlink to `/etc/shadow`, a hard link to a root-owned file, a directory
//! swapped for a symlink half-way through a walk), so everything here works on file descriptors:
//! each directory is opened relative to its parent with `O_NOFOLLOW`, each file is examined
//! through the descriptor that is then acted on, and nothing is ever reached through a symlink.

use std::ffi::{CStr, OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

use crate::EmbedError;

/// Opening a directory: never through a symlink, never inherited by children.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Opening a file only to look at it or change its owner: no symlinks, no blocking on a FIFO,
/// no controlling terminal.
const PEEK_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
/// Deeper than any PostgreSQL data directory; bounds the descriptors a hostile tree can make a
/// walk hold open.
const MAX_DEPTH: usize = 32;
/// Larger than any file written here; a bigger one was not written by us.
const MAX_PRIVATE_FILE: u64 = 64 * 1024;

/// A user and group to hand files to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Dir,
    File,
    Symlink,
    Other,
}

/// A directory opened without following symlinks, with the path it was opened at (for
/// messages only: the path is never used to reach anything).
#[derive(Debug)]
pub(crate) struct DirFd {
    fd: OwnedFd,
    path: PathBuf,
}

impl DirFd {
    /// Opens the directory at `path`, which must be absolute and free of symlinks (as
    /// [`resolve_following_root_links`] and `canonicalize` return), one component at a time
    /// from `/` with `O_NOFOLLOW`: a symlink at any step, even one swapped in after the path
    /// was resolved, makes this fail rather than lead elsewhere.
    pub fn open(path: &Path) -> Result<Self, EmbedError> {
        let context = || format!("cannot open {} without following symlinks", path.display());
        let mut fd = rustix::fs::open("/", DIR_FLAGS, Mode::empty()).map_err(io_err(context()))?;
        for component in path.components() {
            match component {
                Component::RootDir => {}
                Component::Normal(name) => {
                    fd =
                        rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()).map_err(io_err(context()))?;
                }
                _ => {
                    return Err(EmbedError::io(context())(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the path must be absolute and normalised",
                    )));
                }
            }
        }
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Reads `name`, a file that must be private to `owner_uid`: a regular file with a single
    /// link, owned by `owner_uid`, with no permission for group or others. `None` when there
    /// is no such file; an error when there is one that does not look like ours, because a
    /// file that someone else could have written must not be trusted.
    pub fn read_private(&self, name: &str, owner_uid: u32) -> Result<Option<String>, EmbedError> {
        let path = self.child(OsStr::new(name));
        let fd = match rustix::fs::openat(&self.fd, name, PEEK_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err(format!("cannot open {}", path.display()))(e)),
        };
        let mut file = std::fs::File::from(fd);
        let meta = file
            .metadata()
            .map_err(EmbedError::io(format!("cannot inspect {}", path.display())))?;
        let problem = if !meta.is_file() {
            Some("it is not a regular file".to_owned())
        } else if meta.nlink() != 1 {
            Some(format!("it has {} hard links", meta.nlink()))
        } else if meta.uid() != owner_uid {
            Some(format!("it belongs to uid {}, not {owner_uid}", meta.uid()))
        } else if meta.mode() & 0o077 != 0 {
            Some(format!("its mode is {:o}, not 600", meta.mode() & 0o7777))
        } else if meta.len() > MAX_PRIVATE_FILE {
            Some(format!("it is {} bytes long", meta.len()))
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(EmbedError::Unsafe {
                path,
                reason: format!("{reason}; it was not written by Prism, remove it"),
            });
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(EmbedError::io(format!("cannot read {}", path.display())))?;
        Ok(Some(text))
    }

    /// Replaces `name` with a file holding `contents`, created with `mode` (so it is never
    /// more readable than that, not even for a moment) and owned by `owner` if given (else by
    /// this process's user). Written to a fresh name first and renamed over `name`, so readers
    /// see the old or the new file, never half of one, and a symlink at `name` is replaced,
    /// not followed.
    pub fn write_private(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<(), EmbedError> {
        let path = self.child(OsStr::new(name));
        let context = || format!("cannot write {}", path.display());
        let temp = format!(".{name}.{}.{:016x}", std::process::id(), random_u64()?);
        let flags = OFlags::WRONLY
            .union(OFlags::CREATE)
            .union(OFlags::EXCL)
            .union(OFlags::NOFOLLOW)
            .union(OFlags::CLOEXEC);
        let fd = rustix::fs::openat(&self.fd, temp.as_str(), flags, Mode::from_raw_mode(mode))
            .map_err(io_err(context()))?;
        let written = (|| {
            // The umask may have taken bits away; it cannot have added any.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            if let Some(owner) = owner {
                rustix::fs::fchown(&fd, Some(uid(owner.uid)), Some(gid(owner.gid)))?;
            }
            let mut file = std::fs::File::from(fd);
            file.write_all(contents)?;
            file.sync_all()?;
            rustix::fs::renameat(&self.fd, temp.as_str(), &self.fd, name)?;
            Ok(())
        })();
        written.map_err(|e: std::io::Error| {
            let _ = rustix::fs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
            EmbedError::io(context())(e)
        })
    }

    /// Removes the file `name` if there is one (a symlink is removed, not followed).
    pub fn remove_file(&self, name: &str) -> Result<(), EmbedError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(format!(
                "cannot remove {}",
                self.child(OsStr::new(name)).display()
            ))(e)),
        }
    }

    /// Creates the directory `name` with `mode` and opens it; an existing one is just opened.
    pub fn create_dir(&self, name: &str, mode: u32) -> Result<Self, EmbedError> {
        let path = self.child(OsStr::new(name));
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io_err(format!("cannot create {}", path.display()))(e)),
        }
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()).map_err(io_err(format!(
            "cannot open {} without following symlinks",
            path.display()
        )))?;
        Ok(Self { fd, path })
    }

    /// Opens the directory `relative` below this one, one component at a time, never
    /// following a symlink.
    pub fn open_dir(&self, relative: &Path) -> Result<Self, EmbedError> {
        let path = self.path.join(relative);
        let context = || format!("cannot open {} without following symlinks", path.display());
        let mut fd = self.fd.try_clone().map_err(EmbedError::io(context()))?;
        for component in relative.components() {
            match component {
                Component::CurDir => {}
                Component::Normal(name) => {
                    fd =
                        rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()).map_err(io_err(context()))?;
                }
                _ => {
                    return Err(EmbedError::io(context())(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the path must lead downwards",
                    )));
                }
            }
        }
        Ok(Self { fd, path })
    }

    /// The names in this directory, without `.` and `..`.
    pub fn entries(&self) -> Result<Vec<OsString>, EmbedError> {
        let context = || format!("cannot list {}", self.path.display());
        let mut names = Vec::new();
        for entry in Dir::read_from(&self.fd).map_err(io_err(context()))? {
            let entry = entry.map_err(io_err(context()))?;
            let name = entry.file_name();
            if name != c"." && name != c".." {
                names.push(os_string(name));
            }
        }
        Ok(names)
    }

    /// What `name` is, looked at without following it.
    pub fn kind(&self, name: &OsStr) -> Result<EntryKind, EmbedError> {
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err(format!("cannot inspect {}", self.child(name).display())))?;
        Ok(match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => EntryKind::Dir,
            FileType::RegularFile => EntryKind::File,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        })
    }

    /// Opens `name` for reading without following a symlink or blocking on a FIFO; check
    /// what it is through the returned file, not by name.
    pub fn open_file(&self, name: &OsStr) -> Result<std::fs::File, EmbedError> {
        rustix::fs::openat(&self.fd, name, PEEK_FLAGS, Mode::empty())
            .map(std::fs::File::from)
            .map_err(io_err(format!(
                "cannot open {} without following symlinks",
                self.child(name).display()
            )))
    }

    /// Where the symlink `name` points.
    pub fn read_link(&self, name: &OsStr) -> Result<PathBuf, EmbedError> {
        rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map(|target| PathBuf::from(OsStr::from_bytes(target.as_bytes())))
            .map_err(io_err(format!(
                "cannot read symlink {}",
                self.child(name).display()
            )))
    }

    /// The directory's own metadata.
    pub fn metadata(&self) -> Result<std::fs::Metadata, EmbedError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(EmbedError::io(format!("cannot inspect {}", self.path.display())))?;
        std::fs::File::from(fd)
            .metadata()
            .map_err(EmbedError::io(format!("cannot inspect {}", self.path.display())))
    }

    /// Sets the directory's mode.
    pub fn set_mode(&self, mode: u32) -> Result<(), EmbedError> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(io_err(format!("cannot chmod {}", self.path.display())))
    }

    /// Makes `owner` the owner of this directory and of everything below it, except the
    /// top-level entries named in `keep`, which stay as they are.
    ///
    /// This is how root gives a PostgreSQL cluster to `nobody`, in a directory `nobody` already
    /// owns from earlier runs and may have filled with anything. `chown -R -h` would not do: it
    /// is safe only on a path whose every component is checked, busybox and BSD `chown` differ
    /// from GNU's in how they walk, and none of them refuses a hard link, which `nobody` can
    /// make to a root-owned file where `fs.protected_hardlinks` is off and which `chown` would
    /// then give away. So the walk is done here, on descriptors:
    ///
    /// * directories are opened relative to their parent with `O_NOFOLLOW`, so a symlink, or
    ///   a directory swapped for one meanwhile, is never entered;
    /// * symlinks are left alone (their owner does not matter) and never followed;
    /// * a regular file is opened with `O_NOFOLLOW`, examined through that descriptor and
    ///   changed through it (`fchown`), so what is checked is what is changed; one with more
    ///   than one link that is not `owner`'s yet is refused;
    /// * the walk stays on one file system, and other file types (sockets, FIFOs, devices)
    ///   are skipped without being opened.
    pub fn hand_over(&self, owner: Owner, keep: &[&str]) -> Result<(), EmbedError> {
        let meta = self.metadata()?;
        hand_over_dir(&self.fd, &self.path, owner, meta.dev(), keep, 0)
    }
}

fn hand_over_dir(
    dir: &OwnedFd,
    path: &Path,
    owner: Owner,
    dev: u64,
    keep: &[&str],
    depth: usize,
) -> Result<(), EmbedError> {
    if depth > MAX_DEPTH {
        return Err(EmbedError::Unsafe {
            path: path.to_owned(),
            reason: format!("it is nested deeper than {MAX_DEPTH} directories"),
        });
    }
    let stat = rustix::fs::fstat(dir).map_err(io_err(format!("cannot inspect {}", path.display())))?;
    if stat.st_dev != dev {
        return Err(EmbedError::Unsafe {
            path: path.to_owned(),
            reason: "another file system is mounted there".to_owned(),
        });
    }
    chown_if_needed(dir, path, owner, stat.st_uid, stat.st_gid)?;

    let entries = Dir::read_from(dir).map_err(io_err(format!("cannot list {}", path.display())))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("cannot list {}", path.display())))?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(os_string(name));
        }
    }
    for name in names {
        if depth == 0 && keep.iter().any(|k| OsStr::new(k) == name) {
            continue;
        }
        let child = path.join(&name);
        let stat = match rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed meanwhile (PostgreSQL is not running, but `nobody` may be).
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(io_err(format!("cannot inspect {}", child.display()))(e)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let sub = match rustix::fs::openat(dir, &name, DIR_FLAGS, Mode::empty()) {
                    Ok(sub) => sub,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(io_err(format!(
                            "cannot open {} without following symlinks",
                            child.display()
                        ))(e));
                    }
                };
                hand_over_dir(&sub, &child, owner, dev, keep, depth + 1)?;
            }
            FileType::RegularFile => {
                let file = match rustix::fs::openat(dir, &name, PEEK_FLAGS, Mode::empty()) {
                    Ok(file) => file,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(io_err(format!(
                            "cannot open {} without following symlinks",
                            child.display()
                        ))(e));
                    }
                };
                let stat = rustix::fs::fstat(&file)
                    .map_err(io_err(format!("cannot inspect {}", child.display())))?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_dev != dev {
                    // Swapped for something else since it was looked at: leave it alone.
                    continue;
                }
                if (stat.st_uid, stat.st_gid) != (owner.uid, owner.gid) && stat.st_nlink > 1 {
                    return Err(EmbedError::Unsafe {
                        path: child,
                        reason: format!(
                            "it has {} hard links, so changing its owner would change a file \
                             elsewhere too; remove it",
                            stat.st_nlink
                        ),
                    });
                }
                chown_if_needed(&file, &child, owner, stat.st_uid, stat.st_gid)?;
            }
            // Symlinks are never followed and their own owner does not matter; PostgreSQL
            // makes no sockets (they are disabled), FIFOs or devices here.
            _ => {}
        }
    }
    Ok(())
}

fn chown_if_needed(
    fd: &OwnedFd,
    path: &Path,
    owner: Owner,
    uid_now: u32,
    gid_now: u32,
) -> Result<(), EmbedError> {
    if (uid_now, gid_now) == (owner.uid, owner.gid) {
        return Ok(());
    }
    rustix::fs::fchown(fd, Some(uid(owner.uid)), Some(gid(owner.gid)))
        .map_err(io_err(format!("cannot change the owner of {}", path.display())))
}

/// `path` made absolute, with every symlink on the way resolved, following only symlinks that
/// belong to root.
///
/// As root, the directory this leads to is handed to `nobody`. `canonicalize` would follow any
/// symlink, including one that `nobody` (or anyone else) put where a directory used to be, say
/// `/tmp/pgdata -> /etc`, and the hand-over would then give away whatever it points to. Root's
/// own symlinks (`/var/run -> /run`, a data directory a root user linked elsewhere) are as
/// trustworthy as the rest of the path; anyone else's is refused.
pub(crate) fn resolve_following_root_links(path: &Path) -> Result<PathBuf, EmbedError> {
    #[derive(Debug)]
    enum Step {
        Root,
        Parent,
        Name(OsString),
    }
    fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
        path.components().filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(name) => Some(Step::Name(name.to_owned())),
        })
    }

    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(EmbedError::io("cannot find the current directory"))?
            .join(path)
    };
    let mut pending: Vec<Step> = steps(&absolute).rev().collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(step) = pending.pop() {
        match step {
            Step::Root => resolved = PathBuf::from("/"),
            Step::Parent => {
                resolved.pop();
            }
            Step::Name(name) => {
                let next = resolved.join(&name);
                let meta = std::fs::symlink_metadata(&next)
                    .map_err(EmbedError::io(format!("cannot inspect {}", next.display())))?;
                if !meta.file_type().is_symlink() {
                    resolved = next;
                    continue;
                }
                if meta.uid() != 0 {
                    return Err(EmbedError::Unsafe {
                        path: next,
                        reason: format!(
                            "it is a symlink that belongs to uid {}, not root, and PostgreSQL's files \
                             are handed to user `nobody` at its end; use the real path",
                            meta.uid()
                        ),
                    });
                }
                links += 1;
                if links > 40 {
                    return Err(EmbedError::io(format!("cannot resolve {}", absolute.display()))(
                        std::io::Error::other("too many levels of symbolic links"),
                    ));
                }
                let target = std::fs::read_link(&next)
                    .map_err(EmbedError::io(format!("cannot read symlink {}", next.display())))?;
                pending.extend(steps(&target).rev());
            }
        }
    }
    Ok(resolved)
}

/// Whether only root can change what `path` (absolute, without symlinks) leads to: every
/// directory from `/` down to it belongs to root and is writable by nobody else, unless it is
/// sticky (like `/tmp`: others cannot rename or remove root's entries in it).
pub(crate) fn only_root_can_change(path: &Path) -> bool {
    path.ancestors().all(|dir| {
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == 0 && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0))
    })
}

/// 64 bits from the operating system's random source.
pub(crate) fn random_u64() -> Result<u64, EmbedError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| {
        EmbedError::io("cannot get random bytes from the operating system")(std::io::Error::other(
            e.to_string(),
        ))
    })?;
    Ok(u64::from_le_bytes(bytes))
}

fn os_string(name: &CStr) -> OsString {
    OsStr::from_bytes(name.to_bytes()).to_owned()
}

fn uid(raw: u32) -> Uid {
    Uid::from_raw(raw)
}

fn gid(raw: u32) -> Gid {
    Gid::from_raw(raw)
}

fn io_err(context: impl Into<String>) -> impl FnOnce(Errno) -> EmbedError {
    let wrap = EmbedError::io(context);
    move |errno| wrap(errno.into())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::process::is_root;

    fn dir_fd(path: &Path) -> DirFd {
        DirFd::open(&path.canonicalize().unwrap()).unwrap()
    }

    #[test]
    fn refuses_to_open_through_a_symlink() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("dir")).unwrap();
        std::os::unix::fs::symlink(real.join("dir"), real.join("link")).unwrap();
        assert!(DirFd::open(&real.join("dir")).is_ok());
        assert!(DirFd::open(&real.join("link")).is_err());
        assert!(DirFd::open(&real.join("link/../dir")).is_err());
        assert!(DirFd::open(Path::new("relative")).is_err());
    }

    #[test]
    fn private_files_are_created_private_and_checked_when_read() {
        let temp = tempfile::tempdir().unwrap();
        let dir = dir_fd(temp.path());
        let me = std::fs::metadata("/proc/self").unwrap().uid();
        assert_eq!(dir.read_private("secret", me).unwrap(), None);

        dir.write_private("secret", b"one", 0o600, None).unwrap();
        let path = temp.path().join("secret");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(dir.read_private("secret", me).unwrap().as_deref(), Some("one"));

        dir.write_private("secret", b"two", 0o600, None).unwrap();
        assert_eq!(dir.read_private("secret", me).unwrap().as_deref(), Some("two"));
        let leftovers = std::fs::read_dir(temp.path()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(dir.read_private("secret", me).is_err(), "readable by others");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(dir.read_private("secret", me + 1).is_err(), "someone else's");
        std::fs::hard_link(&path, temp.path().join("other")).unwrap();
        assert!(dir.read_private("secret", me).is_err(), "hard-linked");
        std::fs::remove_file(temp.path().join("other")).unwrap();

        // A symlink in its place is neither read nor written through.
        std::fs::remove_file(&path).unwrap();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(outside.path(), &path).unwrap();
        assert!(dir.read_private("secret", me).is_err());
        dir.write_private("secret", b"three", 0o600, None).unwrap();
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(outside.path()).unwrap(), b"");
    }

    #[test]
    fn resolves_root_links_and_refuses_others() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().canonicalize().unwrap();
        std::fs::create_dir_all(real.join("a/b")).unwrap();
        std::os::unix::fs::symlink("a/b", real.join("link")).unwrap();
        let resolved = resolve_following_root_links(&real.join("link/../b/./")).unwrap();
        assert_eq!(resolved, real.join("a/b"));
        if is_root() {
            std::os::unix::fs::lchown(real.join("link"), Some(65534), None).unwrap();
            let err = resolve_following_root_links(&real.join("link")).unwrap_err();
            assert!(err.to_string().contains("not root"), "{err}");
        }
    }

    #[test]
    fn hand_over_follows_no_symlink_and_gives_away_no_hard_link() {
        if !is_root() {
            println!("skipped: changing owners needs root");
            return;
        }
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().canonicalize().unwrap();
        let victims = root.join("victims");
        std::fs::create_dir_all(victims.join("dir")).unwrap();
        std::fs::write(victims.join("file"), "x").unwrap();
        std::fs::write(victims.join("dir/inner"), "x").unwrap();
        std::fs::write(victims.join("linked"), "x").unwrap();

        let data = root.join("data");
        std::fs::create_dir_all(data.join("sub/deeper")).unwrap();
        std::fs::write(data.join("sub/deeper/file"), "x").unwrap();
        std::fs::write(data.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(victims.join("file"), data.join("file-link")).unwrap();
        std::os::unix::fs::symlink(victims.join("dir"), data.join("sub/dir-link")).unwrap();

        let nobody = Owner {
            uid: 65534,
            gid: 65534,
        };
        dir_fd(&data).hand_over(nobody, &["keep"]).unwrap();
        let owner = |p: &Path| {
            let m = std::fs::symlink_metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        for p in ["", "sub", "sub/deeper", "sub/deeper/file"] {
            assert_eq!(owner(&data.join(p)), (65534, 65534), "{p}");
        }
        assert_eq!(owner(&data.join("keep")), (0, 0));
        for p in ["file", "dir", "dir/inner", "linked"] {
            assert_eq!(owner(&victims.join(p)), (0, 0), "{p}");
        }

        std::fs::hard_link(victims.join("linked"), data.join("sub/hard")).unwrap();
        let err = dir_fd(&data).hand_over(nobody, &[]).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(owner(&victims.join("linked")), (0, 0));
    }

    #[test]
    fn root_controlled_paths() {
        assert!(only_root_can_change(Path::new("/")));
        if is_root() {
            assert!(only_root_can_change(Path::new("/tmp")), "sticky");
        }
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().canonicalize().unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!only_root_can_change(&real));
    }
}
