"""The store's index: ``index.sqlite`` (SQLite in WAL mode) with packed blocks, results and pins.

Terms:
    packed: one row per block kept in a pack: multihash -> pack name, offset, length.
    results: one row per indexed result CID with its signer, profile, backend, hardware and headline
        metrics, for fast queries without reading blocks (the whole ``info`` dict is kept as JSON).
    board: given ``info["board"]``, one row per indexed result with the leaderboard's columns
        (:data:`BOARD_COLUMNS`): the verdict reached when the envelope was verified on the way in, the
        signers, the fields the leaderboard ranks, filters and sorts by, and the rest as the layer above's
        static JSON text (:mod:`greenbench.leaderboard.fields`), so that a leaderboard is one query. A
        table of its own, narrow, so that reading 100,000 of its rows never reads ``info``; its index
        ``board_order`` keeps the leaderboard's order (work, lane, ranked first, J/token, date, CID), so that
        reading a board in order needs no sort.
    meta: counters; ``results`` counts the writes to the results and board tables, so that a change that
        adds no row (a verdict recorded by ``store verify``) still changes :meth:`Index.result_state`.
    pins: CIDs the user asked to keep: ``store gc --unpinned`` keeps every block reachable from a pin
        (recursive) or the pinned block itself (direct), as Kubo's pin set does.
    reader: a read-only connection (``mode=ro``; ``immutable=1`` where even the WAL's shared-memory file
        cannot be made, e.g. a store on read-only media). Reading never creates or changes the index:
        a store someone else owns, or a read-only copy, is readable as it is.
    writer: a read-write connection, made per write; the first one on a new index file switches it to
        WAL and creates the tables (and, for a store whose packs lost their index, rebuilds the rows).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

from greenbench.errors import StoreError

__all__ = ["Index", "INDEX_HINT", "MAX_QUERY_INT", "BOARD_COLUMNS", "BOARD_SELECT"]

_SQLITE_TIMEOUT_S = 30.0
#: How much of the index file a reader maps into memory (address space, not memory: pages are read as used).
_READ_MMAP_BYTES = 1 << 30
INDEX_HINT = (
    "if the file is damaged, move it away: greenbench rebuilds the block index from the packs, and "
    "`greenbench store reindex` rebuilds the result index from the stored envelopes"
)
#: Largest ``limit``/``offset`` a query accepts (SQLite integers are signed 64-bit).
MAX_QUERY_INT = 2**63 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS packed (
    mh BLOB PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packed_pack ON packed (pack);
CREATE TABLE IF NOT EXISTS results (
    cid TEXT PRIMARY KEY,
    signer TEXT,
    profile TEXT,
    backend TEXT,
    cpu_model TEXT,
    gpu_models TEXT NOT NULL DEFAULT '[]',
    created TEXT,
    j_per_token REAL,
    tokens_per_s REAL,
    info TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_signer ON results (signer);
CREATE INDEX IF NOT EXISTS results_profile ON results (profile, backend);
CREATE INDEX IF NOT EXISTS results_created ON results (created);
CREATE TABLE IF NOT EXISTS board (
    {board}
);
CREATE UNIQUE INDEX IF NOT EXISTS board_cid ON board (cid);
CREATE INDEX IF NOT EXISTS board_sha256 ON board (sha256);
CREATE INDEX IF NOT EXISTS board_order ON board (fields, verdict, work, lane, (j_per_token IS NULL OR partial),
    coalesce(j_per_token, 0), coalesce(created, ''), cid, partial);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    key TEXT PRIMARY KEY,
    cid TEXT NOT NULL,
    recursive INTEGER NOT NULL,
    created REAL NOT NULL
);
"""


