"""grpo.py against hand-computed numbers, fp64 references and a slow per-sequence loss."""
import math

import pytest
import torch

from grpo import group_advantages, grpo_loss, token_logprobs


# ----------------------------------------------------------------------------- advantages

def test_advantages_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.2, 0.4, 0.6, 0.8])
    A = group_advantages(r, group_size=4)
    # group 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3)
    a1 = 0.5 / (math.sqrt(1.0 / 3.0) + 1e-6)
    # group 2: mean 0.5, deviations -0.3 -0.1 0.1 0.3, unbiased std sqrt(0.2 / 3)
    s2 = math.sqrt((0.09 + 0.01 + 0.01 + 0.09) / 3.0) + 1e-6
    want = [a1, -a1, -a1, a1, -0.3 / s2, -0.1 / s2, 0.1 / s2, 0.3 / s2]
    torch.testing.assert_close(A, torch.tensor(want), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(group_advantages(r, 4, scale="none"),
                               torch.tensor([0.5, -0.5, -0.5, 0.5, -0.3, -0.1, 0.1, 0.3]),
                               rtol=1e-5, atol=1e-6)


def test_advantages_equal_and_singleton_groups_are_exactly_zero():
    r = torch.tensor([0.3, 0.3, 0.3, 0.7, 0.7, 0.7, 0.0, 1.0, 0.5])
    A = group_advantages(r, group_size=3)
    assert torch.equal(A[:6], torch.zeros(6))                # all-equal groups: exactly 0, no NaN
    assert torch.isfinite(A).all() and A[6:].abs().sum() > 0
    for scale in ("group", "none"):
        assert torch.equal(group_advantages(r, 1, scale=scale), torch.zeros(9))


def test_advantages_errors():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)
    with pytest.raises(ValueError, match="non-finite"):
        group_advantages(torch.tensor([0.0, float("nan")]), group_size=2)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), group_size=2, scale="batch")


# ----------------------------------------------------------------------------- log-probs

@pytest.mark.parametrize("V", [1000, 4099])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_matches_fp64(V, dtype, temperature):
    g = torch.Generator().manual_seed(V)
    B, T = 3, 7
    logits = (torch.randn(B, T, V, generator=g) * 4).to(dtype).requires_grad_()
    targets = torch.randint(0, V, (B, T), generator=g)
    upstream = torch.randn(B, T, generator=g)

    logp = token_logprobs(logits, targets, temperature, chunk_rows=4)   # 21 rows, 6 chunks
    (logp * upstream).sum().backward()

    ref_in = logits.detach().double().requires_grad_()
    ref = torch.log_softmax(ref_in / temperature, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    (ref * upstream.double()).sum().backward()

    assert logp.dtype == torch.float32 and logits.grad.dtype == dtype
    torch.testing.assert_close(logp.double(), ref.detach(), rtol=0, atol=2e-5)
    tol = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.bfloat16: dict(rtol=1.6e-2, atol=1e-3)}
    torch.testing.assert_close(logits.grad.double(), ref_in.grad.to(dtype).double(), **tol[dtype])


def test_token_logprobs_leaves_logits_untouched():
    logits = torch.randn(2, 3, 50, requires_grad=True)
    before = logits.detach().clone()
    token_logprobs(logits, torch.zeros(2, 3, dtype=torch.long)).sum().backward()
    assert torch.equal(logits.detach(), before)


# ----------------------------------------------------------------------------- loss

def slow_grpo_loss(logp, old_logp, ref_logp, A, mask, clip_low, clip_high, beta, agg):
    """Sequence by sequence, token by token, as the formulas read."""
    seq_losses, total, count = [], 0.0, 0
    n_seq, n_pos = len(logp), len(logp[0])
    for i in range(n_seq):
        terms = []
        for t in range(n_pos):
            if mask[i][t] == 0:
                continue
            ratio = math.exp(logp[i][t] - old_logp[i][t])
            clipped = min(max(ratio, 1 - clip_low), 1 + clip_high)
            term = -min(ratio * A[i], clipped * A[i])
            d = ref_logp[i][t] - logp[i][t]
            term += beta * (math.exp(d) - d - 1)
            terms.append(term)
        total += sum(terms)
        count += len(terms)
        if agg == "seq-mean-token-mean":
            seq_losses.append(sum(terms) / max(len(terms), 1))
        else:
            seq_losses.append(sum(terms) / n_pos)
    if agg == "token-mean":
        return total / count
    return sum(seq_losses) / len(seq_losses)


