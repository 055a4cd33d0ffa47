"""
`python bench.py kernel`: the fused Triton GRPO loss (kernels/) against eager PyTorch, grpo.py's
chunked path and Liger-Kernel.

On CUDA, for (B*T, V) = (8192, 32768) and (16384, 151936) bf16: median forward+backward time
(triton.testing.do_bench), peak extra memory, and bandwidth as logits-sized passes at the speed of a
device-to-device copy measured in the same run, for eager PyTorch, grpo.py's chunked path,
Liger-Kernel's triton_grpo_loss (when importable; a comparison, never a dependency) and the fused
kernel (also in place). On CPU it times the torch paths only: the interpreter's timings mean nothing.
"""
import torch

from benchmarks.timing import median_time, peak_rss_in_child, peak_rss_since_reset, reset_peak_rss, table

KERNEL_CLIP, KERNEL_BETA, KERNEL_K = 0.2, 0.001, 8        # the release's clip 0.2/0.2, k3 beta, K


def _kernel_inputs(N: int, V: int, T: int, dtype, device: str) -> dict:
    """A GRPO micro-batch of N = B * T tokens: logits (B, T, V), groups of K = 8 rollouts, response
    lengths in [T/2, T], old/ref log-probs within ~0.1 nats of the policy's (so some ratios clip)."""
    from grpo import token_logprobs
    torch.manual_seed(0)
    B = N // T
    logits = 2 * torch.randn(B, T, V, device=device, dtype=dtype)
    targets = torch.randint(0, V, (B, T), device=device)
    lengths = torch.randint(T // 2, T + 1, (B,), device=device)
    mask = torch.arange(T, device=device)[None] < lengths[:, None]                     # (B, T)
    with torch.no_grad():
        true = token_logprobs(logits, targets)
    return {"logits": logits, "targets": targets, "mask": mask, "rewards": torch.rand(B, device=device),
            "old": true + 0.1 * torch.randn_like(true), "ref": true + 0.1 * torch.randn_like(true),
            "n": float(mask.sum())}


def _kernel_paths(cuda: bool) -> dict:
    """name -> make(x, d): returns a closure that runs forward + backward of the token-mean GRPO
    loss on the logits x (a leaf) and returns d loss / d x. Set-up (Liger's buffer) is in make."""
    from grpo import group_advantages, grpo_loss, token_logprobs
    from kernels import fused_grpo_loss, grpo_loss_reference
    K, c, beta = KERNEL_K, KERNEL_CLIP, KERNEL_BETA

    def eager(x, d):
        def run():
            loss, _, _ = grpo_loss_reference(x, d["targets"], d["rewards"], d["mask"], K, d["old"],
                                             d["ref"], clip_low=c, clip_high=c, beta=beta)
            return torch.autograd.grad(loss.sum() / d["n"], x)[0]
        return run

    def chunked(x, d):
        def run():
            logp = token_logprobs(x, d["targets"])
            A = group_advantages(d["rewards"], K)
            loss, _ = grpo_loss(logp, d["old"], d["ref"], A, d["mask"], clip_low=c, clip_high=c,
                                beta=beta, agg="token-mean", num_tokens=d["n"])
            return torch.autograd.grad(loss, x)[0]
        return run

    def fused(x, d, inplace=False):
        def run():
            loss, _, _ = fused_grpo_loss(x, d["targets"], d["rewards"], d["mask"], K, d["old"],
                                         d["ref"], clip_low=c, clip_high=c, beta=beta,
                                         inplace=inplace)
            return torch.autograd.grad(loss.sum() / d["n"], x)[0]
        return run

    def liger(x, d):
        from liger_kernel.transformers.grpo_loss import triton_grpo_loss
        B, T, V = x.shape                                  # Liger takes (B, T + 1, V) logits
        xl = torch.zeros(B, T + 1, V, device=x.device, dtype=x.dtype)
        xl[:, :-1] = x.detach()
        xl.requires_grad_()
        mask = d["mask"].int()

        def run():
            A = group_advantages(d["rewards"], K)
            loss, _, _ = triton_grpo_loss(xl, d["old"], d["ref"], d["targets"], A, mask,
                                          temperature=1.0, beta=beta, eps_low=c, eps_high=c,
                                          inplace=False, reduce=False)
            return torch.autograd.grad(loss.sum() / d["n"], xl)[0][:, :-1]
        return run

    paths = {"eager PyTorch (log_softmax + gather)": eager, "chunked grpo.token_logprobs": chunked}
    if cuda:
        paths["Liger-Kernel triton_grpo_loss"] = liger
        paths["fused Triton (ours)"] = fused
        paths["fused Triton (ours), in-place grad"] = lambda x, d: fused(x, d, inplace=True)
    return paths


def _max_rel_diff(grad: torch.Tensor, ref: torch.Tensor) -> float:
    """max |grad - ref| / max |ref| over (B, T, V), one sequence at a time (no fp32 full copy)."""
    grad, ref = grad.detach(), ref.detach()
    diff = max(float((g.float() - r.float()).abs().max()) for g, r in zip(grad, ref))
    return diff / max(float(r.float().abs().max()) for r in ref)


def _kernel_cpu_child(q, name: str, N: int, V: int, T: int):
    d = _kernel_inputs(N, V, T, torch.float32, "cpu")
    x = d["logits"].requires_grad_()
    run = _kernel_paths(cuda=False)[name](x, d)
    base = reset_peak_rss()
    run()
    q.put(peak_rss_since_reset() - base)


def _kernel_gpu_table(N: int, V: int, T: int = 1024) -> None:
    """One (B*T, V) bf16 shape on CUDA: median ms (do_bench), peak extra memory, bandwidth."""
    import triton.testing
    d = _kernel_inputs(N, V, T, torch.bfloat16, "cuda")
    x = d["logits"].requires_grad_()
    nbytes = x.numel() * x.element_size()
    src, dst = torch.empty_like(x), torch.empty_like(x)
    copy_bw = 2 * nbytes / (triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median") / 1e3)
    del src, dst
    rows, ref, t_eager = [], None, None
    for name, make in _kernel_paths(cuda=True).items():   # in-place last: it overwrites x
        try:
            run = make(x, d)
        except ImportError as e:
            print(f"{name}: skipped, not importable ({e})")
            continue
        torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        try:
            grad = run()
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError:                # eager at V = 151936 may not fit
            print(f"{name}: out of memory at this shape, skipped")
            continue
        peak = torch.cuda.max_memory_allocated() - base
        ref = grad if ref is None else ref                 # the first path (eager) is the reference
        err = _max_rel_diff(grad, ref)
        del grad
        ms = triton.testing.do_bench(run, warmup=100, rep=1000, return_mode="median")
        t_eager = ms if name.startswith("eager") else t_eager
        passes = ms / 1e3 * copy_bw / nbytes               # logits-sized passes at copy speed
        rows.append({"path": name, "fwd+bwd ms": f"{ms:.2f}", "speed-up vs eager": f"{t_eager / ms:.2f}x" if t_eager else "n/a",
                     "peak extra / logits": f"{peak / nbytes:.2f}x", "copy-speed passes": f"{passes:.2f}",
                     "of 3-pass floor": f"{3 / passes:.0%}", "max rel grad diff": f"{err:.1e}"})
    print(f"\n(B*T, V) = ({N}, {V}) bf16 as (B, T, V) = ({N // T}, {T}, {V}), K = {KERNEL_K}; "
          f"logits {nbytes / 2**30:.2f} GiB; device-to-device copy {copy_bw / 1e9:.0f} GB/s (measured now)")
    print(table(rows))


def main(argv=(), N: int = 2048, V: int = 32768, T: int = 256):
    """Fused GRPO loss kernel vs eager PyTorch, grpo.py's chunked path and Liger-Kernel (CUDA);
    on CPU the two torch paths only."""
    if torch.cuda.is_available():
        for shape in ((8192, 32768), (16384, 151936)):
            _kernel_gpu_table(*shape)
        print("\nforward+backward of the token-mean loss incl. advantages and the logits' gradient; "
              "copy-speed passes = time x copy bandwidth / logits bytes (fused floor: 3); "
              "max rel grad diff = max |grad - grad_eager| / max |grad_eager|.")
        return
    d = _kernel_inputs(N, V, T, torch.float32, "cpu")
    x = d["logits"].requires_grad_()
    rows, ref, t_eager = [], None, None
    for name, make in _kernel_paths(cuda=False).items():
        run = make(x, d)
        grad = run()
        ref = grad if ref is None else ref
        t = median_time(run, repeat=3)
        t_eager = t_eager or t
        mib = peak_rss_in_child(_kernel_cpu_child, name, N, V, T)
        rows.append({"path": name, "fwd+bwd ms": f"{t * 1e3:.0f}", "speed-up vs eager": f"{t_eager / t:.2f}x",
                     "peak extra MiB": f"{mib:.0f}",
                     "peak extra / logits": f"{mib * 2**20 / (N * V * 4):.2f}x",
                     "max rel grad diff": f"{_max_rel_diff(grad, ref):.1e}"})
    print(f"(B*T, V) = ({N}, {V}) fp32 as (B, T, V) = ({N // T}, {T}, {V}), K = {KERNEL_K}; logits "
          f"{N * V * 4 / 2**20:.0f} MiB; {torch.get_num_threads()} threads; median of 3; peak extra = "
          "resident-memory high-water mark above the inputs, in a fresh process")
    print(table(rows))
    print("fused Triton kernel: not timed, its timing needs a GPU (on CPU Triton only interprets); "
          "run `python bench.py kernel` on a CUDA machine for the full comparison.")