#: The board table's columns: (column, SQL type, key of ``info["board"]``), small ones first and the static
#: JSON last. A list (signers) is kept as text joined by "\n"; a boolean as 0/1.
BOARD_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cid", "TEXT NOT NULL", "cid"),
    ("fields", "INTEGER", "fields"),
    ("verdict", "TEXT", "verdict"),
    ("sha256", "TEXT", "sha256"),
    ("signers", "TEXT", "signers"),
    ("work", "TEXT", "group"),
    ("lane", "TEXT", "lane"),
    ("partial", "INTEGER", "partial"),
    ("j_per_token", "REAL", "j_per_token"),
    ("created", "TEXT", "created"),
    ("profile", "TEXT", "profile"),
    ("backend", "TEXT", "backend"),
    ("hardware", "TEXT", "hardware"),
    ("region", "TEXT", "region"),
    ("kind", "TEXT", "kind"),
    ("tokens_per_s", "REAL", "tokens_per_s"),
    ("ttft_s", "REAL", "ttft_s"),
    ("g_co2e_per_1k_tokens", "REAL", "g_co2e_per_1k_tokens"),
    ("prefill_j_per_token", "REAL", "prefill_j_per_token"),
    ("batch_size", "INTEGER", "batch_size"),
    ("sweep", "TEXT", "sweep"),
    ("static", "TEXT", "static"),
    ("task", "TEXT", "task"),
)
#: The columns :meth:`Index.board_rows` returns per row, in this order.
BOARD_SELECT: tuple[str, ...] = (
    "cid", "sha256", "signers", "work", "lane", "partial", "j_per_token", "created", "verdict", "static", "profile",
    "backend", "hardware", "region", "kind", "tokens_per_s", "ttft_s", "g_co2e_per_1k_tokens", "prefill_j_per_token",
    "batch_size", "sweep", "task",
)
#: Board columns added after the table was first made: (column, SQL type); an older index gets them
#: (ALTER TABLE) when it is opened for writing, and reads give NULL for them until then.
_ADDED_BOARD_COLUMNS = (("task", "TEXT"),)


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    number = int(value)
    if not 0 <= number <= MAX_QUERY_INT:
        raise ValueError(f"out of range (0 to {MAX_QUERY_INT})")
    return number


#: query_results filter -> (SQL clause with one parameter, how the value is converted).
_RESULT_FILTERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    **{k: (f"{k} = ?", str) for k in ("cid", "signer", "profile", "backend", "cpu_model")},
    "gpu_model": ("EXISTS (SELECT 1 FROM json_each(results.gpu_models) WHERE json_each.value = ?)", str),
    "created_after": ("created >= ?", str),
    "created_before": ("created <= ?", str),
    "max_j_per_token": ("j_per_token <= ?", _finite),
    "min_tokens_per_s": ("tokens_per_s >= ?", _finite),
}
_ORDER_COLUMNS = ("created", "j_per_token", "tokens_per_s", "profile", "cid")