def _batch(B=6, T=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    old = logp + (torch.rand(B, T, generator=g, dtype=torch.float64) - 0.5) * 1.2  # ratios 0.55..1.8
    ref = logp + (torch.rand(B, T, generator=g, dtype=torch.float64) - 0.5)
    A = torch.randn(B, generator=g, dtype=torch.float64)
    lengths = torch.tensor([9, 5, 1, 7, 9, 3])[:B]
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    return logp, old, ref, A, mask


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_grpo_loss_matches_slow_reference(agg):
    logp, old, ref, A, mask = _batch()
    ratio = torch.exp(logp - old)[mask.bool()]
    assert (ratio < 0.8).any() and (ratio > 1.2).any()     # clipping is active on both sides
    loss, stats = grpo_loss(logp, old, ref, A, mask, clip_low=0.2, clip_high=0.28, beta=0.05, agg=agg)
    want = slow_grpo_loss(logp.tolist(), old.tolist(), ref.tolist(), A.tolist(), mask.tolist(),
                          0.2, 0.28, 0.05, agg)
    assert loss.item() == pytest.approx(want, rel=1e-10)
    assert 0 < stats["clip_frac"] < 1 and stats["kl"] > 0 and stats["tokens"] == mask.sum().item()


def test_on_policy_loss_is_zero_but_gradient_is_not():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, 30, generator=g, requires_grad=True)
    targets = torch.randint(0, 30, (4, 6), generator=g)
    A = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.2]), group_size=4)
    logp = token_logprobs(logits, targets)
    loss, stats = grpo_loss(logp, logp.detach(), None, A, torch.ones(4, 6), beta=0.0)
    loss.backward()
    assert abs(loss.item()) < 1e-6 and stats["ratio"] == pytest.approx(1.0)
    assert logits.grad.abs().sum() > 1e-3


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_gradient_independent_of_micro_batch_split(agg):
    g = torch.Generator().manual_seed(2)
    B, T, V = 6, 8, 40
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (B, T), generator=g)
    old = token_logprobs(logits, targets).detach() + 0.3 * torch.randn(B, T, generator=g, dtype=torch.float64)
    ref = old - 0.1
    A = torch.randn(B, generator=g, dtype=torch.float64)
    mask = (torch.rand(B, T, generator=g) > 0.3).double()
    kw = dict(beta=0.01, agg=agg, num_tokens=mask.sum().item(), num_seqs=B, max_len=T)

    full, _ = grpo_loss(token_logprobs(logits, targets), old, ref, A, mask, **kw)
    (g_full,) = torch.autograd.grad(full, logits)
    g_split = torch.zeros_like(logits)
    for rows in (slice(0, 1), slice(1, 4), slice(4, 6)):    # uneven micro-batches
        part, _ = grpo_loss(token_logprobs(logits[rows], targets[rows]), old[rows], ref[rows],
                            A[rows], mask[rows], **kw)
        g_split += torch.autograd.grad(part, logits)[0]
    torch.testing.assert_close(g_split, g_full, rtol=1e-10, atol=1e-12)


def _hand_batch(log_ratios, A, ref_minus_logp=None):
    """logp (leaf, fp64) and old/ref log-probs giving the listed log-ratios, one row per sequence."""
    logp = torch.full((len(log_ratios), len(log_ratios[0])), -2.0, dtype=torch.float64, requires_grad=True)
    old = logp.detach() - torch.tensor(log_ratios, dtype=torch.float64)
    ref = None if ref_minus_logp is None else logp.detach() + torch.tensor(ref_minus_logp, dtype=torch.float64)
    return logp, old, ref, torch.tensor(A, dtype=torch.float64), torch.ones(logp.shape, dtype=torch.float64)


def test_dual_clip_hand_computed():
    """Clip 0.2 / 0.2, dual-clip c = 3, token-mean over 6 tokens. A = +1: ratio 1.5 clips high (loss
    -1.2, no gradient), 0.5 stays (-0.5, d/dlogp -0.5), e^25 clips high (-1.2). A = -1: ratio 1.5
    stays (1.5, d/dlogp 1.5), 0.5 clips low (0.8, none), 4 gives 4 > c = 3: capped at 3, no gradient."""
    logp, old, _, A, mask = _hand_batch([[math.log(1.5), math.log(0.5), 25.0],
                                         [math.log(1.5), math.log(0.5), math.log(4.0)]], [1.0, -1.0])
    loss, stats = grpo_loss(logp, old, None, A, mask, beta=0.0, clip_c=3.0)
    assert loss.item() == pytest.approx((-1.2 - 0.5 - 1.2 + 1.5 + 0.8 + 3.0) / 6, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[0, -0.5, 0], [1.5, 0, 0]], dtype=torch.float64) / 6)
    ratios = [1.5, 0.5, math.exp(25), 1.5, 0.5, 4.0]
    assert stats["clip_low_frac"] == pytest.approx(1 / 6) and stats["clip_high_frac"] == pytest.approx(2 / 6)
    assert stats["clip_frac"] == pytest.approx(3 / 6) and stats["dual_clip_frac"] == pytest.approx(1 / 6)
    assert stats["ratio_min"] == pytest.approx(0.5) and stats["ratio_max"] == pytest.approx(math.exp(25))
    assert stats["ratio"] == pytest.approx(sum(ratios) / 6)
    assert stats["approx_kl"] == pytest.approx(sum(r - 1 - math.log(r) for r in ratios) / 6)
    off, _ = grpo_loss(logp, old, None, A, mask, beta=0.0)              # without dual-clip: 4, d/dlogp 4
    assert off.item() == pytest.approx((-1.2 - 0.5 - 1.2 + 1.5 + 0.8 + 4.0) / 6, rel=1e-12)
    with pytest.raises(ValueError, match="clip_c must be > 1"):
        grpo_loss(logp, old, None, A, mask, clip_c=1.0)


