"""
Run by tests/test_grpo.py as `torchrun --standalone --nproc_per_node=2 tests/dist_grpo.py POLICY_DIR`.

1. Three AdamW steps of grpo_loss on a 2-rank FSDP2 tiny Qwen2, each rank holding half the batch,
   must match one process stepping on the whole batch (rank 0 runs that reference) to 1e-5.
2. Generation inside `unsharded` with the ranks stopping at different lengths must finish, and the
   model must train sharded again afterwards.
3. update.policy_update with 2 mini-batches x 2 epochs (old log-probs recomputed, the clip acting)
   on 2 ranks, each holding half the prompts, must match one process on all of them to 1e-5.
Any failure raises, so torchrun exits non-zero.
"""
import copy
import sys
from functools import partial

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM

from grpo import full_state_dict, grpo_loss, policy_loss, shard_model, token_logprobs, unsharded
from update import policy_update


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
    mini_batches_match(policy_dir, rank, world)
    dist.barrier()
    dist.destroy_process_group()


def mini_batches_match(policy_dir: str, rank: int, world: int) -> None:
    """Point 3: 8 prompts x K = 2, prompt 4 + response 6 tokens, M = 2, E = 2, AdamW lr 1e-2."""
    K, N, R = 2, 16, 6
    g = torch.Generator().manual_seed(1)
    start = AutoModelForCausalLM.from_pretrained(policy_dir)
    ids = torch.randint(3, start.config.vocab_size, (N, 4 + R), generator=g)
    am = torch.ones_like(ids)
    mask = (torch.arange(R)[None, :] < torch.randint(2, R + 1, (N,), generator=g)[:, None]).long()
    am[:, 4:] = mask
    rewards = torch.rand(N, generator=g)
    loss_fn = partial(policy_loss, group_size=K, beta=0.04, clip_c=3.0, log_ratio_clamp=20.0, kl_clamp=10.0)

    def run(model, rows, group=None):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return policy_update(model, opt, ids[rows], am[rows], rewards[rows], mask[rows], loss_fn, group_size=K,
                             mini_batches=2, epochs=2, micro_prompts=2, ref_model=copy.deepcopy(start), group=group)

    sharded = shard_model(copy.deepcopy(start))
    stats = run(sharded, slice(rank * N // world, (rank + 1) * N // world))
    got = full_state_dict(sharded)
    alone = dist.new_group([0])                                             # rank 0 by itself: one process
    if rank == 0:
        single = copy.deepcopy(start)
        want_stats = run(single, slice(0, N), group=alone)
        want = single.state_dict()
        diff = max((got[k] - want[k]).abs().max().item() for k in got)
        moved = max((want[k] - v).abs().max().item() for k, v in start.state_dict().items())
        print(f"mini-batches: max param diff {diff:.2e} (moved {moved:.2e}), clip_frac {stats['clip_frac']}", flush=True)
        assert moved > 1e-3 and diff < 1e-5, (diff, moved)
        assert max(stats["clip_frac"]) > 0 and stats["clip_frac"][0] == 0, stats["clip_frac"]
        for k in ("loss", "clip_frac", "ratio_max", "tokens"):
            assert stats[k] == [pytest_approx(x) for x in want_stats[k]], (k, stats[k], want_stats[k])


def pytest_approx(x: float, rel: float = 1e-4):
    """x, compared with a relative tolerance (this script runs outside pytest)."""
    class Near(float):
        def __eq__(self, other):
            return abs(other - x) <= rel * max(abs(x), 1e-6)
    return Near(x)


if __name__ == "__main__":
    main(sys.argv[1])
