//! The build root of a target distribution: a Debian (or Ubuntu) system made once with
//! debootstrap from the mirror the machine's apt is configured with, cached in
//! `$XDG_CACHE_HOME/debstage/roots/<codename>-<arch>` (`~/.cache` without it), with the
//! Debian packages the build needs installed into it on demand.
//!
//! - A root older than a day is made again (a new one beside the old, renamed into
//!   place), with every package the old one had, so that security updates reach the
//!   builds.
//! - What a root holds is recorded in it (`/var/lib/debstage/build-root.json`): a root
//!   that has every package a build asks for is used as it is.
//! - A lock beside the root (`<codename>-<arch>.lock`): builds that use the root hold it
//!   shared; making, refreshing or adding packages holds it exclusive, so two builds may
//!   run at once and a root never changes under a build.
//! - A build never writes into the cached root: its commands see a throwaway overlayfs
//!   layer over it (`<codename>-<arch>.layers/<pid>-*/{upper,work,merged}` beside the
//!   root), unmounted and deleted when the build ends, so what one build writes (a file
//!   in `/etc`, a package a build command installs) is gone for the next. The packages of
//!   `[build] packages` are installed into the cached root itself, under the exclusive
//!   lock. One directory survives the layer: `/var/cache/debstage`, bound from
//!   `<codename>-<arch>.cache` beside the root, where downloads keyed by their version
//!   are kept (pip's, uv's and npm's caches, the Node package managers).
//!   A layer a killed build left mounted is removed by the next build that uses the root.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::build::env::command::run_streamed;
use crate::build::manifest::LoadedManifest;
use crate::build::runner::{Runner, APPLICATION_MOUNT, KEPT_CACHE};
use crate::debian::apt_sources;
use crate::naming::distribution::{self, Distribution, Vendor};
use crate::report::Reporter;

/// How old a root may be before a build makes it again, in seconds (a day).
const MAX_AGE_SECONDS: u64 = 24 * 60 * 60;

/// Where the record of a root lives, inside it.
const RECORD: &str = "var/lib/debstage/build-root.json";

/// What a root holds, recorded in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The codename.
    distribution: String,
    /// The Debian architecture.
    architecture: String,
    /// The mirror it was made from.
    mirror: String,
    /// When debootstrap made it (seconds since the epoch).
    created: u64,
    /// The packages installed into it on request, sorted.
    packages: BTreeSet<String>,
}

/// A build root ready for one build: a throwaway layer over the cached root, unmounted
/// and deleted when dropped; the shared lock on the cached root is held until then.
#[derive(Debug)]
pub(crate) struct BuildRoot {
    layer: Layer,
    _lock: File,
}

impl BuildRoot {
    /// The runner of the build of `manifest` in this root.
    pub(crate) fn runner(&self, manifest: &LoadedManifest) -> Result<Runner> {
        let application = fs_err::canonicalize(&manifest.directory)?;
        Ok(Runner::Root {
            root: self.layer.merged(),
            application,
            kept: Some(self.layer.kept.clone()),
        })
    }
}

/// One build's overlayfs layer over a cached root: `upper/` takes what the build writes,
/// `merged/` is the root the build sees. Unmounted and deleted when dropped.
#[derive(Debug)]
struct Layer {
    directory: PathBuf,
    /// The host directory bound at the layer's [`KEPT_CACHE`].
    kept: PathBuf,
}

