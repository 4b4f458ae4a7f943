"""`greenbench gate BASELINE CANDIDATE`: exit 1 on a significant regression beyond the threshold."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def gate(
    baseline: Path = typer.Argument(..., help="Baseline result (JSON from `greenbench run`, or a signed envelope)."),
    candidate: Path = typer.Argument(..., help="Candidate result to check against the baseline."),
    max_regression: float = typer.Option(5.0, "--max-regression", min=0.0, help="Allowed worsening in percent."),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Significance level of the Mann-Whitney U test."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Fail (exit 1) when the candidate is worse than the baseline by more than --max-regression percent
    AND the difference is statistically significant (Mann-Whitney U on per-repeat samples)."""
    from greenbench import gate as gate_mod
    from greenbench.cli import render
    from greenbench.results import load_any

    base = load_any(baseline)
    cand = load_any(candidate)
    report = gate_mod.compare(base, cand, max_regression_pct=max_regression, alpha=alpha)
    if json_out:
        from greenbench.canonical import canonical_bytes

        render.print_json_bytes(canonical_bytes(report))
    else:
        rows = []
        for c in report["checks"]:
            rows.append([
                c["metric"],
                "-" if c["baseline"] is None else f"{c['baseline']:.4g}",
                "-" if c["candidate"] is None else f"{c['candidate']:.4g}",
                "-" if c["change_pct"] is None else f"{c['change_pct']:+.1f}%",
                "-" if c["p_value"] is None else f"{c['p_value']:.3g}",
                f"{c['n_baseline']}/{c['n_candidate']}",
                c["verdict"],
            ])
        render.table(
            f"Gate: worse by > {max_regression:g}% and p < {alpha:g} fails",
            ["metric", ("baseline", "right"), ("candidate", "right"), ("worse by", "right"), ("p", "right"), "n", "verdict"],
            rows,
        )
        for c in report["checks"]:
            if c["note"]:
                render.info(f"{c['metric']}: {c['note']}")
        for w in report["warnings"]:
            render.warn(w)
        render.info("PASS" if report["passed"] else f"FAIL: regression in {', '.join(report['regressions'])}")
    if not report["passed"]:
        raise typer.Exit(1)
