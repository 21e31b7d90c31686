//! `repo serve`: static HTTP of the published tree, loopback by default.
//!
//! Built on `tiny_http` (already a dependency, no async runtime): it parses requests,
//! keeps connections alive and answers pipelined requests in order; a small pool of
//! worker threads answers them. Only `dists/`, `pool/` and the public key files at the
//! root are served: never `state.db`, the configuration or the secret key. Every path is
//! checked twice: as requested, and after symlinks are resolved, so a link cannot lead
//! out of the served directories.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::report::Reporter;

/// Worker threads: enough for several apt clients, each with a few parallel downloads.
const WORKERS: usize = 8;

/// Serves `root` on `addr` (`127.0.0.1:8080`) until the process ends.
pub fn serve(root: &Path, addr: &str, reporter: &Reporter) -> Result<()> {
    let server = Server::bind(root, addr)?;
    if !server.local_addr().ip().is_loopback() {
        reporter.warn(format!(
            "serving on {}, which other hosts can reach; the default is 127.0.0.1",
            server.local_addr()
        ));
    }
    reporter.status(format!(
        "Serving {} at {} (Ctrl-C to stop)",
        root.display(),
        server.url()
    ));
    server.run();
    Ok(())
}

/// A bound HTTP server of one repository. Clones share the same server, so one thread
/// can [`run`](Server::run) it while another [`shutdown`](Server::shutdown)s it.
#[derive(Clone)]
pub struct Server {
    http: Arc<tiny_http::Server>,
    root: Arc<PathBuf>,
    address: SocketAddr,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Server")
            .field("root", &self.root)
            .field("address", &self.address)
            .finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) to serve the repository at `root`.
    pub fn bind(root: &Path, addr: &str) -> Result<Server> {
        let root = fs::canonicalize(root).with_context(|| {
            format!(
                "{}: the repository directory cannot be opened",
                root.display()
            )
        })?;
        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("cannot listen on {addr}"))?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|error| anyhow!("cannot listen on {addr}: {error}"))?;
        Ok(Server {
            http: Arc::new(http),
            root: Arc::new(root),
            address,
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The base URL of the repository (`http://127.0.0.1:8080/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Answers requests until [`shutdown`](Server::shutdown) is called.
    pub fn run(&self) {
        std::thread::scope(|scope| {
            for _ in 0..WORKERS {
                scope.spawn(|| self.work());
            }
        });
    }

    /// Runs the server on a thread of its own; it stops when the handle is dropped.
    pub fn spawn(&self) -> RunningServer {
        let server = self.clone();
        let thread = std::thread::spawn(move || server.run());
        RunningServer {
            server: self.clone(),
            thread: Some(thread),
        }
    }

    /// Makes [`run`](Server::run) return once the requests being answered are done.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in 0..WORKERS {
            self.http.unblock();
        }
    }

    fn work(&self) {
        while !self.stopping.load(Ordering::SeqCst) {
            // An error is either the wake-up of shutdown or a failed accept; neither
            // concerns the other connections.
            if let Ok(request) = self.http.recv() {
                // A client that went away mid-response is not the server's problem.
                let _ = answer(&self.root, request);
            }
        }
    }
}

/// A server running on its own thread; dropping it stops the server.
#[derive(Debug)]
pub struct RunningServer {
    server: Server,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// The base URL of the repository.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.server.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why a request gets no file.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Not something the server gives out (403).
    Forbidden,
    /// Allowed, but not there (404).
    Missing,
}

fn answer(root: &Path, request: Request) -> std::io::Result<()> {
    if !matches!(request.method(), Method::Get | Method::Head) {
        let response = Response::from_string("only GET and HEAD are allowed\n")
            .with_status_code(StatusCode(405));
        let response = with_header(response, "Allow", "GET, HEAD");
        return request.respond(response);
    }
    let (status, text) = match resolve(root, request.url()) {
        Ok(path) => match File::open(&path) {
            Ok(file) => {
                // Content-Length on every response, as apt expects, never chunked.
                let response = Response::from_file(file).with_chunked_threshold(usize::MAX);
                let response = with_header(response, "Content-Type", content_type(&path));
                return request.respond(response);
            }
            Err(_) => (404, "not found\n"),
        },
        Err(Refusal::Missing) => (404, "not found\n"),
        Err(Refusal::Forbidden) => (
            403,
            "forbidden: only dists/, pool/ and public keys are served\n",
        ),
    };
    request.respond(Response::from_string(text).with_status_code(StatusCode(status)))
}

/// Adds a header; both parts are ASCII constants of this file, which tiny_http accepts.
fn with_header<R: Read>(mut response: Response<R>, name: &str, value: &str) -> Response<R> {
    if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        response.add_header(header);
    }
    response
}

fn content_type(path: &Path) -> &'static str {
    let name = path.file_name().map(OsStr::as_bytes).unwrap_or_default();
    match path.extension().map(OsStr::as_bytes) {
        Some(b"deb") => "application/vnd.debian.binary-package",
        Some(b"gz") => "application/gzip",
        Some(b"xz") => "application/x-xz",
        Some(b"asc") => "application/pgp-keys",
        Some(b"gpg") if name == b"Release.gpg" => "application/pgp-signature",
        Some(b"gpg") => "application/pgp-keys",
        _ if matches!(name, b"Release" | b"InRelease" | b"Packages") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file a request URL names, if it may be served.
fn resolve(root: &Path, url: &str) -> Result<PathBuf, Refusal> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(path).ok_or(Refusal::Forbidden)?;
    let relative = decoded.strip_prefix(b"/").ok_or(Refusal::Forbidden)?;
    if relative.contains(&0) {
        return Err(Refusal::Forbidden);
    }
    let segments: Vec<&[u8]> = relative.split(|byte| *byte == b'/').collect();
    if !allowed(&segments) {
        return Err(Refusal::Forbidden);
    }
    let requested = root.join(Path::new(OsStr::from_bytes(relative)));
    let canonical = fs::canonicalize(&requested).map_err(|_| Refusal::Missing)?;
    // Symlinks resolved: the target must still be inside the root and allowed there.
    let inside = canonical
        .strip_prefix(root)
        .map_err(|_| Refusal::Forbidden)?;
    let mut resolved = Vec::new();
    for component in inside.components() {
        match component {
            Component::Normal(part) => resolved.push(part.as_bytes()),
            _ => return Err(Refusal::Forbidden),
        }
    }
    if !allowed(&resolved) {
        return Err(Refusal::Forbidden);
    }
    let metadata = fs::metadata(&canonical).map_err(|_| Refusal::Missing)?;
    if !metadata.is_file() {
        return Err(Refusal::Missing);
    }
    if resolved.len() == 1 && !is_public_key(&canonical) {
        return Err(Refusal::Forbidden);
    }
    Ok(canonical)
}

/// The path rule: `dists/...` or `pool/...`, or one `*.asc`/`*.gpg` file at the root;
/// no empty, `.`, `..` or hidden segment (temporary files of a publication start with a
/// dot).
fn allowed(segments: &[&[u8]]) -> bool {
    if segments
        .iter()
        .any(|segment| segment.is_empty() || segment.starts_with(b"."))
    {
        return false;
    }
    match segments {
        [name] => name.ends_with(b".asc") || name.ends_with(b".gpg"),
        [top, _, ..] => matches!(*top, b"dists" | b"pool"),
        [] => false,
    }
}

/// True when the file holds an OpenPGP public key (armored or binary), so that a secret
/// key someone saved at the root as `*.asc` is never served.
fn is_public_key(path: &Path) -> bool {
    let mut start = [0u8; 64];
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let Ok(read) = file.read(&mut start) else {
        return false;
    };
    let start = &start[..read];
    if start.starts_with(b"-----") {
        return start.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
    }
    // Binary: the first packet must be a public key (tag 6), in the new or old format.
    match start.first() {
        Some(&first) if first & 0x80 != 0 => {
            let tag = if first & 0x40 != 0 {
                first & 0x3f
            } else {
                (first >> 2) & 0x0f
            };
            tag == 6
        }
        _ => false,
    }
}

/// Decodes `%XX` escapes (apt escapes characters such as `+` and `~` in file names).
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_the_published_tree_is_allowed() {
        let root = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(root.path()).unwrap();
        fs::create_dir_all(root.join("dists/test")).unwrap();
        fs::write(root.join("dists/test/InRelease"), "x").unwrap();
        fs::write(root.join("state.db"), "secret").unwrap();
        assert_eq!(
            resolve(&root, "/dists/test/InRelease"),
            Ok(root.join("dists/test/InRelease"))
        );
        assert_eq!(
            resolve(&root, "/dists/test/In%52elease?x=1"),
            Ok(root.join("dists/test/InRelease"))
        );
        for refused in [
            "/state.db",
            "/../state.db",
            "/dists/../state.db",
            "/dists/%2e%2e/state.db",
            "/dists/test/../../state.db",
            "//state.db",
            "/dists",
            "/dists/test/.debstage-tmp-x",
            "dists/test/InRelease",
            "/dists/test/%00",
            "/dists/test/%zz",
        ] {
            assert_eq!(
                resolve(&root, refused),
                Err(Refusal::Forbidden),
                "{refused}"
            );
        }
        assert_eq!(resolve(&root, "/dists/test/Release"), Err(Refusal::Missing));
    }

    #[test]
    fn secret_keys_are_not_public_keys() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("key.asc");
        fs::write(&path, "-----BEGIN PGP PRIVATE KEY BLOCK-----\n").unwrap();
        assert!(!is_public_key(&path));
        fs::write(&path, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
        assert!(is_public_key(&path));
        fs::write(&path, [0x98, 0x33]).unwrap();
        assert!(is_public_key(&path));
        fs::write(&path, [0x94, 0x33]).unwrap();
        assert!(!is_public_key(&path));
        fs::write(&path, [0xc5, 0x33]).unwrap();
        assert!(!is_public_key(&path));
    }
}
