//! The server-wide concurrency limit (`server.max_concurrent_requests`): a request over
//! the limit is answered RESOURCE_EXHAUSTED at once instead of queueing without bound.
//! A request holds its slot until its response body ends (streams included). Health
//! checks are never refused, so an overloaded server is not also reported dead.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

impl<S> Layer<S> for GlobalConcurrencyLimit {
    type Service = LimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LimitService {
            inner,
            limit: self.clone(),
        }
    }
}

/// The service of [`GlobalConcurrencyLimit`].
#[derive(Clone, Debug)]
pub struct LimitService<S> {
    inner: S,
    limit: GlobalConcurrencyLimit,
}

impl<S, B> Service<http::Request<B>> for LimitService<S>
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
        if req.uri().path().starts_with("/grpc.health.v1.Health/") {
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let Ok(permit) = self.limit.slots.clone().try_acquire_owned() else {
            let status = tonic::Status::resource_exhausted(format!(
                "server busy: {} requests in flight (server.max_concurrent_requests); retry with backoff",
                self.limit.max
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await.map_err(Into::into)?;
            Ok(resp.map(|body| {
                tonic::body::Body::new(PermitBody {
                    inner: body,
                    _permit: permit,
                })
            }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that releases its slot when it is dropped.
    struct PermitBody {
        #[pin]
        inner: tonic::body::Body,
        _permit: OwnedSemaphorePermit,
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
