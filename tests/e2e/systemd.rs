//! Stage switches on a real systemd: servers booted with systemd-nspawn, following the
//! production suite of a served repository. What a crash, a dead service or a failing
//! health check does to the link, the unit, dpkg's status and the host's records.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::apt::{dpkg_list, installed, update, Release, TO_PRODUCTION};
use super::harness::Server;
use crate::support::{stderr, stdout, without_progress};

const UNIT: &str = "hello-production.service";
const LINK: &str = "/opt/hello/production";

/// stdout and stderr of a command together: apt runs dpkg on a pty, so what the scripts
/// print arrives on apt's stdout.
pub(super) fn all_output(output: &std::process::Output) -> String {
    without_progress(&stdout(output)) + &stderr(output)
}

/// A property of the stage's unit per `systemctl show`.
fn unit_property(server: &Server, property: &str) -> String {
    property_of(server, UNIT, property)
}

/// A property of `unit` per `systemctl show`.
pub(super) fn property_of(server: &Server, unit: &str, property: &str) -> String {
    let output = server.run_ok(
        "systemctl",
        &["show", "--property", property, "--value", unit],
    );
    stdout(&output).trim().to_string()
}

/// The working directory of the unit's main process, after checking the unit is active.
fn service_directory(server: &Server) -> String {
    main_directory(server, UNIT)
}

/// The working directory of `unit`'s main process, after checking the unit is active.
pub(super) fn main_directory(server: &Server, unit: &str) -> String {
    assert_eq!(
        property_of(server, unit, "ActiveState"),
        "active",
        "{}",
        stdout(&server.run("systemctl", &["status", "--no-pager", unit]))
    );
    let pid = property_of(server, unit, "MainPID");
    assert_ne!(pid, "0", "{unit} has no main process");
    let output = server.run_ok("readlink", &[&format!("/proc/{pid}/cwd")]);
    stdout(&output).trim().to_string()
}

/// The host facts of the production stage, parsed (so they must be valid JSON).
fn facts(server: &Server) -> serde_json::Value {
    let path = server.path("/var/lib/hello/production.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{}: {error}\n{text}", path.display()))
}

