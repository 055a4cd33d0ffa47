"""
reward.py: the sentence encoder (masked mean pooling) and compute_rewards (paper Eqs. 2-5); the
language ID has its own file, tests/test_lid.py, whose sentences these tests reuse.
"""
import numpy as np
import pytest
import torch

from calibrate import CalibrationTable, pair_stats
from reward import Encoder, compute_rewards
from test_lid import SENTENCES

@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return Encoder(tiny_encoder_dir, batch_size=2)


# --- the encoder --------------------------------------------------------------------------------

def test_tiny_encoder_loads_through_the_hub_code_path(encoder, tiny_encoder_dir):
    assert encoder.model.config.model_type == "modernbert"
    assert encoder.model.dtype == torch.float32 and not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    e = encoder.embed(["Hallo Welt.", "你好，世界。", "Hello world."])
    assert e.shape == (3, encoder.dim) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))


def test_encoder_is_fp32_unless_asked(encoder, tiny_encoder_dir):
    """Decision 1: float32 by default on every device; bf16 on request, near the fp32 similarity."""
    bf16 = Encoder(tiny_encoder_dir, dtype=torch.bfloat16)
    assert bf16.model.dtype == torch.bfloat16
    texts, refs = SENTENCES["de"][:3] + SENTENCES["ja"][:3], SENTENCES["en"][:3] + SENTENCES["zh"][:3]
    assert bf16.embed(texts).dtype == torch.float32
    drift = (bf16.similarity(texts, refs) - encoder.similarity(texts, refs)).abs().max().item()
    assert 0 < drift < 2e-2, drift
    if torch.cuda.is_available():
        assert Encoder(tiny_encoder_dir, device="cuda").model.dtype == torch.float32


def test_masked_mean_pooling_matches_unpadded_reference(encoder):
    short = SENTENCES["en"][1]
    longer = [SENTENCES["de"][1] * 3, SENTENCES["ru"][1] * 3, SENTENCES["vi"][0] * 3]
    alone = encoder.embed([short])[0]
    padded = encoder.embed(longer + [short])[-1]     # batches of 2: padded against vi * 3
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    # independent reference: one unpadded sequence, plain mean over tokens, fp64 normalisation
    ids = encoder.tokenizer(short, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        h = encoder.model(input_ids=ids).last_hidden_state[0].double()      # (T, D)
    ref = (h.mean(0) / h.mean(0).norm()).float()
    torch.testing.assert_close(alone, ref, atol=1e-5, rtol=0)


def test_similarity_symmetric_identity_and_empty(encoder):
    a, b = SENTENCES["fr"][:2], SENTENCES["it"][:2]
    torch.testing.assert_close(encoder.similarity(a, b), encoder.similarity(b, a), atol=1e-6, rtol=0)
    torch.testing.assert_close(encoder.similarity(a, a), torch.ones(2), atol=1e-6, rtol=0)
    e = encoder.embed(["", SENTENCES["ko"][0]])
    assert e[0].abs().sum() == 0 and encoder.similarity([""], [SENTENCES["ko"][0]]).item() == 0


# --- compute_rewards ----------------------------------------------------------------------------

def _table() -> CalibrationTable:
    """A hand-made table: en-en equivalents near 0.99, en-pt near 0.90, es-en near 0.94."""
    rng = np.random.default_rng(0)
    pairs = {key: pair_stats(mu + 0.005 * rng.standard_normal(30), mu - 0.3 + 0.05 * rng.random(300),
                             mu - 0.1 + 0.01 * rng.random(60))
             for key, mu in (("en-en", 0.99), ("en-pt", 0.90), ("en-es", 0.94))}
    return CalibrationTable.from_pairs(pairs)


def test_compute_rewards_gate_range_counters(encoder):
    ref = SENTENCES["en"][0]
    responses = [SENTENCES["en"][0], SENTENCES["pt"][0], SENTENCES["es"][0],   # right languages
                 SENTENCES["es"][0],                                            # es asked pt
                 "", "```\nx = 1\n```",                                         # no language
                 SENTENCES["de"][0]]                                            # pair not in table
    targets = ["en", "pt", "es", "pt", "en", "en", "de"]
    table = _table()
    out = compute_rewards(responses, [ref] * 7, ["en"] * 7, targets, encoder, table, "mean")
    assert out["r_lang"].tolist() == [1, 1, 1, 0, 0, 0, 1]
    assert out["detected"] == ["en", "pt", "es", "es", None, None, "de"]
    assert out["no_language"] == 2 and out["missing_pairs"] == 1
    assert ((out["reward"] >= 0) & (out["reward"] <= 1)).all()
    assert (out["reward"][out["r_lang"] == 0] == 0).all()
    # independent reference for r_qual: Eq. 2 by hand, mu_ref as the n-weighted mean, then Decision 6
    s = out["sim"].double()
    mu = {k: float(np.mean(e["equiv"])) for k, e in table.pairs.items()}
    mu_ref = sum(mu.values()) / 3                                   # every pair has n = 30
    shift = [mu["en-en"], mu["en-pt"], mu["en-es"], mu["en-pt"], mu["en-en"], mu["en-en"], None]
    cal = [s[i] if m is None else (s[i] - (m - mu_ref)).clamp(-1, 1) for i, m in enumerate(shift)]
    expect = ((torch.stack(cal) + 1) / 2).clamp(0, 1).float()
    torch.testing.assert_close(out["r_qual"], expect, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["reward"], expect * out["r_lang"], atol=1e-6, rtol=0)


def test_compute_rewards_modes(encoder):
    responses = [SENTENCES["pt"][3], SENTENCES["en"][3], SENTENCES["de"][3]]
    refs, ref_langs, targets = [SENTENCES["en"][3]] * 3, ["en"] * 3, ["pt", "en", "de"]
    raw = compute_rewards(responses, refs, ref_langs, targets, encoder, None, "none")
    torch.testing.assert_close(raw["r_qual"], ((raw["sim"] + 1) / 2).clamp(0, 1))
    assert raw["missing_pairs"] == 0
    q = compute_rewards(responses, refs, ref_langs, targets, encoder, _table(), "quantile")
    assert ((q["r_qual"] >= 0) & (q["r_qual"] <= 1)).all() and q["missing_pairs"] == 1
    torch.testing.assert_close(q["r_qual"][2], raw["r_qual"][2])   # de-en missing: raw, mapped
    with pytest.raises(ValueError, match="needs a table"):
        compute_rewards(responses, refs, ref_langs, targets, encoder, None, "mean")
    with pytest.raises(ValueError, match=r"'EN'.*\['ar', 'de'"):
        compute_rewards(responses, refs, ["en", "EN", "en"], targets, encoder, None, "none")
