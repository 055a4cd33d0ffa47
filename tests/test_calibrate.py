"""
calibrate.py: offline tables (build_table, JSON), online calibration (mean / quantile / none),
the release's table, the parallel-record loader (with `alt` paraphrases), bad files, and the
CLI on the sample set.

    python -m pytest -q tests/test_calibrate.py

Synthetic tables are made from scores with deliberately different per-pair levels, the way raw
mmBERT similarities differ between language pairs; references are written out by hand (Eq. 2),
with numpy (np.interp for Eq. 3), by re-embedding texts one by one, or read from the release's
CSV with the csv module.
"""
import csv
import hashlib
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import calibrate as calibrate_py
from calibrate import (CalibrationTable, build_table, group_parallel, load_parallel,
                       pair_stats, release_table, report)
from data.records import RecordError, read_jsonl
from reward import LANGUAGE_NAMES, LANGUAGES, Encoder, detect_language

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARALLEL = os.path.join(ROOT, "data", "sample", "parallel.jsonl")
RELEASE_CSV = os.path.join(ROOT, "data", "calibration", "mmbert-small-release.csv")
RELEASE_JSON = os.path.join(ROOT, "data", "calibration", "mmbert-small-release.json")

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
ALTS = {  # paraphrases (Decision 2): English and German have them, Chinese does not
    ("rain", "en"): "It is going to rain later today, so bring an umbrella.",
    ("tea", "en"): "Steep green tea for two minutes, and don't use boiling water.",
    ("sum", "en"): "Before adding fractions, give them a common denominator.",
    ("sleep", "en"): "A night's sleep of seven to nine hours is what most grown-ups need.",
    ("rain", "de"): "Heute Nachmittag regnet es, also denk an deinen Schirm.",
    ("sum", "de"): "Bevor man Brüche addiert, bringt man sie auf einen gemeinsamen Nenner.",
}


def item_records(alts: dict = ALTS) -> list[dict]:
    return [{"id": i, "lang": lang, "text": t} | ({"alt": alts[i, lang]} if (i, lang) in alts else {})
            for i, texts in ITEMS.items() for lang, t in texts.items()]


class HashEncoder:
    """Stub encoder: every distinct text gets its own random unit vector (seeded by the text), so
    cosines of different texts stay far below 1 and only a text scored against itself gives 1."""
    def __init__(self, dim: int = 64):
        self.dim, self.texts = dim, []

    def embed(self, texts, progress=False):
        assert len(texts) > 0, "embed called with no texts"
        self.texts += list(texts)
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:12], 16) for t in texts]
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)      # (N, D)


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
    records = item_records()
    table = build_table(records, encoder, n_equiv=30, n_mismatch=2, n_hard=1, seed=0)
    assert sorted(table.pairs) == ["de-de", "de-en", "de-zh", "en-en", "en-zh"]
    assert table.meta["same_language_without_alt"] == ["zh-zh"]     # no alt in Chinese: missing
    assert table.meta["skipped_single_language_ids"] == 1 and table.meta["n_items"] == 4
    # independent reference: every text embedded alone, one at a time
    alone = {(i, lang): encoder.embed([t])[0].double() for i, texts in list(ITEMS.items())[:4]
             for lang, t in texts.items()}
    alone |= {(i, lang, "alt"): encoder.embed([t])[0].double() for (i, lang), t in ALTS.items()}
    for key, e in table.pairs.items():
        a, b = key.split("-")
        partner = (lambda i: (i, a, "alt")) if a == b else (lambda i: (i, b))  # Decision 2
        ids = [i for i in list(ITEMS)[:4] if partner(i) in alone]
        hand = sorted(float(alone[i, a] @ alone[partner(i)]) for i in ids)
        np.testing.assert_allclose(sorted(e["equiv"]), hand, atol=1e-5)
        assert e["n"] == len(ids) and e["n_mixture"] == len(ids) * (1 + 2 + 1)
        assert e["hard_mean"] >= e["mismatch_mean"] - 1e-12
        assert len(e["quantiles"]) == 101 and e["quantiles"] == sorted(e["quantiles"])
        assert e["ub"] == pytest.approx(float(np.quantile(e["equiv"], 0.95)), abs=1e-12)  # Decision 3
    assert table.pairs["de-de"]["n"] == 2 and table.pairs["en-en"]["n"] == 4
    again = build_table(records, encoder, n_equiv=30, n_mismatch=2, n_hard=1, seed=0)
    assert again == table                                           # deterministic for a seed


