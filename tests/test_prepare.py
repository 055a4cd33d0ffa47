"""data/prepare.py and data/labels.py on small HelpSteer3- and CARE-shaped files written here.

Expected values are worked out by hand from the rows below (which response is preferred, which
turn is the last user turn, how many items of each language go to val)."""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from data.labels import label_items, parse_regions, parse_topic
from data.prepare import main, normalise_lang, split_by_language
from data.records import RecordError
from router import REGIONS, TOPICS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hs3(lang, pref, context, r1="", r2="", **labels):
    return {"domain": "multilingual", "language": lang, "context": context, "response1": r1,
            "response2": r2, "overall_preference": pref, "individual_preference": [], **labels}


def _user(text):
    return {"role": "user", "content": text}


HS3_ROWS = [
    # 0: multi-turn, response1 preferred (negative preference)
    _hs3("chinese", -2, [_user("你好，我想学做菜。"), {"role": "assistant", "content": "好的，你想学什么菜？"},
                         _user("红烧肉怎么做才不油腻？")],
         r1="先焯水去掉浮沫，再用少量油炒糖色，最后小火慢炖一小时。", r2="多放油就好。",
         topic="General Knowledge"),
    # 1: response2 preferred (positive preference), code-style language name
    _hs3("ja", 3, [_user("富士山の高さはどのくらいですか？")], r1="わかりません。",
         r2="富士山の高さは三千七百七十六メートルです。", topic="General Knowledge"),
    # 2: tie -> dropped
    _hs3("korean", 0, [_user("김치는 어떻게 보관하나요?")], r1="냉장고에 보관하세요.", r2="서늘한 곳에 두세요.",
         topic="Chat"),
    # 3: English is a routing target only -> dropped
    _hs3("english", 1, [_user("What is the capital of France?")], r2="Paris.", topic="General Knowledge"),
    # 4: a programming language of the code domain -> dropped
    _hs3("python", -1, [_user("Sort a list in place.")], r1="Use list.sort().", topic="Reasoning"),
    # 5: region-tagged language code, regional label kept as given (lower case region)
    _hs3("pt_BR", 1, [_user("Qual é a origem do Carnaval do Rio?")], r1="Não sei.",
         r2="O Carnaval do Rio tem origem no entrudo português e ganhou desfiles de escolas de samba.",
         topic="Regional Knowledge", region=["latin america"]),
    # 6: same question and language as row 1 -> duplicate, dropped
    _hs3("Japanese", 2, [_user("富士山の高さはどのくらいですか？")], r1="高いです。",
         r2="三千七百七十六メートルです。", topic="General Knowledge"),
    # 7: no topic label -> review file when no --label_model
    _hs3("de", 1, [_user("Wie lange kocht man ein weiches Ei?")], r1="Lange.",
         r2="Etwa sechs Minuten in kochendem Wasser."),
]

CARE_ROWS = [
    # three ratings of one question, no reference answer: the best-rated response wins
    {"question": "端午节为什么要吃粽子？", "answer": "", "response": "随便吃。", "human_rating": 3,
     "associated_culture": "Chinese", "topic": "Regional Knowledge"},
    {"question": "端午节为什么要吃粽子？", "answer": "", "response": "为了纪念屈原，人们把粽子投入江中。",
     "human_rating": 9, "associated_culture": "Chinese", "topic": "Regional Knowledge"},
    {"question": "端午节为什么要吃粽子？", "answer": "", "response": "因为好吃。", "human_rating": 5,
     "associated_culture": "Chinese", "topic": "Regional Knowledge"},
    # a reference answer beats any response; language detected from the question
    {"question": "京都の祇園祭はいつ行われますか？", "answer": "毎年七月の一か月間行われます。",
     "response": "八月です。", "human_rating": 10, "associated_culture": "Native (Japanese)",
     "topic": "Regional Knowledge"},
    # an explicit language field and a CARE-pro style region string
    {"question": "ما هو طبق المنسف؟", "answer": "المنسف طبق أردني من لحم الضأن واللبن المجفف والأرز.",
     "language": "Arabic", "region": "Arab World", "topic": "Regional Knowledge"},
    # an English question is detected as English -> dropped
    {"question": "Why do people in Japan remove their shoes indoors?", "answer": "For cleanliness.",
     "associated_culture": "Japanese", "topic": "Regional Knowledge"},
]


