//! `repo serve`: static HTTP of the published tree, loopback by default.
//!
//! HTTP/1.1 comes from hyper, on a small tokio runtime; what is ours lives beside this
//! file: which files are given out and how they are opened ([`policy`]), the answer to a
//! request ([`answer`]), and the connections' limits and timeouts ([`limits`]). This
//! file holds the sockets: accepting, admitting a connection under the limits, running
//! it until it ends, stalls, idles too long or must give way, and closing it without
//! losing its last response.

mod answer;
mod limits;
mod policy;

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use self::answer::Payload;
use self::limits::{Limits, Phase, Table, Tracker};
use self::policy::ServedTree;
use crate::report::Reporter;

/// How long a client may make no progress (sending its request head, or taking
/// [`limits::PROGRESS`] bytes of a response) before it is dropped; also how long an idle
/// kept-alive connection stays.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections open at once. Each costs a socket and a few KiB; the bound keeps the
/// server within its file descriptors (it is lowered to fit `RLIMIT_NOFILE`).
const MAX_CONNECTIONS: usize = 1024;

/// Connections open at once from one client address: far more than apt opens (one per
/// host), room for a fleet behind one NAT address, and a quarter of the total, so that
/// one address cannot hold every connection even while all of its own are busy.
const MAX_PER_CLIENT: usize = 256;

/// File descriptors kept free for the files being served and the rest of the process.
const SPARE_DESCRIPTORS: usize = 64;

/// Largest request head (and read buffer) of a connection: apt's requests are a few
/// hundred bytes; a larger head gets 431. It also bounds what a response may hold
/// buffered before the client takes it, so a slow reader holds about one chunk.
const MAX_HEAD: usize = 16 * 1024;

/// Connections the kernel completes before the server accepts them. A full queue drops
/// new connections' first packet, and the client tries again only a second later: a
/// client opening sockets in a burst must not cost the others that second.
const BACKLOG: i32 = 1024;

/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Threads of the runtime that runs the connections.
const WORKERS: usize = 2;

/// Blocking threads of the runtime at most, which open files (path resolution, the
/// first bytes); a file's body is read in place (see `answer.rs`).
const BLOCKING_THREADS: usize = 4;

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
    server.run()
}

/// A bound HTTP server of one repository. Clones share the same server, so one thread
/// can [`run`](Server::run) it while another [`shutdown`](Server::shutdown)s it.
#[derive(Clone)]
pub(crate) struct Server {
    shared: Arc<Shared>,
    timeout: Duration,
    limits: Limits,
}

