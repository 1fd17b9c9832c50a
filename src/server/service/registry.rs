//! RegistryService handlers.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{convert, invalid, request_key, required};
use crate::{
    domain::{rules, Date, DomainError},
    error::Error,
    proto::{self as pb, registry_service_server::RegistryService},
    store::{op, ImportItem, ImportOutcome, Store, SweepCounts},
};

/// Most refusals an import lists; more are counted only.
pub const MAX_LISTED_REJECTIONS: usize = 100_000;
/// Import chunks in flight at the writer while the next ones are parsed.
const IMPORT_PIPELINE: usize = 4;
/// Records per writer job (cut between two enterprises).
const IMPORT_JOB_RECORDS: usize = 4096;
/// Enterprises per sweep chunk (one writer job each).
const SWEEP_CHUNK: usize = 1000;

/// The RegistryService.
#[derive(Clone)]
pub struct RegistryApi {
    store: Store,
    sweep_running: Arc<AtomicBool>,
    /// Longest silence of an ImportRecords stream.
    stream_limits: super::StreamLimits,
}

impl RegistryApi {
    /// A service over `store`.
    pub fn new(store: Store) -> Self {
        RegistryApi {
            store,
            sweep_running: Arc::new(AtomicBool::new(false)),
            stream_limits: super::StreamLimits::default(),
        }
    }

