"""
The paper's three policies as published configs, and a memory plan per GPU rank for training them
with lrpo.py (8 ranks, FSDP2, bf16 compute, fp32 master weights), computed from the same numbers.

    python bench.py memory                       # the plan for 8 x 80 GiB, the paper's per-GPU shapes
    python bench.py memory --world 1 --gpu_gib 141 --arch qwen2.5-1.5b

    from benchmarks.memory import ARCHS, make_config, param_count, plan
    cfg = make_config("gemma3-4b", layers=2)     # real widths and vocabulary, 2 decoder layers

Decisions:
1. Configs copy the published config.json of each checkpoint (the URL beside each), in transformers
   5's form (`rope_parameters`, `layer_types`); Gemma-3-4B-it is its text model (`text_config`), the
   part text rollouts run. (Loaded by name, the checkpoint also brings its SigLIP vision tower and
   projector, 419,816,304 parameters by the published vision_config: an fp32 shard and a bf16 copy
   during generation, but no gradient or AdamW state since no text reaches them; left out here.) `param_count` is written from the architecture and checked against
   `sum(p.numel())` of the model transformers builds from the config (tests/test_bench_plan.py and
   `bench.py step --arch`): they must agree exactly.
2. Per-rank bytes under lrpo.py's FSDP2 recipe (grpo.shard_model): fp32 master weights, fp32
   gradients and two fp32 AdamW moments are sharded over the W ranks (16 N / W); the frozen reference
   (beta > 0) is an fp32 sharded copy (4 N / W). Gathered bf16 copies: the root unit (embedding,
   tied lm_head, final norm) stays gathered from forward to backward, decoder layers one at a time
   plus the next one prefetched; generation gathers the whole policy (grpo.unsharded).
3. Activations are what autograd keeps per token and decoder layer with transformers' modules in
   bf16 (RMSNorm saves its fp32 upcast), summed term by term in `layer_activation_bytes`; the test
   checks the sum against the bytes of the tensors autograd actually saves (saved-tensor hooks).
   On a GPU, left padding needs an attention mask, which keeps SDPA from its native GQA path, so
   k and v are counted at all H query heads there (`gqa_native=False`), and the (B, 1, T, T) bool
   mask once per micro-batch. With lrpo.py --grad_ckpt each layer keeps only its bf16 input and
   one layer at a time is recomputed in backward; the plan shows both figures.
4. A micro-batch "fits" when its peak is at most 90% of the GPU's memory: the rest is left for the
   CUDA context, NCCL buffers and allocator fragmentation. Peak = states + gathered copies +
   activations + logits (B, R, V) bf16 + the loss path's extra (grpo.py chunked: the logits'
   gradient and one fp32 chunk of 1024 rows; fused kernel: the gradient and O(B R)).
5. Generation runs before training in the step, so its peak is separate: the whole bf16 policy,
   the KV cache of `gen_batch` sequences of P + R tokens, one layer's prefill intermediates and the
   sampling logits. sampler.py ("ours") gives every layer all P + R columns (its decision 4);
   transformers' generate() ("hf") keeps only the window in Gemma-3's sliding-window layers.
6. Prompts are counted at the paper's maximum of 512 tokens (a batch is padded to its longest).
"""
import argparse

from benchmarks.timing import table

GiB = 2 ** 30

