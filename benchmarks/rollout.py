"""
`python bench.py rollout`: rollout generation under 2-rank FSDP2 (gloo, tiny policy), generation
inside grpo.unsharded against plain generate(synced_gpus=True), tokens/s for all ranks.
"""
import json
import os
import subprocess
import sys

from benchmarks.timing import median_time, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(policy_dir: str, prompts: int = 16, new_tokens: int = 32, repeat: int = 3):
    """Under torchrun: generation tokens/s of a 2-rank FSDP2 tiny policy, unsharded vs synced_gpus."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from grpo import shard_model, unsharded
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = AutoTokenizer.from_pretrained(policy_dir)
    model = shard_model(AutoModelForCausalLM.from_pretrained(policy_dir))
    texts = [json.loads(l)["question"] for l in open(os.path.join(ROOT, "data/sample/train.jsonl"), encoding="utf-8")]
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


def main(argv=()):
    import tempfile
    if "RANK" in os.environ:                                  # a torchrun worker
        return _worker(os.environ["BENCH_POLICY"])
    from data.tiny import build_tiny
    with tempfile.TemporaryDirectory() as d:
        policy = build_tiny(d)["policy"]
        env = {**os.environ, "BENCH_POLICY": policy, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        os.path.join(ROOT, "bench.py"), "rollout"], env=env, check=True, cwd=ROOT)
