"""
One Triton kernel for the GRPO token loss: group-normalised advantages, the target token's
log-prob (online log-sum-exp over the vocabulary) and the clipped surrogate plus k3 KL, forward
and backward. The (tokens x vocabulary) logits are read once forward, once backward, and their
gradient written once: three passes, the bandwidth floor (eager PyTorch makes 6-8).

    from kernels import fused_grpo_loss
    token_loss, logp, A = fused_grpo_loss(logits, targets, rewards, mask, group_size=K,
                                          old_logp=old_logp, ref_logp=ref_logp, beta=0.001)
    loss = (token_loss * mask).sum() / num_tokens                      # the caller aggregates
    loss.backward()

Layered like the Triton tutorials: @triton.jit kernels -> launchers -> torch.autograd.Function ->
`fused_grpo_loss`. The plain PyTorch definition is kernels/reference.py.

Decisions:
1. One program per token row (b, t). Each program recomputes its sequence's advantage from the
   K = group_size rewards of its group (paper §3.2: rewards normalised within each rollout group,
   with the unbiased std as the authors' release): a few dozen flops, no extra launch, and the
   advantages are never a separate pass. Programs with t == 0 also write A to the (B,) output.
2. Log-softmax by an online log-sum-exp over BLOCK_V columns at a time in fp32 (whatever the logits'
   dtype); the target logit is one scalar load. Forward saves only the (B, T) fp32 log-sum-exp and
   log-probs; backward recomputes softmax = exp(x / tau - lse) block by block.
3. d loss / d logp is formed per token, then d logp / d x_v = (1[v == y] - softmax_v) / tau.
   The clipped side of min() has zero gradient; ties (ratio inside the clip range) follow torch,
   whose min and clamp together pass the full -A * ratio. The returned log-probs are differentiable
   too: their upstream gradient is added to d loss / d logp in the same pass.
4. Masked tokens are skipped: loss 0, log-prob 0, gradient rows written as exact zeros, and their
   targets (e.g. -100 padding) are never read. Targets of unmasked tokens are checked on the host.
5. `inplace=True` writes the logits' gradient into the logits buffer (Liger-Kernel's trick): peak
   extra memory is then O(B * T) instead of one more logits-sized tensor. Only safe when nothing
   else needs the logits' values after this loss (true for lm_head -> this loss); a second backward
   through the same graph is refused.
6. Logits may be a strided view such as `logits[:, :-1]` (last dimension contiguous): no copy.
   Row offsets are int64 (16384 x 151936 elements overflow int32).
7. beta defaults to 0.001, the k3 KL coefficient of the authors' released training script (the
   paper gives none), as grpo.py and kernels/reference.py: the three loss paths agree unasked.
8. tests/test_kernel_compile.py compiles every variant these launchers can pick ahead of time for
   sm_80 and sm_90 (no GPU needed) and checks registers, spills and shared memory.
9. Several optimizer steps per rollout batch move the ratio, and verl's safeguards then act:
   dual-clip (for A < 0 the token loss is at most -A * clip_c), the log-ratio clamped to
   +-log_ratio_clamp before exp (in the ratio and in k3), k3 clamped to +-kl_clamp. Each is a float
   argument, +inf when off (a no-op bound), so no new compiled variant. For A < 0 the clipped
   surrogate is -A * max(ratio, clip(ratio)), so dual-clip is -A * min(that max, clip_c). The
   gradient is 0 wherever a bound is taken, as torch.clamp and torch.minimum give it.
"""
import os

import torch
import triton
import triton.language as tl


