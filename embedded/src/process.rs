//! Small process and filesystem helpers shared by the NATS and PostgreSQL launchers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::EmbedError;
use crate::safe_fs::Owner;

/// Whether `path` is a regular file with an execute bit, i.e. worth trying to run.
pub(crate) fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Every executable called `name` on `PATH`, in `PATH` order.
pub(crate) fn all_on_path(name: &str) -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .filter(|p| is_executable(p))
        .collect()
}

/// Runs a short Python snippet and returns the last line it printed.
///
/// Used to ask the interpreter where pip put things; only the last line counts because some
/// environments print warnings before the answer.
pub(crate) fn python_stdout(snippet: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", snippet])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

/// The last `lines` lines of a text file, or a note saying why there are none; used to put a
/// failing server's own explanation into our error message.
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether this process runs with effective uid 0, where PostgreSQL refuses to start.
pub(crate) fn is_root() -> bool {
    effective_uid() == 0
}

/// This process's effective uid, which owns what it creates (`/proc/self` belongs to it).
pub(crate) fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return meta.uid();
    }
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(u32::MAX)
}

/// Quotes one word for `/bin/sh` so paths with spaces survive `su -c` and watchdog scripts.
pub(crate) fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A program and its arguments, kept separate from how it is launched so the same command can
/// be run directly, as another user, or embedded in a shell script.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub program: String,
    pub args: Vec<String>,
}

impl Invocation {
    pub fn new(program: &Path) -> Self {
        Self {
            program: program.to_string_lossy().into_owned(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn arg_path(self, path: &Path) -> Self {
        self.arg(path.to_string_lossy())
    }

    fn words(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str))
    }

    /// The command as a single `/bin/sh` line (for logs, `su -c` and scripts).
    pub fn shell_line(&self) -> String {
        self.words().map(shell_quote).collect::<Vec<_>>().join(" ")
    }
}

/// Which user a command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunAs {
    /// This process's own user.
    Current,
    /// `nobody`, via `setpriv` (direct exec, no shell involved).
    NobodySetpriv,
    /// `nobody`, via `su` where `setpriv` is missing.
    NobodySu,
}

impl RunAs {
    /// `nobody` when we are root (PostgreSQL refuses uid 0), ourselves otherwise.
    pub fn for_postgres() -> Self {
        if !is_root() {
            Self::Current
        } else if all_on_path("setpriv").is_empty() {
            Self::NobodySu
        } else {
            Self::NobodySetpriv
        }
    }

    /// Wraps `inv` so that it runs as this user.
    pub fn wrap(self, inv: &Invocation) -> Invocation {
        match self {
            Self::Current => inv.clone(),
            Self::NobodySetpriv => {
                let mut wrapped = Invocation::new(Path::new("setpriv"))
                    .arg("--reuid=nobody")
                    .arg(format!("--regid={}", nobody().gid))
                    .arg("--clear-groups")
                    .arg("--");
                wrapped.args.extend(inv.words().map(str::to_owned));
                wrapped
            }
            Self::NobodySu => Invocation::new(Path::new("su"))
                .arg("-s")
                .arg("/bin/sh")
                .arg("nobody")
                .arg("-c")
                .arg(format!("exec {}", inv.shell_line())),
        }
    }

    pub fn std_command(self, inv: &Invocation) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let inv = self.wrap(inv);
        let mut cmd = std::process::Command::new(&inv.program);
        cmd.args(&inv.args);
        // `nobody` may not be able to enter our working directory, and PostgreSQL tools
        // complain if they cannot resolve it.
        cmd.current_dir("/");
        // A process group of its own, so that Ctrl-C in the terminal reaches only this
        // process, which then stops the servers in order; `pg_ctl start` forks the postmaster
        // from here.
        cmd.process_group(0);
        cmd
    }
}

/// `nobody`'s uid and primary gid (the group's name differs between distributions:
/// `nogroup`, `nobody`).
pub(crate) fn nobody() -> Owner {
    let id = |flag: &str| {
        std::process::Command::new("id")
            .args([flag, "nobody"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(65534)
    };
    Owner {
        uid: id("-u"),
        gid: id("-g"),
    }
}

/// Runs `inv` as `run_as` to completion; a non-zero exit becomes [`EmbedError::CommandFailed`]
/// carrying the command's output, since that output is usually the actual explanation.
pub(crate) async fn run(run_as: RunAs, inv: &Invocation) -> Result<Output, EmbedError> {
    run_with_input(run_as, inv, None).await
}

/// [`run`], writing `input` to the command's standard input (for secrets, which must not
/// appear in its arguments: every user can read those in `/proc`).
pub(crate) async fn run_with_input(
    run_as: RunAs,
    inv: &Invocation,
    input: Option<&[u8]>,
) -> Result<Output, EmbedError> {
    use tokio::io::AsyncWriteExt;
    let line = run_as.wrap(inv).shell_line();
    let mut child = tokio::process::Command::from(run_as.std_command(inv))
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(EmbedError::io(format!("cannot run `{line}`")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A command that exits without reading everything is judged by its exit status.
        let _ = stdin.write_all(input).await;
        drop(stdin);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(EmbedError::io(format!("cannot run `{line}`")))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(EmbedError::CommandFailed {
        command: line,
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ),
    })
}

/// Finds the first directory on the way from `/` to `path` (inclusive) that `nobody` cannot
/// enter, judged by the "other" execute bit.
///
/// Checked up front because otherwise PostgreSQL fails with a bare "permission denied" that
/// does not say which directory is at fault.
pub(crate) fn first_blocked_for_nobody(path: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    dirs.into_iter()
        .find(|dir| dir.metadata().is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        let inv = Invocation::new(Path::new("printf"))
            .arg("%s|")
            .arg("it's a path")
            .arg("");
        let out = std::process::Command::new("sh")
            .args(["-c", &inv.shell_line()])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's a path||");
    }

    #[tokio::test]
    async fn runs_as_nobody_when_root() {
        if !is_root() {
            return;
        }
        let inv = Invocation::new(Path::new("sh"))
            .arg("-c")
            .arg("id -un; echo \"$1\"")
            .arg("sh")
            .arg("a 'b'");
        for run_as in [RunAs::NobodySetpriv, RunAs::NobodySu] {
            let out = run(run_as, &inv).await.expect("run as nobody");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "nobody\na 'b'\n",
                "{run_as:?}"
            );
        }
    }
}
