"""
`python bench.py gpu`: every GPU measurement of this project in one command, within 10 minutes on
one H100/H200 with torch, triton and transformers preinstalled (no package registry needed). It
prints one block, headed by the GPU's name, the versions and the date, to paste into BENCHMARKS.md.

    python bench.py gpu                 # on a CUDA machine
    python bench.py gpu --dry_run       # the parts and their commands, run nowhere (any machine)

Parts, in this order, each a subprocess with its own time limit:
1. kernel tests compiled: `TRITON_INTERPRET=0 python -m pytest -q tests/test_kernel.py` (an explicit
   0 wins over the 1 that tests/conftest.py sets only when the variable is unset);
2. `bench.py kernel`: (8192, 32768) and (16384, 151936) bf16, Liger-Kernel as peer when importable;
3. the tiny demo on CUDA: `lrpo.py --tiny` under torchrun on one GPU, 50 warm-start and 10 RL steps;
4. samplers: sampler.py's ("ours") and transformers' generate() ("hf") on the random-weight
   Qwen2.5-1.5B shape, 256 sequences (32 prompts x K = 8) of 512 prompt tokens, tokens/s each;
5. `bench.py step --arch qwen2.5-1.5b --steps 3` on one GPU (the paper's per-GPU shapes).

Decisions:
1. Without CUDA it refuses with one line and exit status 2 (nothing here means anything on a CPU).
2. A part that fails or runs out of time is reported with its output's tail and the next part
   runs. Each subprocess gets its own session, so a timeout kills it with everything it started
   (torchrun's workers too) and frees the GPU for the next part.
3. Limits: each part's own, and all parts together within --budget seconds (600): a part gets at
   most what is left; the longest part (step) comes last.
4. Parts 3-5 see only the first GPU (CUDA_VISIBLE_DEVICES). Part 5 runs --micro_prompts 1, the
   smallest micro-batch, so a first run cannot fail on memory; it prints the memory plan's peak
   beside the measured one, which checks the plan before it is trusted with larger micro-batches.
5. The samplers decode the same number of tokens: no stop ids (`stop_ids=[]`), so every row runs
   to `--new_tokens`; a short call first (CUDA initialisation, cuBLAS handles), then one timed
   call over all 256 sequences in one batch. sampler.py is imported lazily: without it the part says so.
"""
import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable


def parts(out_dir: str) -> list[dict]:
    """name, command, extra environment, time limit (s), lines of output to keep (None: all)."""
    compiled = {"TRITON_INTERPRET": "0"}                          # every part runs the compiled kernel
    one_gpu = {**compiled, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]}
    return [
        dict(name="kernel tests (compiled)", cmd=[PY, "-m", "pytest", "-q", "tests/test_kernel.py"],
             env=compiled, limit=150, keep=5),
        dict(name="bench.py kernel", cmd=[PY, "bench.py", "kernel"], env=compiled, limit=150, keep=None),
        dict(name="tiny demo (lrpo.py --tiny on CUDA, 50 SFT + 10 RL steps)",
             cmd=[PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "lrpo.py", "--tiny",
                  "--sft_steps", "50", "--max_steps", "10", "--out_dir", os.path.join(out_dir, "tiny")],
             env=one_gpu, limit=150, keep=14),
        dict(name="samplers (ours vs hf) on the Qwen2.5-1.5B shape", cmd=[PY, "bench.py", "gpu", "--part", "samplers"],
             env=one_gpu, limit=180, keep=None),
        dict(name="bench.py step --arch qwen2.5-1.5b, 3 steps, 1 GPU",
             cmd=[PY, "bench.py", "step", "--arch", "qwen2.5-1.5b", "--steps", "3", "--micro_prompts", "1"],
             env=one_gpu, limit=420, keep=None),
    ]


def run_part(part: dict, limit: float) -> tuple[str, str, float]:
    """(status, output tail, seconds) of one part (decision 2)."""
    t0 = time.time()
    proc = subprocess.Popen(part["cmd"], cwd=ROOT, env={**os.environ, **part["env"]}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)                    # the part's whole session (decision 2)
        out, _ = proc.communicate()
        status = f"TIMED OUT after {limit:.0f} s"
    lines = [l for l in out.splitlines() if l.strip() and "\r" not in l]     # no progress bars
    keep = part["keep"] if status == "ok" else 40
    return status, "\n".join(lines[-keep:] if keep else lines), time.time() - t0


