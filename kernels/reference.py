"""
The fused GRPO token loss in plain PyTorch: the obvious, slow definition that the Triton kernel in
kernels/grpo_loss.py is tested against (and the "eager" row of `python bench.py kernel`).

    from kernels.reference import grpo_loss_reference
    token_loss, logp, A = grpo_loss_reference(logits.double(), targets, rewards, mask, group_size=8)

Same contract as `kernels.fused_grpo_loss`; autograd does the backward.

Decisions:
1. Written independently of grpo.py (a loop over groups, a full log_softmax, torch.minimum and
   torch.clamp), so one reference can check both the kernel and grpo.py.
2. Computes in the logits' dtype promoted to at least float32: fp64 inputs stay fp64 (the tests'
   reference), bf16/fp16 are upcast once to fp32 (what eager training code does).
3. Masked positions return exactly 0 for loss and log-prob, through torch.where, so they get zero
   gradient; their targets may be any integer (e.g. -100 padding) and are never read.
4. Same defaults as the kernel, beta = 0.001 included (kernels/grpo_loss.py decision 7).
5. Dual-clip and the clamps as verl's compute_policy_loss and low_var_kl write them: the max of
   -A ratio and -A clip(ratio), then for A < 0 the min with -A clip_c; exp of the clamped log-ratio;
   k3 of the clamped log-ratio, clamped itself.
"""
import torch


def group_advantages_reference(rewards: torch.Tensor, group_size: int, scale: str = "group",
                               eps: float = 1e-6) -> torch.Tensor:
    """Group advantages (paper §3.2), one group at a time. rewards: (B,) -> A: (B,), rewards' dtype.

    A = (r - mean) / (std_unbiased + eps) for scale="group", r - mean for scale="none";
    exactly 0 for a group whose rewards are all equal (which includes every group of one).
    """
    A = torch.zeros_like(rewards)
    for first in range(0, rewards.numel(), group_size):
        r = rewards[first:first + group_size]
        if bool((r == r[0]).all()):
            continue                                   # no preference in this group: A = 0
        centred = r - r.mean()
        if scale == "group":
            centred = centred / (r.std(unbiased=True) + eps)
        A[first:first + group_size] = centred
    return A


def grpo_loss_reference(logits: torch.Tensor, targets: torch.Tensor, rewards: torch.Tensor,
                        mask: torch.Tensor, group_size: int, old_logp: torch.Tensor | None = None,
                        ref_logp: torch.Tensor | None = None, clip_low: float = 0.2,
                        clip_high: float = 0.2, beta: float = 0.001, temperature: float = 1.0,
                        scale: str = "group", eps: float = 1e-6, clip_c: float | None = None,
                        log_ratio_clamp: float | None = None, kl_clamp: float | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token GRPO loss (Algorithm 2, line 8) with group advantages computed from the rewards.

    logits (B, T, V), targets (B, T) int, rewards (B,), mask (B, T), old_logp/ref_logp (B, T) or None
      -> token_loss (B, T), logp (B, T), A (B,)   [all in the compute dtype, see decision 2]
    clip_c, log_ratio_clamp, kl_clamp: verl's dual-clip and clamps (decision 5), None = off.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    valid = mask.bool()                                                # (B, T)
    A = group_advantages_reference(rewards.detach().to(dtype), group_size, scale, eps)   # (B,)

    logp_all = torch.log_softmax(logits.to(dtype) / temperature, dim=-1)                # (B, T, V)
    safe_targets = torch.where(valid, targets.long(), 0)               # never index with padding ids
    logp = logp_all.gather(-1, safe_targets[..., None]).squeeze(-1)    # (B, T)

    old = logp.detach() if old_logp is None else old_logp.to(dtype)    # on-policy: ratio 1, grad flows
    bound = lambda x, c: x if c is None else torch.clamp(x, min=-c, max=c)   # noqa: E731
    ratio = torch.exp(bound(logp - old, log_ratio_clamp))
    adv = A[:, None]
    pg1, pg2 = -adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(pg1, pg2)                                     # clipped surrogate
    if clip_c is not None:                                             # verl's dual-clip
        loss = torch.where(adv < 0, torch.minimum(-adv * clip_c, loss), loss)
    if beta > 0 and ref_logp is not None:
        d = bound(ref_logp.to(dtype) - logp, log_ratio_clamp)
        loss = loss + beta * bound(torch.exp(d) - d - 1.0, kl_clamp)   # k3 KL estimator

    zero = torch.zeros((), dtype=dtype, device=logits.device)
    return torch.where(valid, loss, zero), torch.where(valid, logp, zero), A
