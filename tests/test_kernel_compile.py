"""
kernels/grpo_loss.py compiled ahead of time for real GPUs, on a machine without one: every variant
the launchers can pick, for sm_80 (A100) and sm_90 (H100/H200), must give a cubin with no register
spills and shared memory within the per-block limit. ptxas and cuobjdump ship in the triton wheel.

    python -m pytest -q -s tests/test_kernel_compile.py     # -s prints the table
    python tests/test_kernel_compile.py                      # the table alone

Decisions:
1. Compiles in a subprocess with TRITON_INTERPRET=0. conftest.py sets TRITON_INTERPRET=1 before
   triton is imported, which makes every @triton.jit function an interpreter object, triton's own
   (tl.sum, tl.max) included: triton.compile of even a re-imported copy of the kernel then fails
   inside tl.sum ("InterpreterError ... has no attribute 'data'"), measured with triton 3.7.1.
2. The variants are the launchers' own calls: `_forward` and `_backward` run on meta tensors with
   the kernels swapped for recorders, and each recorded call is specialised by Triton's own binder,
   as JITFunction.run does (pointer dtypes, None -> constexpr, ints -> i32/i64, divisible by 16).
   The signatures are the launcher's by construction, not a hand-written copy.
3. Axes: the full product of logits fp32 / bf16 / fp16, old_logp None or given and ref_logp None
   or given (beta > 0), at V = 32768 and 151936 with T = 1024 (both give BLOCK_V 4096 and 8
   warps); then, in bf16 with both log-probs, the two axes that each touch one code path: scale
   "none" (the advantage) and T = 16384 at V = 151936, where stride_b = T * V passes 2**31 and
   becomes i64 (the row address). The full product of all five axes (72 variants per arch, 47 s
   here) gave the same registers for each dtype and no spills. Fixed: K = 8 (the paper's group
   size: BLOCK_K 8) and 16-byte aligned pointers (torch's CUDA allocator gives 512). Launches
   that specialise the same way compile once: 27 variants per arch.
4. Shared memory asserted: static (cuobjdump SHARED) + dynamic (Triton's metadata.shared) within
   48 KiB, the per-block limit without opt-in, itself below the opt-in maxima of sm_80 (163 KiB)
   and sm_90 (227 KiB). Spills: cuobjdump's STACK and LOCAL both 0.
5. A fresh TRITON_CACHE_DIR per run: every variant is really compiled; ~/.triton is not touched.
"""
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = (80, 90)
SHARED_LIMIT = 48 * 1024                           # bytes per block, decision 4
DTYPES = ("fp32", "bf16", "fp16")
SHAPES = ((1024, 32768), (1024, 151936))          # (T, V), decision 3
K, B = 8, 16
RES_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                reason="triton is not installed (Linux only; see requirements.txt)")


# ----------------------------------------------------------------------------- child process

def launcher_calls(mod, dtype, old, ref, scale, T, V):
    """[(kernel, args, kwargs)] of one forward and one backward launch, on meta tensors."""
    import torch
    calls = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kw: calls.append((self.kernel, args, kw))

    fwd, bwd = mod._grpo_fwd_kernel, mod._grpo_bwd_kernel
    mod._grpo_fwd_kernel, mod._grpo_bwd_kernel = Recorder(fwd), Recorder(bwd)
    try:
        def meta(*shape, dtype=torch.float32):           # shapes and dtypes, no memory
            return torch.empty(*shape, dtype=dtype, device="meta")

        names = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
        logits = meta(B, T, V, dtype=getattr(torch, names[dtype]))               # (B, T, V)
        targets, mask = meta(B, T, dtype=torch.int64), meta(B, T, dtype=torch.int8)
        old_logp, ref_logp = (meta(B, T) if x else None for x in (old, ref))
        beta = 0.001 if ref else 0.0
        clips = (0.2, 0.2, 3.0, 20.0, 10.0)              # clip low / high, clip_c, clamps: plain floats
        loss, logp, lse, adv = mod._forward(logits, targets, mask, meta(B), old_logp, ref_logp, K,
                                            *clips, beta, 1.0, scale, 1e-6, None)
        mod._backward(meta(B, T), meta(B, T), logits, logits, targets, mask, adv, old_logp,
                      ref_logp, logp, lse, *clips, beta, 1.0, None)
    finally:
        mod._grpo_fwd_kernel, mod._grpo_bwd_kernel = fwd, bwd
    return calls


def launches():
    """(dtype, old, ref, scale, T, V) of every launch to record (decision 3)."""
    for dtype, old, ref, (T, V) in itertools.product(DTYPES, (False, True), (False, True), SHAPES):
        yield dtype, old, ref, "group", T, V
    yield "bf16", True, True, "none", 1024, 151936
    yield "bf16", True, True, "group", 16384, 151936                 # stride_b = T * V > 2**31


def specialise(kernel, args, kw, backend):
    """(signature, constexprs, attrs, options) exactly as JITFunction.run derives them."""
    import triton
    from triton.runtime.jit import create_function_from_signature
    kw = dict(kw, debug=triton.knobs.runtime.debug,
              instrumentation_mode=triton.knobs.compilation.instrumentation_mode)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*args, **kw)
    return kernel._pack_args(backend, kw, bound, specialization, backend.parse_options(kw))


