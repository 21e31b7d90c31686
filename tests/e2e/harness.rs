//! Throwaway Debian servers for the end-to-end scenarios.
//!
//! One pristine bookworm root (debootstrap, `--variant=minbase` plus systemd, as every
//! server has) is made per test run, the first time a scenario asks for it, and every
//! scenario works on a copy of it that it treats as a server. Most use it with `chroot`:
//! `/proc` and a private `/dev/pts` are mounted while it lives and `policy-rc.d` forbids
//! starting services. Scenarios about services boot their copy with systemd-nspawn
//! (systemd as PID 1, the host's network) and run commands in it with nsenter. apt
//! reaches the repository of the scenario through `debstage repo serve` on 127.0.0.1.
//! Everything a scenario mounts or starts is undone by Drop guards, also when it fails or
//! panics.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{debstage, run_ok, stderr, stdout, without_progress};

/// How many scenarios may hold a server at once (the machine has 2 cores).
const PARALLEL_SCENARIOS: usize = 2;

/// PATH inside the servers.
const SERVER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub use crate::support::shout;

/// Whether this process can make Debian roots (root and debootstrap) and run the other
/// `tools` a scenario needs (program, Debian package). When it cannot, the scenario fails
/// with the reason under CI (a skip there would pass exactly the tests that matter), and
/// elsewhere says so loudly and returns early.
pub fn can_run(scenario: &str, tools: &[(&str, &str)]) -> bool {
    match missing_tools(tools) {
        None => true,
        Some(reason) => {
            crate::support::cannot_run(scenario, &reason);
            false
        }
    }
}

/// What a booted server needs on the host.
const SYSTEMD_TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("nsenter", "util-linux"),
];

/// Why this machine cannot run a scenario, or None.
fn missing_tools(tools: &[(&str, &str)]) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return Some(
            "the end-to-end suite needs root (chroot, mount, dpkg in a Debian root); run \
             `make test` as root as CI does"
                .to_string(),
        );
    }
    let installed = |program: &str| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|directory| Path::new(directory).join(program).exists())
    };
    std::iter::once(&("debootstrap", "debootstrap"))
        .chain(tools)
        .find(|(program, _)| !installed(program))
        .map(|(program, package)| {
            format!(
                "{program} is not installed (Debian package {package}; `make deps` installs it)"
            )
        })
}

/// Where the suite keeps its roots and caches: cargo's scratch directory for tests.
fn work_dir() -> PathBuf {
    let directory = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e");
    fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    directory
}

/// The Debian mirror this machine's apt uses for bookworm, read from /etc/apt at run
/// time (the project never names a mirror host).
pub fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(("list", text));
    }
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect();
        paths.sort();
        for path in paths {
            let kind = match path.extension().and_then(|extension| extension.to_str()) {
                Some("list") => "list",
                Some("sources") => "sources",
                _ => continue,
            };
            if let Ok(text) = fs::read_to_string(&path) {
                texts.push((kind, text));
            }
        }
    }
    for (kind, text) in &texts {
        let found = if *kind == "list" {
            mirror_from_list(text)
        } else {
            mirror_from_deb822(text)
        };
        if let Some(uri) = found {
            return uri;
        }
    }
    panic!(
        "no `deb` source for the suite bookworm in /etc/apt/sources.list or \
         /etc/apt/sources.list.d/*.list|*.sources: the end-to-end suite needs a Debian mirror"
    )
}

