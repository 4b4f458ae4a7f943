"""`greenbench gate BASELINE CANDIDATE`: exit 1 on a significant regression beyond the threshold."""

from __future__ import annotations

import os
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def gate(
    paths: Optional[List[str]] = typer.Argument(
        None, help="BASELINE CANDIDATE: each a result file, a signed envelope, or a directory of runs of the same work."
    ),
    baseline: Optional[List[str]] = typer.Option(None, "--baseline", help="A baseline result, directory or glob (repeatable)."),
    candidate: Optional[List[str]] = typer.Option(None, "--candidate", help="A candidate result, directory or glob (repeatable)."),
    max_regression: str = typer.Option("5", "--max-regression", help="Allowed worsening in percent for the default metrics."),
    check: Optional[List[str]] = typer.Option(
        None, "--check", help="METRIC:PCT% to gate (repeatable), e.g. decode.j_per_token:5% ttft_s:10%; replaces the defaults."
    ),
    alpha: str = typer.Option("0.05", "--alpha", help="Family-wise significance level (Holm-Bonferroni over the metrics)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1) when a change beyond the threshold is inconclusive."),
    allow_mixed_methods: bool = typer.Option(
        False, "--allow-mixed-methods", help="Compare counter/estimate/simulated results on speed metrics only."
    ),
    allow_different_hardware: bool = typer.Option(
        False, "--allow-different-hardware", help="Compare results from different CPUs or GPUs."
    ),
    junit: Optional[str] = typer.Option(None, "--junit", help="Write JUnit XML (one testcase per metric)."),
    markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the Markdown summary ($GITHUB_STEP_SUMMARY gets it too)."),
    export_gab: Optional[str] = typer.Option(
        None, "--export-gab", help="Write github-action-benchmark JSON: FILE (smaller is better) and FILE-bigger (bigger is better)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Fail (exit 1) when the candidate is worse than the baseline by more than the threshold AND the
    difference is significant; refuse (exit 2) results of different work, methods or hardware."""
    from greenbench import gate as gate_mod
    from greenbench.cli import render

    paths = list(paths or [])
    if len(paths) not in (0, 2):
        raise gate_mod.GateRefusal(
            f"give BASELINE and CANDIDATE (got {len(paths)} path(s))",
            "greenbench gate base.json cand.json, or --baseline DIR --candidate DIR",
        )
    base_specs = list(baseline or []) + paths[:1]
    cand_specs = list(candidate or []) + paths[1:]
    if not base_specs or not cand_specs:
        raise gate_mod.GateRefusal("a gate needs a baseline and a candidate", "greenbench gate base.json cand.json")
    max_pct = gate_mod.threshold(max_regression, "--max-regression")
    alpha_v = gate_mod.check_alpha(_number(alpha, "--alpha"))
    thresholds = gate_mod.parse_checks(check) if check else None
    base = gate_mod.collect_runs(base_specs, "baseline")
    cand = gate_mod.collect_runs(cand_specs, "candidate")
    report = gate_mod.compare_runs(
        base, cand, thresholds=thresholds, max_regression_pct=max_pct, alpha=alpha_v, strict=strict,
        allow_mixed_methods=allow_mixed_methods, allow_different_hardware=allow_different_hardware,
    )
    written = gate_mod.write_outputs(report, markdown=markdown, junit=junit, gab=export_gab)
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(report))
    else:
        _print(report, render)
    if in_actions:  # workflow commands; stderr keeps --json output clean, and the runner reads both streams
        for line in gate_mod.github_annotations(report):
            (render.info if json_out else print)(line)
    for w in written:
        render.info(f"wrote {w}")
    if report["exit_code"]:
        raise typer.Exit(report["exit_code"])


def _number(text: str, option: str) -> float:
    from greenbench.gate import GateRefusal

    try:
        return float(text)
    except ValueError:
        raise GateRefusal(f"{option} must be a number, got {text!r}") from None


def _print(report: dict, render) -> None:
    rows = []
    for c in report["checks"]:
        rows.append([
            c["metric"],
            "-" if c["baseline"] is None else f"{c['baseline']:.4g}",
            "-" if c["candidate"] is None else f"{c['candidate']:.4g}",
            "-" if c["change_pct"] is None else f"{c['change_pct']:+.2f}%",
            f"{c['threshold_pct']:g}%",
            "-" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}",
            f"{c['n_baseline']}/{c['n_candidate']}",
            c["verdict"],
        ])
    render.table(
        f"Gate ({report['kind']}): worse by more than the threshold AND adjusted p < {report['alpha']:g} fails",
        [("metric", "left", "keep"), ("baseline", "right", "keep"), ("candidate", "right", "keep"),
         ("worse by", "right", "keep"), ("threshold", "right", "keep"), ("adj. p", "right", "keep"),
         ("n", "right", "keep"), ("verdict", "left", "keep")],
        rows,
        caption=f"{report['multiple_testing']}; {report['noise']}",
        overflow="fold",
    )
    for c in report["checks"]:
        if c["note"]:
            render.info(f"{c['metric']}: {c['note']}")
    for w in report["warnings"] + report["flags"]:
        render.warn(w)
    if report["exit_code"] == 0:
        extra = f" ({len(report['inconclusive'])} inconclusive)" if report["inconclusive"] else ""
        render.info(f"PASS{extra}")
    elif report["regressions"]:
        render.info(f"FAIL: regression in {', '.join(report['regressions'])}")
    else:
        render.info(f"FAIL (--strict): inconclusive {', '.join(report['inconclusive'])}")
