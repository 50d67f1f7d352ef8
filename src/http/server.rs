//! The HTTP server's shell: accepts connections and serves the router over
//! HTTP/1.1, with the defences a public listener needs (`[http]` limits):
//!
//! - **Slow clients (slowloris).** A request's headers must arrive within
//!   `header_timeout` (which also ends a kept-alive connection idle that
//!   long), and its body within `body_timeout` of the headers; otherwise
//!   the connection is closed (a late body gets a 408 first).
//! - **Connections.** At most `max_connections` open, and at most
//!   `max_connections_per_address` from one client address (trusted
//!   proxies are exempt); a connection over a cap is closed at once,
//!   unread.
//! - **Request rates.** A token bucket per client address on every route,
//!   and a stricter one on the join page's API; over it, 429 with a JSON
//!   error and Retry-After.
//!
//! The counting and the buckets are pure cores ([`ConnectionCounts`],
//! [`RateLimiter`]); this module only feeds them the time and the
//! addresses and acts on their answers.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::client_addr::client_ip;
use super::error::{wait_text, ApiError};
use super::rate_limit::{RateLimiter, Verdict, DEFAULT_CAPACITY};
use crate::config::otp::HttpLimits;
use crate::net::{ConnectionCounts, SourceKey};

/// Largest request head (request line and headers) read; a larger one is
/// answered 431. Bounds the memory one connection can make us hold.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Paths counted against the join page's stricter rate.
const JOIN_API_PREFIX: &str = "/join/api/";

/// A bound, not yet running, HTTP server: bind first (port 0 in tests) to
/// learn the address, then run.
pub struct HttpServer {
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
}

/// What the connection tasks share.
struct Shared {
    limits: HttpLimits,
    connections: Mutex<ConnectionCounts>,
    rate: Option<Mutex<RateLimiter>>,
    join_rate: Option<Mutex<RateLimiter>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and buckets hold no invariant a panic elsewhere could
    // break half-way: carry on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.limits
            .trusted_proxies
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    }

    /// Over a rate limit: how long until the client may come back.
    fn rate_limited(&self, client: SourceKey, path: &str, now: Instant) -> Option<Duration> {
        let mut wait = None;
        let join = path.starts_with(JOIN_API_PREFIX);
        let limiters = [Some(&self.rate), join.then_some(&self.join_rate)];
        for limiter in limiters.into_iter().flatten().flatten() {
            if let Verdict::Limited { retry_after } = lock(limiter).check(client, now) {
                wait = Some(wait.map_or(retry_after, |w: Duration| w.max(retry_after)));
            }
        }
        wait
    }
}

/// A connection's place in the counts, given back when it ends.
struct Counted {
    shared: Arc<Shared>,
    client: SourceKey,
}

impl Drop for Counted {
    fn drop(&mut self) {
        lock(&self.shared.connections).close(self.client);
    }
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr, app: Router, limits: HttpLimits) -> io::Result<HttpServer> {
        Ok(HttpServer {
            listener: TcpListener::bind(addr).await?,
            app,
            limits,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes the requests in
    /// flight (kept-alive idle connections are closed).
    pub async fn run<F>(self, shutdown: F) -> io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let limits = self.limits;
        let shared = Arc::new(Shared {
            connections: Mutex::new(ConnectionCounts::new(
                limits.max_connections,
                limits.max_connections_per_address,
            )),
            rate: limits
                .rate
                .map(|r| Mutex::new(RateLimiter::new(r, DEFAULT_CAPACITY))),
            join_rate: limits
                .join_rate
                .map(|r| Mutex::new(RateLimiter::new(r, DEFAULT_CAPACITY))),
            limits,
        });
        let app = self.app.layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard_request,
        ));
        // Every connection task holds a `close_rx`: when all are gone, the
        // server is done. `stop` asks them to finish gracefully.
        let (close_tx, close_rx) = watch::channel(());
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let client = SourceKey::of(peer.ip());
            let exempt = shared.is_trusted_proxy(peer.ip());
            if let Err(refused) = lock(&shared.connections).open(client, exempt) {
                // Closed unread: a client over its share gets nothing to
                // hold on to.
                tracing::debug!(%client, %refused, "HTTP connection refused");
                drop(stream);
                continue;
            }
            let counted = Counted {
                shared: shared.clone(),
                client,
            };
            tokio::spawn(serve_connection(
                stream,
                peer,
                app.clone(),
                shared.limits.header_timeout,
                counted,
                stop_rx.clone(),
                close_rx.clone(),
            ));
        }
        drop(close_rx);
        let _ = stop_tx.send(true);
        close_tx.closed().await;
        Ok(())
    }
}

