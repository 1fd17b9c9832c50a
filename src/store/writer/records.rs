//! Registry records: enterprises, penalties, annual reports, listings, inspection
//! results, quality samplings, complaint summaries, imports and the annual-report sweep; the index check.

use super::*;
use crate::domain::scoring::RecordRef;

/// Creates or replaces an enterprise's profile (主体登记信息).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpsertEnterprise(#[serde(with = "wire::keyed")] pub Enterprise);

/// What an upsert stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Upserted {
    pub enterprise: Enterprise,
    /// Whether the enterprise was new.
    pub created: bool,
}

impl Operation for UpsertEnterprise {
    type Output = Upserted;
    fn cause(&self) -> String {
        "UpsertEnterprise".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Upserted> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.upsert_enterprise(p, self.0)?.0)
    }
    fn subject(out: &Upserted) -> Option<Uscc> {
        Some(out.enterprise.uscc)
    }
    logged!(UpsertEnterprise);
}

/// Records an administrative penalty (行政处罚).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordPenalty(#[serde(with = "wire::keyed")] pub Penalty);

impl Operation for RecordPenalty {
    type Output = Penalty;
    fn cause(&self) -> String {
        format!("RecordPenalty penalty/{}", self.0.decision_number)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Penalty> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.record_penalty(p, self.0)?.0)
    }
    fn subject(out: &Penalty) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(RecordPenalty);
}

/// Files an annual report (年度报告).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileAnnualReport(#[serde(with = "wire::keyed")] pub AnnualReport);

impl Operation for FileAnnualReport {
    type Output = AnnualReport;
    fn cause(&self) -> String {
        format!("FileAnnualReport annual_report/{}", self.0.year)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<AnnualReport> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.file_report(p, self.0)?.0)
    }
    fn subject(out: &AnnualReport) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(FileAnnualReport);
}

/// Adds a listing (abnormal operations, serious illegal, abnormal status mark).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddListing(#[serde(with = "wire::keyed")] pub Listing);

impl Operation for AddListing {
    type Output = Listing;
    fn cause(&self) -> String {
        format!("AddListing listing/{}", self.0.listing_id())
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<Listing> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.add_listing(p, self.0)?.0)
    }
    fn subject(out: &Listing) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(AddListing);
}

/// Records a spot-check result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordInspection(#[serde(with = "wire::keyed")] pub InspectionResult);

impl Operation for RecordInspection {
    type Output = InspectionResult;
    fn cause(&self) -> String {
        format!("RecordInspectionResult inspection/{}", self.0.task_id)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<InspectionResult> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.record_inspection(p, self.0)?.0)
    }
    fn subject(out: &InspectionResult) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(RecordInspection);
}

/// Records a quality sampling result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordSampling(#[serde(with = "wire::keyed")] pub QualitySampling);

impl Operation for RecordSampling {
    type Output = QualitySampling;
    fn cause(&self) -> String {
        format!(
            "RecordSamplingResult {}",
            RecordRef::Sampling(&self.0.sample_id).id()
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<QualitySampling> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.record_sampling(p, self.0)?.0)
    }
    fn subject(out: &QualitySampling) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(RecordSampling);
}

/// Records (or replaces) an enterprise's complaint and report summary of one month.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordComplaints(#[serde(with = "wire::keyed")] pub ComplaintSummary);

