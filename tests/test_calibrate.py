"""
calibrate.py: offline tables (build_table, JSON), online calibration (mean / quantile / none),
the parallel-record loader and the CLI on the sample set.

    python -m pytest -q tests/test_calibrate.py

Synthetic tables are made from scores with deliberately different per-pair levels, the way raw
mmBERT similarities differ between language pairs; references are written out by hand (Eq. 2),
with numpy (np.interp for Eq. 3) or by re-embedding texts one by one.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from calibrate import (CalibrationTable, build_table, group_parallel, load_parallel,
                       pair_stats)
from data.records import RecordError
from reward import LANGUAGES, Encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARALLEL = os.path.join(ROOT, "data", "sample", "parallel.jsonl")

# pair -> level of its equivalent scores (ja-pt lowest, zh-zh highest, as in the release)
LEVELS = {"ja-pt": 0.925, "de-en": 0.95, "en-zh": 0.94, "zh-zh": 0.997, "ar-ko": 0.93}

ITEMS = {  # a few parallel items in three languages, for build_table with the tiny encoder
    "rain": {"en": "Take an umbrella, it will rain this afternoon.",
             "de": "Nimm einen Regenschirm mit, heute Nachmittag wird es regnen.",
             "zh": "带把伞吧，今天下午会下雨。"},
    "tea": {"en": "Let the green tea steep for two minutes in water that is not boiling.",
            "de": "Lass den grünen Tee zwei Minuten in Wasser ziehen, das nicht kocht.",
            "zh": "绿茶用不太烫的水泡两分钟。"},
    "sum": {"en": "To add fractions, first bring them to a common denominator.",
            "de": "Um Brüche zu addieren, bringe sie zuerst auf einen gemeinsamen Nenner.",
            "zh": "分数相加之前，先把它们通分。"},
    "sleep": {"en": "Most adults need seven to nine hours of sleep a night.",
              "de": "Die meisten Erwachsenen brauchen sieben bis neun Stunden Schlaf pro Nacht.",
              "zh": "大多数成年人每晚需要七到九个小时的睡眠。"},
    "lonely": {"en": "This sentence exists only in English and must be skipped."},
}


def synthetic_table(n_equiv: int = 30, seed: int = 0) -> CalibrationTable:
    """Every pair: the same shapes of distribution, shifted to its own level, drawn independently."""
    rng = np.random.default_rng(seed)
    pairs = {}
    for key, mu in LEVELS.items():
        equiv = np.minimum(mu + 0.01 * rng.standard_normal(n_equiv), 1.0)
        mismatch = mu - 0.25 + 0.05 * rng.standard_normal(10 * n_equiv)
        hard = mu - 0.08 + 0.02 * rng.standard_normal(2 * n_equiv)
        pairs[key] = pair_stats(equiv, mismatch, hard)
    return CalibrationTable.from_pairs(pairs, {"source": "synthetic"})


def calibrate(scores, ref_langs, out_langs, table, mode, **kw):
    """CalibrationTable.calibrate with the missing rows counted; mode "none" needs no table."""
    table = table or CalibrationTable(pairs={}, mu_ref=0.0)
    cal, missing = table.calibrate(scores, ref_langs, out_langs, mode, **kw)
    return cal, int(missing.sum())


def _langs(key: str, n: int) -> tuple[list[str], list[str]]:
    a, b = key.split("-")
    return [a] * n, [b] * n


# --- online calibration -------------------------------------------------------------------------

def test_mean_calibration_aligns_pair_means():
    table = synthetic_table()
    raw_means, cal_means = [], []
    for key, e in table.pairs.items():
        s = torch.tensor(e["equiv"], dtype=torch.float64)
        cal, n_missing = calibrate(s, *_langs(key, len(s)), table, "mean")
        assert n_missing == 0
        # Eq. 2 by hand, mu_ref the n-weighted mean of the equivalent means (all n = 30 here)
        mu_ref = np.mean([np.mean(x["equiv"]) for x in table.pairs.values()])
        expect = np.clip(np.asarray(e["equiv"]) - (np.mean(e["equiv"]) - mu_ref), -1, 1)
        np.testing.assert_allclose(cal.numpy(), expect, atol=1e-12)
        raw_means.append(s.mean().item())
        cal_means.append(cal.mean().item())
    assert max(raw_means) - min(raw_means) > 0.05                 # the pairs really differ
    assert max(cal_means) - min(cal_means) < 0.01


def test_mean_calibration_lambda_and_shrinkage():
    table = synthetic_table()
    e = table.pairs["ja-pt"]
    s = torch.tensor([0.5, 0.9, 0.995])
    shift = e["mean"] - table.mu_ref                                # < 0: ja-pt is the lowest pair
    half, _ = calibrate(s, *_langs("ja-pt", 3), table, "mean", lam=0.5)
    torch.testing.assert_close(half, (s - 0.5 * shift).clamp(max=1))
    shrunk, _ = calibrate(s, *_langs("ja-pt", 3), table, "mean", k=10.0)
    torch.testing.assert_close(shrunk, (s - 30 / 40 * shift).clamp(max=1))  # lambda = n / (n + k)
    assert half[2] == 1.0 and half[1] > s[1]
    clipped, _ = calibrate(torch.tensor([1.0, -1.0]), ["ja", "zh"], ["pt", "zh"], table, "mean")
    assert clipped.tolist() == [1.0, -1.0]                         # shifted past the ends: clipped


def test_quantile_calibration_monotone_bounded_and_aligned():
    table = synthetic_table(n_equiv=200)
    grid = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
    medians = []
    for key, e in table.pairs.items():
        u, _ = calibrate(grid, *_langs(key, len(grid)), table, "quantile")
        assert (u.diff() >= 0).all() and u.min() == 0 and u.max() == 1
        q = np.asarray(e["quantiles"])                              # Eq. 3 with numpy
        np.testing.assert_allclose(u.numpy(), np.interp(grid.numpy(), q, np.linspace(0, 1, len(q))),
                                   atol=1e-12)
        median = torch.tensor([float(np.median(e["equiv"]))], dtype=torch.float64)
        medians.append(calibrate(median, *_langs(key, 1), table, "quantile")[0].item())
    assert max(medians) - min(medians) < 0.03, medians


def test_quantile_upper_bound_anchor():
    table = synthetic_table()
    e = table.pairs["de-en"]
    s = torch.tensor([e["ub"] - 0.2, e["ub"], e["ub"] + 0.01, 1.0], dtype=torch.float64)
    plain, _ = calibrate(s, *_langs("de-en", 4), table, "quantile")
    capped, _ = calibrate(s, *_langs("de-en", 4), table, "quantile", ub=True)
    assert capped[1:].tolist() == [1.0, 1.0, 1.0]                  # at or above the anchor: 1
    torch.testing.assert_close(capped[0], plain[0])                 # below it: the same CDF
    assert plain[1] < 1.0


def test_none_is_identity_and_missing_pairs_are_counted():
    s = torch.tensor([0.3, 0.97, -0.2])
    out, n_missing = calibrate(s, ["ja", "de", "vi"], ["pt", "en", "vi"], None, "none")
    assert torch.equal(out, s) and n_missing == 0
    table = synthetic_table()
    for mode in ("mean", "quantile"):
        out, n_missing = calibrate(s, ["ja", "de", "vi"], ["pt", "en", "vi"], table, mode)
        assert n_missing == 1 and out[2] == s[2]                   # vi-vi not in the table: raw
    with pytest.raises(ValueError, match="mode 'median' is not one of"):
        calibrate(s, ["ja"] * 3, ["pt"] * 3, table, "median")


def test_json_round_trip_is_exact(tmp_path):
    table = synthetic_table()
    path = str(tmp_path / "calib.json")
    table.save(path)
    loaded = CalibrationTable.load(path)
    assert loaded == table
    s = torch.rand(64, dtype=torch.float64)
    langs = list(LEVELS)[:4] * 16
    a, b = [k.split("-")[0] for k in langs], [k.split("-")[1] for k in langs]
    for mode in ("mean", "quantile"):
        assert torch.equal(calibrate(s, a, b, table, mode)[0], calibrate(s, a, b, loaded, mode)[0])
    (tmp_path / "other.json").write_text(json.dumps({"pairs": {}}))
    with pytest.raises(ValueError, match="not a calibration table"):
        CalibrationTable.load(str(tmp_path / "other.json"))


# --- offline table ------------------------------------------------------------------------------

def test_build_table_with_tiny_encoder(tiny_encoder_dir):
    encoder = Encoder(tiny_encoder_dir)
    records = [{"id": i, "lang": lang, "text": t} for i, texts in ITEMS.items()
               for lang, t in texts.items()]
    table = build_table(records, encoder, n_equiv=30, n_mismatch=2, n_hard=1, seed=0)
    assert sorted(table.pairs) == ["de-de", "de-en", "de-zh", "en-en", "en-zh", "zh-zh"]
    assert table.meta["skipped_single_language_ids"] == 1 and table.meta["n_items"] == 4
    # independent reference: every text embedded alone, one at a time
    alone = {(i, lang): encoder.embed([t])[0].double() for i, texts in list(ITEMS.items())[:4]
             for lang, t in texts.items()}
    for key, e in table.pairs.items():
        a, b = key.split("-")
        hand = sorted(float(alone[i, a] @ alone[i, b]) for i in list(ITEMS)[:4])
        np.testing.assert_allclose(sorted(e["equiv"]), hand, atol=1e-5)
        assert e["n"] == 4 and e["n_mixture"] == 4 + 4 * 2 + 4 * 1
        assert e["hard_mean"] >= e["mismatch_mean"] - 1e-12
        assert len(e["quantiles"]) == 101 and e["quantiles"] == sorted(e["quantiles"])
        if a == b:
            assert abs(e["mean"] - 1) < 1e-6                        # the reference itself
    again = build_table(records, encoder, n_equiv=30, n_mismatch=2, n_hard=1, seed=0)
    assert again == table                                           # deterministic for a seed


# --- loader and CLI -----------------------------------------------------------------------------

def _write(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "parallel.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_loader_errors_name_file_line_field(tmp_path):
    good = json.dumps({"id": "a", "lang": "en", "text": "Hello."})
    path = _write(tmp_path, [good, "", '{"id": "a", "lang": "de", "text": "Hallo."'])
    with pytest.raises(RecordError, match=r"parallel.jsonl:3: not valid JSON"):
        load_parallel(path, LANGUAGES)
    path = _write(tmp_path, [good, json.dumps({"id": "a", "lang": "de"})])
    with pytest.raises(RecordError, match=r"parallel.jsonl:2: field 'text' is missing"):
        load_parallel(path, LANGUAGES)
    path = _write(tmp_path, [good, json.dumps({"id": "a", "lang": "german", "text": "Hallo."})])
    with pytest.raises(ValueError, match=r":2: field 'lang' is 'german', not one of \['ar', 'de'"):
        load_parallel(path, LANGUAGES)
    path = _write(tmp_path, [good, json.dumps({"id": "a", "lang": "en", "text": "Hi."})])
    with pytest.raises(RecordError, match=r":2: field 'id' 'a' in 'en' repeats line 1"):
        load_parallel(path, LANGUAGES)


def test_single_language_ids_are_skipped_and_counted(tmp_path):
    path = _write(tmp_path, [json.dumps({"id": i, "lang": lang, "text": f"{i} in {lang}."})
                             for i, lang in [("a", "en"), ("a", "de"), ("b", "fr"), ("c", "ja")]])
    items, single = group_parallel(load_parallel(path, LANGUAGES))
    assert list(items) == ["a"] and single == ["b", "c"]


def test_cli_on_the_sample_set(tiny_encoder_dir, tmp_path):
    out = str(tmp_path / "calib.json")
    cmd = [sys.executable, "calibrate.py", "--parallel", "data/sample/parallel.jsonl",
           "--encoder", tiny_encoder_dir, "--out", out]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = CalibrationTable.load(out)
    langs = sorted({r["lang"] for r in load_parallel(PARALLEL, LANGUAGES)})
    assert langs == LANGUAGES and len(table.pairs) == 15 * 16 // 2
    rows = [line for line in proc.stdout.splitlines() if re.match(r"\| [a-z]{2}-[a-z]{2} \|", line)]
    assert len(rows) == len(table.pairs)
    e = table.pairs["ja-pt"]                                        # printed from the saved table
    assert f"| ja-pt | 30 | {e['mean']:.4f} ± {e['std']:.4f} | {e['hard_mean']:.4f} |" in proc.stdout
    assert "spread of equivalent pair means: raw" in proc.stdout and "encoding" in proc.stderr
