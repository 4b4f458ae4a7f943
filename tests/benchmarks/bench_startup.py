"""CLI start-up time: `greenbench --help` beside a bare interpreter start, measured in one run.

Run:  python tests/benchmarks/bench_startup.py [--runs 15]

Prints the median wall time of `python -c pass`, of `greenbench --help`, of `greenbench run --help` and
of a whole `greenbench store get CID` of a small block (each as a fresh process through this
interpreter), greenbench's overhead over the bare start, and the typer version in use.
The target is `greenbench --help` under 0.3 s: heavy libraries (onnxruntime, codecarbon, torch,
cryptography, numpy) are imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        # from the checkout's root, so `-c` imports this checkout's greenbench, not an installed one
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, cwd=ROOT)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    cli = [sys.executable, "-c", "from greenbench.cli import main; main()"]
    bare = timed([sys.executable, "-c", "pass"], args.runs)
    helps = timed(cli + ["--help"], args.runs)
    run_help = timed(cli + ["run", "--help"], args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(ROOT))
        from greenbench.store.local import LocalStore

        cid = str(LocalStore(tmp).put_block(b"a small block"))
        get = timed(cli + ["store", "get", cid, "--store", tmp], args.runs)
    from importlib.metadata import version
    heavy = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.argv=['greenbench','--help']\n"
         "from greenbench.cli import app\n"
         "try:\n    app()\nexcept SystemExit:\n    pass\n"
         "print(sorted(m for m in ('onnxruntime','codecarbon','torch','cryptography','numpy','starlette') if m in sys.modules))"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout.strip().splitlines()[-1]
    print(f"python -c pass          {bare * 1000:7.1f} ms")
    print(f"greenbench --help       {helps * 1000:7.1f} ms   (overhead {1000 * (helps - bare):.1f} ms; target < 300 ms)")
    print(f"greenbench run --help   {run_help * 1000:7.1f} ms")
    print(f"greenbench store get    {get * 1000:7.1f} ms   (a whole command: parse, read, verify, write; typer {version('typer')})")
    print(f"heavy modules imported by --help: {heavy}")


if __name__ == "__main__":
    main()
