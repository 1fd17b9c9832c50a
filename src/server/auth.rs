//! Authentication and authorization in one place: a tower layer in front of every
//! service. Bearer tokens are configured as SHA-256 hashes, compared in constant time,
//! and map to a role (and a name, recorded as the audit principal); each RPC allows a
//! set of roles. Without configured tokens the server runs in development mode — every
//! caller is `local` with the admin role — which is refused on a non-loopback address
//! and announced loudly at start.
//!
//! A token may be scoped to region-code prefixes: the handlers then show and change only
//! enterprises of those regions (`service::Scope`): queries are filtered, other
//! enterprises are PERMISSION_DENIED, and city-wide operations (imports, sweeps, batch
//! scoring, model governance, the audit trail) need an unscoped token.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Roles (SPEC.md §4 "Cross-cutting": who may call what).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Scheduler,
    Scorer,
    Feed,
    RepairOperator,
    Auditor,
    Admin,
}

impl Role {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Scheduler => "scheduler",
            Role::Scorer => "scorer",
            Role::Feed => "feed",
            Role::RepairOperator => "repair-operator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

/// One configured token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (the audit principal).
    pub name: String,
    /// Lower-case hex SHA-256 of the token (`credit-risk hash-token` prints it).
    pub sha256: String,
    pub role: Role,
    /// Region-code prefixes the token is scoped to (empty: all).
    #[serde(default)]
    pub regions: Vec<String>,
}

/// `[server.auth]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
}

/// The authenticated caller, put into each request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub regions: Vec<String>,
}

impl Principal {
    /// The development-mode caller.
    pub fn local() -> Principal {
        Principal {
            name: "local".into(),
            role: Role::Admin,
            regions: Vec::new(),
        }
    }
}

/// SHA-256 hex of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn decode_hash(field: &str, h: &str) -> Result<[u8; 32], Error> {
    let v = hex::decode(h.trim()).map_err(|_| Error::invalid(field, "not a hex SHA-256"))?;
    <[u8; 32]>::try_from(v.as_slice()).map_err(|_| Error::invalid(field, "not 32 bytes"))
}

/// Constant-time equality of two digests.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The path prefix of the API's RPCs (package `creditrisk.v1`); every other path served
/// (health, reflection) is open to everyone and reads no store.
const API_PREFIX: &str = "/creditrisk.v1.";

/// Whether `path` is one of the API's RPCs (or an unknown one of its services).
pub fn is_api(path: &str) -> bool {
    path.starts_with(API_PREFIX)
}

/// Roles allowed to call an RPC path; `None` for paths open to everyone (health,
/// reflection) — unknown paths of our services are admin-only.
pub fn allowed_roles(path: &str) -> Option<&'static [Role]> {
    use Role::*;
    const ALL: &[Role] = &[Scheduler, Scorer, Feed, RepairOperator, Auditor, Admin];
    const FEED: &[Role] = &[Feed, Admin];
    const SCHED: &[Role] = &[Scheduler, Admin];
    const SCHED_AUDIT: &[Role] = &[Scheduler, Auditor, Admin];
    const INSPECT: &[Role] = &[Feed, Scheduler, Admin];
    const SCORE: &[Role] = &[Scorer, Admin];
    const ADMIN: &[Role] = &[Admin];
    const REPAIR: &[Role] = &[RepairOperator, Admin];
    const REPAIR_READ: &[Role] = &[RepairOperator, Auditor, Admin];
    const AUDIT: &[Role] = &[Auditor, Admin];
    const STATS: &[Role] = &[Scheduler, Scorer, Auditor, Admin];
    const STATS_REPAIR: &[Role] = &[Scheduler, Scorer, Auditor, RepairOperator, Admin];
    const PERSON: &[Role] = &[Feed, Scheduler, RepairOperator, Auditor, Admin];
    let rest = path.strip_prefix(API_PREFIX)?;
    let (service, method) = rest.split_once('/')?;
    Some(match (service, method) {
        ("RegistryService", "GetEnterprise" | "ListPenalties" | "GetCreditReport") => ALL,
        ("RegistryService", "RecordInspectionResult") => INSPECT,
        ("RegistryService", "RecordSamplingResult") => INSPECT,
        ("RegistryService", _) => FEED,
        (
            "ClassificationService",
            "GetModel" | "GetClassification" | "ListScoringRuns" | "GetScoringRun",
        ) => ALL,
        ("ClassificationService", "RunBatchScoring" | "RegisterModel") => SCORE,
        ("ClassificationService", _) => ADMIN,
        (
            "SpotCheckService",
            "VerifyDraw"
            | "ListPopulation"
            | "ListInspectors"
            | "GetPlan"
            | "ListPlans"
            | "GetReceipt"
            | "ListCheckItems"
            | "ListTaskResults"
            | "ListJointCandidates",
        ) => SCHED_AUDIT,
        ("SpotCheckService", _) => SCHED,
        ("CreditRepairService", "GetRepairCase" | "ListRepairCases" | "ListObjections") => {
            REPAIR_READ
        }
        ("CreditRepairService", _) => REPAIR,
        ("AuditService", _) => AUDIT,
        ("RulesService", _) => ALL,
        ("AlertService", "WatchAlerts" | "ListAlerts") => SCHED_AUDIT,
        ("AlertService", _) => SCHED,
        ("StatisticsService", "GetRepairStatistics") => STATS_REPAIR,
        ("StatisticsService", _) => STATS,
        ("MeasuresService", "CheckLegalRepresentative") => PERSON,
        ("MeasuresService", _) => ALL,
        ("CommitmentService", "ListCommitments") => PERSON,
        ("CommitmentService", _) => INSPECT,
        _ => ADMIN,
    })
}

