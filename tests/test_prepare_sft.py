"""data/prepare_sft.py, the warm-start set builder (paper §5.4), on small Aya-shaped files written here."""
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from data.records import RecordError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SAMPLE = os.path.join(ROOT, "data", "sample")
AYA_ROWS = [  # 1-9 as Aya's train split writes them; row 10 is too long for --max_prompt_tokens 128
    {"inputs": "Quel est le plus long fleuve d'Afrique ?", "language": "French", "language_code": "fra"},
    {"inputs": "Wie viele Flügel hat eine Libelle?", "language": "German", "language_code": "deu"},
    {"inputs": "ما هي عاصمة المغرب؟", "language": "Moroccan Arabic", "language_code": "ary"},
    {"inputs": "长城有多长？", "language": "Simplified Chinese", "language_code": "zho"},
    {"inputs": "Habari za asubuhi?", "language": "Swahili", "language_code": "swa"},
    {"inputs": " 为什么晴天的时候天空看起来是蓝色的？ ", "language": "Simplified Chinese", "language_code": "zho"},
    {"inputs": "QUEL EST le plus long  fleuve d'Afrique ?", "language": "French", "language_code": "fra"},
    {"inputs": "   ", "language": "English", "language_code": "eng"},
    {"inputs": "What is the capital of Kenya?", "language": "English", "language_code": "eng"},
    {"inputs": "Tell me about rivers. " * 60, "language": "English", "language_code": "eng"},
]


def _aya(directory, rows=AYA_ROWS, name="aya_train.jsonl"):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return str(directory)


def _sft_args(src, out, teacher, *extra):
    return ["--from_dir", src, "--exclude", os.path.join(SAMPLE, "train.jsonl"), "--teacher", teacher,
            "--out", str(out), "--max_prompt_tokens", "128", "--max_new_tokens", "512", *extra]


def test_sft_builder_drops_count_and_records_load(tmp_path, tiny_policy_dir, monkeypatch):
    """Canned teacher answers, by the language each prompt asks for: every drop reason once per
    prompt, the rest written in the trainer's SFT format."""
    import data.prepare_sft as prepare_sft
    from data.records import load_sft, question_key
    from reward import LANGUAGE_NAMES, LANGUAGES
    canned = {p["lang"]: p["answer"] for p in load_sft(os.path.join(SAMPLE, "sft.jsonl"), LANGUAGES)}
    names = {name: code for code, name in LANGUAGE_NAMES.items()}
    asked = []

    def teacher(model, tokenizer, prompts, batch_size, max_new_tokens, desc):
        asked.extend(prompts)
        out = []
        for p in prompts:
            lang = names[p.rsplit("Answer in ", 1)[1].rstrip(".")]
            out.append("" if "Libelle" in p else canned[lang] * 30 if "长城" in p else
                       canned["ja" if lang != "ja" else "ko"] if "Kenya" in p else
                       f"<think>\nIn {lang}.\n</think>\n{canned[lang]}" if "المغرب" in p else canned[lang])
        return out

    monkeypatch.setattr(prepare_sft, "generate_answers", teacher)
    out = prepare_sft.main(_sft_args(_aya(tmp_path / "in"), tmp_path / "sft.jsonl", tiny_policy_dir))
    assert out["source"] == {"aya: language 'Swahili' is not a router language": 1,
                             "aya: question is in an --exclude training file": 1,
                             "aya: repeat of a question already kept": 1, "aya: inputs is empty": 1}
    assert out["candidates"] == 6 and out["too_long"] == 1 and len(out["prompts"]) == 5  # --n 420: all
    assert out["dropped"] == {"answer is empty": 2, "answer reached --max_new_tokens (cut off)": 2,
                              "answer detected as another language than the target": 2}
    assert len(asked) == 10 and all(p.endswith(".") and "\n\nAnswer in " in p for p in asked)
    records = load_sft(str(tmp_path / "sft.jsonl"), LANGUAGES)
    assert len(records) == 4 == 2 * len(out["prompts"]) - sum(out["dropped"].values())
    assert sorted({r["id"] for r in records}) == ["aya_train-1", "aya_train-3"]
    for r in records:
        assert r["answer"] == canned[r["lang"]]  # the <think> block is gone
    prompts = {c["id"]: c for c in out["prompts"]}
    assert prompts["aya_train-3"]["qlang"] == "ar" and prompts["aya_train-4"]["qlang"] == "zh"
    assert all(len(set(c["targets"])) == 2 for c in prompts.values())
    review = [json.loads(line) for line in open(tmp_path / "sft.review.jsonl", encoding="utf-8")]
    assert Counter(r["reason"] for r in review) == out["dropped"]

    # the sample and its target languages depend on the seed, not on the order of the file
    again = prepare_sft.main(_sft_args(_aya(tmp_path / "rev", AYA_ROWS[::-1]), tmp_path / "b.jsonl",
                                       tiny_policy_dir))
    targets = {question_key(c["question"]): c["targets"] for c in out["prompts"]}
    assert {question_key(c["question"]): c["targets"] for c in again["prompts"]} == targets
    other = prepare_sft.main(_sft_args(_aya(tmp_path / "in"), tmp_path / "c.jsonl", tiny_policy_dir,
                                       "--seed", "7", "--n", "3"))
    assert len(other["prompts"]) == 3
    assert {question_key(c["question"]): c["targets"] for c in other["prompts"]} != targets


