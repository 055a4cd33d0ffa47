"""diagnostics.py and runlog.py against hand-computed batches: group health, cut and off-language
rollouts, per-language means, rollout samples, the log files' rotation and resume, validation."""
import json

import pytest
import torch

import runlog
from diagnostics import response_cut, rollout_sums, sample_rows, step_row, validate
from grpo import group_advantages
from reward import LANGUAGES

K = 4


def close(a, b, rel=1e-9) -> bool:
    """Nested dicts / lists of numbers equal to a relative tolerance."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    return a == pytest.approx(b, rel=rel, abs=1e-12)


def hand_batch():
    """3 groups of K = 4. Group 0: rewards all 0.5 (zero variance). Group 1: the gate says 0 to all
    four (so zero variance too). Group 2: mixed. Rows 2 and 9 ran to the token limit; row 5 has no
    language, rows 8 and 10 were detected in another language than asked."""
    reward = torch.tensor([.5, .5, .5, .5, 0, 0, 0, 0, .2, .9, 0, .4])
    r_lang = torch.tensor([1., 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1])
    out = {"reward": reward, "r_lang": r_lang, "r_qual": reward + 0.1, "sim": reward - 0.1,
           "detected": ["de", "de", "en", "en", "ja", None, "ko", "ko", "fr", "zh", "de", "zh"],
           "missing_pairs": 3, "no_language": 1}
    targets = ["de", "de", "en", "en", "de", "es", "en", "zh", "zh", "zh", "zh", "zh"]
    lengths = torch.tensor([5, 7, 24, 3, 10, 10, 10, 10, 4, 24, 6, 8])
    cut = torch.zeros(12, dtype=torch.bool)
    cut[[2, 9]] = True
    return out, targets, lengths, cut


def test_step_figures_hand_computed():
    out, targets, lengths, cut = hand_batch()
    sums = rollout_sums(out, targets, lengths, cut, K, LANGUAGES, masked=2)
    row = step_row(sums, LANGUAGES)                                     # one rank: the sums are the totals
    assert row["zero_std_groups"] == pytest.approx(2 / 3)              # groups 0 and 1
    assert row["gated_groups"] == pytest.approx(1 / 3)                 # group 1
    assert row["truncated"] == pytest.approx(2 / 12) and row["masked_truncated"] == 2
    # asked vs found: rows 2, 3 (en/en ok), 4 (de/ja), 5 (es/None), 6 (en/ko), 7 (zh/ko), 8 (zh/fr), 10 (zh/de)
    assert row["off_language"] == pytest.approx(6 / 12)
    assert row["reward"] == pytest.approx(sum([.5] * 4 + [.2, .9, 0, .4]) / 12)
    assert row["response_len"] == pytest.approx(sum([5, 7, 24, 3, 10, 10, 10, 10, 4, 24, 6, 8]) / 12)
    assert row["missing_pairs"] == 3 and row["no_language"] == 1
    assert set(row["langs"]) == {"de", "en", "es", "zh"}               # languages not asked for are absent
    zh = row["langs"]["zh"]                                             # rows 7..11
    assert zh["n"] == 5 and zh["share"] == pytest.approx(5 / 12)
    assert zh["reward"] == pytest.approx((0 + .2 + .9 + 0 + .4) / 5)
    assert zh["r_lang"] == pytest.approx(3 / 5) and zh["len"] == pytest.approx((10 + 4 + 24 + 6 + 8) / 5)
    de = row["langs"]["de"]                                             # rows 0, 1, 4
    assert (de["n"], de["reward"], de["r_lang"], de["len"]) == (3, pytest.approx(1 / 3), pytest.approx(2 / 3),
                                                                pytest.approx(22 / 3))
    assert sum(v["share"] for v in row["langs"].values()) == pytest.approx(1.0)


def test_sums_add_up_over_ranks():
    """Two ranks' sums, added as the all-reduce adds them, give the figures of the whole batch."""
    out, targets, lengths, cut = hand_batch()
    half = lambda x: (x[:8], x[8:])                                    # noqa: E731 - whole groups per rank
    parts = [rollout_sums({**{k: half(v)[r] for k, v in out.items() if k not in ("missing_pairs", "no_language")},
                           "missing_pairs": [2, 1][r], "no_language": [1, 0][r]},
                          half(targets)[r], half(lengths)[r], half(cut)[r], K, LANGUAGES) for r in (0, 1)]
    summed = {k: parts[0][k] + parts[1][k] for k in parts[0]}
    whole = step_row(rollout_sums(out, targets, lengths, cut, K, LANGUAGES), LANGUAGES)
    assert close(step_row(summed, LANGUAGES), {**whole, "missing_pairs": 3, "no_language": 1}, rel=1e-6)   # fp32 sums


