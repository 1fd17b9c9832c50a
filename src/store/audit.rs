//! The audit trail (审计日志): one append-only, hash-chained event per mutation, written
//! by the writer in the same atomic batch as the change it records.
//!
//! | key | value |
//! |---|---|
//! | `A seq(8)` | [`AuditEvent`] |
//! | `a uscc seq(8)` | empty: the events about one enterprise |
//!
//! Chain format 2 (every event of a store created by schema 3, and every event after the
//! migration of an older one): `digest = hex(SHA-256("creditrisk-audit-v2" ‖ field…))`
//! over prev_digest, seq (u64 BE), at_ms (i64 BE), principal, role, rpc, target, before,
//! after, reason, each text field preceded by its byte length (u64 BE): no text can move
//! from one field to another without changing the digest.
//!
//! Chain format 1 (events before the migration; the first format-2 sequence number is
//! the counter `S audit_v2_from`): `SHA-256(prev_digest + "\n" + seq + "\n" + at_ms +
//! "\n" + principal + "\n" + role + "\n" + rpc + "\n" + target + "\n" + before + "\n" +
//! after + "\n" + reason)` — ambiguous (a "\n" inside a field can move text across), so
//! no longer written. The first event's `prev_digest` is 64 zeros. Changing, removing or
//! reordering any event breaks every link after it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codec;
use crate::{
    domain::Uscc,
    error::{Error, Result},
};

/// Event keyspace.
pub const EVENTS: u8 = b'A';
/// Per-enterprise index keyspace.
pub const BY_USCC: u8 = b'a';
/// `prev_digest` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub principal: String,
    pub role: String,
    pub rpc: String,
    /// Region-code prefixes the caller's token is scoped to (empty = all). The writer
    /// refuses a job that reads or changes an enterprise outside them, deciding on the
    /// state the job's batch commits on (not recorded in the event; carried in the
    /// replicated log, where every replica decides alike).
    #[serde(default)]
    pub regions: Vec<String>,
}

impl Actor {
    /// The server itself (demo data, recovery).
    pub fn system(rpc: &str) -> Actor {
        Actor {
            principal: "system".into(),
            role: "system".into(),
            rpc: rpc.into(),
            regions: Vec::new(),
        }
    }
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: u64,
    pub at_ms: i64,
    pub principal: String,
    pub role: String,
    pub rpc: String,
    /// What was changed: a USCC, or `run/N`, `plan/N`, `inspector/ID`, `model/V`, `import`.
    pub target: String,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub prev_digest: String,
    pub digest: String,
}

/// Counter (in the `S` keyspace) holding the first sequence number hashed in chain
/// format 2; absent = every event is format 2.
pub const CHAIN_V2_FROM: &str = "audit_v2_from";
/// The chain format the writer uses.
pub const CHAIN_FORMAT: u8 = 2;

/// The chain format of event `seq`, given the first format-2 sequence number.
pub fn chain_format(seq: u64, v2_from: u64) -> u8 {
    if seq >= v2_from {
        2
    } else {
        1
    }
}

/// The first format-2 sequence number of the store.
pub fn v2_from(tree: &sled::Tree) -> Result<u64> {
    match tree.get(super::keys::counter(CHAIN_V2_FROM))? {
        Some(v) => <[u8; 8]>::try_from(v.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Corrupt("bad audit_v2_from counter".into())),
        None => Ok(1),
    }
}

impl AuditEvent {
    /// The digest this event should carry in chain format `format` (1 or 2).
    pub fn compute_digest(&self, format: u8) -> String {
        if format == 1 {
            return self.digest_v1();
        }
        let mut h = Sha256::new();
        h.update(b"creditrisk-audit-v2");
        let text = |h: &mut Sha256, s: &str| {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        };
        text(&mut h, &self.prev_digest);
        h.update(self.seq.to_be_bytes());
        h.update(self.at_ms.to_be_bytes());
        for part in [
            &self.principal,
            &self.role,
            &self.rpc,
            &self.target,
            &self.before,
            &self.after,
            &self.reason,
        ] {
            text(&mut h, part);
        }
        hex::encode(h.finalize())
    }

    fn digest_v1(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.prev_digest.as_str(),
            &self.seq.to_string(),
            &self.at_ms.to_string(),
            &self.principal,
            &self.role,
            &self.rpc,
            &self.target,
            &self.before,
            &self.after,
        ] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        h.update(self.reason.as_bytes());
        hex::encode(h.finalize())
    }
}

