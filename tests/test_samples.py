"""Every shipped sample file validates: the schema the trainer uses, language ID, coverage.

A file that does not exist yet is skipped (one skip per file); one that exists must pass. The
checkers are also run on small broken files, so a checker that stops checking fails too."""
import glob
import json
import os
from collections import Counter, defaultdict

import pytest

from data.records import RecordError, load_sft, load_train, question_key, read_jsonl
from reward import LANGUAGES, detect_language
from router import REGIONS, TOPICS

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "sample")
TRAIN_LANGUAGES = [lang for lang in LANGUAGES if lang != "en"]  # English is a routing target only
MIN_TRAIN_ITEMS = 300
MIN_SFT_PROMPTS = 50


def _exists(path):
    if not os.path.exists(path):
        pytest.skip(f"{os.path.relpath(path, SAMPLE)} is not shipped yet")
    return path


def check_train(path: str, min_items: int = MIN_TRAIN_ITEMS) -> list[dict]:
    """Trainer schema, lang == detected language of question and reference, coverage, regions."""
    items = load_train(path, LANGUAGES, TOPICS)
    errors = []
    for n, it in enumerate(items, 1):
        for field in ("question", "reference"):
            found = detect_language(it[field])
            if found != it["lang"]:
                errors.append(f"{path}: item {n} ({it['id']}): {field} detected as {found}, lang is {it['lang']}")
        if it["topic"] == "Regional Knowledge" and not it["region"]:
            errors.append(f"{path}: item {n} ({it['id']}): a Regional Knowledge item without a region")
        for region in it["region"]:
            if region not in REGIONS:
                errors.append(f"{path}: item {n} ({it['id']}): region {region!r} is not one of the 24")
    questions = Counter((it["lang"], it["question"]) for it in items)
    errors += [f"{path}: question repeated: {q!r}" for (_, q), c in questions.items() if c > 1]
    langs, topics = {it["lang"] for it in items}, {it["topic"] for it in items}
    errors += [f"{path}: no item in language {lang}" for lang in TRAIN_LANGUAGES if lang not in langs]
    if "en" in langs:
        errors.append(f"{path}: English items: en is a routing target only, not a training language")
    errors += [f"{path}: no item of topic {t!r}" for t in TOPICS if t not in topics]
    if len(items) < min_items:
        errors.append(f"{path}: {len(items)} items, at least {min_items} expected")
    assert not errors, "\n".join(errors[:30])
    return items


def check_parallel(path: str) -> dict:
    """{"id", "lang", "text"} rows; every id in all 15 languages exactly once; text in its lang."""
    by_id, errors = defaultdict(list), []
    for lineno, row in read_jsonl(path):
        for field in ("id", "lang", "text"):
            if not isinstance(row.get(field), str) or not row[field].strip():
                raise RecordError(f"{path}:{lineno}: field '{field}' must be a non-empty string")
        if row["lang"] not in LANGUAGES:
            raise RecordError(f"{path}:{lineno}: field 'lang' is {row['lang']!r}, not one of {LANGUAGES}")
        found = detect_language(row["text"])
        if found != row["lang"]:
            errors.append(f"{path}:{lineno}: text detected as {found}, lang is {row['lang']}")
        by_id[row["id"]].append(row["lang"])
    for id_, langs in by_id.items():
        if sorted(langs) != sorted(LANGUAGES):
            missing = sorted(set(LANGUAGES) - set(langs))
            twice = sorted(lang for lang, c in Counter(langs).items() if c > 1)
            errors.append(f"{path}: id {id_!r}: missing {missing}, repeated {twice}")
    assert by_id, f"{path}: no rows"
    assert not errors, "\n".join(errors[:30])
    return by_id


def check_sft(path: str, train_path: str, min_prompts: int = MIN_SFT_PROMPTS) -> list[dict]:
    """Warm-start schema; every answer in its target language; two targets per prompt; all 15
    targets; questions in varied languages and disjoint from the training file (paper §5.4)."""
    pairs = load_sft(path, LANGUAGES)
    errors = []
    for n, p in enumerate(pairs, 1):
        found = detect_language(p["answer"])
        if found != p["lang"]:
            errors.append(f"{path}: record {n} ({p['id']}): answer detected as {found}, lang is {p['lang']}")
    train = {question_key(it["question"]): it["id"] for it in load_train(train_path, LANGUAGES, TOPICS)}
    errors += [f"{path}: record {n} ({p['id']}): question is training item {train[key]}"
               for n, p in enumerate(pairs, 1) if (key := question_key(p["question"])) in train]
    targets = defaultdict(list)
    for p in pairs:
        targets[p["id"]].append(p["lang"])
    errors += [f"{path}: id {i!r} has {len(t)} target languages, 2 expected"
               for i, t in targets.items() if len(t) != 2]
    errors += [f"{path}: no answer in target language {lang}" for lang in LANGUAGES
               if lang not in {p["lang"] for p in pairs}]
    question_langs = {detect_language(p["question"]) for p in pairs}
    if len(question_langs) < min(10, len(targets)):
        errors.append(f"{path}: questions in only {len(question_langs)} languages: {sorted(question_langs)}")
    if len(targets) < min_prompts:
        errors.append(f"{path}: {len(targets)} prompts, at least {min_prompts} expected")
    assert not errors, "\n".join(errors[:30])
    return pairs


