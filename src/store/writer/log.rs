//! Operations as log entries: the replicated mode (`crate::replication`) appends every
//! accepted write to a shared log and every replica applies the log in order through
//! the writer. An [`Entry`] is one submitted operation (its stamp, actor and request id
//! with it); an [`Envelope`] adds who appended it, so the replica that took the request
//! gives the entry its caller's renderer and reply channel when it applies it.
//!
//! Determinism: an operation carries everything time- or caller-dependent (the stamp,
//! the actor and its regions, the request id), so each replica's writer applies the same
//! entry to the same state with the same result ([`super::Operation`]). A reply is
//! rendered only where the request was taken; the request id is bound on every replica
//! to the entry's sequence ([`super::Remembered::Applied`]) when the entry is applied,
//! and to the reply's bytes by the [`BindReply`] entry the taking replica appends next,
//! so a retry on any replica gets the same bytes back.

use super::*;

/// Encoding version of an [`Envelope`] (the first byte).
const ENVELOPE_VERSION: u8 = 1;

/// Generates [`Entry`] — one variant per replicated operation, in a fixed order (new
/// operations are added at the end: the position is the encoding) — and the job a
/// replica makes of an entry it did not take.
macro_rules! entries {
    ($($variant:ident($op:ty)),* $(,)?) => {
        /// One replicated write: a submitted operation of one of the replicated kinds.
        /// The operations not listed are applied only where they are submitted (the
        /// backups: each replica backs itself up).
        // Built and consumed once per write; boxing the large variants buys nothing.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Serialize, Deserialize)]
        pub enum Entry {
            $($variant(Submitted<$op>),)*
        }

        impl Entry {
            /// The job that applies an entry taken by another replica: no renderer, and
            /// nobody waits for its answer.
            pub(in crate::store) fn into_foreign_job(self, seq: u64) -> Box<dyn Queued> {
                match self {
                    $(Entry::$variant(s) => foreign(s, seq),)*
                }
            }

            /// The operation's name (logs, errors).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Entry::$variant(_) => stringify!($variant),)*
                }
            }
        }
    };
}

entries! {
    UpsertEnterprise(op::UpsertEnterprise),
    RecordPenalty(op::RecordPenalty),
    FileAnnualReport(op::FileAnnualReport),
    AddListing(op::AddListing),
    RecordInspection(op::RecordInspection),
    RecordSampling(op::RecordSampling),
    RecordComplaints(op::RecordComplaints),
    Import(op::Import),
    SweepChunk(op::SweepChunk),
    Remember(op::Remember<Vec<u8>>),
    RegisterModel(op::RegisterModel),
    BeginRun(op::BeginRun),
    FinishRun(op::FinishRun),
    AbortRun(op::AbortRun),
    ActivateRun(op::ActivateRun),
    SavePlan(op::SavePlan),
    RecordDraw(op::RecordDraw),
    RecordAssignment(op::RecordAssignment),
    CommitJoint(op::CommitJoint),
    RevealJointSeed(op::RevealJointSeed),
    CompleteJoint(op::CompleteJoint),
    UpsertInspector(op::UpsertInspector),
    SubmitRepair(op::SubmitRepair),
    DecideRepairCase(op::DecideRepairCase),
    FileObjection(op::FileObjection),
    ResolveObjection(op::ResolveObjection),
    RecordCommitment(op::RecordCommitment),
    VerifyCommitment(op::VerifyCommitment),
    RaiseOverdueRepairs(op::RaiseOverdueRepairs),
    TriageAlert(op::TriageAlert),
    RecordMatches(op::RecordMatches),
    BindReply(BindReply),
    WriteRunResults(op::WriteRunResults),
    Checkpoint(Checkpoint),
    LogPart(LogPart),
    RetireRuns(op::RetireRuns),
}

/// The `Operation` methods of a replicated operation: it travels as `Entry::$variant`.
macro_rules! logged {
    ($variant:ident) => {
        fn into_entry(
            s: Submitted<Self>,
        ) -> Result<std::result::Result<super::log::Entry, Submitted<Self>>> {
            Ok(Ok(super::log::Entry::$variant(s)))
        }
        fn from_entry(e: super::log::Entry) -> Option<Submitted<Self>> {
            match e {
                super::log::Entry::$variant(s) => Some(s),
                _ => None,
            }
        }
    };
}

/// The `Operation` methods of an operation applied only where it is submitted.
macro_rules! local_only {
    () => {
        fn into_entry(
            s: Submitted<Self>,
        ) -> Result<std::result::Result<super::log::Entry, Submitted<Self>>> {
            Ok(Err(s))
        }
        fn from_entry(_: super::log::Entry) -> Option<Submitted<Self>> {
            None
        }
    };
}

