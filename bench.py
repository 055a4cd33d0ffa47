"""
Benchmarks for LRPO, one subcommand each. Figures are always ratios against a baseline measured in
the same run, on the same machine; nothing here is asserted by the tests.

    python bench.py logprobs      # grpo.token_logprobs vs naive log_softmax().gather(), CPU
    python bench.py reward        # compute_rewards throughput: encoder vs language ID, tiny encoder
    python bench.py kernel        # fused Triton GRPO loss vs eager / chunked / Liger (GPU; CPU: torch paths)
    python bench.py rollout       # 2-rank FSDP2 generation: inside grpo.unsharded vs synced_gpus=True
    python bench.py step          # time split of one lrpo.py --tiny step (generate / reward / train)
"""
import argparse
import json
import os
import platform
import sys
import time

import torch


def machine() -> str:
    """One line naming the machine, printed above every table."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def table(rows: list[dict]) -> str:
    """A markdown table from a list of dicts sharing keys."""
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time of fn() in seconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def peak_rss_in_child(fn, *args) -> float:
    """Run fn(queue, *args) in a fresh process and return what it puts on the queue: its peak
    resident memory in MiB above the level after its own set-up (see reset_peak_rss)."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(q, *args))
    p.start()
    extra = q.get()
    p.join()
    return extra


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024.0                                  # kB -> MiB


def reset_peak_rss() -> float:
    """Reset this process's resident-memory high-water mark (Linux); return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def peak_rss_since_reset() -> float:
    return _status_mib("VmHWM")


def _logprobs_inputs(R, V, grad=False):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(R, 1, V, generator=g).requires_grad_(grad)       # (R, 1, V) fp32
    targets = torch.randint(0, V, (R, 1), generator=g)
    return logits, targets


def _naive_logprobs(logits, targets):
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[..., None]).squeeze(-1)


def _logprobs_child(q, method, R, V, backward):
    from grpo import token_logprobs
    fn = token_logprobs if method == "chunked" else _naive_logprobs
    logits, targets = _logprobs_inputs(R, V, grad=backward)
    base = reset_peak_rss()
    logp = fn(logits, targets)
    if backward:
        logp.sum().backward()
    q.put(peak_rss_since_reset() - base)


def bench_logprobs(R: int = 8192, V: int = 32768):
    """grpo.token_logprobs (row chunks, fp32 per chunk) vs log_softmax().gather() on (R, V) fp32."""
    from grpo import token_logprobs
    logits, targets = _logprobs_inputs(R, V, grad=True)
    rows = []
    for backward in (False, True):
        def run(fn):
            if not backward:
                with torch.no_grad():
                    return fn(logits, targets)
            fn(logits, targets).sum().backward()
        t_naive = median_time(lambda: run(_naive_logprobs), repeat=3 + 2 * (not backward))
        t_chunk = median_time(lambda: run(token_logprobs), repeat=3 + 2 * (not backward))
        m_naive, m_chunk = (peak_rss_in_child(_logprobs_child, m, R, V, backward) for m in ("naive", "chunked"))
        rows.append({"pass": "forward+backward" if backward else "forward",
                     "naive ms": f"{t_naive * 1e3:.0f}", "chunked ms": f"{t_chunk * 1e3:.0f}",
                     "time ratio": f"{t_chunk / t_naive:.2f}x", "naive peak extra MiB": f"{m_naive:.0f}",
                     "chunked peak extra MiB": f"{m_chunk:.0f}", "memory ratio": f"{m_chunk / m_naive:.3f}x"})
    print(f"(B*T, V) = ({R}, {V}) fp32, logits {R * V * 4 / 2**20:.0f} MiB; {torch.get_num_threads()} threads; "
          "peak extra = resident-memory high-water mark above the inputs, each in a fresh process")
    print(table(rows))
    print("forward+backward includes the logits' own gradient (one logits-sized tensor) in both columns.")


def _reward_inputs(n: int, K: int = 8, chars: int = 200):
    """n rollouts in groups of K: each group shares one item's reference; each rollout is that
    item in a random router language, repeated and cut to `chars` characters."""
    import random
    from calibrate import load_parallel
    from reward import LANGUAGES
    records = load_parallel("data/sample/parallel.jsonl", LANGUAGES)
    items: dict[str, dict[str, str]] = {}
    for r in records:
        items.setdefault(r["id"], {})[r["lang"]] = r["text"]
    ids, rng = sorted(items), random.Random(0)
    responses, refs, ref_langs, targets = [], [], [], []
    for g in range(n // K):
        texts = items[ids[g % len(ids)]]
        ref_lang = rng.choice(sorted(texts))
        for _ in range(K):
            lang = rng.choice(sorted(texts))
            responses.append(((texts[lang] + " ") * (chars // len(texts[lang]) + 1))[:chars])
            refs.append(texts[ref_lang])
            ref_langs.append(ref_lang)
            targets.append(lang)
    return records, responses, refs, ref_langs, targets


def bench_reward(n: int = 512):
    """compute_rewards throughput on CPU with the tiny encoder, split into its stages."""
    import tempfile
    from calibrate import build_table, calibrate
    from data.tiny import build_tiny
    from reward import Encoder, compute_rewards, detect_language
    records, responses, refs, ref_langs, targets = _reward_inputs(n)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder(build_tiny(tmp)["encoder"])
    calib = build_table(records, encoder)
    sim = encoder.similarity(responses, refs)
    stages = {
        "encoder (similarity)": lambda: encoder.similarity(responses, refs),
        "language ID (gate)": lambda: [detect_language(y) for y in responses],
        "calibration (mean)": lambda: calibrate(sim, ref_langs, targets, calib, "mean"),
        "compute_rewards (all)": lambda: compute_rewards(responses, refs, ref_langs, targets,
                                                         encoder, calib, "mean"),
    }
    for fn in stages.values():                                      # warm-up
        fn()
    runs = {name: [] for name in stages}
    for _ in range(5):        # interleaved rounds: load from other processes hits every stage alike
        for name, fn in stages.items():
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
    times = {name: sorted(ts)[len(ts) // 2] for name, ts in runs.items()}
    total = times["compute_rewards (all)"]
    rows = [{"stage": name, f"ms per {n} rollouts": f"{t * 1e3:.1f}", "rollouts/s": f"{n / t:,.0f}",
             "share of compute_rewards": f"{t / total:.0%}"} for name, t in times.items()]
    chars = sum(map(len, responses)) / len(responses)
    tokens = sorted(map(len, encoder.tokenizer(responses)["input_ids"]))
    print(f"{n} responses of {chars:.0f} characters ({tokens[n // 2]} tokens median, {tokens[-1]} max), "
          f"groups of 8 sharing a reference; tiny ModernBERT "
          f"(hidden {encoder.dim}, {encoder.model.config.num_hidden_layers} layers), "
          f"{torch.get_num_threads()} torch threads; median of 5 interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table(rows))


def bench_kernel():
    """Fused Triton GRPO loss vs eager PyTorch, grpo.py's chunked path and Liger-Kernel
    (kernels/bench.py; the kernel timing needs CUDA)."""
    from kernels.bench import bench_kernel as run
    run()


def _rollout_worker(policy_dir: str, prompts: int = 16, new_tokens: int = 32, repeat: int = 3):
    """Under torchrun: generation tokens/s of a 2-rank FSDP2 tiny policy, unsharded vs synced_gpus."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from grpo import shard_model, unsharded
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = AutoTokenizer.from_pretrained(policy_dir)
    model = shard_model(AutoModelForCausalLM.from_pretrained(policy_dir))
    texts = [json.loads(l)["question"] for l in open("data/sample/train.jsonl", encoding="utf-8")]
    texts = texts[rank * prompts:(rank + 1) * prompts]
    chat = [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
            for t in texts]
    enc = tok(chat, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = dict(do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens, top_k=0,
              pad_token_id=tok.pad_token_id)

    def plain():
        model.generate(**enc, synced_gpus=True, **kw)

    def inside():
        with unsharded(model):
            model.generate(**enc, **kw)

    times = {}
    for name, fn in (("plain FSDP2 generate(synced_gpus=True)", plain), ("inside grpo.unsharded", inside)):
        dist.barrier()
        times[name] = median_time(fn, repeat)
    tokens = world * prompts * new_tokens
    if rank == 0:
        base = times["plain FSDP2 generate(synced_gpus=True)"]
        print(f"tiny Qwen2 policy, {world} ranks (gloo), {prompts} prompts x {new_tokens} new tokens per rank, "
              f"median of {repeat}")
        print(table([{"generation": k, "s per batch": f"{t:.2f}", "tokens/s (all ranks)": f"{tokens / t:.0f}",
                      "speed-up": f"{base / t:.2f}x"} for k, t in times.items()]))
    dist.barrier()
    dist.destroy_process_group()


def bench_rollout():
    """Rollout tokens/s under 2-rank FSDP2: generation inside `unsharded` vs plain synced_gpus."""
    import subprocess
    import tempfile
    if "RANK" in os.environ:                                  # a torchrun worker
        return _rollout_worker(os.environ["BENCH_POLICY"])
    from data.tiny import build_tiny
    with tempfile.TemporaryDirectory() as d:
        policy = build_tiny(d)["policy"]
        env = {**os.environ, "BENCH_POLICY": policy, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        __file__, "rollout"], env=env, check=True)