def test_verl_clamps_hand_computed():
    """Log-ratio clamped to +-20 before exp, k3 to +-10 (verl's low_var_kl), beta 0.5, clip 0.2.
    A = -1, log-ratios 25, 0, 0: ratio e^20 (not e^25), loss e^20 and no gradient (outside the clamp);
    then loss 1 and d/dlogp 1 twice. ref - logp = 2: k3 = e^2 - 3, d/dlogp = 0.5 (1 - e^2); = 3:
    k3 = e^3 - 4 > 10, so 10 and no gradient; = -25: clamped to -20, k3 = e^-20 + 19 > 10, so 10."""
    logp, old, ref, A, mask = _hand_batch([[25.0, 0.0, 0.0]], [-1.0], [[2.0, 3.0, -25.0]])
    loss, stats = grpo_loss(logp, old, ref, A, mask, beta=0.5, log_ratio_clamp=20.0, kl_clamp=10.0)
    k3 = [math.exp(2) - 3, 10.0, 10.0]
    want = (math.exp(20) + 1.0 + 1.0 + 0.5 * sum(k3)) / 3
    assert loss.item() == pytest.approx(want, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(grad, torch.tensor([[0.5 * (1 - math.exp(2)), 1.0, 1.0]], dtype=torch.float64) / 3)
    assert stats["kl"] == pytest.approx(sum(k3) / 3) and stats["ratio_max"] == pytest.approx(math.exp(20))
    plain, _ = grpo_loss(logp, old, ref, A, mask, beta=0.5)             # no clamps: e^25, k3 unbounded
    assert plain.item() == pytest.approx((math.exp(25) + 2.0 + 0.5 * (math.exp(2) - 3 + math.exp(3) - 4
                                                                        + math.exp(-25) + 24)) / 3, rel=1e-12)


def test_grpo_loss_rejects_unknown_aggregation():
    logp, old, ref, A, mask = _batch()
    with pytest.raises(ValueError, match="agg"):
        grpo_loss(logp, old, ref, A, mask, agg="sum")


# ----------------------------------------------------------------------------- FSDP2

def test_fsdp2_matches_single_process_and_generation_does_not_deadlock(torchrun, tiny_policy_dir):
    proc = torchrun("tests/dist_grpo.py", tiny_policy_dir, timeout=240)
    assert "max param diff" in proc.stdout and "generation ok" in proc.stdout, proc.stdout


@pytest.mark.parametrize("agg, verl", [("token-mean", False), ("seq-mean-token-sum-norm", False), ("token-mean", True)])
def test_policy_loss_kernel_dispatch_matches_torch_path(agg, verl):
    """The same loss, gradient and stats through the fused Triton kernel (interpreted on CPU) and
    through group_advantages + token_logprobs + grpo_loss; with verl's dual-clip and clamps too."""
    pytest.importorskip("triton", reason="the fused kernel needs triton (Linux only, requirements.txt)")
    from grpo import policy_loss
    g = torch.Generator().manual_seed(3)
    B, T, V, K = 6, 5, 1000, 3
    logits = torch.randn(B, T, V, generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    rewards = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.3, 0.3])
    mask = (torch.rand(B, T, generator=g) > 0.2).float()
    ref = token_logprobs(logits, targets).detach() - 0.05
    kw = dict(temperature=0.9, beta=0.04, agg=agg, num_tokens=mask.sum().item(), num_seqs=B, max_len=T)
    if verl:                                 # old log-probs 0.6 away: every bound is taken somewhere
        old = token_logprobs(logits / 0.9, targets).detach() + 0.6 * torch.randn(B, T, generator=g)
        kw.update(old_logp=old, clip_c=1.3, log_ratio_clamp=0.7, kl_clamp=0.003)
    out = {}
    for kernel in ("torch", "triton"):
        x = logits.clone().requires_grad_()
        loss, stats = policy_loss(x, targets, rewards, mask, K, ref_logp=ref, kernel=kernel, **kw)
        loss.backward()
        out[kernel] = (loss.detach(), x.grad, stats)
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out["triton"][1], out["torch"][1], rtol=1e-4, atol=1e-7)
    assert out["triton"][2] == pytest.approx(out["torch"][2], rel=1e-4, abs=1e-7)
    if verl:
        st = out["torch"][2]
        assert st["dual_clip_frac"] > 0 and st["clip_frac"] > 0 and st["ratio_max"] <= math.exp(0.7) + 1e-6
