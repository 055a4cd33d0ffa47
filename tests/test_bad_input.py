"""Bad settings and bad files fail at once, before any model loads, naming the flag or file (and line)."""
import json
import os
import runpy
import subprocess
import sys
import time

import pytest

from conftest import ROOT

GOOD = {"id": "x1", "question": "Wie hoch ist die Zugspitze?", "reference": "Die Zugspitze ist 2962 Meter hoch.",
        "lang": "de", "topic": "General Knowledge", "region": []}


def run(*args: str, env: dict | None = None, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.time()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **(env or {})})
    return proc, time.time() - t0


@pytest.fixture
def lrpo(monkeypatch, capsys):
    """Run lrpo.py --tiny in this process (no interpreter start-up: these runs stop in their first
    second) and return what it said when it stopped: SystemExit's message plus stderr."""
    monkeypatch.chdir(ROOT)

    def run_lrpo(tmp_path, *flags: str) -> str:
        monkeypatch.setattr(sys, "argv", ["lrpo.py", "--tiny", "--out_dir", str(tmp_path / "out"), *flags])
        with pytest.raises(SystemExit) as stop:
            runpy.run_path("lrpo.py", run_name="__main__")
        assert stop.value.code not in (0, None), "lrpo.py did not fail"
        return f"{stop.value.code}\n{capsys.readouterr().err}"
    return run_lrpo


@pytest.mark.parametrize("flags, message", [
    (["--save_every", "-1"], "argument --save_every: must be >= 0, got -1"),
    (["--prompts_per_step", "0"], "argument --prompts_per_step: must be >= 1, got 0"),
    (["--gen_batch_size", "0"], "argument --gen_batch_size: must be >= 1, got 0"),
    (["--sft_batch", "0"], "argument --sft_batch: must be >= 1, got 0"),
    (["--micro_prompts", "0"], "argument --micro_prompts: must be >= 1, got 0"),
    (["--max_new_tokens", "0"], "argument --max_new_tokens: must be >= 1, got 0"),
    (["--lr", "-1"], "argument --lr: must be > 0, got -1"),
    (["--temperature", "0"], "argument --temperature: must be > 0, got 0"),
    (["--top_p", "1.5"], "argument --top_p: must be > 0 and <= 1, got 1.5"),
    (["--tau", "0.3", "1.0", "0.999"], "--tau [0.3, 1.0, 0.999]: needs MIN <= TAU0"),
    (["--eps", "0.1", "0.2", "0.99"], "--eps [0.1, 0.2, 0.99]: needs MIN <= EPS0"),
    (["--K", "1"], "argument --K: must be >= 2, got 1"),
    (["--K", "0", "--router_mode", "monolingual"], "argument --K: must be >= 2, got 0"),
    (["--K", "2", "--K_on", "2"], "must exceed --K_on"),
    (["--prompts_per_step", "6", "--micro_prompts", "4"], "micro-batches"),
    (["--mini_batches", "3"], "8 prompts per rank do not split into --mini_batches 3 of whole groups"),
    (["--mini_batches", "2", "--micro_prompts", "8"], "4 prompts per rank and mini-batch do not split into micro-batches"),
    (["--ppo_epochs", "0"], "argument --ppo_epochs: must be >= 1, got 0"),
    (["--clip_c", "1"], "argument --clip_c: must be > 1, got 1"),
    (["--log_rollouts", "-1"], "argument --log_rollouts: must be >= 0, got -1"),
    (["--val_every", "0"], "argument --val_every: must be >= 1, got 0"),
    (["--val_file", "data/sample/train.jsonl"], "data/sample/train.jsonl shares 322 question(s) with data/sample/train.jsonl"),
    (["--prompts_per_step", "1000"], "fewer than --prompts_per_step"),
    (["--lang_prompt", "none"], "--lang_prompt none asks for no language"),
    (["--resume", "yes"], "argument --resume: invalid choice: 'yes'"),
])
def test_bad_settings_fail_before_models_load(tmp_path, lrpo, flags, message):
    said = lrpo(tmp_path, *flags)
    assert message in said, said[-2000:]
    assert not (tmp_path / "out").exists()                        # failed before anything was written


