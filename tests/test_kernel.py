"""
kernels/: the fused GRPO loss kernel against its plain PyTorch reference in fp64.

    python -m pytest -q tests/test_kernel.py

On CPU the kernel runs in the Triton interpreter (TRITON_INTERPRET=1, set by conftest.py before
any import). Shapes are odd on purpose (B = 6 in groups of 3, T = 7, V = 1000 and 4099, which is
not a multiple of any block). Forward values and gradients are compared with one shared random
upstream gradient for the loss and one for the log-probs. With a GPU and TRITON_INTERPRET=0
(`TRITON_INTERPRET=0 python -m pytest -q tests/test_kernel.py`) the same tests run the compiled
kernel on CUDA, plus one at the full Qwen vocabulary. Without triton (it is Linux only) the whole
module skips; tests/test_no_triton.py checks that everything else works then.
"""
import inspect
import math
import os

import pytest
import torch

pytest.importorskip("triton", reason="the fused kernel needs triton (Linux only, requirements.txt)")
from kernels import fused_grpo_loss, grpo_loss_reference  # noqa: E402

B, K, T = 6, 3, 7                                   # 2 prompts x K = 3 rollouts, 7 tokens each
TOL = {torch.float32: dict(rtol=2e-5, atol=1e-6), torch.bfloat16: dict(rtol=1e-2, atol=1e-5)}
INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
DEVICE = "cuda" if torch.cuda.is_available() and not INTERPRETING else "cpu"


def make_batch(V, dtype, temperature=1.0, device=DEVICE, seed=0, noise=0.3):
    """Logits, targets (-100 at masked positions), mask, rewards with group 2 all equal, and
    old/ref log-probs near the true ones (so some ratios leave the clip range on both sides)."""
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(B, T, V, generator=g)).to(dtype)
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.rand(B, T, generator=g) > 0.25
    mask[:, 0] = True
    targets[~mask] = -100                            # padding ids must never be read
    rewards = torch.rand(B, generator=g)
    rewards[K:2 * K] = -0.9                          # all-equal group; in fp32 mean(r) != r here
    true = torch.log_softmax(logits.double() / temperature, -1).gather(
        -1, targets.clamp(min=0)[..., None]).squeeze(-1).float()
    old = true + noise * torch.randn(B, T, generator=g)
    ref = true + noise * torch.randn(B, T, generator=g)
    to = lambda x: x.to(device)                      # noqa: E731
    return to(logits), to(targets), to(mask), to(rewards), to(old), to(ref)


def run_both(logits, targets, mask, rewards, old, ref, **kw):
    """Kernel and fp64 reference, forward and backward with the same upstream gradients."""
    g = torch.Generator().manual_seed(1)
    grad_loss, grad_logp = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    grad_loss, grad_logp = grad_loss.to(logits.device), grad_logp.to(logits.device)

    x = logits.clone().requires_grad_()
    loss, logp, A = fused_grpo_loss(x, targets, rewards, mask, K, old_logp=old, ref_logp=ref, **kw)
    (loss * grad_loss + logp * grad_logp).sum().backward()

    kw.pop("block_v", None)
    xr = logits.double().requires_grad_()
    as64 = lambda t: None if t is None else t.double()  # noqa: E731
    r_loss, r_logp, r_A = grpo_loss_reference(xr, targets, rewards.double(), mask, K, as64(old),
                                              as64(ref), **kw)
    (r_loss * grad_loss.double() + r_logp * grad_logp.double()).sum().backward()
    return (loss, logp, A, x.grad), (r_loss, r_logp, r_A, xr.grad)


