"""Loading exported decoder directories and describing a session's decoder I/O.

Terms:
    export directory: what ``optimum-cli export onnx --task text-generation-with-past`` writes
        (``model.onnx``, ``config.json``, ``tokenizer.json``; Optimum source) or what the
        onnxruntime-genai model builder writes (``genai_config.json`` naming the ONNX file and the
        I/O name templates; genai source).
    past/present: the key/value cache going into and out of the model, 4-D ``[batch, kv_heads,
        sequence, head_dim]`` (BNSH). In *share-buffer* mode (genai ``search.past_present_share_buffer``,
        models using ``GroupQueryAttention``) one max-length buffer per layer is bound as both.

:func:`decoder_io` reads the actual input/output names, shapes and element types of an onnxruntime
session and fills the gaps (symbolic kv-heads / head-dim, context length, EOS) from the directory's
``genai_config.json`` or ``config.json``. A model whose I/O greenbench cannot drive raises
:class:`~greenbench.errors.BackendError` naming the missing or unknown input/output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from greenbench.errors import BackendError

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


@dataclass
class ExportDir:
    """What the directory says about itself, before a session exists."""

    directory: Path
    source: str  # "optimum" | "genai" | "generated"
    onnx_path: Path
    genai: dict = field(default_factory=dict)
    hf: dict = field(default_factory=dict)

    @property
    def share_buffer(self) -> bool:
        return bool(self.genai.get("search", {}).get("past_present_share_buffer", False))

    def tokenizer_path(self) -> Path | None:
        p = self.directory / "tokenizer.json"
        return p if p.is_file() else None


@dataclass
class DecoderIO:
    """The resolved decoder I/O of one session."""

    input_ids: str
    attention_mask: str | None
    position_ids: str | None
    past_keys: list[str]
    past_values: list[str]
    present_keys: list[str]
    present_values: list[str]
    logits: str
    layers: int
    kv_heads: int
    head_dim: int
    heads: int
    vocab: int | None
    kv_dtype: str
    logits_dtype: str
    input_ids_dtype: str
    attention_mask_dtype: str
    position_ids_dtype: str
    share_buffer: bool
    max_seq_len: int | None
    eos_token_id: int | list[int] | None
    bos_token_id: int | None


def open_export_dir(path: str | Path, source: str | None = None) -> ExportDir:
    """Find the ONNX file and configs of an export directory.

    Raises:
        BackendError: the directory or its model file is missing, or a config is not valid JSON.
    """
    d = Path(path).expanduser()
    if not d.is_dir():
        raise BackendError(
            f"[model] path {str(path)!r} is not a directory",
            "point [model] path at a directory exported by `optimum-cli export onnx` or the onnxruntime-genai builder",
        )
    genai = _read_json(d / "genai_config.json")
    hf = _read_json(d / "config.json")
    if genai:
        fname = genai.get("model", {}).get("decoder", {}).get("filename", "model.onnx")
        src = source or "genai"
    else:
        fname = "model.onnx"
        src = source or "optimum"
    onnx_path = d / fname
    if not onnx_path.is_file():
        present = sorted(p.name for p in d.glob("*.onnx"))
        hint = (
            f"the directory has {', '.join(present)}; greenbench drives a single decoder-with-past model "
            "(export with --task text-generation-with-past, which writes model.onnx)"
            if present
            else "export the model with `optimum-cli export onnx --task text-generation-with-past` or the genai builder"
        )
        raise BackendError(f"no {fname} in {d}", hint)
    return ExportDir(d, src, onnx_path, genai, hf)


def _read_json(p: Path) -> dict:
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {p}: {exc}", "fix or remove the file") from None


def _np_type(ort_type: str, name: str) -> str:
    try:
        return _ORT_TYPES[ort_type]
    except KeyError:
        raise BackendError(f"model input/output {name!r} has type {ort_type}, which greenbench cannot drive") from None


def decoder_io(inputs, outputs, export: ExportDir) -> DecoderIO:
    """Resolve the decoder I/O from ``session.get_inputs()`` / ``get_outputs()`` and the directory's configs.

    Raises:
        BackendError: a required input/output is missing, an input is unknown, or a KV dimension is
            symbolic and no config gives it.
    """
    ins = {i.name: i for i in inputs}
    outs = {o.name: o for o in outputs}
    dec = export.genai.get("model", {}).get("decoder", {})
    gin, gout = dec.get("inputs", {}), dec.get("outputs", {})
    where = f"{export.onnx_path}"

    def need_input(name: str, what: str):
        if name not in ins:
            raise BackendError(
                f"{where}: the model has no input {name!r} ({what}); inputs are {', '.join(ins)}",
                "greenbench drives decoder-with-past exports (optimum --task text-generation-with-past, genai builder)",
            )

    ids_name = gin.get("input_ids", "input_ids")
    need_input(ids_name, "token ids")
    mask_name = gin.get("attention_mask", "attention_mask")
    mask_name = mask_name if mask_name in ins else None
    pos_name = gin.get("position_ids", "position_ids")
    pos_name = pos_name if pos_name in ins else None

    pk_t = _template(gin.get("past_key_names"), "past_key_values.%d.key")
    pv_t = _template(gin.get("past_value_names"), "past_key_values.%d.value")
    ok_t = _template(gout.get("present_key_names"), "present.%d.key")
    ov_t = _template(gout.get("present_value_names"), "present.%d.value")
    layers = 0
    while pk_t % layers in ins:
        layers += 1
    if layers == 0:
        raise BackendError(
            f"{where}: the model has no input {pk_t % 0!r} (past key cache); inputs are {', '.join(ins)}",
            "export with past key/values (optimum: --task text-generation-with-past)",
        )
    past_k = [pk_t % i for i in range(layers)]
    past_v = [pv_t % i for i in range(layers)]
    pres_k = [ok_t % i for i in range(layers)]
    pres_v = [ov_t % i for i in range(layers)]
    for n in past_v:
        need_input(n, "past value cache")
    logits = gout.get("logits", "logits")
    for n in [logits] + pres_k + pres_v:
        if n not in outs:
            raise BackendError(
                f"{where}: the model has no output {n!r}; outputs are {', '.join(outs)}",
                "greenbench needs logits and present.{i}.key/.value outputs",
            )
    known = {ids_name, mask_name, pos_name, *past_k, *past_v}
    unknown = [n for n in ins if n not in known]
    if unknown:
        raise BackendError(
            f"{where}: model input {unknown[0]!r} is not one greenbench can drive "
            "(it drives input_ids, attention_mask, position_ids and past_key_values.*)",
            "export a plain decoder-with-past model (not a merged decoder with use_cache_branch)",
        )

    shape = list(ins[past_k[0]].shape)
    if len(shape) != 4:
        raise BackendError(
            f"{where}: input {past_k[0]!r} has shape {shape}; greenbench needs 4-D [batch, kv_heads, seq, head_dim]"
        )
    hf = export.hf
    heads_cfg = dec.get("num_attention_heads") or hf.get("num_attention_heads") or hf.get("n_head")
    kv_cfg = dec.get("num_key_value_heads") or hf.get("num_key_value_heads") or heads_cfg
    hidden = dec.get("hidden_size") or hf.get("hidden_size") or hf.get("n_embd")
    hd_cfg = dec.get("head_size") or hf.get("head_dim") or (hidden // heads_cfg if hidden and heads_cfg else None)
    kv_heads = shape[1] if isinstance(shape[1], int) else kv_cfg
    head_dim = shape[3] if isinstance(shape[3], int) else hd_cfg
    for dim, val, key in ((1, kv_heads, "num_key_value_heads"), (3, head_dim, "head_size / head_dim")):
        if not isinstance(val, int) or val < 1:
            raise BackendError(
                f"{where}: input {past_k[0]!r} has a symbolic dimension {dim} ({shape[dim]!r}) and no "
                f"genai_config.json or config.json in {export.directory} gives {key}",
                "keep the exporter's genai_config.json / config.json next to the model",
            )
    heads = int(heads_cfg) if heads_cfg else int(kv_heads)

    vocab = dec.get("vocab_size") or export.genai.get("model", {}).get("vocab_size") or hf.get("vocab_size")
    lshape = list(outs[logits].shape)
    if lshape and isinstance(lshape[-1], int):
        vocab = lshape[-1]
    m = export.genai.get("model", {})
    max_len = m.get("context_length") or export.genai.get("search", {}).get("max_length")
    max_len = max_len or hf.get("max_position_embeddings") or hf.get("n_positions")
    eos = m.get("eos_token_id", hf.get("eos_token_id"))
    bos = m.get("bos_token_id", hf.get("bos_token_id"))
    return DecoderIO(
        input_ids=ids_name,
        attention_mask=mask_name,
        position_ids=pos_name,
        past_keys=past_k,
        past_values=past_v,
        present_keys=pres_k,
        present_values=pres_v,
        logits=logits,
        layers=layers,
        kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        heads=heads,
        vocab=int(vocab) if vocab else None,
        kv_dtype=_np_type(ins[past_k[0]].type, past_k[0]),
        logits_dtype=_np_type(outs[logits].type, logits),
        input_ids_dtype=_np_type(ins[ids_name].type, ids_name),
        attention_mask_dtype=_np_type(ins[mask_name].type, mask_name) if mask_name else "int64",
        position_ids_dtype=_np_type(ins[pos_name].type, pos_name) if pos_name else "int64",
        share_buffer=export.share_buffer,
        max_seq_len=int(max_len) if max_len else None,
        eos_token_id=eos,
        bos_token_id=bos,
    )


def _template(t: str | None, default: str) -> str:
    t = t or default
    if "%d" not in t:
        # tolerate "{}"/"{i}" style templates
        t = re.sub(r"\{[a-z_]*\}", "%d", t)
    if "%d" not in t:
        raise BackendError(f"genai_config.json name template {t!r} has no %d for the layer index")
    return t


def load_tokenizer(export: ExportDir):
    """The directory's ``tokenizer.json`` as a ``tokenizers.Tokenizer``.

    Raises:
        BackendError: no tokenizer.json, or it cannot be parsed.
    """
    p = export.tokenizer_path()
    if p is None:
        raise BackendError(
            f"[prompt] text needs a tokenizer, but {export.directory} has no tokenizer.json",
            "copy the model's tokenizer.json into the directory, or give [prompt] token_ids instead",
        )
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a plain Exception on bad files
        raise BackendError(f"cannot load {p}: {exc}", "use a tokenizer.json written by Hugging Face tokenizers") from None