def describe(name, sig, constexprs):
    """A short label: fwd/bwd, logits dtype, old/ref given, scale, stride type, BLOCK_V."""
    const = {kname: constexprs.get((i,)) for i, kname in enumerate(sig)}
    parts = ["fwd" if "fwd" in name else "bwd", sig["LOGITS"].lstrip("*"),
             "old" if sig["OLD_LOGP"] != "constexpr" else "-",
             "ref" if sig["REF_LOGP"] != "constexpr" else "-"]
    if "SCALE_GROUP" in sig:
        parts.append("group" if const["SCALE_GROUP"] else "none")
    parts += [f"stride:{sig['stride_b']}", f"BLOCK_V:{const['BLOCK_V']}"]
    return " ".join(parts)


def compile_all(out_dir: str) -> list[dict]:
    """Compile every launcher variant for every arch; one dict per (variant, arch)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import CUDABackend
    from triton.compiler import ASTSource
    import kernels.grpo_loss as mod
    cuobjdump = triton.knobs.nvidia.cuobjdump.path
    rows, seen = [], set()
    for arch in ARCHS:
        target = GPUTarget("cuda", arch, 32)
        backend = CUDABackend(target)
        for dtype, old, ref, scale, T, V in launches():
            for kernel, args, kw in launcher_calls(mod, dtype, old, ref, scale, T, V):
                options, sig, constexprs, attrs = specialise(kernel, args, kw, backend)
                key = (arch, kernel.__name__, str(sig), str(constexprs), str(attrs), str(options))
                if key in seen:
                    continue
                seen.add(key)
                compiled = triton.compile(ASTSource(kernel, sig, constexprs, attrs), target=target,
                                          options=options.__dict__)
                cubin = compiled.asm["cubin"]
                path = os.path.join(out_dir, f"{len(rows)}.cubin")
                with open(path, "wb") as f:
                    f.write(cubin)
                usage = subprocess.run([cuobjdump, "-res-usage", path], capture_output=True,
                                       text=True, check=True).stdout
                reg, stack, shared, local = (int(x) for x in RES_USAGE.search(usage).groups())
                rows.append(dict(variant=describe(kernel.__name__, sig, constexprs), arch=arch,
                                 example=f"{dtype} T={T} V={V}", elf=cubin[:4] == b"\x7fELF",
                                 cubin_bytes=len(cubin), num_warps=compiled.metadata.num_warps,
                                 regs=reg, stack=stack, local=local, static_shared=shared,
                                 dynamic_shared=compiled.metadata.shared))
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'variant':<52} {'arch':<6} {'warps':>5} {'regs':>4} {'spills':>6} {'shared (B)':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        spills = "none" if r["stack"] == r["local"] == 0 else f"{r['stack']}+{r['local']}"
        lines.append(f"{r['variant']:<52} sm_{r['arch']:<3} {r['num_warps']:>5} {r['regs']:>4} "
                     f"{spills:>6} {r['static_shared'] + r['dynamic_shared']:>10}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every (variant, arch), compiled once in a TRITON_INTERPRET=0 subprocess (decision 1)."""
    import triton
    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton build has no NVIDIA backend")
    for tool in ("ptxas", "cuobjdump"):
        try:
            getattr(triton.knobs.nvidia, tool).path
        except RuntimeError as e:
            pytest.skip(f"{tool} not found in the triton wheel ({e})")
    tmp = tmp_path_factory.mktemp("aot")
    out = tmp / "rows.json"
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"AOT compile exited {proc.returncode}\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-6000:]}")
    rows = json.loads(out.read_text())
    print("\n" + table(rows))
    return rows


@pytest.mark.parametrize("arch", ARCHS, ids=[f"sm_{a}" for a in ARCHS])
def test_every_variant_compiles_without_spills(compiled, arch):
    rows = [r for r in compiled if r["arch"] == arch]
    assert rows, f"no variant compiled for sm_{arch}"
    bad = [f"{r['variant']} (e.g. {r['example']}): elf={r['elf']} stack={r['stack']} "
           f"local={r['local']} shared={r['static_shared']}+{r['dynamic_shared']}"
           for r in rows if not (r["elf"] and r["cubin_bytes"] > 0 and r["stack"] == r["local"] == 0
                                 and r["static_shared"] + r["dynamic_shared"] <= SHARED_LIMIT)]
    assert not bad, f"sm_{arch}: {len(bad)} of {len(rows)} variants fail:\n" + "\n".join(bad)


def test_variants_cover_every_launcher_choice(compiled):
    """The recorded launches span every axis of decision 3, in both kernels, with the BLOCK_V and
    warps that _launch_config picks for the paper's vocabularies."""
    import kernels.grpo_loss as mod
    configs = {(c["BLOCK_V"], c["num_warps"]) for c in
               (mod._launch_config(V, None) for _, V in SHAPES)}
    for kernel in ("fwd", "bwd"):
        fields = [r["variant"].split() + [r["num_warps"]] for r in compiled
                  if r["variant"].startswith(kernel) and r["arch"] == ARCHS[0]]
        assert {f[1] for f in fields} == {"fp32", "bf16", "fp16"}
        assert {(f[2], f[3]) for f in fields} == {("-", "-"), ("old", "-"), ("-", "ref"),
                                                  ("old", "ref")}
        assert {f[-3] for f in fields} == {"stride:i32", "stride:i64"}
        assert {(int(f[-2].split(":")[1]), f[-1]) for f in fields} == configs
        if kernel == "fwd":
            assert {f[4] for f in fields} == {"group", "none"}
    assert len({r["variant"] for r in compiled}) * len(ARCHS) == len(compiled)


if __name__ == "__main__":
    os.environ["TRITON_INTERPRET"] = "0"            # decision 1; before triton is imported
    sys.path.insert(0, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(tmp, "cache"))
        rows = compile_all(tmp)
    if sys.argv[1:2] == ["--json"]:
        with open(sys.argv[2], "w") as f:
            json.dump(rows, f)
    else:
        print(table(rows))
