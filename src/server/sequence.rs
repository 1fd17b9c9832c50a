//! Replicated mode's read-your-writes across replicas: a request naming a log sequence
//! (`credit-risk-min-sequence`) waits until this replica has applied it (at most the
//! store's read wait, then UNAVAILABLE with both sequences), and every answer names the
//! sequence its replica had applied (`credit-risk-sequence`), so a client passes what
//! its write's answer said to any replica's read.

use crate::{
    replication::{MIN_SEQUENCE_HEADER, SEQUENCE_HEADER},
    store::Store,
};

use super::guard::{refuse, Guard, ResponseFuture};

/// The layer's guard.
#[derive(Clone)]
pub struct Sequence {
    pub store: Store,
}

impl Guard for Sequence {
    fn around<B>(
        &self,
        req: http::Request<B>,
        next: impl FnOnce(http::Request<B>) -> ResponseFuture,
    ) -> ResponseFuture {
        let min = match req
            .headers()
            .get(MIN_SEQUENCE_HEADER)
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
        {
            None => None,
            Some(Some(n)) => Some(n),
            Some(None) => {
                return refuse(tonic::Status::invalid_argument(format!(
                    "{MIN_SEQUENCE_HEADER}: a log sequence (an unsigned integer)"
                )))
            }
        };
        let store = self.store.clone();
        let replicated = store.is_replicated();
        if let Some(n) = min.filter(|&n| n > 0 && !replicated) {
            return refuse(tonic::Status::failed_precondition(format!(
                "{MIN_SEQUENCE_HEADER}: {n}, but this server is not replicated (no log)"
            )));
        }
        // The handler runs only when its future is polled: after the wait.
        let handler = next(req);
        Box::pin(async move {
            if let Some(n) = min.filter(|&n| n > 0) {
                let wait = store.read_wait();
                let at = store.wait_applied(n, wait).await;
                if at < n {
                    return Ok(tonic::Status::unavailable(format!(
                        "{MIN_SEQUENCE_HEADER}: this replica has applied the log to {at}, \
                         not yet {n} (waited {} ms); retry, or read another replica",
                        wait.as_millis()
                    ))
                    .into_http());
                }
            }
            let mut resp = handler.await?;
            if replicated {
                let at = store.applied_sequence();
                resp.headers_mut()
                    .insert(SEQUENCE_HEADER, http::HeaderValue::from(at));
            }
            Ok(resp)
        })
    }
}
