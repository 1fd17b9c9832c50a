#!/usr/bin/env python3
"""The hardening probe (issue 15): attacks a release server as an outside client would and
prints PASS or FAIL per probe, so each round starts from where the last one ended.

It starts its own server (the given binary, on 127.0.0.1, a temporary store, tokens of
five principals), loads three districts, then runs:

  1 scope        a token scoped to prefix 31010 sees only enterprises under it
  2 saturation   1,000 idle client streams of one token, then 64 clients of another:
                 their error rate and p99 beside the same load without the idle streams
  3 memory       one 16 MiB ImportRecords message of 8,000,000 empty records: refused,
                 server peak RSS growth
  4 cpu          QueryCandidates with 1,000,000 region codes: refused, and how fast
  5 damaged      the store's db cut to a quarter: `check` and `serve` exit 1 naming it, no panic
  6 connections  30 connections sending nothing or half a preface: closed in time
  7 leaks        another district's inspectors and enterprises: nothing leaks; outside
                 and unknown answer the same
  8 smaller      garbage protobuf is INVALID_ARGUMENT; health answers for every service

Loopback only, bounded in time (about a minute). Needs grpcio (examples/python/
requirements.txt). Exit status 0 when every probe passes.

    cargo build --release
    python3 scripts/probe.py --bin target/release/credit-risk
"""

import argparse
import asyncio
import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples" / "python"))
import client  # noqa: E402  (USCC builder and stub generation of the example client)

import grpc  # noqa: E402

TOKENS = {
    "city-admin": ("admin", []),
    "feed": ("feed", []),
    "scheduler": ("scheduler", []),
    "pudong-scheduler": ("scheduler", ["310115"]),
    "central-scheduler": ("scheduler", ["31010"]),
}
DISTRICTS = ["310101", "310104", "310115"]
RESULTS = []


def secret(name):
    return f"probe-secret-{name}"


def md(name):
    return [("authorization", f"Bearer {secret(name)}")]


def report(n, name, ok, detail):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {n} {name:<12} {detail}", flush=True)


def rss_kb(pid, key="VmRSS"):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Server:
    def __init__(self, binary, root):
        self.binary, self.root = binary, root
        self.data = root / "store"
        conf = ["[server]", 'listen = "127.0.0.1:0"', f'data_dir = "{self.data}"']
        for name, (role, regions) in TOKENS.items():
            sha = hashlib.sha256(secret(name).encode()).hexdigest()
            conf += ["[[server.auth.tokens]]", f'name = "{name}"', f'sha256 = "{sha}"',
                     f'role = "{role}"', f"regions = {regions!r}".replace("'", '"')]
        self.config = root / "probe.toml"
        self.config.write_text("\n".join(conf) + "\n")

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=open(self.root / "serve.err", "w"), text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            sys.exit(f"the server did not start: {line!r}; see {self.root / 'serve.err'}")
        self.addr = line.split()[-1]
        return self

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def load_city(m, channel):
    reg, rec = m["registry"], m["records"]
    registry = m["registry_grpc"].RegistryServiceStub(channel)
    records, codes = [], {}
    for d, region in enumerate(DISTRICTS):
        codes[region] = [client.uscc(800_000 + 100 * d + i, region) for i in range(30)]
        for i, code in enumerate(codes[region]):
            records.append(reg.ImportRecord(enterprise=rec.Enterprise(
                uscc=code, name=f"探测企业{region}-{i:02d}",
                entity_type=rec.ENTITY_TYPE_ENTERPRISE, region_code=region,
                industry_section="F", established_on="2019-05-06",
                status=rec.ENTERPRISE_STATUS_OPERATING, registered_capital_fen=100_000_000)))
    s = registry.ImportRecords(iter([reg.ImportRecordsRequest(records=records)]),
                               metadata=md("feed"), timeout=60)
    assert s.rejected == 0, s
    cls = m["classification"]
    for _ in m["classification_grpc"].ClassificationServiceStub(channel).RunBatchScoring(
            cls.RunBatchScoringRequest(), metadata=md("city-admin"), timeout=300):
        pass
    spot = m["spotcheck_grpc"].SpotCheckServiceStub(channel)
    sp = m["spotcheck"]
    for region, who in [("310104", "XH"), ("310115", "PD")]:
        spot.UpsertInspector(sp.UpsertInspectorRequest(inspector=sp.Inspector(
            id=f"{who}-1", name="执法人员", certificate_number=f"ZF-{who}-1",
            home_region_code=region, fields=["food"], active=True)),
            metadata=md("city-admin"), timeout=10)
    return codes


def probe_scope(m, channel, codes):
    spot = m["spotcheck_grpc"].SpotCheckServiceStub(channel)
    seen = [c.region_code for b in spot.QueryCandidates(
        m["spotcheck"].QueryCandidatesRequest(), metadata=md("central-scheduler"), timeout=30)
        for c in b.candidates]
    outside = [r for r in seen if not r.startswith("31010")]
    report(1, "scope", seen and not outside,
           f"{len(seen)} candidates for prefix 31010, {len(outside)} outside it")


