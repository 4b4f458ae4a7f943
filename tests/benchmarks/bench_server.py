"""Server benchmark: raw-block GET latency under leaderboard load, on a store of published results.

Run:  python tests/benchmarks/bench_server.py [--results 10000] [--block-clients 32] [--leaderboard-clients 8]
                                             [--seconds 30] [--dir DIR]

What it does, in one run:
  1. Builds a store of N signed results (one Ed25519 key, results of 20 profiles with varied metrics):
     the envelopes are imported as one CAR and indexed by `greenbench store reindex`'s code path (every
     signature verified), as a server that received them one by one would have them.
  2. Starts `greenbench serve --quiet` on 127.0.0.1 in its own process, as users run it.
  3. Runs B clients that each GET a random result's raw block (`/ipfs/{cid}?format=raw`) in a loop, and
     L clients that each GET `/api/v1/leaderboard` in a loop, all at once for S seconds, over keep-alive
     HTTP/1.1 connections (asyncio streams; the block clients in this process, each answer checked against
     its CID; the leaderboard clients in another process, as other users would be, sending
     Accept-Encoding: gzip as browsers and httpx do, and decoding the answer).
  4. Prints block-GET latency p50/p99/max and request counts, over the whole run and over the part
     after the first leaderboard answer (the first one verifies every result; later ones reuse that
     work until the index changes: greenbench/server/pages.py), plus leaderboard latency.

The target (issue 11): block GET p99 under 100 ms with 32 block clients and 8 leaderboard clients.
Clients and server share the machine's CPUs, as they would on a developer's box.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import io
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # measure this checkout, not an installed greenbench

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from greenbench import signing  # noqa: E402
from greenbench.publish import envelope_block, reindex_store  # noqa: E402
from greenbench.store.car import write_car  # noqa: E402
from greenbench.store.local import LocalStore  # noqa: E402


def populate(store_dir: Path, n: int) -> list[str]:
    key = Ed25519PrivateKey.generate()
    rng = random.Random(11)
    blocks = []
    for i in range(n):
        doc = {
            "schema": "greenbench.result/1",
            "created": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:{i % 60:02d}Z",
            "profile": {"name": f"profile-{i % 20}", "digest": f"sha256:{i % 20:064x}"},
            "backend": "cpu",
            "workload": {"kind": "inference", "prompt_tokens": 16, "new_tokens": 32},
            "metrics": {"decode": {"j_per_token": rng.uniform(0.01, 1.0), "tokens_per_s": rng.uniform(10, 500)}},
            "energy": {"method": rng.choice(["counter", "estimate"])},
            "environment": {"cpu_model": "Bench CPU", "gpu_models": []},
            "carbon": {"g_co2e_per_1k_tokens": rng.uniform(0.1, 5)},
        }
        env = signing.sign_result(doc, key, f"r{i}.json")
        blocks.append(envelope_block(env))
    buf = io.BytesIO()
    write_car(buf, [blocks[0][0]], blocks)
    store = LocalStore(store_dir)
    store.import_car(buf.getvalue(), pin_roots=False)
    report = reindex_store(store)
    assert report.results == n, report
    return [str(cid) for cid, _ in blocks]


async def _get(reader, writer, path: str, port: int, extra: str = "") -> tuple[int, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n{extra}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    if m:
        body = await reader.readexactly(int(m.group(1)))
    else:  # chunked
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                break
    if re.search(rb"(?i)content-encoding: *gzip", head):
        body = gzip.decompress(body)
    return status, body


async def block_client(port: int, cids: list[str], stop: float, out: list, rng: random.Random) -> None:
    from greenbench.store.cid import CID

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
        cid = rng.choice(cids)
        t0 = time.perf_counter()
        status, body = await _get(reader, writer, f"/ipfs/{cid}?format=raw", port)
        t1 = time.perf_counter()
        assert status == 200 and CID.decode(cid).verify(body), status
        out.append((t0, t1 - t0))
    writer.close()


async def leaderboard_client(port: int, stop: float, out: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        # as browsers and httpx ask for it (and decode it, here too)
        status, body = await _get(reader, writer, "/api/v1/leaderboard", port, "Accept-Encoding: gzip\r\n")
        assert status == 200, (status, body[:200])
        out.append((t0, time.perf_counter() - t0, len(body)))
    writer.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def show(label: str, samples: list[float]) -> None:
    if not samples:
        print(f"  {label}: no samples")
        return
    ms = [s * 1e3 for s in samples]
    print(
        f"  {label}: n={len(ms)}  p50 {statistics.median(ms):7.1f} ms  p99 {pct(ms, 0.99):7.1f} ms  max {max(ms):7.1f} ms"
    )


async def load(port: int, cids: list[str], n_block: int, n_lb: int, seconds: float, start: float | None = None):
    """Run the clients until ``start + seconds`` (perf_counter times are comparable across processes on
    Linux: CLOCK_MONOTONIC); returns ``(block samples, leaderboard samples)``."""
    stop = (start or time.perf_counter()) + seconds
    blocks: list = []
    boards: list = []
    rng = random.Random(3)
    tasks = [block_client(port, cids, stop, blocks, random.Random(rng.random())) for _ in range(n_block)]
    tasks += [leaderboard_client(port, stop, boards) for _ in range(n_lb)]
    await asyncio.gather(*tasks)
    return blocks, boards


def _leaderboard_process(port: int, n_lb: int, seconds: float, start: float, queue) -> None:
    queue.put(asyncio.run(load(port, [], 0, n_lb, seconds, start))[1])


def run_clients(port: int, cids: list[str], n_block: int, n_lb: int, seconds: float):
    """Block clients here, leaderboard clients in a process of their own (as other users would be): a
    leaderboard client decoding a large answer must not delay the block clients' own measurements."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start = time.perf_counter() + 1.0  # both sides start together, after the process is up
    proc = ctx.Process(target=_leaderboard_process, args=(port, n_lb, seconds, start, queue))
    proc.start()
    time.sleep(max(0.0, start - time.perf_counter()))
    blocks, _ = asyncio.run(load(port, cids, n_block, 0, seconds, start))
    boards = queue.get(timeout=seconds + 600)
    proc.join(30)
    return blocks, boards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--block-clients", type=int, default=32)
    parser.add_argument("--leaderboard-clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gb-bench-server-", dir=args.dir))
    proc = None
    try:
        t0 = time.perf_counter()
        cids = populate(base / "store", args.results)
        print(f"cpus: {os.cpu_count()}  store of {len(cids)} signed results built in {time.perf_counter() - t0:.1f} s")
        proc = subprocess.Popen(
            [sys.executable, "-c", "from greenbench.cli import main; main()", "serve", "--port", "0", "--quiet",
             "--store", str(base / "store"), "--max-client-requests", "1000"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "400"},
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        m = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stderr.readline())
        assert m, "server did not start"
        port = int(m.group(1))
        time.sleep(0.5)
        print(
            f"== {args.block_clients} clients GET raw blocks while {args.leaderboard_clients} GET /api/v1/leaderboard, "
            f"{args.seconds:g} s (target: block p99 < 100 ms)"
        )
        blocks, boards = run_clients(port, cids, args.block_clients, args.leaderboard_clients, args.seconds)
        first_board = min((t0 + dt for t0, dt, _ in boards), default=float("inf"))
        show("block GET, whole run", [dt for _, dt in blocks])
        show("block GET, after the first leaderboard answer", [dt for t0, dt in blocks if t0 >= first_board])
        show("block GET, before it (first verification of every result)", [dt for t0, dt in blocks if t0 < first_board])
        show("leaderboard GET", [dt for _, dt, _ in boards])
        if boards:
            print(f"  leaderboard answer: {boards[0][2]} bytes; first answer after {min(dt for _, dt, _ in boards):.2f} s at best")
        print(f"  throughput: {len(blocks) / args.seconds:.0f} block GETs/s, {len(boards) / args.seconds:.1f} leaderboards/s")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
