#!/usr/bin/env bash
# Run HERE (a machine with pip and network to PyPI) before a device check: puts into DIR (default .gpu-wheels)
# the wheels the lent GPU machine lacks, for its Python 3.12 (shared/gpu-machine.md); greenbench itself runs from
# the carried checkout. Then run the check with DIR carried:  run(command="bash tests/gpu/device_check.sh .gpu-wheels",
# carry=[".gpu-wheels"]). About 14 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-.gpu-wheels}
rm -rf "$DIR" && mkdir -p "$DIR"
# The GPU machine has torch, transformers (and safetensors), nvidia-ml-py, psutil, rich, typer, click, numpy,
# onnx, onnxruntime, tokenizers, httpx, pytest, hypothesis, jinja2; greenbench needs these besides:
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$DIR" codecarbon pycountry platformdirs cryptography cffi pycparser starlette uvicorn httptools
ls -la "$DIR"
du -sh "$DIR"