@triton.jit
def _group_advantage(REWARDS, b, group_size, inv_dof, eps, SCALE_GROUP: tl.constexpr,
                     BLOCK_K: tl.constexpr):
    """A of sequence b from its group's rewards (decision 1): (r - mean) / (std_unbiased + eps)."""
    k = tl.arange(0, BLOCK_K)
    in_group = k < group_size
    r = tl.load(REWARDS + (b // group_size) * group_size + k, mask=in_group, other=0.0)
    mean = tl.sum(r, axis=0) / group_size
    A = tl.load(REWARDS + b) - mean
    if SCALE_GROUP:
        d = tl.where(in_group, r - mean, 0.0)
        std = tl.sqrt(tl.sum(d * d, axis=0) * inv_dof)        # unbiased: inv_dof = 1 / (K - 1)
        A = A / (std + eps)
    # An all-equal group (any group of one) has no preference: exactly 0, not a rounding residue.
    r_max = tl.max(tl.where(in_group, r, float("-inf")), axis=0)
    r_min = tl.min(tl.where(in_group, r, float("inf")), axis=0)
    return tl.where(r_max == r_min, 0.0, A)


@triton.jit
def _grpo_fwd_kernel(LOGITS, stride_b, stride_t, TARGETS, MASK, REWARDS, OLD_LOGP, REF_LOGP,
                     LOSS, LOGP, LSE, ADV, T, V, group_size, inv_dof, clip_low, clip_high, clip_c,
                     lr_clamp, kl_clamp, beta, temperature, eps, SCALE_GROUP: tl.constexpr,
                     BLOCK_K: tl.constexpr, BLOCK_V: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)                # token row in the flattened (B * T)
    b = row // T
    t = row % T
    A = _group_advantage(REWARDS, b, group_size, inv_dof, eps, SCALE_GROUP, BLOCK_K)
    if t == 0:
        tl.store(ADV + b, A)
    if tl.load(MASK + row) != 0:                       # masked rows keep the zeros they start with
        x_row = LOGITS + b * stride_b + t * stride_t
        # Online log-sum-exp over the vocabulary: running max m and sum s of exp(x - m).
        m = float("-inf")
        s = 0.0
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            x = tl.load(x_row + cols, mask=cols < V, other=float("-inf")).to(tl.float32) / temperature
            m_new = tl.maximum(m, tl.max(x, axis=0))
            s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new), axis=0)
            m = m_new
        lse = m + tl.log(s)
        logp = tl.load(x_row + tl.load(TARGETS + row)).to(tl.float32) / temperature - lse

        # Clipped surrogate of the GRPO objective (Algorithm 2, line 8); on-policy the ratio is 1.
        if OLD_LOGP is None:
            old = logp
        else:
            old = tl.load(OLD_LOGP + row)
        ratio = tl.exp(tl.minimum(tl.maximum(logp - old, -lr_clamp), lr_clamp))   # decision 9
        clipped = tl.minimum(tl.maximum(ratio, 1.0 - clip_low), 1.0 + clip_high)
        loss = -tl.minimum(ratio * A, clipped * A)
        loss = tl.where(A < 0, -A * tl.minimum(tl.maximum(ratio, clipped), clip_c), loss)   # dual-clip
        if REF_LOGP is not None:                       # k3 KL: exp(ref - logp) - (ref - logp) - 1
            d = tl.minimum(tl.maximum(tl.load(REF_LOGP + row) - logp, -lr_clamp), lr_clamp)
            loss += beta * tl.minimum(tl.maximum(tl.exp(d) - d - 1.0, -kl_clamp), kl_clamp)
        tl.store(LOSS + row, loss)
        tl.store(LOGP + row, logp)
        tl.store(LSE + row, lse)


