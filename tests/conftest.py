"""
Shared test setup.

1. TRITON_INTERPRET=1 is set here, before any test module imports a kernel: Triton reads it when a
   @triton.jit function is defined, so setting it later has no effect.
2. Tiny models are built the real way (data/tiny.py): a byte-level BPE trained on multilingual text,
   a Qwen2 policy and a ModernBERT encoder written with save_pretrained and loaded back with
   from_pretrained. Built once per session.
3. Runs of lrpo.py that need no more than a few batches take `small_data` (16 training items, 3
   parallel items) and `fresh(path)` (an out_dir holding the session's tiny models), so they tokenize,
   calibrate and build nothing they do not test.
4. `torchrun(script, *args, nproc=2, timeout=...)` runs a script under
   `torchrun --standalone` with gloo and a hard timeout, so a distributed hang fails the test
   instead of stalling CI.
"""
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """{"tokenizer", "policy", "encoder"}: directories of the tiny models, built once."""
    from data.tiny import build_tiny
    return build_tiny(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dirs):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_dirs["tokenizer"])


@pytest.fixture(scope="session")
def tiny_policy_dir(tiny_dirs):
    return tiny_dirs["policy"]


@pytest.fixture(scope="session")
def tiny_encoder_dir(tiny_dirs):
    return tiny_dirs["encoder"]


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> list[str]:
    """lrpo.py flags: --train_file (the sample's first 16 items) and --parallel_file (3 items)."""
    d = tmp_path_factory.mktemp("small_data")
    train = open(os.path.join(ROOT, "data", "sample", "train.jsonl"), encoding="utf-8").readlines()[:16]
    (d / "train.jsonl").write_text("".join(train), "utf-8")
    lines = open(os.path.join(ROOT, "data", "sample", "parallel.jsonl"), encoding="utf-8").readlines()
    (d / "parallel.jsonl").write_text("".join(l for l in lines if json.loads(l)["id"] in ("p001", "p002", "p003")), "utf-8")
    return ["--train_file", str(d / "train.jsonl"), "--parallel_file", str(d / "parallel.jsonl")]


@pytest.fixture(scope="session")
def fresh(tiny_dirs):
    """fresh(path) -> path: an out_dir holding only tiny/ (the session's tiny policy and encoder),
    which lrpo.py --tiny uses instead of building its own."""
    def make(path):
        for name in ("policy", "encoder"):
            shutil.copytree(tiny_dirs[name], os.path.join(path, "tiny", name))
        return path
    return make


def run_torchrun(script: str, *args: str, nproc: int = 2, timeout: float = 240,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node=nproc script args` from the repo root; fail on
    timeout or non-zero exit, showing the output."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", script, *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **(env or {})}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun timed out after {timeout}s (a distributed hang?)\n"
                    f"{(e.stdout or b'')[-4000:]}\n{(e.stderr or b'')[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"torchrun exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\n"
                    f"STDERR:\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture
def torchrun():
    return run_torchrun
