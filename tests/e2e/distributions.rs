//! Scenario 9: one repository serves builds of the example for bookworm and for trixie.
//! A server of each distribution subscribes to its own suite of production
//! (`repo sources production --dist CODENAME`), apt there never offers the other
//! distribution's build, and one release promoted and rolled back across both
//! distributions moves servers of both: the stage package's pin names its own suite
//! (`n=bookworm-production`), so the rolled-back version becomes apt's candidate.

use super::apt::{update, Release};
use super::harness::{RepoServer, Server};
use crate::support::{stderr, stdout};

/// Builds `version` (revision 1) of the example for bookworm and trixie, adds both and
/// promotes the release to production in both distributions at once.
fn release_everywhere(release: &Release, version: &str) {
    for target in ["bookworm", "trixie"] {
        let built = release.builds.good_for(version, "1", target);
        release.add(&built);
    }
    let full = format!("{version}-1");
    for stage in ["staging", "production"] {
        release
            .repository
            .run(&["promote", "hello", &full, "--to", stage]);
    }
}

/// Subscribes `server` to production of `codename`, updates, and checks that apt offers
/// only builds with `suffix` and that the stage package's pin applies.
fn follow_production(server: &Server, repository: &RepoServer, codename: &str, suffix: &str) {
    server.subscribe_to(repository, "production", Some(codename), "hello");
    let output = server.apt_get_ok(&["update"]);
    assert!(
        !stderr(&output).contains("Conflicting distribution"),
        "apt finds the suite's Suite or Codename wrong:\n{}",
        stderr(&output)
    );
    update(server);
    let policy = server.apt_cache(&["policy", "hello-1.0", "hello-1.1", "hello-production"]);
    let other = if suffix == "+deb12" {
        "+deb13"
    } else {
        "+deb12"
    };
    assert!(
        policy.contains(&format!("1.0-1{suffix}")) && !policy.contains(other),
        "{codename}: apt-cache policy offers another distribution's build:\n{policy}"
    );
    assert!(
        policy.contains(&format!("{codename}-production/main")),
        "{codename}: {policy}"
    );
}

#[test]
fn scenario_9_each_distribution_follows_its_own_suite_of_one_repository() {
    let release = Release::new();
    let Some(bookworm) = Server::new("dist-bookworm") else {
        return;
    };
    release_everywhere(&release, "1.0");
    follow_production(&bookworm, &release.repository, "bookworm", "+deb12");
    bookworm.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(
        bookworm.installed_version("hello-1.0").as_deref(),
        Some("1.0-1+deb12")
    );
    assert_eq!(
        bookworm.link("/opt/hello/production").as_deref(),
        Some("1.0")
    );
    let pinned = bookworm.apt_cache(&["policy", "hello-production"]);
    assert!(pinned.contains("1001"), "the pin does not apply:\n{pinned}");

    // 1.1 everywhere, then rolled back everywhere: the bookworm server follows both.
    release_everywhere(&release, "1.1");
    update(&bookworm);
    bookworm.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(
        bookworm.installed_version("hello-production").as_deref(),
        Some("1.1-1+deb12")
    );
    let rolled = release.repository.run(&["rollback", "hello", "production"]);
    assert!(
        stderr(&rolled).contains("bookworm-production")
            && stderr(&rolled).contains("trixie-production"),
        "{}",
        stderr(&rolled)
    );
    update(&bookworm);
    bookworm.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    assert_eq!(
        bookworm.installed_version("hello-production").as_deref(),
        Some("1.0-1+deb12")
    );
    assert_eq!(
        bookworm.link("/opt/hello/production").as_deref(),
        Some("1.0")
    );
    // Two servers at once could wait on each other's slots: the first goes first.
    drop(bookworm);

    let Some(trixie) = Server::of_distribution("dist-trixie", "trixie") else {
        return;
    };
    follow_production(&trixie, &release.repository, "trixie", "+deb13");
    let output = trixie.apt_get_ok(&["install", "hello-production"]);
    assert!(stdout(&output).contains("hello-1.0"), "{}", stdout(&output));
    assert_eq!(
        trixie.installed_version("hello-production").as_deref(),
        Some("1.0-1+deb13")
    );
    assert_eq!(
        trixie.installed_version("hello-1.0").as_deref(),
        Some("1.0-1+deb13")
    );
    assert_eq!(trixie.link("/opt/hello/production").as_deref(), Some("1.0"));
    let history = stdout(&release.repository.run(&["history", "hello"]));
    for line in ["rollback  hello  bookworm", "rollback  hello  trixie"] {
        assert!(history.contains(line), "{history}");
    }
}
