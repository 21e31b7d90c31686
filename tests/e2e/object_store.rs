//! Servers that follow a suite published to an S3-compatible store: apt reads the bucket
//! over HTTP (Garage's website endpoint, or moto's anonymous read by bucket policy), the
//! repository copies every change there (an automatic target).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::harness::Server;
use crate::publish_targets::{assert_store_consistent, uploads, Repo};
use crate::support::s3::{TlsFront, S3};
use crate::support::stdout;

/// Subscribes `server` to `stage` of the copy on `s3` under `prefix`: the key that
/// `repo export-key --binary` prints, and the deb822 source `repo sources` prints for
/// the bucket's URL. Returns what `repo sources` printed.
pub(super) fn subscribe(
    server: &Server,
    repo: &Repo,
    s3: &S3,
    prefix: &str,
    stage: &str,
) -> String {
    if let Some(host) = &s3.http_host {
        let mut hosts = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(server.path("/etc/hosts"))
            .expect("/etc/hosts of the server");
        writeln!(hosts, "127.0.0.1 {host}").expect("/etc/hosts");
    }
    subscribe_at(server, repo, &bucket_url(s3, prefix), stage)
}

/// The URL apt reads the copy on `s3` under `prefix` at.
pub(super) fn bucket_url(s3: &S3, prefix: &str) -> String {
    format!("{}/{prefix}", s3.http_base)
}

/// Subscribes `server` to `stage` of `repo` copied to `url`; what `repo sources` printed.
fn subscribe_at(server: &Server, repo: &Repo, url: &str, stage: &str) -> String {
    let text = repo.ok(&["sources", stage, "--url", url, "--app", "hello"]);
    let (inside, sources) = text
        .split("\n\n")
        .find_map(|paragraph| {
            let (first, rest) = paragraph.split_once('\n')?;
            let path = first.strip_prefix("# ")?;
            path.ends_with(".sources")
                .then(|| (path.to_string(), rest.trim_end().to_string() + "\n"))
        })
        .unwrap_or_else(|| panic!("repo sources printed no .sources file:\n{text}"));
    assert!(sources.contains(&format!("URIs: {url}")), "{sources}");
    let signed_by = sources
        .lines()
        .find_map(|line| line.strip_prefix("Signed-By:"))
        .map(str::trim)
        .expect("Signed-By");
    let key = repo.run(&["export-key", "--binary"]).stdout;
    let target = server.path(signed_by);
    fs::create_dir_all(target.parent().expect("parent")).expect("keyrings");
    fs::write(&target, key).expect("key");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("mode");
    fs::write(server.path(&inside), sources).expect("sources");
    text
}

fn update(server: &Server) -> String {
    let output = server.apt_get_ok(&["update"]);
    let text = stdout(&output);
    assert!(
        !text.contains("Ign:") && !text.contains("Err:"),
        "apt-get update did not read the bucket cleanly:\n{text}"
    );
    text
}

/// Install from the bucket, then a promote and a rollback reach the server through it.
fn install_promote_rollback(s3: &S3, scenario: &str, extra: &str) {
    let Some(server) = Server::new(scenario) else {
        return;
    };
    let prefix = "debian";
    let repo = Repo::new(s3, prefix, &format!("automatic = true\n{extra}"));
    repo.add(0);
    repo.run(&["promote", "hello", "1.0", "--to", "staging"]);
    repo.run(&["promote", "hello", "1.0", "--to", "production"]);
    assert_store_consistent(s3, prefix);
    subscribe(&server, &repo, s3, prefix, "production");
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));

    repo.add(1);
    repo.run(&["promote", "hello", "1.1", "--to", "staging"]);
    let promoted = repo.run(&["promote", "hello", "1.1", "--to", "production"]);
    let counts = uploads(&promoted);
    assert!(
        !counts.contains_key("pool"),
        "the promote to production wrote pool objects (they were there since add): {counts:?}"
    );
    update(&server);
    server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));

    repo.run(&["rollback", "hello", "production"]);
    update(&server);
    server.apt_get_ok(&["install", "--allow-downgrades", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));
    assert_store_consistent(s3, prefix);
    repo.verify_target();
}