/// What the accepting loop and every connection share.
struct Shared {
    listener: TcpListener,
    tree: Arc<ServedTree>,
    address: SocketAddr,
    /// Set to true once to stop the server.
    stopping: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Server")
            .field("root", &self.shared.tree.root())
            .field("address", &self.shared.address)
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) to serve the repository at `root`.
    pub(crate) fn bind(root: &Path, addr: &str) -> Result<Server> {
        let tree = ServedTree::open_root(root)?;
        let listener = listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let address = listener
            .local_addr()
            .with_context(|| format!("cannot listen on {addr}"))?;
        // Within the descriptors the process may open, whatever the limit is.
        let descriptors = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .and_then(|limit| usize::try_from(limit).ok())
            .unwrap_or(usize::MAX);
        let total = MAX_CONNECTIONS.min(descriptors.saturating_sub(SPARE_DESCRIPTORS).max(16));
        Ok(Server {
            shared: Arc::new(Shared {
                listener,
                tree: Arc::new(tree),
                address,
                stopping: watch::Sender::new(false),
            }),
            timeout: DEFAULT_TIMEOUT,
            limits: Limits {
                total,
                per_client: MAX_PER_CLIENT.min(total),
            },
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

    /// The same server with other connection limits: in all, and per client address.
    #[must_use]
    #[cfg(test)]
    pub(crate) fn with_limits(mut self, total: usize, per_client: usize) -> Server {
        self.limits = Limits { total, per_client };
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

    /// Answers requests until [`shutdown`](Server::shutdown) is called, then closes
    /// every connection.
    pub(crate) fn run(&self) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("repo-serve")
            .enable_io()
            .enable_time()
            .build()
            .context("cannot start the HTTP server's runtime")?;
        let table = Arc::new(Table::new(self.limits));
        runtime.block_on(self.accept_loop(&table))?;
        // Every connection saw the stop; give them a moment to close their sockets.
        let deadline = Instant::now() + Duration::from_secs(2);
        while table.open() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        runtime.shutdown_timeout(Duration::from_millis(100));
        Ok(())
    }

    async fn accept_loop(&self, table: &Arc<Table>) -> Result<()> {
        let listener = self
            .shared
            .listener
            .try_clone()
            .and_then(tokio::net::TcpListener::from_std)
            .with_context(|| format!("cannot listen on {}", self.shared.address))?;
        let mut stopping = self.shared.stopping.subscribe();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopping.wait_for(|stop| *stop) => return Ok(()),
            };
            match accepted {
                Ok((stream, peer)) => match table.admit(peer.ip()) {
                    Some(tracker) => {
                        let connection = Connection {
                            shared: Arc::clone(&self.shared),
                            table: Arc::clone(table),
                            tracker,
                            timeout: self.timeout,
                        };
                        tokio::spawn(connection.run(stream));
                    }
                    None => refuse(stream),
                },
                // Out of file descriptors or a connection reset before it was
                // accepted: neither concerns the other clients; pause so that a
                // persistent error does not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Runs the server on a thread of its own; it stops when the handle is dropped.
    #[cfg(test)]
    pub(crate) fn spawn(&self) -> RunningServer {
        let server = self.clone();
        let thread = std::thread::spawn(move || {
            let _ = server.run();
        });
        RunningServer {
            server: self.clone(),
            thread: Some(thread),
        }
    }

    /// Makes [`run`](Server::run) return soon: no connection is accepted any more, and
    /// every connection closes, responses under way cut off.
    #[cfg(test)]
    pub(crate) fn shutdown(&self) {
        self.shared.stopping.send_replace(true);
    }
}

/// A non-blocking listening socket on the first address `addr` resolves to that can be
/// bound, with room for [`BACKLOG`] connections not yet accepted.
fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on");
    for address in addr.to_socket_addrs()? {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
        // As std's bind does: a restarted server gets its port back at once.
        socket.set_reuse_address(true)?;
        let bound = socket
            .bind(&address.into())
            .and_then(|()| socket.listen(BACKLOG))
            .and_then(|()| socket.set_nonblocking(true));
        match bound {
            Ok(()) => return Ok(socket.into()),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Answers a connection beyond the limits with 503 and closes it. A fresh socket's
/// buffer takes these few bytes at once, so nothing waits on this client.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
}

/// One accepted connection and what it needs to run.
struct Connection {
    shared: Arc<Shared>,
    table: Arc<Table>,
    tracker: Arc<Tracker>,
    timeout: Duration,
}

/// How a connection's HTTP exchange ended.
enum End {
    /// hyper is done with it (the client closed, asked to close, or sent garbage that
    /// got its 4xx): its last response is out.
    Done,
    /// The table closed it to make room, or the server is stopping.
    Closed,
    /// No progress within the timeout, in the given phase.
    Expired(Phase),
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let mut stopping = self.shared.stopping.subscribe();
        let service = Files {
            tree: Arc::clone(&self.shared.tree),
            tracker: Arc::clone(&self.tracker),
            stopping: stopping.clone(),
        };
        let io = TokioIo::new(Watched {
            stream,
            tracker: Arc::clone(&self.tracker),
        });
        let mut connection = http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            // Our own timeouts (see limits), which also cover idle and stalled clients.
            .header_read_timeout(None)
            // Field names as the hand-written server sent them (`Content-Length`).
            .title_case_headers(true)
            .serve_connection(io, service);
        let idle = self.timeout;
        let end = loop {
            let deadline = self.tracker.deadline(self.timeout, idle);
            tokio::select! {
                done = std::future::poll_fn(|context| connection.poll_without_shutdown(context)) => {
                    break match done {
                        Ok(()) => End::Done,
                        // A request hyper could not parse got its status already
                        // (400, 431); the connection closes like any other.
                        Err(error) if error.is_parse() || error.is_parse_too_large() => End::Done,
                        Err(_) => End::Closed,
                    };
                }
                () = self.tracker.closed() => break End::Closed,
                _ = stopping.wait_for(|stop| *stop) => break End::Closed,
                () = tokio::time::sleep_until(deadline.into()) => {
                    if self.tracker.deadline(self.timeout, idle) <= Instant::now() {
                        break End::Expired(self.tracker.phase());
                    }
                }
            }
        };
        match end {
            End::Done => {
                let stream = connection.into_parts().io.into_inner().stream;
                linger(stream, &mut stopping).await;
            }
            End::Expired(Phase::Head) => {
                // A client that did not send its head in time is told so.
                let mut stream = connection.into_parts().io.into_inner().stream;
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                )
                .await;
                linger(stream, &mut stopping).await;
            }
            // Idle, stalled, made room or stopping: the socket closes as it is dropped.
            End::Expired(_) | End::Closed => drop(connection),
        }
        self.table.leave(&self.tracker);
    }
}

/// Closes a connection after its last response without losing that response: closing
/// a socket with unread request bytes in it sends a reset, which can destroy the
/// response before the client reads it. So the sending side is shut first, and what the
/// client still sends is read and dropped until it closes, for at most a moment.
async fn linger(mut stream: TcpStream, stopping: &mut watch::Receiver<bool>) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut discard = [0u8; 4096];
        while matches!(stream.read(&mut discard).await, Ok(read) if read > 0) {}
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, drain) => {}
        _ = stopping.wait_for(|stop| *stop) => {}
    }
}

/// The service hyper calls for each request of a connection.
struct Files {
    tree: Arc<ServedTree>,
    tracker: Arc<Tracker>,
    stopping: watch::Receiver<bool>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Files {
    type Response = hyper::Response<Payload>;
    type Error = std::convert::Infallible;
    // Boxed, so that the connection is Unpin and can be taken apart when it ends.
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let tree = Arc::clone(&self.tree);
        let tracker = Arc::clone(&self.tracker);
        let stopping = *self.stopping.borrow();
        Box::pin(async move { Ok(answer::answer(&tree, &tracker, request, stopping).await) })
    }
}

/// A connection's socket, telling its tracker what passes through it.
struct Watched {
    stream: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(context, buffer);
        if buffer.filled().len() > before {
            this.tracker.received();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(context, bytes);
        if let Poll::Ready(Ok(written)) = result {
            this.tracker.sent(written);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(context, buffers);
        if let Poll::Ready(Ok(written)) = result {
            this.tracker.sent(written);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_flush(context);
        // hyper flushes the socket once its own buffer is written out.
        if let Poll::Ready(Ok(())) = result {
            this.tracker.flushed();
        }
        result
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
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