def test_sft_builder_bad_input_fails_before_the_teacher_loads(tmp_path, monkeypatch):
    from data.prepare_sft import main as build
    missing = tmp_path / "no-such-teacher"
    src = _aya(tmp_path / "in", [AYA_ROWS[0], {"language": "French"}])
    with pytest.raises(RecordError, match=r"aya_train.jsonl:2: field 'inputs' must be a string"):
        build(_sft_args(src, tmp_path / "o.jsonl", str(missing)))
    bad_train = tmp_path / "train.jsonl"
    bad_train.write_text('{"id": "1", "question": "Q"}\n', "utf-8")
    with pytest.raises(RecordError, match=r"train.jsonl:1: field 'reference' is missing"):
        build(_sft_args(src, tmp_path / "o.jsonl", str(missing)) + ["--exclude", str(bad_train)])
    with pytest.raises(SystemExit, match="no aya"):
        build(_sft_args(str(tmp_path), tmp_path / "o.jsonl", str(missing)))
    with pytest.raises(SystemExit):  # argparse: --n must be at least 1
        build(_sft_args(src, tmp_path / "o.jsonl", str(missing), "--n", "0"))
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SystemExit, match="needs the `datasets` library"):
        build(["--exclude", os.path.join(SAMPLE, "train.jsonl"), "--teacher", str(missing), "--out", "x"])


def test_sft_builder_cli_with_the_tiny_teacher(tmp_path, tiny_policy_dir):
    """The README command, offline, with the tiny random policy as teacher: its answers are noise,
    so the test checks that every answer is accounted for and whatever is written loads."""
    import re
    from data.records import load_sft
    from reward import LANGUAGES
    out = tmp_path / "out" / "sft.jsonl"
    src = _aya(tmp_path / "in", AYA_ROWS, name="aya_train.json")  # JSON Lines under a .json name
    proc = subprocess.run([sys.executable, "data/prepare_sft.py", *_sft_args(src, out, tiny_policy_dir),
                           "--n", "3", "--max_new_tokens", "8", "--batch_size", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    counts = re.search(r"prompts: (\d+) sampled.*\nanswers: (\d+) generated = (\d+) written \+ (\d+) dropped",
                       proc.stdout)
    assert counts, proc.stdout + proc.stderr
    prompts, generated, written, dropped = map(int, counts.groups())
    assert prompts == 3 and generated == 6 == written + dropped
    review = out.parent / "sft.review.jsonl"
    assert (len(open(review, encoding="utf-8").readlines()) if dropped else 0) == dropped
    if written:
        assert proc.returncode == 0 and len(load_sft(str(out), LANGUAGES)) == written
    else:
        assert proc.returncode == 1 and "no answer to write" in proc.stderr and not out.exists()