@pytest.mark.parametrize("bad, where", [
    ({"lang": "xx"}, "field 'lang'"),
    ({"topic": "Poetry"}, "field 'topic'"),
    ({"reference": None}, "field 'reference'"),
    ({"question": "   "}, "field 'question' is empty"),
])
def test_bad_training_line_is_reported_with_file_line_and_field(tmp_path, lrpo, bad, where):
    path = tmp_path / "train.jsonl"
    record = {**GOOD, **bad}
    if bad.get("reference", 0) is None:
        del record["reference"]
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    said = lrpo(tmp_path, "--train_file", str(path))
    assert f"{path}:2: {where}" in said, said[-2000:]
    assert not (tmp_path / "out").exists()


def test_bad_files_are_named(tmp_path, lrpo):
    """Each file the run reads: a truncated or empty calibration table, a one-language parallel file,
    a non-UTF-8 byte, a priors file holding a list; all before any model loads."""
    full = tmp_path / "calib.json"
    full.write_text('{"format": "lrpo-calibration/1", "mu_ref": 0.9, "pairs": {"de-en": {"n": 3, "mean"')
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format": "lrpo-calibration/1", "mu_ref": 0.9, "pairs": {}}))
    one = tmp_path / "parallel.jsonl"
    one.write_text("".join(json.dumps({"id": f"p{i}", "lang": "de", "text": f"Satz {i}."}) + "\n" for i in range(3)))
    latin1 = tmp_path / "train.jsonl"
    latin1.write_bytes((json.dumps(GOOD) + "\n").encode() + b'{"id": "x2", "question": "Caf\xe9"}\n')
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps([{"Chat": {"en": 1.0}}]))
    cases = [(["--calib_file", str(full)], f"{full}"), (["--calib_file", str(empty)], "no language pairs"),
             (["--parallel_file", str(one)], f"{one}"), (["--train_file", str(latin1)], f"{latin1}:2: not UTF-8"),
             (["--priors", str(priors)], f"{priors}: expected a JSON object")]
    for flags, message in cases:
        said = lrpo(tmp_path, *flags)
        assert message in said, (flags, said[-2000:])
        assert not (tmp_path / "out").exists(), flags


def test_bom_is_accepted(tmp_path, lrpo):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\n").encode())
    said = lrpo(tmp_path, "--train_file", str(path))               # one item: fails later, on its count
    assert "1 items, fewer than --prompts_per_step 8" in said, said[-2000:]


@pytest.mark.parametrize("script, flags", [
    ("lrpo.py", ["--model", "./missing-model"]),
    ("lrpo.py", ["--model", "out/ckpt-68"]),
    ("eval.py", ["--model", "out/ckpt-68", "--suite", "data/sample/eval/suite.json"]),
    ("sft.py", ["--model", "/no/such/dir", "--sft_file", "data/sample/sft.jsonl", "--out_dir", "/tmp/x"]),
])
def test_missing_local_model_fails_at_once(tmp_path, script, flags):
    os.makedirs(os.path.join(ROOT, "out"), exist_ok=True)         # "out/" exists: out/ckpt-68 looks local
    extra = ["--out_dir", str(tmp_path / "out")] if script == "lrpo.py" else []
    proc, seconds = run(script, *flags, *extra, env={"HF_HUB_OFFLINE": ""})
    assert proc.returncode != 0 and "no such directory" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and seconds < 30, (seconds, proc.stderr[-2000:])


def test_unreachable_hub_name_says_so_in_one_line(tmp_path):
    proc, seconds = run("lrpo.py", "--model", "no-such-org/no-such-model", "--out_dir", str(tmp_path / "out"),
                        "--train_file", "data/sample/train.jsonl",
                        env={"HF_HUB_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode != 0, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "no-such-org/no-such-model" in last and "Hugging Face Hub" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and seconds < 30, seconds
