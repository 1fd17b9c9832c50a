//! Per-request deadline for unary and server-streaming RPCs. tonic's server-wide
//! `timeout` also cuts client-streaming RPCs (an `ImportRecords` of 16 M records runs
//! for minutes), so this layer leaves those alone: they are bounded by their own pace
//! and the client's `grpc-timeout`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tower_layer::Layer;
use tower_service::Service;

/// RPC paths whose request is a stream: no server-imposed deadline.
const CLIENT_STREAMING: &[&str] = &[
    "/creditrisk.v1.RegistryService/ImportRecords",
    "/creditrisk.v1.SpotCheckService/MatchClassifications",
];

/// Whether `path` is a client-streaming RPC.
pub fn is_client_streaming(path: &str) -> bool {
    CLIENT_STREAMING.contains(&path)
}

/// The layer; `timeout` applies to every other RPC until its response headers.
#[derive(Clone, Copy, Debug)]
pub struct UnaryDeadline {
    /// Deadline.
    pub timeout: Duration,
}

impl<S> Layer<S> for UnaryDeadline {
    type Service = UnaryDeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnaryDeadlineService {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service of [`UnaryDeadline`].
#[derive(Clone, Debug)]
pub struct UnaryDeadlineService<S> {
    inner: S,
    timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<http::Request<B>> for UnaryDeadlineService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let unbounded = is_client_streaming(req.uri().path());
        let timeout = self.timeout;
        let fut = self.inner.call(req);
        Box::pin(async move {
            if unbounded {
                return fut.await.map_err(Into::into);
            }
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r.map_err(Into::into),
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "request exceeded the server deadline of {} s",
                    timeout.as_secs()
                ))
                .into_http()),
            }
        })
    }
}
