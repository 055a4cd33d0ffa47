"""
The policy update of one rollout batch, as PPO runs it (Algorithm 2, line 8): old log-probs, then
E epochs over M mini-batches of whole groups, each mini-batch one optimizer step made of
micro-batched forward/backward passes; the statistics that show the clip acting.

    from functools import partial
    from grpo import policy_loss
    from update import policy_update
    loss_fn = partial(policy_loss, group_size=K, clip_low=0.2, clip_high=0.28, beta=0.001)
    stats = policy_update(model, opt, ids, am, rewards, rmask, loss_fn, group_size=K,
                          mini_batches=8, epochs=1, micro_prompts=1, ref_model=ref)
    stats["clip_frac"]                    # one value per optimizer step, over all ranks

ids, am: (N, P + R) prompt then response (sampler.py's layout), rewards (N,), loss_mask (N, R),
N = prompts * K in group-major order. Imports grpo.py only.

Decisions:
1. M = E = 1 is one optimizer step with old_logp = logp.detach() (the ratio is exactly 1 and the
   clip never acts; no forward spent on old log-probs). With M * E > 1, old_logp is one no-grad
   forward of the policy before the first update, as verl recomputes it: the sampler's own
   log-probs come from other kernels (a KV cache, another batch shape) and would put the ratio off
   1 before any update.
2. Mini-batch m holds the prompts whose index in the rank's batch is m mod M. A rank's batch is a
   contiguous slice of the global one and P_rank % M == 0, so globally too mini-batch m is the
   prompts whose index is m mod M: the same sequences on any number of ranks, so 2 ranks step
   exactly as one process does. Every epoch visits the mini-batches in the same order.
3. Token normalisation per optimizer step: `token-mean` divides by the response tokens of the
   mini-batch over all ranks (the seq-mean aggregations by its sequences), so each optimizer step
   is the mean over its own mini-batch whatever the world size or micro-batch split. verl's
   token-mean is a per-micro-batch mean, weighted by the micro-batch's share of the mini-batch.
4. The reference log-probs (beta > 0) are computed once per rollout batch, before any update.
5. Under torch.distributed the model is FSDP2-sharded and its gradients are averaged over ranks:
   each rank's loss is multiplied by the world size (grpo.py, Decision 4), and gradients are
   reduced once per optimizer step (at its last micro-batch).
6. A non-finite loss (summed over ranks) or gradient norm raises NonFiniteError before the
   optimizer step: every rank raises together, and the weights are never made non-finite.
"""
import contextlib
import math

import torch
import torch.distributed as dist

from grpo import all_reduce_max, all_reduce_sum, response_logits, token_logprobs

MEANS = ("ratio", "clip_frac", "clip_low_frac", "clip_high_frac", "dual_clip_frac", "kl", "approx_kl")


class NonFiniteError(FloatingPointError):
    """The loss or the gradient norm of an optimizer step is NaN or infinite (Decision 6)."""


def mini_batch_rows(n_prompts: int, group_size: int, mini_batches: int) -> list[torch.Tensor]:
    """Row indices of each mini-batch (Decision 2): [(n_prompts / M * K,) int64] * M."""
    if n_prompts % mini_batches:
        raise ValueError(f"{n_prompts} prompts do not split into {mini_batches} mini-batches")
    prompts = torch.arange(n_prompts).view(-1, mini_batches).t()            # (M, n_prompts / M)
    return [(p[:, None] * group_size + torch.arange(group_size)).flatten() for p in prompts]


@torch.no_grad()
def sequence_logprobs(model, ids: torch.Tensor, am: torch.Tensor, n_resp: int, temperature: float,
                      rows: int, autocast=contextlib.nullcontext) -> torch.Tensor:
    """Log-probs of the last n_resp tokens of every sequence, `rows` sequences per forward:
    ids, am (N, L) -> (N, n_resp) fp32."""
    out = [token_logprobs(_logits(model, ids[s:s + rows], am[s:s + rows], n_resp, autocast),
                          ids[s:s + rows, -n_resp:], temperature) for s in range(0, len(ids), rows)]
    return torch.cat(out)


def _logits(model, ids: torch.Tensor, am: torch.Tensor, n_resp: int, autocast) -> torch.Tensor:
    with autocast():
        return response_logits(model, ids, am, n_resp)                      # (b, n_resp, V)


