//! Concurrency limits: a request over a limit is answered RESOURCE_EXHAUSTED at once
//! instead of queueing without bound, and holds its slots until its response body ends
//! (streams included).
//!
//! - [`GlobalConcurrencyLimit`] (`server.max_concurrent_requests`): across all callers.
//!   Health checks are never refused, so an overloaded server is not also reported dead.
//! - [`PrincipalLimit`] (`server.max_requests_per_principal`,
//!   `server.max_streams_per_principal`): per authenticated caller, so one token's idle
//!   streams or flood cannot take every slot of the global limit (issue 15, probe 2). It
//!   sits after authentication, which names the caller.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    auth::Principal,
    guard::{refuse, Guard, ResponseFuture},
};

/// The layer: at most `max` requests in flight across all connections.
#[derive(Clone, Debug)]
pub struct GlobalConcurrencyLimit {
    slots: Arc<Semaphore>,
    max: usize,
}

impl GlobalConcurrencyLimit {
    /// A limit of `max` (at least 1) requests.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        GlobalConcurrencyLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl Guard for GlobalConcurrencyLimit {
    fn around<B>(
        &self,
        req: http::Request<B>,
        next: impl FnOnce(http::Request<B>) -> ResponseFuture,
    ) -> ResponseFuture {
        if req.uri().path().starts_with("/grpc.health.v1.Health/") {
            return next(req);
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return refuse(tonic::Status::resource_exhausted(format!(
                "server busy: {} requests in flight (server.max_concurrent_requests); retry with backoff",
                self.max
            )));
        };
        held(next(req), vec![permit])
    }
}

/// The response future of a request holding `permits`: they go with the response body
/// and are released when it ends.
fn held(fut: ResponseFuture, permits: Vec<OwnedSemaphorePermit>) -> ResponseFuture {
    Box::pin(async move {
        let resp = fut.await?;
        Ok(resp.map(|body| {
            tonic::body::Body::new(PermitBody {
                inner: body,
                _permits: permits,
            })
        }))
    })
}

/// One principal's slots: requests in flight, client streams among them.
type Slots = (Arc<Semaphore>, Arc<Semaphore>);

/// The per-principal limits: requests in flight, and client streams among them.
#[derive(Clone, Debug)]
pub struct PrincipalLimit {
    max_requests: usize,
    max_streams: usize,
    /// Per principal name: (request slots, stream slots).
    slots: Arc<Mutex<HashMap<String, Slots>>>,
}

impl PrincipalLimit {
    /// Limits of `max_requests` requests and `max_streams` client streams (each at
    /// least 1) per principal.
    pub fn new(max_requests: usize, max_streams: usize) -> Self {
        PrincipalLimit {
            max_requests: max_requests.max(1),
            max_streams: max_streams.max(1),
            slots: Arc::default(),
        }
    }

    /// A slot for a request of `who` (and a stream slot if `stream`), or the refusal.
    fn acquire(&self, who: &str, stream: bool) -> Result<Vec<OwnedSemaphorePermit>, tonic::Status> {
        let (requests, streams) = {
            let mut m = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            // Principals are the configured token names (a bounded set): entries are kept.
            m.entry(who.to_string())
                .or_insert_with(|| {
                    (
                        Arc::new(Semaphore::new(self.max_requests)),
                        Arc::new(Semaphore::new(self.max_streams)),
                    )
                })
                .clone()
        };
        let busy = |what: &str, n: usize, key: &str| {
            tonic::Status::resource_exhausted(format!(
                "{who}: {n} {what} of this caller in flight ({key}); finish or close some, then retry"
            ))
        };
        let mut permits = vec![requests.try_acquire_owned().map_err(|_| {
            busy(
                "requests",
                self.max_requests,
                "server.max_requests_per_principal",
            )
        })?];
        if stream {
            permits.push(streams.try_acquire_owned().map_err(|_| {
                busy(
                    "client streams",
                    self.max_streams,
                    "server.max_streams_per_principal",
                )
            })?);
        }
        Ok(permits)
    }
}

impl Guard for PrincipalLimit {
    fn around<B>(
        &self,
        req: http::Request<B>,
        next: impl FnOnce(http::Request<B>) -> ResponseFuture,
    ) -> ResponseFuture {
        // Unauthenticated paths (health, reflection) carry no principal: not limited here.
        let Some(who) = req.extensions().get::<Principal>().map(|p| p.name.clone()) else {
            return next(req);
        };
        let stream = crate::server::deadline::is_client_streaming(req.uri().path());
        match self.acquire(&who, stream) {
            Ok(permits) => held(next(req), permits),
            Err(status) => refuse(status),
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that releases its slots when it is dropped.
    struct PermitBody {
        #[pin]
        inner: tonic::body::Body,
        _permits: Vec<OwnedSemaphorePermit>,
    }
}

impl http_body::Body for PermitBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
