"""The leaderboard's web pages: rendered by ``greenbench serve`` (at ``/``) and written by
``leaderboard --html DIR`` (the same pages, static, for GitHub Pages or any file host).

Terms:
    view: what one index page shows: a page number, a sort key, filters (:data:`~greenbench.leaderboard.FILTERS`)
        and whether the trusted rows or the ones signed by unknown keys are listed. It is all in the query
        string (``/?page=2&sort=-tokens_per_s&backend=cuda``), so the table sorts, filters and pages
        without JavaScript, and every view has a link.
    links: where a page points: the server's routes (:class:`ServerLinks`) or the static files
        (:class:`StaticLinks`: ``index.html``, ``page-N.html``, ``group-<digest>.html``,
        ``result/<cid>.html``, with the raw envelope block, a CAR of it and the profile beside it).
    charts: per work group, J/token against tokens/s (batch sweeps drawn as lines, one energy method
        each, through :func:`greenbench.sweep.curve`); and J/token by backend across the group's *task*
        (the same job on any backend, device or dtype: :mod:`greenbench.leaderboard.fields`), since a work
        group holds one backend by definition. SVG drawn here (:mod:`.svg`), nothing loaded from another
        host.

Templates (Jinja2, ``templates/``) escape every value by default: a profile called ``<script>`` is shown,
never run. Pages send a Content-Security-Policy that allows no script and no other origin at all; the static
pages carry it in a ``<meta http-equiv>`` (:data:`META_CSP`).
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

from greenbench.leaderboard import FILTERS, LANE_LABEL, SORT_KEYS, Board
from greenbench.leaderboard import svg
from greenbench.leaderboard.access import Fields, as_text, clean
from greenbench.leaderboard.units import si

__all__ = ["View", "ServerLinks", "StaticLinks", "Orders", "parse_view", "ordered_rows", "sorted_by", "index_page", "result_page",
           "result_context", "write_site", "PAGE_SIZE", "CSP", "META_CSP", "Facets", "charts_for"]

PAGE_SIZE = 50
#: The order of the lanes in every listing: measurements first.
LANE_ORDER = {"counter": 0, "estimate": 1, "simulated": 2}
#: Points per lane a chart draws at most (the best by rank); a note under the chart says so.
CHART_POINTS = 150
#: The pages need nothing but themselves: no script, no other origin (images, fonts, styles all inline).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
#: The same policy in a static page's ``<meta http-equiv>`` (a file host sends no header): without
#: ``frame-ancestors``, which browsers ignore (and warn about) in a meta element.
META_CSP = CSP.replace("; frame-ancestors 'none'", "")

_ENV = None


def _clean_output(value: Any) -> Any:
    """Every value a template writes, without control characters (terminal escape sequences and the like:
    :func:`~greenbench.leaderboard.access.clean`; newlines kept); markup stays markup."""
    if isinstance(value, str):
        from markupsafe import Markup

        cleaned = clean(value, lines=True)
        return Markup(cleaned) if isinstance(value, Markup) else cleaned
    return value


def _env():
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            loader=jinja2.PackageLoader("greenbench.leaderboard", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
            finalize=_clean_output,
        )
        _ENV.filters["si"] = si
        _ENV.globals["LANE_LABEL"] = LANE_LABEL
        _ENV.globals["META_CSP"] = META_CSP
    return _ENV


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class View:
    """One index page (module docstring)."""

    page: int = 1
    sort: str = "rank"
    filters: tuple[tuple[str, str], ...] = ()
    untrusted: bool = False

    def params(self, **change: Any) -> dict[str, str]:
        """This view's query parameters, with ``change`` applied (None removes one)."""
        out: dict[str, Any] = dict(self.filters)
        if self.sort != "rank":
            out["sort"] = self.sort
        if self.untrusted:
            out["view"] = "untrusted"
        if self.page != 1:
            out["page"] = str(self.page)
        for k, v in change.items():
            if v is None or v == "":
                out.pop(k, None)
            else:
                out[k] = str(v)
        if out.get("page") == "1":
            out.pop("page")
        if out.get("sort") == "rank":
            out.pop("sort")
        return out

    @property
    def filter_dict(self) -> dict[str, str]:
        return dict(self.filters)


