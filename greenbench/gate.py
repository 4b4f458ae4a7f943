"""Performance gates: is a candidate significantly worse than a baseline, on the same work?

Comparable work first. Both sides must hold results of the same work (``workload.digest``) that generated
the same tokens, measured with the same energy method (counter, estimate and simulated joules are not
comparable; ``allow_mixed_methods`` gates only the speed metrics) on the same hardware (CPU model and the
GPUs the work used; ``allow_different_hardware`` overrides). Anything else is refused with exit 2 naming
the difference: a gate that compares unlike work gives verdicts about nothing.

Then size AND significance, per metric (as asv's ``_is_result_better``): a regression is a median worse
than the baseline's by more than the metric's threshold **and** a two-sided test that rejects "no
difference" at ``alpha`` after the Holm-Bonferroni adjustment over all metrics tested at once (Holm 1979),
so that checking four metrics does not quadruple the false alarms. Size alone would fail CI on noise;
significance alone on a 0.1 % change that nobody cares about.

Which test (the samples, and the noise they can see):
    one result per side: the per-repeat samples of the two runs, Mann-Whitney U (exact for small
        samples without ties). This sees only within-run noise: run-to-run drift (another boot, another
        thermal state) is invisible, and the report says so.
    2-4 results per side: the runs' medians, Welch's t-test (as pyperf's ``compare_to`` compares runs).
    5+ results per side: the runs' medians, Mann-Whitney U (no normality assumed).

A change beyond the threshold that is not significant is ``inconclusive``, never a quiet pass: the report
gives the repeats (or runs) per side that would decide at the observed noise; ``strict`` makes it a
failure. Results flagged for contention (run on a busy machine) are marked in the report.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from greenbench import stats
from greenbench.errors import GreenbenchError
from greenbench.results import get_path

from greenbench.metrics import DEFAULT_METRICS, METRICS

ENERGY_METRICS = {m for m in METRICS if "j_per_token" in m or m.endswith("energy_j")}


class GateRefusal(GreenbenchError):
    """The two sides cannot be compared (exit 2): different work, methods or hardware, or bad input."""


@dataclass(frozen=True)
class Run:
    """One result document and where it came from."""

    source: str
    doc: dict


@dataclass
class Check:
    metric: str
    direction: str
    unit: str
    threshold_pct: float
    baseline: float | None = None
    candidate: float | None = None
    change_pct: float | None = None  # positive = worse
    test: str = ""
    p_value: float | None = None
    p_adjusted: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0
    verdict: str = "skipped"  # regression, improvement, no change, inconclusive, skipped
    needed_per_side: int | None = None
    note: str = ""
    _a: list = field(default_factory=list, repr=False)
    _b: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("_a")
        d.pop("_b")
        return d


# ---------------------------------------------------------------------------------------------
# inputs


def parse_check(spec: str, source: str = "--check") -> tuple[str, float]:
    """``METRIC:PCT%`` (the ``%`` optional) -> (metric, pct).

    Raises:
        GateRefusal: unknown metric, or a threshold that is not a finite number >= 0.
    """
    metric, sep, pct = str(spec).rpartition(":")
    if not sep:
        raise GateRefusal(f"{source} {spec!r} is not METRIC:PCT%", "e.g. --check decode.j_per_token:5%")
    pct = pct.strip()
    pct = pct[:-1].strip() if pct.endswith("%") else pct
    return check_metric(metric.strip(), source), threshold(pct, f"{source} {spec}")


def parse_checks(specs) -> dict[str, float]:
    """Several ``--check`` values -> {metric: pct}; the same metric twice is an error."""
    out: dict[str, float] = {}
    for spec in specs:
        metric, pct = parse_check(spec)
        if metric in out:
            raise GateRefusal(f"--check names {metric} twice", "give each metric one threshold")
        out[metric] = pct
    return out


def check_metric(metric: str, source: str = "--check") -> str:
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, list(METRICS), n=1)
        raise GateRefusal(
            f"{source}: unknown metric {metric!r}",
            (f"did you mean {close[0]!r}? " if close else "") + f"metrics: {', '.join(METRICS)}",
        )
    return metric


def threshold(value, source: str) -> float:
    """A percentage threshold: a finite number >= 0 (strings like "5" and numbers accepted)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GateRefusal(f"{source}: threshold {value!r} is not a number", "give a percentage such as 5") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise GateRefusal(f"{source}: threshold must be a finite number >= 0, got {value!r}",
                          "give a percentage such as 5 (meaning 5%)")
    return v


