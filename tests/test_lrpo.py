"""lrpo.py end to end: a 2-rank FSDP2 run, every ablation flag, bf16, a stuck rank,
Weights & Biases logging. (Bad settings and files: test_bad_input.py; checkpoints and exact resume:
test_checkpoint.py, test_cluster.py.)"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT

TIMING = {"tokens_per_s", "t_generate", "t_reward", "t_train", "peak_mem_gb"}


def run_lrpo(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **(env or {})}
    return subprocess.run([sys.executable, "lrpo.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def rows(path) -> list[dict]:
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def strip(rs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rs]


def test_two_rank_tiny_run_writes_everything(tmp_path, torchrun):
    out = tmp_path / "out"
    proc = torchrun("lrpo.py", "--tiny", "--out_dir", str(out), "--max_steps", "6", "--sft_steps", "4",
                    "--save_every", "5", "--update_every", "2", "--log_rollouts", "8", timeout=300)
    assert "router identical on all 2 ranks" in proc.stdout, proc.stdout[-3000:]
    metrics = rows(out / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2, 3, 4, 5, 6]
    for r in metrics:
        assert 0 <= r["reward"] <= 1 and 0 <= r["r_lang"] <= 1 and r["response_len"] > 0
        assert {"loss", "kl", "clip_frac", "sim", "r_qual"} | TIMING <= set(r)
        u = r["updates"]                                       # one optimizer step, on-policy: ratio exactly 1
        assert len(u["loss"]) == 1 and u["ratio_min"] == u["ratio_max"] == [1.0] and r["clip_frac"] == 0
    updates = rows(out / "router.jsonl")
    assert [u["step"] for u in updates] == [0, 2, 4, 6]       # the initial router, then every M=2 steps
    assert set(updates[-1]["topics"]) == {"Regional Knowledge", "General Knowledge", "Reasoning",
                                          "Chat", "Safety", "Translation"}
    assert sorted(os.listdir(out)) == ["calibration.json", "ckpt-5", "ckpt-6", "metrics.jsonl",
                                       "rollouts.jsonl", "router.jsonl", "sft", "tiny"]
    assert "val" in metrics[-1] and metrics[-1]["val"]["n"] == 28 and "val" not in metrics[0]   # at the end
    rollouts_match_the_rewards_the_loss_used(rows(out / "rollouts.jsonl"), metrics)
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(out / "ckpt-6")
    tok = AutoTokenizer.from_pretrained(out / "ckpt-6")
    assert model.config.vocab_size == len(tok)
    import torch
    state = torch.load(out / "ckpt-6" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 6 and state["world"] == 2 and len(state["rng"]) == 2
    assert state["router"]["step"] == 6


def rollouts_match_the_rewards_the_loss_used(samples: list[dict], metrics: list[dict], K: int = 8) -> None:
    """Every group of the batch logged (--log_rollouts 8 on 8 prompts): each step's rows, gathered
    from both ranks, give its metrics row's means, per-language figures and group advantages."""
    import torch
    from grpo import group_advantages
    steps = sorted({r["step"] for r in samples})
    assert steps == [1, 5, 6], steps                                  # step 1, then every checkpoint
    for s in steps:
        got, m = [r for r in samples if r["step"] == s], metrics[s - 1]
        assert len(got) == 64 and [r["k"] for r in got] == list(range(K)) * 8
        rewards = torch.tensor([r["reward"] for r in got])
        assert torch.allclose(group_advantages(rewards, K), torch.tensor([r["advantage"] for r in got]), atol=1e-5)
        assert sum(r["reward"] for r in got) / 64 == pytest.approx(m["reward"], rel=1e-6)
        assert sum(not r["stopped"] for r in got) / 64 == pytest.approx(m["truncated"])
        assert sum(r["detected"] != r["lang"] for r in got) / 64 == pytest.approx(m["off_language"])
        for lang, fig in m["langs"].items():
            mine = [r for r in got if r["lang"] == lang]
            assert fig["n"] == len(mine) and fig["r_lang"] == pytest.approx(sum(r["r_lang"] for r in mine) / len(mine))
            assert fig["len"] == pytest.approx(sum(r["length"] for r in mine) / len(mine))


