//! Scenario 20: the Ansible role `integrations/ansible/roles/debstage_stage` follows the
//! production suite of a served repository on a debootstrap server: it installs the key
//! and the `.sources` file, the stage package at the version the suite holds, checks the
//! link and reports the facts; a second run changes nothing; it follows a promotion and a
//! `repo rollback` (a downgrade), and the recovery from a failed deploy that the README
//! gives (`repo rollback`, then the role again).
//!
//! How Ansible reaches the server: through the `community.general.chroot` connection,
//! the same way the harness runs everything else (the servers are roots used with
//! chroot, with no sshd and no systemd). That plugin is not in ansible-core, and Ansible
//! Galaxy is not reachable from this machine or CI (only PyPI, crates.io, npm and the
//! Debian mirror are), so the venv holds the community package `ansible` from PyPI,
//! which bundles community.general: [`ANSIBLE`] pins `ansible` 10.x, i.e. ansible-core
//! 2.17, whose controller runs on bookworm's Python 3.11 (as do 2.18 and 2.19). The venv
//! is made with Debian's `/usr/bin/python3 -m venv` (the first `python3` on PATH may be
//! another one) under cargo's scratch directory, once: about 45 s and 515 MB the first
//! time, reused afterwards. Running `ansible-playbook` inside the server instead (a
//! `local` connection) would need Ansible installed in every server; the chroot
//! connection keeps the server as a real host sees it, with only Python and python3-apt
//! (which the `apt` module needs) added.
//!
//! The canary scenario boots two servers with systemd-nspawn instead and keeps the chroot
//! connection, with `ansible_chroot_exe` set to a wrapper that runs each command with
//! `nsenter --target <the container's systemd> --all`: the way to drive an nspawn host
//! without sshd, where the postinst restarts the unit and runs the health check for real.
//! It goes through points 1-7 of issue 20 on those two containers, with ansible-core 2.17
//! and the newest taking turns. ansible-lint's production profile is a test too.
//!
//! A missing prerequisite (root, debootstrap, Debian's python3 with venv, PyPI) skips
//! the scenario loudly, and fails it when `CI` is set.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use super::fixtures::Builds;
use super::harness::{can_run, shout, RepoServer, Server};
use crate::support::{project_root, stderr, stdout};

/// PATH of the commands the wrapper runs in a booted server.
const SERVER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the venv holds: the community package, which brings ansible-core 2.17.x and
/// community.general (its chroot connection). 10.x is the last major on ansible-core 2.17.
const ANSIBLE: &str = "ansible==10.7.0";

/// The newest Ansible whose controller runs on bookworm's Python 3.11: the community
/// package 12.x, with ansible-core 2.19 (2.20 and later need Python 3.12).
const ANSIBLE_NEWEST: &str = "ansible~=12.3";

/// The origin `RepoServer::start` gives its repositories.
const ORIGIN: &str = "debstage-test";

/// The apt task of the role: the one task that may change on a promotion or rollback.
const APT_TASK: &str = "debstage_stage : Install the stage package at the version its suite holds";

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|value| !value.is_empty())
}

/// Skips the scenario loudly, or fails it under CI, where every prerequisite must be met.
fn missing(what: &str) {
    if in_ci() {
        panic!("ansible scenario: {what} (CI is set: a missing prerequisite fails the test)");
    }
    shout(&format!("SKIPPED ansible: {what}"));
}

/// The cached venv with Ansible, made on first use; Err says why it cannot be had.
fn ansible_venv() -> Result<PathBuf, String> {
    crate::support::cached_venv("ansible-venv", ANSIBLE, "bin/ansible-playbook")
}

/// The cached venv with the newest Ansible ([`ANSIBLE_NEWEST`]).
fn newest_ansible_venv() -> Result<PathBuf, String> {
    crate::support::cached_venv(
        "ansible-newest-venv",
        ANSIBLE_NEWEST,
        "bin/ansible-playbook",
    )
}

/// ansible-lint, in a cached venv of its own (it brings the ansible-core it lints with).
const ANSIBLE_LINT: &str = "ansible-lint==26.10.1";

/// The role passes ansible-lint's strictest profile, `production` (what Ansible Galaxy's
/// certified content is held to). `--offline`: no collection is installed from Galaxy.
#[test]
fn scenario_20_the_role_passes_ansible_lint_production() {
    let venv =
        match crate::support::cached_venv("ansible-lint-venv", ANSIBLE_LINT, "bin/ansible-lint") {
            Ok(venv) => venv,
            Err(why) => return missing(&why),
        };
    let home = tempfile::tempdir().expect("temporary directory");
    let bin = venv.join("bin");
    let directory = project_root().join("integrations/ansible");
    let output = Command::new(bin.join("ansible-lint"))
        .args(["--offline", "--nocolor", "--profile", "production"])
        .arg("roles/debstage_stage")
        .current_dir(&directory)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
        )
        .env("LC_ALL", "C.UTF-8")
        .env("HOME", home.path())
        .env("ANSIBLE_ROLES_PATH", directory.join("roles"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run ansible-lint: {error}"));
    let text = format!("stdout:\n{}\nstderr:\n{}", stdout(&output), stderr(&output));
    assert!(
        output.status.success()
            && text.contains("Profile 'production' was required, and it passed"),
        "ansible-lint --profile production failed ({})\n{text}",
        output.status
    );
}

/// What one `ansible-playbook` run did, from its output.
struct Run {
    output: Output,
    /// The counts of the PLAY RECAP line of the server.
    changed: u32,
    failed: u32,
    unreachable: u32,
    /// The tasks that reported `changed`, as `role : name`.
    changed_tasks: Vec<String>,
}

impl Run {
    fn text(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            stdout(&self.output),
            stderr(&self.output)
        )
    }
}

