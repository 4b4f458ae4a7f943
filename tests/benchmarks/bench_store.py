"""Store benchmark: storing+hashing a large file vs plain hashlib sha256, and `store get` latency.

Run:  python tests/benchmarks/bench_store.py [--size-mib 256] [--blocks 100000] [--dir DIR] [--skip-put] [--skip-get]

Prints, from one run:
  1. put_file of an N MiB file (a UnixFS DAG as `ipfs add --cid-version=1` builds it: 256 KiB raw
     leaves, read and hashed in parallel 1 MiB at a time, written in order into one pack (O_DIRECT where
     allowed) with the File nodes after them, made durable, indexed) against
     hashlib.sha256 streamed over the same file in 1 MiB reads; the ratio is hashlib time / put time
     (>= 0.7 is the target). Beside them, the floor any durable store has on that device: a plain
     copy of the file, no hashing, O_DIRECT + fsync. Measured on the --dir filesystem and, when
     present, on /dev/shm (tmpfs: the same code without a disk), plus a second put of the same file
     (every block already present). Each round starts from a deleted store, a small file stored in it
     (so the store's directories and index exist, as in any store but a brand-new one) and `sync`.
  2. `store get` of a 1 KiB block from a store of --blocks blocks (imported from one CAR, so packed)
     plus 2000 blocks stored one by one (block files): the library call for each kind
     (LocalStore.get_block(cid_text), which parses the CID, reads and re-hashes the block) and the
     whole CLI command in-process (click command built once, as in one process; and, for
     reference, typer's CliRunner, which rebuilds the app's command tree on every call), per call,
     mean and p99.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import mmap
import os
import random
import shutil
import statistics
import tempfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # measure this checkout, not an installed greenbench

from greenbench.store.car import write_car  # noqa: E402
from greenbench.store.cid import RAW, SHA2_256, CID  # noqa: E402
from greenbench.store.local import LocalStore  # noqa: E402


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
    # a store that exists already, as every store but a brand-new one: its directories and index are made
    # by a small file stored first (other bytes), not inside the timed put
    store.put_file(io.BytesIO(os.urandom(300 << 10)))
    t0 = time.perf_counter()
    store.put_file(path)
    return time.perf_counter() - t0


def _durable_copy(path: Path, dst: Path) -> float:
    """The floor for any store that makes the bytes durable: a plain copy, no hashing, O_DIRECT where
    the filesystem takes it (as the store's packs), 8 MiB at a time, then fsync of file and directory."""
    buf = mmap.mmap(-1, 8 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    src = os.open(path, os.O_RDONLY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        out = os.open(dst, flags | getattr(os, "O_DIRECT", 0), 0o644)
    except OSError:
        out = os.open(dst, flags, 0o644)
    offset = 0
    while n := os.preadv(src, [view], offset):
        if n % 4096:  # an O_DIRECT tail goes out padded, then the file is cut back
            os.pwrite(out, view[: -(-n // 4096) * 4096], offset)
            os.ftruncate(out, offset + n)
        else:
            os.pwrite(out, view[:n], offset)
        offset += n
    os.fsync(out)
    os.close(out)
    os.close(src)
    dfd = os.open(dst.parent, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    elapsed = time.perf_counter() - t0
    view.release()
    buf.close()
    return elapsed


def bench_put(size_mib: int, base: Path, rounds: int = 5) -> None:
    print(f"== put_file of a {size_mib} MiB file vs hashlib.sha256 (ratio = sha256 time / put time; target >= 0.7)")
    src = base / "payload.bin"
    with open(src, "wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(1 << 20))
        fh.flush()
        os.fsync(fh.fileno())  # its writeback must not compete with the contenders for the disk
    _sha256_file(src)  # page cache warm for every contender
    targets = [("disk", base)]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        targets.append(("tmpfs", Path(tempfile.mkdtemp(prefix="gb-bench-", dir=shm))))
    try:
        for label, where in targets:
            store_dir, copy = where / "store", where / "copy.bin"
            runs: dict[str, list[float]] = {"sha256": [], "copy": [], "put": [], "again": []}
            for _ in range(rounds):  # interleaved, so background load hits every contender alike
                shutil.rmtree(store_dir, ignore_errors=True)
                copy.unlink(missing_ok=True)
                os.sync()  # the last round's deletes (and their discards) are done before anything is timed
                runs["sha256"].append(_sha256_file(src))
                runs["copy"].append(_durable_copy(src, copy))
                runs["put"].append(_put(src, store_dir))
                runs["again"].append(_put(src, store_dir))
            shutil.rmtree(store_dir, ignore_errors=True)
            copy.unlink(missing_ok=True)
            med = {k: statistics.median(v) for k, v in runs.items()}

            def show(key: str) -> str:
                return f"{med[key] * 1e3:6.1f} ms ({size_mib / med[key]:5.0f} MiB/s)"

            print(f"  {label} ({where}), medians of {rounds} rounds:")
            print(f"    sha256 alone                      {show('sha256')}")
            print(f"    put_file (hash + store, durable)  {show('put')}  ratio {med['sha256'] / med['put']:4.2f}")
            print(
                f"    durable plain copy, no hashing    {show('copy')}  ratio {med['sha256'] / med['copy']:4.2f}"
                f"  <- the device's floor; put / copy time = {med['put'] / med['copy']:4.2f}"
            )
            print(f"    put_file again (all present)      {show('again')}  ratio {med['sha256'] / med['again']:4.2f}")
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

    singles = [str(store.put_block(rng.randbytes(1024))) for _ in range(min(samples, n_blocks))]
    print(f"  plus {len(singles)} blocks stored one by one (put_block: a file each)")
    picks = [str(c) for c in rng.sample(cids, min(samples, len(cids)))]
    fresh = LocalStore(store.root)  # a new handle, as a new process would have
    for label, texts in (("packed (from the CAR import)", picks), ("block files (put_block)", singles)):
        times = []
        for text in texts:
            t = time.perf_counter()
            data = fresh.get_block(text)
            times.append(time.perf_counter() - t)
            assert len(data) == 1024
        times.sort()
        print(
            f"  LocalStore.get_block(cid text), {label}: mean {statistics.fmean(times) * 1e3:.3f} ms, "
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
    parser.add_argument("--skip-put", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gb-bench-", dir=args.dir))
    try:
        import greenbench

        print(f"cpus: {os.cpu_count()}  base dir: {base}  greenbench: {Path(greenbench.__file__).parent}")
        if not args.skip_put:
            bench_put(args.size_mib, base)
        if not args.skip_get:
            bench_get(args.blocks, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
