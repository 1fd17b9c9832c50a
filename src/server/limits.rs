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
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::Principal;

/// At most `max` requests in flight across all connections.
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

impl GlobalConcurrencyLimit {
    /// A slot for a request to `path` (health checks take none: never refused), or the
    /// refusal.
    pub fn admit(&self, path: &str) -> Result<Option<OwnedSemaphorePermit>, tonic::Status> {
        if path.starts_with("/grpc.health.v1.Health/") {
            return Ok(None);
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(tonic::Status::resource_exhausted(format!(
                "server busy: {} requests in flight (server.max_concurrent_requests); retry with backoff",
                self.max
            ))),
        }
    }
}

/// The slots one request holds, released when its response body ends (or the request
/// is dropped).
#[derive(Debug, Default)]
pub struct Slots {
    /// Of the global limit (none for health checks).
    pub global: Option<OwnedSemaphorePermit>,
    /// Of its principal: a request slot, and a stream slot for a client stream.
    pub principal: [Option<OwnedSemaphorePermit>; 2],
}

/// One principal's slots: requests in flight, client streams among them.
type PrincipalSlots = (Arc<Semaphore>, Arc<Semaphore>);

/// The per-principal limits: requests in flight, and client streams among them.
#[derive(Clone, Debug)]
pub struct PrincipalLimit {
    max_requests: usize,
    max_streams: usize,
    /// Per principal name: (request slots, stream slots).
    slots: Arc<Mutex<HashMap<String, PrincipalSlots>>>,
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

    /// The slots of a request (a request slot, and a stream slot if `stream`) of the
    /// principal authentication left in it, or the refusal. Unauthenticated paths
    /// (health, reflection) carry no principal: not limited here.
    pub fn admit<B>(
        &self,
        req: &http::Request<B>,
        stream: bool,
    ) -> Result<[Option<OwnedSemaphorePermit>; 2], tonic::Status> {
        let Some(who) = req.extensions().get::<Principal>().map(|p| p.name.as_str()) else {
            return Ok([None, None]);
        };
        let (requests, streams) = {
            let mut m = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            // Principals are the configured token names (a bounded set): entries are kept.
            match m.get(who) {
                Some(slots) => slots.clone(),
                None => m
                    .entry(who.to_string())
                    .or_insert_with(|| {
                        (
                            Arc::new(Semaphore::new(self.max_requests)),
                            Arc::new(Semaphore::new(self.max_streams)),
                        )
                    })
                    .clone(),
            }
        };
        let busy = |what: &str, n: usize, key: &str| {
            tonic::Status::resource_exhausted(format!(
                "{who}: {n} {what} of this caller in flight ({key}); finish or close some, then retry"
            ))
        };
        let request = requests.try_acquire_owned().map_err(|_| {
            busy(
                "requests",
                self.max_requests,
                "server.max_requests_per_principal",
            )
        })?;
        let stream = if stream {
            Some(streams.try_acquire_owned().map_err(|_| {
                busy(
                    "client streams",
                    self.max_streams,
                    "server.max_streams_per_principal",
                )
            })?)
        } else {
            None
        };
        Ok([Some(request), stream])
    }
}