# Sources (config.json as published; numbers verified against these on 2026-12):
#   https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json
#   https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/config.json (gated; the same
#     numbers in public copies, e.g. thunder_model_blocks' LLAMA_3_2_1B_CFG)
#   https://huggingface.co/google/gemma-3-4b-it/blob/main/config.json ("text_config"; the fields it
#     leaves out take Gemma3TextConfig's defaults, as in unsloth/gemma-3-4b-pt's full copy)
#   https://huggingface.co/jhu-clsp/mmBERT-small/blob/main/config.json (the reward encoder)
ARCHS = {
    "qwen2.5-1.5b": {
        "family": "qwen2", "hub": "Qwen/Qwen2.5-1.5B-Instruct",
        "config": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                       num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                       rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False,
                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        # ChatML; generation_config.json stops at <|im_end|> (151645) and <|endoftext|> (151643)
        "specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "pad": "<|endoftext|>",
        "eos": "<|im_end|>", "stops": ["<|im_end|>", "<|endoftext|>"],
        "template": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                     "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    },
    "llama3.2-1b": {
        "family": "llama", "hub": "meta-llama/Llama-3.2-1B-Instruct",
        "config": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                       max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192}),
        # generation_config.json stops at <|end_of_text|>, <|eom_id|> and <|eot_id|>; no pad token
        "specials": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                     "<|eom_id|>", "<|eot_id|>"], "pad": None,
        "eos": "<|eot_id|>", "stops": ["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"],
        "template": ("<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                     "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
                     "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
    },
    "gemma3-4b": {
        "family": "gemma3", "hub": "google/gemma-3-4b-it",
        "config": dict(vocab_size=262208, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                       num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                       max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
                       sliding_window=1024,
                       # sliding_window_pattern 6: layers 6, 12, ... attend globally, the rest locally
                       layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                                    for i in range(34)],
                       rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                           "rope_theta": 1000000.0},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}),
        # turns end with <end_of_turn>; generation_config.json stops at <eos> (1) and <end_of_turn> (106)
        "specials": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"], "pad": "<pad>",
        "eos": "<eos>", "stops": ["<eos>", "<end_of_turn>"],
        "template": ("<bos>{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' "
                     "else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
                     "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
    },
}
ENCODER = dict(vocab_size=256000, hidden_size=384, intermediate_size=1152, num_hidden_layers=22,
               num_attention_heads=6, max_position_embeddings=8192, local_attention=128,
               norm_eps=1e-5, pad_token_id=0, eos_token_id=1, bos_token_id=2, cls_token_id=1, sep_token_id=1,
               # global_attn_every_n_layers 3; both rope thetas 160000
               layer_types=["full_attention" if i % 3 == 0 else "sliding_attention" for i in range(22)],
               rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 160000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 160000.0}})
ENCODER_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]          # mmBERT's Gemma-2 tokenizer


def cut_layers(arch: str, layers: int) -> list[str] | None:
    """Gemma-3's layer types for the first `layers` layers, the last one made global if none is:
    a cut model keeps both kinds of attention. None for the families without layer types."""
    types = ARCHS[arch]["config"].get("layer_types")
    if types is None:
        return None
    kept = types[:layers]
    return kept if "full_attention" in kept else kept[:-1] + ["full_attention"]


def make_config(arch: str, layers: int | None = None):
    """The transformers config of `arch` (decision 1), with `layers` decoder layers if given."""
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config
    a = ARCHS[arch]
    kw = dict(a["config"])
    if layers is not None:
        kw["num_hidden_layers"] = layers
        if "layer_types" in kw:
            kw["layer_types"] = cut_layers(arch, layers)
    return {"qwen2": Qwen2Config, "llama": LlamaConfig, "gemma3": Gemma3TextConfig}[a["family"]](**kw)


def encoder_config(layers: int | None = None):
    """mmBERT-small's ModernBERT config (decision 1), with `layers` encoder layers if given."""
    from transformers import ModernBertConfig
    kw = dict(ENCODER)
    if layers is not None:
        kw["num_hidden_layers"], kw["layer_types"] = layers, kw["layer_types"][:layers]
    return ModernBertConfig(**kw)


