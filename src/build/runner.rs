//! Where a build runs its programs: on the host, or inside the build root of a target
//! distribution ([`crate::build::root`]) with chroot.
//!
//! An environment kind asks the [`Runner`] for a [`Command`] (`runner.command(program,
//! workdir)`), names every path it hands to that command as the command sees it
//! (`runner.inside(path)`), and writes its output into `runner.scratch()`, a directory
//! both sides see. Dependency detection reads the [`SystemRoot`] the runner gives: the
//! dpkg database and libraries of the system the environment was built against.
//!
//! Inside a root each command runs in namespaces of its own (`unshare --mount --pid --ipc
//! --uts`): nothing it mounts is seen by the host or by another build and every mount
//! ends with the command; it sees only its own processes (its `/proc` is of its PID
//! namespace, and what it leaves running is killed when it ends), and a hostname of its
//! own. Its mounts: `/proc`, a minimal `/dev` (null, zero, full, random, urandom, tty, a
//! devpts of its own when the kernel gives one, and `/dev/shm`, which Python's process
//! pools need), and the application directory bound read-only at [`APPLICATION_MOUNT`];
//! the host's `/etc/ssl/certs` is bound read-only over the root's, so that a download
//! (pip, npm) trusts what the host trusts (a company's proxy CA). A bind mount of the
//! application rather than a copy: the application directory can be large (a
//! `node_modules`, a git checkout) and is only read, and read-only is what proves a build
//! does not write into it. The root a build's commands see is a throwaway layer over the
//! cached root ([`crate::build::root`]), so what they write into it is gone for the next
//! build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where the application directory appears inside a build root.
pub(crate) const APPLICATION_MOUNT: &str = "/debstage/app";

/// The directory of a build root whose contents outlive the build (download caches, npm's
/// logs): bound from a directory beside the cached root ([`crate::build::root`]).
pub(crate) const KEPT_CACHE: &str = "/var/cache/debstage";

/// PATH of the commands run inside a build root: Debian's, whatever the host's is.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The mounts of one command in a build root, then chroot. Its arguments: the root, the
/// application directory, the working directory inside, then the program and its
/// arguments; none of them is ever part of the script's text.
const ENTER_ROOT: &str = r#"set -e
root=$1 application=$2 workdir=$3
shift 3
mount -t proc proc "$root/proc"
echo debstage-build > "$root/proc/sys/kernel/hostname"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for device in null zero full random urandom tty; do
  : > "$root/dev/$device"
  mount --bind "/dev/$device" "$root/dev/$device"
done
mkdir "$root/dev/pts" "$root/dev/shm"
if mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts" 2>/dev/null; then
  ln -s pts/ptmx "$root/dev/ptmx"
fi
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount --bind "$application" "$root/debstage/app"
mount -o remount,bind,ro "$root/debstage/app"
if [ -d /etc/ssl/certs ] && [ -d "$root/etc/ssl/certs" ]; then
  mount --bind /etc/ssl/certs "$root/etc/ssl/certs"
  mount -o remount,bind,ro "$root/etc/ssl/certs"
fi
exec chroot "$root" /usr/bin/env --chdir="$workdir" "$@"
"#;

/// The system a build's programs and libraries come from: `/` on the host, or a build
/// root. Paths given to it are as that system sees them (`/usr/lib/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemRoot {
    /// The root directory on the host (`/` for the host itself).
    path: PathBuf,
}

impl SystemRoot {
    /// The host's own system.
    pub(crate) fn host() -> SystemRoot {
        SystemRoot {
            path: PathBuf::from("/"),
        }
    }

    /// The system in the directory `path`.
    pub(crate) fn at(path: &Path) -> SystemRoot {
        SystemRoot {
            path: path.to_path_buf(),
        }
    }

    /// Whether this is the host's own system.
    pub(crate) fn is_host(&self) -> bool {
        self.path == Path::new("/")
    }

    /// Where the file the system knows as `inside` (absolute) is on the host.
    pub(crate) fn host_path(&self, inside: &Path) -> PathBuf {
        if self.is_host() {
            return inside.to_path_buf();
        }
        self.path.join(inside.strip_prefix("/").unwrap_or(inside))
    }

