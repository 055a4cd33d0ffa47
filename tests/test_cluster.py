"""Cluster-grade runs of lrpo.py: one run per directory (runlock.py), a clean stop on SIGTERM / SIGUSR1
that resumes to the same metrics as an uninterrupted run (preempt.py), a resume on another world size
with --resume_force, a blow-up that stops with one line and leaves no non-finite checkpoint, and a
resume that checks its warm start and its end before any model loads (checkpoint.py).

Cost: every run trains on 16 items with 3 parallel items, and finds its --tiny models already in
OUT/tiny (one copy of the session's tiny models, so no run builds its own). The two uninterrupted
references start in the background when the module starts, so both cores stay busy; the 2-rank one
is then continued in one process at --lr 1e3, which serves two tests: its first step is the move to
another world size, its next ones the blow-up. The 2-rank runs skip the warm start. Runs that stop
before training run in this process."""
import contextlib
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT

PY, TORCHRUN = sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
RUN = ["lrpo.py", "--tiny", "--sft_steps", "4", "--max_steps", "6", "--save_every", "0", "--update_every", "2"]
RUN2 = RUN + ["--sft_steps", "0"]                                   # 2 ranks: no warm start
TIMING = {"tokens_per_s", "t_generate", "t_reward", "t_train", "peak_mem_gb"}
STOPPED = re.compile(r"lrpo\.py: (SIG\w+): stopped after step (\d+) and saved (\S+)/ckpt-(\d+); continue with --resume auto")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}


def rows(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()] if os.path.exists(path) else []


def strip(rs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rs]


