"""
`python bench.py reward`: compute_rewards throughput on CPU with the tiny encoder, split into its
stages (encoder similarity, language ID, calibration), on 512 rollouts in groups of 8; then the
encoder's fp32 vs bf16 drift (reward.py Decision 1) beside the signal GRPO uses.

Decisions:
1. The drift is |s_fp32 - s_bf16| of the same rollouts (max and mean), and the same for the
   rewards; the signal is the within-group reward std (unbiased, as grpo.py's advantages), averaged
   over the groups of K = 8 rollouts sharing a reference. A drift far below that std changes few
   advantages. The tiny encoder is random: its figures show the method, mmBERT's may differ.
"""
import os
import time

import torch

from benchmarks.timing import table


def _inputs(n: int, K: int = 8, chars: int = 200):
    """n rollouts in groups of K: each group shares one item's reference; each rollout is that
    item in a random router language, repeated and cut to `chars` characters."""
    import random
    from calibrate import group_parallel, load_parallel
    from reward import LANGUAGES
    records = load_parallel("data/sample/parallel.jsonl", LANGUAGES)
    items, _ = group_parallel(records)
    ids, rng = sorted(items), random.Random(0)
    responses, refs, ref_langs, targets = [], [], [], []
    for g in range(n // K):
        texts = items[ids[g % len(ids)]]
        ref_lang = rng.choice(sorted(texts))
        for _ in range(K):
            lang = rng.choice(sorted(texts))
            responses.append(((texts[lang] + " ") * (chars // len(texts[lang]) + 1))[:chars])
            refs.append(texts[ref_lang])
            ref_langs.append(ref_lang)
            targets.append(lang)
    return records, responses, refs, ref_langs, targets


def main(argv=(), n: int = 512):
    import tempfile
    from calibrate import build_table
    from data.tiny import build_tiny
    from reward import Encoder, compute_rewards, language_gate
    records, responses, refs, ref_langs, targets = _inputs(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny(tmp)["encoder"]
        encoder, bf16 = Encoder(path), Encoder(path, dtype=torch.bfloat16)
    calib = build_table(records, encoder)
    sim = encoder.similarity(responses, refs)
    stages = {
        "encoder (similarity)": lambda: encoder.similarity(responses, refs),
        "language ID (gate)": lambda: language_gate(responses, targets),
        "calibration (mean)": lambda: calib.calibrate(sim, ref_langs, targets, "mean"),
        "compute_rewards (all)": lambda: compute_rewards(responses, refs, ref_langs, targets,
                                                         encoder, calib, "mean"),
    }
    for fn in stages.values():                                      # warm-up
        fn()
    runs = {name: [] for name in stages}
    for _ in range(5):        # interleaved rounds: load from other processes hits every stage alike
        for name, fn in stages.items():
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)
    times = {name: sorted(ts)[len(ts) // 2] for name, ts in runs.items()}
    total = times["compute_rewards (all)"]
    rows = [{"stage": name, f"ms per {n} rollouts": f"{t * 1e3:.1f}", "rollouts/s": f"{n / t:,.0f}",
             "share of compute_rewards": f"{t / total:.0%}"} for name, t in times.items()]
    chars = sum(map(len, responses)) / len(responses)
    tokens = sorted(map(len, encoder.tokenizer(responses)["input_ids"]))
    print(f"{n} responses of {chars:.0f} characters ({tokens[n // 2]} tokens median, {tokens[-1]} max), "
          f"groups of 8 sharing a reference; tiny ModernBERT "
          f"(hidden {encoder.dim}, {encoder.model.config.num_hidden_layers} layers), "
          f"{torch.get_num_threads()} torch threads; median of 5 interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(table(rows))
    print()
    print(drift_table(encoder, bf16, calib, responses, refs, ref_langs, targets))


def drift_table(encoder, bf16, calib, responses, refs, ref_langs, targets, K: int = 8) -> str:
    """Decision 1: fp32 vs bf16 similarity and reward drift beside the within-group reward std."""
    from reward import compute_rewards
    r32, r16 = (compute_rewards(responses, refs, ref_langs, targets, e, calib, "mean") for e in (encoder, bf16))
    ds, dr = (r32["sim"] - r16["sim"]).abs(), (r32["reward"] - r16["reward"]).abs()      # (N,)
    std = r32["reward"].view(-1, K).std(dim=1, unbiased=True)                            # (N / K,)
    return table([{"fp32 vs bf16 encoder": f"{len(responses)} rollouts, {len(std)} groups of {K}",
                   "similarity drift max / mean": f"{ds.max():.5f} / {ds.mean():.5f}",
                   "reward drift max / mean": f"{dr.max():.5f} / {dr.mean():.5f}",
                   "within-group reward std (mean)": f"{std.mean():.5f}",
                   "mean drift / std": f"{dr.mean() / std.mean():.1%}"}])