def test_train_sample():
    items = check_train(_exists(os.path.join(SAMPLE, "train.jsonl")))
    assert {it["lang"] for it in items} == set(TRAIN_LANGUAGES)


def test_parallel_sample():
    by_id = check_parallel(_exists(os.path.join(SAMPLE, "parallel.jsonl")))
    assert len(by_id) >= 2  # calibration needs mismatched pairs, i.e. at least two items


def test_sft_sample():
    pairs = check_sft(_exists(os.path.join(SAMPLE, "sft.jsonl")), os.path.join(SAMPLE, "train.jsonl"))
    counts = Counter(p["lang"] for p in pairs)
    assert max(counts.values()) - min(counts.values()) <= 2, counts  # targets roughly even


def test_val_sample():
    """The tiny demo's held-out set: training records, two per training language, each question and
    reference detected as its language, no question shared with the training or warm-start sample."""
    items = load_train(_exists(os.path.join(SAMPLE, "val.jsonl")), LANGUAGES, TOPICS)
    assert Counter(it["lang"] for it in items) == {lang: 2 for lang in TRAIN_LANGUAGES}
    wrong = [(it["id"], f, detect_language(it[f])) for it in items for f in ("question", "reference")
             if detect_language(it[f]) != it["lang"]]
    assert not wrong, wrong
    seen = {question_key(r["question"]) for name in ("train.jsonl", "sft.jsonl")
            for _, r in read_jsonl(os.path.join(SAMPLE, name))}
    assert not [it["id"] for it in items if question_key(it["question"]) in seen]


EVAL_FILES = sorted(glob.glob(os.path.join(SAMPLE, "eval", "*.json*")))


@pytest.mark.parametrize("path", EVAL_FILES or [os.path.join(SAMPLE, "eval", "none.jsonl")],
                         ids=lambda p: os.path.basename(p))
def test_eval_sample_parses(path):
    """The fields of each task belong to eval.py; here every file must parse and be non-empty."""
    _exists(path)
    if path.endswith(".jsonl"):
        rows = [row for _, row in read_jsonl(path)]
    else:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    assert rows, f"{path}: empty"


def _write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return str(path)


def test_checkers_catch_broken_files(tmp_path):
    good = {"id": "1", "question": "東京タワーの高さは？", "reference": "東京タワーの高さは三百三十三メートルです。",
            "lang": "ja", "topic": "Regional Knowledge", "region": ["Japan"]}
    wrong_lang = dict(good, id="2", reference="The Tokyo Tower is 333 metres tall.")
    no_region = dict(good, id="3", question="京都の祇園祭はいつですか？", region=[])
    for rows, message in (([wrong_lang], "reference detected as en"),
                          ([no_region], "without a region"),
                          ([good, dict(good, id="4")], "question repeated"),
                          ([good], "no item in language de"),
                          ([good, dict(good, id="5", lang="en", question="How tall is it?",
                                       reference="It is 333 metres tall.")], "routing target only"),
                          ([dict(good, topic="Sports")], "field 'topic' is 'Sports'")):
        with pytest.raises((AssertionError, RecordError), match=message):
            check_train(_write(tmp_path / "bad.jsonl", rows), min_items=1)
    texts = {"en": "The weather is nice today.", "de": "Das Wetter ist heute schön."}
    rows = [{"id": "a", "lang": lang, "text": t} for lang, t in texts.items()]
    with pytest.raises(AssertionError, match=r"id 'a': missing \['ar'"):
        check_parallel(_write(tmp_path / "par.jsonl", rows))
    with pytest.raises(RecordError, match="field 'text'"):
        check_parallel(_write(tmp_path / "par.jsonl", [{"id": "a", "lang": "de", "text": ""}]))


def test_sft_checker_catches_broken_files(tmp_path):
    train = os.path.join(SAMPLE, "train.jsonl")
    fr = {"id": "p", "question": "Wie viele Beine hat eine Spinne?", "lang": "fr",
          "answer": "Une araignée a huit pattes."}
    ja = dict(fr, lang="ja", answer="クモには足が八本あります。")
    in_train = "为什么晴天的时候天空看起来是蓝色的？"  # training item zh-007
    for rows, message in (([dict(fr, answer="A spider has eight legs."), ja], "answer detected as en"),
                          ([dict(fr, question=in_train), dict(ja, question=in_train)],
                           "question is training item zh-007"),
                          ([fr], "has 1 target languages"),
                          ([fr, ja], "no answer in target language ar"),
                          ([fr, dict(ja, lang="xx")], "field 'lang' is 'xx'")):
        with pytest.raises((AssertionError, RecordError), match=message):
            check_sft(_write(tmp_path / "sft.jsonl", rows), train, min_prompts=1)
