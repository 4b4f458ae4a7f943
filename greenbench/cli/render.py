"""Terminal rendering: the only module that imports rich.

Commands print results through these helpers: tables on a TTY-friendly console on stdout, messages
and progress on stderr, so that ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

_stdout: Console | None = None
_stderr: Console | None = None

#: Control characters (C0 but newline, DEL, C1) shown as escapes: text from a result, a file name or another
#: signer never moves the cursor, clears the screen or retitles the terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x0A}
_CELL_CONTROLS = {**_CONTROLS, 0x0A: "\\n"}


def printable(text: str, newlines: bool = True) -> str:
    """``text`` with every control character written as an escape (``\\x1b``); newlines kept unless not
    ``newlines`` (a table cell)."""
    return text.translate(_CONTROLS if newlines else _CELL_CONTROLS)


#: Width for output that goes to a pipe or file (a CI log) when COLUMNS does not say: wide enough that tables
#: keep names, numbers and verdicts whole instead of cutting them at rich's default of 80.
PIPE_WIDTH = 160


def _width(stream) -> int | None:
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return None  # rich reads COLUMNS itself
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return None if tty else PIPE_WIDTH


def _redirected(stream) -> bool:
    """A live progress display has put its proxy in place of this stream: keep printing through our console."""
    from rich.file_proxy import FileProxy

    return isinstance(stream, FileProxy)


def console() -> Console:
    """Console on stdout (results)."""
    global _stdout
    if _stdout is None or (_stdout.file is not sys.stdout and not _redirected(sys.stdout)):
        _stdout = Console(file=sys.stdout, highlight=False, soft_wrap=False, emoji=False, width=_width(sys.stdout))
    return _stdout


def err_console() -> Console:
    """Console on stderr (messages, warnings, progress)."""
    global _stderr
    if _stderr is None or (_stderr.file is not sys.stderr and not _redirected(sys.stderr)):
        _stderr = Console(file=sys.stderr, highlight=False, emoji=False, width=_width(sys.stderr))
    return _stderr


def print_error(err: Exception) -> None:
    """Print a GreenbenchError as one short paragraph on stderr: message, then hint."""
    c = err_console()
    c.print(f"[bold red]error:[/] {escape(printable(getattr(err, 'message', str(err))))}", markup=True, highlight=False)
    hint = getattr(err, "hint", None)
    if hint:
        c.print(f"[bold]hint:[/] {escape(printable(hint))}", markup=True, highlight=False)


_warned: set[str] = set()
QUIET = False  # -q/--quiet: errors and the result only


def reset() -> None:
    """Start of a command: no warning printed yet, not quiet."""
    global QUIET
    _warned.clear()
    QUIET = False


def warn(message: str) -> None:
    """Print a warning on stderr, each distinct one once per command (and none with --quiet)."""
    if QUIET or message in _warned:
        return
    _warned.add(message)
    err_console().print(f"[yellow]warning:[/] {escape(printable(message))}", markup=True, highlight=False)


def info(message: str) -> None:
    if not QUIET:
        err_console().print(printable(message), markup=False, highlight=False)


def print_json_bytes(data: bytes) -> None:
    """Write a JSON document to stdout exactly as given (plus a newline)."""
    sys.stdout.write(data.decode("utf-8"))
    sys.stdout.write("\n")
    sys.stdout.flush()


def table(
    title: str | None,
    columns: Sequence[str | tuple[str, str]],
    rows: Iterable[Sequence[Any]],
    caption: str | None = None,
    overflow: str = "ellipsis",
) -> None:
    """Print a table on stdout.

    A column is a name, ``(name, justify)`` with justify in left/right/center, or ``(name, justify, "keep")``
    for values a user must read or type whole (names, numbers, verdicts): those are never wrapped or cut,
    other columns give way. ``overflow="fold"`` wraps a value too long for its column onto the next line
    instead of cutting it off.
    """
    rows = [["" if v is None else printable(str(v), newlines=False) for v in row] for row in rows]
    title, caption = title and printable(title), caption and printable(caption)
    specs = [((col, "left", "") if isinstance(col, str) else (col[0], col[1], col[2] if len(col) > 2 else ""))
             for col in columns]
    widths = [max([len(name)] + [len(r[i]) for r in rows if i < len(r)]) for i, (name, _, _) in enumerate(specs)]
    # what the table needs to stay readable: "keep" columns whole, others up to 20 wide (a column of prose
    # squeezed narrower reads as one word per line), plus borders and padding
    needed = sum(w if how == "keep" else min(w, 20) for w, (_, _, how) in zip(widths, specs)) + 3 * len(specs) + 1
    if any(how == "keep" for _, _, how in specs) and needed > console().width:
        _vertical(title, specs, rows, caption)
        return
    t = Table(
        title=escape(title) if title else None, caption=escape(caption) if caption else None, header_style="bold"
    )
    for (name, justify, how), widest in zip(specs, widths):
        if how == "keep":
            t.add_column(escape(name), justify=justify, no_wrap=True, min_width=widest)
        else:
            t.add_column(escape(name), justify=justify, overflow=overflow)
    for row in rows:
        t.add_row(*[escape(v) for v in row])
    console().print(t)


def _vertical(title, specs, rows, caption) -> None:
    """A table too wide for the terminal, one record per block of ``field: value`` lines (nothing cut)."""
    c = console()
    if title:
        c.print(escape(title), style="bold", soft_wrap=True)
    label_w = max(len(name) for name, _, _ in specs)
    for row in rows:
        c.print("")
        for (name, _, _), value in zip(specs, row):
            c.print(f"  {escape(name).ljust(label_w)}  {escape(value)}", soft_wrap=True, highlight=False)
    if caption:
        c.print("")
        c.print(escape(caption), soft_wrap=True, style="dim")


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on stderr; yields an ``advance(n=1, description=None)`` callable.

    The bar redraws only when ``advance`` is called (no refresh thread): a benchmark calls it between
    repeats, so no terminal drawing runs inside a measured window.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=False,
        auto_refresh=False,
    ) as prog:
        task = prog.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            if description is not None:
                prog.update(task, description=description)
            prog.advance(task, n)
            prog.refresh()

        yield advance


def fmt_si(value: float | None, unit: str, digits: int = 3) -> str:
    """Format ``value`` with an SI prefix: fmt_si(0.0123, 'J') -> '12.3 mJ'."""
    if value is None:
        return "-"
    if abs(value) < 1e-15:  # below femto-units: rounding noise of a difference, shown as 0 (exact value in --json)
        return f"0 {unit}"
    prefixes = [(1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")]
    a = abs(value)
    for scale, p in prefixes:
        if a >= scale:
            return f"{value / scale:.{digits}g} {p}{unit}"
    return f"{value:.{digits}g} {unit}"


def _training_table(doc: dict, label: str) -> None:
    """The training rows: J/token, tokens/s, MFU and the loss before, at the first and at the last step."""
    w, t = doc["workload"], (doc["metrics"].get("train") or {})

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    peak = t.get("peak") or {}
    mfu = t.get("mfu")
    table(
        f"{(doc.get('profile') or {}).get('name')} on {doc.get('backend')}: {w.get('repeats_completed', '?')} repeats of "
        f"{w.get('tokens_per_repeat', '?')} trained tokens",
        ["phase", ("J/token (median)", "right"), ("IQR", "right"), ("tokens/s", "right"), ("MFU", "right"),
         ("loss before / first / last", "right")],
        [["train", fmt_si(t.get("j_per_token"), "J"), fmt_si(t.get("j_per_token_iqr"), "J"),
          num(t.get("tokens_per_s"), ".1f"), "-" if mfu is None else f"{100 * mfu:.3g} %",
          f"{num(t.get('loss_before'), '.4g')} / {num(t.get('loss_first'), '.4g')} / {num(t.get('loss_last'), '.4g')}"]],
        caption=f"energy method: {label}; MFU against "
        + (f"{fmt_si(peak['flops_per_s'], 'FLOP/s')} ({peak.get('method')}: {peak.get('source')})"
           if peak.get("flops_per_s") else (peak.get("note") or "an unknown peak")),
        overflow="fold",
    )


def result_summary(doc: dict, warnings: bool = True) -> None:
    """Print a run's key metrics as tables: phases, energy by meter, carbon (then its warnings)."""
    m = doc["metrics"]
    e = doc["energy"]
    method = e["method"]
    label = {"counter": "measured (counter)", "estimate": "ESTIMATED", "simulated": "SIMULATED"}[method]
    w = doc["workload"]
    training = w.get("kind") == "training"
    if training:
        _training_table(doc, label)
    title = (
        f"{(doc.get('profile') or {}).get('name')} on {doc.get('backend')}: {w.get('repeats_completed', '?')} repeats, "
        f"{w.get('prompt_tokens', '?')} prompt + {w.get('new_tokens', '?')} new tokens"
    )
    rows = []
    for phase in () if training else ("prefill", "decode"):
        p = m.get(phase) or {}
        jpt = "below resolution" if p.get("below_resolution") else fmt_si(p.get("j_per_token"), "J")
        inner = p.get("inner_repeats")
        rows.append([
            phase,
            jpt,
            fmt_si(p.get("j_per_token_iqr"), "J"),
            "-" if p.get("tokens_per_s") is None else f"{p['tokens_per_s']:.1f}",
            fmt_si(p.get("duration_s"), "s"),
            "-" if p.get("window_s") is None else f"{fmt_si(p['window_s'], 's')}" + (f" x{inner}" if inner and inner > 1 else ""),
        ])
    if rows:
        table(
            title,
            [("phase", "left", "keep"), ("J/token (median)", "right", "keep"), ("IQR", "right"),
             ("tokens/s", "right", "keep"), ("time", "right"), ("window", "right")],
            rows,
            caption=f"energy method: {label}; TTFT {fmt_si(m.get('ttft_s'), 's')}; window: the energy window "
            "(x n: the phase ran n times back to back in it, so the counters could resolve it)",
        )
    d = m.get("decode") or {}
    if d.get("roofline_fraction") is not None or d.get("roofline_fraction_raw") is not None:
        ceilings = ", ".join(
            f"{k} ceiling {d[f'{k}_ceiling_tokens_per_s']:.4g} tok/s" for k in ("memory", "compute")
            if d.get(f"{k}_ceiling_tokens_per_s")
        )
        if d.get("roofline_fraction") is not None:
            info(f"decode roofline: {d['roofline_fraction']:.3g} of the {d.get('bound', 'memory')} ceiling ({ceilings})")
        else:
            warn(d.get("roofline_flag") or "decode ran above its measured ceiling: no roofline fraction")
    elif d.get("roofline_note"):
        info(f"decode roofline: {d['roofline_note']}")
    table(
        "Energy by meter",
        [("meter", "left", "keep"), ("domain", "left", "keep"), ("method", "left", "keep"), "basis",
         ("joules", "right", "keep"), "in total"],
        [[r.get("name"), r.get("domain"), r.get("method"), r.get("basis") or "-",
          "-" if r.get("joules") is None else f"{r['joules']:.4g}", "yes" if r.get("in_total", True) else "nested"]
         for r in e.get("meters") or []],
        caption=f"total {fmt_si(e.get('total_j'), 'J')}"
        + (f", marginal {fmt_si(e['marginal_j'], 'J')}" if e.get("marginal_j") is not None else "")
        + (f"; metered: {e['scope']['described']}" if isinstance(e.get("scope"), dict) and e["scope"].get("described") else ""),
    )
    c = doc.get("carbon") or {}
    if c:
        per1k = c.get("g_co2e_per_1k_tokens")
        table(
            "Carbon",
            ["region", ("g CO2e/kWh", "right"), ("g CO2e", "right"), ("g CO2e / 1k tokens", "right")],
            [[c.get("region"), f"{c.get('intensity_g_per_kwh', 0):.4g}", f"{c.get('g_co2e', 0):.4g}",
              "-" if per1k is None else f"{per1k:.4g}"]],
        )
    acc = ((w.get("model") or {}).get("accuracy") or {})
    if acc.get("token_agreement") is not None:
        def ci(key: str) -> str:
            iv = acc.get(f"{key}_ci95")
            return f" [95% CI {iv[0]:.3g}-{iv[1]:.3g}]" if iv else ""

        free, kl = acc.get("free_running_agreement"), acc.get("kl_divergence")
        seeds = f" over {len(acc['seeds'])} noise seeds" if acc.get("seeds") else ""
        info(f"simulated accuracy{seeds}: greedy-token agreement with the exact model {acc['token_agreement']:.3g}"
             f"{ci('token_agreement')} teacher-forced"
             + (f", {free:.3g}{ci('free_running_agreement')} free-running" if free is not None else "")
             + (f"; KL divergence {kl:.3g} nats" if kl is not None else "")
             + " (how: workload.model.accuracy in the result)")
    sim = (w.get("model") or {}).get("simulation") or {}
    line = sim.get("dram_sensitivity") or {}
    if sim.get("memory_share") is not None and line:
        info(f"simulated decode: DRAM is {100 * sim['memory_share']:.3g} % of the energy per token; "
             f"{fmt_si(line['j_per_token_low'], 'J')} to {fmt_si(line['j_per_token_high'], 'J')} per token over DRAM at "
             f"{line['low_pj_per_bit']:.3g}-{line['high_pj_per_bit']:.3g} pJ/bit (workload.model.simulation)")
    if warnings:
        for w_ in doc.get("warnings") or []:
            warn(w_)