/// The playbook, inventory and variables of the scenario, and the venv that runs them.
struct Controller {
    venv: PathBuf,
    directory: tempfile::TempDir,
}

impl Controller {
    fn new(venv: PathBuf, server: &Server) -> Controller {
        let root = server.path("/");
        let inventory = format!(
            "[servers]\nserver ansible_host={}\n\n[servers:vars]\n\
             ansible_connection=community.general.chroot\n\
             ansible_python_interpreter=/usr/bin/python3\n",
            root.display()
        );
        let playbook = "---\n\
            - name: Follow the production stage of hello\n  \
              hosts: servers\n  \
              gather_facts: false\n  \
              roles:\n    \
                - role: debstage_stage\n";
        Controller::with(venv, &inventory, playbook)
    }

    /// A controller of booted servers, reached with the chroot connection whose chroot
    /// program is a wrapper that runs the command with `nsenter --all` in the container
    /// (the way to drive an nspawn host without sshd: the modules, apt and the
    /// maintainer scripts then see the container's systemd). Hosts are `server1`... in
    /// the order given; the play is a canary rollout (`serial: [1, "100%"]`, no failure
    /// allowed).
    fn booted(venv: PathBuf, servers: &[&Server]) -> Controller {
        let playbook = "---\n\
            - name: Follow the production stage of hello, one canary first\n  \
              hosts: servers\n  \
              gather_facts: false\n  \
              serial: [1, \"100%\"]\n  \
              max_fail_percentage: 0\n  \
              roles:\n    \
                - role: debstage_stage\n";
        let controller = Controller::with(venv, "", playbook);
        let mut inventory = String::from("[servers]\n");
        for (index, server) in servers.iter().enumerate() {
            let leader = server.leader().expect("a booted server");
            let wrapper = controller
                .directory
                .path()
                .join(format!("nsenter-{}", index + 1));
            fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\n# Called as: <wrapper> <chroot directory> <command>...\n\
                     shift\nexec nsenter --target {leader} --all \
                     env -i PATH={SERVER_PATH} LC_ALL=C.UTF-8 HOME=/root \"$@\"\n"
                ),
            )
            .expect("wrapper");
            fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
            inventory.push_str(&format!(
                "server{} ansible_host={} ansible_chroot_exe={}\n",
                index + 1,
                server.path("/").display(),
                wrapper.display()
            ));
        }
        inventory.push_str(
            "\n[servers:vars]\nansible_connection=community.general.chroot\n\
             ansible_python_interpreter=/usr/bin/python3\n",
        );
        fs::write(controller.directory.path().join("inventory.ini"), inventory).expect("inventory");
        controller
    }

    fn with(venv: PathBuf, inventory: &str, playbook: &str) -> Controller {
        let directory = tempfile::tempdir().expect("temporary directory");
        fs::write(directory.path().join("inventory.ini"), inventory).expect("inventory");
        fs::write(directory.path().join("site.yml"), playbook).expect("playbook");
        fs::create_dir_all(directory.path().join("home")).expect("home");
        Controller { venv, directory }
    }

    /// Runs the playbook with the role's variables; fails the test if it fails.
    fn run(&self, variables: &serde_json::Value) -> Run {
        let run = self.try_run(variables);
        assert!(
            run.output.status.success() && run.failed == 0 && run.unreachable == 0,
            "ansible-playbook failed ({})\n{}",
            run.output.status,
            run.text()
        );
        run
    }

    /// Runs the playbook with the role's variables, whatever its outcome.
    fn try_run(&self, variables: &serde_json::Value) -> Run {
        self.try_run_with(&[], variables)
    }

    /// Runs the playbook in check mode with `--diff`; fails the test if it fails.
    fn check(&self, variables: &serde_json::Value) -> Run {
        let run = self.try_run_with(&["--check", "--diff"], variables);
        assert!(
            run.output.status.success() && run.failed == 0,
            "ansible-playbook --check failed ({})\n{}",
            run.output.status,
            run.text()
        );
        run
    }

    /// Runs the playbook with more options of `ansible-playbook`, whatever its outcome.
    fn try_run_with(&self, options: &[&str], variables: &serde_json::Value) -> Run {
        let vars = self.directory.path().join("vars.json");
        fs::write(&vars, variables.to_string()).expect("vars.json");
        let bin = self.venv.join("bin");
        let started = Instant::now();
        let output = Command::new(bin.join("ansible-playbook"))
            .arg("-i")
            .arg(self.directory.path().join("inventory.ini"))
            .arg("-e")
            .arg(format!("@{}", vars.display()))
            .args(options)
            .arg(self.directory.path().join("site.yml"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
            )
            // ansible-core refuses a locale that is not UTF-8.
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", self.directory.path().join("home"))
            .env(
                "ANSIBLE_ROLES_PATH",
                project_root().join("integrations/ansible/roles"),
            )
            .env("ANSIBLE_LOCAL_TEMP", self.directory.path().join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("ANSIBLE_PIPELINING", "true")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run ansible-playbook: {error}"));
        let run = parse_run(output);
        let mut handle = std::io::stderr().lock();
        let _ = writeln!(
            handle,
            "ansible-playbook: {:.1} s, changed={} {:?}",
            started.elapsed().as_secs_f64(),
            run.changed,
            run.changed_tasks
        );
        run
    }
}

/// Reads the PLAY RECAP counts, summed over the hosts, and the tasks that reported
/// `changed`.
fn parse_run(output: Output) -> Run {
    let text = stdout(&output);
    let mut task = String::new();
    let mut changed_tasks = Vec::new();
    let mut recaps = Vec::new();
    let mut in_recap = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or("").to_string();
        } else if line.starts_with("changed: [") {
            changed_tasks.push(task.clone());
        } else if line.starts_with("PLAY RECAP") {
            in_recap = true;
        } else if in_recap && line.contains(" : ok=") {
            recaps.push(line.to_string());
        }
    }
    let count = |key: &str| -> u32 {
        recaps
            .iter()
            .map(|line| {
                line.split_whitespace()
                    .find_map(|field| field.strip_prefix(&format!("{key}=")))
                    .and_then(|value| value.parse::<u32>().ok())
                    .unwrap_or_else(|| panic!("no {key}= in the recap line {line:?}"))
            })
            .sum()
    };
    let (changed, failed, unreachable) = if recaps.is_empty() {
        (0, 1, 0) // no recap: ansible-playbook stopped before the play
    } else {
        (count("changed"), count("failed"), count("unreachable"))
    };
    Run {
        output,
        changed,
        failed,
        unreachable,
        changed_tasks,
    }
}

