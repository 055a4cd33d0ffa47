"""
Tests for eval.py and data/eval_sets.py: loading and checking the sets, answer extraction against
hand-written expectations, multiple-choice scoring against log-likelihoods computed directly in
fp64, the in-process judge (unparsed replies counted) and the proxy, the CLI end to end on the
tiny model and data/sample/eval/, and a 2-rank torchrun run against the 1-rank run. judge.py's
own tests (verdicts, prompts, the server client, the cache) are in tests/test_judge.py; the
paper's table and the lm-eval formats in tests/test_eval_protocol.py.
"""
import json
import os

import pytest
import torch

import eval as E
import judge as J
from data.eval_sets import (extract_choice, extract_number, last_number, load_items, load_suite, mc_prompt,
                            normalise_lang)
from data.records import RecordError
from reward import LANGUAGES
from test_judge import HARMONY, TRACE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample", "eval")
SUITE = os.path.join(SAMPLE, "suite.json")

# (text, language, expected) -- 12 languages, answer words, separators, digits of other scripts
NUMBER_CASES = [
    ("The answer is 42.", "en", "42"),
    ("The answer is $1,234.", "en", "1234"),
    ("ANSWER: 99", "en", "99"),
    ("She has 3 apples and buys 5 more, so 8 apples in total.", "en", "8"),
    ("First 12 + 6 = 18, then 18 * 2 = 36. Answer: 36 dollars", "en", "36"),
    ("The answer is 15. We needed 3 boxes of 5 each, packed over 2 days.", "en", "15"),
    ("24 + 18 = 42 and 42 - 35 = 7. That is the answer.", "en", "7"),
    ("The answer is -12.", "en", "-12"),
    ("The temperature dropped to −7 °C.", "en", "-7"),
    ("Answer: 2.5 hours", "en", "2.5"),
    ("The answer is 18.0", "en", "18"),
    ("The answer is 0.125", "en", "0.125"),
    ("Answer: 1,234,567", "en", "1234567"),
    ("Answer: 1,234.50", "en", "1234.5"),
    ("Total: 50%", "en", "50"),
    ("The answer is €1 000 000", "en", "1000000"),
    ("Step 1: 3 + 4 = 7. Step 2: 7 * 3 = 21.", "en", "21"),
    ("Between 3-5 apples; the answer is 4", "en", "4"),
    ("I don't know.", "en", None),
    ("", "en", None),
    ("Antwort: 1.234", "de", "1234"),
    ("Die Antwort ist 2,5 Stunden.", "de", "2.5"),
    ("Er hat 12 Äpfel und gibt 4 ab. Antwort: 8 Äpfel, die 2 Tage frisch bleiben.", "de", "8"),
    ("Das Ergebnis ist 1.234,56 €", "de", "1234.56"),
    ("The answer is 7, because 42 - 35 = 7 and he started with 2 trays.", "de", "7"),
    ("Keine Ahnung, tut mir leid.", "de", None),
    ("Respuesta: 40 dólares", "es", "40"),
    ("Réponse : 1 200 élèves", "fr", "1200"),
    ("Réponse: 3,75 €", "fr", "3.75"),
    ("Risposta: 43", "it", "43"),
    ("Resposta: R$ 150,00", "pt", "150"),
    ("Odpowiedź: 7 bułek", "pl", "7"),
    ("Câu trả lời: 150 km", "vi", "150"),
    ("Ответ: 43 наклейки", "ru", "43"),
    ("ОТВЕТ: 5", "ru", "5"),
    ("الإجابة: 18", "ar", "18"),
    ("الإجابة هي ١٨", "ar", "18"),
    ("الجواب: ٣٫٥", "ar", "3.5"),
    ("答案是 18。", "zh", "18"),
    ("答案：１８", "zh", "18"),
    ("一共卖出35个，答案是7个，比昨天多2个", "zh", "7"),
    ("他有18个苹果", "zh", "18"),
    ("共计１，２００元", "zh", "1200"),
    ("答えは300人です。", "ja", "300"),
    ("答え：４３", "ja", "43"),
    ("답: 150", "ko", "150"),
    ("정답은 40달러입니다. 처음에 3권을 샀습니다.", "ko", "40"),
    ("Jibu: 7", "sw", "7"),
    ("উত্তর: ৪৩", "bn", "43"),
]