/// (token digest, its holder).
type TokenTable = Vec<([u8; 32], Principal)>;

/// The token table.
#[derive(Clone, Debug)]
pub struct Authenticator {
    /// `None`: development mode.
    tokens: Option<Arc<TokenTable>>,
}

impl Authenticator {
    /// From the configuration; development mode (no tokens) only on loopback.
    pub fn new(cfg: &AuthConfig, listen_loopback: bool) -> Result<Authenticator, Error> {
        if cfg.tokens.is_empty() {
            if !listen_loopback {
                return Err(Error::FailedPrecondition(
                    "server.auth: no tokens configured; development mode (no authentication) is only allowed on a loopback address".into(),
                ));
            }
            return Ok(Authenticator { tokens: None });
        }
        let mut t = Vec::new();
        for (i, tc) in cfg.tokens.iter().enumerate() {
            let h = decode_hash(&format!("server.auth.tokens[{i}].sha256"), &tc.sha256)?;
            for (j, r) in tc.regions.iter().enumerate() {
                if !(2..=6).contains(&r.len()) || !r.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::invalid(
                        format!("server.auth.tokens[{i}].regions[{j}]"),
                        format!("{r:?} is not a region-code prefix (2 to 6 digits)"),
                    ));
                }
            }
            if tc.name.trim().is_empty() {
                return Err(Error::invalid(
                    format!("server.auth.tokens[{i}].name"),
                    "is required",
                ));
            }
            t.push((
                h,
                Principal {
                    name: tc.name.clone(),
                    role: tc.role,
                    regions: tc.regions.clone(),
                },
            ));
        }
        Ok(Authenticator {
            tokens: Some(Arc::new(t)),
        })
    }

    /// Whether authentication is off.
    pub fn is_dev_mode(&self) -> bool {
        self.tokens.is_none()
    }

    /// The caller of a request with this `authorization` header value, for `path`.
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Principal, tonic::Status> {
        self.identify(path, authorization)
            .map_err(|(_, status)| status)
    }

    /// As [`Authenticator::check`]; a refusal also names the caller when its token is
    /// known (its role may not call `path`), for the access log.
    fn identify(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Principal, (Option<&str>, tonic::Status)> {
        let unknown = |status| (None, status);
        let Some(tokens) = &self.tokens else {
            return Ok(Principal::local());
        };
        let Some(roles) = allowed_roles(path) else {
            return Ok(Principal {
                name: "anonymous".into(),
                role: Role::Auditor,
                regions: Vec::new(),
            });
        };
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unknown(tonic::Status::unauthenticated(
                    "a bearer token is required (authorization: Bearer …)",
                ))
            })?;
        let h: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare with every entry so the time does not depend on which one matches.
        let mut found: Option<&Principal> = None;
        for (k, p) in tokens.iter() {
            if ct_eq(k, &h) && found.is_none() {
                found = Some(p);
            }
        }
        let p =
            found.ok_or_else(|| unknown(tonic::Status::unauthenticated("unknown bearer token")))?;
        if !roles.contains(&p.role) {
            return Err((
                Some(p.name.as_str()),
                tonic::Status::permission_denied(format!(
                    "role {} may not call {path} (allowed: {})",
                    p.role.name(),
                    roles
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ));
        }
        Ok(p.clone())
    }
}