/// Asserts that a check-mode run predicted the stage package's move from `installed` to
/// `candidate` and the link's move from `link` (its target now) to the candidate's release.
fn assert_predicts(run: &Run, installed: &str, candidate: &str, link: &str) {
    let text = stdout(&run.output);
    let release = candidate
        .rsplit_once('-')
        .map_or(candidate, |(release, _)| release);
    assert!(
        text.contains(&format!(
            "hello-production: would move from {installed} to {candidate}"
        )) && text.contains(&format!(
            "/opt/hello/production would point to {release} (now {link})"
        )),
        "{}",
        run.text()
    );
}

/// The repository's keyring package, which the role installs.
const KEYRING_PACKAGE: &str = "debstage-test-archive-keyring";

/// The role's task that installs it.
const KEYRING_TASK: &str =
    "debstage_stage : Install the repository's keyring package at the version its suite holds";

/// The version of the keyring package dpkg has installed.
fn keyring_installed(server: &Server) -> Option<String> {
    server.installed_version(KEYRING_PACKAGE)
}

/// Checks that `version` of the keyring package is installed and owns the key file,
/// unchanged, holding `key` (`repo export-key --binary`).
fn assert_keyring_package(server: &Server, version: &str, key: &[u8]) {
    assert_eq!(keyring_installed(server).as_deref(), Some(version));
    let path = format!("/usr/share/keyrings/{KEYRING_PACKAGE}.gpg");
    let owner = server.run_ok("dpkg-query", &["-S", &path]);
    assert_eq!(stdout(&owner).trim(), format!("{KEYRING_PACKAGE}: {path}"));
    let verify = server.run("dpkg", &["--verify", KEYRING_PACKAGE]);
    assert!(
        verify.status.success() && stdout(&verify).trim().is_empty(),
        "dpkg --verify {KEYRING_PACKAGE}: {}",
        stdout(&verify)
    );
    assert!(
        fs::read(server.path(&path)).expect("the key file") == key,
        "{path} is not `repo export-key --binary`"
    );
}

/// The marker line the role writes first in its `.sources` files.
const MARKER: &str = "# Written by the Ansible role debstage_stage for hello";

/// The role's variables with one source of the key. The servers of this scenario are
/// chroots, where the postinst cannot restart the unit or run the health check (no
/// systemd): the facts say `switched`, which the role accepts only when told to.
fn variables(repository: &RepoServer, key: (&str, String)) -> serde_json::Value {
    let mut value = serde_json::json!({
        "debstage_stage_app": "hello",
        "debstage_stage_name": "production",
        "debstage_stage_repo_url": repository.url(),
        "debstage_stage_origin": ORIGIN,
        "debstage_stage_require_checked": false,
    });
    value[key.0] = serde_json::Value::String(key.1);
    value
}

/// Standard padded base64, as Ansible's `b64decode` reads it (the `base64` crate the
/// project already builds).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The version of `hello-production` dpkg has installed.
fn installed(server: &Server) -> Option<String> {
    server.installed_version("hello-production")
}

#[test]
fn scenario_20_the_ansible_role_follows_promotion_and_rollback() {
    follow_promotion_and_rollback("ansible", ansible_venv);
}

#[test]
fn scenario_20_the_newest_ansible_follows_promotion_and_rollback() {
    follow_promotion_and_rollback("ansible-newest", newest_ansible_venv);
}

