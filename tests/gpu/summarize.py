"""The figures of a device check (tests/gpu/device_check.sh) as one JSON document on stdout.

Usage: python tests/gpu/summarize.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _load(p: Path):
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def tests(out: Path) -> dict | None:
    try:
        root = ET.parse(out / "gpu-tests.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    cases = suite.findall("testcase") if suite is not None else []
    status = {}
    for c in cases:
        name = f"{c.get('classname')}::{c.get('name')}"
        if c.find("failure") is not None or c.find("error") is not None:
            status[name] = "failed"
        elif c.find("skipped") is not None:
            status[name] = "skipped: " + (c.find("skipped").get("message") or "")[:120]
        else:
            status[name] = "passed"
    return {"passed": sum(v == "passed" for v in status.values()),
            "failed": [k for k, v in status.items() if v == "failed"],
            "skipped": {k: v for k, v in status.items() if v.startswith("skipped")},
            "gpu_marked_selected": len(status)}


def result_rows(out: Path) -> tuple[list[dict], list[dict]]:
    decode, train = [], []
    for f in sorted((out / "results").glob("*.json")):
        d = _load(f)
        if not d:
            continue
        e, w, m = d.get("energy") or {}, d.get("workload") or {}, d.get("metrics") or {}
        common = {
            "file": f.name, "profile": d["profile"]["name"], "backend": d.get("backend"),
            "device": (w.get("identity") or {}).get("device"), "partial": d.get("partial"),
            "energy_method": e.get("method"),
            "meters": [{k: r.get(k) for k in ("name", "domain", "method", "joules")} for r in e.get("meters") or []],
            "slowest_counter_period_s": e.get("slowest_period_s"), "min_window_periods": e.get("min_window_periods"),
            "warnings": d.get("warnings"),
        }
        if w.get("kind") == "training":
            t = m.get("train") or {}
            train.append({**common, **{k: t.get(k) for k in (
                "j_per_token", "tokens_per_s", "mfu", "loss_before", "loss_first", "loss_last", "window_s",
                "inner_repeats", "j_per_token_samples", "tokens_per_s_samples")},
                "peak": t.get("peak"), "precision": (w.get("model") or {}).get("precision"),
                "device_name": (w.get("model") or {}).get("device_name")})
        else:
            dec, pre = m.get("decode") or {}, m.get("prefill") or {}
            decode.append({**common, "batch_size": w.get("batch_size"), "dtype": (w.get("model") or {}).get("dtype"),
                           "decode_mode": (w.get("model") or {}).get("decode"), "ttft_s": m.get("ttft_s"),
                           "prefill_j_per_token": pre.get("j_per_token"),
                           **{f"decode_{k}": dec.get(k) for k in (
                               "j_per_token", "tokens_per_s", "roofline_fraction", "roofline_note",
                               "memory_bandwidth_bytes_per_s", "memory_bandwidth_method", "bytes_per_token",
                               "window_s", "inner_repeats", "j_per_token_samples", "tokens_per_s_samples")}})
    return decode, train


def main() -> None:
    out = Path(sys.argv[1])
    steps = []
    for line in (out / "steps.tsv").read_text().splitlines() if (out / "steps.tsv").is_file() else []:
        name, rc, secs = line.split("\t")
        steps.append({"step": name, "rc": rc, "seconds": int(secs)})
    decode, train = result_rows(out)
    doc = {
        "versions": (out / "versions.txt").read_text().splitlines() if (out / "versions.txt").is_file() else None,
        "steps": steps,
        "gpu_tests": tests(out),
        "decode_runs": decode,
        "training_runs": train,
        "bench_decode": _load(out / "bench_decode.json"),
        "bench_decode_compile": _load(out / "bench_decode_compile.json"),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
