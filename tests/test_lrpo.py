"""lrpo.py end to end: input validation, a 2-rank FSDP2 run, and exact resume."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

TIMING = {"tokens_per_s", "t_generate", "t_reward", "t_train"}
GOOD = {"id": "x1", "question": "Wie hoch ist die Zugspitze?", "reference": "Die Zugspitze ist 2962 Meter hoch.",
        "lang": "de", "topic": "General Knowledge", "region": []}


def run_lrpo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "lrpo.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def rows(path: str) -> list[dict]:
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


@pytest.mark.parametrize("bad, where", [
    ({"lang": "xx"}, "field 'lang'"),
    ({"topic": "Poetry"}, "field 'topic'"),
    ({"reference": None}, "field 'reference'"),
    ({"question": "   "}, "field 'question' is empty"),
])
def test_bad_training_line_is_reported_with_file_line_and_field(tmp_path, bad, where):
    path = tmp_path / "train.jsonl"
    record = {**GOOD, **bad}
    if bad.get("reference", 0) is None:
        del record["reference"]
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    proc = run_lrpo("--train_file", str(path), "--out_dir", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert f"{path}:2: {where}" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()                    # failed before anything was written


@pytest.mark.parametrize("flags, message", [
    (["--K", "2", "--K_on", "2"], "must exceed --K_on"),
    (["--prompts_per_step", "6", "--micro_prompts", "4"], "micro-batches"),
    (["--prompts_per_step", "1000"], "fewer than --prompts_per_step"),
])
def test_bad_settings_fail_before_models_load(tmp_path, flags, message):
    proc = run_lrpo("--tiny", "--out_dir", str(tmp_path / "out"), *flags)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]


def test_bad_priors_file_is_named(tmp_path):
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"Poetry": {"en": 1.0}}))
    proc = run_lrpo("--tiny", "--out_dir", str(tmp_path / "out"), "--priors", str(priors))
    assert proc.returncode != 0 and f"{priors}: prior key 'Poetry'" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_two_rank_tiny_run_writes_everything(tmp_path, torchrun):
    out = tmp_path / "out"
    proc = torchrun("lrpo.py", "--tiny", "--out_dir", str(out), "--max_steps", "6", "--sft_steps", "4",
                    "--save_every", "5", "--update_every", "2", timeout=300)
    assert "router identical on all 2 ranks" in proc.stdout, proc.stdout[-3000:]
    metrics = rows(out / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2, 3, 4, 5, 6]
    for r in metrics:
        assert 0 <= r["reward"] <= 1 and 0 <= r["r_lang"] <= 1 and r["response_len"] > 0
        assert {"loss", "kl", "clip_frac", "sim", "r_qual"} | TIMING <= set(r)
    updates = rows(out / "router.jsonl")
    assert [u["step"] for u in updates] == [0, 2, 4, 6]       # the initial router, then every M=2 steps
    assert set(updates[-1]["topics"]) == {"Regional Knowledge", "General Knowledge", "Reasoning",
                                          "Chat", "Safety", "Translation"}
    assert sorted(os.listdir(out)) == ["calibration.json", "ckpt-5", "ckpt-6", "metrics.jsonl",
                                       "router.jsonl", "sft", "tiny"]
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(out / "ckpt-6")
    tok = AutoTokenizer.from_pretrained(out / "ckpt-6")
    assert model.config.vocab_size == len(tok)
    import torch
    state = torch.load(out / "ckpt-6" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 6 and state["world"] == 2 and len(state["rng"]) == 2
    assert state["router"]["step"] == 6


def test_resume_is_exact(tmp_path):
    common = ["--tiny", "--sft_steps", "4", "--save_every", "3", "--update_every", "2"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    for proc in (run_lrpo(*common, "--out_dir", str(full), "--max_steps", "7"),
                 run_lrpo(*common, "--out_dir", str(cut), "--max_steps", "4")):
        assert proc.returncode == 0, proc.stderr[-3000:]
    # A crash after step 4 was logged but before its checkpoint: only ckpt-3 survives.
    shutil.rmtree(cut / "ckpt-4")
    proc = run_lrpo(*common, "--out_dir", str(cut), "--max_steps", "7", "--resume", "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout and "at step 3" in proc.stdout
    want, got = rows(full / "metrics.jsonl"), rows(cut / "metrics.jsonl")
    assert [r["step"] for r in got] == list(range(1, 8))
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING} for r in rs]  # noqa: E731
    assert strip(got) == strip(want)
    assert rows(cut / "router.jsonl") == rows(full / "router.jsonl")


def test_every_ablation_flag_runs(tmp_path):
    """SPEC §5: each ablation is one flag away, and each one trains (2 steps, one shared out_dir
    so the tiny models and calibration table are built once)."""
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"Reasoning": {"en": 0.6, "zh": 0.4}, "Japan": {"ja": 1.0}}))
    out = tmp_path / "out"
    for flags in (["--router_mode", "monolingual"], ["--router_mode", "english"],
                  ["--calibration", "quantile"], ["--calibration", "none"], ["--lang_prompt", "system"],
                  ["--scale_rewards", "none", "--loss_agg", "seq-mean-token-sum-norm"],
                  ["--loss_agg", "seq-mean-token-mean", "--beta", "0"],
                  ["--no_anneal", "--priors", str(priors)]):
        proc = run_lrpo("--tiny", "--sft_steps", "0", "--max_steps", "2", "--update_every", "1",
                        "--out_dir", str(out), *flags)
        assert proc.returncode == 0, (flags, proc.stderr[-3000:])
        if "monolingual" in flags:                            # a fresh run never mixes with an old one
            again = run_lrpo("--tiny", "--out_dir", str(out))
            assert again.returncode != 0 and "--resume auto" in again.stderr, again.stderr[-2000:]
        for ckpt in out.glob("ckpt-*"):
            shutil.rmtree(ckpt)
        metrics = rows(out / "metrics.jsonl")
        assert [r["step"] for r in metrics] == [1, 2], flags
        assert not (out / "sft").exists()                       # an explicit flag beats the --tiny preset
        snapshot = rows(out / "router.jsonl")[-1]
        if flags[:2] == ["--router_mode", "monolingual"]:       # fixed modes never update
            assert len(set(snapshot["topics"]["Chat"].values())) == 1
        if "--no_anneal" in flags:
            assert metrics[-1]["tau"] == 1.0 and metrics[-1]["eps"] == 0.2
            assert snapshot["topics"]["Reasoning"]["en"] > snapshot["topics"]["Reasoning"]["de"]
