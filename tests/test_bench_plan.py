"""
The memory plan of benchmarks/memory.py against the models transformers builds (CPU, a few seconds):
parameter counts against sum(p.numel()) of the real-width configs on the meta device, activation
bytes against the tensors autograd saves in a real forward pass, and `bench.py gpu` refusing to
run without a GPU while its dry run lists every part.
"""
import os
import subprocess
import sys

import pytest
import torch

from benchmarks.memory import ARCHS, encoder_config, layer_activation_bytes, make_config, numel_on_meta, param_count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("layers", [None, 2])
def test_param_count_formula_matches_the_built_model(arch, layers):
    cfg = make_config(arch, layers)
    assert param_count(cfg)["total"] == numel_on_meta(cfg)


def test_published_numbers():
    """The figures the model cards state: Qwen2.5-1.5B 1.54B (1.31B non-embedding), Llama-3.2-1B
    1.24B, Gemma-3-4B's text model 3.88B; mmBERT-small 140M (42M non-embedding)."""
    n = {a: param_count(make_config(a)) for a in ARCHS}
    assert round(n["qwen2.5-1.5b"]["total"] / 1e9, 2) == 1.54
    assert round(n["qwen2.5-1.5b"]["layer"] * 28 / 1e9, 2) == 1.31
    assert round(n["llama3.2-1b"]["total"] / 1e9, 2) == 1.24
    assert round(n["gemma3-4b"]["total"] / 1e9, 2) == 3.88
    enc = encoder_config()
    total = numel_on_meta(enc, causal_lm=False)
    assert round(total / 1e6) == 140 and round((total - enc.vocab_size * enc.hidden_size) / 1e6) == 42


def test_gemma_cut_keeps_both_attention_kinds():
    assert make_config("gemma3-4b", 2).layer_types == ["sliding_attention", "full_attention"]
    assert make_config("gemma3-4b").layer_types.count("full_attention") == 5     # layers 6, 12, ..., 30


def _saved_bytes_per_layer_token(cfg, B: int = 2) -> float:
    """Bytes of the tensors autograd saves (parameters excluded) per token and decoder layer: the
    difference between a 2-layer and a 1-layer bf16 model, and between 64 and 32 tokens (which
    leaves out per-layer constants such as Gemma's fp32 (1 + w) norm weights)."""
    from transformers import AutoModelForCausalLM

    def saved(n_layers, T):
        cfg.num_hidden_layers = n_layers
        if getattr(cfg, "layer_types", None):
            cfg.layer_types = ["full_attention"] * n_layers
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen = {}

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params:
                seen[ptr] = t.untyped_storage().nbytes()
            return t
        ids = torch.randint(0, cfg.vocab_size, (B, T))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1)
        return sum(seen.values())
    return (saved(2, 64) - saved(1, 64) - saved(2, 32) + saved(1, 32)) / (B * 32)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_activation_formula_matches_saved_tensors(arch):
    """Narrow widths, the family's own modules; no padding, so CPU SDPA keeps k/v at the KV heads."""
    cfg = make_config(arch, 2)
    cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size = 128, 352, 512
    cfg.num_attention_heads, cfg.num_key_value_heads = 4, 2
    cfg.head_dim = 48 if arch != "qwen2.5-1.5b" else 32
    measured = _saved_bytes_per_layer_token(cfg)
    assert measured == layer_activation_bytes(cfg, gqa_native=True), (arch, measured)


def _bench(*args, env=None):
    return subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_script_refuses_without_a_gpu_and_dry_run_lists_its_parts():
    proc = _bench("gpu")
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr, proc.stderr
    proc = _bench("gpu", "--dry_run")
    assert proc.returncode == 0, proc.stderr
    for part in ("kernel tests", "bench.py kernel", "tiny demo", "step --arch qwen2.5-1.5b", "samplers"):
        assert part in proc.stdout, (part, proc.stdout)
    assert "TRITON_INTERPRET=0" in proc.stdout and "--arch qwen2.5-1.5b" in proc.stdout


def test_memory_plan_prints_a_table_per_arch():
    proc = _bench("memory")
    assert proc.returncode == 0, proc.stderr
    for arch in ARCHS:
        assert f"### {arch}" in proc.stdout
    assert "--micro_prompts 1 without" in proc.stdout and "--gen_batch_size" in proc.stdout


def test_gpu_samplers_part_runs_on_a_cut_model(capsys):
    """The samplers part of `bench.py gpu` on CPU, 2 layers and a few tokens: every line but CUDA's."""
    pytest.importorskip("sampler")
    from benchmarks.gpu import samplers_part
    samplers_part(new_tokens=4, n=4, prompt_len=24, layers=2, device="cpu")
    out = capsys.readouterr().out
    assert "| hf |" in out and "| ours |" in out, out
    assert "| 16 |" in out, out                       # 4 sequences x 4 tokens each, for both samplers


def test_step_arch_settings_on_a_gpu_budget(capsys):
    """`bench.py step --arch`'s GPU branch (no GPU needed): the paper's per-GPU shapes, micro-batch and
    generation batch from the plan, the scale cuts of the CPU branch."""
    from argparse import Namespace
    from benchmarks.memory import GiB, plan
    from benchmarks.step import arch_settings
    a = Namespace(arch="qwen2.5-1.5b", scale=None, prompt_len=512, new_tokens=1024, micro_prompts=None, beta=None)
    s = arch_settings(a, world=8, budget=0.9 * 80 * GiB)           # 8 x 80 GiB: the paper's setup
    assert (s["layers"], s["P_local"], s["P"], s["R"], s["beta"], s["m"], s["G"]) == (28, 32, 512, 1024, 0.001, 1, 256)
    assert plan(s["cfg"], micro_prompts=2, gen_batch=256, **s["kw"])["training peak"] > 0.9 * 80 * GiB
    s = arch_settings(Namespace(**{**vars(a), "arch": "gemma3-4b"}), world=8, budget=0.9 * 80 * GiB)
    assert s["ckpt"] and s["m"] == 4 and s["G"] == 128 and "--grad_ckpt --micro_prompts 4" in capsys.readouterr().out
    s = arch_settings(a, world=1, budget=None)                      # CPU: --scale 32
    assert (s["layers"], s["P_local"], s["P"], s["R"], s["beta"], s["m"], s["G"]) == (2, 1, 16, 32, 0.0, 1, 8)
    assert "decoder layers 28 -> 2" in capsys.readouterr().out