/// An accept error: a connection that went away before we took it is
/// nothing; running out of descriptors or memory is waited out briefly
/// instead of spinning.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "HTTP accept failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    counted: Counted,
    mut stop: watch::Receiver<bool>,
    close: watch::Receiver<()>,
) {
    let _counted = counted;
    let _close = close;
    let _ = stream.set_nodelay(true);
    let router = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        router.call(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let stopping = async move {
        // The guard `wait_for` returns is dropped here, not held across
        // the connection's await below.
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts and clients that hang up mid-request land here.
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// The connection's source address, for the request guard.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// In front of every route: the client's rate limits, then the body
/// deadline.
async fn guard_request(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(Peer(peer)) = req.extensions().get::<Peer>().copied() else {
        // Not served through `serve_connection` (a test calling the router
        // directly): nothing to count by.
        return next.run(req).await;
    };
    let ip = client_ip(peer.ip(), req.headers(), &shared.limits.trusted_proxies);
    let client = SourceKey::of(ip);
    if let Some(wait) = shared.rate_limited(client, req.uri().path(), Instant::now()) {
        tracing::debug!(%client, path = %req.uri().path(), "HTTP request over the rate limit");
        return rate_limited(wait);
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let deadline = shared.limits.body_timeout;
    let flag = timed_out.clone();
    let req = req.map(move |body| Body::new(DeadlineBody::new(body, deadline, flag)));
    let mut resp = next.run(req).await;
    if timed_out.load(Ordering::Relaxed) {
        // The rest of the body may still be on its way: this connection
        // cannot carry another request.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// 429 with the wait, in seconds (at least 1), in Retry-After and the body.
fn rate_limited(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "Too many requests from your address. Try again in {}.",
            wait_text(secs)
        ),
    )
    .retry_after(secs)
    .into_response()
}

/// The body did not arrive within `[http] body_timeout_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimedOut;

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimedOut {}

/// Is `e`, or anything it wraps, a [`BodyTimedOut`]?
pub fn is_body_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    // Bounded: an error chain is short, but never trust a loop to end.
    for _ in 0..16 {
        match cur {
            Some(x) if x.is::<BodyTimedOut>() => return true,
            Some(x) => cur = x.source(),
            None => return false,
        }
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] when it has not ended
/// by a deadline (set when the headers arrived).
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Body, within: Duration, timed_out: Arc<AtomicBool>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
            timed_out,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use std::convert::Infallible;

    #[test]
    fn rate_limited_answers_in_the_api_error_format() {
        let r = rate_limited(Duration::from_millis(90_500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "91");
        let r = rate_limited(Duration::from_millis(10));
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[tokio::test]
    async fn a_body_that_does_not_end_in_time_fails_with_a_recognisable_error() {
        // One byte, then nothing (the sender stays open).
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(Ok(Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(
            Body::new(ChannelBody(rx)),
            Duration::from_millis(50),
            flag.clone(),
        );
        let err = to_bytes(Body::new(body), 1024).await.unwrap_err();
        assert!(is_body_timeout(&err), "{err}");
        assert!(flag.load(Ordering::Relaxed));
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_in_time_passes_through() {
        let flag = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody::new(Body::from("{}"), Duration::from_secs(5), flag.clone());
        let bytes = to_bytes(Body::new(body), 1024).await.unwrap();
        assert_eq!(&bytes[..], b"{}");
        assert!(!flag.load(Ordering::Relaxed));
    }

    /// A body fed from a channel: it ends only when the sender is dropped.
    struct ChannelBody(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

    impl HttpBody for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx)
        }
    }
}
