//! The tower plumbing every request layer of the server shares, written once: a
//! [`Guard`] says what happens around one request (refuse it with a status, tag it, time
//! it, hold a permit until its response body ends), and [`GuardLayer`] makes any guard a
//! `tower::Layer` over tonic's routes. Auth, the concurrency limits, the unary deadline
//! and the metrics are guards.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tower_layer::Layer;
use tower_service::Service;

/// The error type of the layered services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC response over HTTP/2.
pub type Response = http::Response<tonic::body::Body>;

/// The future of a layered call.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

/// What one layer does around a request.
pub trait Guard: Clone + Send + Sync + 'static {
    /// Handles `req`: either calls `next` (the inner service; at most once) and returns
    /// its future, possibly wrapped, or answers itself (see [`refuse`]).
    fn around<B>(
        &self,
        req: http::Request<B>,
        next: impl FnOnce(http::Request<B>) -> ResponseFuture,
    ) -> ResponseFuture;
}

/// Answers a request with `status` and never calls the handler.
pub fn refuse(status: tonic::Status) -> ResponseFuture {
    Box::pin(async move { Ok(status.into_http()) })
}

/// Any [`Guard`] as a layer.
#[derive(Clone, Debug)]
pub struct GuardLayer<G>(pub G);

impl<G: Guard, S> Layer<S> for GuardLayer<G> {
    type Service = Guarded<G, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            guard: self.0.clone(),
            inner,
        }
    }
}

/// The service of a [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct Guarded<G, S> {
    guard: G,
    inner: S,
}

impl<G, S, B> Service<http::Request<B>> for Guarded<G, S>
where
    G: Guard,
    S: Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let inner = &mut self.inner;
        self.guard.around(req, |req| {
            let fut = inner.call(req);
            Box::pin(async move { fut.await.map_err(Into::into) })
        })
    }
}