def test_extract_number_cases():
    assert len(NUMBER_CASES) >= 40 and len({lang for _, lang, _ in NUMBER_CASES}) >= 8
    wrong = [(t, l, want, extract_number(t, l)) for t, l, want in NUMBER_CASES
             if extract_number(t, l) != want]
    assert not wrong, wrong


@pytest.mark.parametrize("text,want", [
    ("B", "B"), ("(C)", "C"), ("The answer is D.", "D"), ("Answer: A", "A"), ("**B**", "B"),
    ("A good choice is C.", "C"), ("答案：Ｃ", "C"), ("Antwort: B", "B"), ("A. Au", "A"),
    ("Ответ: B", "B"), ("답: D", "D"), ("the answer is (B) Au", "B"), ("Berlin", None),
    ("None of them", None), ("", None)])
def test_extract_choice(text, want):
    assert extract_choice(text) == want


# an answer word inside another word ("beantworten", "ответить", "答える", "대답") or not followed
# by a colon, copula or number ("To answer this") is not an answer marker: the last number counts
@pytest.mark.parametrize("text,lang", [
    ("Um diese Frage zu beantworten, rechnen wir: 16 - 3 - 4 = 9 Eier. 9 * 2 = 18 Euro.", "de"),
    ("Чтобы ответить на вопрос, посчитаем: 16 - 3 - 4 = 9. Затем 9 * 2 = 18.", "ru"),
    ("この質問に答えるために計算します。16 - 3 - 4 = 9、9 × 2 = 18ドルです。", "ja"),
    ("To answer this, we compute 16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars.", "en"),
    ("질문에 대답하면 16 - 3 - 4 = 9이고 9 * 2 = 18입니다.", "ko")])
def test_extract_number_answer_word_must_stand_alone(text, lang):
    assert extract_number(text, lang) == "18"


@pytest.mark.parametrize("text,want", [
    ("答えはBです。", "B"), ("정답은 B입니다.", "B"), ("正解はB", "B"), ("الإجابة الصحيحة هي B", "B"),
    ("The correct option is C", "C"), ("Answer: c", "C"), ("The answer is (b)", "B"),
    ("Jawaban yang benar adalah D", "D"), ("The answer is a dog.", None), ("Answers vary", None)])
def test_extract_choice_particles_and_lower_case(text, want):
    assert extract_choice(text) == want


def test_sample_sets_load_and_normalise():
    gm = load_items(os.path.join(SAMPLE, "global_mmlu_lite.jsonl"), "mc")
    inc = load_items(os.path.join(SAMPLE, "include_lite.jsonl"), "mc")
    care = load_items(os.path.join(SAMPLE, "care.jsonl"), "open")
    mgsm = load_items(os.path.join(SAMPLE, "mgsm.jsonl"), "mgsm")
    assert (len(gm), len(inc), len(care), len(mgsm)) == (15, 15, 15, 20)
    assert inc[0]["gold"] == "B" and inc[0]["choices"][1] == "Москва"    # 0-based index 1 -> B
    assert {it["lang"] for it in inc} == {"ru", "pt", "el"}               # names -> codes
    assert {it["lang"] for it in care} == {"zh", "ja", "ar"}
    assert [it["gold"] for it in mgsm[:5]] == ["7", "40", "150", "300", "43"]
    assert normalise_lang("pt-BR", "x") == "pt" and normalise_lang("Swahili", "x") == "sw"
    assert mc_prompt(gm[0]) == "What is the chemical symbol for gold?\nA. Ag\nB. Au\nC. Gd\nD. Go\nAnswer:"
    assert {it["culture_type"] for it in care} == {"Cultural commonsense", "Cultural entities", "Social norms"}
    assert inc[0]["domain"] == "Social Science"


def test_bad_input_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "1+1?", "answer_number": 2, "lang": "en"}\n\n'
                    '{"question": "2+2?", "lang": "de"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl:3: field 'answer_number'"):
        load_items(str(path), "mgsm")
    path.write_text('{"question": "q", "answer": "a", "language": "Klingon"}\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl:1: field 'lang'.*Klingon"):
        load_items(str(path), "open")
    path.write_text('{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 4, "lang": "ru"}\n')
    with pytest.raises(RecordError, match=r"bad\.jsonl:1: field 'answer'"):
        load_items(str(path), "mc")
    with pytest.raises(ValueError, match="valid tasks: mgsm, mc, open"):
        E.main(["--model", "unused", "--task", "qa", "--data", str(path)])
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"tasks": [{"task": "mmlu", "data": "bad.jsonl"}]}))
    with pytest.raises(ValueError, match="valid tasks: mgsm, mc, open"):
        E.main(["--model", "unused", "--suite", str(suite)])
    for bad in ({"task": "mc"}, {"task": "open", "data": "bad.jsonl", "metric": "bleu"},
                {"task": "mc", "data": "bad.jsonl", "mc_mode": "cloze"}):
        suite.write_text(json.dumps({"tasks": [{"task": "mgsm", "data": "x.jsonl"}, bad]}))
        with pytest.raises(RecordError, match=r"suite\.json: task #1: needs 'data'"):
            load_suite(str(suite))


