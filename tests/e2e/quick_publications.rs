//! apt never misses a publication that follows the one before within a second, whatever
//! serves the tree: `repo serve`, nginx serving the directory (Last-Modified from the
//! file's mtime, `If-Modified-Since` compared exactly), or an S3 store (Last-Modified
//! from the second of the write). Each pair moves production to one version, which a
//! client fetches at once, and moves it back right after; apt must then fetch the second
//! publication's `InRelease`, byte for byte, and see its version as the candidate.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::apt::{update, Release, TO_PRODUCTION};
use super::harness::{can_run, Server};
use super::object_store::subscribe;
use crate::publish_targets::Repo;
use crate::support::http;
use crate::support::s3::{free_port, S3};

/// How many pairs of publications within one second a scenario wants to see
/// (`DEBSTAGE_QUICK_PAIRS`; make test runs 2).
fn wanted_pairs() -> usize {
    std::env::var("DEBSTAGE_QUICK_PAIRS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2)
}

/// Sleeps to just past the next second boundary, so that what follows starts early in
/// its second.
fn start_of_a_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    std::thread::sleep(
        Duration::from_nanos(u64::from(1_000_000_000 - into)) + Duration::from_millis(5),
    );
}

fn second_of(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// The file in which apt keeps the `InRelease` of suite `production`.
fn apt_copy(server: &Server) -> PathBuf {
    let lists = server.path("/var/lib/apt/lists");
    fs::read_dir(&lists)
        .expect("apt lists")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name().is_some_and(|name| {
                name.to_string_lossy()
                    .ends_with("_dists_production_InRelease")
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "apt holds no InRelease of production in {}",
                lists.display()
            )
        })
}

/// Seconds since 1970 of an HTTP date (`Mon, 07 Dec 2026 09:54:13 GMT`).
fn parse_http_date(text: &str) -> i64 {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, clock, "GMT"] = fields.as_slice() else {
        panic!("not an HTTP date: {text:?}");
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|name| name == month)
    .unwrap_or_else(|| panic!("month of {text:?}")) as i64
        + 1;
    let number = |field: &str| -> i64 { field.parse().unwrap_or_else(|_| panic!("{text:?}")) };
    let (day, year) = (number(day), number(year));
    let parts: Vec<i64> = clock.split(':').map(number).collect();
    // Days from 1970-01-01 to the date (the proleptic Gregorian calendar).
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let of_era = shifted - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = of_era * 365 + of_era / 4 - of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
}

/// Runs pairs of publications of production through `publish`: `promote 1.1`, fetched
/// at once by a client of `base` as apt would (apt's copy of `InRelease` becomes those
/// bytes, dated by their Last-Modified, which is how apt keeps it), then at once
/// `rollback` to 1.0; then `apt-get update` on `server` must fetch the rollback. Runs
/// until [`wanted_pairs`] pairs had the rollback start within the second of the
/// promote's Last-Modified (the case apt missed), at most three times as many in all.
fn every_quick_publication_reaches_apt(
    what: &str,
    server: &Server,
    root: &Path,
    base: &str,
    publish: &dyn Fn(&[&str]),
) {
    let local = root.join("dists/production/InRelease");
    let wanted = wanted_pairs();
    let mut quick = 0;
    let mut pairs = 0;
    while quick < wanted && pairs < 3 * wanted {
        pairs += 1;
        start_of_a_second();
        publish(&["promote", "hello", "1.1", "--to", "production"]);
        let answer = http::get(base, "dists/production/InRelease");
        assert_eq!(answer.status, 200, "{what}: GET InRelease");
        let modified = parse_http_date(
            answer
                .header("last-modified")
                .unwrap_or_else(|| panic!("{what}: InRelease has no Last-Modified")),
        );
        let bytes = answer.body;
        assert!(
            bytes == fs::read(&local).expect("local InRelease"),
            "{what}: the served InRelease is not the one just published"
        );
        let copy = apt_copy(server);
        fs::write(&copy, &bytes).expect("apt's InRelease");
        fs::File::options()
            .write(true)
            .open(&copy)
            .and_then(|file| file.set_modified(UNIX_EPOCH + Duration::from_secs(modified as u64)))
            .expect("apt's InRelease mtime");
        // The second the promote's InRelease was written in: its mtime, or the store's
        // date for it (`repo serve` dates a fresh file back, so its answer says less).
        let written = second_of(
            fs::metadata(&local)
                .and_then(|metadata| metadata.modified())
                .expect("InRelease mtime"),
        )
        .max(modified);
        let started = SystemTime::now();
        publish(&["rollback", "hello", "production"]);
        if second_of(started) <= written {
            quick += 1;
        }
        update(server);
        let served = fs::read(&local).expect("local InRelease");
        let held = fs::read(&copy).expect("apt's InRelease");
        assert!(
            held == served,
            "{what}: apt still holds the promote's InRelease after the rollback right after \
             it:\n{}\n--- the repository's:\n{}",
            String::from_utf8_lossy(&held),
            String::from_utf8_lossy(&served)
        );
        let policy = server.apt_cache(&["policy", "hello-production"]);
        assert!(
            policy.contains("Candidate: 1.0-1"),
            "{what}: after the rollback, apt's candidate is not 1.0:\n{policy}"
        );
    }
    assert!(
        quick >= wanted,
        "{what}: only {quick} of {pairs} rollbacks started within the second of the promote \
         before them (a publication took most of a second on this machine), so the case was \
         not shown"
    );
}

