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
use crate::support::{stderr, stdout};

const UNIT: &str = "hello-production.service";
const LINK: &str = "/opt/hello/production";

/// stdout and stderr of a command together: apt runs dpkg on a pty, so what the scripts
/// print arrives on apt's stdout.
fn all_output(output: &std::process::Output) -> String {
    stdout(output) + &stderr(output)
}

/// A property of the stage's unit per `systemctl show`.
fn unit_property(server: &Server, property: &str) -> String {
    let output = server.run_ok(
        "systemctl",
        &["show", "--property", property, "--value", UNIT],
    );
    stdout(&output).trim().to_string()
}

/// The working directory of the unit's main process, after checking the unit is active.
fn service_directory(server: &Server) -> String {
    assert_eq!(
        unit_property(server, "ActiveState"),
        "active",
        "{}",
        stdout(&server.run("systemctl", &["status", "--no-pager", UNIT]))
    );
    let pid = unit_property(server, "MainPID");
    assert_ne!(pid, "0", "{UNIT} has no main process");
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