def parse_view(params: Mapping[str, str]) -> View:
    """A :class:`View` from query parameters.

    Raises:
        ValueError: an unknown sort key or a page that is not a positive integer (the server answers 400).
    """
    sort = params.get("sort") or "rank"
    if sort.lstrip("-") not in SORT_KEYS:
        raise ValueError(f"cannot sort by {sort!r}: use one of {', '.join(SORT_KEYS)} (prefix - for descending)")
    raw = params.get("page") or "1"
    if not raw.isdigit() or int(raw) < 1 or len(raw) > 9:
        raise ValueError(f"page must be a positive integer, got {raw[:20]!r}")
    view = params.get("view") or ""
    if view not in ("", "untrusted"):
        raise ValueError("view must be 'untrusted' or absent")
    filters = tuple(sorted((k, params[k]) for k in FILTERS if params.get(k)))
    return View(int(raw), sort, filters, view == "untrusted")


def _column(name: str):
    """A fast reader of one field of a :class:`~greenbench.leaderboard.Row` (the board's columns by index)."""
    from greenbench.leaderboard import _AT

    at = _AT.get({"method": "lane"}.get(name, name))
    if at is None:
        return lambda r: r.get(name)
    get = list.__getitem__
    return lambda r: get(r, at)


def _filtered(rows: list, wanted: dict[str, str]) -> list:
    from greenbench.leaderboard import _AT, _SIGNERS

    get = list.__getitem__
    for key, value in wanted.items():
        if key == "signer":
            rows = [r for r in rows if value in get(r, _SIGNERS)]
        else:
            at = _AT.get({"method": "lane"}.get(key, key))
            rows = [r for r in rows if get(r, at) == value] if at is not None else [r for r in rows if r.get(key) == value]
    return rows


def _order(columns: list, n: int, sort: str) -> list[int]:
    """Positions ``0..n-1`` sorted by ``sort`` over column tuples (``zip(*rows)``); ``rank`` is the board's
    order (groups, and lanes apart within each). Any other key sorts lane by lane: the
    measured (counter) rows first, then the estimated, then the simulated ones, each sorted apart, so an
    estimate or a simulation never sits among measurements in one "#" column. Within a lane, rows without
    a value last either way, equal values in board order. The values are read once; the positions are
    sorted by them (no Python call per comparison)."""
    from greenbench.leaderboard import _AT

    name = sort.lstrip("-")
    desc = sort.startswith("-")
    if name == "rank":  # the board's own order: group by group, lane by lane within one, by rank
        return list(range(n - 1, -1, -1)) if desc else list(range(n))
    if n == 0:
        return []
    lanes = columns[_AT["lane"]]
    by_lane: dict[Any, list[int]] = {}
    for i in range(n):
        by_lane.setdefault(lanes[i], []).append(i)
    values = columns[_AT[{"method": "lane"}.get(name, name)]]
    out: list[int] = []
    for lane in sorted(by_lane, key=lambda l: (LANE_ORDER.get(l, len(LANE_ORDER)), str(l))):
        mine = by_lane[lane]
        known = [i for i in mine if values[i] is not None]
        known.sort(key=values.__getitem__, reverse=desc)
        out += known + [i for i in mine if values[i] is None]
    return out


def sorted_by(rows: list, sort: str) -> list:
    """``rows`` (:class:`~greenbench.leaderboard.Row`) sorted by ``sort`` (a
    :data:`~greenbench.leaderboard.SORT_KEYS` name, ``-`` for descending; ``rank``: the board's own order),
    rows without a value last either way, equal values in board order."""
    if not rows:
        return []
    return [rows[i] for i in _order(list(zip(*rows)), len(rows), sort)]