def check_alpha(alpha) -> float:
    a = float(alpha)
    if not (math.isfinite(a) and 0 < a <= 0.5):
        raise GateRefusal(f"--alpha must be a number in (0, 0.5], got {alpha!r}", "the usual level is 0.05")
    return a


def collect_runs(paths, label: str) -> list[Run]:
    """Result files, envelopes or directories of them (and glob patterns) -> runs, duplicates dropped.

    A directory contributes every ``*.json`` in it. A result present twice (e.g. ``r.json`` beside its
    signed ``r.dsse.json``) counts once.
    """
    from greenbench.canonical import canonical_bytes
    from greenbench.results import load_any

    files: list[Path] = []
    for raw in paths:
        p = str(raw)
        matches = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        if not matches:
            raise GateRefusal(f"{label}: {p!r} matches no file", "check the path or pattern")
        for m in matches:
            mp = Path(m)
            if mp.is_dir():
                found = sorted(x for x in mp.iterdir() if x.suffix == ".json" and x.is_file())
                if not found:
                    raise GateRefusal(f"{label}: directory {mp} holds no .json result", "give the --out directory of `greenbench run`")
                files.extend(found)
            else:
                files.append(mp)
    runs: list[Run] = []
    seen: set[str] = set()
    for f in files:
        doc = load_any(f)
        key = hashlib.sha256(canonical_bytes(doc)).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        runs.append(Run(str(f), doc))
    if not runs:
        raise GateRefusal(f"no {label} result given", "give a result file or a directory of them")
    return runs


# ---------------------------------------------------------------------------------------------
# comparability


def hardware(doc: dict) -> tuple[str, tuple[str, ...]]:
    """(CPU model, the GPUs the work used): GPUs metered in scope, else every GPU the machine listed."""
    cpu = str(get_path(doc, "environment.cpu_model", "?"))
    devices = get_path(doc, "energy.scope.devices", None)
    if isinstance(devices, list):
        gpus = tuple(sorted(str(d.get("name") or d.get("uuid") or d.get("domain") or "a GPU")
                            for d in devices if isinstance(d, dict) and d.get("device") == "gpu"))
    else:
        gpus = tuple(sorted(str(g) for g in (get_path(doc, "environment.gpu_models", None) or [])))
    return cpu, gpus


def _identity_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if va == vb:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_identity_diff(va, vb, f"{prefix}{k}."))
        else:
            sa, sb = str(va), str(vb)
            out.append(f"{prefix}{k}: {sa[:40]} vs {sb[:40]}")
    return out


def _check_shape(run: Run) -> None:
    """The fields the gate reads must have the types greenbench writes (else exit 2 naming the path)."""
    from greenbench.meters.base import METHODS

    def bad(path: str, what: str):
        raise GateRefusal(f"{run.source}: {path} must be {what}, got {str(get_path(run.doc, path, None))[:60]}",
                          "the file is damaged or was not written by greenbench; re-run the benchmark")

    if not isinstance(get_path(run.doc, "workload.kind", None), str):
        bad("workload.kind", "a string")
    if get_path(run.doc, "energy.method", None) not in METHODS:
        bad("energy.method", "counter, estimate or simulated")
    toks = get_path(run.doc, "workload.generated_token_ids", None)
    if toks is not None and not (isinstance(toks, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in toks)):
        bad("workload.generated_token_ids", "a list of integers")
    cont = get_path(run.doc, "environment.contention", None)
    if cont is not None:
        frac = cont.get("other_cpu_fraction") if isinstance(cont, dict) else "?"
        if not isinstance(cont, dict) or not (frac is None or (isinstance(frac, (int, float)) and not isinstance(frac, bool)
                                                                and 0 <= frac <= 1)):
            bad("environment.contention", "an object whose other_cpu_fraction is a number from 0 to 1")
    table = get_path(run.doc, "profile.resolved.gate", None)
    if table is not None and not isinstance(table, dict):
        bad("profile.resolved.gate", "a table of metric thresholds")


