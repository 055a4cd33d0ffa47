"""
Run by tests/test_sampler.py as `torchrun --standalone --nproc_per_node=2 tests/dist_sampler.py POLICY_DIR`.

1. On a sharded FSDP2 tiny Qwen2, generate_rollouts outside grpo.unsharded is refused before any
   collective; inside it, greedy decoding gives the tokens of the same model in one process.
2. Both samplers, inside `unsharded`, with the ranks stopping at different lengths (4 new tokens on
   rank 0, 12 on rank 1, different prompts) finish; then a sharded GRPO step trains (parameters
   resharded afterwards), and generation after the optimizer step reads the updated weights: its
   greedy tokens are those of the full updated state dict loaded into a plain model (rank 0).
Any failure raises, so torchrun exits non-zero.
"""
import sys

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer

from grpo import (full_state_dict, grpo_loss, response_logits, shard_model, token_logprobs,
                  unsharded)
from sampler import generate_rollouts

QUESTIONS = ["Hi", "Bonjour tout le monde, ça va ?", "今天天气很好。", "Das Wetter ist schön."]


def load(policy_dir):
    """The tiny policy with noisy weight matrices, so greedy decoding gives varied tokens."""
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model


def main(policy_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    tok = AutoTokenizer.from_pretrained(policy_dir)
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                       add_generation_prompt=True) for q in QUESTIONS[rank::world]]
    n = 4 + 8 * rank                                                # ranks stop at different lengths
    want = generate_rollouts(load(policy_dir), tok, prompts, n, greedy=True)[0]   # one process

    model = shard_model(load(policy_dir))
    try:
        generate_rollouts(model, tok, prompts, n)
        raise AssertionError("generation on sharded parameters was not refused")
    except RuntimeError as e:
        assert "grpo.unsharded" in str(e), e
    with unsharded(model):
        got = generate_rollouts(model, tok, prompts, n, greedy=True)[0]
        sampled = {s: generate_rollouts(model, tok, prompts, n, sampler=s) for s in ("ours", "hf")}
    assert torch.equal(got, want), (got, want)
    print(f"rank {rank}: FSDP2 greedy matches one process ({n} new tokens)", flush=True)

    # one sharded GRPO step on this rank's rollouts
    ids, am, P = sampled["ours"]
    R = ids.shape[1] - P
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    logp = token_logprobs(response_logits(model, ids, am, R), ids[:, P:])
    A = torch.linspace(-1.0, 1.0, len(prompts))
    loss, _ = grpo_loss(logp, None, None, A, am[:, P:], beta=0.0)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    local = next(model.parameters()).to_local()
    assert local.shape[0] < next(model.parameters()).shape[0], "parameters were not resharded"

    with unsharded(model):
        after = generate_rollouts(model, tok, prompts, n, greedy=True)[0]
    state = full_state_dict(model)                                  # collective: every rank
    if rank == 0:
        plain = AutoModelForCausalLM.from_pretrained(policy_dir)
        plain.load_state_dict(state)
        assert torch.equal(after, generate_rollouts(plain, tok, prompts, n, greedy=True)[0])
        assert not torch.equal(after, got), "the optimizer step did not change the greedy tokens"
    print(f"rank {rank}: generation ok ({n} new tokens, both samplers, then a step)", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