def write_exports(directory, hs3_rows=HS3_ROWS, care_rows=CARE_ROWS):
    os.makedirs(directory, exist_ok=True)
    for name, rows in (("helpsteer3_train.jsonl", hs3_rows), ("care_train.jsonl", care_rows)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return str(directory)


def test_from_dir_resolves_preferences_turns_and_languages(tmp_path, capsys):
    out = main(["--from_dir", write_exports(tmp_path / "in"), "--out_dir", str(tmp_path / "out")])
    items = {it["question"]: it for it in out["train"] + out["val"]}
    assert len(items) == 6
    zh = items["红烧肉怎么做才不油腻？"]  # the last user turn, not the first
    assert zh["reference"].startswith("先焯水") and zh["lang"] == "zh"
    assert items["富士山の高さはどのくらいですか？"]["reference"] == "富士山の高さは三千七百七十六メートルです。"
    pt = items["Qual é a origem do Carnaval do Rio?"]
    assert pt["lang"] == "pt" and pt["region"] == ["Latin America"] and pt["topic"] == "Regional Knowledge"
    assert items["端午节为什么要吃粽子？"]["reference"] == "为了纪念屈原，人们把粽子投入江中。"
    assert items["端午节为什么要吃粽子？"]["region"] == ["China"]
    kyoto = items["京都の祇園祭はいつ行われますか？"]
    assert kyoto["reference"] == "毎年七月の一か月間行われます。" and kyoto["lang"] == "ja"
    assert kyoto["region"] == ["Japan"]
    assert items["ما هو طبق المنسف؟"]["lang"] == "ar" and items["ما هو طبق المنسف؟"]["region"] == ["Arab World"]
    assert items["红烧肉怎么做才不油腻？"]["region"] == []
    drops = out["drops"]
    assert drops["helpsteer3: tie (overall_preference 0)"] == 1
    assert drops["helpsteer3: language 'en' is a routing target only"] == 1
    assert drops["helpsteer3: language 'python' is not a router language"] == 1
    assert drops["duplicate question in the same language"] == 1
    assert drops["care: more rows of a question already seen (one item per question)"] == 2
    assert drops["care: language 'en' is a routing target only"] == 1
    assert drops["no topic label (run with --label_model)"] == 1
    assert sum(drops.values()) == 8
    review = [json.loads(line) for line in open(tmp_path / "out" / "review.jsonl", encoding="utf-8")]
    assert [r["question"] for r in review] == ["Wie lange kocht man ein weiches Ei?"]
    printed = capsys.readouterr().out
    assert "Regional Knowledge" in printed and "tie (overall_preference 0)" in printed
    written = [json.loads(line) for line in open(tmp_path / "out" / "train.jsonl", encoding="utf-8")]
    assert written == out["train"]


@pytest.mark.parametrize("raw,code", [("chinese", "zh"), ("Chinese", "zh"), ("zh-CN", "zh"),
                                      ("pt_BR", "pt"), ("Indonesian", "id"), ("in", "id"),
                                      ("VI", "vi"), ("Chinese (Simplified)", "zh"),
                                      ("english", "en"), ("python", None), ("hindi", None)])
def test_normalise_lang(raw, code):
    assert normalise_lang(raw) == code


def _many(counts):
    """HelpSteer3 rows, `n` distinct labelled questions per language."""
    return [_hs3(lang, 1, [_user(f"{lang} question {i}")], r2=f"{lang} answer {i}", topic="Chat")
            for lang, n in counts.items() for i in range(n)]


def test_split_is_stratified_and_deterministic(tmp_path):
    counts = {"german": 20, "french": 10, "chinese": 35, "italian": 1, "dutch": 2}
    src = write_exports(tmp_path / "in", hs3_rows=_many(counts), care_rows=[])
    runs = [main(["--from_dir", src, "--out_dir", str(tmp_path / f"out{k}"), "--seed", seed])
            for k, seed in enumerate(["42", "42", "7"])]
    val = Counter(it["lang"] for it in runs[0]["val"])
    train = Counter(it["lang"] for it in runs[0]["train"])
    # 10% rounded half up, at least one when a language has 2+ items, never all of them
    assert val == {"de": 2, "fr": 1, "zh": 4, "nl": 1}
    assert train == {"de": 18, "fr": 9, "zh": 31, "it": 1, "nl": 1}
    ids = [it["id"] for it in runs[0]["train"] + runs[0]["val"]]
    assert len(ids) == len(set(ids)) == 68
    assert runs[0]["val"] == runs[1]["val"] and runs[0]["train"] == runs[1]["train"]
    assert {it["id"] for it in runs[2]["val"]} != {it["id"] for it in runs[0]["val"]}
    assert Counter(it["lang"] for it in runs[2]["val"]) == val


def test_split_function_on_its_own():
    items = [{"id": f"{lang}{i}", "lang": lang} for lang, n in (("ja", 9), ("ko", 15)) for i in range(n)]
    train, val = split_by_language(items, 0.1, 42)
    assert Counter(i["lang"] for i in val) == {"ja": 1, "ko": 2}  # 0.9 -> 1, 1.5 -> 2
    assert sorted(i["id"] for i in train + val) == sorted(i["id"] for i in items)
    assert split_by_language(list(reversed(items)), 0.1, 42) == (train, val)  # input order is irrelevant


def test_bad_rows_fail_loudly_with_file_line_and_field(tmp_path):
    bad = [HS3_ROWS[1], {k: v for k, v in HS3_ROWS[0].items() if k != "response2"}]
    src = write_exports(tmp_path / "in", hs3_rows=bad, care_rows=[])
    with pytest.raises(RecordError, match=r"helpsteer3_train.jsonl:2: field 'response2' is missing"):
        main(["--from_dir", src, "--out_dir", str(tmp_path / "out")])
    bad = [dict(HS3_ROWS[1], topic="Sports")]
    src = write_exports(tmp_path / "in2", hs3_rows=bad, care_rows=[])
    with pytest.raises(RecordError, match=r"helpsteer3_train.jsonl:1: field 'topic' is 'Sports'"):
        main(["--from_dir", src, "--out_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="no helpsteer3"):
        main(["--from_dir", str(tmp_path / "out"), "--out_dir", str(tmp_path / "out")])


def test_parquet_export(tmp_path):
    src = tmp_path / "in"
    os.makedirs(src)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        (src / "care_train.parquet").write_bytes(b"PAR1")
        with pytest.raises(SystemExit, match="needs pyarrow"):
            main(["--from_dir", str(src), "--out_dir", str(tmp_path / "out")])
        return
    pq.write_table(pa.Table.from_pylist(HS3_ROWS[:2]), src / "helpsteer3_train.parquet")
    out = main(["--from_dir", str(src), "--out_dir", str(tmp_path / "out")])
    assert sorted(it["lang"] for it in out["train"] + out["val"]) == ["ja", "zh"]


def test_json_list_export_and_missing_datasets(tmp_path, monkeypatch):
    src = tmp_path / "in"
    os.makedirs(src)
    (src / "care_japanese-test.json").write_text(json.dumps(CARE_ROWS[3:5], ensure_ascii=False), "utf-8")
    out = main(["--from_dir", str(src), "--out_dir", str(tmp_path / "out")])
    assert sorted((it["lang"], it["region"][0]) for it in out["train"] + out["val"]) == \
        [("ar", "Arab World"), ("ja", "Japan")]
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now raises ImportError
    with pytest.raises(SystemExit, match="needs the `datasets` library"):
        main(["--out_dir", str(tmp_path / "out2")])        # out/ holds the first run's files


def test_cli_command(tmp_path):
    src = write_exports(tmp_path / "in")
    proc = subprocess.run([sys.executable, "data/prepare.py", "--from_dir", src, "--out_dir",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") > 10 and "all " in proc.stdout
    assert os.path.exists(tmp_path / "out" / "train.jsonl")


TOPIC_ANSWERS = [
    ("[[Regional Knowledge]]", "Regional Knowledge"),
    ("[[General Knowledge]]", "General Knowledge"),
    ("[[Chat / Conversational]]", "Chat"),
    ("[[Reasoning / Logic]]", "Reasoning"),
    ("[[Safety / Ethics]]", "Safety"),
    ("[[Translation]]", "Translation"),
    ("[[chat/conversational]]", "Chat"),
    ("[[ safety ]]", "Safety"),
    ("[[REGIONAL KNOWLEDGE]]", "Regional Knowledge"),
    ("Output: [[Reasoning / Logic]]\nThe user asks to solve an equation.", "Reasoning"),
    ("The label is [[Translation]] because the user asks what a word means.", "Translation"),
    ("[[Logic]]", "Reasoning"),
    ("[[Regional]]", "Regional Knowledge"),
    ("**[[General Knowledge]]**", "General Knowledge"),
    ("General Knowledge", "General Knowledge"),
    ("Topic: reasoning / logic.", "Reasoning"),
    ("[[Chat / Conversational]] [[Chat / Conversational]]", "Chat"),
    ("[[Chat / Conversational]] or [[General Knowledge]]", None),
    ("[[Sports]]", None),
    ("[[]]", None),
    ("It could be general knowledge or regional knowledge.", None),
    ("", None),
    ("ĠĠĠ§ ¤¤ xx", None),
    ("I am not sure.", None),
]


@pytest.mark.parametrize("answer,topic", TOPIC_ANSWERS)
def test_parse_topic(answer, topic):
    assert parse_topic(answer, TOPICS) == topic


REGION_ANSWERS = [
    ("[[China]]", ["China"]),
    ("[[Japan]]", ["Japan"]),
    ("[[France]] [[Germany]]", ["France", "Germany"]),
    ("[[china]]", ["China"]),
    ("[[SOUTH KOREA]]", ["South Korea"]),
    ("[[Korea]]", ["South Korea"]),
    ("[[United States]]", ["Anglosphere"]),
    ("[[Arab World]] [[Israel]]", ["Arab World", "Israel"]),
    ("[[France, Germany]]", ["France", "Germany"]),
    ("[[Japan]] [[Japan]]", ["Japan"]),
    ("Output: [[Vietnam]]\nThe question is about Hanoi street food.", ["Vietnam"]),
    ("[[Brazil]]", ["Brazil"]),
    ("[[Bavaria]] [[Germany]]", ["Bavaria", "Germany"]),
    ("[[None]]", []),
    ("none", []),
    ("The question is about Japan.", ["Japan"]),
    ("North Korea and South Korea", ["North Korea", "South Korea"]),
    ("[[None]] [[Japan]]", None),
    ("[[]]", None),
    ("[[I think this question is about a place in Asia]]", None),
    ("Ġ¤¤ ÃÃ qq", None),
    ("", None),
    ("I cannot tell.", None),
]


@pytest.mark.parametrize("answer,regions", REGION_ANSWERS)
def test_parse_regions(answer, regions):
    assert parse_regions(answer, REGIONS) == regions


def test_label_items_orchestration(tiny_policy_dir, monkeypatch):
    """Canned model answers: topics for all, regions only for Regional Knowledge, review rows."""
    import data.labels as labels
    canned = {"topic": ["[[Regional Knowledge]]", "[[Reasoning / Logic]]", "gibberish",
                        "[[Regional Knowledge]]"],
              "region": ["[[Japan]]", "no idea"]}
    seen = {}

    def fake_generate(model, tokenizer, prompts, batch_size, max_new_tokens, desc):
        seen[desc] = prompts
        return canned[desc][:len(prompts)]

    monkeypatch.setattr(labels, "generate_answers", fake_generate)
    questions = ["京都の祭りは？", "2+2は？", "???", "東京タワーは？"]
    items = [{"id": str(i), "question": q} for i, q in enumerate(questions)]
    items.append({"id": "4", "question": "Qué es la paella?", "topic": "Regional Knowledge",
                  "region": ["Spain"]})
    review = label_items(items, tiny_policy_dir, TOPICS, REGIONS, batch_size=2)
    assert len(seen["topic"]) == 4 and "京都の祭りは？" in seen["topic"][0]
    assert len(seen["region"]) == 2 and "South Korea" in seen["region"][0]  # the list is in the prompt
    assert items[0]["topic"] == "Regional Knowledge" and items[0]["region"] == ["Japan"]
    assert items[1] == {"id": "1", "question": "2+2は？", "topic": "Reasoning", "region": []}
    assert "topic" not in items[2] and "region" not in items[3]  # never defaulted
    assert items[4]["region"] == ["Spain"]  # labels already present are kept
    assert [(r["id"], r["field"]) for r in review] == [("2", "topic"), ("3", "region")]


def test_label_model_garbage_goes_to_review(tmp_path, tiny_policy_dir):
    """The tiny random policy answers noise: every such answer is counted and sent to review."""
    rows = [{k: v for k, v in r.items() if k not in ("topic", "region")} for r in HS3_ROWS]
    src = write_exports(tmp_path / "in", hs3_rows=rows, care_rows=CARE_ROWS[3:5])
    out = main(["--from_dir", src, "--out_dir", str(tmp_path / "out"), "--label_model",
                tiny_policy_dir, "--batch_size", "4", "--max_new_tokens", "8",
                "--review", str(tmp_path / "r.jsonl")])
    # HelpSteer3 rows 0, 1, 5, 7 reach the model (2 tie, 3-4 not training languages, 6 duplicate);
    # the CARE rows carry labels already, so they are kept without a prompt.
    assert sum(it["id"].startswith("care") for it in out["train"] + out["val"]) == 2
    review = [json.loads(line) for line in open(tmp_path / "r.jsonl", encoding="utf-8")] \
        if os.path.exists(tmp_path / "r.jsonl") else []
    for row in review:
        assert isinstance(row["answer"], str)
        assert (parse_topic(row["answer"], TOPICS) if row["field"] == "topic"
                else parse_regions(row["answer"], REGIONS)) is None
    labelled = [it for it in out["train"] + out["val"] if it["id"].startswith("hs3")]
    assert len(labelled) + len(review) == 4
    assert sum(n for r, n in out["drops"].items() if r.startswith("label model")) == len(review)


def test_care_blank_question_is_counted_and_dropped(tmp_path):
    """A CARE row whose question is blank is dropped at its source row and counted, as HelpSteer3's."""
    blank = [{"question": "  ", "answer": "答え", "language": "Japanese", "topic": "Chat"}, CARE_ROWS[4]]
    out = main(["--from_dir", write_exports(tmp_path / "in", hs3_rows=[], care_rows=blank),
                "--out_dir", str(tmp_path / "out")])
    assert [it["lang"] for it in out["train"] + out["val"]] == ["ar"]
    assert out["drops"] == {"care: question is empty": 1}


def test_nothing_to_write_still_reports_review_and_drops(tmp_path, capsys, monkeypatch):
    """With no usable row, the review file and the drop table come before the exit, whose message
    fits the run: no --label_model, or a label model whose every answer was unparseable."""
    import data.prepare as prepare
    src = write_exports(tmp_path / "in", hs3_rows=[HS3_ROWS[7], HS3_ROWS[2]], care_rows=[])
    with pytest.raises(SystemExit, match="pass --label_model"):
        main(["--from_dir", src, "--out_dir", str(tmp_path / "a")])
    assert len(open(tmp_path / "a" / "review.jsonl", encoding="utf-8").readlines()) == 1
    printed = capsys.readouterr().out
    assert "dropped 2:" in printed and "tie (overall_preference 0)" in printed

    def unparseable(items, *args):
        return [{"id": it["id"], "question": it["question"], "field": "topic", "answer": "??"}
                for it in items if "topic" not in it]
    monkeypatch.setattr(prepare, "label_items", unparseable)
    monkeypatch.setattr(prepare, "check_policy", lambda name: None)     # "some/model" is a stand-in
    with pytest.raises(SystemExit) as exit_info:
        main(["--from_dir", src, "--out_dir", str(tmp_path / "b"), "--label_model", "some/model"])
    assert "--label_model" not in str(exit_info.value) and "unparseable" in str(exit_info.value)
    assert json.loads(open(tmp_path / "b" / "review.jsonl", encoding="utf-8").read())["answer"] == "??"
    assert "label model: unparseable topic answer" in capsys.readouterr().out