async def probe_saturation(m, target, codes):
    reg = m["registry"]
    get = m["registry"].GetEnterpriseRequest

    async def load(channel, clients=64, calls=20):
        stub = m["registry_grpc"].RegistryServiceStub(channel)
        lat, errors = [], 0

        async def one(i):
            nonlocal errors
            for j in range(calls):
                t = time.perf_counter()
                try:
                    await stub.GetEnterprise(get(uscc=codes["310101"][(i + j) % 30]),
                                             metadata=md("scheduler"), timeout=10)
                except grpc.aio.AioRpcError:
                    errors += 1
                lat.append(time.perf_counter() - t)
        await asyncio.gather(*(one(i) for i in range(clients)))
        lat.sort()
        return errors, lat[int(len(lat) * 0.99) - 1]

    async with grpc.aio.insecure_channel(target) as channel:
        await load(channel, calls=5)  # warm-up (connections, stubs)
        base_err, base_p99 = await load(channel)
        # The idle streams come from another process (as an attacker's would), so the
        # measuring client's own event loop does not carry them.
        holder = subprocess.Popen(
            [sys.executable, __file__, "--hold-streams", target, "--stubs-dir", STUBS[0]],
            stdout=subprocess.PIPE, text=True)
        refused = int(holder.stdout.readline())
        err, p99 = await load(channel)
        holder.terminate()
        holder.wait()
    ok = err == 0 and p99 <= 2 * max(base_p99, 0.005)
    report(2, "saturation", ok,
           f"1,000 idle streams of one token ({refused} refused at once); 64 clients x 20 "
           f"calls: errors {err} (baseline {base_err}), p99 {p99 * 1e3:.1f} ms "
           f"(baseline {base_p99 * 1e3:.1f} ms; target <= 2x)")