@triton.jit
def _grpo_bwd_kernel(GRAD_LOSS, GRAD_LOGP, DLOGITS, dstride_b, dstride_t, LOGITS, stride_b,
                     stride_t, TARGETS, MASK, ADV, OLD_LOGP, REF_LOGP, LOGP, LSE, T, V, clip_low,
                     clip_high, clip_c, lr_clamp, kl_clamp, beta, temperature,
                     BLOCK_V: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    b = row // T
    t = row % T
    dx_row = DLOGITS + b * dstride_b + t * dstride_t
    if tl.load(MASK + row) != 0:
        logp = tl.load(LOGP + row)
        lse = tl.load(LSE + row)
        A = tl.load(ADV + b)
        if OLD_LOGP is None:
            old = logp
        else:
            old = tl.load(OLD_LOGP + row)
        log_ratio = logp - old
        ratio = tl.exp(tl.minimum(tl.maximum(log_ratio, -lr_clamp), lr_clamp))
        clipped = tl.minimum(tl.maximum(ratio, 1.0 - clip_low), 1.0 + clip_high)
        # d(-min(ratio A, clip(ratio) A)) / d logp: -ratio A where the unclipped side is taken,
        # 0 where dual-clip caps the loss (A < 0) or the log-ratio is outside its clamp.
        live = (ratio * A <= clipped * A) & ((A >= 0) | (tl.maximum(ratio, clipped) <= clip_c))
        live = live & (log_ratio >= -lr_clamp) & (log_ratio <= lr_clamp)
        dlogp = tl.where(live, -ratio * A, 0.0)
        if REF_LOGP is not None:                       # d k3 / d logp = 1 - exp(ref - logp)
            d = tl.load(REF_LOGP + row) - logp
            dc = tl.minimum(tl.maximum(d, -lr_clamp), lr_clamp)
            k3 = tl.exp(dc) - dc - 1.0
            live_kl = (d >= -lr_clamp) & (d <= lr_clamp) & (k3 >= -kl_clamp) & (k3 <= kl_clamp)
            dlogp += tl.where(live_kl, beta * (1.0 - tl.exp(dc)), 0.0)
        dlogp = dlogp * tl.load(GRAD_LOSS + row) + tl.load(GRAD_LOGP + row)

        # d logp / d x_v = (1[v == y] - softmax_v) / tau, softmax recomputed from the saved lse.
        y = tl.load(TARGETS + row)
        x_row = LOGITS + b * stride_b + t * stride_t
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            x = tl.load(x_row + cols, mask=cols < V, other=float("-inf")).to(tl.float32) / temperature
            p = tl.exp(x - lse)
            dx = (tl.where(cols == y, 1.0, 0.0) - p) * (dlogp / temperature)
            tl.store(dx_row + cols, dx.to(DLOGITS.dtype.element_ty), mask=cols < V)
    else:
        for start in range(0, V, BLOCK_V):
            cols = start + tl.arange(0, BLOCK_V)
            tl.store(dx_row + cols, tl.zeros([BLOCK_V], dtype=DLOGITS.dtype.element_ty), mask=cols < V)


def _launch_config(V: int, block_v: int | None) -> dict:
    """BLOCK_V (a power of two, at most 4096 unless asked) and warps for a vocabulary of V."""
    block = block_v or min(triton.next_power_of_2(V), 4096)
    return {"BLOCK_V": block, "num_warps": 8 if block >= 2048 else 4}


def _forward(logits, targets, mask, rewards, old_logp, ref_logp, group_size, clip_low, clip_high,
             clip_c, lr_clamp, kl_clamp, beta, temperature, scale, eps, block_v):
    """Launch the forward kernel. logits (B, T, V); targets, mask (B, T); rewards (B,)
    -> loss, logp, lse (B, T) fp32 and A (B,) fp32."""
    B, T, V = logits.shape
    zeros = lambda: torch.zeros(B, T, dtype=torch.float32, device=logits.device)  # noqa: E731
    loss, logp, lse = zeros(), zeros(), zeros()
    adv = torch.empty(B, dtype=torch.float32, device=logits.device)
    _grpo_fwd_kernel[(B * T,)](
        logits, logits.stride(0), logits.stride(1), targets, mask, rewards, old_logp,
        ref_logp if beta > 0 else None, loss, logp, lse, adv, T, V, group_size,
        1.0 / max(group_size - 1, 1), clip_low, clip_high, clip_c, lr_clamp, kl_clamp, beta,
        temperature, eps,
        SCALE_GROUP=scale == "group", BLOCK_K=triton.next_power_of_2(group_size),
        **_launch_config(V, block_v))
    return loss, logp, lse, adv


def _backward(grad_loss, grad_logp, dlogits, logits, targets, mask, adv, old_logp, ref_logp,
              logp, lse, clip_low, clip_high, clip_c, lr_clamp, kl_clamp, beta, temperature, block_v):
    """Launch the backward kernel: writes d(sum grad_loss * loss + grad_logp * logp) / d logits
    into dlogits (B, T, V), which may be the logits buffer itself."""
    B, T, V = logits.shape
    _grpo_bwd_kernel[(B * T,)](
        grad_loss, grad_logp, dlogits, dlogits.stride(0), dlogits.stride(1), logits,
        logits.stride(0), logits.stride(1), targets, mask, adv, old_logp,
        ref_logp if beta > 0 else None, logp, lse, T, V, clip_low, clip_high, clip_c, lr_clamp,
        kl_clamp, beta, temperature, **_launch_config(V, block_v))


class FusedGRPOLoss(torch.autograd.Function):
    """Autograd wrapper: gradient flows to the logits only (rewards, old/ref log-probs are data)."""

    @staticmethod
    def forward(ctx, logits, targets, mask, rewards, old_logp, ref_logp, group_size, clip_low,
                clip_high, clip_c, lr_clamp, kl_clamp, beta, temperature, scale, eps, inplace, block_v):
        clips = (clip_low, clip_high, clip_c, lr_clamp, kl_clamp)
        loss, logp, lse, adv = _forward(logits, targets, mask, rewards, old_logp, ref_logp,
                                        group_size, *clips, beta, temperature, scale, eps, block_v)
        ctx.save_for_backward(logits, targets, mask, adv, old_logp, ref_logp, logp, lse)
        ctx.args = (*clips, beta, temperature, block_v)
        ctx.inplace, ctx.used = inplace, False
        ctx.mark_non_differentiable(adv)
        ctx.set_materialize_grads(False)
        return loss, logp, adv

    @staticmethod
    def backward(ctx, grad_loss, grad_logp, _grad_adv):
        logits, targets, mask, adv, old_logp, ref_logp, logp, lse = ctx.saved_tensors
        if ctx.inplace and ctx.used:
            raise RuntimeError("fused_grpo_loss(inplace=True) already overwrote its logits with their "
                               "gradient; it cannot run backward twice")
        ctx.used = True
        # An output that does not reach the loss has no upstream gradient (None): use zeros. Others
        # may be broadcast views (stride 0) of a sum(); the kernel indexes them by row.
        grad_loss, grad_logp = (torch.zeros_like(logp) if g is None else g.float().contiguous()
                                for g in (grad_loss, grad_logp))
        dlogits = logits if ctx.inplace else torch.empty_like(logits)
        _backward(grad_loss, grad_logp, dlogits, logits, targets, mask, adv, old_logp, ref_logp,
                  logp, lse, *ctx.args)
        return (dlogits,) + (None,) * 17


def _check_inputs(logits, targets, rewards, mask, group_size, old_logp, ref_logp, scale,
                  temperature):
    """Fail loudly on anything the kernel would silently misread."""
    if logits.dim() != 3 or logits.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"logits must be (B, T, V) fp32/bf16/fp16, "
                         f"got {tuple(logits.shape)} {logits.dtype}")
    B, T, V = logits.shape
    if B == 0 or T == 0:
        raise ValueError(f"logits {tuple(logits.shape)} hold no tokens")
    interpreting = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
    if not logits.is_cuda and not interpreting:
        raise RuntimeError("fused_grpo_loss needs CUDA logits (or TRITON_INTERPRET=1 set before "
                           "importing kernels, for the Triton interpreter on CPU); on CPU use "
                           "grpo.py's torch path")
    pairs = (("targets", targets), ("mask", mask), ("old_logp", old_logp), ("ref_logp", ref_logp))
    for name, x in pairs:
        if x is not None and tuple(x.shape) != (B, T):
            raise ValueError(f"{name} must be (B, T) = {(B, T)}, got {tuple(x.shape)}")
    if tuple(rewards.shape) != (B,):
        raise ValueError(f"rewards must be (B,) = ({B},), got {tuple(rewards.shape)}")
    if group_size < 1 or B % group_size != 0:
        raise ValueError(f"B = {B} sequences do not split into groups of group_size = {group_size}")
    if scale not in ("group", "none"):
        raise ValueError(f"scale must be 'group' or 'none', got {scale!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not torch.isfinite(rewards).all():
        raise ValueError(f"rewards contain non-finite values: {rewards.tolist()}")
    bad = mask.bool() & ((targets < 0) | (targets >= V))
    if bad.any():
        b, t = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"targets[{b}, {t}] = {int(targets[b, t])} is outside the vocabulary "
                         f"[0, {V}) at an unmasked position ({int(bad.sum())} such positions)")


