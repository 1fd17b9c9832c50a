//! Credit-repair cases in the store.
//!
//! | key | value |
//! |---|---|
//! | `F id(8)` | [`RepairCase`] |
//! | `f uscc id(8)` | empty: the cases of one enterprise |
//!
//! Approvals revoked for a false commitment are also kept in memory by USCC
//! ([`Revocations`], rebuilt from the cases at open) and attached to dossiers on read,
//! so scoring sees them without a lookup per enterprise.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::codec;
use crate::{
    domain::{
        repair::{RepairCase, RepairState},
        Date, EnterpriseRecords, Uscc,
    },
    error::{Error, Result},
};

/// Case keyspace.
pub const CASES: u8 = b'F';
/// Per-enterprise case index.
pub const CASES_BY_USCC: u8 = b'f';

/// False commitments by enterprise: (case id, date found).
pub type Revocations = Arc<RwLock<HashMap<Uscc, Vec<(u64, Date)>>>>;

/// `F id`.
pub fn case_key(id: u64) -> Vec<u8> {
    let mut k = vec![CASES];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `f uscc id`.
pub fn uscc_key(u: &Uscc, id: u64) -> Vec<u8> {
    let mut k = vec![CASES_BY_USCC];
    k.extend_from_slice(u.as_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Reads a case.
pub fn load_case(tree: &sled::Tree, id: u64) -> Result<Option<RepairCase>> {
    tree.get(case_key(id))?
        .map(|v| codec::decode(&v))
        .transpose()
}

/// The cases of one enterprise, by id.
pub fn cases_of(tree: &sled::Tree, u: &Uscc) -> Result<Vec<RepairCase>> {
    let mut prefix = vec![CASES_BY_USCC];
    prefix.extend_from_slice(u.as_bytes());
    let mut out = Vec::new();
    for kv in tree.scan_prefix(prefix) {
        let (k, _) = kv?;
        let id = <[u8; 8]>::try_from(&k[k.len() - 8..])
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Corrupt("bad case index key".into()))?;
        out.push(
            load_case(tree, id)?
                .ok_or_else(|| Error::Corrupt(format!("case index names missing case {id}")))?,
        );
    }
    Ok(out)
}

/// Every case, by id.
pub fn all_cases(tree: &sled::Tree) -> Result<Vec<RepairCase>> {
    let mut out = Vec::new();
    for kv in tree.scan_prefix([CASES]) {
        let (_, v) = kv?;
        out.push(codec::decode(&v)?);
    }
    Ok(out)
}

/// When a revoked case was revoked.
pub fn revoked_on(c: &RepairCase) -> Option<Date> {
    (c.state == RepairState::Revoked)
        .then(|| {
            c.history
                .iter()
                .rev()
                .find(|s| s.state == RepairState::Revoked)
                .map(|s| s.on)
        })
        .flatten()
}

/// Rebuilds the revocations from the cases.
pub fn load_revocations(tree: &sled::Tree) -> Result<HashMap<Uscc, Vec<(u64, Date)>>> {
    let mut m: HashMap<Uscc, Vec<(u64, Date)>> = HashMap::new();
    for c in all_cases(tree)? {
        if let Some(on) = revoked_on(&c) {
            m.entry(c.uscc).or_default().push((c.id, on));
        }
    }
    Ok(m)
}

/// Attaches an enterprise's false commitments to its dossier.
pub fn attach(rev: &Revocations, u: &Uscc, d: &mut EnterpriseRecords) -> Result<()> {
    let m = rev
        .read()
        .map_err(|_| Error::Unavailable("revocations poisoned".into()))?;
    d.false_commitments = m.get(u).cloned().unwrap_or_default();
    Ok(())
}

/// Objection keyspace: `J id` → objection.
pub const OBJECTIONS: u8 = b'J';
/// Per-enterprise objection index: `j uscc id`.
pub const OBJECTIONS_BY_USCC: u8 = b'j';

/// `J id`.
pub fn objection_key(id: u64) -> Vec<u8> {
    let mut k = vec![OBJECTIONS];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `j uscc id`.
pub fn objection_uscc_key(u: &Uscc, id: u64) -> Vec<u8> {
    let mut k = vec![OBJECTIONS_BY_USCC];
    k.extend_from_slice(u.as_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Reads an objection.
pub fn load_objection(
    tree: &sled::Tree,
    id: u64,
) -> Result<Option<crate::domain::repair::Objection>> {
    tree.get(objection_key(id))?
        .map(|v| codec::decode(&v))
        .transpose()
}

/// The objections of one enterprise, or all, by id.
pub fn objections(
    tree: &sled::Tree,
    u: Option<&Uscc>,
) -> Result<Vec<crate::domain::repair::Objection>> {
    let mut out = Vec::new();
    match u {
        Some(u) => {
            let mut prefix = vec![OBJECTIONS_BY_USCC];
            prefix.extend_from_slice(u.as_bytes());
            for kv in tree.scan_prefix(prefix) {
                let (k, _) = kv?;
                let id = <[u8; 8]>::try_from(&k[k.len() - 8..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt("bad objection index key".into()))?;
                if let Some(o) = load_objection(tree, id)? {
                    out.push(o);
                }
            }
        }
        None => {
            for kv in tree.scan_prefix([OBJECTIONS]) {
                let (_, v) = kv?;
                out.push(codec::decode(&v)?);
            }
        }
    }
    Ok(out)
}
