"""Every script's numbers, models and records are checked before anything runs: a numeric flag out of
range, nan or inf is a usage error (exit 2, argparse's message naming the flag); a policy without a
chat template, an EOS token or weights, and an encoder without a pad token, is one line naming the
directory; a lone UTF-16 surrogate in a record is file:line:field.

Scripts run in this process: main(argv) for sft.py, calibrate.py and data/; lrpo.py through runpy."""
import argparse
import json
import os
import re
import runpy
import shutil
import sys

import pytest

from conftest import ROOT
from data.records import RecordError, ranged, read_jsonl

SAMPLE = os.path.join(ROOT, "data", "sample")
MISSING = "/nonexistent/lrpo-test"                  # inputs: a run that gets past its flags fails on them


def _mains():
    import calibrate
    import data.prepare
    import data.prepare_sft
    import sft
    return {
        "sft.py": (sft.main, ["--model", MISSING, "--sft_file", MISSING, "--out_dir", MISSING + "/o"]),
        "calibrate.py": (calibrate.main, ["--parallel", MISSING, "--out", MISSING + "/t.json"]),
        "data/prepare.py": (data.prepare.main, ["--from_dir", MISSING, "--out_dir", MISSING + "/o"]),
        "data/prepare_sft.py": (data.prepare_sft.main, ["--exclude", MISSING, "--teacher", MISSING,
                                                        "--out", MISSING + "/o.jsonl"]),
    }


FLAGS = [  # (script, flag, value, what argparse must say)
    *[("sft.py", f, v, m) for f, v, m in [
        ("--steps", "-1", ">= 1"), ("--batch", "0", ">= 1"), ("--max_prompt_len", "0", ">= 1"),
        ("--max_new_tokens", "-1", ">= 1"), ("--lr", "nan", "finite number > 0"), ("--lr", "inf", "finite"),
        ("--lr", "-1", "> 0"), ("--seed", "-1", ">= 0")]],
    *[("calibrate.py", f, v, m) for f, v, m in [
        ("--batch_size", "-1", ">= 1"), ("--n_equiv", "0", ">= 1"), ("--n_mismatch", "-1", ">= 1"),
        ("--n_hard", "-1", ">= 0"), ("--seed", "-1", ">= 0")]],
    *[("data/prepare.py", f, v, m) for f, v, m in [
        ("--val_frac", "1.5", "<= 1"), ("--val_frac", "nan", "finite number >= 0 and <= 1"),
        ("--val_frac", "inf", "finite"), ("--val_frac", "-0.1", ">= 0"), ("--batch_size", "0", ">= 1"),
        ("--max_new_tokens", "-1", ">= 1"), ("--seed", "-1", ">= 0")]],
    *[("data/prepare_sft.py", f, v, m) for f, v, m in [
        ("--n", "0", ">= 1"), ("--max_prompt_tokens", "-1", ">= 1"), ("--max_new_tokens", "0", ">= 1"),
        ("--batch_size", "-1", ">= 1"), ("--seed", "-1", ">= 0")]],
]