impl Layer {
    /// Mounts a new layer over the cached root `lower` in a new directory under `layers`,
    /// with the persistent directory `cache` bound at its `/var/cache/debstage`.
    fn mount(lower: &Path, layers: &Path, cache: &Path) -> Result<Layer> {
        fs_err::create_dir_all(layers)?;
        fs_err::create_dir_all(cache)?;
        let directory = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(layers)
            .with_context(|| format!("{}: cannot be written", layers.display()))?
            .keep();
        // Dropped from here on: a failure below unmounts and deletes what was made.
        let layer = Layer {
            directory,
            kept: cache.to_path_buf(),
        };
        for part in ["upper", "work", "merged"] {
            let path = layer.directory.join(part);
            fs_err::create_dir(&path)?;
        }
        // The root directory of the merged tree takes its mode from the upper one.
        set_mode(&layer.directory.join("upper"), 0o755)?;
        let lower = fs_err::canonicalize(lower)?;
        let upper = layer.directory.join("upper");
        let work = layer.directory.join("work");
        for path in [&lower, &upper, &work] {
            // overlayfs separates its options with commas and its lower layers with colons.
            if path.to_string_lossy().contains([',', ':', '\\']) {
                bail!(
                    "{}: an overlayfs layer cannot use a path with a comma, colon or \
                     backslash; set XDG_CACHE_HOME to a plainer directory",
                    path.display()
                );
            }
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        let merged = layer.merged();
        run_quiet(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(&options)
                .arg(&merged),
            &format!(
                "mounting the overlayfs layer of this build over {} (the kernel's overlay \
                 module; upper and work directories in {})",
                lower.display(),
                layer.directory.display()
            ),
        )?;
        let cache_point = merged.join(KEPT_CACHE.trim_start_matches('/'));
        fs_err::create_dir_all(&cache_point)?;
        run_quiet(
            Command::new("mount")
                .arg("--bind")
                .arg(cache)
                .arg(&cache_point),
            &format!("binding {} into the build's layer", cache.display()),
        )?;
        Ok(layer)
    }

    fn merged(&self) -> PathBuf {
        self.directory.join("merged")
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        remove_layer(&self.directory);
    }
}

/// Unmounts the layer in `directory` (with what is mounted under it) and deletes it.
fn remove_layer(directory: &Path) {
    let merged = directory.join("merged");
    let is_mounted = |path: &Path| {
        Command::new("mountpoint")
            .arg("-q")
            .arg(path)
            .status()
            .is_ok_and(|status| status.success())
    };
    if is_mounted(&merged) {
        // Lazy: a process of the build that is still exiting must not keep it.
        let _ = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(&merged)
            .status();
    }
    if !is_mounted(&merged) {
        remove_tree(directory);
    }
}

/// Removes the layers that builds which are no longer running left under `layers`.
fn remove_dead_layers(layers: &Path) {
    let Ok(entries) = std::fs::read_dir(layers) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let running = pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if pid.is_some() && !running {
            remove_layer(&entry.path());
        }
    }
}

/// Runs `command`, its output kept for the error only.
fn run_quiet(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: cannot run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The cache directory of build roots: `$XDG_CACHE_HOME/debstage/roots`, or
/// `$HOME/.cache/debstage/roots` (the XDG base directory rule, two lines; no crate).
fn cache_directory() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|value| !value.is_empty()) {
        Some(cache) => PathBuf::from(cache),
        None => match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => bail!(
                "neither XDG_CACHE_HOME nor HOME is set: the build roots of --target are \
                 cached there"
            ),
        },
    };
    Ok(base.join("debstage").join("roots"))
}

/// The build host's Debian architecture: roots are made for it.
fn host_architecture() -> Result<String> {
    let output = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("cannot run dpkg --print-architecture (a --target build runs on Debian)")?;
    let architecture = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || architecture.is_empty() {
        bail!("dpkg --print-architecture gave no architecture");
    }
    Ok(architecture)
}

/// The mirror to make a root of `target` from: the first source of the machine's apt
/// configuration that serves a distribution of the same vendor.
fn mirror_for(target: Distribution) -> Result<String> {
    let codenames: Vec<&str> = distribution::known_codenames()
        .into_iter()
        .filter(|codename| {
            Distribution::by_codename(codename).is_ok_and(|known| known.vendor() == target.vendor())
        })
        .collect();
    let sources = apt_sources::read(Path::new("/etc/apt"));
    apt_sources::mirror_of(&sources, &codenames).ok_or_else(|| {
        let vendor = match target.vendor() {
            Vendor::Debian => "Debian",
            Vendor::Ubuntu => "Ubuntu",
        };
        anyhow::anyhow!(
            "--target {target}: no {vendor} mirror in this machine's apt sources \
             (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list|*.sources): the build \
             root is made with debootstrap from the mirror apt uses for one of {}",
            codenames.join(", ")
        )
    })
}

/// Takes `lock` shared or exclusive, saying so when another build holds it.
fn take_lock(lock: &File, path: &Path, exclusive: bool, reporter: &Reporter) -> Result<()> {
    let attempt = if exclusive {
        lock.try_lock()
    } else {
        lock.try_lock_shared()
    };
    match attempt {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            reporter.status(format!(
                "Waiting for another build that holds the build root {}",
                path.display()
            ));
            if exclusive {
                lock.lock()
            } else {
                lock.lock_shared()
            }
            .with_context(|| format!("{}: cannot be locked", path.display()))
        }
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("{}: cannot be locked", path.display()))
        }
    }
}