def _require_comparable(base: list[Run], cand: list[Run], allow_mixed_methods: bool,
                        allow_different_hardware: bool) -> tuple[bool, list[str]]:
    """Refuse unlike work (GateRefusal); returns (energy metrics comparable, notes)."""
    notes: list[str] = []
    everyone = [("baseline", r) for r in base] + [("candidate", r) for r in cand]
    for label, r in everyone:
        if not isinstance(get_path(r.doc, "workload.digest", None), str):
            raise GateRefusal(
                f"{r.source} has no workload.digest (written by an older greenbench), so the gate cannot tell what "
                "work it measured",
                "re-run the benchmark with this greenbench",
            )
    first_b, first_c = base[0], cand[0]
    for label, side in (("baseline", base), ("candidate", cand)):
        digests = {get_path(r.doc, "workload.digest") for r in side}
        if len(digests) > 1:
            raise GateRefusal(f"the {label} holds results of different work ({len(digests)} workload digests)",
                              "give one side the runs of one profile and backend only")
    db, dc = get_path(first_b.doc, "workload.digest"), get_path(first_c.doc, "workload.digest")
    if db != dc:
        diff = _identity_diff(get_path(first_b.doc, "workload.identity", {}) or {},
                              get_path(first_c.doc, "workload.identity", {}) or {})
        raise GateRefusal(
            "baseline and candidate did different work (workload.digest differs"
            + (f": {'; '.join(diff[:4])}" if diff else "") + ")",
            "gate runs of the same profile, model, prompt and backend; --repeats, --threads and --region may differ",
        )
    tokens = {tuple(get_path(r.doc, "workload.generated_token_ids", None) or []) for _, r in everyone}
    if len(tokens) > 1:
        raise GateRefusal(
            "the results did the same work but generated different tokens: the computation itself changed "
            "(a different kernel, precision or graph)",
            "that is a correctness change, not a performance one: check it before gating speed or energy",
        )
    methods = {get_path(r.doc, "energy.method", None) for _, r in everyone}
    energy_ok = len(methods) == 1
    if not energy_ok:
        if not allow_mixed_methods:
            raise GateRefusal(
                f"the results measured energy with different methods ({', '.join(sorted(map(str, methods)))}): "
                "a counter reading, an estimate and a simulation are not comparable",
                "run both sides where the same meters work, or pass --allow-mixed-methods to gate speed only",
            )
        notes.append(f"energy methods differ ({', '.join(sorted(map(str, methods)))}): energy metrics are not "
                     "compared (--allow-mixed-methods), speed metrics are")
    scopes = {str(get_path(r.doc, "energy.scope.kind", None)) for _, r in everyone}
    if len(scopes) > 1 and energy_ok:
        if not allow_mixed_methods:
            raise GateRefusal(
                f"the results metered different device scopes ({', '.join(sorted(scopes))}): their energies cover "
                "different devices",
                "run both sides with the same --scope, or pass --allow-mixed-methods to gate speed only",
            )
        energy_ok = False
        notes.append(f"device scopes differ ({', '.join(sorted(scopes))}): energy metrics are not compared")
    hw = {hardware(r.doc) for _, r in everyone}
    if len(hw) > 1:
        desc = " vs ".join(f"{c}" + (f" + {', '.join(g)}" if g else "") for c, g in sorted(hw))
        if not allow_different_hardware:
            raise GateRefusal(f"the results come from different hardware ({desc})",
                              "gate runs from the same machine type, or pass --allow-different-hardware")
        notes.append(f"different hardware ({desc}), compared as asked (--allow-different-hardware)")
    return energy_ok, notes


# ---------------------------------------------------------------------------------------------
# the comparison


def _samples(run: Run, metric: str) -> list[float]:
    path = f"metrics.{metric}_samples"
    vals = get_path(run.doc, path, None)
    if vals is None:
        return []
    if not isinstance(vals, list):
        raise GateRefusal(f"{run.source}: {path} must be a list of numbers", "gate results written by greenbench")
    out = []
    for i, v in enumerate(vals):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise GateRefusal(f"{run.source}: {path}[{i}] is {v!r}, not a finite number >= 0",
                              "the file is damaged or was not written by greenbench; re-run the benchmark")
        out.append(float(v))
    return out


def _test_for(metric: str, base: list[Run], cand: list[Run]) -> tuple[str, list[float], list[float], str]:
    """(test name, baseline values, candidate values, unit of n) for one metric."""
    if len(base) == 1 or len(cand) == 1:
        a = [x for r in base for x in _samples(r, metric)]
        b = [x for r in cand for x in _samples(r, metric)]
        return "mann-whitney (repeats)", a, b, "repeats"
    a = [m for r in base if (m := stats.median(_samples(r, metric))) is not None]
    b = [m for r in cand if (m := stats.median(_samples(r, metric))) is not None]
    if min(len(base), len(cand)) >= 5:
        return "mann-whitney (run medians)", a, b, "runs"
    return "welch t (run medians)", a, b, "runs"