def bench_step(steps: int = 10):
    """Where one --tiny training step spends its time, from the metrics of a 2-rank run."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "lrpo.py",
               "--tiny", "--sft_steps", "0", "--max_steps", str(steps), "--out_dir", d]
        subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)
        rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))][1:]   # step 1 warms up
    med = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in ("t_generate", "t_reward", "t_train")}
    total = sum(med.values())
    print(f"lrpo.py --tiny under torchrun --nproc_per_node=2: median over steps 2..{steps} "
          f"(8 prompts x K=8 rollouts, 24 new tokens, rank 0's clock)")
    print(table([{"stage": k[2:], "s per step": f"{v:.3f}", "share": f"{100 * v / total:.0f}%"} for k, v in med.items()]
                + [{"stage": "total", "s per step": f"{total:.3f}", "share": "100%"}]))


# --- dispatch: each subcommand is a function above this line, registered here ---
SUBCOMMANDS = {
    "rollout": bench_rollout,
    "step": bench_step,
    "kernel": bench_kernel,
    "reward": bench_reward,
    "logprobs": bench_logprobs,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=sorted(SUBCOMMANDS), help="which benchmark to run")
    args = parser.parse_args()
    if "RANK" not in os.environ:                              # not a torchrun worker of `rollout`
        print(f"# bench {args.what} on {machine()}")
    SUBCOMMANDS[args.what]()