def header() -> str:
    import torch
    import transformers
    try:
        import triton
        tv = triton.__version__
    except ImportError:
        tv = "not installed"
    try:
        import liger_kernel  # noqa: F401
        from importlib.metadata import version
        liger = f", liger-kernel {version('liger-kernel')}"
    except Exception:
        liger = ", no liger-kernel"
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"## GPU run: {gpu} ({torch.cuda.device_count()} visible), torch {torch.__version__}, triton {tv}, "
            f"transformers {transformers.__version__}{liger}, {datetime.date.today().isoformat()}")


def samplers_part(new_tokens: int = 256, n: int = 256, prompt_len: int = 512, layers: int | None = None,
                  device: str = "cuda") -> None:
    """Decision 5: tokens/s of both samplers on the random-weight Qwen2.5-1.5B (bf16, one GPU).
    `layers` and device="cpu": the same code on a cut model, for the tests."""
    import inspect

    import torch
    from transformers import AutoModelForCausalLM
    from benchmarks.memory import ARCHS, make_config
    from benchmarks.step import synthetic_questions, word_tokenizer
    from benchmarks.timing import table
    from data.prompts import build_prompt
    try:
        from sampler import generate_rollouts
    except ImportError as e:
        print(f"samplers: skipped, sampler.py is not importable ({e})")
        return
    a, cfg = ARCHS["qwen2.5-1.5b"], make_config("qwen2.5-1.5b", layers)
    cuda = device == "cuda"
    with tempfile.TemporaryDirectory() as d:
        tok = word_tokenizer(d, cfg.vocab_size, a["specials"], a["eos"], a["pad"], a["template"])
    tok.padding_side = "left"
    prompts = [build_prompt(tok, q, "de") for q in synthetic_questions(tok, n, prompt_len)]
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).eval()
    kw = {"stop_ids": []} if "stop_ids" in inspect.signature(generate_rollouts).parameters else {}
    rows = []
    for sampler in ("hf", "ours"):
        generate_rollouts(model, tok, prompts[:8], 8, 1.0, 1.0, 8, sampler=sampler, **kw)   # warm-up
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        ids, am, P = generate_rollouts(model, tok, prompts, new_tokens, 1.0, 1.0, n, sampler=sampler, **kw)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tokens = int(am[:, P:].sum())
        rows.append({"sampler": sampler, "s": f"{dt:.2f}", "response tokens": tokens, "tokens/s": f"{tokens / dt:,.0f}",
                     "peak GB": f"{torch.cuda.max_memory_allocated() / 1e9:.1f}" if cuda else "n/a"})
    rows[1]["speed-up"], rows[0]["speed-up"] = f"{float(rows[0]['s']) / float(rows[1]['s']):.2f}x", "1.00x"
    print(f"random-weight Qwen2.5-1.5B shape ({cfg.num_hidden_layers} layers), bf16 on {device}, {n} sequences in "
          f"one batch, P = {P} prompt tokens, "
          f"{new_tokens} new tokens each (no stop ids: {bool(kw)}), temperature 1, one call each after a warm-up")
    print(table(rows))


def main(argv=()):
    ap = argparse.ArgumentParser(prog="bench.py gpu", description="all GPU measurements in one command")
    ap.add_argument("--dry_run", action="store_true", help="print the parts and commands, run nothing")
    ap.add_argument("--budget", type=float, default=600, help="seconds for all parts together")
    ap.add_argument("--part", choices=["samplers"], help=argparse.SUPPRESS)          # a subprocess of part 4
    a = ap.parse_args(list(argv))
    import torch
    if a.part == "samplers":
        return samplers_part()
    if not a.dry_run and not torch.cuda.is_available():
        print("bench.py gpu needs a CUDA GPU (none found); `--dry_run` lists what it would run", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory() as d:
        todo = parts(d)
        print(header())
        if a.dry_run:
            for i, p in enumerate(todo, 1):
                env = " ".join(f"{k}={v}" for k, v in p["env"].items())
                cmd = ["python" if c == PY else c.replace(d, "$TMP") for c in p["cmd"]]
                print(f"{i}. {p['name']} (limit {p['limit']} s): {env + ' ' if env else ''}{' '.join(cmd)}")
            return
        start = time.time()
        for i, p in enumerate(todo, 1):
            left = a.budget - (time.time() - start)
            if left < 30:
                print(f"\n### {i}. {p['name']}: SKIPPED, the {a.budget:.0f} s budget is spent")
                continue
            status, out, dt = run_part(p, min(p["limit"], left))
            cmd = " ".join(["python"] + p["cmd"][1:]).replace(d, "$TMP")
            print(f"\n### {i}. {p['name']}: {status}, {dt:.0f} s\n```\n$ {cmd}\n{out}\n```", flush=True)
        print(f"\nall parts: {time.time() - start:.0f} s")