fn read_record(root: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(root.join(RECORD)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(root: &Path, record: &Record) -> Result<()> {
    let path = root.join(RECORD);
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let mut text = serde_json::to_vec_pretty(record)?;
    text.push(b'\n');
    Ok(fs_err::write(&path, text)?)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn is_fresh(record: &Record) -> bool {
    now().saturating_sub(record.created) < MAX_AGE_SECONDS
}

/// The build root of `target` with `packages` installed, made or refreshed first when
/// needed; held (shared) until the returned value is dropped.
pub(crate) fn prepare(
    manifest: &LoadedManifest,
    target: Distribution,
    packages: &[String],
    reporter: &Reporter,
) -> Result<BuildRoot> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "--target {target}: a build for a distribution runs in a chroot with its own \
             mounts, which needs root: run it as root (sudo), or build without --target on \
             a machine of that distribution"
        );
    }
    let cache = cache_directory()?;
    fs_err::create_dir_all(&cache)?;
    let architecture = host_architecture()?;
    let name = format!("{}-{architecture}", target.codename());
    let path = cache.join(&name);
    let lock_path = cache.join(format!("{name}.lock"));
    let wanted: BTreeSet<String> = packages.iter().cloned().collect();
    // Each pass either finds the root ready (shared lock) or changes it (exclusive lock)
    // and looks again; another build may change it between the two.
    for _ in 0..3 {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("{}: cannot be opened", lock_path.display()))?;
        take_lock(&lock, &path, false, reporter)?;
        if let Some(record) = read_record(&path) {
            if is_fresh(&record) && wanted.is_subset(&record.packages) {
                let layers = cache.join(format!("{name}.layers"));
                remove_dead_layers(&layers);
                let layer = Layer::mount(&path, &layers, &cache.join(format!("{name}.cache")))?;
                return Ok(BuildRoot { layer, _lock: lock });
            }
        }
        lock.unlock()
            .with_context(|| format!("{}: cannot be unlocked", lock_path.display()))?;
        take_lock(&lock, &path, true, reporter)?;
        match read_record(&path) {
            Some(record) if is_fresh(&record) => {
                let missing: Vec<String> = wanted.difference(&record.packages).cloned().collect();
                if !missing.is_empty() {
                    install_packages(manifest, &path, target, &missing, reporter)?;
                    let mut record = record;
                    record.packages.extend(missing);
                    write_record(&path, &record)?;
                }
            }
            old => {
                let mut packages = wanted.clone();
                if let Some(old) = &old {
                    packages.extend(old.packages.iter().cloned());
                }
                make_root(
                    manifest,
                    &cache,
                    &name,
                    target,
                    &architecture,
                    &packages,
                    reporter,
                )?;
            }
        }
        drop(lock);
    }
    bail!(
        "{}: other builds kept changing this build root; run the build again",
        path.display()
    )
}

/// Makes a new root `<name>.new-<pid>` beside the old one, with `packages`, and renames it
/// into place (the old one is removed). Called with the exclusive lock held.
fn make_root(
    manifest: &LoadedManifest,
    cache: &Path,
    name: &str,
    target: Distribution,
    architecture: &str,
    packages: &BTreeSet<String>,
    reporter: &Reporter,
) -> Result<()> {
    remove_leftovers(cache, name);
    let mirror = mirror_for(target)?;
    let new = cache.join(format!("{name}.new-{}", std::process::id()));
    let started = std::time::Instant::now();
    let why = if cache.join(name).exists() {
        "the cached one is more than a day old"
    } else {
        "once; it is cached"
    };
    reporter.status(format!(
        "Making the {target} build root with debootstrap from {mirror} in {} ({why})",
        cache.display()
    ));
    let packages_cache = cache.join("debootstrap-cache");
    fs_err::create_dir_all(&packages_cache)?;
    // Two stages, so that dpkg of the second stage runs with force-unsafe-io: a root is
    // a cache that is made again when it is lost, and an fsync after every file makes
    // debootstrap about twice as slow.
    if !["/usr/sbin/debootstrap", "/sbin/debootstrap"]
        .iter()
        .any(|path| Path::new(path).exists())
    {
        bail!(
            "--target {target}: debootstrap is not installed; it makes the build root \
             (apt-get install debootstrap)"
        );
    }
    let made = (|| {
        run_streamed(
            Command::new("debootstrap")
                .args(["--foreign", "--variant=minbase"])
                .arg(format!("--arch={architecture}"))
                .arg(format!("--cache-dir={}", packages_cache.display()))
                .arg(target.codename())
                .arg(&new)
                .arg(&mirror),
            &format!("debootstrap --foreign {target} {mirror}"),
            reporter,
        )?;
        let unsafe_io = new.join("etc/dpkg/dpkg.cfg.d/debstage-unsafe-io");
        fs_err::write(&unsafe_io, "force-unsafe-io\n")?;
        run_streamed(
            Command::new("chroot")
                .arg(&new)
                .args(["/debootstrap/debootstrap", "--second-stage"])
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            &format!("debootstrap --second-stage of the {target} build root"),
            reporter,
        )?;
        // No service starts in a build root.
        let policy = new.join("usr/sbin/policy-rc.d");
        fs_err::write(
            &policy,
            "#!/bin/sh\n# debstage build root: no services.\nexit 101\n",
        )?;
        set_mode(&policy, 0o755)?;
        let mount_point = new.join(APPLICATION_MOUNT.trim_start_matches('/'));
        fs_err::create_dir_all(&mount_point)?;
        let packages: Vec<String> = packages.iter().cloned().collect();
        if !packages.is_empty() {
            install_packages(manifest, &new, target, &packages, reporter)?;
        }
        write_record(
            &new,
            &Record {
                distribution: target.codename().to_string(),
                architecture: architecture.to_string(),
                mirror: mirror.clone(),
                created: now(),
                packages: packages.into_iter().collect(),
            },
        )
    })();
    if let Err(error) = made {
        remove_tree(&new);
        return Err(error);
    }
    let path = cache.join(name);
    let old = cache.join(format!("{name}.old-{}", std::process::id()));
    if path.exists() {
        fs_err::rename(&path, &old)?;
    }
    std::fs::rename(&new, &path)
        .with_context(|| format!("{}: cannot be renamed to {}", new.display(), path.display()))?;
    remove_tree(&old);
    reporter.status(format!(
        "Made the {target} build root in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("{}: cannot change its mode", path.display()))
}

/// Removes a root. `rm --one-file-system`, not `remove_dir_all`: the mounts of a build
/// live in its own namespace, but should one ever be seen here, what is mounted into
/// the root (the application directory, /dev) must not be deleted with it.
fn remove_tree(path: &Path) {
    if path.exists() {
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(path)
            .status();
    }
}

/// Removes the new or old roots that a killed build left beside `name`.
fn remove_leftovers(cache: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let leftover = file_name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(".new-") || rest.starts_with(".old-"));
        if leftover {
            remove_tree(&entry.path());
        }
    }
}

