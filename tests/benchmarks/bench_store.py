"""Store benchmark: storing+hashing a large file vs plain hashlib sha256, and `store get` latency.

Run:  python tests/benchmarks/bench_store.py [--size-mib 256] [--blocks 100000] [--dir DIR]

Prints, from one run:
  1. put_file of an N MiB file (chunked into 1 MiB raw blocks, written (O_DIRECT where allowed), made durable, renamed, shard
     dirs synced) against hashlib.sha256 streamed over the same file in 1 MiB reads; the ratio is
     hashlib time / put time (>= 0.7 is the target). Measured on the --dir filesystem and, when
     present, on /dev/shm (tmpfs: the same code without the disk), plus a second put of the same
     file (every block already present).
  2. `store get` of a 1 KiB block from a store of --blocks blocks: the library call
     (LocalStore.get_block(cid_text), which parses the CID, reads and re-hashes the block) and the
     whole CLI command in-process (click command built once, as in one process; and, for
     reference, typer's CliRunner, which rebuilds the app's command tree on every call), per call,
     mean and p99.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from greenbench.store.car import write_car
from greenbench.store.cid import RAW, SHA2_256, CID
from greenbench.store.local import LocalStore


def _sha256_file(path: Path) -> float:
    t0 = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    h.digest()
    return time.perf_counter() - t0


def _put(path: Path, store_dir: Path) -> float:
    store = LocalStore(store_dir)
    t0 = time.perf_counter()
    store.put_file(path)
    return time.perf_counter() - t0


def bench_put(size_mib: int, base: Path, rounds: int = 3) -> None:
    print(f"== put_file of a {size_mib} MiB file vs hashlib.sha256 (ratio = sha256 time / put time; target >= 0.7)")
    src = base / "payload.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(1 << 20))
    _sha256_file(src)  # page cache warm for both contenders
    targets = [("disk", base)]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        targets.append(("tmpfs", Path(tempfile.mkdtemp(prefix="gb-bench-", dir=shm))))
    try:
        for label, where in targets:
            store_dir = where / "store"
            base_runs, put_runs, again_runs = [], [], []
            for _ in range(rounds):  # interleaved, so background load hits both contenders alike
                shutil.rmtree(store_dir, ignore_errors=True)
                base_runs.append(_sha256_file(src))
                put_runs.append(_put(src, store_dir))
                again_runs.append(_put(src, store_dir))
            shutil.rmtree(store_dir, ignore_errors=True)
            base_s, put_s, again_s = (statistics.median(r) for r in (base_runs, put_runs, again_runs))
            print(
                f"  {label:5} ({where}), median of {rounds}: sha256 {base_s * 1e3:7.1f} ms ({size_mib / base_s:5.0f} MiB/s) | "
                f"put {put_s * 1e3:7.1f} ms ({size_mib / put_s:5.0f} MiB/s) ratio {base_s / put_s:4.2f} | "
                f"re-put (all present) {again_s * 1e3:6.1f} ms ratio {base_s / again_s:4.2f}"
            )
    finally:
        for label, where in targets:
            if label == "tmpfs":
                shutil.rmtree(where, ignore_errors=True)
        src.unlink()


def bench_get(n_blocks: int, base: Path, samples: int = 2000) -> None:
    print(f"== store get of a 1 KiB block from a {n_blocks}-block store (target < 5 ms per call)")
    store = LocalStore(base / "many")
    rng = random.Random(7)
    cids: list[CID] = []

    def blocks():
        for i in range(n_blocks):
            data = i.to_bytes(8, "big") + rng.randbytes(1016)
            cid = CID(1, RAW, SHA2_256, hashlib.sha256(data).digest())
            cids.append(cid)
            yield cid, data

    buf = io.BytesIO()
    t0 = time.perf_counter()
    write_car(buf, [], blocks())
    car = base / "many.car"
    car.write_bytes(buf.getvalue())
    del buf
    t1 = time.perf_counter()
    result = store.import_car(car)
    t2 = time.perf_counter()
    car.unlink()
    print(f"  populated by one CAR import: {result.new_blocks} blocks in {t2 - t1:.1f} s (CAR built in {t1 - t0:.1f} s)")

    picks = [str(c) for c in rng.sample(cids, min(samples, len(cids)))]
    fresh = LocalStore(store.root)  # a new handle, as a new process would have
    times = []
    for text in picks:
        t = time.perf_counter()
        data = fresh.get_block(text)
        times.append(time.perf_counter() - t)
        assert len(data) == 1024
    times.sort()
    print(
        f"  LocalStore.get_block(cid text): mean {statistics.fmean(times) * 1e3:.3f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1e3:.3f} ms over {len(times)} random blocks"
    )

    import click.testing
    import typer.main
    from typer.testing import CliRunner

    from greenbench.cli import app

    def timed_cli(invoke, label: str, n: int) -> None:
        times = []
        for text in picks[:n]:
            t = time.perf_counter()
            res = invoke(["store", "get", text, "--store", str(store.root)])
            times.append(time.perf_counter() - t)
            assert res.exit_code == 0 and len(res.stdout_bytes) == 1024
        times.sort()
        print(
            f"  {label}: mean {statistics.fmean(times) * 1e3:.3f} ms, "
            f"p99 {times[int(len(times) * 0.99)] * 1e3:.3f} ms over {len(times)} calls"
        )

    command = typer.main.get_command(app)  # built once, as in one `greenbench` process
    click_runner = click.testing.CliRunner()
    timed_cli(lambda argv: click_runner.invoke(command, argv), "`store get` CLI command in-process (parse + get + stdout)", 1000)
    typer_runner = CliRunner()
    timed_cli(
        lambda argv: typer_runner.invoke(app, argv),
        "same via typer.testing.CliRunner (rebuilds every command of the app on each call)",
        200,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the stores (default: a temp dir).")
    parser.add_argument("--skip-get", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gb-bench-", dir=args.dir))
    try:
        print(f"cpus: {os.cpu_count()}  base dir: {base}")
        bench_put(args.size_mib, base)
        if not args.skip_get:
            bench_get(args.blocks, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
