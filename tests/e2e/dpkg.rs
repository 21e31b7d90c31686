//! Scenario A: the maintainer scripts under plain dpkg, no repository.

use std::fs;

use super::fixtures::Builds;
use super::harness::Server;
use crate::support::{stderr, stdout};

/// The lines of a stage's journal on the server.
fn journal(server: &Server, stage: &str) -> Vec<String> {
    let path = server.path(&format!("/var/lib/hello/{stage}.journal"));
    fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The node_exporter textfile of a stage on the server.
fn metrics(server: &Server, stage: &str) -> String {
    let path = server.path(&format!(
        "/var/lib/prometheus/node-exporter/debstage_hello_{stage}.prom"
    ));
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn dpkg_installs_switches_refuses_a_failed_activation_and_purges() {
    let Some(server) = Server::new("dpkg") else {
        return;
    };
    let builds = Builds::new();
    let v10 = builds.good("1.0", "1");
    let v11 = builds.good("1.1", "1");
    let v12_broken = builds.broken("1.2", "1");
    let v12_fixed = builds.good("1.2", "2");
    let dpkg_install = |built: &super::fixtures::Built, stage: &str| {
        let files = server.put("/tmp/debs", &[&built.payload(), &built.stage(stage)]);
        let mut arguments = vec!["-i"];
        arguments.extend(files.iter().map(String::as_str));
        server.run("dpkg", &arguments)
    };

    // The directory Debian's prometheus-node-exporter reads: the scripts write their
    // textfile there.
    fs::create_dir_all(server.path("/var/lib/prometheus/node-exporter"))
        .expect("mkdir node-exporter");

    // 1.0: the payload lands in its own directory, the stage link points at it.
    let output = dpkg_install(&v10, "production");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert!(server.exists("/lib/systemd/system/hello-production.service"));
    let pin = fs::read_to_string(server.path("/etc/apt/preferences.d/hello-production"))
        .expect("the stage package ships its pin");
    assert!(pin.contains("Package: hello-production") && pin.contains("Pin-Priority: 1001"));
    assert!(
        journal(&server, "production")
            .last()
            .is_some_and(|line| line.ends_with(" switched - 1.0")),
        "{:?}",
        journal(&server, "production")
    );
    // Not checked here (no systemd): the metrics say switched, with no health check.
    let switched = metrics(&server, "production");
    assert!(
        switched.contains(
            "debstage_release_info{app=\"hello\",stage=\"production\",version=\"1.0\",\
             package_version=\"1.0-1\",state=\"switched\"} 1\n"
        ),
        "{switched}"
    );
    assert!(
        !switched.contains("debstage_health_check_ok{"),
        "{switched}"
    );
    // No systemd runs in a chroot: the script does not even ask policy-rc.d.
    assert!(stderr(&output).contains("/opt/hello/production -> 1.0"));
    assert!(
        !stderr(&output).contains("policy-rc.d"),
        "{}",
        stderr(&output)
    );

    // 1.1 beside it: the link moves, 1.0 stays on disk and installed. Here the server
    // looks as if systemd ran, and policy-rc.d (exit 101) is what keeps the unit down.
    let systemd_marker = server.path("/run/systemd/system");
    fs::create_dir_all(&systemd_marker).expect("mkdir /run/systemd/system");
    let output = dpkg_install(&v11, "production");
    fs::remove_dir(&systemd_marker).expect("rmdir /run/systemd/system");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("policy-rc.d forbids restarting hello-production"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert!(server.path("/opt/hello/1.0/bin/hello").is_file());
    assert_eq!(
        server.installed_version("hello-1.0").as_deref(),
        Some("1.0-1")
    );
    assert_eq!(
        server.installed_version("hello-1.1").as_deref(),
        Some("1.1-1")
    );
    assert_eq!(
        server.installed_version("hello-production").as_deref(),
        Some("1.1-1")
    );

    // 1.2 with a failing activation hook: dpkg reports it, the link stays at 1.1.
    let output = dpkg_install(&v12_broken, "production");
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let errors = stderr(&output);
    assert!(errors.contains("migration of 1.2 failed"), "{errors}");
    assert!(
        errors.contains("activation hook of 1.2 failed (exit 1)")
            && errors.contains("/opt/hello/production still points to 1.1"),
        "{errors}"
    );
    assert!(
        errors.contains("hello-production")
            && errors.contains("post-installation script subprocess returned error exit status 1"),
        "{errors}"
    );
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert_eq!(server.package_status("hello-production"), "iF");
    assert!(server.path("/opt/hello/1.2/bin/hello").is_file());
    assert!(journal(&server, "production")
        .last()
        .is_some_and(|line| line.ends_with(" activate-failed 1.1 1.2")));
    let failed = metrics(&server, "production");
    assert!(
        failed.contains("version=\"1.2\",package_version=\"1.2-1\",state=\"failed\"} 1"),
        "{failed}"
    );

    // Configuring again is safe: it fails the same clean way and changes nothing.
    let output = server.run("dpkg", &["--configure", "-a"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stderr(&output).contains("activation hook of 1.2 failed"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
    assert_eq!(server.package_status("hello-production"), "iF");
    let leftovers: Vec<String> = fs::read_dir(server.path("/opt/hello"))
        .expect("/opt/hello")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary links left: {leftovers:?}");

    // A fixed revision of 1.2 replaces the broken one and the host recovers.
    let output = dpkg_install(&v12_fixed, "production");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.2"));
    assert_eq!(
        server.installed_version("hello-1.2").as_deref(),
        Some("1.2-2")
    );
    assert_eq!(
        server.installed_version("hello-production").as_deref(),
        Some("1.2-2")
    );
    let audit = server.run_ok("dpkg", &["--audit"]);
    assert!(stdout(&audit).trim().is_empty(), "{}", stdout(&audit));
    server.run_ok("dpkg", &["--configure", "-a"]);

    // A second stage of the same app on the same host, at another version.
    let staging = server.put("/tmp/debs", &[&v10.stage("staging")]);
    let output = server.run("dpkg", &["-i", &staging[0]]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.link("/opt/hello/staging").as_deref(), Some("1.0"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.2"));
    assert!(server.exists("/lib/systemd/system/hello-staging.service"));

    // Every file has the same HELP and TYPE lines.
    let help = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let production = metrics(&server, "production");
    assert!(production.contains("version=\"1.2\""), "{production}");
    assert_eq!(help(&production), help(&metrics(&server, "staging")));
    let leftovers: Vec<String> = fs::read_dir(server.path("/var/lib/prometheus/node-exporter"))
        .expect("node-exporter")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".prom"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary metrics files: {leftovers:?}"
    );

    // Purging one stage removes its link and journal, and only those.
    let output = server.run("dpkg", &["--purge", "hello-production"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!server.exists("/var/lib/prometheus/node-exporter/debstage_hello_production.prom"));
    assert!(server.exists("/var/lib/prometheus/node-exporter/debstage_hello_staging.prom"));
    assert!(!server.exists("/opt/hello/production"));
    assert!(!server.exists("/var/lib/hello/production.journal"));
    assert!(!server.exists("/lib/systemd/system/hello-production.service"));
    assert!(!server.exists("/etc/apt/preferences.d/hello-production"));
    assert_eq!(server.link("/opt/hello/staging").as_deref(), Some("1.0"));
    assert!(server.exists("/var/lib/hello/staging.journal"));
    // The payloads are separate packages: purging a stage leaves them installed.
    assert!(server.path("/opt/hello/1.2/bin/hello").is_file());
    assert_eq!(
        server.installed_version("hello-1.2").as_deref(),
        Some("1.2-2")
    );
    let status = server.package_status("hello-production");
    assert!(matches!(status.as_str(), "" | "un"), "{status}");
}
