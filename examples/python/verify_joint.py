#!/usr/bin/env python3
"""Re-check a federated joint draw with the published consistent-sampler package,
independently of credit-risk.

    pip install consistent-sampler==1.0.10
    python3 examples/python/verify_joint.py joint.json joint-pops

`joint.json` is the joint receipt `credit-risk joint-draw --out` writes, `joint-pops` the
directory its `--population-dir` fills (NAME/stratum-I.txt, one USCC per line, as each
instance's ListPopulation streams it). Checked: the manifest text hashes to the
manifest digest every instance committed; each instance's list hashes to the digest the
manifest commits for it; no enterprise is in two instances' lists; and the package draws
exactly the receipt's selection (instance, USCC, ticket) from the union. Exit 0 and
"verified" on success, 1 with the first difference otherwise.
"""

import hashlib
import json
import math
import os
import sys

from consistent_sampler import sampler


def fail(msg):
    print("NOT VERIFIED: " + msg, file=sys.stderr)
    sys.exit(1)


def main(receipt_path, pop_dir):
    with open(receipt_path, encoding="utf-8") as f:
        r = json.load(f)
    text = r["manifest_text"]
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != r["manifest_digest"]:
        fail("manifest_text does not hash to manifest_digest")
    committed, specs, task = {}, [], None
    for line in text.splitlines():
        f = line.split(" ")
        if f[0] == "population" and len(f) == 5:
            committed[(f[1], int(f[2]))] = (int(f[3]), f[4])
        elif f[0] == "stratum" and len(f) == 5:
            specs.append((f[2], f[3], f[4]))
        elif line.startswith("task_id "):
            task = line[len("task_id "):]
    if task != r["task_id"]:
        fail("task_id %r, the manifest commits %r" % (r["task_id"], task))
    seed = r["seed"] + ":" + r["task_id"]
    if seed != r["sampler_seed"]:
        fail("sampler_seed is not seed + ':' + task_id")
    strata = r.get("strata", [])
    if len(strata) != len(specs):
        fail("%d strata in the receipt, the manifest commits %d" % (len(strata), len(specs)))
    for k, st in enumerate(strata):
        cls, how, size = specs[k]
        if st.get("risk_class", "") != "RISK_CLASS_" + cls:
            fail("stratum %d: class %s, the manifest commits %s" % (k, st.get("risk_class"), cls))
        union, owner = [], {}
        for (name, i), (n, digest) in sorted(committed.items()):
            if i != k:
                continue
            path = os.path.join(pop_dir, name, "stratum-%d.txt" % k)
            with open(path, encoding="utf-8") as f:
                ids = sorted(f.read().split())
            if len(ids) != n or hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest() != digest:
                fail("instance %s: %s does not hash to its committed digest %s" % (name, path, digest))
            for u in ids:
                if u in owner:
                    fail("stratum %d: %s is in the lists of %s and %s" % (k, u, owner[u], name))
                owner[u] = name
            union.extend(ids)
        if int(st.get("population", 0)) != len(union):
            fail("stratum %d: population %s, the lists hold %d" % (k, st.get("population", 0), len(union)))
        if how == "count":
            take = min(int(size), len(union))
        else:
            x = float(size) * len(union)
            take = min(round(x) if abs(x - round(x)) < 1e-9 else math.ceil(x), len(union))
        if int(st.get("k", 0)) != take:
            fail("stratum %d: k %s, the manifest's stratum over the union of %d gives %d" % (k, st.get("k", 0), len(union), take))
        drawn = list(sampler(union, seed=seed, take=take, output="tuple", digits=100)) if take else []
        want = [(owner[t[1]], t[1], t[0]) for t in drawn]
        got = [(x["instance"], x["uscc"], x["ticket"]) for x in st.get("selected", [])]
        if want != got:
            at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            fail("stratum %d: selected[%d] differs: the package draws %s" % (k, at, want[at] if at < len(want) else None))
        lines = "\n".join("%s %s %s" % g for g in got)
        if hashlib.sha256(lines.encode("utf-8")).hexdigest() != st.get("selection_digest", ""):
            fail("stratum %d: the selection does not hash to selection_digest" % k)
        print("stratum %d: %d drawn from the union of %d: same as the receipt" % (k, take, len(union)))
    print("verified")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