#[test]
fn s3_garage_bucket_serves_install_promote_and_rollback() {
    let Some(s3) = S3::garage("apt from a Garage bucket") else {
        return;
    };
    // Garage ignores If-None-Match: one writer, by the target's opt-out.
    install_promote_rollback(&s3, "s3-garage", "conditional_writes = false\n");
}

#[test]
fn s3_moto_bucket_serves_install_promote_and_rollback() {
    let Some(s3) = S3::moto("apt from a moto bucket") else {
        return;
    };
    install_promote_rollback(&s3, "s3-moto", "");
}

/// How many `apt-get update` runs each mode of the loop makes: `DEBSTAGE_S3_UPDATES`
/// (the full run uses 100; make test a few).
fn update_count() -> usize {
    std::env::var("DEBSTAGE_S3_UPDATES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10)
}

/// The store the loop runs on: Garage when built; elsewhere than CI (where `make test`
/// builds Garage, so its absence fails the test), moto, said loudly.
fn loop_store(what: &str) -> Option<S3> {
    if crate::support::s3::garage_binary().is_file() {
        return S3::garage(what);
    }
    if crate::support::under_ci() {
        panic!("{what}: Garage is not built and CI is set (`make garage` builds it)");
    }
    crate::support::s3::shout(&format!("{what}: Garage is not built; running on moto"));
    S3::moto(what)
}

/// Runs `apt-get update` `count` times with `options` while the other thread publishes;
/// returns the failed runs' outputs.
fn update_loop(server: &Server, count: usize, options: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    for _ in 0..count {
        let arguments: Vec<&str> = options.iter().copied().chain(["update"]).collect();
        let output = server.apt_get(&arguments);
        let text = format!(
            "{}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        let failed = !output.status.success()
            || text.contains("Err:")
            || text.contains("Hash Sum mismatch")
            || text.contains("W: ")
            || text.contains("E: ");
        if failed {
            failures.push(text);
        }
    }
    failures
}

#[test]
fn s3_apt_update_loop_while_promoting_sees_no_failure_with_by_hash() {
    let Some(s3) = loop_store("apt-get update loop against a bucket") else {
        return;
    };
    let Some(server) = Server::new("s3-update-loop") else {
        return;
    };
    let prefix = "loop";
    let extra = if s3.conditional {
        "automatic = true\n"
    } else {
        "automatic = true\nconditional_writes = false\n"
    };
    let repo = Repo::new(&s3, prefix, extra);
    repo.add(0);
    repo.add(1);
    repo.run(&["promote", "hello", "1.0", "--to", "staging"]);
    subscribe(&server, &repo, &s3, prefix, "staging");
    update(&server);
    let count = update_count();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (with_hash, without_hash, publications) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut publications = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if publications % 2 == 0 {
                    repo.run(&["promote", "hello", "1.1", "--to", "staging"]);
                } else {
                    repo.run(&["rollback", "hello", "staging"]);
                }
                publications += 1;
            }
            publications
        });
        let with_hash = update_loop(&server, count, &[]);
        let without_hash = update_loop(&server, count, &["-o", "Acquire::By-Hash=no"]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let publications = writer.join().expect("writer thread");
        (with_hash, without_hash, publications)
    });
    crate::support::s3::shout(&format!(
        "apt-get update loop: {count} updates with by-hash: {} failed; {count} with \
         Acquire::By-Hash=no: {} failed; {publications} publications meanwhile",
        with_hash.len(),
        without_hash.len()
    ));
    assert!(publications > 0, "nothing was published during the loop");
    assert!(
        with_hash.is_empty(),
        "{} of {count} updates with by-hash failed; the first:\n{}",
        with_hash.len(),
        with_hash[0]
    );
    assert_store_consistent(&s3, prefix);
    repo.verify_target();
}