def _block_summary(doc: dict) -> None:
    """A measured block (``workload.kind: measure``): its rounds."""
    b = doc["metrics"]["block"]
    rows = [["energy", fmt_si(b.get("energy_j"), "J"), fmt_si(b.get("energy_j_iqr"), "J"),
             len(b.get("energy_j_samples") or [])],
            ["time", fmt_si(b.get("duration_s"), "s"), fmt_si(b.get("duration_s_iqr"), "s"),
             len(b.get("duration_s_samples") or [])]]
    if b.get("j_per_token") is not None:
        rows.append(["J/token", fmt_si(b["j_per_token"], "J"), "-", len(b.get("j_per_token_samples") or [])])
    table(f"{doc['profile'].get('source') or doc['profile']['name']}: {b.get('rounds')} rounds",
          [("quantity", "left", "keep"), ("median", "right", "keep"), ("IQR", "right"), ("n", "right")], rows,
          caption=f"energy method: {doc['energy']['method']}")


def result_details(doc: dict, *, source: str, signers: list[str] | None = None) -> None:
    """Everything about one result (``greenbench show``): its summary, then measurement, scope and provenance."""
    kind = (doc.get("workload") or {}).get("kind")
    if kind == "measure":
        _block_summary(doc)
    else:
        result_summary(doc, warnings=False)
    m, e, w, env = doc.get("metrics") or {}, doc.get("energy") or {}, doc.get("workload") or {}, doc.get("environment") or {}
    rows = []
    for phase in ("prefill", "decode", "train"):
        p = m.get(phase) or {}
        if p.get("window_s") is None and not p.get("below_resolution"):
            continue
        rows.append([phase, "yes" if p.get("below_resolution") else "no", fmt_si(p.get("window_s"), "s"),
                     str(p.get("inner_repeats") or "-"), ", ".join(f"{x:.4g}" for x in p.get("j_per_token_samples") or [])])
    if rows:
        table("Measurement windows", [("phase", "left", "keep"), "below resolution", ("window", "right"),
                                       ("inner repeats", "right"), "J/token per repeat"], rows, overflow="fold",
              caption=f"energy windows span >= {e.get('min_window_periods', 20)} update periods of the slowest "
              f"meter ({fmt_si(e.get('slowest_period_s'), 's')}; twice that when edges cannot be aligned)")
    probes = e.get("probes") or {}
    if probes:
        table("Meters", [("meter", "left", "keep"), ("update period", "right"), "period from", "detail"],
              [[name, fmt_si(d.get("update_period_s"), "s"), d.get("period_source", "-"),
                "; ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items()
                          if k in ("tdp_w", "tdp_source", "logical_cpus", "ram_w_per_gb", "total", "ram_note"))]
               for name, d in probes.items()], overflow="fold")
    scope = e.get("scope") or {}
    if scope:
        devs = "; ".join(
            " ".join(str(x) for x in (d.get("device"), d.get("name") or "", d.get("uuid") or "", d.get("selected_by") or "") if x)
            for d in scope.get("devices") or [])
        info(f"scope: {scope.get('kind')} - {scope.get('described', '')}" + (f" ({devs})" if devs else ""))
    c = env.get("contention") or {}
    if c.get("other_cpu_fraction") is not None:
        info(f"contention: other processes used {c['other_cpu_fraction']:.1%} of the CPUs (threshold "
             f"{c.get('threshold', 0.1):.0%}){' - FLAGGED' if c.get('flagged') else ''}")
    git = env.get("project_git") or {}
    prov = [
        ["source", source],
        ["signed by", ", ".join(signers) if signers else "not signed"],
        ["created", doc.get("created", "-")],
        ["profile", f"{doc['profile'].get('name')} ({doc['profile'].get('digest')})"],
        ["work digest", w.get("digest") or "-"],
        ["backend", doc.get("backend", "-")],
        ["greenbench", env.get("greenbench_version", "-")],
        ["CPU", f"{env.get('cpu_model', '-')} ({env.get('cpu_count_physical', '?')} cores)"],
        ["GPUs", ", ".join(env.get("gpu_models") or []) or "none"],
        ["OS / Python", f"{env.get('os', '-')} / {env.get('python', '-')}"],
        ["libraries", ", ".join(f"{k} {v}" for k, v in (env.get("libraries") or {}).items()) or "-"],
        ["project git", f"{git.get('commit', '-')}{' (dirty)' if git.get('dirty') else ''}" if git else "-"],
    ]
    if doc.get("partial"):
        prov.append(["PARTIAL", doc.get("partial_reason") or "yes"])
    table("Provenance", [("field", "left", "keep"), "value"], prov, overflow="fold")
    for w_ in doc.get("warnings") or []:
        warn(w_)