def test_every_ablation_flag_runs(tmp_path, small_data, fresh):
    """Each ablation of the paper is one flag away, and each one trains (2 steps, one out_dir whose
    calibration table is built once; the run's own files are cleared in between; flags that do not
    interact share a run, five runs in all: one per router mode).
    `--max_step` and `--save_ev` are abbreviations: the --tiny preset must not override what
    argparse recognises (--save_every 0: a checkpoint only at the end)."""
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"Reasoning": {"en": 0.6, "zh": 0.4}, "Japan": {"ja": 1.0}}))
    out = fresh(tmp_path / "out")
    for flags in (["--router_mode", "monolingual", "--lang_prompt", "none", "--scale_rewards", "none",
                   "--loss_agg", "seq-mean-token-sum-norm"],
                  ["--router_mode", "english", "--calibration", "quantile", "--cal_ub", "--loss_agg", "seq-mean-token-mean",
                   "--beta", "0", "--mask_truncated"],
                  ["--router_mode", "input", "--sampler", "hf", "--calibration", "none", "--grad_ckpt"],
                  ["--router_mode", "uniform", "--dtype", "bf16", "--lang_prompt", "system", "--encoder_dtype", "bf16"],
                  ["--router_update", "pooled", "--lang_prompt", "system_en", "--no_anneal", "--priors", str(priors),
                   "--mini_batches", "2", "--ppo_epochs", "2", "--clip_c", "3", "--verl_clamps", "--lr", "1e-2"]):
        proc = run_lrpo("--tiny", "--sft_steps", "0", "--max_step", "2", "--update_every", "1", "--save_ev", "0",
                        "--out_dir", str(out), *small_data, *flags)
        assert proc.returncode == 0, (flags, proc.stderr[-3000:])
        metrics, snapshot = rows(out / "metrics.jsonl"), rows(out / "router.jsonl")[-1]
        assert [r["step"] for r in metrics] == [1, 2], flags
        assert sorted(p.name for p in out.glob("ckpt-*")) == ["ckpt-2"]
        assert not (out / "sft").exists()                       # an explicit flag beats the --tiny preset
        if flags[:2] == ["--router_mode", "monolingual"]:       # fixed modes never update
            assert len(set(snapshot["topics"]["Chat"].values())) == 1
        if "--mini_batches" in flags:                          # 4 optimizer steps per rollout step; the clip acts
            assert all(len(r["updates"]["loss"]) == 4 for r in metrics)
            assert max(c for r in metrics for c in r["updates"]["clip_frac"]) > 0
        if "--mask_truncated" in flags:                        # cut rollouts (24 tokens, no stop) leave the loss
            assert [r["masked_truncated"] for r in metrics] == [round(64 * r["truncated"]) for r in metrics]
            assert [r["updates"]["tokens"] for r in metrics] == [[64 * r["response_len"] - 24 * r["masked_truncated"]]
                                                                  for r in metrics]
        if "--no_anneal" in flags:
            assert metrics[-1]["tau"] == 1.0 and metrics[-1]["eps"] == 0.2
            assert snapshot["topics"]["Reasoning"]["en"] > snapshot["topics"]["Reasoning"]["de"]
        for f in ("metrics.jsonl", "router.jsonl", "rollouts.jsonl", *(p.name for p in out.glob("ckpt-*"))):
            shutil.rmtree(out / f) if (out / f).is_dir() else (out / f).unlink()