def test_include_option_fields_with_index_answer(tmp_path):
    """lm-eval-harness INCLUDE exports: option_a..option_d with a 0-based int `answer`."""
    row = {"question": "q", "option_a": "a", "option_b": "b", "option_c": "c", "option_d": "d", "lang": "el"}
    path = tmp_path / "include.jsonl"
    path.write_text("".join(json.dumps(dict(row, answer=a)) + "\n" for a in (0, 2, "d", " B ")))
    assert [it["gold"] for it in load_items(str(path), "mc")] == ["A", "C", "D", "B"]
    for bad in (4, -1, "E", True, 1.0):
        path.write_text(json.dumps(dict(row, answer=0)) + "\n" + json.dumps(dict(row, answer=bad)) + "\n")
        with pytest.raises(RecordError, match=r"include\.jsonl:2: field 'answer'"):
            load_items(str(path), "mc")


@pytest.mark.parametrize("name,code", [
    ("Chinese (Simplified)", "zh"), ("Bahasa Indonesia", "id"), ("Mandarin", "zh"), ("Farsi", "fa"),
    ("Indonesia", "id"), ("fil", "tl"), ("in", "id"), ("Portuguese (Brazil)", "pt")])
def test_language_aliases(name, code):
    assert normalise_lang(name, "x") == code


def test_suite_paths_and_gold_numbers_match_extraction():
    seen, tasks = load_suite(SUITE)
    assert seen == [] and all(os.path.isfile(t["data"]) for t in tasks)   # the default split; paths relative
    # a gold answer_number and the same number written in an answer compare equal as strings
    for gold, text, lang in [("1234", "Antwort: 1.234", "de"), ("2.5", "Réponse: 2,5", "fr"),
                             ("18", "答案：１８", "zh"), ("-7", "The answer is −7.", "en"), ("18.0", "18", "en")]:
        assert last_number(gold) == extract_number(text, lang), (gold, text)


@pytest.fixture(scope="module")
def tiny(tiny_policy_dir):
    return E.load_model(tiny_policy_dir, torch.device("cpu"))


def test_mc_loglik_matches_direct_fp64(tiny):
    model, tok = tiny
    items = load_items(os.path.join(SAMPLE, "include_lite.jsonl"), "mc")[::3]   # mixed lengths
    prompts = [mc_prompt(it) for it in items]
    got = E.choice_logliks(model, tok, prompts, batch_size=3, show=False)      # (N, 4), padded
    ref = model.to(torch.float64)
    try:
        want = torch.empty(len(prompts), 4, dtype=torch.float64)
        for i, p in enumerate(prompts):
            n_ctx = len(tok(p)["input_ids"])
            for j, L in enumerate("ABCD"):
                ids = torch.tensor([tok(p + " " + L)["input_ids"]])               # (1, T), no padding
                logp = torch.log_softmax(ref(input_ids=ids).logits[0], -1)       # (T, V)
                want[i, j] = sum(logp[t - 1, ids[0, t]] for t in range(n_ctx, ids.shape[1]))
    finally:
        model.to(torch.float32)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    args = E.parse_args(["--model", "unused", "--batch_size", "2"])
    spec = {"name": "include", "task": "mc", "mc_mode": "loglik"}
    E.run_task(spec, items, model, tok, args, {}, show=False)
    assert [it["pred"] for it in items] == ["ABCD"[int(k)] for k in want.argmax(1)]
    assert all(it["score"] == float(it["pred"] == it["gold"]) for it in items)


# a stand-in for the authors' CARE-pro prompt (not shipped): Figure 7's last lines and placeholders
PRO_PROMPT = """Grade a predicted answer against a gold target.
```
Question: {question}
Gold target: {target}
Predicted answer: {predicted_answer}
```
Grade the predicted answer of this new question as one of:
A. CORRECT
B. CORRECT_BUT_WRONG_LANGUAGE
C. INCORRECT
D. NOT_ATTEMPTED
Just return the letters "A", "B", "C", or "D", with no text around it."""