/// `A seq`.
pub fn event_key(seq: u64) -> Vec<u8> {
    let mut k = vec![EVENTS];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `a uscc seq`.
pub fn uscc_key(u: &Uscc, seq: u64) -> Vec<u8> {
    let mut k = vec![BY_USCC];
    k.extend_from_slice(u.as_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The last event's (seq, digest), or (0, GENESIS).
pub fn head(tree: &sled::Tree) -> Result<(u64, String)> {
    match tree.scan_prefix([EVENTS]).next_back() {
        Some(kv) => {
            let (_, v) = kv?;
            let e: AuditEvent = codec::decode(&v)?;
            Ok((e.seq, e.digest))
        }
        None => Ok((0, GENESIS.to_string())),
    }
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub principal: Option<String>,
    pub uscc: Option<Uscc>,
    pub after_seq: u64,
    pub limit: usize,
}

/// Events in sequence order matching `f` (at most `f.limit`, 0 = no limit).
pub fn list(tree: &sled::Tree, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
    let mut out = Vec::new();
    let keep = |e: &AuditEvent| {
        e.seq > f.after_seq
            && f.from_ms.is_none_or(|t| e.at_ms >= t)
            && f.to_ms.is_none_or(|t| e.at_ms < t)
            && f.principal.as_ref().is_none_or(|p| &e.principal == p)
    };
    let full = |out: &Vec<AuditEvent>| f.limit > 0 && out.len() >= f.limit;
    match &f.uscc {
        Some(u) => {
            let mut prefix = vec![BY_USCC];
            prefix.extend_from_slice(u.as_bytes());
            for kv in tree.scan_prefix(prefix) {
                let (k, _) = kv?;
                let seq = <[u8; 8]>::try_from(&k[k.len() - 8..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt("bad audit index key".into()))?;
                let v = tree.get(event_key(seq))?.ok_or_else(|| {
                    Error::Corrupt(format!("audit index names missing event {seq}"))
                })?;
                let e: AuditEvent = codec::decode(&v)?;
                if keep(&e) {
                    out.push(e);
                }
                if full(&out) {
                    break;
                }
            }
        }
        None => {
            for kv in tree.range(event_key(f.after_seq + 1)..) {
                let (k, v) = kv?;
                if k.first() != Some(&EVENTS) {
                    break;
                }
                let e: AuditEvent = codec::decode(&v)?;
                if keep(&e) {
                    out.push(e);
                }
                if full(&out) {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Walks the chain; returns (events checked, the first broken link if any).
pub fn verify(tree: &sled::Tree) -> Result<(u64, Option<(u64, String)>)> {
    let v2_from = v2_from(tree)?;
    let mut prev = GENESIS.to_string();
    let mut n = 0u64;
    for (expected_seq, kv) in (1u64..).zip(tree.scan_prefix([EVENTS])) {
        let (k, v) = kv?;
        let e: AuditEvent = match codec::decode(&v) {
            Ok(e) => e,
            Err(_) => return Ok((n, Some((expected_seq, "undecodable event".into())))),
        };
        let key_seq = <[u8; 8]>::try_from(&k[1..])
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if e.seq != expected_seq || key_seq != e.seq {
            return Ok((
                n,
                Some((expected_seq, format!("sequence gap: found event {}", e.seq))),
            ));
        }
        if e.prev_digest != prev {
            return Ok((
                n,
                Some((
                    e.seq,
                    "prev_digest does not match the previous event".into(),
                )),
            ));
        }
        if e.compute_digest(chain_format(e.seq, v2_from)) != e.digest {
            return Ok((
                n,
                Some((e.seq, "digest does not match the event's content".into())),
            ));
        }
        prev = e.digest;
        n += 1;
    }
    Ok((n, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(tree: &sled::Tree, n: u64) {
        chain_formats(tree, n, 1)
    }

    /// A chain of `n` events whose format-2 part starts at `v2_from`.
    fn chain_formats(tree: &sled::Tree, n: u64, v2_from: u64) {
        let mut prev = GENESIS.to_string();
        for seq in 1..=n {
            let mut e = AuditEvent {
                seq,
                at_ms: 1_700_000_000_000 + seq as i64,
                principal: "p".into(),
                role: "r".into(),
                rpc: "RecordPenalty".into(),
                target: "91310000631696382C".into(),
                before: String::new(),
                after: format!("change {seq}"),
                reason: String::new(),
                prev_digest: prev.clone(),
                digest: String::new(),
            };
            e.digest = e.compute_digest(chain_format(seq, v2_from));
            prev = e.digest.clone();
            tree.insert(event_key(seq), codec::encode(&e).unwrap())
                .unwrap();
        }
    }

    #[test]
    fn verify_finds_the_first_broken_link() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        chain(&tree, 5);
        assert_eq!(verify(&tree).unwrap(), (5, None));
        assert_eq!(head(&tree).unwrap().0, 5);
        // Edit event 3's content: its digest no longer matches.
        let mut e: AuditEvent = codec::decode(&tree.get(event_key(3)).unwrap().unwrap()).unwrap();
        e.after = "forged".into();
        tree.insert(event_key(3), codec::encode(&e).unwrap())
            .unwrap();
        let (n, broken) = verify(&tree).unwrap();
        assert_eq!(n, 2);
        assert_eq!(broken.unwrap().0, 3);
        // Re-sign it: now event 4's link breaks.
        e.digest = e.compute_digest(2);
        tree.insert(event_key(3), codec::encode(&e).unwrap())
            .unwrap();
        assert_eq!(verify(&tree).unwrap().1.unwrap().0, 4);
        // Remove event 2: a gap.
        chain(&tree, 5);
        tree.remove(event_key(2)).unwrap();
        let (_, broken) = verify(&tree).unwrap();
        assert!(broken.unwrap().1.contains("gap"));
    }

    #[test]
    fn format_2_binds_text_to_its_field() {
        let e = AuditEvent {
            seq: 7,
            at_ms: 1,
            principal: "ops".into(),
            role: "admin".into(),
            rpc: "UpsertEnterprise".into(),
            target: "t".into(),
            before: "a\nb".into(),
            after: "c".into(),
            reason: String::new(),
            prev_digest: GENESIS.into(),
            digest: String::new(),
        };
        // Move "\nb" from `before` to the front of `after`: format 1 cannot tell.
        let mut moved = e.clone();
        moved.before = "a".into();
        moved.after = "b\nc".into();
        assert_eq!(e.compute_digest(1), moved.compute_digest(1));
        assert_ne!(e.compute_digest(2), moved.compute_digest(2));
        // Text moved between any two neighbouring fields changes the digest.
        let mut m2 = e.clone();
        m2.principal = "op".into();
        m2.role = "sadmin".into();
        assert_ne!(e.compute_digest(2), m2.compute_digest(2));
    }

    #[test]
    fn a_migrated_chain_verifies_in_both_formats() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        chain_formats(&tree, 6, 4);
        // Without the boundary every event is read as format 2: event 1 fails.
        assert_eq!(verify(&tree).unwrap().1.unwrap().0, 1);
        tree.insert(
            super::super::keys::counter(CHAIN_V2_FROM),
            &4u64.to_be_bytes()[..],
        )
        .unwrap();
        assert_eq!(verify(&tree).unwrap(), (6, None));
    }

    #[test]
    fn moving_text_between_fields_breaks_the_chain() {
        // Format 2 (every event from seq 1) breaks; format 1 (no event is format 2)
        // cannot see the move — why format 2 exists.
        for (v2_from, breaks) in [(1, true), (u64::MAX, false)] {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let tree = db.open_tree("t").unwrap();
            tree.insert(
                super::super::keys::counter(CHAIN_V2_FROM),
                &v2_from.to_be_bytes()[..],
            )
            .unwrap();
            chain_formats(&tree, 3, v2_from);
            assert_eq!(verify(&tree).unwrap(), (3, None));
            // Give event 2 the fields ("a\n", "b"), re-linking the chain after it.
            let mut e: AuditEvent =
                codec::decode(&tree.get(event_key(2)).unwrap().unwrap()).unwrap();
            e.before = "a\n".into();
            e.after = "b".into();
            let fmt = chain_format(2, v2_from);
            e.digest = e.compute_digest(fmt);
            tree.insert(event_key(2), codec::encode(&e).unwrap())
                .unwrap();
            let mut e3: AuditEvent =
                codec::decode(&tree.get(event_key(3)).unwrap().unwrap()).unwrap();
            e3.prev_digest = e.digest.clone();
            e3.digest = e3.compute_digest(chain_format(3, v2_from));
            tree.insert(event_key(3), codec::encode(&e3).unwrap())
                .unwrap();
            assert_eq!(verify(&tree).unwrap(), (3, None));
            // Move the "\n" from `before` to `after`, keeping the stored digest.
            e.before = "a".into();
            e.after = "\nb".into();
            tree.insert(event_key(2), codec::encode(&e).unwrap())
                .unwrap();
            let broken = verify(&tree).unwrap().1;
            assert_eq!(broken.is_some(), breaks, "format {fmt}: {broken:?}");
        }
    }
}
