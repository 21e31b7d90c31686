//! The answer of `repo serve` to one request: GET and HEAD of a file the policy allows,
//! with `Content-Type`, `Last-Modified` (a fresh file dated back, see [`answer`]),
//! `If-Modified-Since` (304), a single `Range` (206, 416) and `If-Range`. Opening a file
//! (resolving its path, reading its start) runs on tokio's blocking threads; its bytes
//! follow as a body read a chunk at a time.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use ::http::header::{self, HeaderMap, HeaderValue};
use ::http::{Method, Request, Response, StatusCode, Version};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};

use super::limits::Tracker;
use super::policy::{Opened, Refusal, ServedTree};
use crate::repo::http::{self, RangeRequest};

/// Bytes of a file read and sent at a time.
const CHUNK: usize = 32 * 1024;

/// The body of a response: a short text, or part of a file. Dropping it (its end sent,
/// or the connection gone) tells the connection's tracker the response has ended.
#[derive(Debug)]
pub(super) struct Payload {
    inner: Either<Full<Bytes>, FileChunks>,
    tracker: Arc<Tracker>,
}

impl Payload {
    fn text(text: &'static str, tracker: &Arc<Tracker>) -> Payload {
        Payload {
            inner: Either::Left(Full::new(Bytes::from_static(text.as_bytes()))),
            tracker: Arc::clone(tracker),
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.tracker.response_ended();
    }
}

/// Bytes `position..end` of a file, a chunk at a time, read when hyper has room for
/// them (so a slow reader holds about one chunk). Read in place, as nginx does unless
/// told otherwise: a published tree is read from the page cache nearly always, and a
/// hop to a blocking thread per chunk cost the server more memory than it saved
/// (bench/NOTES.md, repo serve on hyper).
#[derive(Debug)]
struct FileChunks {
    file: File,
    position: u64,
    end: u64,
}

impl Body for FileChunks {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.position >= self.end {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.end - self.position).map_or(CHUNK, |left| left.min(CHUNK));
        let mut buffer = vec![0u8; want];
        let read = match read_at_least_once(&self.file, &mut buffer, self.position) {
            Ok(read) => read,
            Err(error) => return Poll::Ready(Some(Err(error))),
        };
        if read == 0 {
            // The file shrank under us; the promised length cannot be kept, so the
            // client must see the connection end early rather than wrong bytes.
            return Poll::Ready(Some(Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "file shrank while it was sent",
            ))));
        }
        buffer.truncate(read);
        self.position += read as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buffer)))))
    }

    fn is_end_stream(&self) -> bool {
        self.position >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.position))
    }
}

/// One `pread`, retried when interrupted.
fn read_at_least_once(file: &File, buffer: &mut [u8], position: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buffer, position) {
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// A response under construction.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
}

impl Reply {
    fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
        }
    }

    fn header(&mut self, name: header::HeaderName, value: &str) {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
    }

    fn finish(self, length: Option<u64>, payload: Payload) -> Response<Payload> {
        let mut response = Response::new(payload);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if let Some(length) = length {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        response
    }

    /// The response with a short text body (none for HEAD).
    fn text(mut self, text: &'static str, head: bool, tracker: &Arc<Tracker>) -> Response<Payload> {
        self.header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        let body = if head { "" } else { text };
        self.finish(Some(text.len() as u64), Payload::text(body, tracker))
    }
}