def _p(test: str, a: list[float], b: list[float]) -> float:
    if test.startswith("welch"):
        return stats.welch_t_test(a, b)[2]
    return stats.mann_whitney_u(a, b, method="auto")[1]


def compare_runs(
    base: list[Run],
    cand: list[Run],
    *,
    thresholds: dict[str, float] | None = None,
    max_regression_pct: float = 5.0,
    alpha: float = 0.05,
    strict: bool = False,
    allow_mixed_methods: bool = False,
    allow_different_hardware: bool = False,
) -> dict:
    """Gate ``cand`` against ``base`` (see the module docstring).

    Args:
        thresholds: metric -> allowed worsening in percent; None: the candidate profile's ``[gate]`` table,
            else the default metrics at ``max_regression_pct``.

    Returns:
        The report: ``checks`` (one per metric), ``regressions``, ``inconclusive``, ``passed``, ``exit_code``
        (0, or 1 on a regression or, with ``strict``, an inconclusive metric), ``noise`` (what the test
        saw), ``warnings``, ``flags`` (contention, partial runs).

    Raises:
        GateRefusal: unlike work, methods or hardware; bad thresholds or samples (exit 2).
    """
    max_regression_pct = threshold(max_regression_pct, "--max-regression")
    alpha = check_alpha(alpha)
    for r in base + cand:
        _check_shape(r)
    kinds = {get_path(r.doc, "workload.kind", None) for r in base + cand}
    if len(kinds) > 1:
        kb, kc = get_path(base[0].doc, "workload.kind", None), get_path(cand[0].doc, "workload.kind", None)
        raise GateRefusal(f"cannot compare workload kinds {kb!r} and {kc!r}", "gate two results of the same profile")
    kind = kinds.pop()
    energy_ok, warnings = _require_comparable(base, cand, allow_mixed_methods, allow_different_hardware)
    source = "--check"
    if thresholds is None:
        table = get_path(cand[0].doc, "profile.resolved.gate", None)
        if isinstance(table, dict) and table:
            thresholds = {check_metric(m, "[gate] in the candidate's profile"): threshold(v, f"[gate] {m}")
                          for m, v in table.items()}
            source = "the profile's [gate] table"
        else:
            thresholds = {m: max_regression_pct for m in DEFAULT_METRICS.get(kind, ())}
            source = f"--max-regression {max_regression_pct:g}"
    checks: list[Check] = []
    unit_of_n: dict[str, str] = {}
    for metric, pct in thresholds.items():
        direction, unit = METRICS[metric]
        c = Check(metric, direction, unit, pct)
        if metric in ENERGY_METRICS and not energy_ok:
            c.note = "not comparable: the energy methods differ"
            checks.append(c)
            continue
        test, a, b, per = _test_for(metric, base, cand)
        c.test, c.n_baseline, c.n_candidate, c._a, c._b = test, len(a), len(b), a, b
        if not a or not b:
            c.note = "no samples in one of the sides"
        elif test.startswith("welch") and (len(a) < 2 or len(b) < 2):
            c.note = "a side has fewer than two runs with samples"
        else:
            ma, mb = stats.median(a), stats.median(b)
            c.baseline, c.candidate = ma, mb
            if not ma:
                c.note = "baseline median is zero"
            else:
                rel = (mb - ma) / abs(ma) * 100.0
                c.change_pct = rel if direction == "lower" else -rel
                c.p_value = _p(test, a, b)
                unit_of_n[metric] = per
        checks.append(c)
    if all(c.p_value is None for c in checks):
        raise GateRefusal(
            "nothing to compare: no metric has samples in both sides",
            "re-run the benchmark to completion (a run interrupted before its first repeat has no samples)",
        )
    tested = [c for c in checks if c.p_value is not None]
    for c, adj in zip(tested, stats.holm_adjust([c.p_value for c in tested])):
        c.p_adjusted = adj
    m = len(tested)
    for c in tested:
        per = unit_of_n[c.metric]
        significant = c.p_adjusted < alpha
        worse = c.change_pct
        if worse > c.threshold_pct and significant:
            c.verdict = "regression"
        elif worse < -c.threshold_pct and significant:
            c.verdict = "improvement"
        elif abs(worse) > c.threshold_pct:
            c.verdict = "inconclusive"
            c.needed_per_side = stats.samples_to_decide(c._a, c._b, alpha / m)
            more = (f"about {c.needed_per_side} {per} per side would decide at this noise"
                    if c.needed_per_side else f"more {per} per side would decide")
            c.note = (f"{'worse' if worse > 0 else 'better'} by {abs(worse):.3g}% (threshold {c.threshold_pct:g}%) but "
                      f"not significant (adjusted p = {c.p_adjusted:.3g} >= {alpha:g}); {more}")
        else:
            c.verdict = "no change"
    flags = []
    for label, side in (("baseline", base), ("candidate", cand)):
        for r in side:
            if get_path(r.doc, "environment.contention.flagged", False):
                frac = get_path(r.doc, "environment.contention.other_cpu_fraction", None)
                flags.append(f"{label} {r.source} ran on a busy machine (other processes used "
                             f"{'?' if frac is None else f'{frac:.0%}'} of the CPUs)")
            if r.doc.get("partial"):
                flags.append(f"{label} {r.source} is a partial result ({r.doc.get('partial_reason') or 'interrupted'}): "
                             "fewer samples")
    if len(base) == 1 or len(cand) == 1:
        sides = "one run per side" if len(base) == len(cand) == 1 else f"{len(base)} vs {len(cand)} runs (a side with one run)"
        noise = (f"{sides}: the test pooled the repeats and saw only within-run noise, not run-to-run variation, so "
                 "a drift between runs can pass for a regression; give both sides several runs (directories) to include it")
    else:
        noise = f"{len(base)} vs {len(cand)} runs: the test compared run medians, so run-to-run noise is included"
    regressions = [c.metric for c in checks if c.verdict == "regression"]
    inconclusive = [c.metric for c in checks if c.verdict == "inconclusive"]
    exit_code = 1 if regressions or (strict and inconclusive) else 0
    return {
        "kind": kind,
        "workload_digest": get_path(base[0].doc, "workload.digest"),
        "alpha": alpha,
        "thresholds_from": source,
        "strict": strict,
        "baseline": [r.source for r in base],
        "candidate": [r.source for r in cand],
        "checks": [c.as_dict() for c in checks],
        "multiple_testing": f"Holm-Bonferroni over {m} metric(s)",
        "noise": noise,
        "regressions": regressions,
        "inconclusive": inconclusive,
        "warnings": warnings,
        "flags": flags,
        "passed": exit_code == 0,
        "exit_code": exit_code,
    }


