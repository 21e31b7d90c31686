//! `repo serve`: static HTTP of the published tree, loopback by default.
//!
//! One thread per connection, on std sockets (no async runtime, no HTTP crate: `repo
//! serve` needs GET and HEAD of files, and the protocol pieces it speaks live in
//! [`http`](super::http)). A client that stops reading holds only its own thread, and
//! is dropped once it makes no progress for the server's timeout; the number of
//! connections is capped, beyond which a client gets 503 at once. Responses carry
//! `Content-Length`, `Last-Modified` and `Accept-Ranges`, and answer `If-Modified-Since`
//! (304) and a single `Range` (206, 416).
//!
//! Only `dists/`, `pool/` and the public key files at the root are served: never
//! `state.db`, the configuration or the secret key, and no file that holds secret key
//! material wherever it lies. Every path is checked twice: as requested, and after
//! symlinks are resolved, so a link cannot lead out of the served directories; the file
//! is then opened beneath the root with no symlink allowed on the way (`openat2`), so a
//! link swapped in after the check is not followed either.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::http::{self, HeadError, RangeRequest};
use crate::report::Reporter;

/// How long a client may make no progress (sending its request, or taking the bytes of
/// a response) before it is dropped; also how long an idle kept-alive connection stays.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections served at once; each holds one thread. Far above what a fleet of apt
/// clients needs behind one repository host, far below what exhausts threads or files.
const MAX_CONNECTIONS: usize = 512;

/// Bytes of a file sent per write: each must be taken by the client within the timeout.
const CHUNK: usize = 64 * 1024;

/// How often an idle connection looks whether the server is stopping.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Stack of a connection thread: it holds a few small buffers (the file chunk is on the
/// heap), so the default 2 MiB would only reserve address space.
const STACK: usize = 256 * 1024;

