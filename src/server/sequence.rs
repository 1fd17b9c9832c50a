//! Replicated mode's read-your-writes across replicas: a request naming a log sequence
//! (`credit-risk-min-sequence`) waits until this replica has applied it (at most the
//! store's read wait, then UNAVAILABLE with both sequences), and every answer names the
//! sequence its replica had applied (`credit-risk-sequence`), so a client passes what
//! its write's answer said to any replica's read.

use crate::{
    replication::{MIN_SEQUENCE_HEADER, SEQUENCE_HEADER},
    store::Store,
};

/// The replication sequence's part of the request guards.
#[derive(Clone)]
pub struct Sequence {
    pub store: Store,
}

impl Sequence {
    /// The log sequence a request names (none, or 0: no wait), or the refusal: a value
    /// that is not one, or one this server (not replicated) can never reach. Only the
    /// API's RPCs read the store: health and reflection ignore the header (grpcurl's
    /// `-H` sends it on its reflection calls too).
    pub fn admit<B>(&self, req: &http::Request<B>) -> Result<Option<u64>, tonic::Status> {
        if !super::auth::is_api(req.uri().path()) {
            return Ok(None);
        }
        let min = match req
            .headers()
            .get(MIN_SEQUENCE_HEADER)
            .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
        {
            None => return Ok(None),
            Some(Some(n)) => n,
            Some(None) => {
                return Err(tonic::Status::invalid_argument(format!(
                    "{MIN_SEQUENCE_HEADER}: a log sequence (an unsigned integer)"
                )))
            }
        };
        if min > 0 && !self.store.is_replicated() {
            return Err(tonic::Status::failed_precondition(format!(
                "{MIN_SEQUENCE_HEADER}: {min}, but this server is not replicated (no log)"
            )));
        }
        Ok((min > 0).then_some(min))
    }

    /// Waits until this replica has applied `min` (at most the store's read wait); the
    /// UNAVAILABLE answer naming both sequences if it has not by then.
    pub async fn wait(&self, min: Option<u64>) -> Option<super::guard::Response> {
        let n = min?;
        let wait = self.store.read_wait();
        let at = self.store.wait_applied(n, wait).await;
        (at < n).then(|| {
            tonic::Status::unavailable(format!(
                "{MIN_SEQUENCE_HEADER}: this replica has applied the log to {at}, \
                 not yet {n} (waited {} ms); retry, or read another replica",
                wait.as_millis()
            ))
            .into_http()
        })
    }

    /// Names the sequence this replica had applied on an answer (replicated mode only).
    pub fn stamp(&self, resp: &mut super::guard::Response) {
        if self.store.is_replicated() {
            let at = self.store.applied_sequence();
            resp.headers_mut()
                .insert(SEQUENCE_HEADER, http::HeaderValue::from(at));
        }
    }
}