async def hold_streams(target, m, n=1000):
    """Opens `n` idle ImportRecords streams of the feed token, prints how many were
    refused at once, and holds the rest until terminated."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = m["registry_grpc"].RegistryServiceStub(ch)
        calls = [stub.ImportRecords(metadata=md("feed"), timeout=120) for _ in range(n)]
        await asyncio.sleep(1.0)
        print(sum(1 for c in calls if c.done()), flush=True)
        await asyncio.sleep(120)


STUBS = [""]


def probe_memory(m, channel, pid):
    reg = m["registry"]
    registry = m["registry_grpc"].RegistryServiceStub(channel)
    before = rss_kb(pid)
    huge = reg.ImportRecordsRequest(records=[reg.ImportRecord() for _ in range(8_000_000)])
    size = huge.ByteSize()
    code = None
    try:
        registry.ImportRecords(iter([huge]), metadata=md("feed"), timeout=60)
    except grpc.RpcError as e:
        code = e.code()
    del huge
    peak = rss_kb(pid, "VmHWM")
    grew = max(peak - before, 0) / 1024
    report(3, "memory", code == grpc.StatusCode.RESOURCE_EXHAUSTED and grew < 512,
           f"{size / 2**20:.1f} MiB message of 8,000,000 records: {code}; server peak RSS "
           f"{peak / 1024:.0f} MiB ({grew:.0f} MiB over the {before / 1024:.0f} MiB before)")


def probe_cpu(m, channel):
    sp = m["spotcheck"]
    spot = m["spotcheck_grpc"].SpotCheckServiceStub(channel)
    req = sp.QueryCandidatesRequest(filter=sp.CandidateFilter(
        region_codes=[f"{310000 + i % 999999:06d}" for i in range(1_000_000)]))
    t = time.perf_counter()
    code = None
    try:
        list(spot.QueryCandidates(req, metadata=md("scheduler"), timeout=30))
    except grpc.RpcError as e:
        code = e.code()
    took = time.perf_counter() - t
    report(4, "cpu", code in (grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.RESOURCE_EXHAUSTED) and took < 3,
           f"1,000,000 region codes ({req.ByteSize() / 2**20:.1f} MiB): {code} in {took:.2f} s")


def probe_connections(addr):
    host, port = addr.rsplit(":", 1)
    conns = []
    for i in range(30):
        s = socket.create_connection((host, int(port)))
        if i % 2:
            s.sendall(b"PRI * HTTP/2.0\r\n")
        s.settimeout(20)
        conns.append(s)
    t = time.perf_counter()
    closed = 0
    for s in conns:
        try:
            while s.recv(4096):
                pass
            closed += 1
        except (socket.timeout, OSError):
            pass
        s.close()
    took = time.perf_counter() - t
    report(6, "connections", closed == 30,
           f"{closed}/30 silent or half-preface connections closed by the server "
           f"within {took:.1f} s (handshake timeout 10 s)")


def probe_leaks(m, channel, codes):
    sp, reg = m["spotcheck"], m["registry"]
    spot = m["spotcheck_grpc"].SpotCheckServiceStub(channel)
    registry = m["registry_grpc"].RegistryServiceStub(channel)
    ids = [i.id for i in spot.ListInspectors(sp.ListInspectorsRequest(),
                                             metadata=md("pudong-scheduler"), timeout=10).inspectors]
    answers = []
    for u in [codes["310104"][0], client.uscc(990_001, "310104")]:
        try:
            registry.GetEnterprise(reg.GetEnterpriseRequest(uscc=u),
                                   metadata=md("pudong-scheduler"), timeout=10)
            answers.append(("OK", ""))
        except grpc.RpcError as e:
            answers.append((e.code(), e.details().replace(u, "U")))
    items = spot.BatchMatch(sp.MatchRequest(usccs=[codes["310104"][0],
                                                   client.uscc(990_001, "310104")]),
                            metadata=md("pudong-scheduler"), timeout=10).items
    same_item = (items[0].found, items[0].error) == (items[1].found, items[1].error)
    ok = ids == ["PD-1"] and answers[0] == answers[1] and answers[0][0] != "OK" and same_item
    report(7, "leaks", ok,
           f"Pudong token lists inspectors {ids}; Xuhui enterprise vs unregistered: "
           f"{answers[0][0]} / {answers[1][0]}, same message {answers[0] == answers[1]}, "
           f"same match item {same_item}")


def probe_smaller(m, channel, services):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    raw = channel.unary_unary("/creditrisk.v1.RegistryService/GetEnterprise",
                              request_serializer=None, response_deserializer=None)
    code = None
    try:
        raw(b"\xff\xff\xff\xff", metadata=md("scheduler"), timeout=10)
    except grpc.RpcError as e:
        code = e.code()
    health = health_pb2_grpc.HealthStub(channel)
    unhealthy = []
    for s in services:
        try:
            st = health.Check(health_pb2.HealthCheckRequest(service=s), timeout=5).status
            if st != health_pb2.HealthCheckResponse.SERVING:
                unhealthy.append(s)
        except grpc.RpcError:
            unhealthy.append(s)
    report(8, "smaller", code == grpc.StatusCode.INVALID_ARGUMENT and not unhealthy,
           f"garbage protobuf: {code}; health not SERVING for {unhealthy or 'none'} of "
           f"{len(services)} services (plaintext warning: needs a non-loopback address, "
           "not probed)")


def probe_damaged(binary, server, root):
    copy = root / "damaged"
    shutil.copytree(server.data, copy)
    db = copy / "db"
    # A quarter, not half: a small store's live pages may all lie in the first half of
    # sled's file (the rest free space not yet given back), and losing free space is
    # no damage — the store opens with everything it held, as it should.
    os.truncate(db, db.stat().st_size // 4)
    outcomes = []
    for args in (["check", "--data-dir", str(copy)],
                 ["serve", "--listen", "127.0.0.1:0", "--data-dir", str(copy)]):
        try:
            r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
            outcomes.append((args[0], r.returncode, "panicked" in r.stderr,
                             "damaged" in r.stderr and "restore" in r.stderr))
        except subprocess.TimeoutExpired:
            outcomes.append((args[0], "timeout", False, False))
    ok = all(rc == 1 and not panicked and named for _, rc, panicked, named in outcomes)
    report(5, "damaged", ok, "db cut to a quarter: " + "; ".join(
        f"{a} exit {rc}{', panicked' if p else ''}{', names the store and restore' if n else ''}"
        for a, rc, p, n in outcomes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/credit-risk", help="the server binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--hold-streams", help=argparse.SUPPRESS)
    ap.add_argument("--stubs-dir", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.hold_streams:
        # The parent's stubs, imported as they are (not regenerated under its feet).
        import importlib
        sys.path.insert(0, a.stubs_dir)
        m = {"registry_grpc": importlib.import_module("creditrisk.v1.registry_pb2_grpc")}
        asyncio.run(hold_streams(a.hold_streams, m))
        return
    binary = str(pathlib.Path(a.bin).resolve())
    root = pathlib.Path(tempfile.mkdtemp(prefix="credit-risk-probe-"))
    (root / "stubs").mkdir()
    m = client.generate_stubs(root / "stubs")
    STUBS[0] = str(root / "stubs")
    server = Server(binary, root).start()
    try:
        channel = grpc.insecure_channel(server.addr, options=[
            ("grpc.max_send_message_length", 64 << 20)])
        grpc.channel_ready_future(channel).result(timeout=30)
        codes = load_city(m, channel)
        services = sorted({f"creditrisk.v1.{s}" for s in [
            "RegistryService", "ClassificationService", "SpotCheckService", "AuditService",
            "CreditRepairService", "AdminService", "RulesService"]})
        probe_scope(m, channel, codes)
        asyncio.run(probe_saturation(m, server.addr, codes))
        probe_memory(m, channel, server.proc.pid)
        probe_cpu(m, channel)
        probe_connections(server.addr)
        probe_leaks(m, channel, codes)
        probe_smaller(m, channel, services)
        channel.close()
    finally:
        server.stop()
    probe_damaged(binary, server, root)
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{sum(RESULTS)}/{len(RESULTS)} probes passed")
    sys.exit(0 if all(RESULTS) else 1)


if __name__ == "__main__":
    main()
