"""
GRPO, written out by hand: group advantages, memory-lean per-token log-probs, the clipped policy
loss with k3 KL, and the FSDP2 plumbing a trainer needs around them.

    from grpo import group_advantages, token_logprobs, grpo_loss
    A = group_advantages(rewards, group_size=K)                         # (N,)
    logp = token_logprobs(logits[:, :-1], input_ids[:, 1:])             # (B, T-1) fp32
    loss, stats = grpo_loss(logp, old_logp, ref_logp, A, mask, num_tokens=global_tokens)

Decisions:
1. Advantages (§3.2: rewards normalised within each rollout group): A = (r - mean) / (std + eps)
   per group of K with the *unbiased* std, as the authors' release; `scale="none"` is Dr.GRPO's
   r - mean. A group whose rewards are all equal (or a group of one) carries no preference and
   gets exactly 0, never NaN.
2. Log-probs never materialise a (B, T, V) fp32 log-softmax: rows are processed in chunks, each
   upcast to fp32 on its own (bf16 log_softmax is unstable; per-chunk fp32 is exact to fp32). A
   custom autograd Function saves only the (rows,) log-sum-exp and recomputes the softmax chunk by
   chunk in backward, so training memory is the logits' own gradient plus one fp32 chunk.
3. Loss (the GRPO objective of Algorithm 2, line 8; Shao et al., 2024): ratio = exp(logp -
   old_logp); -min(ratio A, clip(ratio, 1-eps_low, 1+eps_high) A) plus beta * k3 KL,
   k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman's unbiased, positive estimator); beta = 0.001
   by default here, in kernels/ and in the reference, as in the release.
4. Aggregation `token-mean` divides the token sum by `num_tokens`, the response-token count of the
   *global* batch (all ranks, all micro-batches): summing micro-batch gradients then gives exactly the
   full-batch gradient, whatever the world size or micro-batch split. FSDP averages gradients over
   ranks, so a trainer multiplies each rank's loss by the world size (see lrpo.py).
5. FSDP2 only (`fully_shard` on each decoder layer, then the root); FSDP1 segfaults on the full
   state dict path (seen with torch 2.13). Generation runs inside `unsharded(model)`: with every
   parameter gathered and reshard-after-forward off, a forward pass issues no collective, so ranks
   may stop generating at different lengths without deadlocking (sampler.py generates inside it).
6. Rollouts (sampler.py) are one tensor per batch: the left-padded prompt then the response, padded
   after its stop; the training forward (`response_logits`) gives position ids that skip the left
   padding, as the samplers do, so the log-probs it trains on are those the samples were drawn from.
7. Distributed helpers (`init_distributed`, `barrier`, `all_gather`, `all_reduce_sum`,
   `all_reduce_max`) are no-ops in one process, so a training loop needs no `if ddp:` around them.
8. When several optimizer steps share a rollout batch (update.py) the ratio moves, and verl's
   safeguards are one argument each, off by default: dual-clip (Ye et al., 2020: for A < 0 the
   token loss is at most -A * clip_c, clip_c > 1), the log-ratio clamped to +-log_ratio_clamp
   before exp (in the ratio and in k3), k3 clamped to +-kl_clamp (verl's `low_var_kl`: 20 and 10).
   The gradient is 0 wherever a bound is taken. Stats: clip fractions on each side (low: ratio
   < 1 - eps_low with A < 0; high: ratio > 1 + eps_high with A > 0), ratio min / mean / max, and
   approx_kl = mean(ratio - 1 - log ratio), the k3 estimate of KL(old || new) on the old samples.
"""
import contextlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist

LOSS_AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


# ----------------------------------------------------------------------------- advantages