    /// The canonical form of `inside` as the system sees it (links resolved). A link with
    /// an absolute target inside a root is resolved on the host, as canonicalize does:
    /// Debian's libraries link relatively, so the dynamic loader's own link is the one
    /// case, and dpkg knows it by its unresolved name as well.
    pub(crate) fn canonicalize(&self, inside: &Path) -> Option<PathBuf> {
        let real = std::fs::canonicalize(self.host_path(inside)).ok()?;
        if self.is_host() {
            return Some(real);
        }
        let root = std::fs::canonicalize(&self.path).ok()?;
        let rest = real.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(rest))
    }

    /// The dpkg database of this system (on the host, `DPKG_ADMINDIR` when it is set).
    pub(crate) fn dpkg_admin_dir(&self) -> PathBuf {
        if self.is_host() {
            if let Some(admin_dir) = std::env::var_os("DPKG_ADMINDIR") {
                return PathBuf::from(admin_dir);
            }
        }
        self.host_path(Path::new("/var/lib/dpkg"))
    }
}

/// Runs a build's programs: on the host, or in a build root.
#[derive(Debug, Clone)]
pub(crate) enum Runner {
    /// On the build host, as it is.
    Host,
    /// Inside a build root, with chroot.
    Root {
        /// The root directory.
        root: PathBuf,
        /// The application directory (canonical), bound read-only at [`APPLICATION_MOUNT`].
        application: PathBuf,
        /// The host directory bound at [`KEPT_CACHE`], which outlives the build's layer.
        kept: Option<PathBuf>,
    },
}

impl Runner {
    /// The system the programs see.
    pub(crate) fn system_root(&self) -> SystemRoot {
        match self {
            Runner::Host => SystemRoot::host(),
            Runner::Root { root, .. } => SystemRoot::at(root),
        }
    }

    /// A command that runs `program` (a path or a name on Debian's PATH, as the build
    /// sees it) in `workdir` (as the build sees it, see [`Runner::inside`]). The caller
    /// adds arguments and environment as for any command.
    pub(crate) fn command(&self, program: impl AsRef<OsStr>, workdir: &Path) -> Command {
        match self {
            Runner::Host => {
                let mut command = Command::new(program);
                command.current_dir(workdir);
                command
            }
            Runner::Root {
                root, application, ..
            } => {
                let mut command = Command::new("unshare");
                command
                    // --fork: the command is the first process of its PID namespace;
                    // --kill-child: it does not outlive a killed build.
                    .args([
                        "--mount",
                        "--propagation",
                        "private",
                        "--pid",
                        "--fork",
                        "--kill-child",
                        "--ipc",
                        "--uts",
                        "--",
                        "sh",
                        "-c",
                    ])
                    .arg(ENTER_ROOT)
                    .arg("debstage-enter-root")
                    .arg(root)
                    .arg(application)
                    .arg(workdir)
                    .arg(program)
                    .env("PATH", ROOT_PATH)
                    // Downloads are kept where the build's layer does not forget them
                    // (see crate::build::root); a host path would mean nothing inside.
                    // pip keeps only what the index lets it cache (PyPI's files are
                    // `immutable`): behind a proxy that strips Cache-Control its cache
                    // stays empty, as it does on the host.
                    .env("PIP_CACHE_DIR", format!("{KEPT_CACHE}/pip"))
                    .env("UV_CACHE_DIR", format!("{KEPT_CACHE}/uv"))
                    .env("npm_config_cache", format!("{KEPT_CACHE}/npm"))
                    // The host's working directory would stay open behind the chroot.
                    .current_dir(root);
                command
            }
        }
    }

    /// The PATH of a command of this runner with `directory` (as the build sees it)
    /// searched first: before the host's PATH, or Debian's in a root.
    pub(crate) fn path_with_first(&self, directory: &Path) -> std::ffi::OsString {
        let rest = match self {
            Runner::Host => std::env::var_os("PATH").unwrap_or_else(|| ROOT_PATH.into()),
            Runner::Root { .. } => ROOT_PATH.into(),
        };
        let mut path = directory.as_os_str().to_owned();
        path.push(":");
        path.push(rest);
        path
    }