def policy_update(model, opt, ids: torch.Tensor, am: torch.Tensor, rewards: torch.Tensor,
                  loss_mask: torch.Tensor, loss_fn, *, group_size: int, mini_batches: int = 1,
                  epochs: int = 1, micro_prompts: int = 1, ref_model=None, temperature: float = 1.0,
                  grad_clip: float = 0.0, autocast=contextlib.nullcontext, group=None) -> dict[str, list[float]]:
    """E x M optimizer steps on one rollout batch (Decisions 1-6); every rank calls it.

    ids, am (N, P + R); rewards (N,); loss_mask (N, R): the response tokens that enter the loss.
    loss_fn: grpo.policy_loss with its method settings bound (it receives old_logp, ref_logp,
    num_tokens and num_seqs here). grad_clip: max gradient norm, 0 = no clipping. group: the ranks
    that share the update (torch.distributed's default group: all of them).
    -> {stat: [value per optimizer step]}: loss, grad_norm, tokens, ratio_min, ratio_max and the
       token means of grpo_loss's stats, each over all ranks.
    """
    N, R = loss_mask.shape
    K, world = group_size, dist.get_world_size(group) if dist.is_initialized() else 1
    if N % (K * mini_batches * micro_prompts) or mini_batches < 1 or epochs < 1:
        raise ValueError(f"{N} rollouts do not split into {mini_batches} mini-batches of micro-batches of "
                         f"{micro_prompts} prompts x {K} (epochs {epochs})")
    resp, micro = ids[:, -R:], micro_prompts * K
    ref_logp = None if ref_model is None else sequence_logprobs(ref_model, ids, am, R, temperature, micro, autocast)
    old_logp = None
    if mini_batches * epochs > 1:                                           # Decision 1
        old_logp = sequence_logprobs(model, ids, am, R, temperature, micro, autocast)
    minis = mini_batch_rows(N // K, K, mini_batches)
    tokens = all_reduce_sum(torch.stack([loss_mask[r].sum() for r in minis]).double().cpu(), group).tolist()
    n_seqs = N // mini_batches * world
    pick = lambda x, r: None if x is None else x[r]                        # noqa: E731
    stats = {k: [] for k in ("loss", "grad_norm", "tokens", "ratio_min", "ratio_max", *MEANS)}
    model.train()
    for _ in range(epochs):
        for m, rows in enumerate(minis):
            acc = dict.fromkeys(("loss", "tokens", *MEANS), 0.0)
            lo, hi = float("inf"), float("-inf")
            parts = rows.split(micro)
            for i, r in enumerate(parts):
                if hasattr(model, "set_requires_gradient_sync"):
                    model.set_requires_gradient_sync(i == len(parts) - 1)   # Decision 5
                logits = _logits(model, ids[r], am[r], R, autocast)         # (b, R, V)
                loss, st = loss_fn(logits, resp[r], rewards[r], loss_mask[r], old_logp=pick(old_logp, r),
                                   ref_logp=pick(ref_logp, r), num_tokens=tokens[m], num_seqs=n_seqs)
                (loss * world).backward()
                acc["loss"] += loss.item()
                for k in MEANS:                                             # token-weighted
                    acc[k] += st[k] * st["tokens"]
                acc["tokens"] += st["tokens"]
                lo, hi = min(lo, st["ratio_min"]), max(hi, st["ratio_max"])
            _step(model, opt, acc, lo, hi, grad_clip, stats, group)
    return stats


def _step(model, opt, acc: dict, lo: float, hi: float, grad_clip: float, stats: dict, group) -> None:
    """Sum the micro-batches' stats over ranks, check them (Decision 6), clip, step; append to stats."""
    tot = dict(zip(acc, all_reduce_sum(torch.tensor(list(acc.values()), dtype=torch.float64), group).tolist()))
    hi, neg_lo = all_reduce_max(torch.tensor([hi, -lo], dtype=torch.float64), group).tolist()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
    for name, value in (("loss", tot["loss"]), ("gradient norm", grad_norm)):
        if not math.isfinite(value):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteError(f"the {name} is {value}")
    opt.step()
    opt.zero_grad(set_to_none=True)
    for k in MEANS:
        stats[k].append(tot[k] / max(tot["tokens"], 1))
    stats["loss"].append(tot["loss"])
    stats["grad_norm"].append(grad_norm)
    stats["tokens"].append(tot["tokens"])
    stats["ratio_min"].append(-neg_lo)
    stats["ratio_max"].append(hi)
