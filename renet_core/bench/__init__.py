"""Benchmarks: they print figures for the machine they run on and assert nothing about time.

Usage: ``python -m renet_core.bench {model,prepare,loader,gpu,predict} [options]`` (``gpu`` is the
prepared check of a lent GPU, ``tools/gpu_check.sh``). Each subcommand lives in
its own module (``renet_core.bench.<name>``) exposing ``main(argv) -> int``.
"""

BENCHMARKS = {
    "model": "renet_core.bench.model",
    "prepare": "renet_core.bench.prepare",
    "loader": "renet_core.bench.loader",
    "gpu": "renet_core.bench.gpu",
    "predict": "renet_core.bench.predict",
}