class Job:
    """A command (or several, one after another while they succeed) run from the repository root in
    the background, its output in a log file."""

    def __init__(self, cmd: list, log, then: list | None = None):
        self.log = str(log)
        cmd = [str(c) for c in cmd]
        if then:
            cmd = ["sh", "-c", shlex.join(cmd) + " && " + shlex.join(str(c) for c in then)]
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def output(self) -> str:
        return open(self.log, encoding="utf-8", errors="replace").read()

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.log}: no exit within {timeout} s\n{self.output()[-4000:]}")

    def until_rows(self, path, n: int, timeout: float = 180) -> None:
        """Wait until metrics.jsonl has n rows (the signal then lands in step n + 1 or its save)."""
        deadline = time.time() + timeout
        while len(rows(path)) < n:
            if self.proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"{self.log}: exited {self.proc.poll()} or timed out before {n} rows\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the job and every process under it (torchrun's workers run in sessions of their own)."""
        if self.proc.poll() is None:
            for pid in [*descendants(self.pid), self.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def here(monkeypatch, capsys, argv: list) -> tuple[object, str]:
    """Run lrpo.py in this process up to its exit (only for runs that stop before any model loads);
    -> (its SystemExit code, stdout + stderr)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [str(a) for a in argv])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path("lrpo.py", run_name="__main__")
    said = capsys.readouterr()
    return stop.value.code, said.out + said.err


def children() -> dict[int, list[int]]:
    """{pid: [its child pids]} of every process (read from /proc)."""
    kids = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError, ValueError):
            kids.setdefault(int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(pid))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = children(), [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def worker_pids(agent: int) -> dict[int, int]:
    """{rank: pid} of the lrpo.py workers a torchrun agent started (read from /proc)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == agent:
            rank = [e for e in env if e.startswith(b"RANK=")]
            found[int(rank[0][5:])] = int(pid)
    return found


@pytest.fixture(scope="module")
def data(small_data) -> list[str]:
    """--train_file (16 items) and --parallel_file (3 items) for every run of this module."""
    return small_data


@pytest.fixture(scope="module")
def background(tmp_path_factory, data, fresh):
    """{name: (Job, out_dir)}, started at once: the uninterrupted references on 1 and 2 ranks; the
    latter, once done, goes on in one process (--resume_force) at --lr 1e3 with a checkpoint every
    step until it blows up."""
    d = tmp_path_factory.mktemp("background")
    on = [PY, *RUN2, *data, "--out_dir", d / "two", "--resume", "auto", "--resume_force", "--max_steps", "20",
          "--lr", "1e3", "--save_every", "1"]
    jobs = {name: (Job(cmd + ["--out_dir", fresh(d / name)], d / f"{name}.log", then), d / name) for name, cmd, then in [
        ("one", [PY, *RUN, *data], None),
        ("two", [*TORCHRUN, *RUN2, *data], on),
    ]}
    yield jobs
    for job, _ in jobs.values():
        job.kill()


@pytest.fixture
def spawn():
    """spawn(cmd, log) -> a Job that is killed, with everything under it, when the test ends."""
    started = []
    yield lambda *a, **k: started.append(Job(*a, **k)) or started[-1]
    for job in started:
        job.kill()


def finished(background, name: str):
    job, out = background[name]
    code = job.wait(300)
    return code, job.output(), out


# --------------------------------------------------------------------------------------- preemption

def test_one_process_holds_its_directory_and_stops_on_sigterm_then_sigusr1_losing_no_step(
        tmp_path, data, fresh, background, spawn, monkeypatch, capsys):
    import sft
    out = fresh(tmp_path / "out")
    job = spawn([PY, *RUN, *data, "--out_dir", out], tmp_path / "run1.log")
    job.until_rows(out / "metrics.jsonl", 1)
    os.kill(job.pid, signal.SIGSTOP)                     # alive and holding the lock while others try
    try:                                                 # a second run, fresh or resumed, and sft.py into its sft/
        holder = f"is in use by another run (PID {job.pid} on "
        for extra in ([], ["--resume", "auto"]):
            code, _ = here(monkeypatch, capsys, [*RUN, *data, "--out_dir", out, *extra])
            assert str(code).startswith(f"lrpo.py: {out} {holder}"), code
        with pytest.raises(SystemExit) as stop:
            sft.main(["--model", str(out / "tiny" / "policy"), "--sft_file", os.path.join(ROOT, "data", "sample", "sft.jsonl"),
                      "--out_dir", str(out / "sft"), "--overwrite"])
        assert str(stop.value.code).startswith(f"sft.py: {out} {holder}"), stop.value.code
        assert open(out / ".lock").read().split()[0] == str(job.pid)
    finally:
        os.kill(job.pid, signal.SIGCONT)
    os.kill(job.pid, signal.SIGTERM)
    assert job.wait() == 75, job.output()[-3000:]
    name, s1, where, ckpt = STOPPED.fullmatch(last_line(job.output())).groups()
    s1 = int(s1)
    assert name == "SIGTERM" and where == str(out) and int(ckpt) == s1 < 6
    assert [r["step"] for r in rows(out / "metrics.jsonl")] == list(range(1, s1 + 1))
    assert sorted(p.name for p in out.glob("ckpt-*")) == [f"ckpt-{s1}"] and not (out / ".lock").exists()

    job = spawn([PY, *RUN, *data, "--out_dir", out, "--resume", "auto"], tmp_path / "run2.log")
    job.until_rows(out / "metrics.jsonl", s1 + 1)
    os.kill(job.pid, signal.SIGUSR1)
    assert job.wait() == 75, job.output()[-3000:]
    assert f"resumed from {out}/ckpt-{s1} at step {s1}" in job.output()
    name, s2, _, _ = STOPPED.fullmatch(last_line(job.output())).groups()
    s2 = int(s2)
    assert name == "SIGUSR1" and s1 < s2 <= 6

    code, said, ref = finished(background, "one")
    assert code == 0, said[-3000:]
    got = rows(out / "metrics.jsonl")
    assert [r["step"] for r in got] == list(range(1, s2 + 1))           # no step lost, none repeated
    assert strip(got) == strip(rows(ref / "metrics.jsonl")[:s2])
    assert rows(out / "router.jsonl") == [r for r in rows(ref / "router.jsonl") if r["step"] <= s2]


def test_two_ranks_stop_together_on_one_workers_sigusr1_and_on_the_agents_sigterm(tmp_path, data, fresh, background, spawn,
                                                                                   monkeypatch, capsys):
    """SIGUSR1 reaches rank 1 only, later SIGTERM the torchrun agent (which forwards it); the 2-rank
    checkpoint is refused in one process without --resume_force."""
    out = fresh(tmp_path / "out")
    agent = spawn([*TORCHRUN, *RUN2, *data, "--out_dir", out], tmp_path / "run1.log")
    agent.until_rows(out / "metrics.jsonl", 1)
    workers = worker_pids(agent.pid)
    assert sorted(workers) == [0, 1], workers
    for pid in workers.values():
        os.kill(pid, signal.SIGSTOP)
    try:                                                  # a second 2-rank job: both ranks refused, none hangs
        other = spawn([*TORCHRUN, *RUN2, *data, "--out_dir", out, "--resume", "auto"], tmp_path / "other.log")
        assert other.wait(90) != 0
        assert other.output().count(f"is in use by another run (PID {workers[0]} on ") == 2, other.output()[-3000:]
    finally:
        for pid in workers.values():
            os.kill(pid, signal.SIGCONT)
    os.kill(workers[1], signal.SIGUSR1)
    assert agent.wait() != 0                              # torchrun: workers exited 75, a failure to it
    said = agent.output()
    assert "exitcode  : 75" in said, said[-3000:]
    (name, s1, _, _), = STOPPED.findall(said)
    s1 = int(s1)
    assert name == "SIGUSR1" and [r["step"] for r in rows(out / "metrics.jsonl")] == list(range(1, s1 + 1))

    agent = spawn([*TORCHRUN, *RUN2, *data, "--out_dir", out, "--resume", "auto"], tmp_path / "run2.log")
    agent.until_rows(out / "metrics.jsonl", s1 + 1)
    os.kill(agent.pid, signal.SIGTERM)
    agent.wait()
    (name, s2, _, _), = STOPPED.findall(agent.output())
    s2 = int(s2)
    assert name == "SIGTERM" and s1 < s2 <= 6, agent.output()[-3000:]

    code, said, ref = finished(background, "two")             # rows 1-6: the 2-rank reference's own
    assert "router identical on all 2 ranks" in said, said[-3000:]
    want = rows(ref / "metrics.jsonl")
    assert strip(rows(out / "metrics.jsonl")) == strip(want[:s2])
    assert rows(out / "router.jsonl") == [r for r in rows(ref / "router.jsonl") if r["step"] <= s2]

    shutil.copytree(out, tmp_path / "copy")               # another world size: refused unless forced (in this process:
    code, _ = here(monkeypatch, capsys, [*RUN2, *data, "--out_dir", tmp_path / "copy", "--resume", "auto"])   # no model loads)
    assert re.fullmatch(rf"lrpo\.py: \S+/ckpt-{s2} was written by 2 ranks, this run has 1: pass --resume_force .*", str(code)), code


def test_a_two_rank_checkpoint_goes_on_in_one_process_with_resume_force(background):
    """The 2-rank reference's ckpt-6, continued in one process with --resume_force: it warns what is
    not exact, trains, logs step 7 and checkpoints it as a 1-rank run."""
    code, said, out = finished(background, "two")
    assert "router identical on all 2 ranks" in said, said[-3000:]           # the 2-rank part ended well
    assert f"warning: {out}/ckpt-6 was written by 2 ranks, resuming on 1" in said, said[-3000:]
    got = rows(out / "metrics.jsonl")
    assert [r["step"] for r in got][:7] == list(range(1, 8))
    assert 0 <= got[6]["reward"] <= 1 and got[6]["response_len"] > 0 and got[6]["updates"]["tokens"][0] > 0
    state = torch.load(out / "ckpt-7" / "trainer_state.pt", weights_only=True)
    assert state["world"] == 1 and state["step"] == 7 and state["router"]["step"] == 7
    assert torch.load(out / "ckpt-6" / "trainer_state.pt", weights_only=True)["world"] == 2


# --------------------------------------------------------------------------------------- blow-ups

def test_a_blow_up_stops_with_one_line_naming_the_step_and_no_non_finite_checkpoint(background):
    """The continuation at --lr 1e3 with a checkpoint every step: its huge weights soon make the loss
    non-finite; update.py stops that step before the optimizer touches the weights (one line naming
    it, no traceback) and every checkpoint written is finite."""
    code, said, out = finished(background, "two")
    assert code == 1 and "Traceback" not in said, said[-3000:]
    step = int(re.fullmatch(r"lrpo\.py: step (\d+): the (loss|gradient norm) is nan; stopped before the optimizer "
                            r"step \(the newest checkpoint is intact\)", last_line(said)).group(1))
    assert step > 7 and [r["step"] for r in rows(out / "metrics.jsonl")] == list(range(1, step))
    ckpts = sorted(int(p.name[5:]) for p in out.glob("ckpt-*"))
    assert ckpts == list(range(6, step))
    from safetensors.torch import load_file
    for s in ckpts:
        state = torch.load(out / f"ckpt-{s}" / "trainer_state.pt", weights_only=True)
        moments = [t for p in state["optimizer"]["state"].values() for t in p.values()]
        assert all(bool(torch.isfinite(t).all()) for t in [*load_file(out / f"ckpt-{s}" / "model.safetensors").values(), *moments])


def test_a_warm_start_with_no_example_that_fits_is_one_line(tmp_path, data, fresh, monkeypatch, capsys):
    """Prompts that all exceed --max_prompt_len: lrpo.py ends with sft.py's one line, not a traceback
    (in this process; the handlers it installs for SIGTERM and SIGUSR1 are put back)."""
    long = "Der Rhein fließt von den Alpen bis zur Nordsee und prägt seit Jahrhunderten Handel und Kultur. " * 30
    (tmp_path / "sft.jsonl").write_text(json.dumps({"id": "s1", "question": long, "lang": "de", "answer": "Ja."}) + "\n")
    (tmp_path / "par.jsonl").write_text("".join(json.dumps({"id": "p1", "lang": l, "text": long}) + "\n" for l in ("de", "nl")))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        code, said = here(monkeypatch, capsys, [*RUN, *data[:2], "--sft_file", tmp_path / "sft.jsonl", "--parallel_file",
                                                tmp_path / "par.jsonl", "--calibration", "none", "--out_dir", fresh(tmp_path / "o")])
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert code == "lrpo.py: sft: no example fits --max_prompt_len", (code, said[-2000:])
    assert not (tmp_path / "o" / "sft").exists()


# --------------------------------------------------------------------------------------- resume integrity

def test_a_resume_checks_its_warm_start_and_its_end_before_any_model_loads(tmp_path, data, background, monkeypatch, capsys):
    """From copies of the finished 1-rank reference (sft/, ckpt-6): OUT/sft deleted (it is the KL
    reference) or its safetensors cut in half are one-line errors; --max_steps already reached is
    one line and exit 0. Each stops before any model loads, so they run in this process."""
    import checkpoint
    monkeypatch.setattr(checkpoint, "load_policy", lambda *a, **k: pytest.fail("a model loaded"))
    code, said, ref = finished(background, "one")
    assert code == 0, said[-3000:]
    for name in ("deleted", "truncated", "done"):
        shutil.copytree(ref, tmp_path / name)
    shutil.rmtree(tmp_path / "deleted" / "sft")
    weights = tmp_path / "truncated" / "sft" / "model.safetensors"
    os.truncate(weights, os.path.getsize(weights) // 2)
    codes, said = {}, {}
    for name, steps in (("deleted", "8"), ("truncated", "8"), ("done", "6")):
        codes[name], said[name] = here(monkeypatch, capsys, [*RUN, *data, "--out_dir", tmp_path / name,
                                                             "--max_steps", steps, "--resume", "auto"])
        assert "\n" not in str(codes[name]), codes[name]
    assert codes["deleted"] == (
        f"lrpo.py: {tmp_path}/deleted/sft is missing: the run warm-started (--sft_steps 4) and its warm start "
        "is the KL reference; restore it, or resume with --beta 0"), codes["deleted"]
    assert re.fullmatch(
        rf"lrpo\.py: the warm start cannot be read: {re.escape(str(weights))}: \d+ bytes, its header needs \d+ "
        r"\(truncated\); restore it from a copy \(it is this run's KL reference\)", str(codes["truncated"])), codes["truncated"]
    assert codes["done"] == 0 and last_line(said["done"]) == (
        f"lrpo.py: {tmp_path}/done/ckpt-6 is at step 6, the run ends at step 6: nothing to train"), said["done"][-2000:]


# --------------------------------------------------------------------------------------- the lock itself

def test_the_lock_dies_with_its_holder_kill_9_included(tmp_path):
    """A holder killed with SIGKILL leaves its lock file (with its PID) but no lock: the next run
    takes it. While it lived, an exclusive and a shared taker were both refused, naming it."""
    from runlock import RunLocked, lock_dir
    holder = subprocess.Popen([PY, "-c", "import sys, time, runlock; runlock.lock_dir(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(60)", str(tmp_path)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        for exclusive in (True, False):
            with pytest.raises(RunLocked, match=rf"^{re.escape(str(tmp_path))} is in use by another run \(PID {holder.pid} on "):
                lock_dir(str(tmp_path), exclusive=exclusive)
    finally:
        holder.kill()
        holder.wait()
    assert open(tmp_path / ".lock").read().split()[0] == str(holder.pid)        # stale file, no lock
    shared = lock_dir(str(tmp_path), exclusive=False)
    assert shared is not None
    shared.close()
    mine = lock_dir(str(tmp_path), exclusive=True)
    assert open(tmp_path / ".lock").read().split()[0] == str(os.getpid())
    mine.close()                                                                  # let go (at exit it is removed)
    assert lock_dir(str(tmp_path / "none"), exclusive=False) is None             # sft.py never creates one