def test_response_cut():
    """A response is cut when no stop token is among its tokens: the stop may be last, padding after
    it may be the stop id itself (pad = eos), and a stop id in the padding of a cut row does not count."""
    stop, pad = [2, 7], 0
    resp = torch.tensor([[5, 6, 2, 0], [5, 6, 8, 9], [5, 7, 7, 7], [4, 4, 4, 2], [5, 6, 0, 0]])
    rmask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    rmask[4] = torch.tensor([1, 1, 1, 1])                               # ran to the limit (pad is a token here)
    assert response_cut(resp, rmask, stop).tolist() == [False, True, False, False, True]
    hidden = torch.tensor([[5, 6, 9, 2]])                               # a stop id outside the mask
    assert response_cut(hidden, torch.tensor([[1, 1, 1, 0]]), stop).tolist() == [True]


def test_sample_rows_are_whole_groups_with_the_loss_advantages():
    out, targets, lengths, cut = hand_batch()
    batch = [{"id": f"q{j}", "topic": "Chat", "region": [], "lang": "de"} for j in range(3)]
    texts = [f"text {i}" for i in range(12)]
    rows = sample_rows(7, batch, targets, "tag", texts, out, lengths, cut, K, range(1, 3))
    assert [(r["id"], r["k"]) for r in rows] == [(f"q{j}", k) for j in (1, 2) for k in range(K)]
    A = group_advantages(out["reward"], K)
    assert [r["advantage"] for r in rows] == pytest.approx(A[4:].tolist())
    assert [r["reward"] for r in rows] == pytest.approx(out["reward"][4:].tolist())
    assert [r["stopped"] for r in rows] == [not c for c in cut[4:].tolist()]
    want = {"step": 7, "lang": "de", "detected": "ja", "response": "text 4", "request": "tag", "prompt_lang": "de",
            "length": 10, "topic": "Chat", "region": []}
    assert {k: rows[0][k] for k in want} == want


def test_runlog_rotates_rollouts_and_resumes_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr(runlog, "ROLLOUT_BYTES", 200)
    log = runlog.RunLog(str(tmp_path), 0, {"step": 0}, log=lambda m: None)
    for step in range(1, 9):                                           # 240 bytes of rows per 2 steps
        rows = [{"step": step, "k": k, "response": "x" * 40} for k in range(2)]
        log.write({"step": step}, {"step": step} if step % 2 == 0 else None, rows)
    read = lambda name: [json.loads(l) for l in open(tmp_path / name)]  # noqa: E731
    files = sorted(p.name for p in tmp_path.glob("rollouts*.jsonl"))
    assert files == ["rollouts.1.jsonl", "rollouts.2.jsonl", "rollouts.jsonl"]       # the oldest were dropped
    kept = [r["step"] for name in ("rollouts.2.jsonl", "rollouts.1.jsonl", "rollouts.jsonl") for r in read(name)]
    assert kept == [3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]                  # steps 1-2 rotated out
    assert [r["step"] for r in read("router.jsonl")] == [0, 2, 4, 6, 8]
    runlog.RunLog(str(tmp_path), 4, {"step": 0}, log=lambda m: None)    # resumed from step 4
    assert [r["step"] for r in read("metrics.jsonl")] == [1, 2, 3, 4]
    for name in files:
        assert all(r["step"] <= 4 for r in read(name)), name


def test_validation_is_greedy_and_sampler_independent(tiny_dirs):
    """Validation through our sampler equals validation through transformers' generate() (greedy
    both), per language; n counts every item."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from reward import Encoder
    tok = AutoTokenizer.from_pretrained(tiny_dirs["policy"])
    tok.padding_side, tok.pad_token = "left", tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["policy"]).eval()
    encoder = Encoder(tiny_dirs["encoder"])
    items = [{"question": q, "reference": r, "gate_lang": l} for q, r, l in (
        ("Wie spät ist es?", "Es ist drei Uhr.", "de"), ("Quelle heure est-il ?", "Il est trois heures.", "fr"),
        ("Wo ist der Bahnhof?", "Der Bahnhof ist dort drüben.", "de"))]
    kw = dict(how="tag", max_new_tokens=6, batch_size=2, languages=LANGUAGES, calibration="none")
    ours = validate(model, tok, items, encoder, None, sampler="ours", **kw)
    theirs = validate(model, tok, items, encoder, None, sampler="hf", **kw)
    assert close(ours, theirs)
    assert ours["n"] == 3 and {l: v["n"] for l, v in ours["langs"].items()} == {"de": 2, "fr": 1}
    empty = validate(model, tok, [], encoder, None, **kw)              # a rank with no held-out item
    assert empty["n"] == 0 and empty["langs"] == {}