def compare(base: dict, cand: dict, **kw) -> dict:
    """:func:`compare_runs` for two result documents (one run per side)."""
    return compare_runs([Run("baseline", base)], [Run("candidate", cand)], **kw)


# ---------------------------------------------------------------------------------------------
# CI outputs


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def to_markdown(report: dict) -> str:
    """A GitHub-flavoured Markdown summary naming every metric."""
    status = "FAIL" if report["exit_code"] else "PASS"
    lines = [
        f"### greenbench gate: {status}",
        "",
        f"Work `{report['workload_digest'][:19]}…`; {report['noise']}. Thresholds from {report['thresholds_from']}; "
        f"{report['multiple_testing']}, alpha {report['alpha']:g}.",
        "",
        "| metric | baseline | candidate | worse by | threshold | adjusted p | n | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in report["checks"]:
        worse = "-" if c["change_pct"] is None else f"{c['change_pct']:+.2f}%"
        p = "-" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}"
        verdict = c["verdict"] if c["verdict"] != "regression" else "**regression**"
        lines.append(f"| `{c['metric']}` | {_fmt(c['baseline'])} | {_fmt(c['candidate'])} | {worse} | "
                     f"{c['threshold_pct']:g}% | {p} | {c['n_baseline']}/{c['n_candidate']} | {verdict} |")
    notes = [f"- `{c['metric']}`: {c['note']}" for c in report["checks"] if c["note"]]
    notes += [f"- {w}" for w in report["warnings"] + report["flags"]]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def to_junit(report: dict) -> bytes:
    """JUnit XML: one testcase per metric; a regression is a failure, a metric not compared is skipped."""
    import xml.etree.ElementTree as ET

    return ET.tostring(_junit_suite(report, "greenbench gate", "greenbench.gate"), encoding="utf-8",
                       xml_declaration=True)