class Orders:
    """One board's rows in each sort order, and its columns for filtering: made once per board (a server
    keeps one), so that a page with any sort and filters never sorts the board again, and filters with one
    pass over a column (no Python call per row)."""

    def __init__(self, board: Board, warm: bool = True):
        from greenbench.leaderboard import SORT_KEYS

        self.board = board
        self.columns = {False: list(zip(*board.rows)) if board.rows else [],
                        True: list(zip(*board.untrusted)) if board.untrusted else []}
        self.sorted: dict[tuple[bool, str], list[int]] = {}
        if warm:
            for name in SORT_KEYS:
                if name != "rank":
                    self._positions(False, name)
                    self._positions(False, "-" + name)

    def _positions(self, untrusted: bool, sort: str) -> list[int]:
        key = (untrusted, sort)
        got = self.sorted.get(key)
        if got is None:
            rows = self.board.untrusted if untrusted else self.board.rows
            got = self.sorted[key] = _order(self.columns[untrusted], len(rows), sort)
        return got

    def rows(self, view: View) -> list:
        """The rows of ``view``: sorted (:func:`sorted_by`), then filtered."""
        from greenbench.leaderboard import _AT, _SIGNERS

        rows = self.board.untrusted if view.untrusted else self.board.rows
        if not rows:
            return []
        positions = self._positions(view.untrusted, view.sort)
        cols = self.columns[view.untrusted]
        for key, value in view.filters:
            if key == "signer":
                col = cols[_SIGNERS]
                positions = [i for i in positions if value in col[i]]
            else:
                col = cols[_AT[{"method": "lane"}.get(key, key)]]
                positions = [i for i in positions if col[i] == value]
        return [rows[i] for i in positions]


def ordered_rows(board: Board, view: View) -> list:
    """The rows of ``view``: sorted (:func:`sorted_by`), then filtered."""
    rows = board.untrusted if view.untrusted else board.rows
    got = rows if view.sort == "rank" else sorted_by(rows, view.sort)
    wanted = view.filter_dict
    return _filtered(got, wanted) if wanted else got


# --------------------------------------------------------------------------- links


class ServerLinks:
    """Links of ``greenbench serve``."""

    static = False
    root = ""

    def index(self, current: View, **change: Any) -> str:
        q = urlencode(current.params(**change))
        return "/" + (f"?{q}" if q else "")

    def result(self, cid: str) -> str:
        return f"/result/{cid}"

    def raw(self, cid: str) -> str:
        return f"/ipfs/{cid}?format=raw"

    def car(self, cid: str) -> str:
        return f"/ipfs/{cid}?format=car"

    def profile(self, cid: str) -> str:
        return f"/result/{cid}/profile.toml"

    def group(self, current: View, group: str) -> str:
        return self.index(current, group=group, page=None)

    def home(self) -> str:
        return "/"


class StaticLinks(ServerLinks):
    """Links of the static site written by ``leaderboard --html DIR`` (relative, so it can live anywhere)."""

    static = True

    def __init__(self, depth: int = 0):
        self.root = "../" * depth

    def index(self, current: View, **change: Any) -> str:
        page = int(current.params(**change).get("page", "1"))
        return self.root + ("index.html" if page == 1 else f"page-{page}.html")

    def result(self, cid: str) -> str:
        return f"{self.root}result/{cid}.html"

    def raw(self, cid: str) -> str:
        return f"{self.root}result/{cid}.dag-json"

    def car(self, cid: str) -> str:
        return f"{self.root}result/{cid}.car"

    def profile(self, cid: str) -> str:
        return f"{self.root}result/{cid}.profile.toml"

    def group(self, current: View, group: str) -> str:
        return f"{self.root}group-{_group_file(group)}.html"

    def home(self) -> str:
        return self.root + "index.html"


def _group_file(group: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in group)


# --------------------------------------------------------------------------- facets and charts


@dataclass
class Facets:
    """The values each filter can take (with how many trusted rows have them), for the filter form."""

    values: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    def of(cls, board: Board) -> "Facets":
        from collections import Counter
        from itertools import chain

        from greenbench.leaderboard import _AT, _SIGNERS

        rows = board.rows + board.untrusted
        cols = list(zip(*rows)) if rows else []
        out = {}
        for k in FILTERS:
            if not cols:
                counts = Counter()
            elif k == "signer":
                counts = Counter(chain.from_iterable(cols[_SIGNERS]))
            else:
                counts = Counter(cols[_AT[{"method": "lane"}.get(k, k)]])
            counts.pop(None, None)
            counts.pop("", None)
            out[k] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:500]
        return cls(out)


