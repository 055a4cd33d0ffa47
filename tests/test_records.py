"""data/records.py and prepare.py's export reader on small files written here: the byte order
mark, bytes that are not UTF-8, a `.json` export in either form, and the warm-start (SFT) records.

Every error must name the file and line (and field where there is one)."""
import json

import pytest

from data.prepare import read_rows
from data.records import RecordError, load_sft, load_train, question_key, read_jsonl, read_text
from reward import LANGUAGES
from router import TOPICS

ROW = {"id": "1", "question": "Wie viele Beine hat eine Spinne?", "lang": "fr",
       "answer": "Une araignée a huit pattes."}


def _lines(path, rows, bom=False, newline="\n"):
    text = "".join(json.dumps(r, ensure_ascii=False) + newline for r in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


def test_bom_at_start_is_accepted(tmp_path):
    path = _lines(tmp_path / "bom.jsonl", [ROW, dict(ROW, lang="de", answer="Eine Spinne hat acht Beine.")],
                  bom=True, newline="\r\n")
    assert [n for n, _ in read_jsonl(path)] == [1, 2]
    assert load_sft(path, LANGUAGES)[0] == ROW
    assert not read_text(path).startswith("\ufeff")
    item = {"id": "de-1", "question": "Was ist ein Vulkan?", "reference": "Ein Berg, aus dem Lava austritt.",
            "lang": "de", "topic": "General Knowledge", "region": []}
    assert load_train(_lines(tmp_path / "train.jsonl", [item], bom=True), LANGUAGES, TOPICS) == [item]


def test_bom_inside_the_file_is_bad_json(tmp_path):
    path = tmp_path / "bom2.jsonl"
    path.write_bytes(json.dumps(ROW).encode() + b"\n\xef\xbb\xbf" + json.dumps(ROW).encode() + b"\n")
    with pytest.raises(RecordError, match=r"bom2.jsonl:2: not valid JSON"):
        list(read_jsonl(str(path)))


def test_non_utf8_byte_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ROW).encode() + b"\n\n" + '{"id": "2", "question": "Qu\'est-ce que ça ?"}'
                     .encode("latin-1") + b"\n")
    with pytest.raises(RecordError, match=r"latin1.jsonl:3: not UTF-8 \(invalid continuation byte: "
                                          r"byte 0xe7 at column 40\)"):
        list(read_jsonl(str(path)))
    with pytest.raises(RecordError, match=r"latin1.jsonl:3: not UTF-8"):
        read_text(str(path))


def test_json_export_as_list_or_json_lines(tmp_path):
    """`datasets.Dataset.to_json` writes JSON Lines even when the file is named .json."""
    rows = [{"question": "Q1", "n": 1}, {"question": "Q2", "n": 2}]
    listed = tmp_path / "care_list.json"
    listed.write_text("\ufeff" + json.dumps(rows, indent=2), "utf-8")
    lines = _lines(tmp_path / "care_lines.json", rows, bom=True)
    assert [r for _, r in read_rows(str(listed))] == rows
    assert [r for _, r in read_rows(lines)] == rows
    assert [w for w, _ in read_rows(lines)] == [f"{lines}:1", f"{lines}:2"]
    broken = tmp_path / "care_broken.json"
    broken.write_text('[\n{"question": "Q1"},\n{"question": }\n]', "utf-8")
    with pytest.raises(RecordError, match=r"care_broken.json:3: not valid JSON"):
        read_rows(str(broken))
    broken.write_text('{"question": "Q1"}\n{"question": "Q2"', "utf-8")
    with pytest.raises(RecordError, match=r"care_broken.json:2: not valid JSON"):
        read_rows(str(broken))
    broken.write_bytes(b'[{"question": "Q1"},\n{"question": "\xff"}]')
    with pytest.raises(RecordError, match=r"care_broken.json:2: not UTF-8"):
        read_rows(str(broken))
    broken.write_text('[{"question": "Q1"}, 3]', "utf-8")
    with pytest.raises(RecordError, match=r"care_broken.json: expected a JSON list of objects"):
        read_rows(str(broken))


def test_load_sft_two_targets_per_prompt(tmp_path):
    rows = [ROW, dict(ROW, lang="en", answer="A spider has eight legs."),
            dict(ROW, id="2", question="¿Qué es un volcán?", lang="ja", answer="火山は地下のマグマが噴き出す山です。")]
    path = _lines(tmp_path / "sft.jsonl", rows)
    assert load_sft(path, LANGUAGES) == rows
    extra = _lines(tmp_path / "extra.jsonl", [dict(ROW, qlang="de")])  # extra fields are not kept
    assert load_sft(extra, LANGUAGES) == [ROW]


@pytest.mark.parametrize("rows,message", [
    ([{k: v for k, v in ROW.items() if k != "answer"}], r":1: field 'answer' is missing"),
    ([dict(ROW, answer="  ")], r":1: field 'answer' is empty"),
    ([dict(ROW, question=None)], r":1: field 'question' must be str, got NoneType"),
    ([dict(ROW, lang="sv")], r":1: field 'lang' is 'sv', not one of \['ar'"),
    ([dict(ROW, lang="French")], r":1: field 'lang' is 'French'"),
    ([dict(ROW, id=7)], r":1: field 'id' must be str"),
    ([ROW, dict(ROW, answer="Huit.")], r":2: field 'lang' 'fr' repeats id '1' of line 1"),
    ([ROW, dict(ROW, lang="de", question="Was ist ein Vulkan?")],
     r":2: field 'question' differs from line 1 of the same id '1'"),
    ([], r"sft.jsonl: no records"),
])
def test_load_sft_rejects(tmp_path, rows, message):
    with pytest.raises(RecordError, match=message):
        load_sft(_lines(tmp_path / "sft.jsonl", rows), LANGUAGES)


def test_load_sft_same_question_other_spacing_is_the_same_question(tmp_path):
    rows = [ROW, dict(ROW, lang="de", question="  wie viele Beine hat\teine Spinne? ",
                      answer="Eine Spinne hat acht Beine.")]
    assert len(load_sft(_lines(tmp_path / "sft.jsonl", rows), LANGUAGES)) == 2
    assert question_key(" Wie  viele\nBEINE ") == "wie viele beine"