def to_junit_many(reports: list[tuple[str, dict]]) -> bytes:
    """JUnit XML with one ``testsuite`` per (name, report), e.g. one per pytest test."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="greenbench gate")
    for name, report in reports:
        root.append(_junit_suite(report, name, name))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _junit_suite(report: dict, name: str, classname: str):
    import xml.etree.ElementTree as ET

    checks = report["checks"]
    failed = [c for c in checks if c["verdict"] == "regression" or (report["strict"] and c["verdict"] == "inconclusive")]
    skipped = [c for c in checks if c["verdict"] == "skipped"]
    suite = ET.Element("testsuite", name=name, tests=str(len(checks)), failures=str(len(failed)),
                       errors="0", skipped=str(len(skipped)))
    for c in checks:
        tc = ET.SubElement(suite, "testcase", classname=classname, name=c["metric"])
        worse = "-" if c["change_pct"] is None else f"{c['change_pct']:.3g}%"
        p_adj = "-" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}"
        text = (f"baseline {_fmt(c['baseline'])} {c['unit']}, candidate {_fmt(c['candidate'])} {c['unit']}, "
                f"worse by {worse}, threshold {c['threshold_pct']:g}%, adjusted p {p_adj}"
                + (f"; {c['note']}" if c["note"] else ""))
        if c in failed:
            ET.SubElement(tc, "failure", message=f"{c['verdict']}: {c['metric']}").text = text
        elif c in skipped:
            ET.SubElement(tc, "skipped", message=c["note"] or "not compared")
        else:
            ET.SubElement(tc, "system-out").text = f"{c['verdict']}: {text}"
    return suite


def to_gab(report: dict) -> tuple[list[dict], list[dict]]:
    """github-action-benchmark entries: (customSmallerIsBetter, customBiggerIsBetter) lists of the candidate."""
    smaller, bigger = [], []
    for c in report["checks"]:
        if c["candidate"] is None:
            continue
        entry = {"name": c["metric"], "unit": c["unit"], "value": c["candidate"],
                 "extra": f"baseline {_fmt(c['baseline'])}; verdict {c['verdict']}"}
        (smaller if c["direction"] == "lower" else bigger).append(entry)
    return smaller, bigger


def github_annotations(report: dict, prefix: str = "") -> list[str]:
    """``::error::`` for regressions, ``::warning::`` for inconclusive metrics and flags (GitHub Actions)."""
    out = []
    for c in report["checks"]:
        if c["verdict"] == "regression":
            out.append(f"::error title=greenbench gate::{prefix}{c['metric']} worse by {c['change_pct']:.3g}% "
                       f"(threshold {c['threshold_pct']:g}%, adjusted p {c['p_adjusted']:.3g})")
        elif c["verdict"] == "inconclusive":
            kind = "error" if report["strict"] else "warning"
            out.append(f"::{kind} title=greenbench gate inconclusive::{prefix}{c['metric']}: {c['note']}")
    out += [f"::warning title=greenbench gate::{prefix}{f}" for f in report["flags"]]
    return out


def write_outputs(report: dict, *, markdown: str | None = None, junit: str | None = None,
                  gab: str | None = None, env=os.environ) -> list[str]:
    """Write the CI files asked for (and append to ``$GITHUB_STEP_SUMMARY`` when set); returns what was written."""
    from greenbench.canonical import canonical_bytes
    from greenbench.fsutil import atomic_write_bytes

    written = []
    md = to_markdown(report)

    def write(option: str, path: Path, data: bytes) -> None:
        from greenbench.errors import GreenbenchError

        try:
            written.append(str(atomic_write_bytes(path, data)))
        except (OSError, GreenbenchError) as exc:
            why = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
            raise GateRefusal(f"{option} {path}: cannot write it ({why})",
                              f"give {option} a path in a directory you can write to") from None

    if markdown:
        write("--markdown", Path(markdown), md.encode())
    if env.get("GITHUB_STEP_SUMMARY"):
        problem = append_step_summary(md + "\n", env)
        if problem:
            report["warnings"].append(problem)
        else:
            written.append(env["GITHUB_STEP_SUMMARY"])
    if junit:
        write("--junit", Path(junit), to_junit(report))
    if gab:
        smaller, bigger = to_gab(report)
        p = Path(gab)
        write("--export-gab", p, canonical_bytes(smaller))
        write("--export-gab", p.with_name(f"{p.stem}-bigger{p.suffix or '.json'}"), canonical_bytes(bigger))
    return written


def append_step_summary(md: str, env=os.environ) -> str | None:
    """Append to ``$GITHUB_STEP_SUMMARY``; returns a warning instead of failing when it cannot be written
    (a summary is a courtesy: it must not turn a verdict into a crash)."""
    path = env.get("GITHUB_STEP_SUMMARY")
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(md)
    except OSError as exc:
        return f"GITHUB_STEP_SUMMARY={path}: cannot append the summary: {exc.strerror or exc}"
    return None