fn journal(server: &Server) -> String {
    let path = server.path("/var/lib/hello/production.journal");
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Watches where the stage link points, every few milliseconds, while commands run.
struct LinkWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatch {
    fn start(server: &Server) -> LinkWatch {
        let path = server.path(LINK);
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let target = fs::read_link(&path)
                        .map(|target| target.to_string_lossy().into_owned())
                        .unwrap_or_else(|_| "(no link)".to_string());
                    let mut seen = seen.lock().unwrap_or_else(|poison| poison.into_inner());
                    if seen.last() != Some(&target) {
                        seen.push(target);
                    }
                    drop(seen);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        LinkWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops watching; returns every target seen, in order, without repeats.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the link watcher panicked");
        }
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        seen.clone()
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Installs 1.0 into production on a booted server and checks it runs.
fn install_first_release(release: &Release, server: &Server) {
    release.release("1.0", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    update(server);
    let output = server.apt_get_ok(&["install", "hello-production"]);
    assert!(
        all_output(&output).contains("1.0 is up and healthy"),
        "{}",
        all_output(&output)
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(server), "/opt/hello/1.0");
}

#[test]
fn systemd_1_a_healthy_upgrade_runs_the_new_release_and_keeps_the_previous_payload() {
    let release = Release::new();
    let Some(server) = Server::booted("systemd-healthy") else {
        return;
    };
    install_first_release(&release, &server);
    let first = facts(&server);
    assert_eq!(first["state"], "checked", "{first}");
    assert_eq!(first["previous"], "", "{first}");

    release.release("1.1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get_ok(&["install", "hello-production"]);
    let text = all_output(&output);
    assert!(
        text.contains("/opt/hello/production -> 1.1 (was 1.0)")
            && text.contains("1.1 is up and healthy"),
        "{text}"
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.1"));
    // The unit runs a process of the new release, started by this switch.
    assert_eq!(service_directory(&server), "/opt/hello/1.1");
    assert_eq!(unit_property(&server, "Type"), "exec");
    let facts = facts(&server);
    for (key, value) in [
        ("app", "hello"),
        ("stage", "production"),
        ("version", "1.1"),
        ("package_version", "1.1-1"),
        ("previous", "1.0"),
        ("current", "1.1"),
        ("state", "checked"),
        ("health", "passed"),
    ] {
        assert_eq!(facts[key], value, "{key} in {facts}");
    }
    let journal = journal(&server);
    for step in ["switching 1.0 1.1", "switched 1.0 1.1", "checked 1.0 1.1"] {
        assert!(journal.contains(step), "{step} missing:\n{journal}");
    }

    // apt-get autoremove keeps the release production pointed to before...
    let keep = fs::read_to_string(server.path("/etc/apt/apt.conf.d/50debstage-hello-production"))
        .expect("the postinst keeps the previous payload");
    assert!(keep.contains("\"^hello-1\\.0$\";"), "{keep}");
    server.apt_get_ok(&["autoremove", "--purge"]);
    let list = dpkg_list(&server);
    assert_eq!(
        installed(&list, "hello-1.0").as_deref(),
        Some("1.0-1"),
        "{list:?}"
    );
    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());

    // ...and only that one: after 1.2, 1.0 goes and 1.1 stays.
    release.release("1.2", TO_PRODUCTION);
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(service_directory(&server), "/opt/hello/1.2");
    let output = server.apt_get_ok(&["autoremove", "--purge"]);
    let list = dpkg_list(&server);
    assert_eq!(installed(&list, "hello-1.0"), None, "{}", stdout(&output));
    assert!(!server.exists("/opt/hello/1.0"));
    assert_eq!(
        installed(&list, "hello-1.1").as_deref(),
        Some("1.1-1"),
        "{list:?}"
    );
    assert_eq!(
        installed(&list, "hello-1.2").as_deref(),
        Some("1.2-1"),
        "{list:?}"
    );

    // Purging the stage takes its records and the autoremove entry with it.
    server.apt_get_ok(&["purge", "hello-production"]);
    for gone in [
        "/etc/apt/apt.conf.d/50debstage-hello-production",
        "/var/lib/hello/production.json",
        "/var/lib/hello/production.state",
        "/var/lib/hello/production.journal",
        LINK,
    ] {
        assert!(!server.exists(gone), "{gone} is left after purge");
    }
    assert_eq!(unit_property(&server, "ActiveState"), "inactive");
}

#[test]
fn systemd_2_a_service_that_dies_at_start_is_switched_back_and_never_switched_to_again() {
    let release = Release::new();
    let Some(mut server) = Server::booted("systemd-crashing") else {
        return;
    };
    install_first_release(&release, &server);

    // 1.1's service exits 1 at once; its health check (the example's) would pass.
    let crashing = release.builds.crashing("1.1", "1");
    release.add(&crashing);
    release.promote("1.1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(100), "{text}");
    assert!(
        text.contains("1.1 failed: hello-production.service")
            && text.contains("cannot read /etc/hello/production.conf")
            && text.contains("switched back: /opt/hello/production -> 1.0")
            && text.contains("Sub-process /usr/bin/dpkg returned an error code (1)"),
        "{text}"
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(&server), "/opt/hello/1.0");
    assert_eq!(server.package_status("hello-production"), "iF");
    let failed = facts(&server);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["version"], "1.1", "{failed}");
    assert_eq!(failed["current"], "1.0", "{failed}");

    // Later apt runs, an unrelated install as configuration management makes and a
    // plain `dpkg --configure -a`, never point the link at 1.1 again.
    server.use_mirror();
    let watch = LinkWatch::start(&server);
    server.apt_get_ok(&["update"]);
    let unrelated = server.apt_get(&["install", "tree"]);
    let again = server.run("dpkg", &["--configure", "-a"]);
    let seen = watch.finish();
    assert_eq!(seen, ["1.0"], "the link moved:\n{}", all_output(&unrelated));
    assert!(
        server.path("/usr/bin/tree").is_file(),
        "{}",
        all_output(&unrelated)
    );
    assert_eq!(again.status.code(), Some(1), "{}", all_output(&again));
    let text = all_output(&again);
    for expected in [
        "1.1 (1.1-1) failed on this host at",
        "cannot read /etc/hello/production.conf",
        "not switching /opt/hello/production to 1.1 again; it stays at 1.0",
        "debstage repo rollback hello production",
        "apt-get install --allow-downgrades hello-production",
        "DEBSTAGE_RETRY=1 dpkg --configure -a",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert_eq!(service_directory(&server), "/opt/hello/1.0");

    // A deliberate retry does try 1.1 again, and fails the same way.
    let retry = server.run("env", &["DEBSTAGE_RETRY=1", "dpkg", "--configure", "-a"]);
    let text = all_output(&retry);
    assert_eq!(retry.status.code(), Some(1), "{text}");
    assert!(
        text.contains("DEBSTAGE_RETRY=1: trying 1.1 (1.1-1) again")
            && text.contains("/opt/hello/production -> 1.1 (was 1.0)")
            && text.contains("switched back: /opt/hello/production -> 1.0"),
        "{text}"
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(&server), "/opt/hello/1.0");

    // The way out: roll the stage back and follow it.
    release.repository.run(&["rollback", "hello", "production"]);
    update(&server);
    server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    let audit = server.run_ok("dpkg", &["--audit"]);
    assert!(stdout(&audit).trim().is_empty(), "{}", stdout(&audit));
    assert_eq!(
        server.installed_version("hello-production").as_deref(),
        Some("1.0-1")
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(&server), "/opt/hello/1.0");
    assert_eq!(facts(&server)["state"], "checked");
}

#[test]
fn systemd_3_a_failing_health_check_and_a_killed_configure_end_on_the_good_release() {
    let release = Release::new();
    let Some(server) = Server::booted("systemd-unhealthy") else {
        return;
    };
    install_first_release(&release, &server);

    // 1.1 runs, but its health check fails: its output reaches apt and the journal.
    let unhealthy = release.builds.unhealthy("1.1", "1");
    release.add(&unhealthy);
    release.promote("1.1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(100), "{text}");
    let said = "database \"orders\" unreachable:";
    assert!(
        text.contains("1.1 failed: the health check failed (exit 1)") && text.contains(said),
        "{text}"
    );
    assert!(journal(&server).contains(said), "{}", journal(&server));
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(&server), "/opt/hello/1.0");
    let failed = facts(&server);
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["health"], "failed", "{failed}");
    let tail = failed["output"].as_str().unwrap_or_default();
    // Escaped as JSON: the quotes, the backslash; the tab as a space, the control
    // characters and the byte that is not UTF-8 dropped.
    assert!(
        tail.contains("checking 1.1\n")
            && tail.contains("bytes: [31m red\n")
            && tail.contains("database \"orders\" unreachable: code 42 \\ retry later"),
        "{failed}"
    );

    // A configure killed right after the switch leaves the link on an unchecked release;
    // the next configure checks it, and this one is switched back.
    let interrupted = release.builds.unhealthy("1.2", "1");
    release.add(&interrupted);
    release.promote("1.2", TO_PRODUCTION);
    update(&server);
    let killed = server.apt_get_with(
        &[("DEBSTAGE_TEST_KILL_AFTER_SWITCH", "1.2")],
        &["install", "hello-production"],
    );
    assert_eq!(killed.status.code(), Some(100), "{}", all_output(&killed));
    assert!(
        all_output(&killed).contains("killed by signal"),
        "{}",
        all_output(&killed)
    );
    assert_eq!(server.link(LINK).as_deref(), Some("1.2"));
    // A temporary link as an interrupted switch leaves one: the next run removes it.
    std::os::unix::fs::symlink("1.2", server.path("/opt/hello/.production.tmp.99999"))
        .expect("make a stale temporary link");
    let output = server.run("dpkg", &["--configure", "-a"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "already points to 1.2, not checked (last record: switched 1.2-1); checking it now"
        ) && text.contains("switched back: /opt/hello/production -> 1.0"),
        "{text}"
    );
    assert!(!server.exists("/opt/hello/.production.tmp.99999"));
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    assert_eq!(service_directory(&server), "/opt/hello/1.0");
    assert_eq!(facts(&server)["version"], "1.2");

    // Killed after switching to a good release: the next configure checks and keeps it.
    release.release("1.3", TO_PRODUCTION);
    update(&server);
    let killed = server.apt_get_with(
        &[("DEBSTAGE_TEST_KILL_AFTER_SWITCH", "1.3")],
        &["install", "hello-production"],
    );
    assert_eq!(killed.status.code(), Some(100), "{}", all_output(&killed));
    assert_eq!(server.link(LINK).as_deref(), Some("1.3"));
    let output = server.run_ok("dpkg", &["--configure", "-a"]);
    assert!(
        all_output(&output).contains("1.3 is up and healthy"),
        "{}",
        all_output(&output)
    );
    assert_eq!(service_directory(&server), "/opt/hello/1.3");
    let checked = facts(&server);
    assert_eq!(checked["state"], "checked", "{checked}");
    assert_eq!(checked["previous"], "1.0", "{checked}");
    let audit = server.run_ok("dpkg", &["--audit"]);
    assert!(stdout(&audit).trim().is_empty(), "{}", stdout(&audit));
}

/// The `APT::NeverAutoRemove` file of the production stage ("" when there is none).
fn keep_file(server: &Server) -> String {
    fs::read_to_string(server.path("/etc/apt/apt.conf.d/50debstage-hello-production"))
        .unwrap_or_default()
}

/// What `apt-get autoremove` would remove, per its simulation.
fn autoremovable(server: &Server) -> String {
    let output = server.apt_get(&["--simulate", "autoremove"]);
    all_output(&output)
        .lines()
        .filter(|line| line.starts_with("Remv "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `apt-get -y autoremove --purge`, then a restart of the unit: the unit must come back
/// on `release`, with its payload still installed.
fn autoremove_and_restart_run(server: &Server, release: &str) {
    let output = server.apt_get(&["autoremove", "--purge"]);
    let list = dpkg_list(server);
    assert_eq!(
        installed(&list, &format!("hello-{release}")),
        Some(format!("{release}-1")),
        "autoremove took the release that runs:\n{}\n{list:?}",
        all_output(&output)
    );
    assert_eq!(server.link(LINK).as_deref(), Some(release));
    server.run_ok("systemctl", &["restart", UNIT]);
    assert_eq!(service_directory(server), format!("/opt/hello/{release}"));
}

#[test]
fn systemd_4_autoremove_after_a_failed_refused_or_interrupted_release_keeps_what_runs() {
    let release = Release::new();
    let Some(server) = Server::booted("systemd-keep") else {
        return;
    };
    install_first_release(&release, &server);
    assert!(keep_file(&server).contains("\"^hello-1\\.0$\";"));

    // A failed canary: 1.1's health check fails and the host goes back to 1.0, which no
    // installed package depends on any more (hello-production 1.1-1 depends on hello-1.1).
    let unhealthy = release.builds.unhealthy("1.1", "1");
    release.add(&unhealthy);
    release.promote("1.1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    assert_eq!(output.status.code(), Some(100), "{}", all_output(&output));
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    let keep = keep_file(&server);
    assert!(
        keep.contains("\"^hello-1\\.0$\";") && !keep.contains("hello-1\\.1"),
        "{keep}"
    );
    let removable = autoremovable(&server);
    assert!(!removable.contains("hello-1.0"), "{removable}");
    let failed = facts(&server);
    assert_eq!(
        (&failed["state"], &failed["version"], &failed["current"]),
        (&"failed".into(), &"1.1".into(), &"1.0".into()),
        "{failed}"
    );
    autoremove_and_restart_run(&server, "1.0");

    // The stage rolled back, then 1.1 promoted again: refused here, and the host keeps
    // running 1.0, kept.
    release.repository.run(&["rollback", "hello", "production"]);
    update(&server);
    server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    assert_eq!(facts(&server)["state"], "checked");
    release.promote("1.1", &["production"]);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(100), "{text}");
    assert!(
        text.contains("not switching /opt/hello/production to 1.1 again; it stays at 1.0"),
        "{text}"
    );
    assert!(
        journal(&server).contains(" refused 1.0 1.1"),
        "{}",
        journal(&server)
    );
    assert!(keep_file(&server).contains("\"^hello-1\\.0$\";"));
    autoremove_and_restart_run(&server, "1.0");

    // Rolled back once more: the link is where it was, checked, so nothing is switched;
    // the facts say so again instead of the refusal before (issue 20, point 7), and the
    // failed release is no longer kept.
    release.repository.run(&["rollback", "hello", "production"]);
    update(&server);
    let output = server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    assert!(
        all_output(&output).contains("/opt/hello/production already points to 1.0, checked"),
        "{}",
        all_output(&output)
    );
    let checked = facts(&server);
    for (key, value) in [
        ("state", "checked"),
        ("version", "1.0"),
        ("current", "1.0"),
        ("package_version", "1.0-1"),
        ("health", "passed"),
    ] {
        assert_eq!(checked[key], value, "{key} in {checked}");
    }
    assert!(
        journal(&server).contains(" already-checked - 1.0"),
        "{}",
        journal(&server)
    );
    let output = server.apt_get_ok(&["autoremove", "--purge"]);
    assert_eq!(
        installed(&dpkg_list(&server), "hello-1.1"),
        None,
        "{}",
        all_output(&output)
    );
    assert_eq!(service_directory(&server), "/opt/hello/1.0");

    // Interrupted right after the switch to an unhealthy 1.2, then resumed: the resumed
    // configure fails the check and goes back; 1.0 stays kept.
    let interrupted = release.builds.unhealthy("1.2", "1");
    release.add(&interrupted);
    release.promote("1.2", TO_PRODUCTION);
    update(&server);
    let killed = server.apt_get_with(
        &[("DEBSTAGE_TEST_KILL_AFTER_SWITCH", "1.2")],
        &["install", "hello-production"],
    );
    assert_eq!(killed.status.code(), Some(100), "{}", all_output(&killed));
    assert_eq!(server.link(LINK).as_deref(), Some("1.2"));
    assert!(keep_file(&server).contains("\"^hello-1\\.0$\";"));
    let resumed = server.run("dpkg", &["--configure", "-a"]);
    assert_eq!(resumed.status.code(), Some(1), "{}", all_output(&resumed));
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    let keep = keep_file(&server);
    assert!(
        keep.contains("\"^hello-1\\.0$\";") && !keep.contains("hello-1\\.2"),
        "{keep}"
    );
    assert_eq!(facts(&server)["current"], "1.0");
    autoremove_and_restart_run(&server, "1.0");

    // A good release afterwards, installed right after the unit was restarted by hand
    // until systemd refused (its start limit: 5 starts in 10 s by default), as an operator
    // chasing a problem does: the unit is failed and down, and the release starts all the
    // same. It runs, 1.0 is kept as the one before it ([stages] keep = 1), and autoremove
    // leaves both.
    release.release("1.3", TO_PRODUCTION);
    update(&server);
    let refused = (0..10).find(|_| !server.run("systemctl", &["restart", UNIT]).status.success());
    assert!(refused.is_some(), "systemd never refused a restart");
    assert_eq!(unit_property(&server, "Result"), "start-limit-hit");
    let output = server.apt_get_ok(&["install", "hello-production"]);
    assert!(
        all_output(&output).contains("1.3 is up and healthy"),
        "{}",
        all_output(&output)
    );
    let keep = keep_file(&server);
    assert!(
        keep.contains("\"^hello-1\\.3$\";") && keep.contains("\"^hello-1\\.0$\";"),
        "{keep}"
    );
    autoremove_and_restart_run(&server, "1.3");
    assert_eq!(
        installed(&dpkg_list(&server), "hello-1.0").as_deref(),
        Some("1.0-1")
    );
}

/// The variables of a process's environment (`/proc/<pid>/environ` in the server).
fn environ(server: &Server, path: &str) -> std::collections::BTreeMap<String, String> {
    let output = server.run_ok("cat", &[path]);
    output
        .stdout
        .split(|byte| *byte == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (name, value) = entry.split_once('=')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn systemd_5_the_hook_the_health_check_and_the_unit_see_the_same_environment() {
    let release = Release::new();
    let Some(server) = Server::booted("systemd-environment") else {
        return;
    };
    let local = server.path("/etc/hello/production.env");
    fs::create_dir_all(local.parent().expect("a parent")).expect("/etc/hello");
    fs::write(
        &local,
        "# Local values of this host.\nOVERRIDDEN='from /etc/hello, local'\n\
         LOCAL_SECRET=\"s3cr3t with spaces, a \\\" and a $\"\n",
    )
    .expect("/etc/hello/production.env");
    let built = release.builds.environment("1.0", "1");
    release.add(&built);
    release.promote("1.0", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    let output = server.apt_get_ok(&["install", "hello-production"]);
    assert!(
        all_output(&output).contains("1.0 is up and healthy"),
        "{}",
        all_output(&output)
    );
    let pid = unit_property(&server, "MainPID");
    let unit = environ(&server, &format!("/proc/{pid}/environ"));
    let hook = environ(&server, "/var/tmp/hello-hook.environ");
    let health = environ(&server, "/var/tmp/hello-health.environ");
    let expected = [
        ("GREETING", "hello world"),
        (
            "QUOTED",
            "a \"quoted\" value with $HOME, `id -u` and \\ one backslash \\n",
        ),
        ("SINGLE", "its $(id -u) # no comment"),
        ("DOLLAR", "$PATH"),
        ("BACKTICK", "`touch /var/tmp/hello-backtick-ran`"),
        ("COMMAND", "$(touch /var/tmp/hello-command-ran)"),
        ("HASH", "one # two"),
        ("ESCAPED", "a b\\c$d"),
        ("TRAILING", "blanks after"),
        ("INDENTED", "around the equals sign"),
        ("JOINED", "first second"),
        ("MULTI", "line one\nline two"),
        ("OVERRIDDEN", "from /etc/hello, local"),
        ("LOCAL_SECRET", "s3cr3t with spaces, a \" and a $"),
        ("DEBSTAGE_APP", "hello"),
        ("DEBSTAGE_STAGE", "production"),
    ];
    for (name, value) in expected {
        let seen = |environment: &std::collections::BTreeMap<String, String>| {
            environment.get(name).cloned()
        };
        assert_eq!(seen(&unit).as_deref(), Some(value), "{name} in the unit");
        assert_eq!(seen(&hook), seen(&unit), "{name}: the hook and the unit");
        assert_eq!(
            seen(&health),
            seen(&unit),
            "{name}: the health check and the unit"
        );
    }
    // Nothing in the files was run, by the unit or by the maintainer scripts.
    assert!(!server.exists("/var/tmp/hello-backtick-ran"));
    assert!(!server.exists("/var/tmp/hello-command-ran"));

    // A line that systemd would not take stops the next release before its hook runs,
    // naming the file and the line; the host stays on 1.0.
    fs::write(&local, "OVERRIDDEN=local\nexport LOCAL_SECRET=x\n").expect("rewrite");
    fs::remove_file(server.path("/var/tmp/hello-hook.environ")).expect("remove");
    let next = release.builds.environment("1.1", "1");
    release.add(&next);
    release.promote("1.1", TO_PRODUCTION);
    update(&server);
    let output = server.apt_get(&["install", "hello-production"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(100), "{text}");
    assert!(
        text.contains(
            "/etc/hello/production.env line 2: \"export LOCAL_SECRET\" is not a variable name"
        ) && text.contains("/opt/hello/production still points to 1.0"),
        "{text}"
    );
    assert!(!server.exists("/var/tmp/hello-hook.environ"));
    assert_eq!(server.link(LINK).as_deref(), Some("1.0"));
    let failed = facts(&server);
    assert_eq!(
        (&failed["state"], &failed["current"]),
        (&"failed".into(), &"1.0".into()),
        "{failed}"
    );
    assert!(journal(&server).contains(" environment-failed 1.0 1.1"));
    assert!(keep_file(&server).contains("\"^hello-1\\.0$\";"));

    // Fixed, the same configure goes through.
    fs::write(&local, "OVERRIDDEN=local\nLOCAL_SECRET=x\n").expect("rewrite");
    let output = server.run_ok("dpkg", &["--configure", "-a"]);
    assert!(
        all_output(&output).contains("1.1 is up and healthy"),
        "{}",
        all_output(&output)
    );
    assert_eq!(service_directory(&server), "/opt/hello/1.1");
    let unit = environ(
        &server,
        &format!("/proc/{}/environ", unit_property(&server, "MainPID")),
    );
    assert_eq!(unit.get("LOCAL_SECRET").map(String::as_str), Some("x"));
}