fn foreign<O: Operation>(submitted: Submitted<O>, seq: u64) -> Box<dyn Queued> {
    let (reply, _) = oneshot::channel();
    Box::new(Job {
        submitted,
        render: None,
        reply,
        seq: Some(seq),
    })
}

/// Who appended an entry: the replica's name, its boot (a random number per process
/// start) and a counter, so the replica can tell its own entries from its peers' (and
/// from those of its earlier lives, whose callers are gone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub node: String,
    pub boot: u64,
    pub nonce: u64,
}

impl Origin {
    /// The log's deduplication id of the entry (a re-sent append is stored once).
    pub fn msg_id(&self) -> String {
        format!("{}-{:016x}-{}", self.node, self.boot, self.nonce)
    }
}

/// An entry as the log stores it: who appended it, and the entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: Origin,
    pub entry: Entry,
}

impl Envelope {
    /// Version byte + postcard.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![ENVELOPE_VERSION];
        out.extend(
            postcard::to_allocvec(self)
                .map_err(|e| Error::Corrupt(format!("encoding a log entry: {e}")))?,
        );
        Ok(out)
    }

    /// The envelope of `bytes`; CORRUPT if the version is unknown or the bytes do not
    /// decode (a replica never skips an entry it cannot read).
    pub fn decode(bytes: &[u8]) -> Result<Envelope> {
        match bytes.split_first() {
            Some((&ENVELOPE_VERSION, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::Corrupt(format!("log entry does not decode: {e}"))),
            Some((v, _)) => Err(Error::Corrupt(format!(
                "log entry version {v}; this build reads {ENVELOPE_VERSION}"
            ))),
            None => Err(Error::Corrupt("empty log entry".into())),
        }
    }
}

/// Where the replicated mode appends entries: the log's client (`crate::replication`).
/// `append` returns the entry's sequence once the log holds it durably (by its own
/// definition: a quorum of the stream's replicas).
pub trait LogSink: Send + Sync + 'static {
    /// The largest message the log takes (bytes): an entry above it is appended as parts
    /// (`crate::replication`), so this sizes entries, it does not bound them.
    fn max_entry_bytes(&self) -> usize;

    fn append(
        &self,
        msg_id: String,
        payload: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send>>;
}

/// A write this replica appended, waiting for the applier to reach it: the caller's
/// renderer and reply channel, typed.
pub(in crate::store) trait Waiting: Send {
    /// The job that applies `entry` (this waiter's own) at `seq` and answers the caller.
    fn into_job(self: Box<Self>, entry: Entry, seq: u64) -> Result<Box<dyn Queued>>;
}

/// The typed half of a [`Waiting`] write.
pub(in crate::store) struct Waiter<O: Operation> {
    pub render: Option<Render<O::Output>>,
    pub reply: oneshot::Sender<Result<Answer<O::Output>>>,
}

impl<O: Operation> Waiting for Waiter<O> {
    fn into_job(self: Box<Self>, entry: Entry, seq: u64) -> Result<Box<dyn Queued>> {
        let name = entry.name();
        let submitted = O::from_entry(entry).ok_or_else(|| {
            Error::Corrupt(format!(
                "log entry {seq} is a {name}, not the operation its origin waits for"
            ))
        })?;
        Ok(Box::new(Job {
            submitted,
            render: self.render,
            reply: self.reply,
            seq: Some(seq),
        }))
    }
}

/// Binds a request id, already applied at a sequence of the log, to the reply its first
/// caller got (appended by the replica that rendered it). Not an audit event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BindReply {
    pub rpc: String,
    pub id: String,
    pub fingerprint: [u8; 32],
    pub reply: Vec<u8>,
}

impl Operation for BindReply {
    type Output = ();
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    const AUDITED: bool = false;
    fn cause(&self) -> String {
        "request reply".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        let key = keys::request(&self.rpc, &self.id);
        let bind = match tx.w.tree.get(&key)? {
            Some(v) => {
                let stored: StoredRequest = codec::decode(&v)?;
                stored.fingerprint == self.fingerprint
                    && matches!(stored.answer, Remembered::Applied(_))
            }
            None => false,
        };
        if bind {
            let stored = StoredRequest {
                fingerprint: self.fingerprint,
                answer: Remembered::Reply(self.reply),
            };
            tx.p.put(key, codec::encode(&stored)?);
        }
        Ok(())
    }
    logged!(BindReply);
}

/// The counter (`S` key) holding this replica's chain of batch digests: the sequence
/// after which the chain began (8 bytes big-endian: 0 for a store that applied the log
/// from its start, else the sequence it had applied when a build with chains first
/// opened it; a restored backup keeps its peer's) and 32 bytes, the digest of the last
/// logged batch chained onto the one before ([`chain`]); written in that batch (outside
/// its digest). Chains that began at different sequences are not compared.
pub(in crate::store) const LOG_CHAIN: &str = "log_chain";