/// Answers one request of a connection. `stopping` asks the client to close the
/// connection after this answer.
pub(super) async fn answer<B>(
    tree: &Arc<ServedTree>,
    tracker: &Arc<Tracker>,
    request: Request<B>,
    stopping: bool,
) -> Response<Payload> {
    tracker.request();
    let head = request.method() == Method::HEAD;
    let mut response = respond(tree, tracker, &request, head).await;
    // A body is not read: the connection closes after the answer instead. An HTTP/1.0
    // client keeps its connection only when it asks to.
    let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    let asked = |option: &str| {
        request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|given| given.trim().eq_ignore_ascii_case(option))
    };
    let old_without_keep_alive = request.version() == Version::HTTP_10 && !asked("keep-alive");
    if has_body || stopping || old_without_keep_alive || asked("close") {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn respond<B>(
    tree: &Arc<ServedTree>,
    tracker: &Arc<Tracker>,
    request: &Request<B>,
    head: bool,
) -> Response<Payload> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut reply = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
        reply.header(header::ALLOW, "GET, HEAD");
        return reply.text("only GET and HEAD are allowed\n", head, tracker);
    }
    let path = request.uri().path().to_string();
    let opening = Arc::clone(tree);
    let opened = tokio::task::spawn_blocking(move || opening.open(&path))
        .await
        .unwrap_or(Err(Refusal::Missing));
    let opened = match opened {
        Ok(opened) => opened,
        Err(Refusal::Missing) => {
            return Reply::new(StatusCode::NOT_FOUND).text("not found\n", head, tracker)
        }
        Err(Refusal::Forbidden) => {
            return Reply::new(StatusCode::FORBIDDEN).text(
                "forbidden: only dists/, pool/ and public keys are served\n",
                head,
                tracker,
            )
        }
    };
    file_response(opened, request.headers(), head, tracker)
}

/// The response for an allowed, opened file.
fn file_response(
    opened: Opened,
    headers: &HeaderMap,
    head: bool,
    tracker: &Arc<Tracker>,
) -> Response<Payload> {
    let Ok(metadata) = opened.file.metadata() else {
        return Reply::new(StatusCode::NOT_FOUND).text("not found\n", head, tracker);
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

    let mut reply = Reply::new(StatusCode::OK);
    reply.header(
        header::CONTENT_TYPE,
        http::content_type(&opened.relative, &opened.start),
    );
    reply.header(header::ACCEPT_RANGES, "bytes");
    if let Some(validator) = validator {
        reply.header(header::LAST_MODIFIED, &http::format_date(validator));
    }
    let field = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    // If-None-Match would take precedence, and no entity tag is given out, so with it
    // present the date is not looked at (RFC 9110, 13.1.3). A date later than now came
    // from no answer of this server, and is ignored as RFC 2616 did.
    let since = field(header::IF_MODIFIED_SINCE)
        .filter(|_| !headers.contains_key(header::IF_NONE_MATCH))
        .and_then(http::parse_date)
        .filter(|since| *since <= now);
    if let (Some(modified), Some(since)) = (modified, since) {
        if modified <= since {
            reply.status = StatusCode::NOT_MODIFIED;
            return reply.finish(None, Payload::text("", tracker));
        }
    }
    // If-Range with a date honours the range only for that very version, and only a
    // settled file's date is exact enough for it (RFC 9110, 13.1.5); an entity tag
    // never matches since none is given out.
    let range_applies = match field(header::IF_RANGE) {
        None => true,
        Some(value) => {
            modified.is_some_and(|modified| modified <= settled)
                && http::parse_date(value) == modified
        }
    };
    let range = match field(header::RANGE) {
        Some(value) if range_applies => http::parse_range(value, length),
        _ => RangeRequest::Whole,
    };
    let (start, end) = match range {
        RangeRequest::Whole => (0, length),
        RangeRequest::Part { start, end } => {
            reply.status = StatusCode::PARTIAL_CONTENT;
            reply.header(
                header::CONTENT_RANGE,
                &format!("bytes {start}-{}/{length}", end - 1),
            );
            (start, end)
        }
        RangeRequest::Unsatisfiable => {
            let mut reply = Reply::new(StatusCode::RANGE_NOT_SATISFIABLE);
            reply.header(header::CONTENT_RANGE, &format!("bytes */{length}"));
            return reply.text("range not satisfiable\n", head, tracker);
        }
    };
    let body = if head {
        Either::Left(Full::new(Bytes::new()))
    } else {
        Either::Right(FileChunks {
            file: opened.file,
            position: start,
            end,
        })
    };
    reply.finish(
        Some(end - start),
        Payload {
            inner: body,
            tracker: Arc::clone(tracker),
        },
    )
}
