#!/usr/bin/env python3
"""The cost curve from `credit-risk bench` records: one row per measure, one column per
size, and the growth from the smallest to the largest size against the growth of the
city (linear = 1.00). Prints Markdown.

    python3 scripts/cost_curve.py bench-curve/*/bench-*.json
    python3 scripts/cost_curve.py --charts bench-curve/*/bench-*.json   # Mermaid charts
"""
import json
import statistics
import sys


def median(rounds, key):
    return statistics.median(r[key] for r in rounds)


def figures(path):
    raw = json.load(open(path))["raw"]
    n = raw["batch_scoring"]["enterprises"]
    imp = raw["import"]
    un = raw["unary"]
    spot = raw["spot"]
    joint = raw.get("joint_plan_and_draw", {})
    out = {
        "enterprises": n,
        "records": imp["received"],
        "import, records/s": imp["records_per_second"],
        "import, µs per record": 1e6 / imp["records_per_second"],
        "bare sled copy, records/s": imp["received"] / raw["bare_sled"]["copy_seconds"],
        "batch rescore, s": raw["batch_scoring"]["seconds"],
        "batch rescore, s per million": raw["batch_scoring"]["seconds"] / (n / 1e6),
        "bare dossier scan, s per million": raw["bare_sled"]["dossier_scan_seconds_2_threads"] / (n / 1e6),
        "GetClassification (FULL), req/s": median(un["get_classification"], "ours_per_second"),
        "GetClassification (CLASS), req/s": median(un["get_classification_class_view"], "ours_per_second"),
        "unary echo, req/s": median(un["get_classification"], "echo_per_second"),
        "GetClassification p99, ms": median(un["get_classification"], "ours_p99_ms"),
        "match stream, USCC/s": median(raw["stream"]["rates"], "ours_per_second"),
        "city-wide C/D pool, s": spot["pool_seconds"],
        "plan + draw, s": spot["plan_and_draw_seconds"],
        "plan + draw, µs per member": 1e6 * spot["plan_and_draw_seconds"] / max(spot["draw_population"], 1),
        "joint task plan + draw, s": joint.get("total_seconds", float("nan")),
        "disk after import, settled, bytes per enterprise": imp["store_bytes"] / n,
        "bare copy, bytes per enterprise": raw["bare_sled"]["copy_disk_bytes"] / n,
        "peak RSS, GiB": raw["server"]["peak_rss_kib"] / 1048576,
        "peak RSS, bytes per enterprise": raw["server"]["peak_rss_kib"] * 1024 / n,
    }
    if "compact" in raw:
        out["disk after compact, bytes per enterprise"] = raw["compact"]["disk_after"] / n
    return out


def fmt(v):
    if isinstance(v, int) or (isinstance(v, float) and v >= 1000):
        return f"{v:,.0f}"
    if v != v:
        return "—"
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


def main(paths):
    rows = sorted((figures(p) for p in paths), key=lambda f: f["enterprises"])
    sizes = [f["enterprises"] for f in rows]
    growth = sizes[-1] / sizes[0]
    keys = [k for k in rows[0] if k != "enterprises" and all(k in r for r in rows)]
    print("| measure | " + " | ".join(f"{s:,}" for s in sizes) + f" | × from {sizes[0]:,} to {sizes[-1]:,} (city × {growth:.0f}) |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for k in keys:
        vals = [r[k] for r in rows]
        g = vals[-1] / vals[0] if vals[0] else float("nan")
        print(f"| {k} | " + " | ".join(fmt(v) for v in vals) + f" | {g:.2f} |")


CHARTS = [
    ("Import, µs per record (flat = linear)", ["import, µs per record"]),
    ("Batch rescore, s per million enterprises", ["batch rescore, s per million", "bare dossier scan, s per million"]),
    ("Plan + draw, µs per population member", ["plan + draw, µs per member"]),
    ("Disk, bytes per enterprise", ["disk after import, settled, bytes per enterprise", "bare copy, bytes per enterprise"]),
    ("Server peak RSS, bytes per enterprise", ["peak RSS, bytes per enterprise"]),
    ("Point reads at 64 clients, req/s", ["GetClassification (FULL), req/s", "GetClassification (CLASS), req/s", "unary echo, req/s"]),
]


def charts(paths):
    """Mermaid line charts (GitHub renders them): one per cost, x = millions of enterprises."""
    rows = sorted((figures(p) for p in paths), key=lambda f: f["enterprises"])
    xs = ", ".join(f'"{r["enterprises"] / 1e6:g} M"' for r in rows)
    for title, keys in CHARTS:
        keys = [k for k in keys if all(k in r for r in rows)]
        top = max(r[k] for r in rows for k in keys) * 1.1
        print("```mermaid")
        print("xychart-beta")
        print(f'    title "{title}"')
        print(f"    x-axis [{xs}]")
        print(f'    y-axis 0 --> {top:.3g}')
        for k in keys:
            print("    line [" + ", ".join(f"{r[k]:.4g}" for r in rows) + "]")
        print("```")
        if len(keys) > 1:
            print("Lines, top to bottom at the left: " + "; ".join(keys) + ".")
        print()


def finished(paths):
    """The finished records only: the suite also leaves `bench-N.partial.json`, its
    checkpoint, beside each (which the usage's glob matches)."""
    return [p for p in paths if not p.endswith(".partial.json")]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--charts"]:
        charts(finished(sys.argv[2:]))
    else:
        main(finished(sys.argv[1:]))