def test_same_language_pairs_never_score_a_text_against_itself():
    encoder = HashEncoder()
    table = build_table(item_records(), encoder, n_equiv=30, n_mismatch=3, n_hard=1, seed=0)
    assert sorted(encoder.texts) == sorted([t for texts in list(ITEMS.values())[:4]
                                            for t in texts.values()] + list(ALTS.values()))
    for key, e in table.pairs.items():
        # only a self-pair reaches 1 with this encoder: before Decision 2, (l, l) equivalents were
        # the text with itself (mean exactly 1) and filled the top of the quantiles
        assert max(e["equiv"]) < 0.9 and e["quantiles"][-1] < 0.9, key
    unit = {t: encoder.embed([t])[0].double() for t in encoder.texts[:]}
    for lang in ("en", "de"):                                        # (text, alt) by hand
        hand = sorted(float(unit[ITEMS[i][lang]] @ unit[alt]) for (i, l), alt in ALTS.items() if l == lang)
        np.testing.assert_allclose(sorted(table.pairs[f"{lang}-{lang}"]["equiv"]), hand, atol=1e-12)


def test_same_language_pair_without_alts_is_reported_missing():
    table = build_table(item_records(alts={}), HashEncoder(), n_mismatch=2, n_hard=1)
    assert sorted(table.pairs) == ["de-en", "de-zh", "en-zh"]
    assert table.meta["same_language_without_alt"] == ["de-de", "en-en", "zh-zh"]
    assert "['de-de', 'en-en', 'zh-zh'] (same-language, fewer than 2 items with an alt)" in report(table)
    cal, missing = table.calibrate(torch.tensor([0.97, 0.95]), ["de", "de"], ["de", "en"], "mean")
    assert missing.tolist() == [True, False] and cal[0].item() == pytest.approx(0.97)  # raw, counted
    one = {k: v for k, v in ALTS.items() if k != ("sum", "de")}      # a single alt is not enough
    assert build_table(item_records(one), HashEncoder(), n_mismatch=2, n_hard=1
                       ).meta["same_language_without_alt"] == ["de-de", "zh-zh"]


def test_sample_alts_are_paraphrases_in_their_language():
    rows = [row for _, row in read_jsonl(PARALLEL)]
    assert load_parallel(PARALLEL, LANGUAGES)                        # alts validate
    per_lang = {lang: 0 for lang in LANGUAGES}
    for row in rows:
        if "alt" in row:
            per_lang[row["lang"]] += 1
            assert detect_language(row["alt"]) == row["lang"], (row["id"], row["lang"], row["alt"])
            assert row["alt"] != row["text"]
    assert min(per_lang.values()) >= 10, per_lang                    # every (l, l) pair is built
    texts = {row["text"] for row in rows}
    assert not texts & {row["alt"] for row in rows if "alt" in row}  # never another item's text


# --- the release's table (Decision 9) -----------------------------------------------------------