def numel_on_meta(config, causal_lm: bool = True) -> int:
    """sum(p.numel()) of the model transformers builds from `config`, on the meta device (no memory)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM
    with torch.device("meta"):
        model = (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config)
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- parameters
def shape(cfg) -> dict:
    """The numbers every formula below reads, named as the config names them."""
    H = cfg.num_attention_heads
    family = "gemma3" if cfg.model_type.startswith("gemma3") else cfg.model_type   # gemma3_text too
    return dict(family=family, L=cfg.num_hidden_layers, d=cfg.hidden_size, I=cfg.intermediate_size,
                H=H, KV=cfg.num_key_value_heads, hd=getattr(cfg, "head_dim", None) or cfg.hidden_size // H,
                V=cfg.vocab_size, tied=cfg.tie_word_embeddings, window=getattr(cfg, "sliding_window", None),
                types=getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers)


def param_count(cfg) -> dict:
    """Parameters of one decoder layer, of the root FSDP unit (everything else) and in total."""
    s = shape(cfg)
    d, I, H, KV, hd, V = s["d"], s["I"], s["H"], s["KV"], s["hd"], s["V"]
    attn = d * H * hd + 2 * d * KV * hd + H * hd * d       # q, k, v, o projections
    if s["family"] == "qwen2":
        attn += H * hd + 2 * KV * hd                        # Qwen2 has biases on q, k and v
    mlp = 3 * d * I                                         # gate, up, down (gated MLP)
    if s["family"] == "gemma3":
        norms = 4 * d + 2 * hd                              # 4 RMSNorms per layer, plus q_norm and k_norm
    else:
        norms = 2 * d                                       # input and post-attention RMSNorm
    layer = attn + mlp + norms
    root = V * d + (0 if s["tied"] else V * d) + d          # embedding (+ untied lm_head) + final norm
    return {"layer": layer, "root": root, "total": s["L"] * layer + root}


# ----------------------------------------------------------------------------- activations
def layer_activation_bytes(cfg, gqa_native: bool = False) -> int:
    """Bytes autograd keeps per token in one decoder layer, bf16 compute (decision 3)."""
    s = shape(cfg)
    d, I, H, KV, hd = s["d"], s["I"], s["H"], s["KV"], s["hd"]
    kv_saved = KV if gqa_native else H                      # k, v as SDPA sees them
    sdpa = 2 * H * hd + 2 * 2 * kv_saved * hd + 2 * H * hd + 4 * H   # q, k, v, output (bf16), log-sum-exp (fp32)
    mlp = 2 * d + 3 * 2 * I + 2 * I                         # input; gate, up, act(gate); act * up (down's input)
    qkv_in = 2 * d                                          # the normed input of q/k/v (bf16)
    if s["family"] == "gemma3":
        norm = 4 + 4 * d + 4 * d                            # rsqrt, fp32 input and fp32 normed (x (1 + w) in fp32)
        qk_norms = (8 * H * hd + 4 * H) + (8 * KV * hd + 4 * KV)   # q_norm and k_norm, the same per head
        return 4 * norm + qk_norms + qkv_in + sdpa + mlp
    norm = 4 + 4 * d + 2 * d                                # rsqrt, fp32 input, bf16 normed (times the weight)
    return 2 * norm + qkv_in + sdpa + mlp


def activation_bytes(cfg, B: int, T: int, R: int, checkpointing: bool = False,
                     gqa_native: bool = False) -> int:
    """Bytes kept for backward by one micro-batch of B sequences of T tokens, R of them response
    tokens (the only ones that reach lm_head: grpo.response_logits), logits excluded."""
    s = shape(cfg)
    per_layer = layer_activation_bytes(cfg, gqa_native) * B * T
    if checkpointing:                                       # each layer keeps its bf16 input; one is recomputed
        layers = s["L"] * 2 * s["d"] * B * T + per_layer
    else:
        layers = s["L"] * per_layer
    final_norm = (8 if s["family"] == "gemma3" else 6) * s["d"] * B * T + 4 * B * T
    lm_head_in = 2 * s["d"] * B * R                         # the R kept positions, gathered (a copy)
    n_kinds = len(set(s["types"]))                          # one mask per attention kind (Gemma-3: 2)
    masks = n_kinds * B * T * T                             # (B, 1, T, T) bool, shared by the layers
    rope = n_kinds * 2 * 2 * s["hd"] * B * T                # cos and sin (B, T, hd) bf16 per kind
    return layers + final_norm + lm_head_in + masks + rope


def kv_cache_bytes(cfg, G: int, T: int, sampler: str = "ours") -> int:
    """KV cache of G sequences of T tokens, bf16 (decision 5)."""
    s = shape(cfg)
    per_token = 2 * s["KV"] * s["hd"] * 2                   # k and v, bf16
    window = s["window"] if sampler == "hf" else None       # ours: full-length layers everywhere
    lengths = [min(T, window) if t == "sliding_attention" and window else T for t in s["types"]]
    return sum(lengths) * per_token * G


# ----------------------------------------------------------------------------- the plan
def plan(cfg, world: int = 8, micro_prompts: int = 1, K: int = 8, P: int = 512, R: int = 1024,
         gen_batch: int = 256, beta: float = 0.001, encoder_params: int = 0, loss: str = "triton",
         checkpointing: bool = False, sampler: str = "ours") -> dict:
    """Peak bytes per rank of the generation and the training phase of one step (decisions 2-5),
    with each term; the loss path is "triton" (fused kernel) or "torch" (grpo.py chunked)."""
    s, n = shape(cfg), param_count(cfg)
    N, V = n["total"], s["V"]
    B, T = micro_prompts * K, P + R
    states = {"fp32 weights (shard)": 4 * N / world, "fp32 gradients (shard)": 4 * N / world,
              "AdamW moments (shard)": 8 * N / world,
              "reference fp32 (shard)": 4 * N / world if beta > 0 else 0,
              "reward encoder fp32": 4 * encoder_params}              # lrpo.py --encoder_dtype fp32 (default)
    gen = {"policy gathered bf16": 2 * N, "KV cache": kv_cache_bytes(cfg, gen_batch, T, sampler),
           "prefill, one layer": gen_batch * P * (6 * s["I"] + 8 * s["d"]),   # gate, up, act; residuals
           "sampling logits": gen_batch * V * (2 + 4 + 4)}      # bf16 logits, fp32 scores and probs
    train = {"root gathered bf16": 2 * n["root"] * (2 if beta > 0 else 1),   # the reference's root too
             "2 layers gathered bf16": 2 * 2 * n["layer"],
             "root gradient bf16": 2 * n["root"],                # lm_head's gradient, from the first backward op
             "activations": activation_bytes(cfg, B, T, R, checkpointing),
             "logits bf16": 2 * B * R * V,
             "loss path extra": 2 * B * R * V + (16 * B * R if loss == "triton" else 4 * 1024 * V)}
    total = sum(states.values())
    return {"states": states, "generation": gen, "training": train,
            "generation peak": total + sum(gen.values()), "training peak": total + sum(train.values())}


def pick_micro_prompts(cfg, P_local: int, budget: float, **kw) -> int | None:
    """The largest divisor of P_local whose training peak fits `budget` bytes, None if none does."""
    fits = [m for m in range(1, P_local + 1)
            if P_local % m == 0 and plan(cfg, micro_prompts=m, **kw)["training peak"] <= budget]
    return max(fits) if fits else None


def pick_gen_batch(cfg, max_G: int, budget: float, **kw) -> int | None:
    """The largest --gen_batch_size (max_G or a power of 2 below it) whose generation peak fits."""
    sizes = [max_G] + [2 ** i for i in range(max_G.bit_length(), -1, -1) if 2 ** i < max_G]
    return next((G for G in sizes if plan(cfg, gen_batch=G, **kw)["generation peak"] <= budget), None)


def _gib(x: float) -> str:
    return f"{x / GiB:.1f}"


def print_plan(arch: str, world: int = 8, gpu_gib: float = 80, P_local: int = 32, K: int = 8, P: int = 512,
               R: int = 1024, beta: float = 0.001) -> None:
    """The plan's tables for one architecture (markdown)."""
    cfg = make_config(arch)
    n = param_count(cfg)
    enc = numel_on_meta(encoder_config(), causal_lm=False)
    budget = 0.9 * gpu_gib * GiB
    kw = dict(world=world, K=K, P=P, R=R, beta=beta, encoder_params=enc)
    base = plan(cfg, gen_batch=P_local * K, **kw)
    print(f"\n### {arch} ({ARCHS[arch]['hub']}): N = {n['total']:,} parameters "
          f"({n['layer']:,} per decoder layer x {cfg.num_hidden_layers}, root {n['root']:,}); "
          f"encoder {enc:,}; {world} ranks x {gpu_gib:g} GiB, {P_local} prompts x K = {K} per rank, "
          f"P + R = {P} + {R} tokens, beta {beta}")
    rows = [{"state / copy": k, "GiB per rank": _gib(v)} for k, v in base["states"].items()]
    rows += [{"state / copy": "generation: " + k, "GiB per rank": _gib(v)} for k, v in base["generation"].items()]
    rows.append({"state / copy": f"generation peak ({P_local * K} sequences at once)",
                 "GiB per rank": _gib(base["generation peak"])})
    g64 = plan(cfg, gen_batch=min(64, P_local * K), **kw)["generation peak"]
    rows.append({"state / copy": f"generation peak (--gen_batch_size {min(64, P_local * K)})",
                 "GiB per rank": _gib(g64)})
    print(table(rows))
    rows = []
    for m in [m for m in (1, 2, 4, 8, 16, 32) if P_local % m == 0]:
        p = plan(cfg, micro_prompts=m, gen_batch=P_local * K, **kw)
        pc = plan(cfg, micro_prompts=m, gen_batch=P_local * K, checkpointing=True, **kw)
        t = p["training"]
        rows.append({"--micro_prompts": m, "sequences": m * K, "activations": _gib(t["activations"]),
                     "logits + grad": _gib(t["logits bf16"] + t["loss path extra"]),
                     "peak (lrpo.py today)": _gib(p["training peak"]),
                     "fits": "yes" if p["training peak"] <= budget else "no",
                     "peak with grad. checkpointing": _gib(pc["training peak"]),
                     "fits ": "yes" if pc["training peak"] <= budget else "no"})
    print(table(rows))
    best = pick_micro_prompts(cfg, P_local, budget, gen_batch=P_local * K, **kw)
    best_ck = pick_micro_prompts(cfg, P_local, budget, gen_batch=P_local * K, checkpointing=True, **kw)
    print(f"largest that fits {0.9 * gpu_gib:.0f} GiB (90%): --micro_prompts {best or 'none'} without "
          f"gradient checkpointing, {best_ck or 'none'} with it (--grad_ckpt); --gen_batch_size "
          f"{pick_gen_batch(cfg, P_local * K, budget, **kw) or 'none'} (sampler.py's cache)")