def _sweep_docs(rows: list[dict]) -> list[dict]:
    """Rows in the shape :func:`greenbench.sweep.curve` reads (a result document's paths)."""
    return [{"workload": {"batch_size": r["batch_size"]}, "energy": {"method": r["lane"]}, "_row": r,
             "metrics": {"ttft_s": r["ttft_s"], "decode": {"j_per_token": r["j_per_token"],
                                                            "tokens_per_s": r["tokens_per_s"]}}} for r in rows]


def charts_for(board: Board, group: str | None, links) -> dict:
    """The charts of one work group (the most populated one when ``group`` is None): ``{"group", "scatter",
    "strip", "task", "task_size"}`` (the charts as SVG text; ``strip`` is drawn over the group's task), or
    ``{}`` when there are no trusted rows."""
    from greenbench.sweep import curve

    if not board.rows:
        return {}
    by_group = board.groups()
    if group is None or group not in by_group:
        group = max(by_group, key=lambda g: (len(by_group[g]), g))
    rows = by_group[group]
    shown, left_out = [], 0
    for lane in ("counter", "estimate", "simulated"):
        mine = [r for r in rows if r["lane"] == lane and r["j_per_token"] is not None]
        shown += mine[:CHART_POINTS]
        left_out += max(0, len(mine) - CHART_POINTS)
    note = f"best {CHART_POINTS} per energy method shown ({left_out} more in the table)" if left_out else ""
    label = lambda r: f"#{r['rank'] or '-'} {r['backend'] or '?'}, {r['hardware'] or '?'}"  # noqa: E731
    points = [{"x": r["tokens_per_s"], "y": r["j_per_token"], "lane": r["lane"], "label": label(r),
               "href": links.result(r["cid"])} for r in shown]
    # batch sweeps: every point of the same sweep run (same sweep digest, energy method, hardware and signer),
    # across work groups (each batch size is other work), connected in batch order
    lines: list[list[dict]] = []
    sweeps = {(r["sweep"], r["lane"], r["hardware"], r["signer"]) for r in rows if r["sweep"]}
    if sweeps:
        members: dict[tuple, dict] = {}
        for r in board.rows:
            k = (r["sweep"], r["lane"], r["hardware"], r["signer"])
            if k in sweeps and r["batch_size"] is not None:
                members.setdefault(k, {})[r["batch_size"]] = r  # the latest stored run of each size
        for k in sorted(members, key=str):
            docs = [members[k][b] for b in sorted(members[k])]
            pts = curve(_sweep_docs(docs))
            lines.append([{"x": p["tokens_per_s"], "y": p["j_per_token"], "lane": p["method"]} for p in pts])
        if lines:
            note = (note + "; " if note else "") + "dashed: a batch sweep (each batch size is other work)"
    title = f"J/token against tokens/s ({rows[0]['profile'] or 'work'} {group[:19]}…)"
    return {
        "group": group,
        "scatter": svg.scatter(points, title, lines, note),
        **_backend_chart(board, rows, links, label),
    }


def _backend_chart(board: Board, rows: list, links, label) -> dict:
    """J/token by backend across the results of the task of ``rows`` (a work group): the same job on any
    backend, device or dtype (:func:`greenbench.workloads.identity.task`), each lane its own marker.
    ``{"task", "task_size", "strip"}``."""
    from greenbench.leaderboard import _AT

    task = rows[0]["task"]
    if task is None:  # made before results carried workload.identity: its own work group only
        same = rows
    else:
        at = _AT["task"]
        same = [r for r in board.rows if list.__getitem__(r, at) == task]
    shown, left_out = [], 0
    for lane in ("counter", "estimate", "simulated"):
        mine = sorted((r for r in same if r["lane"] == lane and r["j_per_token"] is not None),
                      key=lambda r: r["j_per_token"])
        shown += mine[:CHART_POINTS]
        left_out += max(0, len(mine) - CHART_POINTS)
    notes = [f"best {CHART_POINTS} per energy method shown ({left_out} more)"] if left_out else []
    backends = len({r["backend"] for r in shown})
    if task is None:
        notes.append("these results do not name their task: their work group only")
    elif backends < 2:
        notes.append("no other backend has run this task yet")
    points = [{"category": r["backend"], "y": r["j_per_token"], "lane": r["lane"], "label": label(r),
               "href": links.result(r["cid"])} for r in shown]
    return {"task": task, "task_size": len(same),
            "strip": svg.strip(points, "J/token by backend, same task (measured, estimated and simulated apart)",
                               "; ".join(notes))}


