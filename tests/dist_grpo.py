"""
Run by tests/test_grpo.py as `torchrun --standalone --nproc_per_node=2 tests/dist_grpo.py POLICY_DIR`.

1. Three AdamW steps of grpo_loss on a 2-rank FSDP2 tiny Qwen2, each rank holding half the batch,
   must match one process stepping on the whole batch (rank 0 runs that reference) to 1e-5.
2. Generation inside `unsharded` with the ranks stopping at different lengths must finish, and the
   model must train sharded again afterwards.
Any failure raises, so torchrun exits non-zero.
"""
import sys

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM

from grpo import full_state_dict, grpo_loss, shard_model, token_logprobs, unsharded


def train(model, ids, mask, A, ref_logp, num_tokens, scale):
    """Three AdamW steps of the on-policy token-mean GRPO loss; `scale` undoes FSDP's averaging."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(3):
        logits = model(ids).logits[:, :-1]                                  # (b, T-1, V)
        logp = token_logprobs(logits, ids[:, 1:])                           # (b, T-1)
        loss, _ = grpo_loss(logp, None, ref_logp, A, mask, beta=0.04, num_tokens=num_tokens)
        (loss * scale).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def main(policy_dir: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(policy_dir)
    B, T, V = 4, 12, model.config.vocab_size
    g = torch.Generator().manual_seed(0)                                    # same batch on every rank
    ids = torch.randint(3, V, (B, T), generator=g)
    mask = (torch.rand(B, T - 1, generator=g) > 0.2).float()
    A = torch.randn(B, generator=g)
    ref_logp = -5 * torch.rand(B, T - 1, generator=g)
    num_tokens = mask.sum().item()                                          # the global count

    shard_model(model)
    rows = slice(rank * B // world, (rank + 1) * B // world)
    train(model, ids[rows], mask[rows], A[rows], ref_logp[rows], num_tokens, scale=world)
    sharded = full_state_dict(model)

    if rank == 0:
        reference = AutoModelForCausalLM.from_pretrained(policy_dir)
        train(reference, ids, mask, A, ref_logp, num_tokens, scale=1)
        want = reference.state_dict()
        diff = max((sharded[k] - want[k]).abs().max().item() for k in sharded)
        moved = max((want[k] - v).abs().max().item()
                    for k, v in AutoModelForCausalLM.from_pretrained(policy_dir).state_dict().items())
        print(f"max param diff {diff:.2e} (params moved by up to {moved:.2e})", flush=True)
        assert set(sharded) <= set(want), set(sharded) ^ set(want)
        assert moved > 1e-3 and diff < 1e-5, (diff, moved)

    # Ranks stop at different lengths: 4 new tokens on rank 0, 10 on rank 1.
    n = 4 + 6 * rank
    with unsharded(model):
        out = model.generate(ids[:2, :5], max_new_tokens=n, min_new_tokens=n, do_sample=True,
                             pad_token_id=model.config.pad_token_id)
    assert out.shape == (2, 5 + n), out.shape
    train(model, ids[rows], mask[rows], A[rows], ref_logp[rows], num_tokens, scale=world)
    local = next(model.parameters()).to_local()
    assert local.shape[0] < next(model.parameters()).shape[0], "parameters were not resharded"
    print(f"rank {rank}: generation ok ({n} new tokens)", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