/// The digest of the writes of one logged batch: each key written with its last value
/// (or its removal) in the batch, combined regardless of order (a job's counters are
/// written from a hash map). Replicas applying the same entry to the same state write
/// the same keys and values, so equal batches give equal digests, however the writer
/// grouped its jobs.
#[derive(Debug, Default)]
pub(in crate::store) struct BatchDigest(HashMap<[u8; 32], [u8; 32]>);

impl BatchDigest {
    pub fn write(&mut self, k: &[u8], v: Option<&[u8]>) {
        use sha2::{Digest, Sha256};
        let kh: [u8; 32] = Sha256::digest(k).into();
        let mut h = Sha256::new();
        match v {
            Some(v) => {
                h.update([1u8]);
                h.update(v);
            }
            None => h.update([0u8]),
        }
        self.0.insert(kh, h.finalize().into());
    }

    /// The digest: the sum (four 64-bit lanes, wrapping) of SHA-256(key hash ‖ value
    /// hash) over the keys, and their number.
    pub fn finish(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut lanes = [0u64; 4];
        for (k, v) in &self.0 {
            let d: [u8; 32] = Sha256::new()
                .chain_update(k)
                .chain_update(v)
                .finalize()
                .into();
            for (i, lane) in lanes.iter_mut().enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[i * 8..i * 8 + 8]);
                *lane = lane.wrapping_add(u64::from_be_bytes(b));
            }
        }
        let mut h = Sha256::new();
        h.update((self.0.len() as u64).to_be_bytes());
        for lane in lanes {
            h.update(lane.to_be_bytes());
        }
        h.finalize().into()
    }
}

/// The chain after the batch of log entry `seq` with digest `batch`.
pub(in crate::store) fn chain(prev: &[u8; 32], seq: u64, batch: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(prev)
        .chain_update(seq.to_be_bytes())
        .chain_update(batch)
        .finalize()
        .into()
}

/// A replica's chain of batch digests as it was before it applied entry `at` (a
/// multiple of `[replication] checkpoint_every`), appended by each replica when it gets
/// there. Every replica compares the others' with its own (`Writer::vote`): one that
/// disagrees with two peers which agree with each other has diverged — it records so and
/// stops (docs/DEPLOY.md says how to rebuild it). Not an audit event; writes nothing else.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub node: String,
    pub at: u64,
    /// The sequence after which the replica's chain began.
    pub since: u64,
    pub chain: [u8; 32],
}

/// What a replica concludes from its peers' chains at one checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::store) enum Verdict {
    /// No peer disagrees.
    Agreed,
    /// Peers disagree, but not two that agree with each other against this replica and
    /// none with it: logged.
    Disputed,
    /// Two or more peers agree with each other on another chain and none with this
    /// replica: it diverged. The peers, by name.
    Diverged(Vec<String>),
}

/// The verdict on this replica's chain `mine` given its peers' chains at the same
/// checkpoint (by node).
pub(in crate::store) fn verdict(mine: &[u8; 32], peers: &BTreeMap<String, [u8; 32]>) -> Verdict {
    if peers.values().all(|c| c == mine) {
        return Verdict::Agreed;
    }
    if peers.values().any(|c| c == mine) {
        return Verdict::Disputed;
    }
    let mut by_chain: BTreeMap<&[u8; 32], Vec<String>> = BTreeMap::new();
    for (n, c) in peers {
        by_chain.entry(c).or_default().push(n.clone());
    }
    match by_chain.into_values().max_by_key(|v| v.len()) {
        Some(names) if names.len() >= 2 => Verdict::Diverged(names),
        _ => Verdict::Disputed,
    }
}