impl Operation for RecordComplaints {
    type Output = ComplaintSummary;
    fn cause(&self) -> String {
        format!(
            "RecordComplaintSummary {}",
            RecordRef::Complaints(self.0.month).id()
        )
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ComplaintSummary> {
        let (ctx, p) = tx.ctx();
        Ok(ctx.record_complaints(p, self.0)?.0)
    }
    fn subject(out: &ComplaintSummary) -> Option<Uscc> {
        Some(out.uscc)
    }
    logged!(RecordComplaints);
}

/// One record of an import, already parsed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ImportItem {
    Enterprise(#[serde(with = "wire::keyed")] Enterprise),
    Penalty(#[serde(with = "wire::keyed")] Penalty),
    Report(#[serde(with = "wire::keyed")] AnnualReport),
    Listing(#[serde(with = "wire::keyed")] Listing),
    Inspection(#[serde(with = "wire::keyed")] InspectionResult),
    Commitment(#[serde(with = "wire::keyed")] crate::domain::commitment::Commitment),
    Sampling(#[serde(with = "wire::keyed")] QualitySampling),
    Complaints(#[serde(with = "wire::keyed")] ComplaintSummary),
}

impl ImportItem {
    /// The enterprise the record belongs to.
    pub fn uscc(&self) -> &Uscc {
        match self {
            ImportItem::Enterprise(x) => &x.uscc,
            ImportItem::Penalty(x) => &x.uscc,
            ImportItem::Report(x) => &x.uscc,
            ImportItem::Listing(x) => &x.uscc,
            ImportItem::Inspection(x) => &x.uscc,
            ImportItem::Commitment(x) => &x.uscc,
            ImportItem::Sampling(x) => &x.uscc,
            ImportItem::Complaints(x) => &x.uscc,
        }
    }
}

/// A chunk of an import: (index in the stream, record); each record is stored or
/// refused on its own, the stored ones in one batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Import(pub Vec<(u64, ImportItem)>);

/// A refused import record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRejection {
    pub index: u64,
    pub kind: &'static str,
    pub key: String,
    pub error: String,
    pub code: &'static str,
}

/// Result of one import chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub stored: u64,
    pub unchanged: u64,
    pub rejections: Vec<ImportRejection>,
}

impl Operation for Import {
    type Output = ImportOutcome;
    /// A bulk load of history: its listings and penalties are not news.
    const ALERTS: bool = false;
    fn cause(&self) -> String {
        "ImportRecords".into()
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<ImportOutcome> {
        let (ctx, p) = tx.ctx();
        // A chunk comes in key order from the staging: when no dossier lies between its
        // first and last enterprise (a first load), none is read.
        let usccs = self.0.iter().map(|(_, item)| item.uscc());
        if let (Some(lo), Some(hi)) = (usccs.clone().min(), usccs.max()) {
            p.note_absent_between(lo, hi)?;
        }
        p.bulk = true;
        let o = ctx.import(p, self.0);
        p.bulk = false;
        p.absent = None;
        p.change = Some(Change {
            target: "import".into(),
            after: format!(
                "ImportRecords chunk: stored {}, unchanged {}, refused {}",
                o.stored,
                o.unchanged,
                o.rejections.len()
            ),
            ..Change::default()
        });
        Ok(o)
    }
    logged!(Import);
}

/// One chunk of the annual-report sweep: `limit` directory entries after the directory
/// key `after`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepChunk {
    pub year: u16,
    pub as_of: Date,
    pub after: Option<Vec<u8>>,
    pub limit: usize,
}

/// Counts of one sweep chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepCounts {
    pub examined: u64,
    pub listed_abnormal: u64,
    pub marked_abnormal_status: u64,
    pub moved_serious: u64,
    pub already_listed: u64,
    /// Directory key of the last entry of the chunk (the cursor for the next chunk);
    /// `None` when done.
    pub last: Option<Vec<u8>>,
}

impl Operation for SweepChunk {
    type Output = SweepCounts;
    fn cause(&self) -> String {
        format!("SweepAnnualReports {}", self.year)
    }
    fn apply(self, tx: &mut Tx<'_>) -> Result<SweepCounts> {
        let (ctx, p) = tx.ctx();
        ctx.sweep_chunk(p, self.year, self.as_of, self.after.as_deref(), self.limit)
    }
    logged!(SweepChunk);
}

/// Stores only the idempotency record of a request whose effects earlier jobs
/// committed (the sweep's chunks, a backup's file): the output is the value given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Remember<T>(pub T);

impl<T: Serialize + DeserializeOwned + Debug + Send + 'static> Operation for Remember<T> {
    type Output = T;
    fn cause(&self) -> String {
        String::new()
    }
    fn apply(self, _tx: &mut Tx<'_>) -> Result<T> {
        Ok(self.0)
    }
    /// Travels as `Entry::Remember`, the value encoded (postcard), decoded back where it
    /// is applied.
    fn into_entry(
        s: Submitted<Self>,
    ) -> Result<std::result::Result<super::log::Entry, Submitted<Self>>> {
        let bytes = postcard::to_allocvec(&s.op.0)
            .map_err(|e| Error::Corrupt(format!("encoding a remembered value: {e}")))?;
        Ok(Ok(super::log::Entry::Remember(Submitted {
            op: Remember(bytes),
            at: s.at,
            actor: s.actor,
            request: s.request,
        })))
    }
    fn from_entry(e: super::log::Entry) -> Option<Submitted<Self>> {
        let super::log::Entry::Remember(s) = e else {
            return None;
        };
        let value = postcard::from_bytes(&s.op.0).ok()?;
        Some(Submitted {
            op: Remember(value),
            at: s.at,
            actor: s.actor,
            request: s.request,
        })
    }
}

impl Ctx<'_> {
    pub(super) fn upsert_enterprise(
        &self,
        p: &mut Pending,
        mut e: Enterprise,
    ) -> Result<Applied<Upserted>> {
        e.validate(self.today)?;
        let u = e.uscc;
        let old = p.doc(&u)?.and_then(|d| d.enterprise.clone());
        if let Some(o) = &old {
            e.recorded_at_ms = o.recorded_at_ms;
            if *o == e {
                return Ok((
                    Upserted {
                        enterprise: e,
                        created: false,
                    },
                    false,
                ));
            }
        }
        e.recorded_at_ms = self.now_ms;
        let brief = |x: &Enterprise| {
            format!(
                "{} | {:?} | {:?} | region {}",
                x.name,
                x.entity_type,
                x.status,
                x.region.as_str()
            )
        };
        p.describe(|| Change {
            before: old.as_ref().map(brief).unwrap_or_default(),
            after: brief(&e),
            ..Change::default()
        });
        let dir = keys::directory(&e);
        if let Some(o) = &old {
            let old_dir = keys::directory(o);
            if old_dir != dir {
                p.del(old_dir);
            }
        }
        p.put(dir, Vec::new());
        let slot = p.doc_mut(&u)?;
        match slot {
            Some(d) => d.enterprise = Some(e.clone()),
            None => {
                *slot = Some(EnterpriseRecords {
                    enterprise: Some(e.clone()),
                    ..EnterpriseRecords::default()
                })
            }
        }
        let created = old.is_none();
        if created {
            p.created += 1;
        }
        Ok((
            Upserted {
                enterprise: e,
                created,
            },
            true,
        ))
    }

    pub(super) fn record_penalty(
        &self,
        p: &mut Pending,
        mut x: Penalty,
    ) -> Result<Applied<Penalty>> {
        x.validate(self.today)?;
        let u = x.uscc;
        p.registered_mut(&u, "penalty.uscc")?;
        let dkey = keys::decision(&x.decision_number);
        if let Some(owner) = p.get(&dkey)? {
            let owner = Uscc::from_bytes(&owner)?;
            if owner == u {
                let old = p.doc(&owner)?.and_then(|d| {
                    d.penalties
                        .iter()
                        .find(|q| q.decision_number == x.decision_number)
                        .cloned()
                });
                if let Some(old) = old {
                    x.recorded_at_ms = old.recorded_at_ms;
                    x.publicity_ended_on = old.publicity_ended_on;
                    if old == x {
                        return Ok((old, false));
                    }
                }
            }
            return Err(Error::AlreadyExists(format!(
                "penalty.decision_number: {:?} (recorded for {owner})",
                x.decision_number
            )));
        }
        x.recorded_at_ms = self.now_ms;
        x.publicity_ended_on = None;
        p.describe(|| Change {
            after: format!(
                "penalty/{} decided {} {:?} fine {} fen",
                x.decision_number, x.decided_on, x.kinds, x.fine_fen
            ),
            ..Change::default()
        });
        p.put(dkey, u.as_bytes().to_vec());
        let d = p.registered_mut(&u, "penalty.uscc")?;
        let at = d
            .penalties
            .partition_point(|q| q.decision_number < x.decision_number);
        d.penalties.insert(at, x.clone());
        Ok((x, true))
    }

    pub(super) fn file_report(
        &self,
        p: &mut Pending,
        mut x: AnnualReport,
    ) -> Result<Applied<AnnualReport>> {
        x.validate(self.today)?;
        let d = p.registered_mut(&x.uscc, "report.uscc")?;
        let established = d
            .enterprise
            .as_ref()
            .map(|e| e.established_on)
            .unwrap_or(Date::MIN);
        if i32::from(x.year) < established.year() {
            return Err(Error::invalid(
                "report.year",
                format!("{} is before establishment ({established})", x.year),
            ));
        }
        if let Some(old) = d.reports.iter().find(|r| r.year == x.year) {
            return Ok((old.clone(), false));
        }
        x.recorded_at_ms = self.now_ms;
        p.describe(|| Change {
            after: format!("annual_report/{} filed {}", x.year, x.filed_on),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "report.uscc")?;
        let at = d.reports.partition_point(|r| r.year < x.year);
        d.reports.insert(at, x.clone());
        Ok((x, true))
    }

    pub(super) fn add_listing(&self, p: &mut Pending, mut x: Listing) -> Result<Applied<Listing>> {
        let d = p.registered_mut(&x.uscc, "listing.uscc")?;
        let (entity_type, rep) = d
            .enterprise
            .as_ref()
            .map(|e| (e.entity_type, e.legal_rep_hash))
            .ok_or_else(|| Error::Corrupt("dossier without profile".into()))?;
        x.validate(self.today, entity_type)?;
        // The person Art. 17 bars: whoever heads the firm when it is listed.
        x.legal_rep_hash = rep.filter(|_| x.kind == ListKind::SeriousIllegal);
        // Its term derives from the rules, as the stored one's does (for the comparison).
        p.rules.apply_terms(&mut x);
        let d = p.registered_mut(&x.uscc, "listing.uscc")?;
        if let Some(old) = d.listings.iter().find(|l| same_listing(l, &x)) {
            x.recorded_at_ms = old.recorded_at_ms;
            x.legal_rep_hash = old.legal_rep_hash;
            if *old == x {
                return Ok((old.clone(), false));
            }
            return Err(Error::AlreadyExists(format!(
                "listing: {} of {}",
                x.listing_id(),
                x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.describe(|| Change {
            after: format!(
                "listing/{}{}",
                x.listing_id(),
                x.removed_on
                    .map(|r| format!(" removed {r}"))
                    .unwrap_or_default()
            ),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "listing.uscc")?;
        insert_listing(d, x.clone());
        Ok((x, true))
    }

    pub(super) fn record_inspection(
        &self,
        p: &mut Pending,
        mut x: InspectionResult,
    ) -> Result<Applied<InspectionResult>> {
        x.validate(self.today)?;
        let d = p.registered(&x.uscc, "result.uscc")?;
        if let Some(old) = d.inspections.iter().find(|i| i.task_id == x.task_id) {
            // One visit per enterprise and task: another department's items join it
            // (a joint task); the same items again change nothing.
            let merged = match old.merged(&x) {
                Ok(None) => return Ok((old.clone(), false)),
                Ok(Some(m)) => m,
                Err(why) => {
                    return Err(Error::AlreadyExists(format!(
                        "result: task {:?} for {} ({why})",
                        x.task_id, x.uscc
                    )))
                }
            };
            let added: Vec<&String> = merged
                .check_items
                .iter()
                .filter(|i| !old.check_items.contains(i))
                .collect();
            p.describe(|| Change {
                after: format!(
                    "inspection/{} on {} items added: {added:?}; problems found: {}",
                    merged.task_id, merged.inspected_on, merged.problems_found
                ),
                ..Change::default()
            });
            let d = p.registered_mut(&x.uscc, "result.uscc")?;
            if let Some(slot) = d.inspections.iter_mut().find(|i| i.task_id == x.task_id) {
                *slot = merged.clone();
            }
            return Ok((merged, true));
        }
        x.recorded_at_ms = self.now_ms;
        p.describe(|| Change {
            after: format!(
                "inspection/{} on {} problems found: {}",
                x.task_id, x.inspected_on, x.problems_found
            ),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "result.uscc")?;
        let at = d.inspections.partition_point(|i| i.task_id < x.task_id);
        d.inspections.insert(at, x.clone());
        Ok((x, true))
    }

    pub(super) fn record_sampling(
        &self,
        p: &mut Pending,
        mut x: QualitySampling,
    ) -> Result<Applied<QualitySampling>> {
        x.validate(self.today)?;
        let d = p.registered(&x.uscc, "sampling.uscc")?;
        if let Some(old) = d.samplings.iter().find(|i| i.sample_id == x.sample_id) {
            x.recorded_at_ms = old.recorded_at_ms;
            if *old == x {
                return Ok((old.clone(), false));
            }
            return Err(Error::AlreadyExists(format!(
                "sampling: report {:?} for {}",
                x.sample_id, x.uscc
            )));
        }
        x.recorded_at_ms = self.now_ms;
        p.describe(|| Change {
            after: format!(
                "{} on {} passed: {}",
                RecordRef::Sampling(&x.sample_id).id(),
                x.sampled_on,
                x.passed
            ),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "sampling.uscc")?;
        let at = d.samplings.partition_point(|i| i.sample_id < x.sample_id);
        d.samplings.insert(at, x.clone());
        Ok((x, true))
    }

    /// A month's summary is replaced by a later one with other counts (the platform's
    /// corrected figures); the same again changes nothing.
    pub(super) fn record_complaints(
        &self,
        p: &mut Pending,
        mut x: ComplaintSummary,
    ) -> Result<Applied<ComplaintSummary>> {
        x.validate(self.today)?;
        let d = p.registered(&x.uscc, "complaints.uscc")?;
        let at = d.complaints.partition_point(|c| c.month < x.month);
        let old = d.complaints.get(at).filter(|c| c.month == x.month).cloned();
        if let Some(old) = &old {
            x.recorded_at_ms = old.recorded_at_ms;
            if *old == x {
                return Ok((old.clone(), false));
            }
        }
        x.recorded_at_ms = self.now_ms;
        let show = |c: &ComplaintSummary| {
            format!(
                "{} complaints {} reports {} verified {} ({})",
                RecordRef::Complaints(c.month).id(),
                c.complaints,
                c.reports,
                c.verified,
                c.source
            )
        };
        p.describe(|| Change {
            before: old.as_ref().map(show).unwrap_or_default(),
            after: show(&x),
            ..Change::default()
        });
        let d = p.registered_mut(&x.uscc, "complaints.uscc")?;
        match old {
            Some(_) => d.complaints[at] = x.clone(),
            None => d.complaints.insert(at, x.clone()),
        }
        Ok((x, true))
    }

    pub(super) fn import(&self, p: &mut Pending, items: Vec<(u64, ImportItem)>) -> ImportOutcome {
        let mut out = ImportOutcome::default();
        for (index, item) in items {
            let named = ItemName::of(&item);
            let r = match item {
                ImportItem::Enterprise(x) => self.upsert_enterprise(p, x).map(|r| r.1),
                ImportItem::Penalty(x) => self.record_penalty(p, x).map(|r| r.1),
                ImportItem::Report(x) => self.file_report(p, x).map(|r| r.1),
                ImportItem::Listing(x) => self.add_listing(p, x).map(|r| r.1),
                ImportItem::Inspection(x) => self.record_inspection(p, x).map(|r| r.1),
                ImportItem::Commitment(x) => self.import_commitment(p, x).map(|r| r.1),
                ImportItem::Sampling(x) => self.record_sampling(p, x).map(|r| r.1),
                ImportItem::Complaints(x) => self.record_complaints(p, x).map(|r| r.1),
            };
            match r {
                Ok(true) => out.stored += 1,
                Ok(false) => out.unchanged += 1,
                Err(e) => out.rejections.push(ImportRejection {
                    index,
                    kind: named.kind(),
                    key: named.key(),
                    code: e.code_name(),
                    error: e.to_string(),
                }),
            }
        }
        out
    }

    pub(super) fn sweep_chunk(
        &self,
        p: &mut Pending,
        year: u16,
        as_of: Date,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<SweepCounts> {
        let page = directory_page(p.tree, after, limit)?;
        let mut c = SweepCounts {
            last: page.last().map(|(k, _)| k.clone()),
            ..SweepCounts::default()
        };
        let active = [
            EnterpriseStatus::Operating.code(),
            EnterpriseStatus::Suspended.code(),
        ];
        for (_, entry) in page {
            if !active.contains(&entry.status) {
                continue;
            }
            let decision = {
                let Some(recs) = p.doc(&entry.uscc)? else {
                    continue;
                };
                let Some(e) = &recs.enterprise else { continue };
                self.options.rules.in_force(as_of).sweep.decide(
                    e,
                    &recs.reports,
                    &recs.listings,
                    year,
                    as_of,
                )
            };
            c.examined += 1;
            if decision.already_listed {
                c.already_listed += 1;
            }
            if decision.add.is_empty() {
                continue;
            }
            let d = p.registered_mut(&entry.uscc, "uscc")?;
            let rep = d.enterprise.as_ref().and_then(|e| e.legal_rep_hash);
            for mut l in decision.add {
                if l.kind == ListKind::SeriousIllegal {
                    l.legal_rep_hash = rep;
                }
                match l.kind {
                    ListKind::AbnormalOperations => c.listed_abnormal += 1,
                    ListKind::AbnormalStatusMark => c.marked_abnormal_status += 1,
                    ListKind::SeriousIllegal => c.moved_serious += 1,
                }
                l.recorded_at_ms = self.now_ms;
                insert_listing(d, l);
            }
        }
        Ok(c)
    }
}

/// Whether two listings have the same natural key (kind, listed on, reason).
pub(super) fn same_listing(a: &Listing, b: &Listing) -> bool {
    (a.kind, a.listed_on, a.reason) == (b.kind, b.listed_on, b.reason)
}

/// Inserts a listing in natural-key order.
pub(super) fn insert_listing(d: &mut EnterpriseRecords, l: Listing) {
    let k = (l.kind, l.listed_on, l.reason);
    let at = d
        .listings
        .partition_point(|x| (x.kind, x.listed_on, x.reason) < k);
    d.listings.insert(at, l);
}

/// What names an import record in a rejection: its kind and key, kept cheaply (the key
/// is only formatted when the record is refused).
pub(super) enum ItemName {
    Enterprise(Uscc),
    Penalty(String),
    Report(Uscc, u16),
    Listing(Uscc, ListKind, Date, crate::domain::records::ListingReason),
    Inspection(Uscc, String),
    Commitment(Uscc, String),
    Sampling(Uscc, String),
    Complaints(Uscc, crate::domain::stats::Month),
}

impl ItemName {
    pub(super) fn of(item: &ImportItem) -> ItemName {
        match item {
            ImportItem::Enterprise(x) => ItemName::Enterprise(x.uscc),
            ImportItem::Penalty(x) => ItemName::Penalty(x.decision_number.clone()),
            ImportItem::Report(x) => ItemName::Report(x.uscc, x.year),
            ImportItem::Listing(x) => ItemName::Listing(x.uscc, x.kind, x.listed_on, x.reason),
            ImportItem::Inspection(x) => ItemName::Inspection(x.uscc, x.task_id.clone()),
            ImportItem::Commitment(x) => ItemName::Commitment(x.uscc, x.commitment_id.clone()),
            ImportItem::Sampling(x) => ItemName::Sampling(x.uscc, x.sample_id.clone()),
            ImportItem::Complaints(x) => ItemName::Complaints(x.uscc, x.month),
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            ItemName::Enterprise(_) => "enterprise",
            ItemName::Penalty(_) => "penalty",
            ItemName::Report(..) => "annual_report",
            ItemName::Listing(..) => "listing",
            ItemName::Inspection(..) => "inspection",
            ItemName::Commitment(..) => "commitment",
            ItemName::Sampling(..) => "sampling",
            ItemName::Complaints(..) => "complaints",
        }
    }

    pub(super) fn key(&self) -> String {
        match self {
            ItemName::Enterprise(u) => u.to_string(),
            ItemName::Penalty(n) => n.clone(),
            ItemName::Report(u, y) => format!("{u}/{y}"),
            ItemName::Listing(u, kind, on, reason) => {
                format!("{u}/{}", Listing::id_of(*kind, *on, *reason))
            }
            ItemName::Inspection(u, id)
            | ItemName::Commitment(u, id)
            | ItemName::Sampling(u, id) => format!("{u}/{id}"),
            ItemName::Complaints(u, m) => format!("{u}/{m}"),
        }
    }
}

/// Verifies the indexes against the dossiers (both directions): every dossier has its
/// directory entry and its decision numbers, every directory entry and decision number
/// points at a dossier that matches. Returns the number of enterprises.
pub(in crate::store) fn check_indexes(tree: &sled::Tree) -> Result<u64> {
    let mut enterprises = 0u64;
    let mut decisions = 0u64;
    for kv in tree.scan_prefix([keys::RECORDS]) {
        let (k, v) = kv?;
        let u = keys::decode_enterprise(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad dossier key {k:?}")))?;
        let mut d = codec::decode_dossier(&v)?;
        d.set_uscc(u);
        let e = d
            .enterprise
            .as_ref()
            .ok_or_else(|| Error::Corrupt(format!("{u}: dossier without profile")))?;
        enterprises += 1;
        if !tree.contains_key(keys::directory(e))? {
            return Err(Error::Corrupt(format!("{u}: directory entry missing")));
        }
        for p in &d.penalties {
            decisions += 1;
            match tree.get(keys::decision(&p.decision_number))? {
                Some(owner) if owner.as_ref() == u.as_bytes() => {}
                _ => {
                    return Err(Error::Corrupt(format!(
                        "{u}: decision number {:?} not indexed",
                        p.decision_number
                    )))
                }
            }
        }
    }
    let mut entries = 0u64;
    for kv in tree.scan_prefix([keys::DIRECTORY]) {
        let (k, _) = kv?;
        entries += 1;
        let d = keys::decode_directory(&k)
            .ok_or_else(|| Error::Corrupt(format!("bad directory key {k:?}")))?;
        let e = match tree.get(keys::enterprise(&d.uscc))? {
            Some(v) => {
                let mut r = codec::decode_dossier(&v)?;
                r.set_uscc(d.uscc);
                r.enterprise
            }
            None => None,
        }
        .ok_or_else(|| Error::Corrupt(format!("directory names unknown {}", d.uscc)))?;
        if keys::directory(&e) != k.as_ref() {
            return Err(Error::Corrupt(format!(
                "directory entry of {} is stale",
                d.uscc
            )));
        }
    }
    if entries != enterprises {
        return Err(Error::Corrupt(format!(
            "{enterprises} enterprises but {entries} directory entries"
        )));
    }
    let indexed = tree.scan_prefix([keys::DECISIONS]).count() as u64;
    if indexed != decisions {
        return Err(Error::Corrupt(format!(
            "{decisions} penalties but {indexed} decision numbers"
        )));
    }
    Ok(enterprises)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures;

    #[test]
    fn a_refused_listing_is_named_by_its_listing_id() {
        let on = Date::ymd(2025, 3, 4).expect("date");
        let l = fixtures::listing(ListKind::AbnormalOperations, on);
        let want = format!("{}/{}", l.uscc, l.listing_id());
        let named = ItemName::of(&ImportItem::Listing(l));
        assert_eq!((named.kind(), named.key()), ("listing", want));
    }
}