/// Installs `packages` into the root at `root` from its distribution's archive; a name
/// the archive does not have is refused naming `[build] packages`.
fn install_packages(
    manifest: &LoadedManifest,
    root: &Path,
    target: Distribution,
    packages: &[String],
    reporter: &Reporter,
) -> Result<()> {
    let runner = Runner::Root {
        root: root.to_path_buf(),
        application: fs_err::canonicalize(&manifest.directory)?,
        kept: None,
    };
    // The host's resolver configuration, as debootstrap copied it when the root was made.
    let resolv = root.join("etc/resolv.conf");
    if Path::new("/etc/resolv.conf").exists() {
        let _ = std::fs::remove_file(&resolv);
        std::fs::copy("/etc/resolv.conf", &resolv)
            .with_context(|| format!("{}: cannot be written", resolv.display()))?;
    }
    let apt = |arguments: &[&str]| {
        let mut command = runner.command("apt-get", Path::new("/"));
        command
            .args(arguments)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C.UTF-8");
        command
    };
    reporter.status(format!(
        "Installing into the {target} build root: {}",
        packages.join(" ")
    ));
    run_streamed(
        &mut apt(&["update", "-q"]),
        &format!("apt-get update in the {target} build root"),
        reporter,
    )?;
    for package in packages {
        let known = runner
            .command("apt-cache", Path::new("/"))
            .args(["show", "--no-all-versions", "--", package])
            .env("LC_ALL", "C.UTF-8")
            .output()
            .context("cannot run apt-cache in the build root")?;
        // apt-cache and apt-get read a name they do not find as a regular expression
        // (`zlib1g.+` is a valid package name and selects 17 packages): only a paragraph
        // of exactly this name counts.
        let exact = format!("Package: {package}");
        let is_exact = String::from_utf8_lossy(&known.stdout)
            .lines()
            .any(|line| line.trim_end() == exact);
        if !known.status.success() || !is_exact {
            let index = manifest
                .manifest
                .build
                .packages
                .iter()
                .position(|listed| listed == package);
            let key = match index {
                Some(index) => format!("[build] packages[{index}]"),
                None => "[environment] kind".to_string(),
            };
            return Err(manifest
                .error(
                    &key,
                    format!(
                        "{package:?} is not a package of {target} (the archive the build root \
                         uses has no package of exactly this name; apt would read it as a \
                         pattern)"
                    ),
                )
                .into());
        }
    }
    let mut arguments = vec!["install", "-y", "-q", "--no-install-recommends", "--"];
    arguments.extend(packages.iter().map(String::as_str));
    run_streamed(
        &mut apt(&arguments),
        &format!("apt-get install in the {target} build root"),
        reporter,
    )?;
    run_streamed(
        &mut apt(&["clean"]),
        &format!("apt-get clean in the {target} build root"),
        reporter,
    )
}