def test_bf16_two_ranks_match_fp32_and_resume_exactly(tmp_path, tiny_policy_dir, torchrun, small_data, fresh):
    """FSDP2's bf16 mixed precision on CPU (gloo), the path GPU runs take: tests/dist_bf16.py compares
    it with fp32 on the same batch and checks a checkpointed bf16 run resumes bit for bit; then
    lrpo.py itself trains two bf16 steps (its resume goes through the same save_checkpoint / restore)."""
    proc = torchrun("tests/dist_bf16.py", tiny_policy_dir, str(tmp_path / "dist"), timeout=240)
    assert "resumed bf16 step identical" in proc.stdout, proc.stdout[-3000:]
    out = fresh(tmp_path / "out")
    proc = torchrun("lrpo.py", "--tiny", "--dtype", "bf16", "--sft_steps", "2", "--max_steps", "2", "--out_dir", str(out),
                    *small_data, timeout=300)
    assert "bf16" in proc.stdout and "router identical on all 2 ranks" in proc.stdout, proc.stdout[-3000:]
    metrics = rows(out / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2] and all(0 <= r["reward"] <= 1 for r in metrics)
    assert (out / "ckpt-2" / "model.safetensors").exists()


def _worker_pid(out_dir: str, rank: int) -> int | None:
    """The pid of lrpo.py's worker of `rank` for this out_dir (read from /proc)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if out_dir.encode() in cmd and b"lrpo.py" in b" ".join(cmd) and f"RANK={rank}".encode() in env:
            return int(pid)
    return None


def test_a_stuck_rank_fails_the_job_within_the_collective_timeout(tmp_path, small_data, fresh):
    """SIGSTOP one rank mid-run: the other's next collective times out (--collective_timeout 0.1
    min), and torchrun ends the job instead of waiting for an hour (it gives the stopped worker 30 s
    to obey SIGTERM, then SIGKILLs it)."""
    out = str(fresh(tmp_path / "out"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "lrpo.py",
            "--tiny", "--sft_steps", "0", "--max_steps", "200", "--save_every", "0", "--out_dir", out,
           "--collective_timeout", "0.1", *small_data]
    job = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stopped = None
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (os.path.exists(f"{out}/metrics.jsonl")
                                              and os.path.getsize(f"{out}/metrics.jsonl") > 0):
            assert job.poll() is None, job.stderr.read()[-3000:]
            time.sleep(0.5)
        stopped = _worker_pid(out, 1)
        assert stopped, "rank 1's worker not found"
        os.kill(stopped, signal.SIGSTOP)
        t0 = time.time()
        code = job.wait(timeout=150)
        waited = time.time() - t0
    finally:
        if stopped:
            try:
                os.kill(stopped, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if job.poll() is None:
            job.kill()
    err = job.stderr.read()
    assert code != 0, err[-3000:]
    assert waited < 60, (waited, err[-3000:])                   # 6 s timeout + torchrun's 30 s
    assert "timed out" in err.lower() or "timeout" in err.lower(), err[-3000:]


def test_wandb_logs_the_same_rows(tmp_path, small_data, fresh):
    """--wandb PROJECT sends each metrics.jsonl row (a stand-in `wandb` module records the calls);
    without the package the run stops at once with the install hint."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text(
        "import json, os\n"
        "def _w(kind, obj):\n"
        "    open(os.environ['WANDB_CALLS'], 'a').write(json.dumps({kind: obj}, default=str) + '\\n')\n"
        "def init(**kw): _w('init', kw)\n"
        "def log(row, step=None): _w('log', {'row': row, 'step': step})\n")
    calls, out = tmp_path / "calls.jsonl", fresh(tmp_path / "out")
    proc = run_lrpo("--tiny", "--sft_steps", "0", "--max_steps", "2", "--out_dir", str(out), "--wandb", "lrpo-test", *small_data,
                    env={"PYTHONPATH": f"{fake}{os.pathsep}{ROOT}", "WANDB_CALLS": str(calls)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = rows(calls)
    assert got[0]["init"]["project"] == "lrpo-test" and got[0]["init"]["resume"] == "allow"
    assert [c["log"]["row"] for c in got[1:]] == rows(out / "metrics.jsonl")
    assert [c["log"]["step"] for c in got[1:]] == [1, 2]
    import importlib.util
    if importlib.util.find_spec("wandb") is None:                     # not a requirement
        proc = run_lrpo("--tiny", "--out_dir", str(tmp_path / "out2"), "--wandb", "x")
        assert proc.returncode != 0 and "pip install wandb" in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "out2").exists()
