//! The deadline job: every `[store.alerts] deadline_check_secs` (and once at start) it
//! raises an alert for each credit-repair case past the due date of its next step
//! (`op::RaiseOverdueRepairs`, through the writer like any write).

use std::time::Duration;

use crate::store::{op, Actor, Store};

/// Runs until `stopping` turns true. A failed check is logged and retried at the next
/// period (a store fault stops the server anyway).
pub async fn run(store: Store, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let rules = store.options().alerts.clone();
    if !rules.enabled {
        return;
    }
    let every = Duration::from_secs(rules.deadline_check_secs.max(1));
    loop {
        match store
            .write_as(Actor::system("deadline-check"), op::RaiseOverdueRepairs)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "repair cases past their due date"),
            Err(e) => tracing::warn!(error = %e, "repair deadline check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = async { drop(stopping.wait_for(|s| *s).await) } => return,
        }
    }
}