/// Serves `root` on `addr` (`127.0.0.1:8080`) until the process ends.
pub(crate) fn serve(root: &Path, addr: &str, reporter: &Reporter) -> Result<()> {
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
pub(crate) struct Server {
    shared: Arc<Shared>,
    timeout: Duration,
}

/// What the accepting thread and every connection thread share.
struct Shared {
    listener: TcpListener,
    /// The canonical repository directory.
    root: PathBuf,
    /// The same directory, opened, for `openat2` beneath it.
    root_directory: OwnedFd,
    address: SocketAddr,
    stopping: AtomicBool,
    connections: AtomicUsize,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Server")
            .field("root", &self.shared.root)
            .field("address", &self.shared.address)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) to serve the repository at `root`.
    pub(crate) fn bind(root: &Path, addr: &str) -> Result<Server> {
        let cannot_open = || {
            format!(
                "{}: the repository directory cannot be opened",
                root.display()
            )
        };
        let canonical = fs::canonicalize(root).with_context(cannot_open)?;
        let root_directory = rustix::fs::open(
            &canonical,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(cannot_open)?;
        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Server {
            shared: Arc::new(Shared {
                listener,
                root: canonical,
                root_directory,
                address,
                stopping: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
            }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same server with another timeout: how long a client may make no progress
    /// before it is dropped ([`DEFAULT_TIMEOUT`] unless set).
    #[must_use]
    #[cfg(test)]
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Server {
        self.timeout = timeout;
        self
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.shared.address
    }

    /// The base URL of the repository (`http://127.0.0.1:8080/`).
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.shared.address)
    }

    /// Answers requests until [`shutdown`](Server::shutdown) is called, then waits for
    /// the connections to close.
    pub(crate) fn run(&self) {
        for stream in self.shared.listener.incoming() {
            if self.stopping() {
                break;
            }
            match stream {
                Ok(stream) => self.accept(stream),
                // Out of file descriptors or a connection reset before it was
                // accepted: neither concerns the other clients; pause so that a
                // persistent error does not spin.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        while self.shared.connections.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs the server on a thread of its own; it stops when the handle is dropped.
    #[cfg(test)]
    pub(crate) fn spawn(&self) -> RunningServer {
        let server = self.clone();
        let thread = std::thread::spawn(move || server.run());
        RunningServer {
            server: self.clone(),
            thread: Some(thread),
        }
    }

    /// Makes [`run`](Server::run) return soon: no connection is accepted any more, idle
    /// connections close within a quarter second and responses under way are cut off.
    #[cfg(test)]
    pub(crate) fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accepting thread with a connection of our own.
        let mut wake = self.shared.address;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    }

    fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    fn accept(&self, stream: TcpStream) {
        if self.shared.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            self.shared.connections.fetch_sub(1, Ordering::SeqCst);
            // A fresh socket's buffer takes these few bytes at once, so the accepting
            // thread does not wait on this client.
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let guard = Counted(Arc::clone(&self.shared));
        let server = self.clone();
        // When the thread cannot be made the closure is dropped with the guard and the
        // stream: the count goes down and the client sees the connection close.
        let _ = std::thread::Builder::new()
            .name("repo-serve".into())
            .stack_size(STACK)
            .spawn(move || {
                let _guard = guard;
                let _ = server.connection(stream);
            });
    }

    /// Answers the requests of one connection in order (pipelined ones too) until the
    /// client closes it, asks to, stalls or errs.
    fn connection(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buffer = Vec::with_capacity(4096);
        loop {
            let request = match self.read_head(&mut stream, &mut buffer)? {
                Head::Request(request) => request,
                Head::Closed => return Ok(()),
                Head::Error(status) => {
                    let mut response = Response::new(status, false);
                    response.text(reason(status));
                    self.send(&mut stream, &response, true)?;
                    linger(stream);
                    return Ok(());
                }
            };
            // A body is not read: the connection closes after the answer instead.
            let keep_alive = request.keep_alive && request.body == Some(0) && !self.stopping();
            let (response, file) = self.answer(&request, keep_alive);
            let head_only = request.method == "HEAD";
            match file {
                Some((file, start, end)) if !head_only => {
                    self.send(&mut stream, &response, true)?;
                    self.send_file(&mut stream, &file, start, end)?;
                }
                _ => self.send(&mut stream, &response, !head_only)?,
            }
            if !keep_alive {
                linger(stream);
                return Ok(());
            }
        }
    }

    /// Reads the next request head; the bytes after it stay in `buffer`.
    fn read_head(&self, stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Head> {
        let waiting_since = Instant::now();
        let mut started = None;
        let mut chunk = [0u8; 4096];
        loop {
            // Empty lines before a request line are to be ignored (RFC 9112).
            let blank = buffer
                .iter()
                .take_while(|byte| matches!(byte, b'\r' | b'\n'))
                .count();
            buffer.drain(..blank);
            if !buffer.is_empty() && started.is_none() {
                started = Some(Instant::now());
            }
            if let Some(end) = http::head_end(buffer) {
                if end > http::MAX_HEAD {
                    return Ok(Head::Error(431));
                }
                let parsed = http::parse_head(&buffer[..end]);
                buffer.drain(..end);
                return Ok(match parsed {
                    Ok(request) => Head::Request(request),
                    Err(HeadError::Bad) => Head::Error(400),
                    Err(HeadError::Version) => Head::Error(505),
                    Err(HeadError::TooLarge) => Head::Error(431),
                });
            }
            if buffer.len() > http::MAX_HEAD {
                return Ok(Head::Error(431));
            }
            // The whole head must arrive within the timeout of its first byte, so a
            // client that trickles it byte by byte is dropped too.
            let deadline = started.unwrap_or(waiting_since) + self.timeout;
            let Some(left) = http::remaining(deadline) else {
                return Ok(if started.is_some() {
                    Head::Error(408)
                } else {
                    Head::Closed
                });
            };
            if started.is_none() && self.stopping() {
                return Ok(Head::Closed);
            }
            stream.set_read_timeout(Some(left.min(IDLE_POLL)))?;
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(Head::Closed),
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// The response to a request, and the part of the file that follows it, if any.
    fn answer(
        &self,
        request: &http::Request,
        keep_alive: bool,
    ) -> (Response, Option<(File, u64, u64)>) {
        if !matches!(request.method.as_str(), "GET" | "HEAD") {
            let mut response = Response::new(405, keep_alive);
            response.header("Allow", "GET, HEAD".into());
            response.text("only GET and HEAD are allowed\n");
            return (response, None);
        }
        let root = &self.shared.root;
        let opened = resolve(root, origin_form(&request.target)).and_then(|path| self.open(&path));
        let (file, path) = match opened {
            Ok(opened) => opened,
            Err(refusal) => {
                let (status, text) = match refusal {
                    Refusal::Missing => (404, "not found\n"),
                    Refusal::Forbidden => (
                        403,
                        "forbidden: only dists/, pool/ and public keys are served\n",
                    ),
                };
                let mut response = Response::new(status, keep_alive);
                response.text(text);
                return (response, None);
            }
        };
        let Ok(metadata) = file.metadata() else {
            let mut response = Response::new(404, keep_alive);
            response.text("not found\n");
            return (response, None);
        };
        let length = metadata.len();
        let now = http::seconds(SystemTime::now());
        let modified = metadata.modified().ok().map(http::seconds);
        // The date handed out stands for the bytes sent. A file that changed in the last
        // two seconds may change again within its second, and a date cannot tell the two
        // apart: such a file is dated two seconds back, so that the next conditional
        // request of a client that got it finds a newer file and fetches it whole. Every
        // answer carries a date, because a client that gets none (apt) dates its copy by
        // its own clock and asks with that instead. The margin covers the filesystem's
        // coarse clock, which runs a few milliseconds behind.
        let settled = now.saturating_sub(2);
        let validator = modified.map(|modified| modified.min(settled));

        let mut response = Response::new(200, keep_alive);
        // The first bytes tell a by-hash file's kind; read in place, the offset unmoved.
        let mut start = [0u8; 6];
        let read = std::os::unix::fs::FileExt::read_at(&file, &mut start, 0).unwrap_or(0);
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy();
        response.header(
            "Content-Type",
            http::content_type(&relative, &start[..read]).into(),
        );
        response.header("Accept-Ranges", "bytes".into());
        if let Some(validator) = validator {
            response.header("Last-Modified", http::format_date(validator));
        }
        // If-None-Match would take precedence, and no entity tag is given out, so with
        // it present the date is not looked at (RFC 9110, 13.1.3). A date later than
        // now came from no answer of this server, and is ignored as RFC 2616 did.
        let since = request
            .field("If-Modified-Since")
            .filter(|_| request.field("If-None-Match").is_none())
            .and_then(http::parse_date)
            .filter(|since| *since <= now);
        if let (Some(modified), Some(since)) = (modified, since) {
            if modified <= since {
                response.status = 304;
                return (response, None);
            }
        }
        // If-Range with a date honours the range only for that very version, and only a
        // settled file's date is exact enough for it (RFC 9110, 13.1.5); an entity tag
        // never matches since none is given out.
        let range_applies = match request.field("If-Range") {
            None => true,
            Some(value) => {
                modified.is_some_and(|modified| modified <= settled)
                    && http::parse_date(value) == modified
            }
        };
        let range = match request.field("Range") {
            Some(value) if range_applies => http::parse_range(value, length),
            _ => RangeRequest::Whole,
        };
        match range {
            RangeRequest::Whole => {
                response.length = length;
                (response, Some((file, 0, length)))
            }
            RangeRequest::Part { start, end } => {
                response.status = 206;
                response.header(
                    "Content-Range",
                    format!("bytes {start}-{}/{length}", end - 1),
                );
                response.length = end - start;
                (response, Some((file, start, end)))
            }
            RangeRequest::Unsatisfiable => {
                let mut response = Response::new(416, keep_alive);
                response.header("Content-Range", format!("bytes */{length}"));
                response.text("range not satisfiable\n");
                (response, None)
            }
        }
    }

    /// Opens an allowed path beneath the root, following no symlink on the way (the
    /// path is already resolved), and refuses anything but a regular file without
    /// secret key material.
    fn open(&self, path: &Path) -> Result<(File, PathBuf), Refusal> {
        let inside = path
            .strip_prefix(&self.shared.root)
            .map_err(|_| Refusal::Forbidden)?;
        // NONBLOCK: opening a FIFO put there must not hang the connection.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        let opened = rustix::fs::openat2(
            &self.shared.root_directory,
            inside,
            flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        let file = match opened {
            Ok(descriptor) => File::from(descriptor),
            // Kernels before 5.6: the path was checked just before; open it without
            // following a final link.
            Err(rustix::io::Errno::NOSYS) => fs::OpenOptions::new()
                .read(true)
                .custom_flags(
                    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
                )
                .open(path)
                .map_err(|_| Refusal::Missing)?,
            // A link appeared on the way since the path was resolved.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::XDEV) => {
                return Err(Refusal::Forbidden)
            }
            Err(_) => return Err(Refusal::Missing),
        };
        let metadata = file.metadata().map_err(|_| Refusal::Missing)?;
        if !metadata.is_file() {
            return Err(Refusal::Missing);
        }
        let mut start = [0u8; SNIFF];
        let read = read_start(&file, &mut start).map_err(|_| Refusal::Missing)?;
        let start = &start[..read];
        if holds_secret_key(start) {
            return Err(Refusal::Forbidden);
        }
        if inside.components().count() == 1 && !is_public_key(start) {
            return Err(Refusal::Forbidden);
        }
        Ok((file, path.to_path_buf()))
    }

    /// Writes a response head, and its text body unless `with_body` is false (HEAD).
    fn send(&self, stream: &mut TcpStream, response: &Response, with_body: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\n",
            response.status,
            reason(response.status)
        );
        head.push_str(&format!(
            "Date: {}\r\n",
            http::format_date(http::seconds(SystemTime::now()))
        ));
        for (name, value) in &response.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        // A 304 describes the file it stands for and has no body of its own.
        if response.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", response.length));
        }
        head.push_str(if response.keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut bytes = head.into_bytes();
        if with_body {
            bytes.extend_from_slice(response.body.as_bytes());
        }
        self.write_within(stream, &bytes)
    }

    /// Sends bytes `start..end` of `file`, a chunk at a time.
    fn send_file(
        &self,
        stream: &mut TcpStream,
        file: &File,
        start: u64,
        end: u64,
    ) -> io::Result<()> {
        let mut buffer = vec![0u8; CHUNK];
        let mut position = start;
        while position < end {
            if self.stopping() {
                return Err(io::Error::new(ErrorKind::Interrupted, "server stopping"));
            }
            let want = usize::try_from(end - position).map_or(CHUNK, |left| left.min(CHUNK));
            let read = file.read_at(&mut buffer[..want], position)?;
            if read == 0 {
                // The file shrank under us; the promised length cannot be kept, so the
                // client must see the connection end early rather than wrong bytes.
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "file shrank"));
            }
            self.write_within(stream, &buffer[..read])?;
            position += read as u64;
        }
        Ok(())
    }

    /// Writes all of `bytes` (at most a chunk) within the timeout, or fails: the
    /// deadline covers the whole chunk, so a client that takes a byte now and then is
    /// dropped as well as one that takes none.
    fn write_within(&self, stream: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + self.timeout;
        while !bytes.is_empty() {
            if self.stopping() {
                return Err(io::Error::new(ErrorKind::Interrupted, "server stopping"));
            }
            let Some(left) = http::remaining(deadline) else {
                return Err(io::Error::new(ErrorKind::TimedOut, "client stalled"));
            };
            // Short waits, so that a shutdown is seen while a client stalls.
            stream.set_write_timeout(Some(left.min(IDLE_POLL)))?;
            match stream.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(written) => bytes = &bytes[written..],
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// Closes a connection after its last response without losing that response: closing
/// a socket with unread request bytes in it sends a reset, which can destroy the
/// response before the client reads it. So the sending side is shut first, and what the
/// client still sends is read and dropped until it closes, for at most a moment.
fn linger(mut stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut discard = [0u8; 4096];
    while let Some(left) = http::remaining(deadline) {
        if stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut discard) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Keeps the count of open connections: made when one is accepted, dropped when it ends.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What reading a request head gave.
enum Head {
    Request(http::Request),
    /// The client closed the connection, or left it idle, between requests.
    Closed,
    /// A status to answer with before closing the connection.
    Error(u16),
}

/// A response head and a short text body (the body of a file is sent after it).
struct Response {
    status: u16,
    keep_alive: bool,
    headers: Vec<(&'static str, String)>,
    length: u64,
    body: &'static str,
}

impl Response {
    fn new(status: u16, keep_alive: bool) -> Response {
        Response {
            status,
            keep_alive,
            headers: Vec::new(),
            length: 0,
            body: "",
        }
    }

    fn header(&mut self, name: &'static str, value: String) {
        self.headers.push((name, value));
    }

    fn text(&mut self, body: &'static str) {
        self.header("Content-Type", "text/plain; charset=utf-8".into());
        self.length = body.len() as u64;
        self.body = body;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A server running on its own thread; dropping it stops the server (tests).
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct RunningServer {
    server: Server,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl RunningServer {
    /// The base URL of the repository.
    pub(crate) fn url(&self) -> String {
        self.server.url()
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

#[cfg(test)]
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

/// The path of a request target: an absolute-form target (`http://host/path`, as sent
/// to a proxy) is reduced to its path.
fn origin_form(target: &str) -> &str {
    match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => target,
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

/// Bytes read from the start of a file to recognise keys.
const SNIFF: usize = 4096;

/// Reads up to `buffer.len()` bytes from the start of `file`.
fn read_start(file: &File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// True when the start of a file looks like secret key material: an armored OpenPGP
/// secret key (the armor line may follow other text, as gpg reads it), a binary one
/// (its first packet a secret key or subkey, tags 5 and 7, in the old or new packet
/// format), or a key file of gpg-agent (`private-keys-v1.d`). None of the files a
/// publication writes starts like that: `.deb` files start with `!<arch>`, indexes with
/// a field name or a compression magic, and Packages' description lines with a space.
fn holds_secret_key(start: &[u8]) -> bool {
    let armored = start.split(|byte| *byte == b'\n').any(|line| {
        line.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
            || line.starts_with(b"-----BEGIN PGP SECRET KEY BLOCK-----")
    });
    let agent = start.starts_with(b"(21:protected-private-key")
        || start.starts_with(b"(11:private-key")
        || start.split(|byte| *byte == b'\n').any(|line| {
            line.starts_with(b"Key: (") && memchr::memmem::find(line, b"private-key").is_some()
        });
    armored || agent || matches!(packet_tag(start), Some(5 | 7))
}

/// The tag of the OpenPGP packet a file starts with, if it starts with one.
fn packet_tag(start: &[u8]) -> Option<u8> {
    match start.first() {
        Some(&first) if first & 0x80 != 0 => Some(if first & 0x40 != 0 {
            first & 0x3f
        } else {
            (first >> 2) & 0x0f
        }),
        _ => None,
    }
}

/// True when the start of a file is an OpenPGP public key (armored or binary): the only
/// files served at the root, so that nothing else saved there as `*.asc` leaks.
fn is_public_key(start: &[u8]) -> bool {
    if start.starts_with(b"-----") {
        return start.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
    }
    // Binary: the first packet must be a public key (tag 6).
    packet_tag(start) == Some(6)
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
    fn secret_keys_are_recognised() {
        assert!(!is_public_key(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n"));
        assert!(is_public_key(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"));
        assert!(is_public_key(&[0x98, 0x33]));
        assert!(!is_public_key(&[0x94, 0x33]));
        assert!(!is_public_key(&[0xc5, 0x33]));
        for secret in [
            &b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxVgE"[..],
            b"Comment: saved by hand\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
            &[0x94, 0x33],
            &[0x95, 0x01, 0x00],
            &[0x9d, 0x33],
            &[0xc5, 0x33],
            &[0xc7, 0x33],
            b"(21:protected-private-key(3:ecc",
            b"Created: 20240101T000000\nKey: (protected-private-key (ecc\n",
        ] {
            assert!(holds_secret_key(secret), "{secret:?}");
        }
        for public in [
            &b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"[..],
            b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n",
            b"!<arch>\ndebian-binary   ",
            b"Package: hello\nDescription: x\n -----BEGIN PGP PRIVATE KEY BLOCK-----\n",
            &[0x1f, 0x8b, 0x08],
            &[0xfd, b'7', b'z', b'X', b'Z', 0],
            &[0x98, 0x33],
            b"",
        ] {
            assert!(!holds_secret_key(public), "{public:?}");
        }
    }
}