def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group",
                     eps: float = 1e-6) -> torch.Tensor:
    """Group-normalised advantages (Decision 1).

    rewards: (N,) in group-major order, N = prompts * group_size  ->  (N,) float32 (fp64 rewards: fp64)
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError(f"rewards contain non-finite values: {rewards.tolist()}")
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none', got {scale!r}")
    r = rewards.to(torch.promote_types(rewards.dtype, torch.float32)).view(-1, group_size)   # (P, K)
    centred = r - r.mean(dim=1, keepdim=True)
    # An all-equal group has r - mean == 0 up to rounding; force it to exactly 0.
    flat = (r == r[:, :1]).all(dim=1, keepdim=True)                 # (P, 1)
    centred = centred.masked_fill(flat, 0.0)
    if scale == "group" and group_size > 1:
        centred = centred / (r.std(dim=1, unbiased=True, keepdim=True) + eps)
    return centred.view(-1)


# ----------------------------------------------------------------------------- log-probs

class _ChunkedLogprob(torch.autograd.Function):
    """logp[i] = x[i, y[i]] / temp - logsumexp(x[i] / temp), computed `chunk` rows at a time."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, chunk):
        # logits (R, V) any float dtype, targets (R,) int64 -> logp (R,) fp32 (fp64 for fp64 logits)
        R, ctype = logits.shape[0], torch.promote_types(logits.dtype, torch.float32)
        logp = torch.empty(R, dtype=ctype, device=logits.device)
        lse = torch.empty(R, dtype=ctype, device=logits.device)
        for s in range(0, R, chunk):
            x = logits[s:s + chunk].to(ctype)                       # (c, V) fp32, one chunk only
            if temperature != 1.0:
                x = x / temperature
            y = targets[s:s + chunk, None]                          # (c, 1)
            logp[s:s + chunk] = torch.log_softmax(x, dim=-1).gather(1, y).squeeze(1)
            lse[s:s + chunk] = x.gather(1, y).squeeze(1) - logp[s:s + chunk]
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logp

    @staticmethod
    def backward(ctx, grad_logp):
        # d logp[i] / d x[i, v] = (1[v == y_i] - softmax(x[i] / temp)_v) / temp
        logits, targets, lse = ctx.saved_tensors
        temp, chunk = ctx.temperature, ctx.chunk
        grad = torch.empty_like(logits)                             # (R, V) in the logits' dtype
        for s in range(0, logits.shape[0], chunk):
            x = logits[s:s + chunk].to(lse.dtype, copy=True)        # (c, V), safe to edit in place
            if temp != 1.0:
                x.div_(temp)
            g = grad_logp[s:s + chunk, None].to(lse.dtype)          # (c, 1)
            p = torch.exp_(x.sub_(lse[s:s + chunk, None])).mul_(-g)  # -g * softmax, in place
            p.scatter_add_(1, targets[s:s + chunk, None], g)
            grad[s:s + chunk] = p.div_(temp) if temp != 1.0 else p
        return grad, None, None, None


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                   chunk_rows: int = 1024) -> torch.Tensor:
    """Log-probability of each target token, without a (B, T, V) fp32 intermediate.

    logits: (B, T, V) fp32 or bf16; targets: (B, T) int  ->  (B, T) fp32 (fp64 logits: fp64)
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree")
    B, T, V = logits.shape
    flat = logits.reshape(B * T, V)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    logp = _ChunkedLogprob.apply(flat, targets.reshape(-1).long(), float(temperature), chunk_rows)
    return logp.view(B, T)


# ----------------------------------------------------------------------------- loss

def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor | None, ref_logp: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, clip_low: float = 0.2,
              clip_high: float = 0.2, beta: float = 0.001, agg: str = "token-mean",
              num_tokens: float | None = None, num_seqs: float | None = None,
              max_len: int | None = None, clip_c: float | None = None,
              log_ratio_clamp: float | None = None, kl_clamp: float | None = None
              ) -> tuple[torch.Tensor, dict]:
    """Clipped GRPO surrogate plus k3 KL, aggregated over response tokens (Decisions 3, 4, 8).

    logp, old_logp, ref_logp, mask: (B, T); advantages: (B,)  ->  loss (), stats {str: float}
    old_logp=None means on-policy (old_logp = logp.detach()). ref_logp=None or beta=0 skips KL.
    num_tokens: response tokens of the global batch (token-mean); num_seqs: sequences of the global
    batch (the seq-mean aggregations); max_len: Dr.GRPO's constant length normaliser. Each defaults
    to this call's own count, which is right only when the whole batch is in this call.
    clip_c: dual-clip bound (> 1; None = off); log_ratio_clamp, kl_clamp: verl's clamps (None = off).
    stats: token means of ratio, clip_frac (= clip_low_frac + clip_high_frac), dual_clip_frac, kl,
    approx_kl (k3 of the new policy from the old, on the old's samples); ratio_min / ratio_max over
    the response tokens (+inf / -inf when there are none); tokens.
    """
    if clip_c is not None and not clip_c > 1:
        raise ValueError(f"clip_c must be > 1 (dual-clip caps a loss above the clipped one), got {clip_c}")
    mask = mask.to(logp.dtype)
    if old_logp is None:
        old_logp = logp.detach()
    A = advantages.to(logp.dtype)[:, None]                          # (B, 1)
    log_ratio = logp - old_logp                                     # (B, T)
    if log_ratio_clamp is not None:                                 # verl: exp never overflows
        log_ratio = log_ratio.clamp(-log_ratio_clamp, log_ratio_clamp)
    ratio = torch.exp(log_ratio)                                    # (B, T)
    surr = ratio * A
    surr_clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * A
    per_token = -torch.minimum(surr, surr_clipped)                  # (B, T)
    if clip_c is not None:                                          # dual-clip: A < 0 costs at most -A c
        capped = torch.minimum(per_token, -A * clip_c)
        per_token = torch.where(A < 0, capped, per_token)
    use_kl = ref_logp is not None and beta > 0
    if use_kl:
        d = ref_logp - logp
        if log_ratio_clamp is not None:
            d = d.clamp(-log_ratio_clamp, log_ratio_clamp)
        kl = torch.exp(d) - d - 1.0                                 # k3, >= 0
        if kl_clamp is not None:
            kl = kl.clamp(-kl_clamp, kl_clamp)
        per_token = per_token + beta * kl

    loss = aggregate(per_token, mask, agg, num_tokens, num_seqs, max_len)
    with torch.no_grad():
        on, count = mask > 0, mask.sum().clamp(min=1.0)
        clipped = (surr_clipped < surr).to(mask.dtype)              # the clipped side was taken
        low, high = clipped * (ratio < 1), clipped * (ratio > 1)
        dual = (A < 0) & (-A * clip_c < -torch.minimum(surr, surr_clipped)) if clip_c is not None else on & False
        zero = mask.new_zeros(())
        means = torch.stack([(x * mask).sum() / count for x in (
            ratio, clipped, low, high, dual.to(mask.dtype), kl if use_kl else zero, ratio - 1.0 - log_ratio)])
        extremes = torch.stack([ratio.masked_fill(~on, float("inf")).min(),
                                ratio.masked_fill(~on, float("-inf")).max(), mask.sum()])
        values = torch.cat([means, extremes]).tolist()              # one host sync
        stats = dict(zip(("ratio", "clip_frac", "clip_low_frac", "clip_high_frac", "dual_clip_frac", "kl",
                          "approx_kl", "ratio_min", "ratio_max", "tokens"), values))
    return loss, stats


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, agg: str = "token-mean",
              num_tokens: float | None = None, num_seqs: float | None = None,
              max_len: int | None = None) -> torch.Tensor:
    """Per-token losses (B, T) to one scalar (Decision 4); counts default to this call's own."""
    if agg not in LOSS_AGGS:
        raise ValueError(f"agg must be one of {LOSS_AGGS}, got {agg!r}")
    B, T = per_token.shape
    mask = mask.to(per_token.dtype)
    if agg == "token-mean":
        n = mask.sum() if num_tokens is None else num_tokens
        return (per_token * mask).sum() / max(float(n), 1.0)
    seq_sum = (per_token * mask).sum(dim=1)                         # (B,)
    if agg == "seq-mean-token-mean":
        seq = seq_sum / mask.sum(dim=1).clamp(min=1.0)
    else:                                                           # Dr.GRPO: a constant length
        seq = seq_sum / float(T if max_len is None else max_len)
    return seq.sum() / max(float(B if num_seqs is None else num_seqs), 1.0)


def policy_loss(logits: torch.Tensor, targets: torch.Tensor, rewards: torch.Tensor,
                mask: torch.Tensor, group_size: int, *, old_logp: torch.Tensor | None = None,
                ref_logp: torch.Tensor | None = None, temperature: float = 1.0, scale: str = "group",
                clip_low: float = 0.2, clip_high: float = 0.2, clip_c: float | None = None,
                log_ratio_clamp: float | None = None, kl_clamp: float | None = None,
                beta: float = 0.001, agg: str = "token-mean", num_tokens: float | None = None,
                num_seqs: float | None = None, max_len: int | None = None,
                kernel: str = "torch") -> tuple[torch.Tensor, dict]:
    """Rewards and logits to the aggregated GRPO loss, by either path; rows hold whole groups.

    logits (B, T, V), targets / mask / old_logp / ref_logp (B, T), rewards (B,) -> loss (), stats.
    kernel="torch": group_advantages + token_logprobs + grpo_loss. kernel="triton": the fused
    kernel of kernels/ (one pass over the logits forward, one backward), the same numbers.
    The other arguments are grpo_loss's and group_advantages'.
    """
    counts = dict(agg=agg, num_tokens=num_tokens, num_seqs=num_seqs, max_len=max_len)
    clip = dict(clip_low=clip_low, clip_high=clip_high, clip_c=clip_c, log_ratio_clamp=log_ratio_clamp,
                kl_clamp=kl_clamp)
    if kernel == "torch":
        A = group_advantages(rewards, group_size, scale)
        logp = token_logprobs(logits, targets, temperature)
        return grpo_loss(logp, old_logp, ref_logp, A, mask, **clip, beta=beta, **counts)
    if kernel != "triton":
        raise ValueError(f"kernel must be 'torch' or 'triton', got {kernel!r}")
    from kernels import fused_grpo_loss

    token_loss, logp, A = fused_grpo_loss(
        logits, targets, rewards, mask, group_size, old_logp=old_logp, ref_logp=ref_logp, **clip,
        beta=beta if ref_logp is not None else 0.0, temperature=temperature, scale=scale)
    _, stats = grpo_loss(logp.detach(), old_logp, ref_logp, A, mask, **clip, beta=beta, **counts)
    return aggregate(token_loss, mask, **counts), stats


# ----------------------------------------------------------------------------- FSDP2

def shard_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a Hugging Face model, children before parents: every module whose
    class is in the `_no_split_modules` of the model or of a sub-model (e.g. Gemma-3's vision tower)."""
    names = set()
    for m in model.modules():
        names |= set(getattr(m, "_no_split_modules", None) or [])
    units = [m for m in reversed(list(model.modules())) if type(m).__name__ in names]
    if not units:
        raise ValueError(f"{type(model).__name__} declares no _no_split_modules; cannot find its layers")
    return units


def shard_model(model: torch.nn.Module, mixed_precision: bool = False) -> torch.nn.Module:
    """fully_shard each decoder layer (see shard_units), then the root (the PyTorch FSDP2 example's recipe).

    mixed_precision: bf16 parameters in forward/backward, fp32 gradient reduction.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw = {}
    if mixed_precision:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for unit in shard_units(model):
        fully_shard(unit, **kw)
    fully_shard(model, **kw)
    return model


def full_state_dict(model: torch.nn.Module) -> dict:
    """Rank 0: the full, unsharded state dict on CPU (what save_pretrained writes); others: {}.

    Collective under FSDP: every rank must call it. A plain module returns its own state dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(model, FSDPModule):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


@contextlib.contextmanager
def unsharded(model: torch.nn.Module):
    """Gather every FSDP2 parameter for the duration of the block (generation), then reshard.

    On exit the reshard-after-forward settings are those `shard_model` gives: every layer reshards
    after forward, the root does not (FSDP2's own default for the root). A plain module passes through.
    """
    from torch.distributed.fsdp import FSDPModule

    modules = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for m in modules:
        m.set_reshard_after_forward(False, recurse=False)
        m.unshard()
    try:
        yield model
    finally:
        for m in modules:
            m.set_reshard_after_forward(m is not model, recurse=False)
            m.reshard()


# ----------------------------------------------------------------------------- training forward

def response_logits(model, ids: torch.Tensor, attention_mask: torch.Tensor, n_resp: int) -> torch.Tensor:
    """Logits predicting the last n_resp tokens of ids (B, L): (B, n_resp, V), contiguous (no
    slice of a longer logits tensor, so token_logprobs never copies it). Position ids skip the
    left padding, as generate() does, so training log-probs match the sampling ones."""
    pos = (attention_mask.cumsum(1) - 1).clamp(min=0)
    L = ids.shape[1]
    keep = torch.arange(L - n_resp - 1, L - 1, device=ids.device)  # only these reach lm_head
    return model(input_ids=ids, attention_mask=attention_mask, position_ids=pos, logits_to_keep=keep,
                 use_cache=False).logits                           # training needs no KV cache


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(timeout_minutes: float = 10.0) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment (RANK, LOCAL_RANK), with the process
    group up (NCCL on GPUs, gloo on CPUs; collectives fail after `timeout_minutes`); without
    torchrun, one process: (0, 1, cuda:0 or cpu) and no process group."""
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if int(os.environ.get("RANK", -1)) == -1:
        return 0, 1, device
    dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    return dist.get_rank(), dist.get_world_size(), device


def barrier(group=None) -> None:
    """dist.barrier() when torch.distributed is up; nothing otherwise."""
    if _distributed():
        dist.barrier(group=group)


def all_gather(obj, group=None) -> list:
    """[obj of rank 0, obj of rank 1, ...] (picklable objects); [obj] in one process."""
    if not _distributed():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj, group=group)
    return out


def all_reduce_sum(x: torch.Tensor, group=None) -> torch.Tensor:
    """Sum a tensor over ranks (of `group`, default all) in place when torch.distributed is up;
    identity otherwise. A CPU tensor under NCCL travels through the current CUDA device and back."""
    return _all_reduce(x, dist.ReduceOp.SUM, group)


def all_reduce_max(x: torch.Tensor, group=None) -> torch.Tensor:
    """Element-wise maximum over ranks, in place, as all_reduce_sum."""
    return _all_reduce(x, dist.ReduceOp.MAX, group)


def _all_reduce(x: torch.Tensor, op, group) -> torch.Tensor:
    if _distributed():
        if dist.get_backend(group) == "nccl" and not x.is_cuda:
            y = x.cuda()
            dist.all_reduce(y, op=op, group=group)
            return x.copy_(y)
        dist.all_reduce(x, op=op, group=group)
    return x
