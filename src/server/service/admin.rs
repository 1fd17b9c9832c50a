//! AdminService handlers.

use std::path::PathBuf;

use tonic::{Request, Response, Status};

use super::invalid;
use crate::{
    domain::DomainError,
    proto::{self as pb, admin_service_server::AdminService},
    store::{op, Store},
};

/// The AdminService.
#[derive(Clone)]
pub struct AdminApi {
    store: Store,
    data_dir: PathBuf,
}

impl AdminApi {
    /// A service over `store` in `data_dir`.
    pub fn new(store: Store, data_dir: PathBuf) -> Self {
        AdminApi { store, data_dir }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let actor = super::actor(&req, "Backup");
        super::Scope::of(&req).require_unscoped("Backup")?;
        let key = super::request_key("Backup", &req.get_ref().request_id, req.get_ref())?;
        let name = req.get_ref().name.trim().to_string();
        if name.is_empty()
            || name.len() > 100
            || name.starts_with('.')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid(DomainError::invalid(
                "name",
                "1 to 100 characters of A-Z a-z 0-9 . _ -, not starting with a dot",
            )));
        }
        if let Some(m) = super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        let dir = self.data_dir.join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| Status::unavailable(e.to_string()))?;
        let path = dir.join(&name);
        let shown = path.display().to_string();
        // On its own task: a cancelled or timed-out call does not leave a backup half
        // done (its key noting would otherwise run on).
        let (store, a) = (self.store.clone(), actor.clone());
        let b = tokio::spawn(async move { store.backup(a, path).await })
            .await
            .map_err(|e| Status::unavailable(format!("backup task: {e}")))??;
        let reply = pb::BackupResponse {
            path: shown,
            entries: b.entries,
            bytes: b.bytes,
            sha256: b.sha256.clone(),
        };
        if key.is_none() {
            return Ok(Response::new(reply));
        }
        // The backup is written; remember the reply for retries.
        let reply =
            super::write_reply(&self.store, actor, op::Remember(b), key, move |_| Ok(reply))
                .await?;
        Ok(Response::new(reply))
    }
}