/// The chroot scenario with the Ansible of a venv, on a server named `scenario`.
fn follow_promotion_and_rollback(scenario: &str, venv: fn() -> Result<PathBuf, String>) {
    let started = Instant::now();
    if !can_run("ansible", &[]) {
        return missing("this machine cannot make Debian servers (root and debootstrap)");
    }
    // Before a server slot is taken: the first run installs Ansible into the venv.
    let venv = match venv() {
        Ok(venv) => venv,
        Err(why) => return missing(&why),
    };
    let directory = tempfile::tempdir().expect("temporary directory");
    let repository = RepoServer::start(&directory.path().join("repo"), "test,staging,production");
    let builds = Builds::new();
    let Some(mut server) = Server::new(scenario) else {
        return missing("this machine cannot make Debian servers (root and debootstrap)");
    };
    // The chroot connection runs modules with the server's Python, and the apt module
    // needs python3-apt: both from the Debian mirror, before the role runs. Then the
    // mirror's source is emptied, so that the role's `update_cache` reads only the
    // repository of the scenario.
    server.use_mirror();
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&[
        "install",
        "--no-install-recommends",
        "python3",
        "python3-apt",
    ]);
    fs::write(server.path("/etc/apt/sources.list"), "").expect("sources.list");

    let release = |version: &str| {
        let built = builds.good(version, "1");
        let manifest = built.manifest_file.to_string_lossy().into_owned();
        repository.run(&["add", "--manifest", &manifest]);
        for stage in ["staging", "production"] {
            repository.run(&["promote", "hello", version, "--to", stage]);
        }
    };
    let controller = Controller::new(venv, &server);
    let key = repository.run(&["export-key", "--binary"]).stdout;
    let key_url = (
        "debstage_stage_key_url",
        format!("{}/{ORIGIN}.gpg", repository.url()),
    );
    let key_file = (
        "debstage_stage_key_file",
        repository
            .directory
            .join(format!("{ORIGIN}.gpg"))
            .to_string_lossy()
            .into_owned(),
    );
    let key_base64 = ("debstage_stage_key_base64", base64(&key));

    // 0. Check mode on the fresh host: nothing changes, and the run says what would.
    release("1.0");
    let preview = controller.check(&variables(&repository, key_url.clone()));
    assert_predicts(&preview, "not installed", "1.0-1", "missing");
    assert!(
        stdout(&preview.output).contains(&format!(
            "{KEYRING_PACKAGE}: would move from not installed to 1"
        )),
        "{}",
        preview.text()
    );
    assert_eq!(keyring_installed(&server), None);
    assert!(
        stdout(&preview.output).contains("+Suites: production"),
        "{}",
        preview.text()
    );
    assert!(preview.changed > 0, "{}", preview.text());
    assert_eq!(installed(&server), None);
    assert!(!server.exists(&format!(
        "/etc/apt/sources.list.d/{ORIGIN}-production.sources"
    )));

    // A string where the role wants a list fails before anything is written.
    let mut wrong_type = variables(&repository, key_url.clone());
    wrong_type["debstage_stage_components"] = "main".into();
    let refused = controller.try_run(&wrong_type);
    assert!(refused.failed > 0, "{}", refused.text());
    assert!(
        stdout(&refused.output).contains("debstage_stage_components a non-empty YAML list")
            && stdout(&refused.output).contains(", a string)"),
        "{}",
        refused.text()
    );
    assert!(!server.exists(&format!(
        "/etc/apt/sources.list.d/{ORIGIN}-production.sources"
    )));

    // 1. First run: key, source, stage package 1.0; the link points to 1.0.
    let first = controller.run(&variables(&repository, key_url.clone()));
    assert!(first.changed > 0, "{}", first.text());
    assert_eq!(installed(&server).as_deref(), Some("1.0-1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    // The path `repo sources` names: the file the repository's keyring package owns.
    let keyring =
        fs::read(server.path(&format!("/usr/share/keyrings/{ORIGIN}-archive-keyring.gpg")))
            .expect("the role installed the key");
    assert!(
        keyring == key,
        "the keyring is not `repo export-key --binary`"
    );
    // The role installed the keyring package after the source, and the key file is the
    // package's (dpkg owns it and finds it unchanged).
    assert_keyring_package(&server, "1", &key);
    // The source is exactly what `repo sources` prints for the stage.
    let sources: serde_json::Value = serde_json::from_slice(
        &repository
            .run(&[
                "sources",
                "production",
                "--url",
                &repository.url(),
                "--format",
                "json",
            ])
            .stdout,
    )
    .expect("repo sources --format json");
    let expected = &sources;
    let path = expected["path"].as_str().expect("path");
    assert_eq!(
        path,
        format!("/etc/apt/sources.list.d/{ORIGIN}-production.sources")
    );
    assert_eq!(
        fs::read_to_string(server.path(path)).expect("the role installed the source"),
        format!("{MARKER}\n{}", expected["text"].as_str().expect("text"))
    );
    // The pin is the stage package's own, untouched by the role.
    let verify = server.run("dpkg", &["--verify", "hello-production"]);
    assert!(
        verify.status.success() && stdout(&verify).trim().is_empty(),
        "dpkg --verify hello-production: {}",
        stdout(&verify)
    );
    let report = stdout(&first.output);
    assert!(
        report.contains("\"link\": \"/opt/hello/production -> 1.0\""),
        "{report}"
    );
    let facts_from = if server.exists("/var/lib/hello/production.json") {
        "facts file"
    } else {
        "stage link"
    };
    assert!(
        report.contains(&format!("\"facts_from\": \"{facts_from}\"")),
        "{report}"
    );

    // 2. Again, with the key given as base64 (the same bytes): nothing changes.
    let second = controller.run(&variables(&repository, key_base64.clone()));
    assert_eq!(second.changed, 0, "{}", second.text());

    // 3. 1.1 reaches production. Check mode predicts the move and changes nothing...
    release("1.1");
    let preview = controller.check(&variables(&repository, key_url.clone()));
    assert_predicts(&preview, "1.0-1", "1.1-1", "1.0");
    assert_eq!(installed(&server).as_deref(), Some("1.0-1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    // Only the prediction changes: the key and the .sources file stay as they are.
    assert_eq!(
        preview.changed_tasks,
        ["debstage_stage : Report the predicted change (check mode)"],
        "{}",
        preview.text()
    );
    // ...then only the stage package changes (key from a file).
    let promoted = controller.run(&variables(&repository, key_file));
    assert_eq!(promoted.changed_tasks, [APT_TASK], "{}", promoted.text());
    assert_eq!(installed(&server).as_deref(), Some("1.1-1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));

    // 4. A rollback in the repository: the role follows it down (allow_downgrade).
    repository.run(&["rollback", "hello", "production"]);
    let rolled_back = controller.run(&variables(&repository, key_url.clone()));
    assert_eq!(
        rolled_back.changed_tasks,
        [APT_TASK],
        "{}",
        rolled_back.text()
    );
    assert_eq!(installed(&server).as_deref(), Some("1.0-1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert!(
        stdout(&rolled_back.output).contains("\"link\": \"/opt/hello/production -> 1.0\""),
        "{}",
        rolled_back.text()
    );

    // 5. And it stays there.
    let settled = controller.run(&variables(&repository, key_base64));
    assert_eq!(settled.changed, 0, "{}", settled.text());

    // 5c. A key rotation: `repo key add` puts version 2 of the keyring package, with both
    // keys, into every suite. Check mode predicts it and changes nothing; the next run
    // brings the new key file and the package that owns it; the one after changes nothing.
    repository.run(&["key", "add"]);
    let rotated_key = repository.run(&["export-key", "--binary"]).stdout;
    let preview = controller.check(&variables(&repository, key_url.clone()));
    assert!(
        stdout(&preview.output).contains(&format!("{KEYRING_PACKAGE}: would move from 1 to 2")),
        "{}",
        preview.text()
    );
    assert_eq!(keyring_installed(&server).as_deref(), Some("1"));
    let rotated = controller.run(&variables(&repository, key_url.clone()));
    assert_eq!(
        rotated.changed_tasks,
        [
            "debstage_stage : Install the repository key from a URL",
            KEYRING_TASK
        ],
        "{}",
        rotated.text()
    );
    assert_keyring_package(&server, "2", &rotated_key);
    let after_rotation = controller.run(&variables(&repository, key_url.clone()));
    assert_eq!(after_rotation.changed, 0, "{}", after_rotation.text());

    // 5a. By default the role wants the switch health-checked; over a chroot the postinst
    // cannot check it, and the run fails saying so (issue 20, point 6).
    let mut strict = variables(&repository, key_url.clone());
    strict["debstage_stage_require_checked"] = true.into();
    let unchecked = controller.try_run(&strict);
    assert!(unchecked.failed > 0, "{}", unchecked.text());
    assert!(
        stdout(&unchecked.output)
            .contains("was not health-checked on this host: the facts say switched"),
        "{}",
        unchecked.text()
    );

    // 5b. A typo in the stage: that run fails (the suite does not exist) and leaves its
    // .sources file; the next, correct run removes it, so apt works again.
    let mut typo = variables(&repository, key_url.clone());
    typo["debstage_stage_name"] = "prodution".into();
    let wrong = controller.try_run(&typo);
    assert!(wrong.failed > 0, "{}", wrong.text());
    let stale = format!("/etc/apt/sources.list.d/{ORIGIN}-prodution.sources");
    assert!(server.exists(&stale), "{}", wrong.text());
    let repaired = controller.run(&variables(&repository, key_url.clone()));
    assert!(!server.exists(&stale), "{}", repaired.text());
    assert!(server.exists(&format!(
        "/etc/apt/sources.list.d/{ORIGIN}-production.sources"
    )));
    // A file the role did not write stays.
    fs::write(
        server.path("/etc/apt/sources.list.d/other.sources"),
        "Types: deb\nURIs: http://127.0.0.1:9/\nSuites: x\nComponents: main\nEnabled: no\n",
    )
    .expect("other.sources");
    controller.run(&variables(&repository, key_url.clone()));
    assert!(server.exists("/etc/apt/sources.list.d/other.sources"));

    // 6. A failed deploy: 1.2's activation hook fails on the host. The apt task fails,
    // and the link stays on 1.0.
    let broken = builds.broken("1.2", "1");
    let manifest = broken.manifest_file.to_string_lossy().into_owned();
    repository.run(&["add", "--manifest", &manifest]);
    for stage in ["staging", "production"] {
        repository.run(&["promote", "hello", "1.2", "--to", stage]);
    }
    let failed = controller.try_run(&variables(&repository, key_url.clone()));
    assert!(failed.failed > 0, "{}", failed.text());
    assert!(
        stdout(&failed.output).contains("migration of 1.2 failed"),
        "{}",
        failed.text()
    );
    // The failure's headline is the reason the host gave, from its facts.
    assert!(
        stdout(&failed.output).contains(
            "hello-production failed on this host: activation hook of 1.2 failed (exit 1); \
             version 1.2 (failed), the link points to 1.0"
        ) && stdout(&failed.output).contains("last lines of its output: migration of 1.2 failed"),
        "{}",
        failed.text()
    );
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));

    // 7. The recovery the README gives: `repo rollback`, then the role again.
    repository.run(&["rollback", "hello", "production"]);
    let recovered = controller.run(&variables(&repository, key_url.clone()));
    assert_eq!(recovered.changed_tasks, [APT_TASK], "{}", recovered.text());
    assert_eq!(installed(&server).as_deref(), Some("1.0-1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));

    // 8. The facts file of the stage, when the stage package writes one, is what the role
    // reports (before that package lands, a file of its documented shape stands in).
    let facts_path = "/var/lib/hello/production.json";
    if !server.exists(facts_path) {
        fs::create_dir_all(server.path("/var/lib/hello")).expect("/var/lib/hello");
        let facts = serde_json::json!({
            "app": "hello", "stage": "production", "version": "1.0", "previous": "1.1",
            "state": "checked", "time": "2025-01-01T00:00:00Z", "health": "ok",
        });
        fs::write(server.path(facts_path), facts.to_string()).expect("facts file");
    }
    let facts: serde_json::Value =
        serde_json::from_slice(&fs::read(server.path(facts_path)).expect("facts file"))
            .expect("the facts file is JSON");
    // Nothing changes after the recovery either.
    let reported = controller.run(&variables(&repository, key_url.clone()));
    assert_eq!(reported.changed, 0, "{}", reported.text());
    let report = stdout(&reported.output);
    assert!(
        report.contains("\"facts_from\": \"facts file\""),
        "{report}"
    );
    let version = facts["version"]
        .as_str()
        .expect("version in the facts file");
    assert!(
        report.contains(&format!("\"version\": \"{version}\"")),
        "{report}"
    );

    // 9. A link that does not point to the installed release fails the run, and says so.
    let link = server.path("/opt/hello/production");
    fs::remove_file(&link).expect("remove the link");
    std::os::unix::fs::symlink("1.1", &link).expect("a wrong link");
    let wrong = controller.try_run(&variables(&repository, key_url));
    assert!(wrong.failed > 0, "{}", wrong.text());
    assert!(
        stdout(&wrong.output).contains("should be a link to the release directory"),
        "{}",
        wrong.text()
    );
    shout(&format!(
        "ansible scenario done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

/// The PLAY RECAP line of one host (`server1 : ok=... changed=... failed=...`).
fn recap<'a>(text: &'a str, host: &str) -> Option<&'a str> {
    let prefix = format!("{host} ");
    text.lines()
        .skip_while(|line| !line.starts_with("PLAY RECAP"))
        .find(|line| line.starts_with(&prefix))
}

/// Where a booted server keeps the mirror's sources line while apt reads only the
/// scenario's repository (outside apt's directories, so apt never reads it there).
const MIRROR_LIST: &str = "/root/mirror.sources.list";

/// Makes a booted server ready for Ansible as a fresh Debian host is: Debian's python3
/// from the mirror, and no python3-apt (the role's check mode must work without it);
/// then only the scenario's repository in apt's sources.
fn prepare_for_ansible(server: &mut Server) {
    server.use_mirror();
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&["install", "--no-install-recommends", "python3"]);
    fs::rename(
        server.path("/etc/apt/sources.list"),
        server.path(MIRROR_LIST),
    )
    .expect("keep the mirror's line");
    fs::write(server.path("/etc/apt/sources.list"), "").expect("sources.list");
}

/// Installs python3-apt, which Ansible's apt module needs for a real run, from the mirror
/// [`prepare_for_ansible`] set aside; then only the scenario's repository again.
fn install_python3_apt(server: &Server) {
    let list = server.path("/etc/apt/sources.list");
    fs::copy(server.path(MIRROR_LIST), &list).expect("the mirror's line");
    server.apt_get_ok(&["install", "--no-install-recommends", "python3-apt"]);
    fs::write(&list, "").expect("sources.list");
}

/// The stage's facts file of a booted server.
fn facts_of(server: &Server) -> serde_json::Value {
    serde_json::from_slice(&fs::read(server.path("/var/lib/hello/production.json")).expect("facts"))
        .expect("the facts file is JSON")
}

/// Asserts that a booted server runs `package_version` of the stage package,
/// health-checked: dpkg, the link and the facts file agree.
fn assert_checked(server: &Server, package_version: &str, run: &Run) {
    let release = package_version
        .rsplit_once('-')
        .map_or(package_version, |(release, _)| release);
    assert_eq!(
        server.installed_version("hello-production").as_deref(),
        Some(package_version),
        "{}",
        run.text()
    );
    assert_eq!(
        server.link("/opt/hello/production").as_deref(),
        Some(release)
    );
    let facts = facts_of(server);
    assert!(
        facts["state"] == "checked"
            && facts["version"] == release
            && facts["package_version"] == package_version
            && facts["current"] == release,
        "{facts}\n{}",
        run.text()
    );
}

/// The line of a failed run that the role's rescue writes: the reason the host gave.
fn failure_headline(run: &Run) -> String {
    stdout(&run.output)
        .lines()
        .find(|line| line.contains("hello-production failed on this host"))
        .unwrap_or_else(|| panic!("no failure headline:\n{}", run.text()))
        .trim()
        .to_string()
}

/// Issue 20 on two servers booted with systemd, driven through the chroot connection with
/// the nsenter wrapper, in a canary rollout (`serial: [1, "100%"]`). ansible-core 2.17
/// and the newest take turns on the same two containers (each boot costs): points 1-7 of
/// the issue, in the order a fleet meets them.
#[test]
fn scenario_20_a_canary_rollout_on_booted_servers_stops_at_the_first_host() {
    let started = Instant::now();
    if !can_run(
        "ansible canary",
        &[
            ("systemd-nspawn", "systemd-container"),
            ("nsenter", "util-linux"),
        ],
    ) {
        return missing("this machine cannot boot Debian servers (root, debootstrap, nspawn)");
    }
    let (venv, newest_venv) = match (ansible_venv(), newest_ansible_venv()) {
        (Ok(venv), Ok(newest)) => (venv, newest),
        (Err(why), _) | (_, Err(why)) => return missing(&why),
    };
    let release = super::apt::Release::new();
    let Some(mut canary) = Server::booted("ansible-canary") else {
        return missing("this machine cannot boot Debian servers");
    };
    let Some(mut second) = Server::booted("ansible-second") else {
        return missing("this machine cannot boot Debian servers");
    };
    for server in [&mut canary, &mut second] {
        prepare_for_ansible(server);
        // node_exporter's textfile directory: the stage scripts write their metrics there.
        fs::create_dir_all(server.path("/var/lib/prometheus/node-exporter")).expect("textfiles");
    }
    let core_2_17 = Controller::booted(venv, &[&canary, &second]);
    let newest = Controller::booted(newest_venv, &[&canary, &second]);
    let key = (
        "debstage_stage_key_url",
        format!("{}/{ORIGIN}.gpg", release.repository.url()),
    );
    // The real thing: health-checked on the hosts, so the default (checked required).
    let mut variables = variables(&release.repository, key);
    variables["debstage_stage_require_checked"] = true.into();
    let sources = format!("/etc/apt/sources.list.d/{ORIGIN}-production.sources");
    let untouched = |server: &Server| {
        assert_eq!(server.installed_version("hello-production"), None);
        assert!(!server.exists(&sources), "{sources} was written");
    };

    // Point 4: a string where the role wants a list, and a stage name outside the naming
    // contract, fail before anything is written.
    for (name, value, expected) in [
        (
            "debstage_stage_components",
            "main",
            "debstage_stage_components a non-empty YAML list",
        ),
        (
            "debstage_stage_name",
            "Production",
            "debstage_stage_name a stage name",
        ),
    ] {
        let mut wrong = variables.clone();
        wrong[name] = value.into();
        let refused = newest.try_run(&wrong);
        assert!(
            !refused.output.status.success() && stdout(&refused.output).contains(expected),
            "{}",
            refused.text()
        );
    }
    untouched(&canary);
    untouched(&second);

    // Point 2: check mode on fresh hosts (python3, no python3-apt), with both Ansibles: the
    // predicted move and link, the .sources file as a diff, and nothing written.
    release.release("1.0", super::apt::TO_PRODUCTION);
    for controller in [&core_2_17, &newest] {
        let preview = controller.check(&variables);
        assert_predicts(&preview, "not installed", "1.0-1", "missing");
        assert!(
            stdout(&preview.output).contains("+Suites: production"),
            "{}",
            preview.text()
        );
        untouched(&canary);
        untouched(&second);
    }
    for server in [&canary, &second] {
        assert!(
            server.installed_version("python3-apt").is_none(),
            "the fresh host had python3-apt"
        );
        install_python3_apt(server);
    }

    // 1.0 everywhere, health-checked by the postinst through the container's systemd;
    // again with the newest Ansible: nothing changes.
    let first = core_2_17.run(&variables);
    for server in [&canary, &second] {
        assert_checked(server, "1.0-1", &first);
    }
    let again = newest.run(&variables);
    assert_eq!(again.changed, 0, "{}", again.text());

    // 1.1's health check fails. Check mode on the configured hosts predicts the move and
    // the link, and only that.
    let unhealthy = release.builds.unhealthy("1.1", "1");
    release.add(&unhealthy);
    release.promote("1.1", super::apt::TO_PRODUCTION);
    let preview = newest.check(&variables);
    assert_predicts(&preview, "1.0-1", "1.1-1", "1.0");
    assert!(
        preview
            .changed_tasks
            .iter()
            .all(|task| task == "debstage_stage : Report the predicted change (check mode)"),
        "{}",
        preview.text()
    );
    for server in [&canary, &second] {
        assert_eq!(
            server.installed_version("hello-production").as_deref(),
            Some("1.0-1")
        );
    }

    // Point 5 and the canary: the canary goes back to 1.0 and the run stops there, with
    // the health check's words in its headline; the second host is not touched.
    let failed = core_2_17.try_run(&variables);
    let text = stdout(&failed.output);
    assert!(!failed.output.status.success(), "{}", failed.text());
    let headline = failure_headline(&failed);
    shout(&format!("canary failure: {headline}"));
    assert!(
        headline.contains("the health check failed (exit 1)")
            && headline.contains("unreachable: code 42")
            && headline.contains("the link points to 1.0"),
        "{headline}"
    );
    assert!(
        recap(&text, "server1").is_some_and(|line| line.contains("failed=1")),
        "{}",
        failed.text()
    );
    assert!(
        recap(&text, "server2").is_none_or(|line| line.contains("changed=0")),
        "{}",
        failed.text()
    );
    assert_eq!(canary.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert_eq!(
        second.installed_version("hello-production").as_deref(),
        Some("1.0-1")
    );
    assert_eq!(second.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert!(!second.exists("/opt/hello/1.1"), "the second host got 1.1");

    // Point 1: autoremove on the canary removes nothing that runs: after it and a
    // restart, the unit runs 1.0 again.
    let autoremove_keeps_1_0 = |server: &Server| {
        let output = server.apt_get(&["autoremove", "--purge"]);
        assert_eq!(
            server.installed_version("hello-1.0").as_deref(),
            Some("1.0-1"),
            "{}",
            stdout(&output)
        );
        server.run_ok("systemctl", &["restart", "hello-production.service"]);
        let pid = stdout(&server.run_ok(
            "systemctl",
            &[
                "show",
                "--property",
                "MainPID",
                "--value",
                "hello-production.service",
            ],
        ))
        .trim()
        .to_string();
        assert_ne!(pid, "0");
        let cwd = stdout(&server.run_ok("readlink", &[&format!("/proc/{pid}/cwd")]));
        assert_eq!(cwd.trim(), "/opt/hello/1.0");
    };
    autoremove_keeps_1_0(&canary);

    // Point 7: the role again while 1.1 is still in the suite: the canary refuses it (it
    // failed there) and the run stops there again, saying why...
    let refused = newest.try_run(&variables);
    assert!(!refused.output.status.success(), "{}", refused.text());
    let headline = failure_headline(&refused);
    assert!(
        headline.contains("version 1.1 (failed), the link points to 1.0"),
        "{headline}"
    );
    assert!(!second.exists("/opt/hello/1.1"), "the second host got 1.1");
    autoremove_keeps_1_0(&canary);
    // ...then `repo rollback` and the role: the facts, the journal and the metrics of
    // the canary describe the host as it is (1.0, checked), not the failed 1.1.
    release.repository.run(&["rollback", "hello", "production"]);
    let recovered = newest.run(&variables);
    for server in [&canary, &second] {
        assert_checked(server, "1.0-1", &recovered);
        let metrics = fs::read_to_string(
            server.path("/var/lib/prometheus/node-exporter/debstage_hello_production.prom"),
        )
        .expect("metrics");
        assert!(
            metrics.contains("version=\"1.0\",package_version=\"1.0-1\",state=\"checked\""),
            "{metrics}"
        );
    }
    let journal =
        fs::read_to_string(canary.path("/var/lib/hello/production.journal")).expect("journal");
    let last = journal
        .lines()
        .rfind(|line| !line.starts_with(' '))
        .unwrap_or_default();
    assert!(
        last.contains(" checked ") && last.ends_with(" 1.0"),
        "{journal}"
    );
    autoremove_keeps_1_0(&canary);

    // Point 3: a typo in the stage fails that run on the canary and leaves its .sources
    // file; the correct run removes it, so apt works again.
    let mut typo = variables.clone();
    typo["debstage_stage_name"] = "prodution".into();
    let wrong = core_2_17.try_run(&typo);
    assert!(!wrong.output.status.success(), "{}", wrong.text());
    let stale = format!("/etc/apt/sources.list.d/{ORIGIN}-prodution.sources");
    assert!(canary.exists(&stale), "{}", wrong.text());
    let repaired = core_2_17.run(&variables);
    assert!(!canary.exists(&stale), "{}", repaired.text());
    assert!(canary.exists(&sources));

    // Point 6: where the postinst may not restart the unit (policy-rc.d forbids it on the
    // canary), the switch to 1.2 is not health-checked and the run fails saying so...
    release.release("1.2", super::apt::TO_PRODUCTION);
    let policy = canary.path("/usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n").expect("policy-rc.d");
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).expect("chmod");
    let unchecked = core_2_17.try_run(&variables);
    assert!(!unchecked.output.status.success(), "{}", unchecked.text());
    assert!(
        stdout(&unchecked.output).contains(
            "hello-production 1.2-1 was not health-checked on this host: the facts say \
             switched for 1.2-1 (policy-rc.d forbids restarting"
        ),
        "{}",
        unchecked.text()
    );
    assert_eq!(
        second.installed_version("hello-production").as_deref(),
        Some("1.0-1")
    );
    // ...and once it may, the next run checks the switch (apt has nothing left to do)
    // and the rollout goes on.
    fs::remove_file(&policy).expect("remove policy-rc.d");
    let checked = newest.run(&variables);
    assert!(
        checked.changed_tasks.iter().any(|task| task
            == "debstage_stage : Check a switch that was not health-checked on the host"),
        "{}",
        checked.text()
    );
    for server in [&canary, &second] {
        assert_checked(server, "1.2-1", &checked);
    }
    shout(&format!(
        "ansible canary scenario done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}
