#!/usr/bin/env python3
"""A credit-risk client written against the published protos only, with grpcio.

It does what an inspection scheduler's script would do:

  1. checks the server's health (grpc.health.v1) and lists its services through server
     reflection (grpc.reflection.v1alpha), as grpcurl would;
  2. imports a handful of enterprises and penalties (RegistryService.ImportRecords);
  3. runs a batch scoring and reads one classification with its factors;
  4. plans and draws a spot-check sample (SpotCheckService.PlanDraw / DrawSample);
  5. verifies the receipt independently: it downloads each stratum's frozen population,
     recomputes its SHA-256 digest, and re-runs the draw with the published
     `consistent-sampler` package (PyPI) -- then asks the server's VerifyDraw too;
  6. fetches the receipt again (GetReceipt) and reads the filing statistics;
  7. records a credit commitment, finds it broken (CommitmentService), and reads the
     measures that follow (MeasuresService.GetMeasures).

Stubs are generated from ../../proto with grpcio-tools at start-up (into --stubs, or a
temporary directory). Exit status 0 means every check passed.

    python3 -m venv .venv && .venv/bin/pip install -r examples/python/requirements.txt
    cargo run --release -- serve &        # dev mode: loopback, no tokens
    .venv/bin/python examples/python/client.py --target 127.0.0.1:50051

With authentication on, put a token with the roles feed, scorer and scheduler in
$CREDIT_RISK_TOKEN.
"""

import argparse
import hashlib
import importlib
import json
import os
import pathlib
import sys
import tempfile

import grpc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTOS = [
    "records",
    "registry",
    "classification",
    "spotcheck",
    "statistics",
    "measures",
    "commitment",
]

# GB 32100 symbols and weights (see DOMAIN.md): the check character of a USCC.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [pow(3, i, 31) for i in range(17)]
ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def org_check(body):
    """GB 11714 check character of an 8-character organisation-code body."""
    total = sum(int(c, 36) * w for c, w in zip(body, ORG_WEIGHTS))
    r = 11 - total % 11
    return {10: "X", 11: "0"}.get(r, str(r))


def uscc(n, region="310115"):
    """A valid USCC of an enterprise (authority 9, category 1) numbered n."""
    digits = []
    for _ in range(6):
        digits.append(ALPHABET[n % 31])
        n //= 31
    body = "MA" + "".join(reversed(digits))
    first17 = "91" + region + body + org_check(body)
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS))
    return first17 + ALPHABET[(31 - total % 31) % 31]


def generate_stubs(out_dir):
    """Compiles the protos with grpcio-tools into out_dir and makes them importable."""
    from grpc_tools import protoc

    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    files = sorted(str(f) for f in (PROTO_ROOT / "creditrisk" / "v1").glob("*.proto"))
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            *files,
        ]
    )
    if rc != 0:
        sys.exit(f"protoc failed ({rc})")
    sys.path.insert(0, str(out_dir))
    mods = {}
    for p in PROTOS:
        mods[p] = importlib.import_module(f"creditrisk.v1.{p}_pb2")
        mods[p + "_grpc"] = importlib.import_module(f"creditrisk.v1.{p}_pb2_grpc")
    return mods


def check(cond, what):
    if not cond:
        sys.exit(f"FAILED: {what}")
    print(f"ok  {what}")