def fused_grpo_loss(logits: torch.Tensor, targets: torch.Tensor, rewards: torch.Tensor,
                    mask: torch.Tensor, group_size: int, old_logp: torch.Tensor | None = None,
                    ref_logp: torch.Tensor | None = None, clip_low: float = 0.2,
                    clip_high: float = 0.2, beta: float = 0.001, temperature: float = 1.0,
                    scale: str = "group", eps: float = 1e-6, inplace: bool = False,
                    block_v: int | None = None, clip_c: float | None = None,
                    log_ratio_clamp: float | None = None, kl_clamp: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token GRPO loss (Algorithm 2, line 8) with in-kernel group advantages (paper §3.2).

    logits: (B, T, V) fp32/bf16/fp16 (last dim contiguous); targets: (B, T) int; rewards: (B,) in
    group-major order (B = prompts * group_size); mask: (B, T), nonzero = response token;
    old_logp, ref_logp: (B, T) or None. old_logp=None is on-policy (ratio 1, gradient flows);
    the KL term is used when beta > 0 (default 0.001, decision 7) and ref_logp is given.
      -> token_loss (B, T) fp32 (differentiable w.r.t. logits, 0 where masked),
         logp (B, T) fp32 (differentiable, 0 where masked), A (B,) fp32.
    inplace: write the logits' gradient into the logits buffer (decision 5).
    block_v: vocabulary block per loop step; default min(next_pow2(V), 4096).
    clip_c: dual-clip bound (> 1); log_ratio_clamp, kl_clamp: verl's clamps; None = off (decision 9).
    """
    _check_inputs(logits, targets, rewards, mask, group_size, old_logp, ref_logp, scale, temperature)
    if clip_c is not None and not clip_c > 1:
        raise ValueError(f"clip_c must be > 1 (dual-clip caps a loss above the clipped one), got {clip_c}")
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    as_rows = lambda x: None if x is None else x.detach().float().contiguous()  # noqa: E731
    off = lambda x: float("inf") if x is None else float(x)                       # noqa: E731
    return FusedGRPOLoss.apply(
        logits, targets.long().contiguous(), mask.to(torch.int8).contiguous(), as_rows(rewards),
        as_rows(old_logp), as_rows(ref_logp), int(group_size), float(clip_low), float(clip_high),
        off(clip_c), off(log_ratio_clamp), off(kl_clamp), float(beta), float(temperature), scale,
        float(eps), bool(inplace), block_v)