CASES = {
    "fp32-V1000-onpolicy": dict(dtype=torch.float32, V=1000, old=False, beta=0.0,
                                clip=(0.2, 0.2), temperature=1.0, scale="group"),
    "fp32-V4099-kl-asym-temp-block1024": dict(dtype=torch.float32, V=4099, old=True, beta=0.1,
                                              clip=(0.2, 0.28), temperature=0.7, scale="group",
                                              block_v=1024),
    "bf16-V1000-kl-asym-temp-noscale": dict(dtype=torch.bfloat16, V=1000, old=True, beta=0.04,
                                            clip=(0.1, 0.3), temperature=1.3, scale="none"),
    "bf16-V4099-onpolicy-kl": dict(dtype=torch.bfloat16, V=4099, old=False, beta=0.1,
                                   clip=(0.2, 0.28), temperature=0.7, scale="group"),
    "fp32-V1000-dualclip-clamps": dict(dtype=torch.float32, V=1000, old=True, beta=0.1, clip=(0.2, 0.28),
                                       temperature=1.0, scale="group", noise=0.6,
                                       verl=dict(clip_c=1.3, log_ratio_clamp=0.7, kl_clamp=0.08)),
    "bf16-V4099-dualclip-clamps": dict(dtype=torch.bfloat16, V=4099, old=True, beta=0.04, clip=(0.2, 0.2),
                                       temperature=0.8, scale="none", noise=0.6,
                                       verl=dict(clip_c=1.3, log_ratio_clamp=0.7, kl_clamp=0.08)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_fp64_reference(name):
    c = CASES[name]
    logits, targets, mask, rewards, old, ref = make_batch(c["V"], c["dtype"], c["temperature"],
                                                          noise=c.get("noise", 0.3))
    old = old if c["old"] else None
    kw = dict(clip_low=c["clip"][0], clip_high=c["clip"][1], beta=c["beta"],
              temperature=c["temperature"], scale=c["scale"], **c.get("verl", {}))
    if "block_v" in c:
        kw["block_v"] = c["block_v"]
    (loss, logp, A, grad), (r_loss, r_logp, r_A, r_grad) = run_both(
        logits, targets, mask, rewards, old, ref, **kw)

    assert loss.dtype == logp.dtype == A.dtype == torch.float32 and grad.dtype == c["dtype"]
    assert loss.shape == logp.shape == (B, T) and A.shape == (B,) and grad.shape == logits.shape
    # Forward is computed in fp32 from the same (possibly bf16) logits: tight for both dtypes.
    torch.testing.assert_close(A.double(), r_A, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logp.double(), r_logp, rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(grad.double(), r_grad, **TOL[c["dtype"]])

    assert (A[K:2 * K] == 0).all(), "an all-equal group must get exactly A = 0"
    assert torch.isfinite(loss).all() and torch.isfinite(grad.float()).all()
    assert (loss[~mask] == 0).all() and (logp[~mask] == 0).all()
    assert (grad[~mask] == 0).all(), "masked tokens must get exactly zero gradient"
    assert grad[mask].abs().sum() > 0
    if c["old"]:                                     # the clipped branch is exercised on both sides
        ratio = torch.exp(r_logp - old.double())[mask]
        assert (ratio < 1 - c["clip"][0]).any() and (ratio > 1 + c["clip"][1]).any()
    if "verl" in c:                                  # and every bound of dual-clip and the clamps is taken
        v, neg = c["verl"], (r_A < 0)[:, None].expand(B, T)[mask]
        log_ratio, d = (r_logp - old.double())[mask], (ref.double() - r_logp)[mask]
        k3 = torch.exp(d.clamp(-v["log_ratio_clamp"], v["log_ratio_clamp"])) - d.clamp(-v["log_ratio_clamp"], v["log_ratio_clamp"]) - 1
        counts = [int(x.sum()) for x in (log_ratio.abs() > v["log_ratio_clamp"], d.abs() > v["log_ratio_clamp"],
                                         k3 > v["kl_clamp"], neg & (log_ratio > math.log(v["clip_c"])))]
        assert min(counts) >= 2, counts


def test_on_policy_oracle():
    """old_logp=None: ratio is 1, so token loss = -A exactly (no ref_logp: no KL), yet the gradient
    is the one of passing old_logp = logp.detach() explicitly, and not zero."""
    logits, targets, mask, rewards, _, _ = make_batch(1000, torch.float32)
    x1 = logits.clone().requires_grad_()
    loss, logp, A = fused_grpo_loss(x1, targets, rewards, mask, K)
    loss.sum().backward()
    assert torch.equal(loss[mask], (-A[:, None]).expand(B, T)[mask])
    x2 = logits.clone().requires_grad_()
    loss2, _, _ = fused_grpo_loss(x2, targets, rewards, mask, K, old_logp=logp.detach())
    loss2.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-9)
    assert x1.grad.abs().max() > 1e-3


def test_group_of_one_and_no_kl_without_ref():
    """group_size 1 gives A = 0 everywhere; beta > 0 without ref_logp means no KL: loss 0."""
    logits, targets, mask, rewards, _, _ = make_batch(1000, torch.float32)
    x = logits.clone().requires_grad_()
    loss, _, A = fused_grpo_loss(x, targets, rewards, mask, 1, beta=0.5)
    loss.sum().backward()
    assert (A == 0).all() and (loss == 0).all() and (x.grad == 0).all()


def test_inplace_backward_on_a_strided_view():
    """logits[:, :-1] of a (B, T + 1, V) buffer, gradient written into that buffer in place."""
    V = 1000
    logits, targets, mask, rewards, old, ref = make_batch(V, torch.float32)
    extra = torch.randn(B, 1, V, device=DEVICE)
    full = torch.cat([logits, extra], dim=1).requires_grad_()                  # (B, T + 1, V)
    buffer = full.clone()                            # non-leaf: the buffer the kernel overwrites
    view = buffer[:, :-1]                            # strided, not contiguous
    loss, logp, _ = fused_grpo_loss(view, targets, rewards, mask, K, old_logp=old, ref_logp=ref,
                                    beta=0.1, inplace=True)
    loss.sum().backward(retain_graph=True)

    xr = logits.double().requires_grad_()
    r_loss, _, _ = grpo_loss_reference(xr, targets, rewards.double(), mask, K, old.double(),
                                       ref.double(), beta=0.1)
    r_loss.sum().backward()
    torch.testing.assert_close(full.grad[:, :-1].double(), xr.grad, **TOL[torch.float32])
    assert (full.grad[:, -1] == 0).all()
    assert torch.equal(buffer[:, :-1], full.grad[:, :-1]), "in place: the buffer holds the gradient"
    with pytest.raises(RuntimeError, match="backward twice"):
        loss.sum().backward()


def test_token_mean_matches_grpo_py():
    """The kernel, aggregated token-mean, equals grpo.py's token_logprobs + grpo_loss path."""
    import grpo
    logits, targets, mask, rewards, old, ref = make_batch(1000, torch.float32, temperature=0.8)
    targets = targets.clamp(min=0)                   # grpo.token_logprobs reads every position
    kw = dict(clip_low=0.2, clip_high=0.28, beta=0.05)
    x = logits.clone().requires_grad_()
    token_loss, _, _ = fused_grpo_loss(x, targets, rewards, mask, K, old, ref, temperature=0.8, **kw)
    (token_loss.sum() / mask.sum()).backward()

    y = logits.clone().requires_grad_()
    logp = grpo.token_logprobs(y, targets, temperature=0.8)
    A = grpo.group_advantages(rewards, K)
    loss, _ = grpo.grpo_loss(logp, old, ref, A, mask, agg="token-mean", **kw)
    loss.backward()
    torch.testing.assert_close(token_loss.sum() / mask.sum(), loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-7)


def test_one_default_per_knob_across_the_loss_paths():
    """Kernel, reference and grpo.py share clip and beta defaults (beta = 0.001, the release's)."""
    import grpo
    paths = (fused_grpo_loss, grpo_loss_reference, grpo.grpo_loss)
    for name in ("clip_low", "clip_high", "beta"):
        defaults = {f.__name__: inspect.signature(f).parameters[name].default for f in paths}
        assert len(set(defaults.values())) == 1, f"{name} defaults differ: {defaults}"
    assert inspect.signature(fused_grpo_loss).parameters["beta"].default == 0.001


def test_bad_input_fails_loudly(monkeypatch):
    logits, targets, mask, rewards, _, _ = make_batch(1000, torch.float32)
    bad = targets.clone()
    bad[2, 0] = 1000                                 # position (2, 0) is always unmasked
    with pytest.raises(ValueError, match=r"targets\[2, 0\] = 1000"):
        fused_grpo_loss(logits, bad, rewards, mask, K)
    with pytest.raises(ValueError, match="groups of group_size = 4"):
        fused_grpo_loss(logits, targets, rewards, mask, 4)
    with pytest.raises(ValueError, match="scale"):
        fused_grpo_loss(logits, targets, rewards, mask, K, scale="batch")
    with pytest.raises(ValueError, match="old_logp must be"):
        fused_grpo_loss(logits, targets, rewards, mask, K, old_logp=torch.zeros(B, T + 1))
    with pytest.raises(ValueError, match="non-finite"):
        fused_grpo_loss(logits, targets, rewards.masked_fill(rewards > 0.5, float("nan")), mask, K)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="needs CUDA"):
        fused_grpo_loss(logits.cpu(), targets.cpu(), rewards.cpu(), mask.cpu(), K)


@pytest.mark.skipif(DEVICE != "cuda", reason="needs CUDA and TRITON_INTERPRET=0 (compiled kernel)")
def test_cuda_full_vocabulary():
    """Qwen2.5's V = 151936 in bf16 on the GPU, against the reference in fp64."""
    logits, targets, mask, rewards, old, ref = make_batch(151936, torch.bfloat16, 0.9, device="cuda")
    (loss, logp, A, grad), (r_loss, r_logp, r_A, r_grad) = run_both(
        logits, targets, mask, rewards, old, ref, beta=0.04, clip_high=0.28, temperature=0.9)
    torch.testing.assert_close(logp.double(), r_logp, rtol=1e-5, atol=5e-5)
    torch.testing.assert_close(loss.double(), r_loss, rtol=1e-4, atol=5e-5)
    torch.testing.assert_close(grad.double(), r_grad, **TOL[torch.bfloat16])