impl Authenticator {
    /// Authenticates `req`: its principal goes into the request's extensions for the
    /// handlers, or the refusal. Its name goes into the access log's slot — also when a
    /// known token's role may not call the RPC, so a refused attempt names its caller.
    pub fn admit<B>(&self, req: &mut http::Request<B>) -> Result<(), tonic::Status> {
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let slot = req.extensions().get::<super::metrics::PrincipalSlot>();
        let name = |who: &str| {
            if let Some(slot) = slot {
                let _ = slot.0.set(who.to_string());
            }
        };
        match self.identify(req.uri().path(), header) {
            Ok(p) => {
                name(&p.name);
                req.extensions_mut().insert(p);
                Ok(())
            }
            Err((who, status)) => {
                who.map(name);
                Err(status)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roles_and_dev_mode() {
        let cfg = AuthConfig {
            tokens: vec![TokenConfig {
                name: "pudong-feed".into(),
                sha256: hash_token("s3cret"),
                role: Role::Feed,
                regions: vec!["310115".into()],
            }],
        };
        let a = Authenticator::new(&cfg, false).unwrap();
        let write = "/creditrisk.v1.RegistryService/RecordPenalty";
        let audit = "/creditrisk.v1.AuditService/ListAuditEvents";
        assert_eq!(
            a.check(write, Some("Bearer s3cret")).unwrap().name,
            "pudong-feed"
        );
        assert_eq!(
            a.check(write, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.check(write, Some("Bearer nope")).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.check(audit, Some("Bearer s3cret")).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(a.check("/grpc.health.v1.Health/Check", None).is_ok());
        assert!(Authenticator::new(&AuthConfig::default(), false).is_err());
        assert!(Authenticator::new(&AuthConfig::default(), true)
            .unwrap()
            .is_dev_mode());
        let bad = AuthConfig {
            tokens: vec![TokenConfig {
                name: "x".into(),
                sha256: "zz".into(),
                role: Role::Admin,
                regions: vec![],
            }],
        };
        let e = Authenticator::new(&bad, true).unwrap_err();
        assert!(
            e.to_string().contains("server.auth.tokens[0].sha256"),
            "{e}"
        );
    }

    #[test]
    /// Every RPC of the descriptors has a role entry that admits the admin, and every
    /// mutating one (its request has a `request_id`) is closed to at least half of the
    /// roles (no write is open to every role).
    fn every_rpc_has_roles_and_no_write_is_open_to_all() {
        use prost::Message;
        let set =
            prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
        let files: Vec<_> = set
            .file
            .iter()
            .filter(|f| f.package() == "creditrisk.v1")
            .collect();
        let mutating = |input: &str| {
            files.iter().any(|f| {
                f.message_type.iter().any(|m| {
                    input == format!(".creditrisk.v1.{}", m.name())
                        && m.field.iter().any(|x| x.name() == "request_id")
                })
            })
        };
        let (mut rpcs, mut writes) = (0, 0);
        for f in &files {
            for s in &f.service {
                for m in &s.method {
                    let path = format!("/creditrisk.v1.{}/{}", s.name(), m.name());
                    let roles = allowed_roles(&path).unwrap();
                    assert!(roles.contains(&Role::Admin), "{path}");
                    if mutating(m.input_type()) {
                        assert!(roles.len() <= 3, "{path}: a write open to {roles:?}");
                        writes += 1;
                    }
                    rpcs += 1;
                }
            }
        }
        assert!(rpcs > 30 && writes > 15, "{rpcs} RPCs, {writes} writes");
    }
}