# --------------------------------------------------------------------------- pages


def _pager(view: View, total: int, links) -> dict:
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(view.page, pages)
    near = sorted({1, pages, *range(max(1, page - 3), min(pages, page + 3) + 1)})
    return {
        "page": page, "pages": pages, "total": total,
        "first": (page - 1) * PAGE_SIZE + 1 if total else 0, "last": min(total, page * PAGE_SIZE),
        "links": [(n, links.index(view, page=n)) for n in near],
        "prev": links.index(view, page=page - 1) if page > 1 else None,
        "next": links.index(view, page=page + 1) if page < pages else None,
    }


def index_page(board: Board, view: View, links, *, trust_source: str, facets: Facets | None = None,
               charts: dict | None = None, rows: list[dict] | None = None) -> str:
    """The leaderboard page of ``view`` (module docstring)."""
    rows = ordered_rows(board, view) if rows is None else rows
    pager = _pager(view, len(rows), links)
    page_rows = rows[(pager["page"] - 1) * PAGE_SIZE: pager["page"] * PAGE_SIZE]
    columns = [("rank", "#"), ("method", "method"), ("profile", "profile"), (None, "work"), ("backend", "backend"),
               ("hardware", "hardware"), ("j_per_token", "J/token"), ("tokens_per_s", "tokens/s"), ("ttft_s", "TTFT"),
               ("g_co2e_per_1k_tokens", "g CO2e / 1k tok"), ("region", "region"), ("created", "date"), (None, "flags"),
               (None, "signed by")]
    heads = []
    for key, label in columns:
        if key is None or links.static:
            heads.append({"label": label, "href": None, "mark": ""})
            continue
        current = view.sort.lstrip("-") == key
        desc = view.sort.startswith("-")
        target = f"-{key}" if current and not desc else key
        heads.append({"label": label, "href": links.index(view, sort=target, page=None),
                      "mark": (" ▼" if desc else " ▲") if current else "", "key": key})
    return _env().get_template("index.html.j2").render(
        board=board, view=view, links=links, rows=page_rows, pager=pager, heads=heads, charts=charts or {},
        facets=facets or Facets.of(board), trust_source=trust_source, filters=dict(view.filters),
        FILTERS=FILTERS, SORT_KEYS=SORT_KEYS,
    )


def _envelope_parts(block: bytes) -> tuple[dict, dict, list[str]]:
    """``(envelope, result document, signers)`` of a stored envelope block, verified again."""
    from greenbench import signing
    from greenbench.store import dagjson

    env = dagjson.decode(block)
    verified = signing.verify_envelope(env)
    return env, verified.result, list(verified.signers)


