"""Profiles: what to benchmark, as a TOML file.

A *profile* names a model (generated ``synthetic-llama`` or a user-exported directory), a prompt, the
generation settings and how to run (repeats, warmup, backend). Built-in profiles are the ``.toml``
files in ``profiles/``; ``greenbench run NAME`` finds them by name. Validation errors name the file
and line, the offending key and the fix.

The *digest* of a profile is the sha256 of the canonical JSON of its resolved contents (after CLI
overrides), so two results with the same digest ran the same configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenbench.canonical import canonical_bytes
from greenbench.errors import ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODEL_KINDS = ("synthetic-llama",)
DTYPES = ("fp32", "fp16", "int4", "bf16")  # bf16: the torch backend only; int4: onnxruntime only
GRAPHS = ("contrib", "standard")
WORKLOADS = ("inference", "training")
SCOPES = ("devices", "machine")
#: Longest idle baseline accepted (s): an hour is already far more than any counter needs.
MAX_IDLE_S = 3600.0
#: [run] keys added after results existed: left out of the digest while at their default, so older digests hold.
_RUN_DIGEST_DEFAULTS = {"scope": "devices", "min_window_periods": 20, "device": None, "compile": None}
#: [generation] keys added later, likewise.
_GEN_DIGEST_DEFAULTS = {"batch": None}
DEVICES = ("cpu", "cuda")
COMPILE_MODES = ("default", "max-autotune")
TRAIN_DEVICES = ("cpu", "cuda")
COMPILE_MODES = ("default", "max-autotune")
TRAIN_PRECISIONS = ("fp32", "bf16")
SIMULATED_BACKENDS = ("neuromorphic-sim", "optical-sim")
SIM_CHIPS = ("loihi", "truenorth", "spinnaker", "ideal-ac")  # neuromorphic-sim presets
OPTICAL_MODELS = ("physics", "lightmatter")  # optical-sim energy models
DRAM_PRESETS = ("ddr4", "hbm2e")  # greenbench.backends.sim.params.DRAM
DIGITAL_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ModelSpec:
    """``[model]``: either a generated model (``kind``) or an exported directory (``path``)."""

    kind: str | None = None
    path: str | None = None
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int | None = None  # default: heads (multi-head attention)
    head_dim: int | None = None  # default: hidden // heads
    ffn: int = 176
    vocab: int = 512
    rope_theta: float = 10000.0
    max_seq_len: int = 512
    seed: int = 0
    dtype: str = "fp32"
    graph: str = "contrib"  # contrib: onnxruntime contrib ops (GQA, SimplifiedLayerNorm); standard: plain ONNX ops
    int4_block_size: int = 32
    int4_accuracy_level: int = 4  # MatMulNBits: 4 = int8 compute (fast, how CPUs run int4); 0 = exact fp32 arithmetic


@dataclass(frozen=True)
class PromptSpec:
    """``[prompt]``: exactly one of ``token_ids``, ``length`` (seeded random ids) or ``text``."""

    token_ids: tuple[int, ...] | None = None
    length: int | None = None
    text: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class GenerationSpec:
    """``[generation]``: greedy tokens per repeat and rows per step.

    ``batch = [1, 4, 16, 64]`` makes the profile a *batch sweep*: one run measures each batch size in turn and
    writes one result per size (:meth:`Profile.sweep`); ``batch_size`` is then ignored.
    """

    max_new_tokens: int = 32
    batch_size: int = 1
    batch: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RunSpec:
    repeats: int = 5
    warmup: int = 1
    backend: str = "cpu"
    workload: str = "inference"
    threads: int | None = None  # intra-op threads; default: physical cores
    idle_s: float = 0.0  # idle-baseline seconds before the run (0 disables)
    meters: tuple[str, ...] | None = None  # explicit meters; default: probe
    scope: str = "devices"  # devices: meter only what the backend uses; machine: every device
    device: str | None = None  # torch backend: cpu or cuda (default: cuda when PyTorch sees a GPU); training too
    compile: str | None = None  # torch backend: torch.compile the decode step ("default" or "max-autotune")
    min_window_periods: int = 20  # a counter window spans at least this many update periods (greenbench.runner)


@dataclass(frozen=True)
class TrainSpec:
    """``[train]``: training workload settings (used when ``run.workload = "training"``)."""

    steps: int = 20
    seq_len: int = 64
    batch_size: int = 4
    lr: float = 1e-3
    device: str = "cpu"  # TRAIN_DEVICES; cuda needs a CUDA build of torch and a GPU
    precision: str = "fp32"  # TRAIN_PRECISIONS; bf16 runs the forward pass under torch.autocast


@dataclass(frozen=True)
class CarbonSpec:
    region: str | None = None
    pue: float | None = None


@dataclass(frozen=True)
class SimSpec:
    """``[sim]``: parameters of the simulated backends (``neuromorphic-sim``, ``optical-sim``).

    ``None`` means the cited default of :mod:`greenbench.backends.simulated` (every default names its
    source there, and the result records the value used and where it came from).
    """

    # neuromorphic-sim
    chip: str | None = None  # SIM_CHIPS; sets the per-event figures below
    firing_rate: float | None = None  # spikes per neuron per timestep, (0, 1]
    timesteps: int | None = None
    synaptic_op_pj: float | None = None
    spike_pj: float | None = None
    hop_pj: float | None = None
    hops_per_spike: float | None = None
    neuron_update_active_pj: float | None = None  # per neuron per timestep, spiking
    neuron_update_inactive_pj: float | None = None  # per neuron per timestep, not spiking
    static_power_w: float | None = None  # per chip, x the chip's modelled time (else host time)
    chip_memory_bytes: int | None = None  # on-chip synaptic memory per chip
    chips: int | None = None  # chips available (default: as many as the weights need); beyond them, DRAM
    interchip_pj_per_spike: float | None = None
    refetch_weights_per_timestep: bool | None = None
    # optical-sim
    optical_model: str | None = None  # OPTICAL_MODELS
    enob: int | None = None  # effective bits of the analog path (ADC/DAC, noise)
    adc_fom_fj_per_step: float | None = None  # Walden figure of merit
    array_size: int | None = None  # the photonic array is array_size x array_size weights
    array_count: int | None = None
    laser_optical_fj_per_op: float | None = None
    laser_wall_plug_efficiency: float | None = None  # (0, 1]
    wavelength_nm: float | None = None  # photon energy of the shot-noise limit
    hold_mw_per_weight: float | None = None  # power that holds a programmed weight
    modulation_ghz: float | None = None  # vectors per second per array: the modelled compute time
    op_pj: float | None = None  # optical_model = "lightmatter": electrical + optical energy per op, all-in
    ops_per_mac: float | None = None
    digital_mac_pj: float | None = None
    noise_seed: int | None = None
    accuracy_seeds: int | None = None  # noise seeds the accuracy is measured over
    measure_accuracy: bool | None = None
    # both
    weight_bits: int | None = None  # bits per stored weight (on chip or in DRAM)
    dram: str | None = None  # DRAM_PRESETS
    dram_pj_per_bit: float | None = None  # overrides the preset's figure
    digital_precision: str | None = None  # DIGITAL_PRECISIONS: digital reference and attention co-processor
    process_node_nm: float | None = None  # node the digital MAC is scaled to


@dataclass(frozen=True)
class Profile:
    name: str
    model: ModelSpec
    prompt: PromptSpec = field(default_factory=PromptSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    run: RunSpec = field(default_factory=RunSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    carbon: CarbonSpec = field(default_factory=CarbonSpec)
    sim: SimSpec = field(default_factory=SimSpec)
    gate: tuple[tuple[str, float], ...] = ()  # [gate]: metric -> allowed worsening in percent
    description: str = ""
    source: str = ""  # where it was loaded from (not part of the digest)

    def resolved(self) -> dict:
        """The resolved contents as a JSON-ready dict (the digest is over exactly this)."""
        d = dataclasses.asdict(self)
        d.pop("source", None)
        d["gate"] = dict(self.gate)
        if not self.gate:
            d.pop("gate")  # profiles without [gate] keep the digest they had before [gate] existed
        if self.sim == SimSpec() and self.run.backend not in SIMULATED_BACKENDS:
            d.pop("sim")  # profiles without [sim] keep the digest they had before [sim] existed
        else:
            for key in _SIM_KEYS_ADDED:  # keys added later, left unset, keep an older profile's digest
                if d["sim"].get(key) is None:
                    d["sim"].pop(key, None)
        for key, default in _TRAIN_KEYS_ADDED.items():
            if d["train"].get(key) == default:
                d["train"].pop(key)
        for key, default in _RUN_DIGEST_DEFAULTS.items():
            if d["run"].get(key) == default:
                d["run"].pop(key)
        if d["model"].get("dtype") != "int4":
            d["model"].pop("int4_accuracy_level")  # meaningless without int4 weights: older digests hold
        for key, default in _GEN_DIGEST_DEFAULTS.items():
            if d["generation"].get(key) == default:
                d["generation"].pop(key)
        return _jsonable(d)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_bytes(self.resolved())).hexdigest()

    def sweep(self) -> list["Profile"]:
        """The profiles a run measures: one per ``[generation] batch`` entry (its ``batch_size``, ``batch``
        cleared), or this profile alone."""
        g = self.generation
        if not g.batch:
            return [self]
        return [dataclasses.replace(self, generation=dataclasses.replace(g, batch_size=b, batch=None)) for b in g.batch]

    def with_overrides(self, **over: Any) -> "Profile":
        """Apply CLI overrides: backend, repeats, warmup, max_new_tokens, region, threads, idle_s, meters, device,
        batch (a list: one entry sets ``batch_size``, several make a sweep)."""
        p = self
        run_keys = {"backend", "repeats", "warmup", "threads", "idle_s", "meters", "workload", "scope",
                    "min_window_periods", "device"}
        for key, value in over.items():
            if value is None:
                continue
            if key in run_keys:
                if key == "meters":
                    value = tuple(value)
                p = dataclasses.replace(p, run=dataclasses.replace(p.run, **{key: value}))
            elif key == "max_new_tokens":
                p = dataclasses.replace(p, generation=dataclasses.replace(p.generation, max_new_tokens=value))
            elif key == "batch_size":
                p = dataclasses.replace(p, generation=dataclasses.replace(p.generation, batch_size=value))
            elif key == "batch":
                sizes = tuple(int(b) for b in value)
                if not sizes:
                    continue
                if len(sizes) == 1:
                    gen = dataclasses.replace(p.generation, batch_size=sizes[0], batch=None)
                else:
                    gen = dataclasses.replace(p.generation, batch=sizes)
                p = dataclasses.replace(p, generation=gen)
            elif key in ("region", "pue"):
                p = dataclasses.replace(p, carbon=dataclasses.replace(p.carbon, **{key: value}))
            else:
                raise ValueError(f"unknown override {key}")
        _check_values(p, p.source or "<overrides>", {})
        return p


#: [train] keys added after the first release, with their defaults, and [sim] keys likewise: a profile
#: that leaves them at the default has the digest it had before they existed.
_TRAIN_KEYS_ADDED = {"device": "cpu", "precision": "fp32"}
_SIM_KEYS_ADDED: tuple[str, ...] = (
    "neuron_update_active_pj", "neuron_update_inactive_pj", "static_power_w", "chip_memory_bytes", "chips",
    "interchip_pj_per_spike", "wavelength_nm", "hold_mw_per_weight", "modulation_ghz", "accuracy_seeds",
    "weight_bits", "dram", "digital_precision", "process_node_nm",
)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------
# Schema: section -> {key: (type(s), dataclass field)}. Types are checked strictly (no bool-as-int).

_SECTIONS: dict[str, type] = {
    "model": ModelSpec,
    "prompt": PromptSpec,
    "generation": GenerationSpec,
    "run": RunSpec,
    "train": TrainSpec,
    "carbon": CarbonSpec,
    "sim": SimSpec,
}
_TOP_KEYS = {"name": str, "description": str}
_FREE_SECTIONS = ("gate",)  # tables whose keys are names (metrics), parsed by their own function


def _expected_types(cls: type) -> dict[str, tuple[type, ...]]:
    out: dict[str, tuple[type, ...]] = {}
    hints = {
        "int": (int,),
        "float": (int, float),
        "str": (str,),
        "bool": (bool,),
    }
    for f in dataclasses.fields(cls):
        t = str(f.type)
        if "tuple[int" in t:
            out[f.name] = (list,)
        elif "tuple[str" in t:
            out[f.name] = (list,)
        else:
            base = t.split("|")[0].strip()
            out[f.name] = hints.get(base, (object,))
    return out


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list"}


def builtin_dirs() -> list[Path]:
    """Where built-in profiles live: the installed package's copy, or the source tree's ``profiles/``."""
    here = Path(__file__).resolve().parent
    return [d for d in (here / "_profiles", here.parent / "profiles") if d.is_dir()]


def builtin_names() -> list[str]:
    names: set[str] = set()
    for d in builtin_dirs():
        names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def find(name_or_path: str) -> Path:
    """Resolve a profile argument: an existing path, else a built-in profile name."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or os.sep in name_or_path or p.exists():
        if p.is_file():
            return p
        raise ProfileError(
            f"profile file not found: {name_or_path}",
            "give a path to a .toml file or a built-in profile name (see `greenbench profiles`)",
        )
    for d in builtin_dirs():
        cand = d / f"{name_or_path}.toml"
        if cand.is_file():
            return cand
    import difflib

    names = builtin_names()
    close = difflib.get_close_matches(name_or_path, names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"built-in profiles: {', '.join(names) or 'none'}"
    raise ProfileError(f"no built-in profile named {name_or_path!r} and no such file", hint)


def load(name_or_path: str | os.PathLike) -> Profile:
    """Load and validate a profile by path or built-in name.

    Raises:
        ProfileError: missing file, TOML syntax error, unknown key, wrong type, missing model;
            the message names the file and line.
    """
    path = find(str(name_or_path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    return loads(text, source=str(path))


def loads(text: str, source: str = "<profile>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: invalid TOML: {exc}", "fix the syntax at that line (see toml.io)") from None
    lines = _key_lines(text)

    def where(section: str | None, key: str | None = None) -> str:
        ln = lines.get((section, key)) or lines.get((section, None))
        if section is None and key is not None:
            ln = ln or lines.get((key, None))  # a table header such as [runn]
        return f"{source}:{ln}" if ln else source

    for key, value in data.items():
        if key in _FREE_SECTIONS:
            if not isinstance(value, dict):
                raise ProfileError(f"{where(None, key)}: `{key}` must be a table ([{key}])")
            continue
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ProfileError(f"{where(None, key)}: `{key}` must be a table ([{key}])")
            continue
        if key not in _TOP_KEYS:
            raise ProfileError(
                f"{where(None, key)}: unknown key `{key}`",
                f"valid top-level keys: {', '.join(list(_TOP_KEYS) + ['[' + s + ']' for s in (*_SECTIONS, *_FREE_SECTIONS)])}",
            )
        if not isinstance(value, _TOP_KEYS[key]):
            raise ProfileError(f"{where(None, key)}: `{key}` must be {_TYPE_NAMES[_TOP_KEYS[key]]}")

    name = data.get("name")
    if not name:
        name = Path(source).stem if source and not source.startswith("<") else None
    if not name:
        raise ProfileError(f"{source}: missing `name`", 'add a line like name = "my-profile"')
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ProfileError(
            f"{where(None, 'name')}: name {name!r} may only contain letters, digits, '.', '_' and '-'",
            "it is used in result file names",
        )

    sections: dict[str, Any] = {}
    for sec, cls in _SECTIONS.items():
        table = data.get(sec, {})
        types = _expected_types(cls)
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            if key not in types:
                import difflib

                close = difflib.get_close_matches(key, list(types), n=1)
                hint = f"did you mean `{close[0]}`?" if close else f"valid keys in [{sec}]: {', '.join(types)}"
                raise ProfileError(f"{where(sec, key)}: unknown key `{key}` in [{sec}]", hint)
            expected = types[key]
            ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)
            if not ok:
                raise ProfileError(
                    f"{where(sec, key)}: [{sec}] {key} must be {_TYPE_NAMES.get(expected[-1], expected[-1].__name__)}, "
                    f"got {type(value).__name__} {value!r}"
                )
            if expected == (list,):
                elem = int if "int" in str({f.name: f.type for f in dataclasses.fields(cls)}[key]) else str
                bad = [x for x in value if not isinstance(x, elem) or isinstance(x, bool)]
                if bad:
                    raise ProfileError(
                        f"{where(sec, key)}: [{sec}] {key} must be a list of {'integers' if elem is int else 'strings'}, got {bad[0]!r}"
                    )
                value = tuple(value)
            if isinstance(value, int) and not isinstance(value, bool) and float in expected:
                value = float(value)
            kwargs[key] = value
        sections[sec] = cls(**kwargs)

    if "model" not in data:
        raise ProfileError(
            f"{source}: missing [model]",
            'add [model] with kind = "synthetic-llama" (and its shape) or path = "dir/of/exported/model"',
        )
    prof = Profile(
        name=name,
        description=data.get("description", ""),
        source=source,
        gate=_gate_table(data.get("gate", {}), where),
        **sections,
    )
    _check_values(prof, source, lines)
    return prof


def _gate_table(table: dict, where) -> tuple[tuple[str, float], ...]:
    """``[gate]``: metric = "5%" (or 5) -> ((metric, 5.0), ...), each metric known and each threshold finite >= 0."""
    import difflib

    from greenbench.metrics import METRICS

    out = []
    for metric, value in table.items():
        if metric not in METRICS:
            close = difflib.get_close_matches(metric, list(METRICS), n=1)
            raise ProfileError(f"{where('gate', metric)}: unknown metric `{metric}` in [gate]",
                               (f"did you mean `{close[0]}`? " if close else "") + f"metrics: {', '.join(METRICS)}")
        text = value.strip().rstrip("%").strip() if isinstance(value, str) else value
        try:
            pct = float(text) if not isinstance(text, bool) else float("nan")
        except (TypeError, ValueError):
            pct = float("nan")
        if not (math.isfinite(pct) and pct >= 0):
            raise ProfileError(f"{where('gate', metric)}: [gate] {metric} must be a percentage >= 0 such as \"5%\", "
                               f"got {value!r}")
        out.append((metric, pct))
    return tuple(out)


def _check_values(p: Profile, source: str, lines: dict) -> None:
    def err(sec: str, key: str, msg: str, hint: str | None = None):
        ln = lines.get((sec, key)) or lines.get((sec, None))
        raise ProfileError(f"{source}:{ln}: {msg}" if ln else f"{source}: {msg}", hint)

    m = p.model
    if bool(m.kind) == bool(m.path):
        err(
            "model",
            "kind" if m.kind else "path",
            "[model] needs exactly one of `kind` (a generated model) or `path` (an exported model directory)",
            'e.g. kind = "synthetic-llama"',
        )
    if m.kind and m.kind not in MODEL_KINDS:
        err("model", "kind", f"unknown model kind {m.kind!r}", f"valid kinds: {', '.join(MODEL_KINDS)}")
    if m.dtype not in DTYPES:
        err("model", "dtype", f"unknown dtype {m.dtype!r}", f"valid dtypes: {', '.join(DTYPES)}")
    if m.int4_accuracy_level not in (0, 1, 2, 3, 4):
        err("model", "int4_accuracy_level", f"[model] int4_accuracy_level must be 0..4, got {m.int4_accuracy_level}",
            "4: int8 compute (default, how CPUs run int4 models); 0: exact dequantized fp32 arithmetic")
    if m.graph not in GRAPHS:
        err("model", "graph", f"unknown graph form {m.graph!r}", f"valid forms: {', '.join(GRAPHS)}")
    for key in ("layers", "hidden", "heads", "ffn", "vocab", "max_seq_len"):
        if getattr(m, key) < 1:
            err("model", key, f"[model] {key} must be >= 1, got {getattr(m, key)}")
    kv = m.kv_heads if m.kv_heads is not None else m.heads
    if kv < 1 or m.heads % kv:
        err("model", "kv_heads", f"[model] heads ({m.heads}) must be a multiple of kv_heads ({kv})")
    if m.head_dim is None and m.hidden % m.heads:
        err("model", "hidden", f"[model] hidden ({m.hidden}) must be divisible by heads ({m.heads}), or set head_dim")

    pr = p.prompt
    given = [k for k in ("token_ids", "length", "text") if getattr(pr, k) is not None]
    if len(given) > 1:
        err("prompt", given[1], f"[prompt] takes one of token_ids, length or text; got {', '.join(given)}")
    if pr.token_ids is not None:
        if not pr.token_ids:
            err("prompt", "token_ids", "[prompt] token_ids is empty")
        if m.kind and any(t < 0 or t >= m.vocab for t in pr.token_ids):
            err("prompt", "token_ids", f"[prompt] token_ids must be in [0, {m.vocab}) for this model's vocab")
    if pr.length is not None and pr.length < 1:
        err("prompt", "length", f"[prompt] length must be >= 1, got {pr.length}")

    g = p.generation
    if g.max_new_tokens < 1:
        err("generation", "max_new_tokens", f"max_new_tokens must be >= 1, got {g.max_new_tokens}")
    if g.batch_size < 1:
        err("generation", "batch_size", f"batch_size must be >= 1, got {g.batch_size}")
    if g.batch is not None:
        if not g.batch:
            err("generation", "batch", "[generation] batch is empty", "list the batch sizes to sweep, e.g. [1, 4, 16]")
        bad = [b for b in g.batch if b < 1]
        if bad:
            err("generation", "batch", f"[generation] batch sizes must be >= 1, got {bad[0]}")
        if len(set(g.batch)) != len(g.batch):
            err("generation", "batch", f"[generation] batch lists a size twice: {list(g.batch)}",
                "each size is measured once; remove the repeat")
    if m.kind:
        n_prompt = len(pr.token_ids) if pr.token_ids is not None else (pr.length or 16)
        if pr.text is None and n_prompt + g.max_new_tokens > m.max_seq_len:
            err(
                "generation",
                "max_new_tokens",
                f"prompt ({n_prompt}) + max_new_tokens ({g.max_new_tokens}) exceeds the model's max_seq_len ({m.max_seq_len})",
                "lower max_new_tokens or raise [model] max_seq_len",
            )

    r = p.run
    if r.repeats < 1:
        err("run", "repeats", f"repeats must be >= 1, got {r.repeats}", "use --repeats 1 or more")
    if r.warmup < 0:
        err("run", "warmup", f"warmup must be >= 0, got {r.warmup}")
    if r.threads is not None and r.threads < 1:
        err("run", "threads", f"threads must be >= 1, got {r.threads}")
    if not (math.isfinite(r.idle_s) and 0 <= r.idle_s <= MAX_IDLE_S):
        err("run", "idle_s", f"idle_s must be a number of seconds from 0 to {MAX_IDLE_S:g}, got {r.idle_s}",
            "use --idle 5, or 0 to disable")
    if r.workload not in WORKLOADS:
        err("run", "workload", f"unknown workload {r.workload!r}", f"valid: {', '.join(WORKLOADS)}")
    if r.scope not in SCOPES:
        err("run", "scope", f"unknown scope {r.scope!r}", f"valid: {', '.join(SCOPES)} (devices: only what the work uses)")
    if r.device is not None and r.device not in DEVICES:
        err("run", "device", f"unknown device {r.device!r}", f"valid: {', '.join(DEVICES)} (the torch backend's device)")
    if r.compile is not None and r.compile not in COMPILE_MODES:
        err("run", "compile", f"unknown compile mode {r.compile!r}", f"valid: {', '.join(COMPILE_MODES)}")
    if r.min_window_periods < 1:
        err("run", "min_window_periods", f"min_window_periods must be >= 1, got {r.min_window_periods}",
            "20 keeps a stale counter edge below 5% of a window")
    if r.workload == "training":
        t = p.train
        if g.batch is not None:
            err("generation", "batch", "[generation] batch sweeps inference; a training run has one [train] batch_size",
                "remove [generation] batch, or run one profile per [train] batch_size")
        for key in ("steps", "seq_len", "batch_size"):
            if getattr(t, key) < 1:
                err("train", key, f"[train] {key} must be >= 1, got {getattr(t, key)}")
        if m.kind and t.seq_len > m.max_seq_len:
            err("train", "seq_len", f"[train] seq_len ({t.seq_len}) exceeds the model's max_seq_len ({m.max_seq_len})")
        if not (math.isfinite(t.lr) and t.lr > 0):
            err("train", "lr", f"[train] lr must be a finite number > 0, got {t.lr}")
        if t.device not in TRAIN_DEVICES:
            err("train", "device", f"[train] unknown device {t.device!r}", f"valid: {', '.join(TRAIN_DEVICES)}")
        if t.precision not in TRAIN_PRECISIONS:
            err("train", "precision", f"[train] unknown precision {t.precision!r}", f"valid: {', '.join(TRAIN_PRECISIONS)}")
    if p.carbon.pue is not None and not (math.isfinite(p.carbon.pue) and p.carbon.pue >= 1.0):
        err("carbon", "pue", f"pue must be a finite number >= 1.0, got {p.carbon.pue}", "PUE is facility energy / IT energy")
    _check_sim(p.sim, err)


def _check_sim(s: SimSpec, err) -> None:
    if s.chip is not None and s.chip not in SIM_CHIPS:
        err("sim", "chip", f"unknown neuromorphic chip preset {s.chip!r}", f"valid chips: {', '.join(SIM_CHIPS)}")
    if s.optical_model is not None and s.optical_model not in OPTICAL_MODELS:
        err("sim", "optical_model", f"unknown optical model {s.optical_model!r}",
            f"valid models: {', '.join(OPTICAL_MODELS)}")
    if s.firing_rate is not None and not 0.0 < s.firing_rate <= 1.0:
        err("sim", "firing_rate", f"[sim] firing_rate must be in (0, 1], got {s.firing_rate}",
            "spikes per neuron per timestep, e.g. 0.1")
    if s.dram is not None and s.dram not in DRAM_PRESETS:
        err("sim", "dram", f"unknown DRAM preset {s.dram!r}", f"valid presets: {', '.join(DRAM_PRESETS)}")
    if s.digital_precision is not None and s.digital_precision not in DIGITAL_PRECISIONS:
        err("sim", "digital_precision", f"unknown digital precision {s.digital_precision!r}",
            f"valid: {', '.join(DIGITAL_PRECISIONS)}")
    for key, lo in (("timesteps", 1), ("enob", 1), ("array_size", 1), ("array_count", 1), ("chips", 1),
                    ("chip_memory_bytes", 1), ("weight_bits", 1), ("accuracy_seeds", 1)):
        v = getattr(s, key)
        if v is not None and v < lo:
            err("sim", key, f"[sim] {key} must be >= {lo}, got {v}")
    if s.enob is not None and s.enob > 16:
        err("sim", "enob", f"[sim] enob must be <= 16, got {s.enob}", "analog photonic links reach about 4-8 effective bits")
    if s.laser_wall_plug_efficiency is not None and not 0.0 < s.laser_wall_plug_efficiency <= 1.0:
        err("sim", "laser_wall_plug_efficiency",
            f"[sim] laser_wall_plug_efficiency must be in (0, 1], got {s.laser_wall_plug_efficiency}",
            "a fraction, e.g. 0.2 for 20 %")
    if s.ops_per_mac is not None and s.ops_per_mac <= 0:
        err("sim", "ops_per_mac", f"[sim] ops_per_mac must be > 0, got {s.ops_per_mac}")
    if s.weight_bits is not None and s.weight_bits > 32:
        err("sim", "weight_bits", f"[sim] weight_bits must be <= 32, got {s.weight_bits}")
    if s.accuracy_seeds is not None and s.accuracy_seeds > 100:
        err("sim", "accuracy_seeds", f"[sim] accuracy_seeds must be <= 100, got {s.accuracy_seeds}",
            "each seed runs the perturbed model twice over the generation")
    for key in ("process_node_nm", "wavelength_nm", "modulation_ghz"):
        v = getattr(s, key)
        if v is not None and not (math.isfinite(v) and v > 0):
            err("sim", key, f"[sim] {key} must be a finite number > 0, got {v}")
    for key in ("synaptic_op_pj", "spike_pj", "hop_pj", "hops_per_spike", "adc_fom_fj_per_step",
                "laser_optical_fj_per_op", "op_pj", "digital_mac_pj", "dram_pj_per_bit",
                "neuron_update_active_pj", "neuron_update_inactive_pj", "static_power_w", "interchip_pj_per_spike",
                "hold_mw_per_weight"):
        v = getattr(s, key)
        if v is not None and (v < 0 or v != v or v == float("inf")):
            err("sim", key, f"[sim] {key} must be a finite number >= 0, got {v}")


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")


def _key_lines(text: str) -> dict[tuple[str | None, str | None], int]:
    """Map (section, key) and (section, None) to 1-based line numbers, for error messages."""
    out: dict[tuple[str | None, str | None], int] = {}
    section: str | None = None
    for i, line in enumerate(text.splitlines(), start=1):
        h = _HEADER.match(line)
        if h:
            section = h.group(1)
            out.setdefault((section, None), i)
            continue
        k = _KEY.match(line)
        if k:
            key = k.group(1).strip('"')
            out.setdefault((section, key), i)
            if section is None:
                out.setdefault((None, key), i)
    return out