    /// Ends an ImportRecords stream silent for `idle` (DEADLINE_EXCEEDED).
    pub fn with_stream_limits(mut self, limits: super::StreamLimits) -> Self {
        self.stream_limits = limits;
        self
    }
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn upsert_enterprise(
        &self,
        req: Request<pb::UpsertEnterpriseRequest>,
    ) -> Result<Response<pb::UpsertEnterpriseResponse>, Status> {
        let actor = super::actor(&req, "UpsertEnterprise");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("UpsertEnterprise", &r.request_id, &r)?;
        let e = convert::enterprise(required("enterprise", &r.enterprise)?).map_err(invalid)?;
        scope.check_region("enterprise.region_code", &e.region)?;
        scope.check_upsert(&self.store, "enterprise.uscc", &e.uscc)?;
        let warnings = barred_warnings(&self.store, &e)?;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::UpsertEnterprise(e),
            key,
            move |o| {
                Ok(pb::UpsertEnterpriseResponse {
                    enterprise: Some(convert::enterprise_pb(&o.enterprise)),
                    created: o.created,
                    warnings,
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn get_enterprise(
        &self,
        req: Request<pb::GetEnterpriseRequest>,
    ) -> Result<Response<pb::GetEnterpriseResponse>, Status> {
        let u = convert::uscc("uscc", &req.get_ref().uscc).map_err(invalid)?;
        super::Scope::of(&req).check_uscc(&self.store, "uscc", &u)?;
        let e = self
            .store
            .enterprise(&u)?
            .ok_or_else(|| Error::NotFound(format!("enterprise {u}")))?;
        Ok(Response::new(pb::GetEnterpriseResponse {
            enterprise: Some(convert::enterprise_pb(&e)),
        }))
    }

    async fn record_penalty(
        &self,
        req: Request<pb::RecordPenaltyRequest>,
    ) -> Result<Response<pb::RecordPenaltyResponse>, Status> {
        let actor = super::actor(&req, "RecordPenalty");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RecordPenalty", &r.request_id, &r)?;
        let p = convert::penalty(required("penalty", &r.penalty)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "penalty.uscc", &p.uscc)?;
        // The penalty needs a registered enterprise (NOT_FOUND otherwise, decided by the
        // writer); its entity type sets the publicity periods shown.
        let entity = self
            .store
            .enterprise(&p.uscc)?
            .map(|e| e.entity_type)
            .unwrap_or(crate::domain::EntityType::Enterprise);
        let rules = self.store.options().rules.clone();
        let today = self.store.today();
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordPenalty(p),
            key,
            move |p| {
                Ok(pb::RecordPenaltyResponse {
                    penalty: Some(convert::penalty_pb(p, entity, &rules, today)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn list_penalties(
        &self,
        req: Request<pb::ListPenaltiesRequest>,
    ) -> Result<Response<pb::ListPenaltiesResponse>, Status> {
        let r = req.get_ref();
        let u = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        super::Scope::of(&req).check_uscc(&self.store, "uscc", &u)?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let recs = self
            .store
            .enterprise_records(&u)?
            .ok_or_else(|| Error::NotFound(format!("enterprise {u}")))?;
        let entity = recs.enterprise.as_ref().map(|e| e.entity_type);
        let rules = &self.store.options().rules;
        let mut penalties: Vec<pb::Penalty> = recs
            .penalties
            .iter()
            .filter(|p| p.decided_on <= as_of)
            .map(|p| {
                convert::penalty_pb(
                    p,
                    entity.unwrap_or(crate::domain::EntityType::Enterprise),
                    rules,
                    as_of,
                )
            })
            .filter(|p| {
                !r.in_publicity_only || p.publicity.as_ref().is_some_and(|x| x.in_publicity)
            })
            .collect();
        penalties.sort_by(|a, b| b.decided_on.cmp(&a.decided_on));
        Ok(Response::new(pb::ListPenaltiesResponse { penalties }))
    }

    async fn file_annual_report(
        &self,
        req: Request<pb::FileAnnualReportRequest>,
    ) -> Result<Response<pb::FileAnnualReportResponse>, Status> {
        let actor = super::actor(&req, "FileAnnualReport");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("FileAnnualReport", &r.request_id, &r)?;
        let x = convert::report(required("report", &r.report)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "report.uscc", &x.uscc)?;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::FileAnnualReport(x),
            key,
            move |x| {
                Ok(pb::FileAnnualReportResponse {
                    report: Some(convert::report_pb(x)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn add_listing(
        &self,
        req: Request<pb::AddListingRequest>,
    ) -> Result<Response<pb::AddListingResponse>, Status> {
        let actor = super::actor(&req, "AddListing");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("AddListing", &r.request_id, &r)?;
        let x = convert::listing(required("listing", &r.listing)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "listing.uscc", &x.uscc)?;
        let today = self.store.today();
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::AddListing(x),
            key,
            move |x| {
                Ok(pb::AddListingResponse {
                    listing: Some(convert::listing_pb(x, today)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn record_inspection_result(
        &self,
        req: Request<pb::RecordInspectionResultRequest>,
    ) -> Result<Response<pb::RecordInspectionResultResponse>, Status> {
        let actor = super::actor(&req, "RecordInspectionResult");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RecordInspectionResult", &r.request_id, &r)?;
        let x = convert::inspection(required("result", &r.result)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "result.uscc", &x.uscc)?;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordInspection(x),
            key,
            move |x| {
                Ok(pb::RecordInspectionResultResponse {
                    result: Some(convert::inspection_pb(x)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn record_sampling_result(
        &self,
        req: Request<pb::RecordSamplingResultRequest>,
    ) -> Result<Response<pb::RecordSamplingResultResponse>, Status> {
        let actor = super::actor(&req, "RecordSamplingResult");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RecordSamplingResult", &r.request_id, &r)?;
        let x = convert::sampling(required("sampling", &r.sampling)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "sampling.uscc", &x.uscc)?;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordSampling(x),
            key,
            move |x| {
                Ok(pb::RecordSamplingResultResponse {
                    sampling: Some(convert::sampling_pb(x)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn record_complaint_summary(
        &self,
        req: Request<pb::RecordComplaintSummaryRequest>,
    ) -> Result<Response<pb::RecordComplaintSummaryResponse>, Status> {
        let actor = super::actor(&req, "RecordComplaintSummary");
        let scope = super::Scope::of(&req);
        let r = req.into_inner();
        let key = request_key("RecordComplaintSummary", &r.request_id, &r)?;
        let x = convert::complaints(required("complaints", &r.complaints)?).map_err(invalid)?;
        scope.check_uscc(&self.store, "complaints.uscc", &x.uscc)?;
        let reply = super::write_reply(
            &self.store,
            actor.clone(),
            op::RecordComplaints(x),
            key,
            move |x| {
                Ok(pb::RecordComplaintSummaryResponse {
                    complaints: Some(convert::complaints_pb(x)),
                })
            },
        )
        .await?;
        Ok(Response::new(reply))
    }

    async fn sweep_annual_reports(
        &self,
        req: Request<pb::SweepAnnualReportsRequest>,
    ) -> Result<Response<pb::SweepAnnualReportsResponse>, Status> {
        let actor = super::actor(&req, "SweepAnnualReports");
        super::Scope::of(&req).require_unscoped("SweepAnnualReports")?;
        let r = req.into_inner();
        let key = request_key("SweepAnnualReports", &r.request_id, &r)?;
        let as_of = convert::as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        let today = self.store.today();
        if as_of > today {
            return Err(invalid(DomainError::invalid(
                "as_of",
                format!("{as_of} is in the future"),
            )));
        }
        let year = u16::try_from(r.year)
            .ok()
            .filter(|y| *y >= 2000 && i32::from(*y) < as_of.year())
            .ok_or_else(|| {
                invalid(DomainError::invalid(
                    "year",
                    format!(
                        "{} is not a closed report year before {}",
                        r.year,
                        as_of.year()
                    ),
                ))
            })?;
        let deadline = rules::report_deadline(year);
        if as_of <= deadline {
            return Err(invalid(DomainError::invalid(
                "as_of",
                format!("{as_of} is not after the {year} filing deadline {deadline}"),
            )));
        }
        if let Some(m) = super::replayed(&self.store, &key)? {
            return Ok(Response::new(m));
        }
        if self
            .sweep_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(Status::failed_precondition(
                "another annual-report sweep is running",
            ));
        }
        let _guard = ResetOnDrop(self.sweep_running.clone());
        let mut total = SweepCounts::default();
        let mut after = None;
        loop {
            let chunk = op::SweepChunk {
                year,
                as_of,
                after,
                limit: SWEEP_CHUNK,
            };
            let c = self.store.write_as(actor.clone(), chunk).await?;
            total.examined += c.examined;
            total.listed_abnormal += c.listed_abnormal;
            total.marked_abnormal_status += c.marked_abnormal_status;
            total.moved_serious += c.moved_serious;
            total.already_listed += c.already_listed;
            match c.last {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        tracing::info!(year, %as_of, examined = total.examined, listed = total.listed_abnormal,
            marked = total.marked_abnormal_status, serious = total.moved_serious, "annual-report sweep done");
        if key.is_none() {
            return Ok(Response::new(sweep_pb(&total)));
        }
        // The chunks are committed; remember the total for retries.
        let reply = super::write_reply(&self.store, actor, op::Remember(total), key, |c| {
            Ok(sweep_pb(c))
        })
        .await?;
        Ok(Response::new(reply))
    }

    async fn import_records(
        &self,
        req: Request<Streaming<pb::ImportRecordsRequest>>,
    ) -> Result<Response<pb::ImportRecordsResponse>, Status> {
        let actor = super::actor(&req, "ImportRecords");
        super::Scope::of(&req).require_unscoped("ImportRecords")?;
        // A silent or endless stream is ended (its concurrency slot freed).
        let stream = super::guarded_stream("ImportRecords", self.stream_limits, req.into_inner());
        let mut stream = std::pin::pin!(stream);
        let mut summary = pb::ImportRecordsResponse::default();
        let mut index = 0u64;
        let mut push_rejection = |summary: &mut pb::ImportRecordsResponse,
                                  rej: pb::ImportRejection| {
            summary.rejected += 1;
            if summary.rejections.len() < MAX_LISTED_REJECTIONS {
                summary.rejections.push(rej);
            } else {
                summary.rejections_truncated = true;
            }
        };
        // 1. The stream, staged: parsed, sorted by USCC in runs (spilled on a blocking
        // thread while the stream goes on); nothing is stored yet.
        let started = std::time::Instant::now();
        let mut staging = self.store.stage_import();
        // One permit per record in memory, from the budget every import shares.
        let budget = self.store.import_budget();
        let most = self
            .store
            .options()
            .import_run_records
            .min(u32::MAX as usize) as u32;
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut spilling: Option<Spilling> = None;
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            // Memory for this message's records; when the budget is taken (other
            // imports), this one spills what it holds, then waits for them.
            let need = (msg.records.len().min(u32::MAX as usize) as u32).min(most);
            let permit = match budget.clone().try_acquire_many_owned(need) {
                Ok(p) => p,
                Err(_) => {
                    if let Some(spill) = staging.spill()? {
                        let permits = take_permits(&mut held, spill.len());
                        spill_behind(&mut spilling, spill, permits).await?;
                    }
                    budget
                        .clone()
                        .acquire_many_owned(need)
                        .await
                        .map_err(|_| Status::unavailable("the server is stopping"))?
                }
            };
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            for rec in msg.records {
                let i = index;
                index += 1;
                summary.received += 1;
                match parse_import(rec) {
                    Ok(item) => {
                        if let Some(spill) = staging.push(i, item)? {
                            let permits = take_permits(&mut held, spill.len());
                            spill_behind(&mut spilling, spill, permits).await?;
                        }
                    }
                    Err((kind, key, e)) => push_rejection(
                        &mut summary,
                        pb::ImportRejection {
                            index: i,
                            kind: kind.into(),
                            key,
                            code: "INVALID_ARGUMENT".into(),
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            // Refused records hold no memory: their permits go back.
            let excess = held
                .as_ref()
                .map_or(0, |h| h.num_permits().saturating_sub(staging.buffered()));
            drop(take_permits(&mut held, excess));
        }
        spilled(&mut spilling).await?;
        let runs = staging.runs();
        let staged_secs = started.elapsed().as_secs_f64();
        // 2. Applied in key order: each chunk's dossiers follow the previous chunk's in
        // the tree (src/store/staging.rs says why).
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        let merge = tokio::task::spawn_blocking(move || -> crate::error::Result<()> {
            // The last buffer's records stay in memory until merged: so do their permits.
            let _held = held;
            let mut sorted = staging.finish()?;
            loop {
                let chunk = sorted.next_chunk(IMPORT_JOB_RECORDS)?;
                if chunk.is_empty() || tx.blocking_send(chunk).is_err() {
                    return Ok(());
                }
            }
        });
        let mut inflight = VecDeque::new();
        while let Some(chunk) = rx.recv().await {
            inflight.push_back(
                self.store
                    .enqueue_as(actor.clone(), op::Import(chunk), None, None)
                    .await?,
            );
            while inflight.len() > IMPORT_PIPELINE {
                if let Some(rx) = inflight.pop_front() {
                    absorb(
                        &mut summary,
                        rx.await.and_then(|a| a.outcome()),
                        &mut push_rejection,
                    )?;
                }
            }
        }
        while let Some(rx) = inflight.pop_front() {
            absorb(
                &mut summary,
                rx.await.and_then(|a| a.outcome()),
                &mut push_rejection,
            )?;
        }
        joined(merge.await)?;
        summary.rejections.sort_by_key(|r| r.index);
        tracing::info!(
            received = summary.received,
            stored = summary.stored,
            unchanged = summary.unchanged,
            rejected = summary.rejected,
            runs,
            staged_secs,
            applied_secs = started.elapsed().as_secs_f64() - staged_secs,
            "import done"
        );
        Ok(Response::new(summary))
    }

    async fn get_credit_report(
        &self,
        req: Request<pb::GetCreditReportRequest>,
    ) -> Result<Response<pb::CreditReport>, Status> {
        let r = req.get_ref();
        let u = convert::uscc("uscc", &r.uscc).map_err(invalid)?;
        super::Scope::of(&req).check_uscc(&self.store, "uscc", &u)?;
        let as_of = convert::past_as_of("as_of", &r.as_of, self.store.today()).map_err(invalid)?;
        // A dossier read, the case and objection index scans and the explanation: on
        // the blocking pool.
        let store = self.store.clone();
        let report = super::blocking(move || credit_report(&store, u, as_of)).await?;
        Ok(Response::new(report))
    }
}

/// Warnings for an enterprise naming a legal representative who is barred from heading
/// another enterprise (企业信息公示暂行条例 Art. 17): the write goes ahead — registration
/// is the registration office's decision — but the answer says why the person is
/// barred. Bars from the enterprise's own records are not about heading *another* one.
fn barred_warnings(store: &Store, e: &crate::domain::Enterprise) -> Result<Vec<String>, Status> {
    let Some(rep) = e.legal_rep_hash else {
        return Ok(Vec::new());
    };
    let (_, bars) = super::measures::bars_of(store, &rep, store.today())?;
    Ok(bars
        .iter()
        .filter(|b| b.uscc != e.uscc)
        .map(|b| {
            let (a, m) = (&b.applied, b.applied.measure);
            format!(
                "enterprise.legal_rep_id_hash: the person is barred from heading another enterprise until {} ({}, {}): {} of {} {}",
                a.until.map(|d| d.to_string()).unwrap_or_default(),
                m.code,
                m.basis,
                a.because,
                b.uscc,
                b.enterprise_name
            )
        })
        .collect())
}

/// An enterprise's credit report as of `as_of`.
fn credit_report(
    store: &Store,
    u: crate::domain::Uscc,
    as_of: Date,
) -> Result<pb::CreditReport, Status> {
    let recs = store
        .enterprise_records(&u)?
        .ok_or_else(|| Error::NotFound(format!("enterprise {u}")))?;
    let Some(e) = recs.enterprise.as_ref() else {
        return Err(Status::not_found(format!("enterprise {u}")));
    };
    let rules = &store.options().rules;
    let mut penalties: Vec<pb::Penalty> = recs
        .penalties
        .iter()
        .filter(|p| p.decided_on <= as_of)
        .map(|p| convert::penalty_pb(p, e.entity_type, rules, as_of))
        .collect();
    penalties.sort_by(|a, b| b.decided_on.cmp(&a.decided_on));
    let mut listings: Vec<pb::Listing> = recs
        .listings
        .iter()
        .filter(|l| l.listed_on <= as_of)
        .map(|l| convert::listing_pb(l, as_of))
        .collect();
    listings.sort_by(|a, b| b.listed_on.cmp(&a.listed_on));
    let mut inspections: Vec<pb::InspectionResult> = recs
        .inspections
        .iter()
        .filter(|i| i.inspected_on <= as_of)
        .map(convert::inspection_pb)
        .collect();
    inspections.sort_by(|a, b| b.inspected_on.cmp(&a.inspected_on));
    let mut samplings: Vec<pb::QualitySamplingResult> = recs
        .samplings
        .iter()
        .filter(|x| x.sampled_on <= as_of)
        .map(convert::sampling_pb)
        .collect();
    samplings.sort_by(|a, b| b.sampled_on.cmp(&a.sampled_on));
    let known = crate::domain::stats::Month::of(as_of);
    let complaints: Vec<pb::ComplaintSummary> = recs
        .complaints
        .iter()
        .rev()
        .filter(|x| x.month <= known)
        .map(convert::complaints_pb)
        .collect();
    let annual_reports = rules::report_compliance(e, &recs.reports, as_of)
        .into_iter()
        .map(|(year, deadline, filed, c)| pb::AnnualReportYear {
            year: i32::from(year),
            deadline: deadline.to_string(),
            filed_on: filed.map(|d| d.to_string()).unwrap_or_default(),
            compliance: c.name().into(),
        })
        .collect();
    let objections = store.objections(Some(&u))?;
    let class = super::measures::class_in_force(store, &u, as_of)?;
    let (measures, rep_measures) = super::measures::measures_of(store, &recs, class, as_of);
    let classification = match store.classify(&u, None) {
        Ok(c) => Some(super::classification::classification_pb(
            &c,
            &store.specialised_classes(&u)?,
        )),
        Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(pb::CreditReport {
        as_of: as_of.to_string(),
        enterprise: Some(convert::enterprise_pb(e)),
        penalties_in_publicity: penalties
            .iter()
            .filter(|p| p.publicity.as_ref().is_some_and(|x| x.in_publicity))
            .cloned()
            .collect(),
        penalties,
        open_listings: listings.iter().filter(|l| l.open).cloned().collect(),
        listings,
        annual_reports,
        inspections,
        samplings,
        complaints,
        classification,
        repairs: store
            .repair_cases(Some(&u))?
            .iter()
            .map(|c| super::repair::case_pb(c, as_of, store.options()))
            .collect(),
        disputed_records: objections
            .iter()
            .filter(|o| o.state == crate::domain::repair::ObjectionState::Open)
            .map(|o| o.record.clone())
            .collect(),
        objections: objections
            .iter()
            .map(|o| super::repair::objection_pb(o, store.options()))
            .collect(),
        commitments: recs
            .commitments
            .iter()
            .filter(|c| c.made_on <= as_of)
            .map(|c| super::commitment::commitment_pb(&c.as_known_on(as_of), as_of))
            .collect(),
        measures: measures.iter().map(super::measures::applied_pb).collect(),
        legal_representative_measures: rep_measures
            .iter()
            .map(super::measures::applied_pb)
            .collect(),
    })
}

struct ResetOnDrop(Arc<AtomicBool>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn sweep_pb(c: &SweepCounts) -> pb::SweepAnnualReportsResponse {
    pb::SweepAnnualReportsResponse {
        examined: c.examined,
        listed_abnormal: c.listed_abnormal,
        marked_abnormal_status: c.marked_abnormal_status,
        moved_serious: c.moved_serious,
        already_listed: c.already_listed,
    }
}

/// (record kind, key as far as readable, reason).
pub type ImportParseError = (&'static str, String, DomainError);

/// Parses one import record into a domain item, or says why it cannot be.
pub fn parse_import(rec: pb::ImportRecord) -> Result<ImportItem, ImportParseError> {
    use pb::import_record::Record;
    match rec.record {
        Some(Record::Enterprise(m)) => convert::enterprise(&m)
            .map(ImportItem::Enterprise)
            .map_err(|e| ("enterprise", m.uscc.clone(), e)),
        Some(Record::Penalty(m)) => convert::penalty(&m)
            .map(ImportItem::Penalty)
            .map_err(|e| ("penalty", m.decision_number.clone(), e)),
        Some(Record::AnnualReport(m)) => convert::report(&m)
            .map(ImportItem::Report)
            .map_err(|e| ("annual_report", format!("{}/{}", m.uscc, m.year), e)),
        Some(Record::Listing(m)) => convert::listing(&m)
            .map(ImportItem::Listing)
            .map_err(|e| ("listing", m.uscc.clone(), e)),
        Some(Record::Inspection(m)) => convert::inspection(&m)
            .map(ImportItem::Inspection)
            .map_err(|e| ("inspection", format!("{}/{}", m.uscc, m.task_id), e)),
        Some(Record::Complaints(m)) => convert::complaints(&m)
            .map(ImportItem::Complaints)
            .map_err(|e| ("complaints", format!("{}/{}", m.uscc, m.month), e)),
        Some(Record::Sampling(m)) => convert::sampling(&m)
            .map(ImportItem::Sampling)
            .map_err(|e| ("sampling", format!("{}/{}", m.uscc, m.sample_id), e)),
        Some(Record::Commitment(m)) => super::commitment::imported_commitment(&m)
            .map(ImportItem::Commitment)
            .map_err(|e| ("commitment", format!("{}/{}", m.uscc, m.commitment_id), e)),
        None => Err((
            "empty",
            String::new(),
            DomainError::invalid("record", "no record set"),
        )),
    }
}

/// A run being written on a blocking thread.
type Spilling = tokio::task::JoinHandle<crate::error::Result<()>>;

/// Writes `spill` on a blocking thread once the previous run is written (one at a
/// time per import); its permits are returned when it is written.
async fn spill_behind(
    spilling: &mut Option<Spilling>,
    spill: crate::store::staging::Spill,
    permits: Option<OwnedSemaphorePermit>,
) -> crate::error::Result<()> {
    spilled(spilling).await?;
    *spilling = Some(tokio::task::spawn_blocking(move || {
        let written = spill.write();
        drop(permits);
        written
    }));
    Ok(())
}

/// Waits for the run being written, if any.
async fn spilled(spilling: &mut Option<Spilling>) -> crate::error::Result<()> {
    match spilling.take() {
        Some(h) => joined(h.await),
        None => Ok(()),
    }
}

/// `n` of the permits `held` (all of them if it holds no more).
fn take_permits(held: &mut Option<OwnedSemaphorePermit>, n: usize) -> Option<OwnedSemaphorePermit> {
    match held {
        Some(h) if h.num_permits() > n => h.split(n),
        _ => held.take(),
    }
}

/// The result of a blocking task: its own, or UNAVAILABLE when it panicked.
fn joined<T>(
    r: Result<crate::error::Result<T>, tokio::task::JoinError>,
) -> crate::error::Result<T> {
    r.map_err(|e| crate::error::Error::Unavailable(format!("staging an import: {e}")))?
}

fn absorb(
    summary: &mut pb::ImportRecordsResponse,
    outcome: crate::error::Result<ImportOutcome>,
    push: &mut impl FnMut(&mut pb::ImportRecordsResponse, pb::ImportRejection),
) -> Result<(), Status> {
    let o = outcome?;
    summary.stored += o.stored;
    summary.unchanged += o.unchanged;
    for r in o.rejections {
        push(
            summary,
            pb::ImportRejection {
                index: r.index,
                kind: r.kind.into(),
                key: r.key,
                code: r.code.into(),
                reason: r.error,
            },
        );
    }
    Ok(())
}
