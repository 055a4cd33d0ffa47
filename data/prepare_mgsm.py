"""
MGSM-Rev2 to eval.py's mGSM JSON Lines. The paper's mGSM-v2 (Appendix C.2) is MGSM-Rev2
(github.com/google-research-datasets/MGSM-Rev2, CC BY-SA 4.0): the 250 GSM8K problems of MGSM in
English and 10 languages with translation errors corrected.

    git clone https://github.com/google-research-datasets/MGSM-Rev2
    python data/prepare_mgsm.py --tsv_dir MGSM-Rev2/MGSM-Rev2 --out data/full/mgsm.jsonl

Decisions:
1. Input: every `mgsm_{lang}.tsv` of --tsv_dir, the release's layout (one file per language, no
   header, "question<TAB>answer" per line, the format of the original MGSM's TSVs); the language
   is the file name's, through data/eval_sets.py's normaliser.
2. A line must have exactly two tab-separated fields, a non-empty question and an answer that is
   a number; anything else stops the run with FILE:LINE and the field, before anything is written.
   Blank lines are skipped (an editor's trailing newline).
3. Output records {"id": "mgsm-rev2-{lang}-{n:03d}", "lang", "question", "answer_number"}: n is the
   1-based line, the numbering of the release's replaced_questions.json; the answer as written
   (an int when it is one). Languages in name order, lines in file order; written atomically
   (data/outputs.py), so a failed run leaves no half file; an existing --out only with --overwrite.
4. Prints the questions per language; a language without 250 is said (a subset is allowed).
"""
import argparse
import glob
import json
import os
import re
import sys

if __package__ in (None, ""):  # run as `python data/prepare_mgsm.py`: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.eval_sets import last_number, normalise_lang  # noqa: E402
from data.outputs import OutputError, atomic_write, check_output  # noqa: E402
from data.records import RecordError, read_text  # noqa: E402

QUESTIONS = 250                                        # per language in MGSM and MGSM-Rev2


def read_tsv(path: str) -> list[dict]:
    """The records of one mgsm_{lang}.tsv (Decisions 1-3)."""
    name = re.fullmatch(r"mgsm_(.+)\.tsv", os.path.basename(path))
    lang = normalise_lang(name.group(1), f"{path}: the language of the file name")
    rows = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise RecordError(f"{path}:{lineno}: {len(fields)} tab-separated fields, expected 2 (question, answer)")
        question, answer = fields[0].strip(), fields[1].strip()
        if not question:
            raise RecordError(f"{path}:{lineno}: field 'question' (column 1) is empty")
        if last_number(answer) is None or re.search(r"[^\d.,\s-]", answer):
            raise RecordError(f"{path}:{lineno}: field 'answer' (column 2) is not a number: {answer!r}")
        rows.append({"id": f"mgsm-rev2-{lang}-{lineno:03d}", "lang": lang, "question": question,
                     "answer_number": int(answer) if re.fullmatch(r"-?\d+", answer) else answer})
    if not rows:
        raise RecordError(f"{path}: no questions")
    return rows


def convert(tsv_dir: str, out: str) -> dict[str, int]:
    """Write every language of `tsv_dir` to `out`; returns the questions per language."""
    paths = sorted(glob.glob(os.path.join(tsv_dir, "mgsm_*.tsv")))
    if not paths:
        raise RecordError(f"{tsv_dir}: no mgsm_*.tsv files (the MGSM-Rev2 folder of the release)")
    rows = [r for p in paths for r in read_tsv(p)]                  # every file checked before writing
    with atomic_write(out) as f:                                    # data/outputs.py: never half a file
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    counts = {}
    for r in rows:
        counts[r["lang"]] = counts.get(r["lang"], 0) + 1
    return counts


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tsv_dir", required=True, help="the release's folder of mgsm_{lang}.tsv files")
    p.add_argument("--out", required=True, help="JSON Lines for eval.py --task mgsm")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    check_output(args.out, overwrite=args.overwrite)
    counts = convert(args.tsv_dir, args.out)
    print(f"{args.out}: {sum(counts.values())} questions, " + ", ".join(f"{l} {n}" for l, n in counts.items()))
    for lang, n in counts.items():
        if n != QUESTIONS:
            print(f"note: {lang} has {n} questions, not the release's {QUESTIONS}")


if __name__ == "__main__":
    try:
        main()
    except (RecordError, OutputError) as e:
        raise SystemExit(f"prepare_mgsm.py: {e}")
