"""Profile loading and validation: every error names the file and line and says how to fix it."""

import pytest

from greenbench import profile as P
from greenbench.errors import ProfileError

GOOD = """\
name = "t"
[model]
kind = "synthetic-llama"
layers = 1
hidden = 32
heads = 2
ffn = 64
vocab = 100
[prompt]
token_ids = [5, 17, 42]
[generation]
max_new_tokens = 4
[run]
repeats = 2
warmup = 0
"""


def write(tmp_path, text, name="p.toml"):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_builtin_profiles_load():
    names = P.builtin_names()
    assert "llama-tiny" in names and "llama-125m" in names
    for n in names:
        p = P.load(n)
        assert p.name == n
        assert p.digest.startswith("sha256:") and len(p.digest) == 71


def test_good_profile(tmp_path):
    p = P.load(write(tmp_path, GOOD))
    assert p.model.layers == 1 and p.prompt.token_ids == (5, 17, 42)
    assert p.run.repeats == 2 and p.generation.max_new_tokens == 4
    assert p.model.rope_theta == 10000.0


def test_digest_changes_with_content_and_overrides(tmp_path):
    p = P.load(write(tmp_path, GOOD))
    q = P.load(write(tmp_path, GOOD.replace("layers = 1", "layers = 2"), "q.toml"))
    assert p.digest != q.digest
    assert p.with_overrides(repeats=3).digest != p.digest
    assert p.with_overrides(repeats=2).digest == p.digest  # same resolved contents, same digest
    # The digest does not depend on where the file lives.
    r = P.load(write(tmp_path, GOOD, "elsewhere.toml"))
    assert r.digest == p.digest


@pytest.mark.parametrize(
    "text,line,needle",
    [
        (GOOD.replace("layers = 1", "layerz = 1"), 4, "unknown key `layerz`"),
        (GOOD.replace("layers = 1", 'layers = "one"'), 4, "layers must be an integer"),
        (GOOD.replace("repeats = 2", "repeats = true"), 14, "repeats must be an integer"),
        (GOOD.replace("repeats = 2", "repeats = 0"), 14, "repeats must be >= 1"),
        (GOOD.replace('kind = "synthetic-llama"', 'kind = "gpt"'), 3, "unknown model kind"),
        (GOOD.replace("token_ids = [5, 17, 42]", "token_ids = [5, 1000]"), 10, "token_ids must be in"),
        (GOOD.replace("[run]", "[runn]"), 13, "unknown key `runn`"),
        (GOOD.replace("heads = 2", "heads = 3"), 5, "divisible"),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, line, needle):
    f = write(tmp_path, text)
    with pytest.raises(ProfileError) as ei:
        P.load(f)
    msg = str(ei.value)
    assert f"{f}:{line}" in msg, msg
    assert needle in msg


def test_missing_model(tmp_path):
    f = write(tmp_path, 'name = "x"\n[run]\nrepeats = 1\n')
    with pytest.raises(ProfileError, match=r"missing \[model\]") as ei:
        P.load(f)
    assert "synthetic-llama" in ei.value.hint


def test_toml_syntax_error_has_line(tmp_path):
    f = write(tmp_path, 'name = "x"\n[model\nkind = 1\n')
    with pytest.raises(ProfileError, match="line 2"):
        P.load(f)


def test_unknown_builtin_suggests(tmp_path):
    with pytest.raises(ProfileError) as ei:
        P.load("llama-tiyn")
    assert "llama-tiny" in ei.value.hint


def test_missing_file():
    with pytest.raises(ProfileError, match="not found"):
        P.load("does/not/exist.toml")


def test_prompt_exclusive(tmp_path):
    f = write(tmp_path, GOOD.replace("token_ids = [5, 17, 42]", 'token_ids = [1]\nlength = 3'))
    with pytest.raises(ProfileError, match="one of token_ids, length or text"):
        P.load(f)


def test_context_overflow(tmp_path):
    f = write(tmp_path, GOOD.replace("max_new_tokens = 4", "max_new_tokens = 600"))
    with pytest.raises(ProfileError, match="exceeds the model's max_seq_len"):
        P.load(f)


def test_override_validation(tmp_path):
    p = P.load(write(tmp_path, GOOD))
    with pytest.raises(ProfileError, match="exceeds"):
        p.with_overrides(max_new_tokens=10_000)


TRAIN = GOOD.replace("[run]\n", '[train]\nsteps = 2\nseq_len = 8\nbatch_size = 1\nlr = 0.01\n[run]\nworkload = "training"\n')


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ("batch_size = 1", "batch_size = 0", "batch_size must be >= 1"),
        ("steps = 2", "steps = 0", "steps must be >= 1"),
        ("seq_len = 8", "seq_len = 100000", "exceeds the model's max_seq_len"),
        ("lr = 0.01", "lr = -1.0", "lr must be a finite number > 0"),
        ("lr = 0.01", "lr = nan", "lr must be a finite number > 0"),
    ],
)
def test_training_settings_validated(tmp_path, old, new, needle):
    P.load(write(tmp_path, TRAIN))  # the unmodified one is fine
    with pytest.raises(ProfileError, match=needle):
        P.load(write(tmp_path, TRAIN.replace(old, new), "bad.toml"))


@pytest.mark.parametrize("line,needle", [("pue = nan", "pue must be a finite number"), ("pue = 0.5", "pue must be")])
def test_pue_validated(tmp_path, line, needle):
    with pytest.raises(ProfileError, match=needle):
        P.load(write(tmp_path, GOOD + f"[carbon]\n{line}\n"))
