"""greenbench: energy benchmarks for LLM inference and training.

Every joule greenbench reports carries its *method*: ``counter`` (read from a hardware energy
counter such as RAPL or NVML), ``estimate`` (a model such as TDP x utilisation) or ``simulated``
(a simulated backend's cost model). An estimate is never presented as a measurement.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "measure", "track"]


def __getattr__(name: str):
    # Lazy: `import greenbench` must stay cheap so that `greenbench --help` starts fast.
    if name in ("measure", "track"):
        from greenbench import measurement

        return getattr(measurement, name)
    raise AttributeError(f"module 'greenbench' has no attribute {name!r}")