def file_id(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of a file, None if it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    return st.st_dev, st.st_ino


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    try:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _bump(conn: sqlite3.Connection) -> None:
    """Count a change of the results or board table (see :meth:`Index.result_state`)."""
    conn.execute("INSERT INTO meta (key, value) VALUES ('results', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _board_value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    if isinstance(value, bool):
        return int(value)
    if kind == "REAL":
        return _number(value)
    if kind == "INTEGER":  # an SQLite INTEGER is signed 64-bit: a larger int would raise OverflowError
        return value if isinstance(value, int) and -MAX_QUERY_INT - 1 <= value <= MAX_QUERY_INT else None
    return str(value)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        return None
    return number if math.isfinite(number) else None


class Index:
    """One store's ``index.sqlite`` (module docstring).

    Args:
        path: the index file.
        ensure: makes the store's directories before the first write.
        on_new: called with a writer connection right after a new (or emptied) index file got its tables;
            the store rebuilds the packed rows from the packs' trailers there.
    """

    def __init__(self, path: Path, ensure: Callable[[], None], on_new: Callable[[sqlite3.Connection], None]):
        self.path = path
        self._ensure = ensure
        self._on_new = on_new
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._ready_id: tuple[int, int] | None = None  # the index file initialised by this handle

    # --- connections -------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        """A read-write connection (the caller closes it); creates and initialises the index if needed."""
        self._ensure()
        try:
            conn = sqlite3.connect(self.path, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the index {self.path}: {exc}", INDEX_HINT) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_SQLITE_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")  # a commit is durable before it returns (packs depend on it)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the index {self.path}: {exc}", INDEX_HINT) from None
        # Initialise once per index file: a file lost and made anew (another inode, or no tables yet)
        # is initialised, and rebuilt from the packs, again.
        if file_id(self.path) != self._ready_id or not _has_table(conn, "pins"):
            with self._init_lock:
                ident = file_id(self.path)
                if ident != self._ready_id or not _has_table(conn, "pins"):
                    self._init(conn)
                    self._ready_id = ident
        return conn

    def _init(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Switching a new database to WAL takes an exclusive lock that SQLite's
        busy handler does not wait for, so writers that create the index at once (several processes on
        a new store) retry here until the busy timeout."""
        deadline = time.monotonic() + _SQLITE_TIMEOUT_S
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    conn.close()
                    raise StoreError(f"cannot put the index {self.path} in WAL mode (got {mode})")
                conn.executescript(_SCHEMA.replace("{board}", ",\n    ".join(f"{n} {t}" for n, t, _ in BOARD_COLUMNS)))
                have = {r[1] for r in conn.execute("PRAGMA table_info(board)")}
                for name, kind in _ADDED_BOARD_COLUMNS:
                    if name not in have:
                        conn.execute(f"ALTER TABLE board ADD COLUMN {name} {kind}")
                break
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                conn.close()
                raise StoreError(f"cannot initialise the index {self.path}: {exc}", INDEX_HINT) from None
            except sqlite3.Error as exc:
                conn.close()
                raise StoreError(f"cannot initialise the index {self.path}: {exc}", INDEX_HINT) from None
        try:
            self._on_new(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot rebuild the index {self.path}: {exc}", INDEX_HINT) from None
        except BaseException:
            conn.close()
            raise

    def reader(self) -> sqlite3.Connection | None:
        """This thread's read-only connection, or None while there is no index file.

        Reopened when the index file is replaced or removed under a long-lived handle (a server), so it
        never reads a deleted file while other processes write the new one.
        """
        local = self._local
        conn = getattr(local, "conn", None)
        ident = file_id(self.path)
        if conn is not None and local.ident == ident:
            return conn
        if conn is not None:
            conn.close()
            local.conn = None
        if ident is None:
            return None
        uri = "file:" + quote(str(self.path.absolute()))
        conn = None
        for params in ("?mode=ro", "?mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(uri + params, uri=True, timeout=_SQLITE_TIMEOUT_S, isolation_level=None)
                conn.execute(f"PRAGMA busy_timeout = {int(_SQLITE_TIMEOUT_S * 1000)}")
                if "immutable" not in params:
                    # pages read through a memory map, not a read(2) each: a leaderboard of 100,000 results
                    # reads 100 MB of its rows, a quarter faster so (tests/benchmarks/bench_leaderboard.py).
                    # Not for an immutable reader: SQLite never re-checks that file's size, and a map of a
                    # file another program shrank in place would kill this process (SIGBUS), not raise.
                    conn.execute(f"PRAGMA mmap_size = {_READ_MMAP_BYTES}")
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
                break
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                    conn = None
                error = exc
        if conn is None:
            raise StoreError(f"cannot read the index {self.path}: {error}", INDEX_HINT)
        local.conn, local.ident, local.tables = conn, ident, {}
        return conn

    def _readable(self, table: str) -> sqlite3.Connection | None:
        """The reader, if the index exists and has ``table`` (an older index may lack one)."""
        conn = self.reader()
        if conn is None:
            return None
        tables = self._local.tables
        if not tables.get(table):
            tables[table] = _has_table(conn, table)  # a table added later is seen on the next call
        return conn if tables[table] else None

    def close(self) -> None:
        """Close this thread's reader."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _read(self, table: str, sql: str, args: tuple = ()) -> list[tuple]:
        conn = self._readable(table)
        if conn is None:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the index {self.path}: {exc}", INDEX_HINT) from None

    def _write(self, fn: Callable[[sqlite3.Connection], Any], conn: sqlite3.Connection | None = None) -> Any:
        """Run ``fn(conn)`` in one immediate transaction (one WAL sync)."""
        own = conn is None
        if conn is None:
            conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the index {self.path}: {exc}", INDEX_HINT) from None
        finally:
            if own:
                conn.close()
        return out

    # --- packed blocks -----------------------------------------------------------------------

    def packed(self, mh: bytes) -> tuple[str, int, int] | None:
        """``(pack name, offset, length)`` of a packed block, or None."""
        rows = self._read("packed", "SELECT pack, offset, length FROM packed WHERE mh = ?", (mh,))
        return rows[0] if rows else None

    def packed_many(self, mhs: list[bytes]) -> dict[bytes, tuple[str, int, int]]:
        """``{multihash: (pack, offset, length)}`` for those of ``mhs`` that are packed (one query)."""
        if not mhs:
            return {}
        marks = ", ".join("?" * len(mhs))
        rows = self._read("packed", f"SELECT mh, pack, offset, length FROM packed WHERE mh IN ({marks})", tuple(mhs))
        return {mh: (pack, offset, length) for mh, pack, offset, length in rows}

    def count_packed(self) -> int:
        rows = self._read("packed", "SELECT count(*) FROM packed")
        return rows[0][0] if rows else 0

    def has_packed_rows(self) -> bool:
        return bool(self._read("packed", "SELECT 1 FROM packed LIMIT 1"))

    def packed_rows(self) -> list[tuple[bytes, str, int, int]]:
        """Every packed row, in pack and offset order."""
        return self._read("packed", "SELECT mh, pack, offset, length FROM packed ORDER BY pack, offset")

    def packed_multihashes(self) -> list[bytes]:
        return [mh for (mh,) in self._read("packed", "SELECT mh FROM packed ORDER BY mh")]

    def names_pack(self, pack: str) -> bool:
        return bool(self._read("packed", "SELECT 1 FROM packed WHERE pack = ? LIMIT 1", (pack,)))

    def pack_names(self) -> set[str]:
        return {name for (name,) in self._read("packed", "SELECT DISTINCT pack FROM packed")}

    def insert_packed(
        self,
        rows: list[tuple[bytes, str, int, int]],
        pack: str | None = None,
        conn: sqlite3.Connection | None = None,
        replace: bool = False,
    ) -> tuple[int, bool]:
        """Add ``packed`` rows in one transaction, the first copy of a block winning (``replace``: the new
        copy wins, as when gc moves blocks to a new pack). Returns how many went in, and whether any row
        names ``pack`` afterwards (its own, or a concurrent re-index's)."""
        verb = "REPLACE" if replace else "IGNORE"

        def run(c: sqlite3.Connection) -> tuple[int, bool]:
            before = c.total_changes
            c.executemany(f"INSERT OR {verb} INTO packed (mh, pack, offset, length) VALUES (?, ?, ?, ?)", rows)
            inserted = c.total_changes - before
            named = pack is not None and c.execute("SELECT 1 FROM packed WHERE pack = ? LIMIT 1", (pack,)).fetchone()
            return inserted, bool(named)

        return self._write(run, conn)

    def forget_packed(self, rows: Iterable[tuple[bytes, str]]) -> int:
        """Drop the rows ``(multihash, pack)`` (a damaged or unwanted copy); returns how many went."""
        rows = list(rows)

        def run(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany("DELETE FROM packed WHERE mh = ? AND pack = ?", rows)
            return c.total_changes - before

        return self._write(run) if rows else 0

    def forget_pack(self, pack: str) -> int:
        """Drop every row of ``pack`` (a pack that is gone)."""

        def run(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.execute("DELETE FROM packed WHERE pack = ?", (pack,))
            return c.total_changes - before

        return self._write(run)

    # --- results -----------------------------------------------------------------------------

    @staticmethod
    def _result_row(cid: str, info: dict[str, Any]) -> tuple[tuple, tuple | None]:
        """The results row of ``info``, and its board row (None without ``info["board"]``)."""
        if not isinstance(info, dict):
            raise StoreError(f"result info for {cid} must be a dict, got {type(info).__name__}")
        board = info.get("board")
        if board is not None and not isinstance(board, dict):
            raise StoreError(f"result info for {cid}: board must be a dict, got {type(board).__name__}")
        kept = info if board is None else {k: v for k, v in info.items() if k != "board"}
        hardware = kept.get("hardware") or {}
        metrics = kept.get("metrics") or {}
        gpus = hardware.get("gpu_models") or []
        if isinstance(gpus, str):
            gpus = [gpus]
        try:
            body = json.dumps(kept, sort_keys=True, allow_nan=False, default=str)
        except ValueError as exc:
            raise StoreError(f"result info for {cid} is not JSON: {exc}") from None
        row = (
            cid,
            _text(kept.get("signer")),
            _text(kept.get("profile")),
            _text(kept.get("backend")),
            _text(hardware.get("cpu_model")),
            json.dumps(list(gpus)),
            _text(kept.get("created")),
            _number(metrics.get("j_per_token")),
            _number(metrics.get("tokens_per_s")),
            body,
        )
        if board is None:
            return row, None
        return row, tuple(cid if key == "cid" else _board_value(board.get(key), kind) for _, kind, key in BOARD_COLUMNS)

    _INSERT_RESULT = (
        "INSERT OR REPLACE INTO results (cid, signer, profile, backend, cpu_model, gpu_models, created,"
        " j_per_token, tokens_per_s, info) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _INSERT_BOARD = (
        f"INSERT OR REPLACE INTO board ({', '.join(n for n, _, _ in BOARD_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(BOARD_COLUMNS))})"
    )

    def _insert(self, c: sqlite3.Connection, rows: list[tuple[tuple, tuple | None]]) -> None:
        c.executemany(self._INSERT_RESULT, [r for r, _ in rows])
        c.executemany(self._INSERT_BOARD, [b for _, b in rows if b is not None])
        stale = [(r[0],) for r, b in rows if b is None]
        if stale:  # replaced without the leaderboard's fields: its old board row is not its own any more
            c.executemany("DELETE FROM board WHERE cid = ?", stale)
        _bump(c)

    def index_result(self, cid: str, info: dict[str, Any]) -> None:
        """Add (or replace) the row of the result stored under ``cid``."""
        self.index_results([(cid, info)])

    @classmethod
    def result_rows(cls, cid: str, info: dict[str, Any]) -> tuple[tuple, tuple | None]:
        """The rows (results, board) that :meth:`index_results` writes for ``info`` (pure: a worker process
        can make them, for :meth:`insert_rows`).

        Raises:
            StoreError: ``info`` is not a JSON-able dict.
        """
        return cls._result_row(cid, info)

    def insert_rows(self, rows: list[tuple[tuple, tuple | None]]) -> int:
        """Add (or replace) rows made by :meth:`result_rows`, in one transaction; returns how many."""
        if not rows:
            return 0

        def run(c: sqlite3.Connection) -> int:
            self._insert(c, rows)
            return len(rows)

        return self._write(run)

    def index_results(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add (or replace) the rows of many results in one transaction; returns how many."""
        return self.insert_rows([self._result_row(cid, info) for cid, info in items])

    def replace_results(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Replace every result row by ``items`` (one transaction); returns how many rows there are now."""
        rows = [self._result_row(cid, info) for cid, info in items]

        def run(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM results")
            c.execute("DELETE FROM board")
            self._insert(c, rows)
            return len(rows)

        return self._write(run)

    def _board_ready(self) -> sqlite3.Connection | None:
        """The reader, when the index has a board table (one an older greenbench made, and nobody has
        written to since, has none)."""
        return self._readable("board")

    def board_rows(self, fields: int, columns: int | None = None) -> list[tuple]:
        """Every board row extracted by version ``fields``, as tuples of :data:`BOARD_SELECT` (or of its
        first ``columns``), oldest first."""
        if self._board_ready() is None:
            return []
        wanted = BOARD_SELECT[:columns]
        if any(name in wanted for name, _ in _ADDED_BOARD_COLUMNS):  # an older index not written to since
            have = {r[1] for r in self._read("board", "PRAGMA table_info(board)")}
            wanted = tuple(n if n in have else f"NULL AS {n}" for n in wanted)
        names = ", ".join(wanted)
        return self._read("board", f"SELECT {names} FROM board WHERE fields = ? ORDER BY rowid", (fields,))

    def read_sql(self, sql: str, args: Any = ()) -> list[tuple]:
        """Rows of a read-only query over the board table (the layers above keep the queries of their own
        views with them, e.g. :mod:`greenbench.leaderboard.query`); [] while there is no board table."""
        if self._board_ready() is None:
            return []
        return self._read("board", sql, args)

    def stale_results(self, fields: int) -> list[str]:
        """CIDs of indexed results without a board row of version ``fields`` (indexed by an older
        greenbench, or an older extractor)."""
        if self._board_ready() is None:
            return list(self.iter_result_cids())
        counts = self._read("board", "SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM board WHERE fields = ?)",
                            (fields,))
        if counts and counts[0][0] == counts[0][1]:  # a board row is made and dropped with its results row
            return []
        return [cid for (cid,) in self._read(
            "board", "SELECT cid FROM results WHERE cid NOT IN (SELECT cid FROM board WHERE fields = ?) ORDER BY rowid",
            (fields,))]

    def result_verdicts(self) -> dict[str, str | None]:
        """``{cid: verdict}`` of every indexed result (None where no verdict was recorded)."""
        if self._board_ready() is None:
            return {cid: None for cid in self.iter_result_cids()}
        return dict(self._read("board", "SELECT r.cid, b.verdict FROM results r LEFT JOIN board b ON b.cid = r.cid"))

    def set_verdicts(self, verdicts: Iterable[tuple[str, str]]) -> int:
        """Record ``(cid, verdict)`` pairs (``store verify`` re-checking signatures); returns rows changed."""
        pairs = [(verdict, cid) for cid, verdict in verdicts]

        def run(c: sqlite3.Connection) -> int:
            before = c.total_changes
            c.executemany("UPDATE board SET verdict = ? WHERE cid = ?", pairs)
            _bump(c)
            return c.total_changes - before

        return self._write(run) if pairs else 0

    def result_state(self) -> tuple[int, int, int]:
        """``(row count, largest rowid, changes)`` of the results table: changes whenever a row is added,
        replaced or given a new verdict.

        Counted again only when the database changed since this thread last asked (SQLite's
        ``data_version``), so asking often (every leaderboard request) costs one pragma, not a scan.
        """
        conn = self._readable("results")
        if conn is None:
            return (0, 0, 0)
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            local = self._local
            if getattr(local, "state_at", None) == (id(conn), version):
                return local.state
            row = conn.execute("SELECT count(*), coalesce(max(rowid), 0) FROM results").fetchone()
            changes = 0
            if _has_table(conn, "meta"):
                got = conn.execute("SELECT value FROM meta WHERE key = 'results'").fetchone()
                changes = got[0] if got else 0
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the index {self.path}: {exc}", INDEX_HINT) from None
        local.state_at, local.state = (id(conn), version), (*row, changes)
        return local.state

    def query_results(self, **filters: Any) -> list[dict[str, Any]]:
        """Indexed results matching every filter, as their ``info`` dicts plus ``"cid"``.

        Filters: ``cid``, ``signer``, ``profile``, ``backend``, ``cpu_model`` (equality); ``gpu_model``
        (one of the result's GPUs); ``created_after`` / ``created_before`` (ISO text, inclusive);
        ``max_j_per_token`` / ``min_tokens_per_s`` (finite numbers); ``order_by`` (``created``,
        ``j_per_token``, ``tokens_per_s``, ``profile``, ``cid``; prefix ``-`` for descending; default
        ``created``); ``limit`` and ``offset`` (integers from 0 to 2**63 - 1). A filter whose value is
        None is ignored.

        Raises:
            StoreError: an unknown filter or ``order_by`` column, or a value of the wrong kind or range.
        """
        where: list[str] = []
        args: list[Any] = []
        order_by = filters.pop("order_by", None) or "created"
        limit = filters.pop("limit", None)
        offset = filters.pop("offset", None)
        for key, value in filters.items():
            if value is None:
                continue
            if key not in _RESULT_FILTERS:
                raise StoreError(
                    f"unknown result filter {key!r}",
                    f"use {', '.join(_RESULT_FILTERS)}, order_by, limit, offset",
                )
            clause, cast = _RESULT_FILTERS[key]
            where.append(clause)
            try:
                args.append(cast(value))
            except (TypeError, ValueError):
                kind = "text" if cast is str else "finite number"
                raise StoreError(f"result filter {key}={value!r} is not a {kind}") from None
        desc = order_by.startswith("-")
        column = order_by.lstrip("-")
        if column not in _ORDER_COLUMNS:
            raise StoreError(f"cannot order results by {order_by!r}", f"use {', '.join(_ORDER_COLUMNS)}")
        sql = "SELECT cid, info FROM results"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {column} {'DESC' if desc else 'ASC'}, cid ASC"
        counts: dict[str, int] = {}
        for name, value in (("limit", limit), ("offset", offset)):
            if value is None:
                continue
            try:
                counts[name] = _count(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise StoreError(f"{name} must be an integer from 0 to {MAX_QUERY_INT}, got {value!r} ({exc})") from None
        if counts:
            sql += " LIMIT ? OFFSET ?"
            args += [counts.get("limit", -1), counts.get("offset", 0)]
        out = []
        for cid, body in self._read("results", sql, tuple(args)):
            info = json.loads(body)
            info["cid"] = cid
            out.append(info)
        return out

    # --- pins --------------------------------------------------------------------------------

    def add_pins(self, pins: Iterable[tuple[str, str, bool]]) -> None:
        """Add pins ``(key, cid text, recursive)``; a recursive pin replaces a direct one, not the reverse."""
        rows = [(key, cid, int(recursive), time.time()) for key, cid, recursive in pins]

        def run(c: sqlite3.Connection) -> None:
            for row in rows:
                c.execute(
                    "INSERT INTO pins (key, cid, recursive, created) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE"
                    " SET recursive = max(recursive, excluded.recursive)",
                    row,
                )

        self._write(run)

    def remove_pin(self, key: str) -> bool:
        def run(c: sqlite3.Connection) -> bool:
            before = c.total_changes
            c.execute("DELETE FROM pins WHERE key = ?", (key,))
            return c.total_changes > before

        return self._write(run)

    def pins(self) -> list[tuple[str, bool]]:
        """``(cid text, recursive)`` of every pin, oldest first."""
        return [(cid, bool(rec)) for cid, rec in self._read("pins", "SELECT cid, recursive FROM pins ORDER BY created, key")]

    def iter_result_cids(self) -> Iterator[str]:
        for (cid,) in self._read("results", "SELECT cid FROM results ORDER BY cid"):
            yield cid