@pytest.fixture
def pro_prompt(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text(PRO_PROMPT, encoding="utf-8")
    return str(path)


def test_judge_counts_unparsed_replies(tiny, pro_prompt):
    model, tok = tiny                           # a random tiny judge: its replies are not grades
    items = [{"question": "q?", "gold": "a", "output": "b", "lang": "de"} for _ in range(3)]
    judge = E.LocalJudge("tiny", model, tok, max_new_tokens=8, batch_size=2, show=False)
    counts = J.judge_items(items, "care_pro", J.load_prompts(pro_prompt), judge)
    replies = [J.final_answer(it["judge_reply"], tok.all_special_tokens) for it in items]
    assert counts["judge_unparsed"] == sum(J.parse_verdict(r) is None for r in replies)
    assert all(it["score"] == float(it["grade"] == "CORRECT") for it in items)
    assert counts["judge_asked"] == 1 and counts["judge_cached"] == 0          # one question, asked once


def test_judge_grades_and_ratings(tiny, monkeypatch, pro_prompt):
    """In-process judge: the judge's chat template, CARE-pro letters, CARE ratings by culture type
    (judge.py Decisions 2-4): an unparsed CARE-pro reply scores 0, an unparsed CARE one None."""
    model, tok = tiny
    seen_prompts, replies = [], iter(["A", "C. INCORRECT", "???", "Rating: [[7]]", "[[10]]", "none"])

    def fake_generate(m, t, prompts, max_new_tokens, *a, **k):
        assert max_new_tokens == 300 and k["keep_special"]
        seen_prompts.extend(prompts)
        return [next(replies) for _ in prompts], [False, True, False][:len(prompts)]
    monkeypatch.setattr(E, "generate", fake_generate)
    items = [{"question": f"q{i}?", "gold": f"gold {i}", "output": f"out {i}", "lang": "ja", "culture_type": c}
             for i, c in enumerate(["Cultural entities", "Literacy", "Social norms"])]
    judge, prompts = E.LocalJudge("tiny", model, tok, 300, batch_size=2, show=False), J.load_prompts(pro_prompt)
    counts = J.judge_items(items, "care_pro", prompts, judge)
    assert [it["score"] for it in items] == [1.0, 0.0, 0.0] and counts["judge_unparsed"] == 1
    assert counts["judge_cut"] == 1
    assert "Question: q1?\nGold target: gold 1\nPredicted answer: out 1" in seen_prompts[1]
    assert seen_prompts[1].startswith("<|im_start|>user\n")                  # the judge's chat template
    counts = J.judge_items(items, "care", prompts, judge)
    assert [it["score"] for it in items] == [0.7, 1.0, None] and counts["judge_unparsed"] == 1
    assert "## Golden answer: gold 0\n## Assistant’s response: out 0" in seen_prompts[3]    # entities_opinion
    assert "## Reference Answer: gold 1\n" in seen_prompts[4] and "literary work" in seen_prompts[4]
    assert "## Golden Answer: gold 2\n" in seen_prompts[5] and "cultural context" in seen_prompts[5]


def test_proxy_scores_and_gate(tiny_encoder_dir):
    from reward import Encoder
    enc = Encoder(tiny_encoder_dir)
    tr = "Simit, susamla kaplı ve halka şeklinde bir ekmektir; genellikle çayla birlikte yenir."
    de = "Am Morgen trinken viele Menschen in Deutschland Kaffee und essen ein Brötchen mit Butter."
    en = "Simit is a ring-shaped bread covered in sesame seeds, usually eaten with tea."
    sv = "Om du vill lära dig ett nytt språk är det bäst att öva lite varje dag."
    sw = "Watoto wengi nchini Tanzania huenda shuleni kwa miguu kila asubuhi."
    items = [{"lang": "tr", "gold": tr, "output": tr}, {"lang": "tr", "gold": tr, "output": en},
             {"lang": "de", "gold": de, "output": de}, {"lang": "de", "gold": de, "output": "123 !!"},
             {"lang": "de", "gold": de, "output": sv}, {"lang": "sw", "gold": sw, "output": sw}]
    counts = E.proxy_items(items, enc, None, "none")
    sims = enc.similarity([it["output"] for it in items], [it["gold"] for it in items])
    # right language; English for Turkish; no language; Swedish for German; an unseen language
    gates = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    want = [min(max((s + 1) / 2, 0), 1) * g for s, g in zip(sims.tolist(), gates)]
    assert [it["r_lang"] for it in items] == gates
    assert [it["detected"] for it in items] == ["tr", "en", "de", None, "sv", "sw"]
    assert [it["score"] for it in items] == pytest.approx(want, abs=1e-6)
    assert items[0]["score"] == pytest.approx(1.0, abs=1e-5)                # identical text
    assert counts["missing_pairs"] == 0 and counts["no_language"] == 1     # no table: nothing missing
    # mean calibration (Eq. 2): mu_ref = (0.9 + 0.7) / 2, so de-de scores move by -(0.9 - 0.8)
    counts = E.proxy_items(items, enc, small_table(), "mean")
    cal = [min(max(s - 0.1, -1), 1) for s in sims.tolist()[2:5]]
    assert [it["score"] for it in items[2:5]] == pytest.approx([(c + 1) / 2 * g for c, g in zip(cal, gates[2:5])],
                                                               abs=1e-6)
    assert counts["missing_pairs"] == 3                           # tr-tr and sw-sw are not in the table


def small_table():
    from calibrate import CalibrationTable, pair_stats
    return CalibrationTable.from_pairs({"de-de": pair_stats([0.85, 0.95], [0.1], [0.3]),
                                        "ko-ko": pair_stats([0.65, 0.75], [0.1], [0.3])})


def test_generated_answers_are_scored(tiny, monkeypatch):
    model, tok = tiny
    replies = iter(["Antwort: 7", "The answer is 41.", "答案是 150。", "no idea", "Answer: (B)", "C", "hmm"])
    monkeypatch.setattr(E, "generate", lambda m, t, prompts, *a, **k: ([next(replies) for _ in prompts],
                                                                        [False] * len(prompts)))
    args = E.parse_args(["--model", "unused"])
    mgsm = [dict(it) for it in load_items(os.path.join(SAMPLE, "mgsm.jsonl"), "mgsm")[5:9]]
    counts = E.run_task({"name": "m", "task": "mgsm"}, mgsm, model, tok, args, {}, show=False)
    assert [it["pred"] for it in mgsm] == ["7", "41", "150", None]       # golds: 7, 40, 150, 300
    assert [it["score"] for it in mgsm] == [1.0, 0.0, 1.0, 0.0] and counts["no_answer"] == 1
    mc = load_items(os.path.join(SAMPLE, "global_mmlu_lite.jsonl"), "mc")[:3]   # golds: B, C, B
    counts = E.run_task({"name": "g", "task": "mc", "mc_mode": "generate"}, mc, model, tok, args, {}, show=False)
    assert [it["score"] for it in mc] == [1.0, 1.0, 0.0] and counts["no_answer"] == 1


def test_cli_judge_reports_unparsed_verdicts(tiny_policy_dir, monkeypatch, tmp_path, capsys, pro_prompt):
    """judge.py Decision 4 end to end: --judge_max_new_tokens reaches the judge; CARE-pro replies
    without a verdict score 0, stay in the averages, and are counted in the table row, the counters
    and results.json; the stand-in prompt is reported as not the published one."""
    replies = [HARMONY.format(TRACE, "A"), f"<think>{TRACE}</think>C", f"<think>{TRACE}"]   # 1, 0, unparsed

    def fake_generate(m, t, prompts, max_new_tokens, batch_size, desc="generate", show=True, keep_special=False,
                      **kw):
        if desc != "judge":
            return ["an answer"] * len(prompts), [False] * len(prompts)
        assert max_new_tokens == 96 and keep_special
        return [replies[i % 3] for i in range(len(prompts))], [False] * len(prompts)
    monkeypatch.setattr(E, "generate", fake_generate)
    out = tmp_path / "results.json"
    E.main(["--model", tiny_policy_dir, "--judge", tiny_policy_dir, "--task", "open", "--judge_prompt",
            f"care_pro={pro_prompt}", "--data", os.path.join(SAMPLE, "care.jsonl"), "--judge_max_new_tokens", "96",
            "--out", str(out)])
    printed = capsys.readouterr().out
    res = json.loads(out.read_text(encoding="utf-8"))
    task = res["tasks"][0]
    assert task["counters"]["judge_unparsed"] == 5
    assert task["label"] == "care (judge, 5 unparsed, unpublished prompt)"
    assert "| care (judge, 5 unparsed, unpublished prompt) |" in printed and "5 judge replies had no verdict" in printed
    assert res["care_pro_prompt"]["published"] is False and "is not the published prompt's" in printed
    assert sum(it["grade"] is None for it in task["items"]) == 5 and len(task["items"]) == 15
    assert [it["score"] for it in task["items"]] == [1.0, 0.0, 0.0] * 5
    for lang, score in task["scores"].items():                          # unparsed items count as 0
        mine = [it for it in task["items"] if it["lang"] == lang]
        assert score == pytest.approx(100 * sum(it["grade"] == "CORRECT" for it in mine) / len(mine))


@pytest.fixture(scope="module")
def one_rank(tiny_policy_dir, tiny_encoder_dir, tmp_path_factory):
    """(results path, CLI arguments ending with --out PATH) of the 1-rank suite run."""
    tmp = tmp_path_factory.mktemp("eval1")
    small_table().save(str(tmp / "calib.json"))
    return tmp / "results.json", ["--model", tiny_policy_dir, "--suite", SUITE, "--encoder", tiny_encoder_dir,
                                  "--calib", str(tmp / "calib.json"), "--max_new_tokens", "4",
                                  "--batch_size", "8", "--out", str(tmp / "results.json")]


def test_cli_suite_writes_results_and_table(one_rank, capsys):
    out, argv = one_rank
    E.main(argv)
    printed = capsys.readouterr().out
    res = json.loads(out.read_text(encoding="utf-8"))
    names = [t["name"] for t in res["tasks"]]
    assert names == ["CARE", "CARE-pro", "mGSM", "Global-MMLU-Lite", "INCLUDE-lite"]
    assert "| task |" in printed and "| CARE (proxy) |" in printed and "| Overall |" in printed
    for t in res["tasks"]:
        assert len(t["items"]) == sum(t["n"].values()) and all(0 <= it["score"] <= 1 for it in t["items"])
        for lang, score in t["scores"].items():                         # recompute from the items
            mine = [it["score"] for it in t["items"] if it["lang"] == lang]
            assert score == pytest.approx(100 * sum(mine) / len(mine))
        assert t["avg"] == pytest.approx(sum(t["scores"].values()) / len(t["scores"]))
    gm = res["tasks"][3]["scores"]                         # en, es, ko: all seen by default (Decision 6)
    assert res["tasks"][3]["seen_avg"] == pytest.approx((gm["en"] + gm["es"] + gm["ko"]) / 3)
    assert res["tasks"][3]["unseen_avg"] is None and res["tasks"][1]["unseen_avg"] == pytest.approx(
        res["tasks"][1]["scores"]["tr"])                      # CARE-pro's Turkish is unseen
    assert res["seen"] == sorted(LANGUAGES)
    assert res["overall"]["avg"] == pytest.approx(sum(t["avg"] for t in res["tasks"]) / 5)
    assert "proxy" in res["tasks"][0]["metric"] and res["world_size"] == 1
    assert res["tasks"][1]["counters"]["missing_pairs"] == 10             # only ko-ko is in the table


def test_two_ranks_match_one_rank(one_rank, torchrun, tmp_path):
    out1, argv = one_rank
    if not out1.exists():
        E.main(argv)
    out2 = tmp_path / "results.json"
    proc = torchrun("eval.py", *argv[:-1], str(out2), timeout=180)
    assert "| Overall |" in proc.stdout
    r1, r2 = (json.loads(p.read_text(encoding="utf-8")) for p in (out1, out2))
    assert r2["world_size"] == 2
    for t1, t2 in zip(r1["tasks"], r2["tasks"]):
        assert t1["scores"] == pytest.approx(t2["scores"]) and t1["counters"] == t2["counters"]
        assert [it["id"] for it in t1["items"]] == [it["id"] for it in t2["items"]]
        assert [it.get("pred", it.get("output")) for it in t1["items"]] == \
               [it.get("pred", it.get("output")) for it in t2["items"]]
        for a, b in zip(t1["items"], t2["items"]):
            assert a.get("loglik", [0]) == pytest.approx(b.get("loglik", [0]), abs=1e-4)
    for key in ("seen_avg", "unseen_avg", "avg"):
        assert r1["overall"][key] == pytest.approx(r2["overall"][key])
