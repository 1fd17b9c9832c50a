//! RulesService handlers: the dated rules version in force, parameter by parameter.

use tonic::{Request, Response, Status};

use super::{convert, invalid};
use crate::{
    domain::{ruleset::PARAMETERS, RegionCode},
    proto::{self as pb, rules_service_server::RulesService},
    store::Store,
};

/// The RulesService.
#[derive(Clone)]
pub struct RulesApi {
    store: Store,
}

impl RulesApi {
    /// A service over `store` (its options hold the rules).
    pub fn new(store: Store) -> Self {
        RulesApi { store }
    }
}

#[tonic::async_trait]
impl RulesService for RulesApi {
    async fn get_rules(
        &self,
        req: Request<pb::GetRulesRequest>,
    ) -> Result<Response<pb::RuleSet>, Status> {
        let r = req.get_ref();
        let as_of = convert::as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let book = &self.store.options().rules;
        let jurisdiction = if r.jurisdiction.trim().is_empty() {
            book.home()
        } else {
            RegionCode::parse("jurisdiction", &r.jurisdiction).map_err(invalid)?
        };
        let Some((set, until)) = book.lookup(&jurisdiction, as_of) else {
            let mut known: Vec<&str> = book.versions().map(|s| s.jurisdiction.as_str()).collect();
            known.dedup();
            return Err(Status::not_found(format!(
                "jurisdiction: no rules for {} (known: {known:?})",
                jurisdiction.as_str()
            )));
        };
        let info = |key: &str| PARAMETERS.iter().find(|p| p.key == key);
        let parameters = set
            .values()
            .into_iter()
            .map(|(key, value)| {
                let i = info(&key);
                pb::RuleParameter {
                    unit: i.map(|i| i.unit).unwrap_or_default().into(),
                    source: i.map(|i| i.source).unwrap_or_default().into(),
                    evidence: i.map(|i| i.evidence).unwrap_or_default().into(),
                    used_in: i.map(|i| i.used_in).unwrap_or_default().into(),
                    key,
                    value,
                }
            })
            .collect();
        let note = if as_of < set.effective_from {
            format!(
                "{as_of} precedes every rules version of {}; the earliest ({}) applies",
                jurisdiction.as_str(),
                set.version
            )
        } else {
            String::new()
        };
        Ok(Response::new(pb::RuleSet {
            version: set.version.clone(),
            jurisdiction: set.jurisdiction.as_str().into(),
            effective_from: set.effective_from.to_string(),
            effective_until: until.map(|d| d.to_string()).unwrap_or_default(),
            parameters,
            note,
            versions: book
                .versions()
                .filter(|s| s.jurisdiction == jurisdiction)
                .map(|s| s.version.clone())
                .collect(),
        }))
    }
}