#[test]
fn quick_publications_reach_apt_through_repo_serve() {
    let release = Release::new();
    let Some(server) = Server::new("quick-serve") else {
        return;
    };
    release.release("1.0", TO_PRODUCTION);
    release.release("1.1", &["staging"]);
    server.subscribe(&release.repository, "production", "hello");
    update(&server);
    every_quick_publication_reaches_apt(
        "repo serve",
        &server,
        &release.repository.directory,
        &release.repository.url(),
        &|arguments| {
            release.repository.run(arguments);
        },
    );
}

/// nginx serving a directory on a loopback port, as most users serve a published tree:
/// one process, its own configuration, logs and pid file in a temporary directory.
struct Nginx {
    child: Child,
    port: u16,
    _directory: tempfile::TempDir,
}

impl Nginx {
    fn serve(root: &Path) -> Nginx {
        let directory = tempfile::tempdir().expect("temporary directory");
        let here = directory.path().display().to_string();
        for _attempt in 0..5 {
            let port = free_port();
            // The defaults nginx documents: Last-Modified from the file's mtime and
            // `if_modified_since exact`. The worker runs as root: the tree is under a
            // temporary directory only root may enter.
            let config = format!(
                "daemon off;\nmaster_process off;\nuser root;\nworker_processes 1;\n\
                 pid {here}/nginx.pid;\nerror_log {here}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log {here}/access.log;\n\
                 client_body_temp_path {here}/body;\n  proxy_temp_path {here}/proxy;\n\
                 fastcgi_temp_path {here}/fastcgi;\n  uwsgi_temp_path {here}/uwsgi;\n\
                 scgi_temp_path {here}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    root {};\n\
                 location /private/ {{ deny all; }}\n  }}\n}}\n",
                root.display()
            );
            let file = directory.path().join("nginx.conf");
            fs::write(&file, config).expect("nginx.conf");
            let mut child = Command::new("/usr/sbin/nginx")
                .arg("-p")
                .arg(directory.path())
                .arg("-c")
                .arg(&file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx {
                        child,
                        port,
                        _directory: directory,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = fs::read_to_string(directory.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not serve {}:\n{log}", root.display());
    }
}

impl Nginx {
    /// The (path, status) of every request nginx answered so far, from its access log
    /// (`"GET /path HTTP/1.1" 200 ...`).
    fn requests(&self) -> Vec<(String, u16)> {
        let log = fs::read_to_string(self._directory.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once('"')?;
                let (request, rest) = rest.split_once('"')?;
                let path = request.split_whitespace().nth(1)?.to_string();
                let status = rest.split_whitespace().next()?.parse().ok()?;
                Some((path, status))
            })
            .collect()
    }
}

/// Points the server's `.sources` of `stage` (as `repo sources` wrote it, for the
/// repository's own server) at `url` instead.
fn sources_through(server: &Server, release: &Release, stage: &str, url: &str) {
    let text = server.subscribe(&release.repository, stage, "hello");
    let served = release.repository.url();
    let sources = text
        .split("\n\n")
        .find_map(|paragraph| {
            let (first, _) = paragraph.split_once('\n')?;
            let path = first.strip_prefix("# ")?;
            path.ends_with(".sources").then(|| path.to_string())
        })
        .expect("a .sources file");
    let file = server.path(&sources);
    let content = fs::read_to_string(&file).expect(".sources");
    let content = content.replace(&served, url);
    fs::File::create(&file)
        .and_then(|mut handle| handle.write_all(content.as_bytes()))
        .expect(".sources");
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn quick_publications_reach_apt_through_nginx() {
    if !can_run("apt through nginx", &[("nginx", "nginx-light")]) {
        return;
    }
    let release = Release::new();
    let Some(server) = Server::new("quick-nginx") else {
        return;
    };
    let nginx = Nginx::serve(&release.repository.directory);
    release.release("1.0", TO_PRODUCTION);
    release.release("1.1", &["staging"]);
    // The sources and key `repo sources` gives, for nginx's address instead.
    sources_through(
        &server,
        &release,
        "production",
        &format!("http://127.0.0.1:{}", nginx.port),
    );
    update(&server);
    every_quick_publication_reaches_apt(
        "nginx",
        &server,
        &release.repository.directory,
        &format!("http://127.0.0.1:{}", nginx.port),
        &|arguments| {
            release.repository.run(arguments);
        },
    );
}

/// The store scenario: a repository with an automatic target on `s3`.
fn through_store(s3: &S3, scenario: &str, extra: &str) {
    let Some(server) = Server::new(scenario) else {
        return;
    };
    let prefix = "quick";
    let repo = Repo::new(s3, prefix, &format!("automatic = true\n{extra}"));
    repo.add(0);
    repo.run(&["promote", "hello", "1.0", "--to", "staging"]);
    repo.run(&["promote", "hello", "1.0", "--to", "production"]);
    repo.add(1);
    repo.run(&["promote", "hello", "1.1", "--to", "staging"]);
    subscribe(&server, &repo, s3, prefix, "production");
    update(&server);
    let base = format!("{}/{prefix}", s3.http_base);
    every_quick_publication_reaches_apt(scenario, &server, &repo.root, &base, &|arguments| {
        repo.run(arguments);
    });
}

#[test]
fn quick_publications_reach_apt_through_a_moto_bucket() {
    let Some(s3) = S3::moto("quick publications through moto") else {
        return;
    };
    through_store(&s3, "quick-moto", "");
}

#[test]
fn quick_publications_reach_apt_through_a_garage_bucket() {
    let Some(s3) = S3::garage("quick publications through Garage") else {
        return;
    };
    // Garage ignores If-None-Match: one writer, by the target's opt-out.
    through_store(&s3, "quick-garage", "conditional_writes = false\n");
}

/// apt fetches a suite's indexes by hash under SHA512 alone, the only by-hash directory a
/// publication writes (the Release lists MD5Sum, SHA1 and SHA256 too): on bookworm's apt
/// and trixie's, through nginx's access log, nothing else under `dists/` is asked for,
/// nothing is missing, and a promote is then installed.
#[test]
fn apt_fetches_indexes_by_sha512_alone() {
    if !can_run("by-hash through nginx", &[("nginx", "nginx-light")]) {
        return;
    }
    let release = Release::new();
    let nginx = Nginx::serve(&release.repository.directory);
    let url = format!("http://127.0.0.1:{}", nginx.port);
    release.release("1.0", TO_PRODUCTION);
    release.release("1.1", &["staging"]);
    let indexes = release.repository.directory.join("dists/production/main");
    let mut by_hash_directories: Vec<String> = walkdir::WalkDir::new(&indexes)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_dir())
        .filter(|entry| {
            entry
                .path()
                .parent()
                .is_some_and(|parent| parent.ends_with("by-hash"))
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    by_hash_directories.sort();
    by_hash_directories.dedup();
    assert_eq!(by_hash_directories, ["SHA512"]);
    for codename in ["bookworm", "trixie"] {
        let Some(server) = Server::of_distribution(&format!("by-hash-{codename}"), codename) else {
            return;
        };
        sources_through(&server, &release, "production", &url);
        update(&server);
        release.promote("1.1", &["production"]);
        update(&server);
        server.apt_get_ok(&["install", "hello-production"]);
        assert_eq!(
            server.installed_version("hello-production").as_deref(),
            Some("1.1-1")
        );
        let requests = nginx.requests();
        let indexes: Vec<&(String, u16)> = requests
            .iter()
            .filter(|(path, _)| path.starts_with("/dists/"))
            .filter(|(path, _)| !path.ends_with("/InRelease"))
            .collect();
        assert!(
            indexes
                .iter()
                .any(|(path, _)| path.contains("/by-hash/SHA512/")),
            "{codename}: apt fetched no index by hash: {requests:?}"
        );
        let others: Vec<_> = indexes
            .iter()
            .filter(|(path, status)| !path.contains("/by-hash/SHA512/") || *status >= 400)
            .collect();
        assert!(
            others.is_empty(),
            "{codename}: apt asked for indexes other than by SHA512, or missed one: {others:?}"
        );
        // Back for the next distribution's client.
        release.repository.run(&["rollback", "hello", "production"]);
    }
}