_BARE_KEY = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _toml_str(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but for DEL (TOML wants it escaped) and lone
    surrogates (not Unicode scalar values: TOML cannot hold them, UTF-8 cannot encode them)."""
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace") if _has_surrogate(text) else text
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _toml_key(key: str) -> str:
    """A TOML key: bare when it may be (letters, digits, ``_``, ``-``), else a quoted basic string."""
    return key if key and set(key) <= _BARE_KEY else _toml_str(key)


def _toml_value(v: Any) -> str | None:
    """A TOML value of a JSON scalar or a list of them; None for what TOML cannot hold here (null, an
    integer beyond 64 bits, a table inside a list)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if -(2**63) <= v < 2**63 else None
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        parts = [_toml_value(x) for x in v]
        return None if any(p is None for p in parts) else "[" + ", ".join(parts) + "]"
    return None


def profile_toml(doc: Any) -> str:
    """The resolved profile of a result as TOML, to run the same work again (``greenbench run FILE``).
    Any key is quoted as TOML needs; a value TOML cannot hold (null, a table nested twice) is left out,
    and a line says so."""
    f = Fields(doc)
    resolved = f.get("profile.resolved")
    if not isinstance(resolved, dict):
        return "# this result does not carry its resolved profile (made by an older greenbench)\n"
    head = [f"# profile of result {f.text('profile.name') or '?'} ({f.text('profile.digest') or '?'})",
            "# run the same work again: greenbench run THIS_FILE"]
    body: list[str] = []
    left_out: list[str] = []
    for k, v in resolved.items():
        if not isinstance(v, dict):
            text = _toml_value(v)
            if text is None:
                left_out.append(str(k))
            else:
                body.append(f"{_toml_key(str(k))} = {text}")
    for section, table in resolved.items():
        if isinstance(table, dict):
            lines = []
            for k, v in table.items():
                text = _toml_value(v)
                if text is None:
                    left_out.append(f"{section}.{k}")
                else:
                    lines.append(f"{_toml_key(str(k))} = {text}")
            if lines:
                body += ["", f"[{_toml_key(str(section))}]"] + lines
    if left_out:
        head.append("# left out (no TOML value): " + ", ".join(clean(x) for x in left_out)[:300])
    return "\n".join(head + body) + "\n"


_PHASES = ("prefill", "decode", "train", "block")


def _scenarios(doc: Any) -> tuple[list[dict], str | None]:
    """The carbon scenario rows of a document, each field typed; or ``([], why)``."""
    from greenbench.carbon import scenarios

    try:
        rows = scenarios(doc)
    except Exception as exc:  # noqa: BLE001 - any shape of a signed document: the page says why, never a 500
        return [], clean(getattr(exc, "message", None) or str(exc) or type(exc).__name__)
    out = []
    for r in rows if isinstance(rows, list) else []:
        g = Fields(r)
        out.append({"name": g.text("name"), "intensity_g_per_kwh": g.num("intensity_g_per_kwh"),
                    "g_co2e": g.num("g_co2e"), "g_co2e_per_1k_tokens": g.num("g_co2e_per_1k_tokens"),
                    "boundary": g.text("source.boundary")})
    return out, None


def result_context(cid: str, block: bytes, row: dict | None) -> dict:
    """What the result page shows (see the template), from the stored envelope block: every field read
    through :class:`~greenbench.leaderboard.access.Fields`, so a document of any shape renders."""
    env, doc, signers = _envelope_parts(block)
    f = Fields(doc)
    phases = []
    for name in _PHASES:
        p = f.at(f"metrics.{name}")
        if isinstance(p.doc, dict):
            phases.append({"name": name, "below_resolution": p.flag("below_resolution"),
                           "inner_repeats": p.count("inner_repeats"),
                           **{k: p.num(k) for k in ("j_per_token", "j_per_token_iqr", "tokens_per_s", "duration_s",
                                                    "window_s", "energy_j")}})
    samples = {name: f.nums(f"metrics.{name}.j_per_token_samples") for name in _PHASES
               if isinstance(f.get(f"metrics.{name}"), dict)}
    meters = [{"name": m.text("name"), "domain": m.text("domain"), "method": m.text("method"),
               "basis": m.text("basis"), "joules": m.num("joules"), "in_total": m.get("in_total") is not False}
              for m in map(Fields, f.tables("energy.meters"))]
    scenario_rows, carbon_error = _scenarios(doc)
    fraction = f.num("environment.contention.other_cpu_fraction")
    libraries = {clean(str(k)): as_text(v) for k, v in f.table("environment.libraries").items()}
    method = f.text("energy.method")
    return {
        "cid": cid, "row": row, "signers": [clean(s) for s in signers], "phases": phases, "meters": meters,
        "name": f.text("profile.name"), "backend": f.text("backend"), "method": method,
        "method_class": method if method in LANE_LABEL else "other",
        "partial": bool(f.get("partial")), "partial_reason": f.text("partial_reason"),
        "work": f.text("workload.digest"), "kind": f.text("workload.kind"), "created": f.text("created"),
        "ttft_s": f.num("metrics.ttft_s"),
        "energy": {"total_j": f.num("energy.total_j"), "marginal_j": f.num("energy.marginal_j"),
                   "scope": f.text("energy.scope.described")},
        "carbon": {"region": f.text("carbon.region"), "region_name": f.text("carbon.region_name"),
                   "intensity_g_per_kwh": f.num("carbon.intensity_g_per_kwh"), "g_co2e": f.num("carbon.g_co2e"),
                   "g_co2e_per_1k_tokens": f.num("carbon.g_co2e_per_1k_tokens"), "pue": f.num("carbon.pue")},
        "scenarios": scenario_rows, "carbon_error": carbon_error,
        "profile": {"name": f.text("profile.name"), "digest": f.text("profile.digest")},
        "environment": {k: f.text(f"environment.{k}") for k in (
            "greenbench_version", "cpu_model", "cpu_count_physical", "os", "python")},
        "gpu_models": f.texts("environment.gpu_models"),
        "contention": {"present": isinstance(f.get("environment.contention"), dict),
                       "percent": None if fraction is None else 100 * fraction,
                       "flagged": f.flag("environment.contention.flagged")},
        "repeats_chart": svg.series(samples, "J/token per repeat"),
        "warnings": f.texts("warnings"),
        "profile_toml": profile_toml(doc), "payload_type": as_text(env.get("payloadType")),
        "libraries": libraries,
    }


def result_page(cid: str, block: bytes, row: dict | None, links) -> str:
    """The page of one result: phases, energy by meter, J/token per repeat, carbon scenarios, provenance."""
    return _env().get_template("result.html.j2").render(links=links, **result_context(cid, block, row))


# --------------------------------------------------------------------------- static site


def write_site(board: Board, dest: str | os.PathLike, get_block: Callable[[str], bytes], *, trust_source: str) -> int:
    """Write the pages statically into ``dest`` (module docstring); returns how many pages were written.

    Raises:
        GreenbenchError: ``dest`` cannot be written.
    """
    from greenbench.errors import GreenbenchError
    from greenbench.fsutil import atomic_write_many
    from greenbench.store.car import write_car
    from greenbench.store.cid import CID

    dest = Path(dest)
    try:
        (dest / "result").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GreenbenchError(f"cannot write into {dest}: {exc.strerror or exc}", "choose a directory you can write to") from None
    files: list[tuple[Path, bytes]] = []
    facets = Facets.of(board)
    top = StaticLinks(0)
    default = View()
    charts = charts_for(board, None, top)
    rows = ordered_rows(board, default)
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    for n in range(1, pages + 1):
        view = View(page=n)
        files.append((dest / ("index.html" if n == 1 else f"page-{n}.html"),
                      index_page(board, view, top, trust_source=trust_source, facets=facets, charts=charts,
                                 rows=rows).encode()))
    groups = board.groups()
    for group, grows in groups.items():
        view = View(filters=(("group", group),))
        files.append((dest / f"group-{_group_file(group)}.html",
                      index_page(board, view, top, trust_source=trust_source, facets=facets,
                                 charts=charts_for(board, group, top), rows=grows).encode()))
    # work that only unknown keys did: its page lists those results as such (the index links every group)
    unknown_only = {g: grows for g, grows in board.groups(board.untrusted).items() if g not in groups}
    for group, grows in unknown_only.items():
        view = View(filters=(("group", group),), untrusted=True)
        files.append((dest / f"group-{_group_file(group)}.html",
                      index_page(board, view, top, trust_source=trust_source, facets=facets, charts={},
                                 rows=grows).encode()))
    deep = StaticLinks(1)
    for row in board.rows + board.untrusted:
        cid = row["cid"]
        block = get_block(cid)
        files.append((dest / "result" / f"{cid}.html", result_page(cid, block, row, deep).encode()))
        files.append((dest / "result" / f"{cid}.dag-json", block))
        buf = io.BytesIO()
        parsed = CID.decode(cid)
        write_car(buf, [parsed], [(parsed, block)])
        files.append((dest / "result" / f"{cid}.car", buf.getvalue()))
        _, doc, _ = _envelope_parts(block)
        files.append((dest / "result" / f"{cid}.profile.toml", profile_toml(doc).encode()))
        if len(files) >= 2000:
            atomic_write_many(files)
            files = []
    atomic_write_many(files)
    return pages + len(groups) + len(unknown_only) + len(board.rows) + len(board.untrusted)