def test_release_csv_converts_to_the_shipped_table(tmp_path):
    out = tmp_path / "release.json"
    calibrate_py.main(["--from_release", RELEASE_CSV, "--out", str(out)])
    with open(RELEASE_JSON, "rb") as f:
        assert out.read_bytes() == f.read()                           # the shipped file, exactly
    code = {name: c for c, name in LANGUAGE_NAMES.items()}
    with open(RELEASE_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    table = CalibrationTable.load(RELEASE_JSON)
    assert len(rows) == len(table.pairs) == 119 and "en-en" not in table.pairs
    for r in rows:                                                     # by hand, from the CSV
        e = table.pairs["-".join(sorted((code[r["lang_a"]], code[r["lang_b"]])))]
        assert (e["n"], e["mean"], e["std"]) == (30, float(r["mean"]), float(r["std"]))
    mu_ref = math.fsum(int(r["count"]) * float(r["mean"]) for r in rows) / sum(int(r["count"]) for r in rows)
    assert table.mu_ref == pytest.approx(mu_ref, abs=1e-15) and round(table.mu_ref, 5) == 0.95635
    assert table.meta["pairs_missing"] == ["en-en"] and "Apache-2.0" in table.meta["source"]
    assert release_table("jhu-clsp/mmBERT-small") == table
    assert release_table("jhu-clsp/mmBERT-base") is None and release_table("/models/enc") is None


def test_release_table_is_for_mean_calibration_only(tmp_path):
    table = release_table("jhu-clsp/mmBERT-small")
    s = torch.tensor([0.93, 0.99, 0.97], dtype=torch.float64)
    cal, missing = table.calibrate(s, ["ja", "zh", "en"], ["pt", "zh", "en"], "mean")
    shift = [table.pairs[key]["mean"] - table.mu_ref for key in ("ja-pt", "zh-zh")] + [0.0]
    np.testing.assert_allclose(cal.numpy(), s.numpy() - np.asarray(shift), atol=1e-12)  # Eq. 2
    assert missing.tolist() == [False, False, True]                   # en-en: raw, counted
    with pytest.raises(ValueError, match=r"pair ja-pt: quantile calibration needs \['quantiles'\]"):
        table.calibrate(s, ["ja"] * 3, ["pt"] * 3, "quantile")         # no silent fallback
    table.require("mean")
    with pytest.raises(RecordError, match=r"quantile calibration needs \['quantiles'\] in every "
                                          r"pair; 119 of 119 pairs lack it .*authors' release"):
        table.require("quantile")
    with pytest.raises(RecordError, match=r"mmbert-small-release.json: quantile calibration with ub"):
        CalibrationTable.load(RELEASE_JSON, mode="quantile", ub=True)
    built = synthetic_table()
    built.require("quantile", ub=True)
    del built.pairs["de-en"]["ub"]
    with pytest.raises(RecordError, match=r"needs \['ub'\]"):
        built.require("quantile", ub=True)


# --- bad files ----------------------------------------------------------------------------------

def test_truncated_table_names_the_file(tmp_path):
    path = tmp_path / "calib.json"
    synthetic_table().save(str(path))
    text = path.read_text(encoding="utf-8")
    path.write_text(text[:len(text) // 2], encoding="utf-8")          # a copy cut short
    with pytest.raises(RecordError, match=r"calib.json: not a JSON table \(.*line \d+"):
        CalibrationTable.load(str(path))


def test_table_without_pairs_or_with_a_bad_field_is_an_error(tmp_path):
    path = tmp_path / "calib.json"
    path.write_text(json.dumps({"format": "lrpo-calibration/1", "mu_ref": 0.95, "pairs": {}}))
    with pytest.raises(RecordError, match=r"calib.json: no language pairs"):
        CalibrationTable.load(str(path))
    with pytest.raises(ValueError, match="no language pairs"):
        CalibrationTable.from_pairs({})
    for entry, message in (({"n": 30, "std": 0.01}, r"pair 'de-en': field 'mean' must be a number"),
                           ({"n": 0, "mean": 0.9, "std": 0.01}, r"field 'n' must be an integer > 0"),
                           ({"n": 3, "mean": 0.9, "std": 0.1, "quantiles": [0.9, 0.1]},
                            r"field 'quantiles' must be a list of 2\+ nondecreasing numbers")):
        path.write_text(json.dumps({"format": "lrpo-calibration/1", "mu_ref": 0.95,
                                    "pairs": {"de-en": entry}}))
        with pytest.raises(RecordError, match=message):
            CalibrationTable.load(str(path))


def test_parallel_file_in_one_language_is_an_error(tmp_path):
    rows = [row for _, row in read_jsonl(PARALLEL) if row["lang"] == "en"]
    path = tmp_path / "english.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(RecordError, match=r"english.jsonl: no id is in 2 or more languages "
                                          r"\(34 records in \['en'\]\)"):
        load_parallel(str(path), LANGUAGES)
    with pytest.raises(ValueError, match="no id is in 2 or more languages"):   # before any encoding
        build_table(rows, HashEncoder())
    with pytest.raises(SystemExit, match=r"calibrate.py: .*english.jsonl: no id is in 2 or more"):
        calibrate_py.main(["--parallel", str(path), "--out", str(tmp_path / "t.json")])
    assert not (tmp_path / "t.json").exists()


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "calib.json"
    table = synthetic_table()
    table.save(str(path))
    before = path.read_bytes()
    broken = CalibrationTable(table.pairs, table.mu_ref, {"note": "\ud800"})  # fails mid-write
    with pytest.raises(UnicodeEncodeError):
        broken.save(str(path))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["calib.json"]

    def killed(src, dst):
        raise KeyboardInterrupt                                        # e.g. Ctrl-C before the rename
    monkeypatch.setattr(calibrate_py.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        CalibrationTable(table.pairs, 0.5, {}).save(str(path))
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["calib.json"]


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
    de = {"id": "a", "lang": "de", "text": "Hallo."}
    for alt in ("Hallo.", " Hallo. ", "", 3):                          # Decision 2: a different text
        path = _write(tmp_path, [good, json.dumps(de | {"alt": alt})])
        with pytest.raises(RecordError, match=r":2: field 'alt' must be a non-empty string other"):
            load_parallel(path, LANGUAGES)
    path = _write(tmp_path, [good, json.dumps(de | {"alt": "Guten Tag."}),
                             json.dumps(de | {"id": "b", "alt": None}),
                             json.dumps({"id": "b", "lang": "en", "text": "Hi."})])
    assert [r.get("alt") for r in load_parallel(path, LANGUAGES)] == [None, "Guten Tag.", None, None]


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
    for key in ("ja-pt", "zh-zh"):                                  # printed from the saved table
        e = table.pairs[key]
        row = f"| {key} | {e['n']} | {e['mean']:.4f} ± {e['std']:.4f} | {e['hard_mean']:.4f} |"
        assert row in proc.stdout, row
    assert table.meta["same_language_without_alt"] == [] and table.meta["pairs_too_few_items"] == []
    for lang in LANGUAGES:                                           # (text, alt) pairs, Decision 2
        e = table.pairs[f"{lang}-{lang}"]
        assert e["n"] >= 10 and max(e["equiv"]) < 1 - 1e-6 and e["ub"] <= max(e["equiv"])
    assert "spread of equivalent pair means: raw" in proc.stdout and "encoding" in proc.stderr
