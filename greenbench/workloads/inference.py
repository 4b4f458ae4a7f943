"""The inference workload: one onnxruntime session driven through prefill and greedy decode.

Terms:
    prefill: one model run over the whole prompt; its last-position logits give the first generated
        token, so the time of :meth:`DecoderSession.prefill` is the time to first token (TTFT).
    decode: one model run per further token, feeding back the previous greedy (argmax) token.
    IOBinding: onnxruntime binds inputs and outputs to caller-owned buffers, so a run copies nothing
        it does not have to. All buffers here are allocated once, in the constructor: token ids,
        the attention mask (all ones; a step binds a ``[batch, total_len]`` prefix of it), positions,
        logits (prompt and step) and the KV cache.
    KV cache, share-buffer mode (GroupQueryAttention models): one max-length buffer per layer and
        kind, bound once as both past and present; the graph derives the valid length from the mask.
    KV cache, concat mode (Optimum exports): the model writes ``present = concat(past, new)``; two
        max-length buffers per layer and kind are used alternately as past (length t-1) and present
        (length t), re-bound each step with the new shapes. No allocation either way.

Decoding is greedy and runs exactly ``n`` steps: the EOS token is ignored, so every repeat of a
benchmark does the same work (a real application would stop at EOS). With ``batch_size`` > 1 every
row holds the same prompt; the returned tokens are row 0's (all rows are identical).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from greenbench.errors import BackendError
from greenbench.models.loader import DecoderIO


def resolve_prompt(pr, *, vocab: int | None, encode=None) -> list[int]:
    """The prompt's token ids from ``[prompt]``: ``token_ids`` as given, ``text`` through ``encode``, or
    ``length`` seeded random ids in ``[0, vocab)`` (numpy's default generator seeded with ``[prompt] seed``, so
    every backend draws the same prompt).

    Args:
        pr: the profile's :class:`~greenbench.profile.PromptSpec`.
        vocab: the model's vocabulary size (needed for ``length``).
        encode: text -> ids; None for a model without a tokenizer (a generated model).

    Raises:
        BackendError: text without a tokenizer, text that encodes to nothing, length without a vocabulary.
    """
    if pr.token_ids is not None:
        return [int(t) for t in pr.token_ids]
    if pr.text is not None:
        if encode is None:
            raise BackendError(
                "[prompt] text needs a tokenizer, and generated models have none",
                "use [prompt] token_ids = [...] or length = N with a generated model",
            )
        ids = list(encode(pr.text))
        if not ids:
            raise BackendError("[prompt] text encodes to no tokens", "give a non-empty text")
        return ids
    if vocab is None:
        raise BackendError("[prompt] length needs the vocabulary size, which the model does not declare")
    return np.random.default_rng(pr.seed).integers(0, vocab, pr.length or 16).tolist()


class DecoderSession:
    """A prepared decoder: one onnxruntime session, its IOBinding and every buffer, allocated once.

    Implements the ``InferenceSession`` protocol of :mod:`greenbench.backends`.

    Args:
        session: an ``onnxruntime.InferenceSession`` of a decoder with past.
        io: its resolved I/O (:func:`greenbench.models.loader.decoder_io`).
        prompt_ids: the prompt (one row; repeated ``batch_size`` times).
        batch_size: rows per run.
        max_new_tokens: the most tokens :meth:`decode` will be asked for after :meth:`prefill`
            (capacity of the KV cache is ``len(prompt_ids) + max_new_tokens + 1``).
        device: where the KV cache lives: ``"cpu"`` or ``"cuda"``.
        info: returned by :meth:`describe`; cost: returned by :meth:`cost`.
    """

    def __init__(
        self,
        session: Any,
        io: DecoderIO,
        prompt_ids: list[int],
        *,
        batch_size: int = 1,
        max_new_tokens: int = 32,
        device: str = "cpu",
        device_id: int = 0,
        info: dict | None = None,
        cost: dict | None = None,
    ):
        import onnxruntime as ort

        self.prompt_ids = [int(t) for t in prompt_ids]
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self._session = session
        self._io = io
        self._info = dict(info or {})
        self._cost = dict(cost or {})
        B, S = self.batch_size, len(self.prompt_ids)
        if S < 1:
            raise BackendError("the prompt is empty", "give [prompt] token_ids, length or text")
        cap = S + self.max_new_tokens + 1
        if io.max_seq_len and S + self.max_new_tokens > io.max_seq_len:
            raise BackendError(
                f"prompt ({S} tokens) + max_new_tokens ({self.max_new_tokens}) exceeds the model's context "
                f"length ({io.max_seq_len})",
                "use a shorter prompt or lower --max-new-tokens",
            )
        if io.vocab is None:
            raise BackendError(
                f"cannot tell the vocabulary size of {io.logits!r} (symbolic last dimension, no config)",
                "keep config.json or genai_config.json (vocab_size) next to the model",
            )
        if io.vocab and any(t < 0 or t >= io.vocab for t in self.prompt_ids):
            raise BackendError(f"prompt token ids must be in [0, {io.vocab}) for this model")
        for name, dt in (("past key/value", io.kv_dtype), ("logits", io.logits_dtype)):
            if dt == "bfloat16":
                raise BackendError(f"the model's {name} are bfloat16, which greenbench's CPU loop cannot read",
                                   "export the model in float32 or float16")
        V = io.vocab
        self._S, self._cap, self._len = S, cap, 0
        ids_dt, mask_dt, pos_dt = np.dtype(io.input_ids_dtype), np.dtype(io.attention_mask_dtype), np.dtype(
            io.position_ids_dtype
        )
        kv_dt, logit_dt = np.dtype(io.kv_dtype), np.dtype(io.logits_dtype)

        # --- buffers (allocated once) ------------------------------------------------------------
        self._ids_prompt = np.ascontiguousarray(np.tile(np.array(self.prompt_ids, dtype=ids_dt), (B, 1)))
        self._ids_step = np.zeros((B, 1), dtype=ids_dt)
        self._mask = np.ones(B * cap, dtype=mask_dt)  # a [B, t] prefix of all-ones is all-ones
        self._pos_prompt = np.ascontiguousarray(np.tile(np.arange(S, dtype=pos_dt), (B, 1)))
        self._pos_step = np.zeros((B, 1), dtype=pos_dt)
        self._logits_prompt = np.empty((B, S, V), dtype=logit_dt)
        self._logits_step = np.empty((B, 1, V), dtype=logit_dt)
        self._last_prompt_logits = self._logits_prompt[:, -1, :]
        self._step_logits = self._logits_step[:, 0, :]
        self._tokens = np.zeros((B, self.max_new_tokens + 1), dtype=np.intp)
        self._token_cols = [self._tokens[:, j] for j in range(self.max_new_tokens + 1)]
        kv_dev = "cuda" if device == "cuda" else "cpu"
        self._kv_shape_full = (B, io.kv_heads, cap, io.head_dim)
        n_kv = 1 if io.share_buffer else 2
        self._kv = [
            [
                ort.OrtValue.ortvalue_from_shape_and_type(self._kv_shape_full, kv_dt.type, kv_dev, device_id)
                for _ in range(n_kv)
            ]
            for _ in range(2 * io.layers)
        ]  # index 2*i: key of layer i, 2*i+1: value
        self._kv_ptrs = [[v.data_ptr() for v in pair] for pair in self._kv]
        self._kv_cur = 0  # concat mode: which of the two buffers holds the latest present

        # --- binding ---------------------------------------------------------------------------
        self._binding = session.io_binding()
        self._kv_np_type = kv_dt.type
        self._setup_fast_binding(ort, kv_dev, device_id)
        self._past_names = [n for i in range(io.layers) for n in (io.past_keys[i], io.past_values[i])]
        self._present_names = [n for i in range(io.layers) for n in (io.present_keys[i], io.present_values[i])]
        if io.share_buffer:
            for past, present, ptrs in zip(self._past_names, self._present_names, self._kv_ptrs):
                self._bind_in(past, self._kv_dev, self._kv_np_type, self._kv_shape_full, ptrs[0])
                self._bind_out(present, self._kv_dev, self._kv_np_type, self._kv_shape_full, ptrs[0])

    # -- low-level binding helpers ----------------------------------------------------------------
    def _setup_fast_binding(self, ort, kv_dev: str, device_id: int) -> None:
        """Use the C-level binding/run entry points when present (skips per-call Python wrappers)."""
        b, s = self._binding, self._session
        c_bind = getattr(b, "_iobinding", None)
        c_sess = getattr(s, "_sess", None)
        make = getattr(getattr(ort, "OrtDevice", None), "make", None)
        if c_bind is not None and c_sess is not None and make is not None:
            try:
                self._cpu = make("cpu", 0)._get_c_device()
                self._kv_dev = make(kv_dev, device_id)._get_c_device()
                self._bind_in = c_bind.bind_input
                self._bind_out = c_bind.bind_output
                run, arg = c_sess.run_with_iobinding, c_bind
                self._run = lambda: run(arg, None)
                return
            except (AttributeError, TypeError):
                pass
        # public API fallback
        self._cpu = ("cpu", 0)
        self._kv_dev = (kv_dev, device_id)
        self._bind_in = lambda n, d, t, shp, p: b.bind_input(n, d[0], d[1], t, shp, p)
        self._bind_out = lambda n, d, t, shp, p: b.bind_output(n, d[0], d[1], t, shp, p)
        self._run = lambda: s.run_with_iobinding(b)

    def _bind_array_in(self, name: str, arr: np.ndarray, shape=None) -> None:
        self._bind_in(name, self._cpu, arr.dtype.type, shape or arr.shape, arr.ctypes.data)

    def _bind_array_out(self, name: str, arr: np.ndarray) -> None:
        self._bind_out(name, self._cpu, arr.dtype.type, arr.shape, arr.ctypes.data)

    # -- protocol --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the cached positions (the KV buffers are simply overwritten by the next prefill)."""
        self._len = 0
        self._kv_cur = 0

    def prefill(self) -> int:
        """Run the prompt; return the first greedy token (row 0)."""
        io, B, S = self._io, self.batch_size, self._S
        self._len = 0
        self._bind_array_in(io.input_ids, self._ids_prompt)
        if io.attention_mask:
            self._bind_in(io.attention_mask, self._cpu, self._mask.dtype.type, (B, S), self._mask.ctypes.data)
        if io.position_ids:
            self._bind_array_in(io.position_ids, self._pos_prompt)
        if not io.share_buffer:
            kvh, hd = io.kv_heads, io.head_dim
            for past, present, ptrs in zip(self._past_names, self._present_names, self._kv_ptrs):
                self._bind_in(past, self._kv_dev, self._kv_np_type, (B, kvh, 0, hd), ptrs[1])
                self._bind_out(present, self._kv_dev, self._kv_np_type, (B, kvh, S, hd), ptrs[0])
            self._kv_cur = 0
        self._bind_array_out(io.logits, self._logits_prompt)
        self._run()
        np.argmax(self._last_prompt_logits, axis=-1, out=self._token_cols[0])
        self._len = S
        # steady-state bindings for decode
        self._bind_array_in(io.input_ids, self._ids_step)
        if io.position_ids:
            self._bind_array_in(io.position_ids, self._pos_step)
        self._bind_array_out(io.logits, self._logits_step)
        return int(self._tokens[0, 0])

    def rewind(self) -> None:
        """Return to the state right after :meth:`prefill`, so that ``decode(first, n)`` can run again.

        The prompt's keys and values stay where prefill put them: share-buffer decode writes only past the
        prompt, and concat decode copies the prompt's rows unchanged into each present buffer. The runner
        uses this to repeat a short decode back to back inside one measured window.
        """
        if self._len == 0:
            raise RuntimeError("rewind() before prefill()")
        self._len = self._S
        self._kv_cur = 0

    def decode(self, first_token: int, n: int) -> list[int]:
        """Feed ``first_token`` and generate ``n`` greedy tokens (EOS ignored); return row 0's tokens."""
        if self._len == 0:
            raise RuntimeError("decode() before prefill()")
        if self._len + n >= self._cap:
            raise ValueError(f"decode of {n} tokens exceeds the prepared capacity ({self._cap - self._len - 1} left)")
        io, B = self._io, self.batch_size
        ids = self._ids_step
        ids[:, 0] = first_token
        bind_in, bind_out, run, argmax = self._bind_in, self._bind_out, self._run, np.argmax
        cpu, mask_t, mask_ptr = self._cpu, self._mask.dtype.type, self._mask.ctypes.data
        mask_name, pos, logits = io.attention_mask, (self._pos_step if io.position_ids else None), self._step_logits
        cols = self._token_cols
        share = io.share_buffer
        if not share:
            kvh, hd, kv_dev, kv_t = io.kv_heads, io.head_dim, self._kv_dev, self._kv_np_type
            pairs = list(zip(self._past_names, self._present_names, self._kv_ptrs))
        t = self._len
        for step in range(n):
            t += 1
            if mask_name:
                bind_in(mask_name, cpu, mask_t, (B, t), mask_ptr)
            if pos is not None:
                pos[:, 0] = t - 1
            if not share:
                cur = self._kv_cur
                nxt = 1 - cur
                past_shape, present_shape = (B, kvh, t - 1, hd), (B, kvh, t, hd)
                for past, present, ptrs in pairs:
                    bind_in(past, kv_dev, kv_t, past_shape, ptrs[cur])
                    bind_out(present, kv_dev, kv_t, present_shape, ptrs[nxt])
                self._kv_cur = nxt
            run()
            col = cols[step + 1]
            argmax(logits, axis=-1, out=col)
            ids[:, 0] = col
        self._len = t
        return self._tokens[0, 1 : n + 1].tolist()

    def last_logits(self) -> np.ndarray:
        """A copy of row 0's logits from the last :meth:`prefill` (its last position) or :meth:`decode` step."""
        src = self._step_logits if self._len > self._S else self._last_prompt_logits
        return np.array(src[0], copy=True)

    def cost(self) -> dict:
        return dict(self._cost)

    def describe(self) -> dict:
        return dict(self._info)

    def close(self) -> None:
        self._binding = None
        self._bind_in = self._bind_out = self._run = None
        self._kv = []
        self._session = None
