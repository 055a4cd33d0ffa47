"""Resume survives what users meet: broken checkpoints fall back (and the steps after the older one
come out as the uninterrupted run wrote them), half-written log lines are dropped,
changed settings are refused, a run's files are never overwritten, a failed write loses nothing,
and a checkpoint cannot run code on load."""
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT

BASE = ["--tiny", "--sft_steps", "0", "--save_every", "2", "--update_every", "2"]
TIMING = {"tokens_per_s", "t_generate", "t_reward", "t_train", "peak_mem_gb"}


@pytest.fixture(scope="module")
def lrpo(small_data):
    """lrpo(out, *flags) -> the finished lrpo.py run on BASE and conftest's small_data."""
    def run(out, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "lrpo.py", *BASE, *small_data, "--out_dir", str(out), *flags], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
    return run


def rows(path) -> list[dict]:
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fresh, lrpo):
    """A 4-step run with ckpt-2 and ckpt-4, built once; tests work on copies."""
    out = fresh(tmp_path_factory.mktemp("run") / "out")
    proc = lrpo(out, "--max_steps", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out)
    return out


@pytest.mark.parametrize("victim", ["model.safetensors", "trainer_state.pt"])
def test_unreadable_newest_checkpoint_falls_back_to_the_previous(run_copy, finished_run, lrpo, victim):
    """As a crash while ckpt-4 was written: steps 3 and 4, logged but not checkpointed, are dropped
    from the logs and trained again from ckpt-2 exactly as the uninterrupted run trained them."""
    path = run_copy / "ckpt-4" / victim
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    proc = lrpo(run_copy, "--max_steps", "5", "--resume", "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{path}" in proc.stdout and "trying the previous checkpoint" in proc.stdout, proc.stdout[-3000:]
    assert "resumed from" in proc.stdout and "ckpt-2 at step 2" in proc.stdout
    assert (run_copy / "ckpt-4.broken" / victim).exists()          # set aside, never deleted
    assert [r["step"] for r in rows(run_copy / "metrics.jsonl")] == [1, 2, 3, 4, 5]
    for log in ("metrics.jsonl", "router.jsonl", "rollouts.jsonl"):   # rollouts: steps 1, 2, 4 (then 5)
        want, got = rows(finished_run / log), [r for r in rows(run_copy / log) if r["step"] <= 4]
        drop = TIMING | {"val"}                                      # each run validates at its own end
        assert [{k: v for k, v in r.items() if k not in drop} for r in got] == \
               [{k: v for k, v in r.items() if k not in drop} for r in want], log
    assert {r["step"] for r in rows(finished_run / "rollouts.jsonl")} == {1, 2, 4}


def test_half_written_log_line_is_dropped_on_resume(run_copy, lrpo):
    with open(run_copy / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "reward": 0.')                          # a crash mid-write
    proc = lrpo(run_copy, "--max_steps", "5", "--resume", "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dropped a half-written last line" in proc.stdout, proc.stdout[-3000:]
    assert [r["step"] for r in rows(run_copy / "metrics.jsonl")] == [1, 2, 3, 4, 5]


def test_changed_settings_are_refused_unless_forced(run_copy, lrpo):
    proc = lrpo(run_copy, "--max_steps", "5", "--resume", "auto", "--K", "4")
    assert proc.returncode != 0 and "--K 8 -> 4" in proc.stderr and "--resume_force" in proc.stderr, proc.stderr[-2000:]
    proc = lrpo(run_copy, "--max_steps", "5", "--resume", "auto", "--lr", "1e-4")   # not run-defining
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = lrpo(run_copy, "--max_steps", "6", "--resume", "auto", "--K", "4", "--resume_force")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fresh_run_never_overwrites_a_runs_logs(tmp_path, run_copy, lrpo):
    out = tmp_path / "died"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\n')   # died before its first save
    proc = lrpo(out, "--max_steps", "2")
    assert proc.returncode != 0 and "holds metrics.jsonl of an earlier run" in proc.stderr, proc.stderr[-2000:]
    assert (out / "metrics.jsonl").read_text() == '{"step": 1, "reward": 0.5}\n'
    before = (run_copy / "metrics.jsonl").read_text()
    proc = lrpo(run_copy, "--max_steps", "2")                         # a finished run, started again
    assert proc.returncode != 0 and "holds checkpoints of an earlier run" in proc.stderr, proc.stderr[-2000:]
    assert "--resume auto" in proc.stderr and (run_copy / "metrics.jsonl").read_text() == before


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['LRPO_TEST_MARKER']}",))


def test_a_checkpoint_that_would_run_code_is_refused(run_copy, tmp_path, monkeypatch, lrpo):
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("LRPO_TEST_MARKER", str(marker))
    state = torch.load(run_copy / "ckpt-4" / "trainer_state.pt", weights_only=True)
    torch.save({**state, "extra": Payload()}, run_copy / "ckpt-4" / "trainer_state.pt")
    proc = lrpo(run_copy, "--max_steps", "5", "--resume", "auto")
    assert proc.returncode != 0 and "refusing to load" in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()                                       # the payload never ran
    assert "Traceback" not in proc.stderr


def test_failed_checkpoint_write_loses_nothing(run_copy, small_data):
    """A write that fails (here a file-size limit put on the running job once it trains: EFBIG, as a
    full disk gives ENOSPC) exits with one line naming the directory; ckpt-4 and the logs stay; no
    temporary directory is left."""
    before = sorted(os.listdir(run_copy))
    job = subprocess.Popen([sys.executable, "lrpo.py", *BASE, *small_data, "--out_dir", str(run_copy), "--max_steps", "8",
                            "--save_every", "4", "--resume", "auto"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})
    try:
        while len(rows(run_copy / "metrics.jsonl")) < 5:         # resumed and trained step 5
            assert job.poll() is None, job.stderr.read()[-3000:]
            time.sleep(0.1)
        resource.prlimit(job.pid, resource.RLIMIT_FSIZE, (200_000, 200_000))   # model.safetensors: 3 MB
        code, err = job.wait(timeout=240), job.stderr.read()
    finally:
        job.kill()
    assert code != 0, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert "cannot write" in last and "ckpt-8" in last and "intact" in last, err[-3000:]
    assert sorted(os.listdir(run_copy)) == before                   # no .tmp-ckpt-8, nothing new
    assert [r["step"] for r in rows(run_copy / "metrics.jsonl")] == [1, 2, 3, 4, 5, 6, 7, 8]
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(run_copy / "ckpt-4")        # the previous one still loads


def test_a_non_finite_state_is_never_written(tmp_path, tiny_policy_dir, tiny_tokenizer):
    """save_checkpoint checks the whole state on rank 0 first: a NaN weight, or an infinite optimizer
    moment, is refused with one line naming the step and what is not finite; nothing is written and
    the previous checkpoint stays the newest (sft.py's save_policy takes the same path)."""
    from checkpoint import NonFiniteCheckpoint, checkpoints, load_policy, save_checkpoint
    model = load_policy(tiny_policy_dir, torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).logits.mean().backward()
    opt.step()
    save_checkpoint(str(tmp_path), 1, model, tiny_tokenizer, opt, {"args": {}})
    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        weight[0, :3] = torch.tensor([float("nan"), float("inf"), 0.0])
    with pytest.raises(NonFiniteCheckpoint, match=r"^step 2: training diverged; .*ckpt-2: not written: 2 non-finite "
                                                  r"values in 1 tensors \(model\.(model\.embed_tokens|lm_head)\.weight\)$"):
        save_checkpoint(str(tmp_path), 2, model, tiny_tokenizer, opt, {"args": {}})
    with torch.no_grad():
        weight[0, :2] = 0.0
    next(iter(opt.state.values()))["exp_avg_sq"].view(-1)[0] = float("inf")
    with pytest.raises(NonFiniteCheckpoint, match=r"ckpt-3: not written: 1 non-finite values in 1 tensors \(optimizer\.state\."):
        save_checkpoint(str(tmp_path), 3, model, tiny_tokenizer, opt, {"args": {}})
    assert [s for s, _ in checkpoints(str(tmp_path))] == [1] and sorted(os.listdir(tmp_path)) == ["ckpt-1"]


def test_a_resume_trains_at_the_learning_rate_it_is_given(tmp_path, tiny_policy_dir, tiny_tokenizer):
    """Decision 7 lets --lr and --weight_decay change on resume, but loading the optimizer's state dict
    brought back the checkpoint's: a resumed run silently kept the old learning rate. restore() keeps
    the new optimizer's hyperparameters and takes the checkpoint's moments and step counts."""
    from checkpoint import load_policy, load_trainer_state, restore, save_checkpoint
    model = load_policy(tiny_policy_dir, torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    model(torch.tensor([[1, 2, 3]])).logits.mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)                                  # as lrpo.py: a fresh model has no grads
    save_checkpoint(str(tmp_path), 1, model, tiny_tokenizer, opt, {"args": {}})
    again = torch.optim.AdamW(model.parameters(), lr=5e-2, weight_decay=0.0)
    assert restore(load_trainer_state(str(tmp_path / "ckpt-1")), model, again, rank=0) == 1
    assert [(g["lr"], g["weight_decay"]) for g in again.param_groups] == [(5e-2, 0.0)]
    was, now = next(iter(opt.state.values())), next(iter(again.state.values()))
    assert torch.equal(was["exp_avg_sq"], now["exp_avg_sq"]) and float(now["step"]) == 1