def main(argv=()):
    ap = argparse.ArgumentParser(prog="bench.py memory", description="memory plan per GPU rank (GiB)")
    ap.add_argument("--arch", choices=sorted(ARCHS), nargs="*", default=list(ARCHS), help="architectures")
    ap.add_argument("--world", type=int, default=8, help="ranks (the paper: 8)")
    ap.add_argument("--gpu_gib", type=float, default=80, help="memory of one GPU in GiB")
    ap.add_argument("--prompts", type=int, default=256, help="prompts per step over all ranks (the paper: 256)")
    ap.add_argument("--prompt_len", type=int, default=512, help="padded prompt tokens (the paper's maximum)")
    ap.add_argument("--new_tokens", type=int, default=1024, help="response tokens R")
    ap.add_argument("--beta", type=float, default=0.001, help="KL coefficient (> 0 keeps a reference model)")
    a = ap.parse_args(list(argv))
    print(f"Per rank, FSDP2 bf16 compute with fp32 master weights (lrpo.py on GPUs); activations without "
          f"gradient checkpointing unless stated; 'fits' = peak <= 90% of {a.gpu_gib:g} GiB. "
          f"Formulas: benchmarks/memory.py.")
    for arch in a.arch:
        print_plan(arch, a.world, a.gpu_gib, a.prompts // a.world, 8, a.prompt_len, a.new_tokens, a.beta)