@pytest.mark.parametrize("script, flag, value, message", FLAGS)
def test_numeric_flags_out_of_range_are_usage_errors(capsys, script, flag, value, message):
    main, argv = _mains()[script]
    with pytest.raises(SystemExit) as stop:
        main(argv + [flag, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {flag}: must be" in err and message in err, (stop.value.code, err)


@pytest.mark.parametrize("flags", [["--lr", "nan"], ["--lr", "inf"], ["--temperature", "nan"], ["--grad_clip", "nan"],
                                   ["--grad_clip", "inf"], ["--top_p", "nan"], ["--tau", "nan", "0.3", "0.999"]])
def test_lrpo_float_flags_reject_nan_and_inf(monkeypatch, capsys, tmp_path, flags):
    """lrpo.py builds its flags with `ranged`: nan and inf stop at argparse (--prompts_per_step 1000
    would stop a run that got past its flags on the item count)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["lrpo.py", "--tiny", "--out_dir", str(tmp_path / "out"),
                                      "--prompts_per_step", "1000", *flags])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path("lrpo.py", run_name="__main__")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {flags[0]}: must be a finite number" in err, (stop.value.code, err)


def test_ranged_names_the_range_and_refuses_non_finite():
    for kind, bounds, text, message in [
        (float, {}, "nan", "must be a finite number, got nan"),
        (float, {}, "-inf", "must be a finite number, got -inf"),
        (float, {"lo": 0}, "inf", "must be a finite number >= 0, got inf"),
        (float, {"above": 0, "hi": 1}, "nan", "must be a finite number > 0 and <= 1, got nan"),
        (float, {"above": 0}, "0", "must be > 0, got 0"),
        (int, {"lo": 1}, "0", "must be >= 1, got 0"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            ranged(kind, **bounds)(text)
    assert ranged(float, lo=0)("1e308") == 1e308 and ranged(int, lo=0)("7") == 7


# --- models and tokenizers ------------------------------------------------------------------------

def _broken(tmp_path, src: str, name: str, edit) -> str:
    path = tmp_path / name
    shutil.copytree(src, path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    edit(path, config)
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return str(path)


def _no_chat_template(path, config):
    (path / "chat_template.jinja").unlink()
    config.pop("chat_template", None)


@pytest.fixture
def broken_models(tmp_path, tiny_policy_dir, tiny_encoder_dir):
    """{what is missing: a directory} from copies of the tiny models. The EOS case starts from the
    encoder's directory: a Qwen2 config makes transformers supply Qwen2's own default EOS."""
    return {
        "chat template": _broken(tmp_path, tiny_policy_dir, "no-template", _no_chat_template),
        "EOS token": _broken(tmp_path, tiny_encoder_dir, "no-eos", lambda p, c: c.pop("eos_token")),
        "weights file": _broken(tmp_path, tiny_policy_dir, "no-weights", lambda p, c: (p / "model.safetensors").unlink()),
        "tokenizer": _broken(tmp_path, tiny_policy_dir, "no-tokenizer", lambda p, c: (p / "tokenizer.json").unlink()),
        "pad token": _broken(tmp_path, tiny_encoder_dir, "no-pad", lambda p, c: c.pop("pad_token")),
    }


@pytest.mark.parametrize("what", ["chat template", "EOS token", "weights file", "tokenizer"])
def test_sft_names_what_the_policy_lacks(tmp_path, broken_models, what, monkeypatch):
    import checkpoint
    import sft
    monkeypatch.setattr(checkpoint, "load_policy", lambda *a, **k: pytest.fail("the policy loaded"))
    path = broken_models[what]
    with pytest.raises(SystemExit) as stop:
        sft.main(["--model", path, "--sft_file", os.path.join(SAMPLE, "sft.jsonl"), "--out_dir", str(tmp_path / "o")])
    said = str(stop.value.code)
    assert said.startswith(f"sft.py: {path}: no {what}") and "\n" not in said, said
    assert not (tmp_path / "o").exists()


def test_calibrate_names_an_encoder_without_a_pad_token(tmp_path, broken_models, monkeypatch):
    import calibrate
    import reward
    monkeypatch.setattr(reward, "Encoder", lambda *a, **k: pytest.fail("the encoder loaded"))
    path = broken_models["pad token"]
    with pytest.raises(SystemExit) as stop:
        calibrate.main(["--parallel", os.path.join(SAMPLE, "parallel.jsonl"), "--encoder", path,
                        "--out", str(tmp_path / "t.json")])
    said = str(stop.value.code)
    assert said.startswith(f"calibrate.py: {path}: its tokenizer has no pad token") and "\n" not in said, said


def test_the_library_checks_pass_the_tiny_models_and_name_each_gap(broken_models, tiny_policy_dir, tiny_encoder_dir):
    from data.records import check_encoder, check_policy
    check_policy(tiny_policy_dir)
    check_encoder(tiny_encoder_dir)
    for what, path in broken_models.items():
        check = check_encoder if what == "pad token" else check_policy
        with pytest.raises(RecordError, match=f"^{re.escape(path)}: .*{what.split()[0]}"):
            check(path)


# --- records ----------------------------------------------------------------------------------------

def test_a_lone_surrogate_is_an_error_with_file_line_and_field(tmp_path):
    good = {"id": "1", "question": "Wie hoch ist die Zugspitze? \U0001F3D4", "reference": "2962 m.", "lang": "de",
            "topic": "General Knowledge", "region": []}
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good).replace("\\ud83c\\udfd4", "\\ud83c") + "\n")
    assert "\\ud83c\\udfd4" in path.read_text()                 # a pair is one character: fine
    with pytest.raises(RecordError, match=r"train.jsonl:2: field 'question' holds a lone UTF-16 surrogate \(\\ud83c\)"):
        list(read_jsonl(str(path)))
    nested = tmp_path / "helpsteer3.jsonl"
    nested.write_text('{"context": [{"role": "user", "content": "ok"}, {"role": "user", "content": "\\udc00"}]}\n')
    with pytest.raises(RecordError, match=r"helpsteer3.jsonl:1: field 'context\[1\].content' holds a lone"):
        list(read_jsonl(str(nested)))
    from data.prepare import read_rows                          # a .json export holding a list
    listed = tmp_path / "care.json"
    listed.write_text('[{"question": "ok"}, {"question": "\\ud800 x"}]')
    with pytest.raises(RecordError, match=r"care.json:item 2: field 'question' holds a lone"):
        read_rows(str(listed))
    escaped = tmp_path / "escaped.jsonl"                        # a backslash, then the text "ud800": text
    escaped.write_text(json.dumps({"question": "\\ud800"}) + "\n")
    assert [r for _, r in read_jsonl(str(escaped))] == [{"question": "\\ud800"}]


# --- lrpo.py's and eval.py's models -----------------------------------------------------------------

@pytest.mark.parametrize("flags, said", [
    (["--model", "Qwen/Qwen2.5-1.5B-Instruct"], "--tiny builds its own policy and encoder: drop --model"),
    (["--encoder", "x", "--mod", "y"], "--tiny builds its own policy and encoder: drop --model and --encoder"),
    (["--seed", "-1"], "argument --seed: must be >= 0 and <= 9223372036854775807, got -1"),
    (["--seed", str(2**63)], "argument --seed: must be >= 0 and <= 9223372036854775807"),
])
def test_lrpo_usage_errors_of_models_and_seed(monkeypatch, capsys, tmp_path, flags, said):
    """--tiny with --model or --encoder was silently ignored (yet recorded in the checkpoint's args);
    a seed torch cannot take ended in a traceback. Both are usage errors now (exit 2). (A run that got
    past its flags would stop on --prompts_per_step 1000, before any model loads.)"""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["lrpo.py", "--tiny", "--out_dir", str(tmp_path / "out"), "--prompts_per_step",
                                      "1000", *flags])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path("lrpo.py", run_name="__main__")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and said in err, (stop.value.code, err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["lrpo.py", "eval.py"])
@pytest.mark.parametrize("what", ["chat template", "EOS token", "weights file", "pad token"])
def test_lrpo_and_eval_name_what_a_model_lacks_before_loading_it(monkeypatch, tmp_path, broken_models, tiny_policy_dir,
                                                                  tiny_encoder_dir, script, what):
    """lrpo.py checks --model with check_policy and --encoder with check_encoder (it checked only for
    a config.json); eval.py its --model (a chat template and an EOS token only when a task answers
    through the chat template) and the proxy's encoder. One line naming the directory and what is
    missing, before any model loads."""
    import checkpoint
    import eval as evaluation
    monkeypatch.setattr(checkpoint, "load_policy", lambda *a, **k: pytest.fail("the policy loaded"))
    monkeypatch.setattr(evaluation, "load_model", lambda *a, **k: pytest.fail("the model loaded"))
    monkeypatch.chdir(ROOT)
    path = broken_models[what]
    model, encoder = (tiny_policy_dir, path) if what == "pad token" else (path, tiny_encoder_dir)
    if script == "lrpo.py":
        monkeypatch.setattr(sys, "argv", ["lrpo.py", "--model", model, "--encoder", encoder, "--out_dir", str(tmp_path / "o")])
        with pytest.raises(SystemExit) as stop:
            runpy.run_path("lrpo.py", run_name="__main__")
        said = str(stop.value.code)
        assert said.startswith(f"lrpo.py: {path}: ") and what.split()[0] in said and "\n" not in said, said
        return
    out, data = str(tmp_path / "results.json"), os.path.join(SAMPLE, "eval")
    task = ["open", "--data", os.path.join(data, "care_pro.jsonl")] if what == "pad token" else \
        ["mgsm", "--data", os.path.join(data, "mgsm.jsonl")]
    with pytest.raises(RecordError, match=f"^{re.escape(path)}: .*{what.split()[0]}"):
        evaluation.main(["--model", model, "--encoder", encoder, "--task", *task, "--out", out])
    if what in ("chat template", "EOS token"):              # multiple choice by log-likelihood needs neither
        with pytest.raises(pytest.fail.Exception, match="the model loaded"):
            evaluation.main(["--model", model, "--task", "mc", "--data", os.path.join(data, "global_mmlu_lite.jsonl"),
                             "--out", out])
