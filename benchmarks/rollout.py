"""
`python bench.py rollout`: rollout generation tokens/s, two tables.

    python bench.py rollout                # both tables
    python bench.py rollout --no_fsdp      # the first table only

1. `bench_rollout()`: sampler.py's sampler ("ours": static KV cache, pre-built masks; CUDA graphs on
   a GPU) against transformers' generate() ("hf"), one process, OMP_NUM_THREADS as given, on the
   tiny policy of `lrpo.py --tiny` and on a ~40M-parameter Qwen2 (hidden 512, 8 layers, vocabulary
   32,000, random weights, built from a config). Both decode exactly the same number of steps: stop
   ids are switched off (stop_ids=[]), so no row ends early and no min_new_tokens processor runs.
   Rounds alternate the two samplers, so load from other processes hits both alike. Prefill is the
   same arithmetic in both: decoding alone is reported beside the whole call.
2. Under 2-rank FSDP2 (gloo, tiny policy): generation inside grpo.unsharded (generate(), and ours)
   against plain FSDP2 generate(synced_gpus=True), tokens/s for all ranks.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from benchmarks.timing import median_time, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prompts(tok, n: int, offset: int = 0) -> list[str]:
    """n chat prompts from the sample training questions (as lrpo.py builds them, without a tag)."""
    path = os.path.join(ROOT, "data/sample/train.jsonl")
    texts = [json.loads(l)["question"] for l in open(path, encoding="utf-8")][offset:offset + n]
    return [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
            for t in texts]


def _qwen2_40m(tokenizer_dir: str, out_dir: str) -> str:
    """A Qwen2 of about 40M parameters (hidden 512, 8 layers, vocabulary 32,000), random weights."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(vocab_size=32000, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def _compare(model, tok, prompts, new_tokens: int, rounds: int) -> dict:
    """Median seconds per generate_rollouts call, {(sampler, new tokens): s}, over alternating
    rounds; the 1-token call (tokenize, prefill, one sample) separates decoding from prefill."""
    from sampler import generate_rollouts

    def call(s, n):
        return generate_rollouts(model, tok, prompts, n, batch_size=len(prompts), sampler=s, stop_ids=[])

    out = call("ours", new_tokens)                                  # also the warm-up
    assert out[0].shape[1] - out[2] == new_tokens                   # every row decoded every step
    keys = [(s, n) for s in ("hf", "ours") for n in (1, new_tokens)]
    times = {k: [] for k in keys}
    call("hf", new_tokens)
    for _ in range(rounds):
        for k in keys:
            t0 = time.perf_counter()
            call(*k)
            times[k].append(time.perf_counter() - t0)
    return {k: sorted(ts)[len(ts) // 2] for k, ts in times.items()}


def bench_rollout(n: int = 64, new_tokens: int = 32, rounds: int = 5):
    """Table 1: ours vs generate(), tokens/s, on the tiny policy and the ~40M Qwen2."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from data.tiny import build_tiny
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as d:
        sample = os.path.join(ROOT, "data/sample")
        texts = [json.loads(l)[k] for l in open(f"{sample}/train.jsonl", encoding="utf-8")
                 for k in ("question", "reference")]
        texts += [json.loads(l)["text"] for l in open(f"{sample}/parallel.jsonl", encoding="utf-8")]
        paths = build_tiny(d, texts)                                # as lrpo.py --tiny builds it
        policies = {"tiny (lrpo.py --tiny)": paths["policy"],
                    "Qwen2 ~40M": _qwen2_40m(paths["tokenizer"], os.path.join(d, "q40m"))}
        for name, path in policies.items():
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path).to(device)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            prompts = _prompts(tok, n)
            P = tok(prompts, padding=True, return_tensors="pt", add_special_tokens=False)["input_ids"].shape[1]
            t = _compare(model, tok, prompts, new_tokens, rounds if params < 10 else max(rounds - 2, 1))
            call = {s: t[s, new_tokens] for s in ("hf", "ours")}
            decode = {s: t[s, new_tokens] - t[s, 1] for s in ("hf", "ours")}
            for s in ("hf", "ours"):
                rows.append({"policy": f"{name}, {params:.1f}M params", "sampler": s,
                             "s per call": f"{call[s]:.3f}", "tokens/s": f"{n * new_tokens / call[s]:,.0f}",
                             "vs generate()": f"{call['hf'] / call[s]:.2f}x",
                             "decode tokens/s": f"{n * (new_tokens - 1) / decode[s]:,.0f}",
                             "decode vs generate()": f"{decode['hf'] / decode[s]:.2f}x"})
    print(f"{n} sequences x {new_tokens} new tokens in one call, prompts padded to {P} tokens; tokens/s: "
          f"the whole call (tokenize, prefill, decode); decode tokens/s: the call minus a 1-token call. "
          f"{device}, {torch.get_num_threads()} torch threads, median of alternating rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table(rows))


def _worker(policy_dir: str, prompts: int = 16, new_tokens: int = 32, repeat: int = 3):
    """Under torchrun: generation tokens/s of a 2-rank FSDP2 tiny policy, unsharded vs synced_gpus."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from grpo import shard_model, unsharded
    from sampler import generate_rollouts
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = AutoTokenizer.from_pretrained(policy_dir)
    model = shard_model(AutoModelForCausalLM.from_pretrained(policy_dir))
    chat = _prompts(tok, prompts, offset=rank * prompts)
    enc = tok(chat, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = dict(do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens, top_k=0,
              pad_token_id=tok.pad_token_id)

    def plain():
        model.generate(**enc, synced_gpus=True, **kw)

    def inside():
        with unsharded(model):
            model.generate(**enc, **kw)

    def ours():
        with unsharded(model):
            generate_rollouts(model, tok, chat, new_tokens, stop_ids=[])

    times = {}
    for name, fn in (("plain FSDP2 generate(synced_gpus=True)", plain), ("generate() inside grpo.unsharded", inside),
                     ("sampler.py inside grpo.unsharded", ours)):
        dist.barrier()
        times[name] = median_time(fn, repeat)
    tokens = world * prompts * new_tokens
    if rank == 0:
        base = times["plain FSDP2 generate(synced_gpus=True)"]
        print(f"\ntiny Qwen2 policy, {world} ranks (gloo), {prompts} prompts x {new_tokens} new tokens per rank, "
              f"median of {repeat}")
        print(table([{"generation": k, "s per batch": f"{t:.2f}", "tokens/s (all ranks)": f"{tokens / t:.0f}",
                      "speed-up": f"{base / t:.2f}x"} for k, t in times.items()]))
    dist.barrier()
    dist.destroy_process_group()


def main(argv=()):
    if "RANK" in os.environ:                                  # a torchrun worker
        return _worker(os.environ["BENCH_POLICY"])
    parser = argparse.ArgumentParser(prog="bench.py rollout")
    parser.add_argument("--no_fsdp", action="store_true", help="skip the 2-rank FSDP2 table")
    args = parser.parse_args(argv)
    bench_rollout()
    if args.no_fsdp:
        return
    from data.tiny import build_tiny
    with tempfile.TemporaryDirectory() as d:
        policy = build_tiny(d)["policy"]
        env = {**os.environ, "BENCH_POLICY": policy, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        os.path.join(ROOT, "bench.py"), "rollout"], env=env, check=True, cwd=ROOT)