fn is_http(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// `deb [options] URI bookworm components...` lines.
fn mirror_from_list(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|word| word.starts_with('[')) {
            let end = rest.iter().position(|word| word.ends_with(']'))?;
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest.as_slice() {
            if *suite == "bookworm" && is_http(uri) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// deb822 paragraphs with `Types: deb`, a `Suites` that holds bookworm, and `URIs`.
fn mirror_from_deb822(text: &str) -> Option<String> {
    for paragraph in text.split("\n\n") {
        let field = |name: &str| {
            paragraph
                .lines()
                .filter(|line| !line.starts_with('#'))
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
        };
        let enabled = field("Enabled").is_none_or(|value| value != "no");
        let types = field("Types").unwrap_or_default();
        let suites = field("Suites").unwrap_or_default();
        if !enabled
            || !types.split_whitespace().any(|word| word == "deb")
            || !suites.split_whitespace().any(|word| word == "bookworm")
        {
            continue;
        }
        if let Some(uri) = field("URIs")
            .unwrap_or_default()
            .split_whitespace()
            .find(|uri| is_http(uri))
        {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// The pristine root of this run, or why it could not be made.
static PRISTINE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The pristine trixie root of this run (made only when a scenario asks for a trixie
/// server), or why it could not be made.
static PRISTINE_TRIXIE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// What the pristine root has beyond minbase, as every Debian server: systemd (PID 1 of
/// a booted server) and the bus.
const SYSTEMD_PACKAGES: &str = "systemd,systemd-sysv,dbus";

/// Removes the pristine root when the test process exits (libtest ends with exit(3)).
extern "C" fn remove_pristine_at_exit() {
    for pristine in [&PRISTINE, &PRISTINE_TRIXIE] {
        if let Some(Ok(path)) = pristine.get() {
            let _ = Command::new("rm")
                .args(["-rf", "--one-file-system"])
                .arg(path)
                .status();
        }
    }
}

/// The pristine root, made on first use: about a minute and a half on a busy 2-core
/// machine, with the packages cached in the target directory after the first run.
/// `policy-rc.d` in it forbids starting services (chroot servers); booted servers drop it.
pub fn pristine_root() -> &'static Path {
    pristine_root_of("bookworm")
}

/// The pristine root of a distribution (`bookworm`, or `trixie` for the scenarios that
/// check a second distribution), made on first use like [`pristine_root`].
pub fn pristine_root_of(codename: &str) -> &'static Path {
    let pristine = match codename {
        "bookworm" => &PRISTINE,
        "trixie" => &PRISTINE_TRIXIE,
        other => panic!("no pristine root of {other} in the e2e harness"),
    };
    let result = pristine.get_or_init(|| make_pristine(codename));
    match result {
        Ok(path) => path,
        Err(message) => panic!("cannot make the pristine {codename} root: {message}"),
    }
}

/// Bookworm's root has systemd (servers of every kind are copies of it); another
/// distribution's is minbase alone, for chroot servers (the stage scripts call systemd's
/// helpers only where they are installed), which halves its debootstrap.
fn make_pristine(codename: &str) -> Result<PathBuf, String> {
    let bookworm = codename == "bookworm";
    let include = bookworm.then_some(SYSTEMD_PACKAGES);
    {
        let root = debootstrap("pristine", codename, include)?;
        let policy = root.join(POLICY_RC_D);
        fs::write(
            &policy,
            "#!/bin/sh\n# debstage e2e: no service starts in a chroot.\nexit 101\n",
        )
        .map_err(|error| format!("{}: {error}", policy.display()))?;
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))
            .map_err(|error| format!("{}: {error}", policy.display()))?;
        // No login prompt on a booted server's console (a pipe to a log file).
        if bookworm {
            let getty = root.join("etc/systemd/system/console-getty.service");
            std::os::unix::fs::symlink("/dev/null", &getty)
                .map_err(|error| format!("{}: {error}", getty.display()))?;
        }
        Ok(root)
    }
}

/// The pristine root's policy-rc.d, relative to the root.
pub const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";

/// A root of `codename` made with debootstrap (`--variant=minbase`, plus `include`),
/// named `<name>-<pid>` in the work directory (`<name>-<pid>-<codename>` for another
/// distribution than bookworm, with a package cache of its own).
fn debootstrap(name: &str, codename: &str, include: Option<&str>) -> Result<PathBuf, String> {
    let base = work_dir();
    remove_stale_roots(&base);
    let pid = std::process::id();
    let (root, cache) = if codename == "bookworm" {
        (
            base.join(format!("{name}-{pid}")),
            base.join("debootstrap-cache"),
        )
    } else {
        (
            base.join(format!("{name}-{pid}-{codename}")),
            base.join(format!("debootstrap-cache-{codename}")),
        )
    };
    fs::create_dir_all(&cache).map_err(|error| format!("{}: {error}", cache.display()))?;
    let mirror = debian_mirror();
    let started = Instant::now();
    let remove_root = || {
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&root)
            .status();
    };
    // Two stages, so that dpkg of the second stage runs with force-unsafe-io: the
    // roots are throwaway, and fsync after every file makes debootstrap twice as slow.
    let mut first = Command::new("debootstrap");
    first.args(["--foreign", "--variant=minbase", "--arch=amd64"]);
    if let Some(packages) = include {
        first.arg(format!("--include={packages}"));
    }
    let first = first
        .arg(format!("--cache-dir={}", cache.display()))
        .arg(codename)
        .arg(&root)
        .arg(&mirror)
        .output()
        .map_err(|error| format!("cannot run debootstrap: {error}"))?;
    if !first.status.success() {
        remove_root();
        return Err(format!(
            "debootstrap --foreign {codename} {mirror} failed ({}):\n{}\n{}",
            first.status,
            stdout(&first),
            stderr(&first)
        ));
    }
    let unsafe_io = root.join("etc/dpkg/dpkg.cfg.d/debstage-e2e-unsafe-io");
    fs::write(&unsafe_io, "force-unsafe-io\n")
        .map_err(|error| format!("{}: {error}", unsafe_io.display()))?;
    let second = Command::new("chroot")
        .arg(&root)
        .args(["/debootstrap/debootstrap", "--second-stage"])
        .env("PATH", SERVER_PATH)
        .output()
        .map_err(|error| format!("cannot run debootstrap --second-stage: {error}"))?;
    if !second.status.success() {
        let log = fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        remove_root();
        return Err(format!(
            "debootstrap --second-stage failed ({}):\n{}\n{}\n{log}",
            second.status,
            stdout(&second),
            stderr(&second)
        ));
    }
    // SAFETY: registers a plain function with no captured state.
    unsafe { libc::atexit(remove_pristine_at_exit) };
    // The .debs debootstrap unpacked stay in apt's cache; servers start with it empty.
    let archives = root.join("var/cache/apt/archives");
    if let Ok(entries) = fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "deb") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    shout(&format!(
        "{name} {codename} root made in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(root)
}

/// Removes roots left by earlier runs whose process is gone (killed before exit).
fn remove_stale_roots(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("pristine-")
            .or_else(|| name.strip_prefix("server-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let path = entry.path();
        if !mounts_under(&path).is_empty() {
            continue;
        }
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&path)
            .status();
    }
}

/// Mount points at or below `path`, deepest first.
fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let Ok(table) = fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        // /proc/self/mounts escapes spaces as \040; our paths have none.
        .map(PathBuf::from)
        .filter(|mount| mount.starts_with(path))
        .collect();
    found.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
    found
}

/// A counting semaphore: at most [`PARALLEL_SCENARIOS`] servers exist at once.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
}

static SLOTS: Slots = Slots {
    used: Mutex::new(0),
    freed: Condvar::new(),
};

/// One of the scenario slots, given back on drop.
struct Slot;

impl Slot {
    fn take() -> Slot {
        let mut used = SLOTS
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while *used >= PARALLEL_SCENARIOS {
            used = SLOTS
                .freed
                .wait(used)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *used += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = SLOTS
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *used -= 1;
        SLOTS.freed.notify_one();
    }
}

/// A throwaway Debian server: a copy of the pristine root with `/proc` mounted, used
/// with chroot; or a copy of the systemd root booted as a container ([`Server::booted`]).
pub struct Server {
    root: PathBuf,
    mounted: Vec<PathBuf>,
    /// Whether `apt-get` may read the Debian mirror's source too (off by default, so that
    /// scenarios that need nothing from the mirror do not depend on it).
    use_mirror: bool,
    /// The container when the server is booted; commands then run in it with nsenter.
    container: Option<Container>,
    // Declared last: the slot is given back after the copy is gone (after the last of the
    // scenario's servers, which share it).
    slot: Arc<Slot>,
}

/// A booted copy: systemd-nspawn and the container's PID 1 as the host sees it.
struct Container {
    nspawn: Child,
    leader: u32,
    scenario: String,
    booted: Instant,
}

impl Server {
    /// A fresh server for `scenario`, or None (after saying why loudly) when this machine
    /// cannot run the suite.
    pub fn new(scenario: &str) -> Option<Server> {
        Server::of_distribution(scenario, "bookworm")
    }

    /// [`Server::new`] of a distribution: `bookworm`, or `trixie` (its pristine root,
    /// minbase without systemd, is made on first use).
    pub fn of_distribution(scenario: &str, codename: &str) -> Option<Server> {
        if !can_run(scenario, &[]) {
            return None;
        }
        // The root first: while a distribution's root is made, other scenarios keep both
        // slots.
        let pristine = pristine_root_of(codename);
        Some(Server::chroot_copy(
            pristine,
            scenario,
            Arc::new(Slot::take()),
        ))
    }

    /// Another server of the same scenario beside this one: a fresh copy of the pristine
    /// bookworm root, used with chroot, for scenarios about several servers at once (a
    /// fleet). It shares this server's slot: a scenario runs one command at a time,
    /// whatever the number of its servers.
    pub fn beside(&self, scenario: &str) -> Server {
        Server::chroot_copy(pristine_root(), scenario, Arc::clone(&self.slot))
    }

    /// A copy of `source` with `/proc` and a private `/dev/pts` mounted, used with chroot.
    fn chroot_copy(source: &Path, scenario: &str, slot: Arc<Slot>) -> Server {
        let mut server = Server::copy_of(source, scenario, slot);
        let root = server.root.clone();
        let proc_dir = root.join("proc");
        run_ok(
            Command::new("mount")
                .args(["-t", "proc", "proc"])
                .arg(&proc_dir),
        );
        server.mounted.push(proc_dir);
        // A private devpts instance: apt and dpkg want a pty for their logs, and a new
        // instance shares nothing with the host's terminals.
        let pts_dir = root.join("dev/pts");
        fs::create_dir_all(&pts_dir)
            .unwrap_or_else(|error| panic!("{}: {error}", pts_dir.display()));
        run_ok(
            Command::new("mount")
                .args(["-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620"])
                .arg("devpts")
                .arg(&pts_dir),
        );
        server.mounted.push(pts_dir);
        server
    }

    /// A fresh server for `scenario` that runs systemd as its PID 1: a copy of the systemd
    /// root booted with `systemd-nspawn -b --register=no --keep-unit` (the host's network,
    /// so `repo serve` on 127.0.0.1 is reached), up when this returns. Under CI a machine
    /// that cannot boot it fails the scenario; elsewhere this says why and gives None.
    pub fn booted(scenario: &str) -> Option<Server> {
        if !can_run(scenario, SYSTEMD_TOOLS) {
            return None;
        }
        let slot = Arc::new(Slot::take());
        let mut server = Server::copy_of(pristine_root(), scenario, slot);
        let policy = server.path(POLICY_RC_D);
        fs::remove_file(&policy).unwrap_or_else(|error| panic!("{}: {error}", policy.display()));
        let console = server.root.with_extension("console");
        let log = fs::File::create(&console)
            .unwrap_or_else(|error| panic!("{}: {error}", console.display()));
        let mut nspawn = Command::new("systemd-nspawn");
        nspawn
            .arg("--directory")
            .arg(&server.root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--quiet",
            ])
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .unwrap_or_else(|error| panic!("{}: {error}", console.display())),
            )
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; the container goes down (SIGTERM makes nspawn
        // shut it down) if the thread that started it dies without running Drop.
        unsafe {
            use std::os::unix::process::CommandExt;
            nspawn.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = nspawn
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start systemd-nspawn: {error}"));
        let nspawn_pid = child.id();
        let deadline = started + Duration::from_secs(120);
        let leader = loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read_to_string(&console).unwrap_or_default();
                panic!("systemd-nspawn exited ({status}) before the container booted:\n{text}");
            }
            let children =
                fs::read_to_string(format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children"))
                    .unwrap_or_default();
            let systemd = children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok())
                .find(|pid| {
                    fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.trim() == "systemd")
                });
            if let Some(pid) = systemd {
                break pid;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no systemd in the container of {scenario} after 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        server.container = Some(Container {
            nspawn: child,
            leader,
            scenario: scenario.to_string(),
            booted: started,
        });
        // Up means every unit of the boot has started (or failed: "degraded").
        loop {
            let output = server.run("systemctl", &["is-system-running"]);
            let state = stdout(&output).trim().to_string();
            if state == "running" || state == "degraded" {
                break;
            }
            if Instant::now() > deadline {
                let text = fs::read_to_string(&console).unwrap_or_default();
                panic!("systemd in the container of {scenario} is {state:?} after 120 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        shout(&format!(
            "{scenario}: container booted in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Some(server)
    }

    /// A copy of `source` for `scenario`, owned by the returned guard from the start.
    fn copy_of(source: &Path, scenario: &str, slot: Arc<Slot>) -> Server {
        let root = work_dir().join(format!("server-{}-{scenario}", std::process::id()));
        if root.exists() {
            let _ = Command::new("rm")
                .args(["-rf", "--one-file-system"])
                .arg(&root)
                .status();
        }
        // From here on the guard owns the copy, so a failure below still removes it.
        let server = Server {
            root: root.clone(),
            mounted: Vec::new(),
            use_mirror: false,
            container: None,
            slot,
        };
        run_ok(
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(source)
                .arg(&root),
        );
        server
    }

    /// Stops a booted server's container: SIGTERM makes nspawn shut systemd down; after
    /// 30 s it is killed.
    fn stop_container(&mut self) {
        let Some(mut container) = self.container.take() else {
            return;
        };
        shout(&format!(
            "{}: container up for {:.1} s",
            container.scenario,
            container.booted.elapsed().as_secs_f64()
        ));
        // SAFETY: kill(2) on our own child's PID, which it keeps until we wait for it.
        unsafe { libc::kill(container.nspawn.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match container.nspawn.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    let _ = container.nspawn.kill();
                    let _ = container.nspawn.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The PID of a booted server's systemd as the host sees it (what `nsenter --target`
    /// takes to run a command in every namespace of the container), or None for a chroot
    /// server.
    pub fn leader(&self) -> Option<u32> {
        self.container.as_ref().map(|container| container.leader)
    }

    /// A path of the server (absolute inside it) as seen from the host.
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Lets apt read the Debian mirror's source (for scenarios that need packages from it).
    pub fn use_mirror(&mut self) {
        self.use_mirror = true;
    }

    /// A command that runs inside the server, with a clean environment: with chroot, or
    /// in every namespace of the container with nsenter.
    pub fn command(&self, program: &str) -> Command {
        let mut command = match &self.container {
            Some(container) => {
                let mut command = Command::new("nsenter");
                command
                    .args(["--target", &container.leader.to_string(), "--all"])
                    .arg(program);
                command
            }
            None => {
                let mut command = Command::new("chroot");
                command.arg(&self.root).arg(program);
                command
            }
        };
        command
            .env_clear()
            .env("PATH", SERVER_PATH)
            .env("LC_ALL", "C")
            .env("HOME", "/root")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        command
    }

    /// Runs a command inside the server; returns its output whatever the exit code.
    pub fn run(&self, program: &str, arguments: &[&str]) -> Output {
        let mut command = self.command(program);
        command.args(arguments);
        command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
    }

    /// Runs a command inside the server and fails the test if it fails.
    pub fn run_ok(&self, program: &str, arguments: &[&str]) -> Output {
        let mut command = self.command(program);
        command.args(arguments);
        run_ok(&mut command)
    }

    /// `apt-get` with arguments; only our sources unless [`Server::use_mirror`] was called.
    pub fn apt_get(&self, arguments: &[&str]) -> Output {
        self.apt_get_with(&[], arguments)
    }

    /// `apt-get` with variables added to its environment (which dpkg and the maintainer
    /// scripts inherit).
    pub fn apt_get_with(&self, environment: &[(&str, &str)], arguments: &[&str]) -> Output {
        let mut command = self.command("apt-get");
        command
            .envs(environment.iter().copied())
            .args(self.apt_options())
            .args(["-y", "-q"])
            .args(arguments);
        command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
    }

    /// `apt-get`, failing the test with its output if it fails.
    pub fn apt_get_ok(&self, arguments: &[&str]) -> Output {
        let output = self.apt_get(arguments);
        assert!(
            output.status.success(),
            "apt-get {arguments:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
            output.status,
            without_progress(&stdout(&output)),
            stderr(&output)
        );
        output
    }

    /// `apt-cache` with arguments, same sources as [`Server::apt_get`].
    pub fn apt_cache(&self, arguments: &[&str]) -> String {
        let mut command = self.command("apt-cache");
        command.args(self.apt_options()).args(arguments);
        stdout(&run_ok(&mut command))
    }

    fn apt_options(&self) -> Vec<&'static str> {
        if self.use_mirror {
            Vec::new()
        } else {
            // The mirror's line is in sources.list (debootstrap wrote it); ours live in
            // sources.list.d. Keep the mirror's lists if they were ever fetched.
            vec![
                "-o",
                "Dir::Etc::SourceList=/dev/null",
                "-o",
                "APT::Get::List-Cleanup=false",
            ]
        }
    }

    /// Copies host files into a directory of the server; returns their paths inside it.
    /// A booted server has a tmpfs on /tmp that the host does not see: use /var/tmp.
    pub fn put(&self, directory: &str, files: &[&Path]) -> Vec<String> {
        assert!(
            self.container.is_none() || !directory.starts_with("/tmp"),
            "{directory}: a booted server's /tmp is a tmpfs the host does not see"
        );
        let target = self.path(directory);
        fs::create_dir_all(&target).unwrap_or_else(|error| panic!("{}: {error}", target.display()));
        files
            .iter()
            .map(|file| {
                let name = file
                    .file_name()
                    .unwrap_or_else(|| panic!("{} has no file name", file.display()));
                fs::copy(file, target.join(name))
                    .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
                format!(
                    "{}/{}",
                    directory.trim_end_matches('/'),
                    name.to_string_lossy()
                )
            })
            .collect()
    }

    /// Where a symbolic link of the server points (its literal target), or None.
    pub fn link(&self, inside: &str) -> Option<String> {
        fs::read_link(self.path(inside))
            .ok()
            .map(|target| target.to_string_lossy().into_owned())
    }

    /// Whether a path exists in the server (without following a final link).
    pub fn exists(&self, inside: &str) -> bool {
        fs::symlink_metadata(self.path(inside)).is_ok()
    }

    /// The installed version of a package per `dpkg-query`, if it is fully installed.
    pub fn installed_version(&self, package: &str) -> Option<String> {
        let output = self.run(
            "dpkg-query",
            &["-W", "-f", "${db:Status-Abbrev}|${Version}", package],
        );
        let text = stdout(&output);
        let (status, version) = text.split_once('|')?;
        (status.trim() == "ii").then(|| version.trim().to_string())
    }

    /// The `db:Status-Abbrev` of a package (`ii`, `iF`, `un`...), empty if unknown.
    pub fn package_status(&self, package: &str) -> String {
        let output = self.run("dpkg-query", &["-W", "-f", "${db:Status-Abbrev}", package]);
        stdout(&output).trim().to_string()
    }

    /// Subscribes the server to one stage of a served repository exactly as
    /// `debstage repo sources` says: the key from `repo export-key --binary` at the path
    /// `Signed-By` names, and the `.sources` file at the path its `# <path>` line gives.
    /// Returns everything `repo sources` printed.
    pub fn subscribe(&self, repository: &RepoServer, stage: &str, app: &str) -> String {
        self.subscribe_to(repository, stage, None, app)
    }

    /// [`Server::subscribe`] to the suite of `stage` for a distribution's builds
    /// (`repo sources STAGE --dist CODENAME`: suite `<codename>-<stage>`), or for host
    /// builds with `None`.
    pub fn subscribe_to(
        &self,
        repository: &RepoServer,
        stage: &str,
        distribution: Option<&str>,
        app: &str,
    ) -> String {
        let suite = distribution.map_or_else(
            || stage.to_string(),
            |codename| format!("{codename}-{stage}"),
        );
        let repo = |arguments: &[&str]| {
            run_ok(
                debstage()
                    .arg("repo")
                    .arg("--repo")
                    .arg(&repository.directory)
                    .args(arguments),
            )
        };
        let url = repository.url();
        let mut arguments = vec!["sources", stage, "--url", &url, "--app", app];
        if let Some(codename) = distribution {
            arguments.extend(["--dist", codename]);
        }
        let text = stdout(&repo(&arguments));
        assert!(
            !text.contains("Pin-Priority"),
            "repo sources must not print the pin the stage package ships:\n{text}"
        );
        // The `.sources` file: the paragraph under its `# /etc/apt/sources.list.d/` line.
        let (inside, sources) = text
            .split("\n\n")
            .find_map(|paragraph| {
                let (first, rest) = paragraph.split_once('\n')?;
                let path = first.strip_prefix("# ")?;
                path.ends_with(".sources")
                    .then(|| (path.to_string(), rest.to_string()))
            })
            .unwrap_or_else(|| panic!("repo sources {stage} printed no .sources file:\n{text}"));
        let sources = sources.trim_end().to_string() + "\n";
        assert!(
            sources.contains("Types: deb") && sources.contains(&format!("Suites: {suite}\n")),
            "repo sources {stage} printed no deb822 source for suite {suite}:\n{text}"
        );
        assert!(
            !sources.contains("trusted=yes") && !sources.contains("Trusted: yes"),
            "repo sources must not trust the repository blindly:\n{text}"
        );
        let signed_by = sources
            .lines()
            .find_map(|line| line.strip_prefix("Signed-By:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("repo sources {stage} printed no Signed-By:\n{text}"));
        assert!(
            text.contains(&format!("debstage repo export-key --binary > {signed_by}")),
            "repo sources says how to install the key at {signed_by}:\n{text}"
        );
        let key = repo(&["export-key", "--binary"]).stdout;
        let target = self.path(signed_by);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("{}: {error}", parent.display()));
        }
        fs::write(&target, key).unwrap_or_else(|error| panic!("{}: {error}", target.display()));
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|error| panic!("{}: {error}", target.display()));
        let file = self.path(&inside);
        fs::write(&file, sources).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_container();
        let _ = fs::remove_file(self.root.with_extension("console"));
        for mount in self.mounted.drain(..).rev() {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        // Never remove a tree that still has something mounted in it.
        let left = mounts_under(&self.root);
        for mount in &left {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
        if !mounts_under(&self.root).is_empty() {
            shout(&format!(
                "{} still has mounts; left on disk",
                self.root.display()
            ));
            return;
        }
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&self.root)
            .status();
    }
}

/// A debstage repository of one scenario, served by `debstage repo serve` on 127.0.0.1.
pub struct RepoServer {
    /// The repository directory.
    pub directory: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RepoServer {
    /// `repo init` in `directory`, then serve it on a free loopback port.
    pub fn start(directory: &Path, stages: &str) -> RepoServer {
        let origin = "debstage-test".to_string();
        run_ok(repo(directory).args(["init", "--stages", stages, "--origin", &origin]));
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = repo(directory)
                .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start debstage repo serve: {error}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut text = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut text);
                    }
                    last_error = format!("repo serve on port {port} exited ({status}): {text}");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return RepoServer {
                        directory: directory.to_path_buf(),
                        port,
                        child: Some(child),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = format!("repo serve did not listen on port {port} within 10 s");
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("cannot serve {}: {last_error}", directory.display())
    }

    /// The base URL a server reaches the repository at.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `debstage repo --repo <dir> <arguments>`, failing the test if it fails.
    pub fn run(&self, arguments: &[&str]) -> Output {
        run_ok(repo(&self.directory).args(arguments))
    }

    /// Fetches a path of the served tree over HTTP; returns the status code and body.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_get(self.port, path)
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `debstage repo --repo <directory>`.
pub fn repo(directory: &Path) -> Command {
    let mut command = debstage();
    command.arg("repo").arg("--repo").arg(directory);
    command
}

/// A loopback port that was free a moment ago (the caller retries if it is taken since).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A minimal HTTP/1.0 GET against 127.0.0.1; returns the status code and body.
pub fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|error| panic!("connect 127.0.0.1:{port}: {error}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no HTTP header in the response"));
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    (status, response[split + 4..].to_vec())
}

#[test]
fn reads_the_mirror_from_both_source_formats() {
    assert_eq!(
        mirror_from_list(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n"
        ),
        Some("http://m.example/debian".to_string())
    );
    assert_eq!(
        mirror_from_list("deb http://m.example/debian-security bookworm-security main\n"),
        None
    );
    let deb822 = "Types: deb-src\nURIs: http://a.example/debian\nSuites: bookworm\n\n\
                  Types: deb\n# note\nURIs: http://b.example/debian\nSuites: bookworm bookworm-updates\n\
                  Components: main\n";
    assert_eq!(
        mirror_from_deb822(deb822),
        Some("http://b.example/debian".to_string())
    );
    // The machine running the tests has one (or the suite cannot run at all).
    assert!(is_http(&debian_mirror()));
}

#[test]
fn a_server_is_a_debian_root_and_goes_away_after_a_panic() {
    let seen: Mutex<Option<PathBuf>> = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let Some(server) = Server::new("cleanup") else {
            return;
        };
        *seen.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(server.path("/"));
        let output = server.run_ok(
            "sh",
            &["-c", "cat /etc/debian_version; head -1 /proc/self/status"],
        );
        let text = stdout(&output);
        assert!(text.starts_with("12."), "not bookworm: {text}");
        assert!(text.contains("Name:"), "/proc is not mounted: {text}");
        let policy = server.run("policy-rc.d", &["hello-production.service", "restart"]);
        assert_eq!(policy.status.code(), Some(101));
        assert!(!mounts_under(&server.path("/")).is_empty());
        panic!("a scenario fails here on purpose");
    });
    let Some(root) = seen
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
    else {
        return; // skipped: not root
    };
    assert!(result.is_err(), "the scenario did not reach its panic");
    assert!(
        mounts_under(&root).is_empty(),
        "{} still mounted",
        root.display()
    );
    assert!(!root.exists(), "{} was not removed", root.display());
}

#[test]
fn a_booted_server_runs_systemd_and_goes_away_after_a_panic() {
    let seen: Mutex<Option<(PathBuf, u32)>> = Mutex::new(None);
    let reached = Mutex::new(false);
    let result = std::panic::catch_unwind(|| {
        let Some(server) = Server::booted("booted-cleanup") else {
            return;
        };
        let nspawn = server
            .container
            .as_ref()
            .map(|container| container.nspawn.id())
            .expect("a booted server has a container");
        *seen.lock().unwrap_or_else(|poison| poison.into_inner()) =
            Some((server.path("/"), nspawn));
        let output = server.run_ok(
            "sh",
            &[
                "-c",
                "cat /proc/1/comm; systemctl is-system-running; cat /etc/debian_version",
            ],
        );
        let text = stdout(&output);
        assert!(
            text.starts_with("systemd\n"),
            "PID 1 is not systemd: {text}"
        );
        assert!(
            text.contains("\nrunning\n") || text.contains("\ndegraded\n"),
            "{text}"
        );
        // What the host puts into the root, the container sees (but for /tmp, a tmpfs).
        server.put("/var/tmp/debs", &[Path::new("/etc/debian_version")]);
        let output = server.run_ok("cat", &["/var/tmp/debs/debian_version"]);
        assert!(stdout(&output).starts_with("12."), "{}", stdout(&output));
        *reached.lock().unwrap_or_else(|poison| poison.into_inner()) = true;
        panic!("a scenario fails here on purpose");
    });
    let Some((root, nspawn)) = seen
        .into_inner()
        .unwrap_or_else(|poison| poison.into_inner())
    else {
        return; // skipped: this machine cannot boot a container
    };
    assert!(result.is_err(), "the scenario did not panic");
    assert!(
        *reached.lock().unwrap_or_else(|poison| poison.into_inner()),
        "the scenario failed before its deliberate panic (see above)"
    );
    assert!(
        !Path::new(&format!("/proc/{nspawn}")).exists(),
        "systemd-nspawn ({nspawn}) still runs"
    );
    assert!(!root.exists(), "{} was not removed", root.display());
}

#[test]
fn a_missing_tool_is_named_with_its_package() {
    let reason = missing_tools(&[("debstage-no-such-program", "debstage-no-such-package")])
        .expect("a program that does not exist is missing");
    // Not root: the reason is root, which is named as well.
    assert!(
        reason.contains(
            "debstage-no-such-program is not installed (Debian package debstage-no-such-package"
        ) || reason.contains("needs root"),
        "{reason}"
    );
}