impl Operation for Checkpoint {
    type Output = ();
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    const AUDITED: bool = false;
    fn cause(&self) -> String {
        format!("checkpoint of {} at {}", self.node, self.at)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<()> {
        tx.w.vote(&mut tx.p, self)
    }
    logged!(Checkpoint);
}

/// A part of an entry larger than one log message (NATS's `max_payload`): the log client
/// appends such an entry as parts, the last of which names the others' sequences, and
/// applies the whole at the last part's sequence (`crate::replication`). Every replica
/// applies each earlier part as this: it only moves the replica's applied sequence past
/// it (so reads naming a later sequence are not kept waiting). Writes nothing else.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogPart;

impl Operation for LogPart {
    type Output = ();
    const RESCORES: bool = false;
    const ALERTS: bool = false;
    const AUDITED: bool = false;
    fn cause(&self) -> String {
        "part of a log entry".into()
    }
    fn apply(self, _tx: &mut Tx<'_>) -> Result<()> {
        Ok(())
    }
    logged!(LogPart);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_diverged_when_two_agreeing_peers_contradict_it_and_none_agrees() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let peers = |v: &[(&str, [u8; 32])]| -> BTreeMap<String, [u8; 32]> {
            v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
        };
        assert_eq!(verdict(&a, &peers(&[])), Verdict::Agreed);
        assert_eq!(
            verdict(&a, &peers(&[("r2", a), ("r3", a)])),
            Verdict::Agreed
        );
        // One peer against: it may be the one that diverged.
        assert_eq!(verdict(&a, &peers(&[("r2", b)])), Verdict::Disputed);
        // One with, one against: the one against diverged, not this one.
        assert_eq!(
            verdict(&a, &peers(&[("r2", a), ("r3", b)])),
            Verdict::Disputed
        );
        // Two against that disagree with each other: nobody can tell.
        assert_eq!(
            verdict(&a, &peers(&[("r2", b), ("r3", c)])),
            Verdict::Disputed
        );
        assert_eq!(
            verdict(&a, &peers(&[("r2", b), ("r3", b)])),
            Verdict::Diverged(vec!["r2".into(), "r3".into()])
        );
        // Five replicas: three agree on b, one on c, none with this one.
        assert_eq!(
            verdict(&a, &peers(&[("r2", b), ("r3", c), ("r4", b), ("r5", b)])),
            Verdict::Diverged(vec!["r2".into(), "r4".into(), "r5".into()])
        );
    }

    #[test]
    fn a_batch_digest_is_the_keys_last_values_in_any_order() {
        let mut a = BatchDigest::default();
        a.write(b"k1", Some(b"v1"));
        a.write(b"k2", None);
        let mut b = BatchDigest::default();
        b.write(b"k2", None);
        b.write(b"k1", Some(b"old"));
        b.write(b"k1", Some(b"v1"));
        assert_eq!(
            a.finish(),
            b.finish(),
            "order and overwritten values do not count"
        );
        let mut c = BatchDigest::default();
        c.write(b"k1", Some(b"v1"));
        c.write(b"k2", Some(b""));
        assert_ne!(a.finish(), c.finish(), "a removal is not an empty value");
        let mut d = BatchDigest::default();
        d.write(b"k1", Some(b"v1"));
        assert_ne!(a.finish(), d.finish(), "a key less");
        assert_ne!(BatchDigest::default().finish(), d.finish());
        let z = [0u8; 32];
        assert_ne!(
            chain(&z, 1, &a.finish()),
            chain(&z, 2, &a.finish()),
            "the sequence counts"
        );
        assert_ne!(
            chain(&z, 1, &a.finish()),
            chain(&[1; 32], 1, &a.finish()),
            "the past counts"
        );
    }

    fn stamp() -> Stamp {
        Stamp {
            today: Date::parse("today", "2026-12-04").unwrap(),
            now_ms: 1_780_000_000_000,
        }
    }

    #[test]
    fn an_envelope_round_trips_with_the_actors_regions() {
        let mut actor = Actor::system("RecordMatches");
        actor.regions = vec!["3101".into()];
        let env = Envelope {
            origin: Origin {
                node: "a".into(),
                boot: 7,
                nonce: 3,
            },
            entry: Entry::RecordMatches(Submitted {
                op: op::RecordMatches(vec![(202612, true, 5)]),
                at: stamp(),
                actor,
                request: None,
            }),
        };
        let back = Envelope::decode(&env.encode().unwrap()).unwrap();
        assert_eq!(back.origin, env.origin);
        match back.entry {
            Entry::RecordMatches(s) => {
                assert_eq!(s.op.0, vec![(202612, true, 5)]);
                assert_eq!(s.at, stamp());
                assert_eq!(s.actor.regions, vec!["3101".to_string()]);
            }
            other => panic!("decoded as {}", other.name()),
        }
    }

    #[test]
    fn an_unknown_version_or_damaged_entry_is_refused() {
        assert!(Envelope::decode(&[]).is_err());
        assert!(Envelope::decode(&[9, 1, 2]).is_err());
        assert!(Envelope::decode(&[ENVELOPE_VERSION, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn remember_travels_as_bytes_and_comes_back_typed() {
        let s = Submitted {
            op: op::Remember(op::SweepCounts::default()),
            at: stamp(),
            actor: Actor::system("x"),
            request: None,
        };
        let entry = op::Remember::<op::SweepCounts>::into_entry(s)
            .unwrap()
            .unwrap();
        assert_eq!(entry.name(), "Remember");
        let back = op::Remember::<op::SweepCounts>::from_entry(entry).unwrap();
        assert_eq!(
            format!("{:?}", back.op.0),
            format!("{:?}", op::SweepCounts::default())
        );
    }
}