def comparison(report: dict) -> None:
    """``greenbench compare``: per metric, each result against the reference, hyperfine style."""
    for mt in report["metrics"]:
        rows = [[r["label"], "-" if r["median"] is None else f"{r['median']:.4g}",
                 "-" if r["sd"] is None else f"{r['sd']:.2g}", r["n"],
                 "-" if r["ratio"] is None else ("1 (reference)" if r["ratio_sd"] is None
                                                 else f"{r['ratio']:.3g} ± {r['ratio_sd']:.2g}")] for r in mt["rows"]]
        table(f"{mt['metric']} ({mt['unit']}, {mt['direction']} is better)",
              [("result", "left", "keep"), ("median", "right", "keep"), ("± sd", "right"), ("n", "right"),
               (f"ratio to {report['reference']}", "right", "keep")], rows)
        for r in mt["rows"][1:]:
            if r["sentence"]:
                console().print(escape(printable(r["sentence"])), soft_wrap=True, highlight=False)
    for w in report["warnings"]:
        warn(w)


def sweep_summary(docs: list[dict]) -> None:
    """A batch sweep in one table: per batch size, decode J/token against tokens/s (all rows), TTFT, roofline."""
    from greenbench.sweep import curve

    if not docs:
        return
    d0 = docs[0]
    label = {"counter": "measured (counter)", "estimate": "ESTIMATED", "simulated": "SIMULATED"}
    rows = []
    for p in curve(docs):
        rf = p["roofline_fraction"]
        rows.append([p["batch_size"], fmt_si(p["j_per_token"], "J"),
                     "-" if p["tokens_per_s"] is None else f"{p['tokens_per_s']:.1f}", fmt_si(p["ttft_s"], "s"),
                     "-" if rf is None else f"{rf:.3g}", label.get(p["method"], p["method"])])
    table(
        f"{d0['profile']['name']} on {d0['backend']}: batch sweep",
        [("batch", "right", "keep"), ("decode J/token", "right", "keep"), ("decode tokens/s", "right", "keep"),
         ("TTFT", "right", "keep"), ("roofline", "right", "keep"), ("energy method", "left", "keep")],
        rows,
        caption="tokens/s counts every row of the batch; each batch size is its own result (its own workload.digest)",
        overflow="fold",
    )