    /// How the programs see the host path `path`: itself on the host; in a root, a path
    /// under the root as its path inside, the application directory as
    /// [`APPLICATION_MOUNT`]. Anything else is not visible there.
    pub(crate) fn inside(&self, path: &Path) -> Result<PathBuf> {
        let Runner::Root {
            root, application, ..
        } = self
        else {
            return Ok(path.to_path_buf());
        };
        let real = fs_err::canonicalize(path)?;
        let root = fs_err::canonicalize(root)?;
        if let Ok(rest) = real.strip_prefix(&root) {
            return Ok(Path::new("/").join(rest));
        }
        if let Ok(rest) = real.strip_prefix(application) {
            return Ok(Path::new(APPLICATION_MOUNT).join(rest));
        }
        bail!(
            "{}: is neither in the build root {} nor in the application directory {}, so \
             the build cannot see it there",
            path.display(),
            root.display(),
            application.display()
        )
    }

    /// Where the host finds, after the build, the file the programs know as `inside`
    /// (absolute): under [`KEPT_CACHE`], in the directory that outlives the build; in the
    /// application directory; `None` for any other file of a root, which is gone with
    /// the build's layer.
    pub(crate) fn host_path_after(&self, inside: &Path) -> Option<PathBuf> {
        let Runner::Root {
            application, kept, ..
        } = self
        else {
            return Some(inside.to_path_buf());
        };
        if let (Some(kept), Ok(rest)) = (kept, inside.strip_prefix(KEPT_CACHE)) {
            return Some(kept.join(rest));
        }
        inside
            .strip_prefix(APPLICATION_MOUNT)
            .ok()
            .map(|rest| application.join(rest))
    }

    /// A new empty directory the programs can write into and the host can read: a
    /// temporary directory of the host, or of the root's `/tmp`. Removed when dropped.
    pub(crate) fn scratch(&self) -> Result<tempfile::TempDir> {
        let builder = {
            let mut builder = tempfile::Builder::new();
            builder.prefix("debstage-stage-");
            builder
        };
        match self {
            Runner::Host => builder.tempdir(),
            Runner::Root { root, .. } => builder.tempdir_in(root.join("tmp")),
        }
        .context("creating a scratch directory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_into_a_root_and_the_host_is_itself() -> Result<()> {
        let temp = tempfile::tempdir()?;
        let root = temp.path().join("root");
        let application = temp.path().join("app");
        std::fs::create_dir_all(root.join("tmp/work"))?;
        std::fs::create_dir_all(application.join("src"))?;
        let runner = Runner::Root {
            root: root.clone(),
            application: std::fs::canonicalize(&application)?,
            kept: Some(temp.path().join("kept")),
        };
        assert_eq!(
            runner.inside(&root.join("tmp/work"))?,
            Path::new("/tmp/work")
        );
        assert_eq!(
            runner.inside(&application.join("src"))?,
            Path::new("/debstage/app/src")
        );
        assert!(runner.inside(temp.path()).is_err());
        assert_eq!(
            runner.host_path_after(Path::new("/var/cache/debstage/npm/_logs/1.log")),
            Some(temp.path().join("kept/npm/_logs/1.log"))
        );
        assert_eq!(
            runner.host_path_after(Path::new("/debstage/app/a.txt")),
            Some(std::fs::canonicalize(&application)?.join("a.txt"))
        );
        assert_eq!(runner.host_path_after(Path::new("/tmp/x.log")), None);
        assert_eq!(Runner::Host.inside(Path::new("/x/y"))?, Path::new("/x/y"));
        let system = runner.system_root();
        assert_eq!(
            system.host_path(Path::new("/usr/lib")),
            root.join("usr/lib")
        );
        assert_eq!(
            system.canonicalize(Path::new("/tmp/work")).as_deref(),
            Some(Path::new("/tmp/work"))
        );
        assert_eq!(
            SystemRoot::host().host_path(Path::new("/usr/lib")),
            Path::new("/usr/lib")
        );
        Ok(())
    }
}