def discover(channel):
    """Health and reflection, the two services grpcurl and load balancers rely on."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    check(
        status.status == health_pb2.HealthCheckResponse.SERVING,
        "health: the server reports SERVING",
    )
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    services = sorted(s.name for r in replies for s in r.list_services_response.service)
    check(
        "creditrisk.v1.SpotCheckService" in services
        and "creditrisk.v1.RegistryService" in services,
        f"reflection lists {len(services)} services",
    )
    return services


def run(target, stubs_dir, seed):
    m = generate_stubs(stubs_dir)
    rec, reg, cls, spot = m["records"], m["registry"], m["classification"], m["spotcheck"]
    token = os.environ.get("CREDIT_RISK_TOKEN", "")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    channel = grpc.insecure_channel(target)
    grpc.channel_ready_future(channel).result(timeout=30)
    discover(channel)

    registry = m["registry_grpc"].RegistryServiceStub(channel)
    classification = m["classification_grpc"].ClassificationServiceStub(channel)
    spotcheck = m["spotcheck_grpc"].SpotCheckServiceStub(channel)

    # 2. Import 40 enterprises in Pudong (310115) with their annual reports; every fourth
    # gets a fine of more than 50,000 yuan.
    codes = [uscc(700_000 + i) for i in range(40)]
    records = []
    for i, code in enumerate(codes):
        records.append(
            reg.ImportRecord(
                enterprise=rec.Enterprise(
                    uscc=code,
                    name=f"上海示例贸易有限公司{i:02d}",
                    entity_type=rec.ENTITY_TYPE_ENTERPRISE,
                    region_code="310115",
                    industry_section="F",
                    established_on="2019-05-06",
                    status=rec.ENTERPRISE_STATUS_OPERATING,
                    registered_capital_fen=100_000_000,
                    # Every other one holds a food licence: the food-safety model rates it.
                    supervision_flags=[rec.SUPERVISION_FLAG_FOOD] if i % 2 == 0 else [],
                )
            )
        )
    for i, code in enumerate(codes):
        if i % 10 == 9:
            continue  # a few never file their annual reports (年报)
        for year in range(2019, 2026):
            records.append(
                reg.ImportRecord(
                    annual_report=rec.AnnualReport(
                        uscc=code, year=year, filed_on=f"{year + 1}-05-{10 + i % 15:02d}"
                    )
                )
            )
    for i, code in enumerate(codes[::4]):
        records.append(
            reg.ImportRecord(
                penalty=rec.Penalty(
                    decision_number=f"沪市监浦处〔2026〕PY{i:04d}号",
                    uscc=code,
                    decided_on="2026-03-02",
                    # Publicity (and the fine's weight in the score) counts from the
                    # publication day; above 50,000 yuan it lasts 3 years.
                    published_on="2026-03-16",
                    authority="上海市浦东新区市场监督管理局",
                    domain=rec.VIOLATION_DOMAIN_FOOD,
                    procedure=rec.PENALTY_PROCEDURE_ORDINARY,
                    kinds=[rec.PENALTY_KIND_FINE],
                    fine_fen=(60_000 + 40_000 * i) * 100,
                )
            )
        )
    summary = registry.ImportRecords(
        iter([reg.ImportRecordsRequest(records=records)]), metadata=metadata, timeout=60
    )
    check(
        summary.rejected == 0 and summary.received == len(records),
        f"ImportRecords: {summary.received} received, {summary.stored} stored, "
        f"{summary.unchanged} unchanged",
    )

    # 3. Score every model family in one pass (the general model, then the food-safety
    # model) and read one explanation with the food class beside it.
    runs = []
    for event in classification.RunBatchScoring(
        cls.RunBatchScoringRequest(all_families=True), metadata=metadata, timeout=600
    ):
        if event.WhichOneof("event") == "done":
            runs.append(event.done)
    check(
        [r.model_family for r in runs] == ["general", "food"]
        and all(r.state == "COMPLETE" for r in runs),
        "RunBatchScoring (all families): "
        + ", ".join(f"run {r.run_id} {r.model_family} {r.enterprises}" for r in runs),
    )
    c = classification.GetClassification(
        cls.GetClassificationRequest(uscc=codes[4]), metadata=metadata, timeout=10
    )
    factors = ", ".join(f"{f.code} {f.points:+.1f}" for f in c.factors)
    food = [s for s in c.specialised if s.family == "food"]
    check(
        c.uscc == codes[4] and len(c.factors) > 0 and len(food) == 1,
        f"GetClassification {c.uscc}: class {cls.RiskClass.Name(c.risk_class)} "
        f"score {c.score:.1f} ({factors}); food class "
        f"{cls.RiskClass.Name(food[0].risk_class) if food else '-'}",
    )

    # 4. Plan (commit: populations frozen, digests published), then draw (reveal).
    task_id = "PY-EXAMPLE-" + hashlib.sha256(seed.encode()).hexdigest()[:8]
    plan = spotcheck.PlanDraw(
        spot.PlanDrawRequest(
            task_id=task_id,
            filter=spot.CandidateFilter(region_codes=["310115"]),
            strata=[
                # Class-based supervision: each ratio within its class's range in the
                # rules (GetRules: A <= 5 %, B 5-20 %, C 21-60 %, D 61-100 %), rising
                # with risk; a stratum without a ratio takes the rules' default.
                spot.Stratum(risk_class=cls.RISK_CLASS_A, ratio=0.05),
                spot.Stratum(risk_class=cls.RISK_CLASS_B, ratio=0.2),
                spot.Stratum(risk_class=cls.RISK_CLASS_C, ratio=0.6),
                spot.Stratum(risk_class=cls.RISK_CLASS_D, ratio=1.0),
            ],
        ),
        metadata=metadata,
        timeout=60,
    )
    sizes = ", ".join(
        f"{cls.RiskClass.Name(s.risk_class)[-1]} {s.k}/{s.population}" for s in plan.strata
    )
    check(plan.plan_id > 0, f"PlanDraw: plan {plan.plan_id} ({sizes})")
    receipt = spotcheck.DrawSample(
        spot.DrawSampleRequest(plan_id=plan.plan_id, seed=seed), metadata=metadata, timeout=60
    )
    check(
        receipt.algorithm == "consistent-sampler-v1",
        f"DrawSample: {sum(len(s.selected) for s in receipt.strata)} enterprises drawn",
    )

    # 5. Independent verification with the published package.
    from consistent_sampler import sampler

    for index, stratum in enumerate(receipt.strata):
        population = [
            u
            for batch in spotcheck.ListPopulation(
                spot.ListPopulationRequest(plan_id=plan.plan_id, stratum=index),
                metadata=metadata,
                timeout=60,
            )
            for u in batch.usccs
        ]
        name = cls.RiskClass.Name(stratum.risk_class)
        digest = hashlib.sha256("\n".join(sorted(population)).encode()).hexdigest()
        check(
            digest == stratum.population_digest == plan.strata[index].population_digest,
            f"{name}: population of {len(population)} matches the committed digest",
        )
        ours = list(sampler(population, seed=receipt.sampler_seed, take=stratum.k, output="id"))
        theirs = [s.uscc for s in stratum.selected]
        check(ours == theirs, f"{name}: consistent-sampler draws the same {len(ours)}")
    verdict = spotcheck.VerifyDraw(
        spot.VerifyDrawRequest(receipt=receipt), metadata=metadata, timeout=60
    )
    check(verdict.matches, "VerifyDraw: the server recomputes the same receipt")
    # 6. A lost receipt is fetched again, the same message byte for byte; the filing
    # statistics count the imported enterprises.
    again = spotcheck.GetReceipt(
        spot.GetReceiptRequest(plan_id=plan.plan_id), metadata=metadata, timeout=60
    )
    check(
        again.SerializeToString() == receipt.SerializeToString(),
        "GetReceipt: the receipt as DrawSample gave it",
    )
    statistics = m["statistics_grpc"].StatisticsServiceStub(channel)
    filing = statistics.GetFilingStatistics(
        m["statistics"].GetFilingStatisticsRequest(region_prefix="310115"),
        metadata=metadata,
        timeout=60,
    )
    obliged = sum(r.obliged for r in filing.rows if r.report_year == 2024)
    check(obliged >= len(codes), f"GetFilingStatistics: {obliged} obliged to file for 2024")
    # 7. A licensing commitment found broken is a false commitment: it weighs in the
    # score and brings its measure; a penalty in publicity brings one too.
    com, mea = m["commitment"], m["measures"]
    commitments = m["commitment_grpc"].CommitmentServiceStub(channel)
    measures = m["measures_grpc"].MeasuresServiceStub(channel)
    fined = codes[0]
    made = commitments.RecordCommitment(
        com.RecordCommitmentRequest(
            request_id=f"py-commit-{seed}",
            commitment=com.Commitment(
                commitment_id="PY-LIC-1",
                uscc=fined,
                kind=com.COMMITMENT_KIND_LICENSING_NOTIFICATION,
                made_on="2026-01-05",
                due_on="2026-04-05",
                content="三个月内补齐许可材料",
                authority="上海市浦东新区市场监督管理局",
            ),
        ),
        metadata=metadata,
        timeout=60,
    )
    check(made.commitment.commitment_id == "PY-LIC-1", "RecordCommitment")
    broken = commitments.VerifyCommitment(
        com.VerifyCommitmentRequest(
            uscc=fined,
            commitment_id="PY-LIC-1",
            verdict=com.COMMITMENT_VERDICT_BROKEN,
            verified_on="2026-04-20",
            note="逾期未补交",
        ),
        metadata=metadata,
        timeout=60,
    )
    check(broken.commitment.false_commitment, "VerifyCommitment: a false commitment")
    applied = measures.GetMeasures(
        mea.GetMeasuresRequest(uscc=fined), metadata=metadata, timeout=60
    )
    found = {a.measure.code for a in applied.measures}
    check(
        {"P-FC-01", "P-PN-01"} <= found,
        f"GetMeasures: the false commitment and the penalty bring measures {sorted(found)}",
    )
    print(
        json.dumps(
            {
                "plan_id": plan.plan_id,
                "run_id": receipt.run_id,
                "sampler_seed": receipt.sampler_seed,
                "selected": {
                    cls.RiskClass.Name(s.risk_class): [x.uscc for x in s.selected]
                    for s in receipt.strata
                },
            },
            ensure_ascii=False,
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="127.0.0.1:50051", help="host:port of the server")
    ap.add_argument("--stubs", help="directory for the generated stubs (default: a temp dir)")
    ap.add_argument("--seed", default="2026-11-25 public lottery 07 19 23 31 42")
    args = ap.parse_args()
    if args.stubs:
        pathlib.Path(args.stubs).mkdir(parents=True, exist_ok=True)
        run(args.target, args.stubs, args.seed)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args.target, tmp, args.seed)


if __name__ == "__main__":
    main()
