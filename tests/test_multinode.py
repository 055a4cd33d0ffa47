"""Several nodes (README, "Several nodes"): two torchrun agents, as two nodes of one process each,
meet at a c10d rendezvous on 127.0.0.1 and run lrpo.py into one shared --out_dir. They must train and
checkpoint exactly like one node with 2 processes (`torchrun --standalone --nproc_per_node=2`): the
same metrics (timings aside), router log, files and checkpoint weights. The parallel set is cut to 3
items (45 records): tokenising the warm start's 7,140 cross-lingual pairs on each rank would
triple the test's time, and the comparison does not need them."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT

RUN = ["lrpo.py", "--tiny", "--sft_steps", "2", "--max_steps", "2", "--save_every", "2"]
TIMING = {"tokens_per_s", "t_generate", "t_reward", "t_train", "peak_mem_gb"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows(path, drop=()) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in open(path, encoding="utf-8") if line.strip()]


def test_two_nodes_train_and_checkpoint_like_one_node_with_two_processes(tmp_path):
    nodes, single, parallel = tmp_path / "nodes", tmp_path / "standalone", tmp_path / "parallel.jsonl"
    lines = open(os.path.join(ROOT, "data", "sample", "parallel.jsonl"), encoding="utf-8").readlines()
    parallel.write_text("".join(l for l in lines if json.loads(l)["id"] in ("p001", "p002", "p003")), "utf-8")
    launches = [["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                 "--rdzv_endpoint", f"127.0.0.1:{free_port()}", "--rdzv_id", "lrpo-test"]] * 2 + \
               [["--standalone", "--nproc_per_node", "2"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    jobs = []
    for i, launch in enumerate(launches):        # all at once: one job's waits are another's work
        log = open(tmp_path / f"job{i}.log", "w+")
        out = single if "--standalone" in launch else nodes
        jobs.append((subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch, *RUN,
                                       "--parallel_file", str(parallel), "--out_dir", str(out)], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT), log))
    deadline = time.time() + 300
    try:
        for job, log in jobs:
            job.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        pytest.fail("a job did not finish in 300 s (a rendezvous or collective hang?)\n" +
                    "\n".join(open(log.name).read()[-3000:] for _, log in jobs))
    finally:
        for job, log in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
            log.close()
    for i, (job, log) in enumerate(jobs):
        assert job.returncode == 0, f"job {i} exited {job.returncode}:\n{open(log.name).read()[-6000:]}"
    assert "router identical on all 2 ranks" in "".join(open(log.name).read() for _, log in jobs[:2])

    assert sorted(os.listdir(nodes)) == sorted(os.listdir(single)) == \
        ["calibration.json", "ckpt-2", "metrics.jsonl", "rollouts.jsonl", "router.jsonl", "sft", "tiny"]
    got, want = rows(nodes / "metrics.jsonl", TIMING), rows(single / "metrics.jsonl", TIMING)
    assert [r["step"] for r in got] == [1, 2] and got == want
    assert rows(nodes / "router.jsonl") == rows(single / "router.jsonl")
    from safetensors.torch import load_file
    a, b = (load_file(d / "ckpt-2" / "model.safetensors") for d in (nodes, single))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(nodes / "ckpt-2" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 2 and state["world"] == 2 and len(state["rng"]) == 2
