//! The stage scripts' node_exporter textfile on the real systemd: Debian's
//! `prometheus-node-exporter` running in one booted container serves
//! `debstage_release_info` with the labels of what the host runs after an install, after
//! a failed activation (failed, the previous release serving), after a failed health
//! check (rolled back), after a configure killed right after its switch (switched) and
//! after a purge (gone), and `promtool check metrics` (from Debian's `prometheus`
//! package, unpacked in the container) accepts every file.

use super::apt::{Release, TO_PRODUCTION};
use super::fixtures::Built;
use super::harness::{http_get, Server};
use super::systemd::all_output;
use crate::support::s3::free_port;
use crate::support::{stderr, stdout};

const METRICS: &str = "/var/lib/prometheus/node-exporter/debstage_hello_production.prom";

/// The `debstage_*` lines node_exporter serves on `port` (its own lines left out).
fn served(port: u16) -> Vec<String> {
    let (status, body) = http_get(port, "/metrics");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("debstage_"))
        .map(str::to_string)
        .collect()
}

/// The one `debstage_release_info` sample node_exporter serves, or None.
fn release_info(port: u16) -> Option<String> {
    let lines: Vec<String> = served(port)
        .into_iter()
        .filter(|line| line.starts_with("debstage_release_info{"))
        .collect();
    assert!(lines.len() <= 1, "{lines:?}");
    lines.into_iter().next()
}

/// Checks that node_exporter serves the one `debstage_release_info` of the production
/// stage with these labels, and that promtool accepts the file it read.
fn assert_release_info(
    server: &Server,
    port: u16,
    version: &str,
    package_version: &str,
    state: &str,
) {
    let expected = format!(
        "debstage_release_info{{app=\"hello\",package_version=\"{package_version}\",\
         stage=\"production\",state=\"{state}\",version=\"{version}\"}} 1"
    );
    assert_eq!(release_info(port), Some(expected), "{:?}", served(port));
    promtool_accepts(server);
}

/// Checks the health check's gauge node_exporter serves.
fn assert_health_check_ok(port: u16, value: u8) {
    let expected =
        format!("debstage_health_check_ok{{app=\"hello\",stage=\"production\"}} {value}");
    assert!(served(port).contains(&expected), "{:?}", served(port));
}

/// `promtool check metrics` on the stage's file, inside the container.
fn promtool_accepts(server: &Server) {
    promtool_accepts_file(server, METRICS);
}

/// `promtool check metrics` on `file` inside `server`, with the promtool
/// [`unpack_promtool`] put there.
pub(super) fn promtool_accepts_file(server: &Server, file: &str) {
    let output = server.run(
        "sh",
        &[
            "-c",
            &format!("/tmp/prometheus/usr/bin/promtool check metrics < {file}"),
        ],
    );
    assert!(
        output.status.success(),
        "promtool check metrics refused {file}:\n{}{}",
        stdout(&output),
        stderr(&output)
    );
}

/// Puts promtool in `server` (`/tmp/prometheus`): Debian's prometheus package unpacked,
/// its server never installed. The server must read the Debian mirror.
pub(super) fn unpack_promtool(server: &Server) {
    server.run_ok(
        "sh",
        &[
            "-c",
            "cd /tmp && apt-get download -q prometheus && dpkg-deb -x prometheus_*.deb /tmp/prometheus",
        ],
    );
}

/// Adds `built` (a version that fails on the host), promotes it to production and lets
/// the server follow: apt fails; returns what it printed.
fn follow_failing(release: &Release, server: &Server, built: &Built) -> String {
    release.add(built);
    release.promote(&built.manifest.version, TO_PRODUCTION);
    server.apt_get_ok(&["update"]);
    let output = server.apt_get(&["install", "hello-production"]);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(100), "{text}");
    text
}

#[test]
fn node_exporter_serves_the_release_info_through_failures_and_a_purge() {
    let release = Release::new();
    let Some(mut server) = Server::booted("node-exporter") else {
        return;
    };
    // Debian's node_exporter, on a free loopback port (the container shares the host's
    // network), reading the textfile directory the stage scripts write to.
    server.use_mirror();
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&[
        "install",
        "--no-install-recommends",
        "prometheus-node-exporter",
    ]);
    let port = free_port();
    std::fs::write(
        server.path("/etc/default/prometheus-node-exporter"),
        format!(
            "ARGS=\"--web.listen-address=127.0.0.1:{port} \
             --collector.textfile.directory=/var/lib/prometheus/node-exporter\"\n"
        ),
    )
    .expect("/etc/default/prometheus-node-exporter");
    server.run_ok("systemctl", &["restart", "prometheus-node-exporter"]);
    server.run_ok(
        "systemctl",
        &["is-active", "--quiet", "prometheus-node-exporter"],
    );
    unpack_promtool(&server);

    // 1.0 installed and checked.
    release.release("1.0", TO_PRODUCTION);
    server.subscribe(&release.repository, "production", "hello");
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_release_info(&server, port, "1.0", "1.0-1", "checked");
    assert_health_check_ok(port, 1);

    // 1.1's activation hook fails: the link never moves, 1.0 serves.
    follow_failing(&release, &server, &release.builds.broken("1.1", "1"));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert_release_info(&server, port, "1.1", "1.1-1", "failed");

    // 1.2's health check fails after the switch: the script switches back to 1.0.
    let text = follow_failing(&release, &server, &release.builds.unhealthy("1.2", "1"));
    assert!(
        text.contains("switched back: /opt/hello/production -> 1.0"),
        "{text}"
    );
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert_release_info(&server, port, "1.2", "1.2-1", "rolled back");
    assert_health_check_ok(port, 0);
    // A retried configure refuses 1.2 and says the same of the host.
    let again = server.run("dpkg", &["--configure", "-a"]);
    assert_eq!(again.status.code(), Some(1), "{}", all_output(&again));
    assert!(
        release_info(port)
            .is_some_and(|line| line.contains("state=\"rolled back\",version=\"1.2\"")),
        "{:?}",
        served(port)
    );

    // A configure killed right after the switch to 1.3: the link points to 1.3, and so
    // do the metrics (switched, not checked); the next configure checks it.
    release.release("1.3", TO_PRODUCTION);
    server.apt_get_ok(&["update"]);
    let killed = server.apt_get_with(
        &[("DEBSTAGE_TEST_KILL_AFTER_SWITCH", "1.3")],
        &["install", "hello-production"],
    );
    assert_eq!(killed.status.code(), Some(100), "{}", all_output(&killed));
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.3"));
    assert_release_info(&server, port, "1.3", "1.3-1", "switched");
    server.run_ok("dpkg", &["--configure", "-a"]);
    assert!(
        release_info(port).is_some_and(|line| line.contains("state=\"checked\",version=\"1.3\"")),
        "{:?}",
        served(port)
    );

    // Purged: the file is gone, and so is the series.
    server.apt_get_ok(&["purge", "hello-production"]);
    assert!(!server.exists(METRICS));
    assert_eq!(release_info(port), None, "{:?}", served(port));
}