/// A private Garage bucket (no website endpoint, no anonymous read) read by apt through
/// Debian's `apt-transport-s3`. That method always asks
/// `https://BUCKET.<Endpoint>/KEY` (virtual-host style, HTTPS only, signed with AWS
/// SigV4 for `Region`), so Garage's plain-HTTP API gets a TLS front (stunnel) whose
/// certificate the server trusts, and `BUCKET.s3.garage` resolves to 127.0.0.1 there
/// (Garage's `root_domain` for virtual-host addressing is `.s3.garage`).
#[test]
fn s3_private_garage_bucket_serves_apt_transport_s3() {
    let what = "apt-transport-s3 on a private Garage bucket";
    let Some(s3) = S3::private_garage(what) else {
        return;
    };
    let Some(front) = TlsFront::new(what, &s3.endpoint, "s3.garage") else {
        return;
    };
    let Some(mut server) = Server::new("s3-private-garage") else {
        return;
    };
    let prefix = "debian";
    let repo = Repo::new(
        &s3,
        prefix,
        "automatic = true\nconditional_writes = false\n",
    );
    repo.add(0);
    repo.run(&["promote", "hello", "1.0", "--to", "staging"]);
    repo.run(&["promote", "hello", "1.0", "--to", "production"]);

    // The method and the front's certificate, from the machine's Debian mirror.
    server.use_mirror();
    server.apt_get_ok(&["update"]);
    server.apt_get_ok(&[
        "install",
        "--no-install-recommends",
        "apt-transport-s3",
        "ca-certificates",
    ]);
    fs::write(
        server.path("/usr/local/share/ca-certificates/debstage-s3-front.crt"),
        front.certificate(),
    )
    .expect("certificate");
    server.run_ok("update-ca-certificates", &[]);
    // From here on apt reads the bucket only.
    fs::write(server.path("/etc/apt/sources.list"), "").expect("sources.list");
    let mut hosts = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(server.path("/etc/hosts"))
        .expect("/etc/hosts of the server");
    writeln!(hosts, "127.0.0.1 {}.s3.garage", s3.bucket).expect("/etc/hosts");
    let auth = server.path("/etc/apt/s3auth.conf");
    fs::write(
        &auth,
        format!(
            "AccessKeyId = {}\nSecretAccessKey = {}\nRegion = {}\n\
             Endpoint = 's3.garage:{}'\n",
            s3.access_key, s3.secret_key, s3.region, front.port
        ),
    )
    .expect("s3auth.conf");
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).expect("mode");
    subscribe_at(
        &server,
        &repo,
        &format!("s3://{}/{prefix}", s3.bucket),
        "production",
    );

    // The signature is checked: the source names its key and is not trusted blindly.
    let sources = fs::read_dir(server.path("/etc/apt/sources.list.d"))
        .expect("sources.list.d")
        .filter_map(|entry| fs::read_to_string(entry.ok()?.path()).ok())
        .find(|text| text.contains("URIs: s3://"))
        .expect("the s3 source in the server's sources.list.d");
    assert!(
        sources.contains("Signed-By:") && !sources.to_ascii_lowercase().contains("trusted"),
        "{sources}"
    );
    let suite = sources
        .lines()
        .find_map(|line| line.strip_prefix("Suites:"))
        .map(str::trim)
        .expect("Suites:");
    let (status, _, body) = s3.get(&format!("{prefix}/dists/{suite}/InRelease"));
    assert_eq!(
        status,
        403,
        "an anonymous GET of the private bucket's InRelease was not refused:\n{}",
        String::from_utf8_lossy(&body)
    );

    let text = update(&server);
    assert!(
        text.contains(&format!("s3://{}/{prefix} {suite} InRelease", s3.bucket)),
        "apt-get update did not read InRelease through the s3 method:\n{text}"
    );
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.0"));

    repo.add(1);
    repo.run(&["promote", "hello", "1.1", "--to", "staging"]);
    repo.run(&["promote", "hello", "1.1", "--to", "production"]);
    update(&server);
    server.apt_get_ok(&["install", "hello-production"]);
    assert_eq!(server.link("/opt/hello/production").as_deref(), Some("1.1"));
}
