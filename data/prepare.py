"""
Build the paper's training set (HelpSteer3 + CARE, paper §4) in our record format.

    python data/prepare.py --from_dir exports/ --out_dir data/full --label_model Qwen/Qwen2.5-7B-Instruct
    python data/prepare.py --out_dir data/full --label_model PATH   # from the Hub, needs `datasets`

Writes OUT/train.jsonl and OUT/val.jsonl (records of data/records.py), OUT/review.jsonl when some
rows need a person, and prints a language x topic table and every dropped row counted by reason.
The warm-start SFT set (paper §5.4, Table 5: Aya prompts answered by a teacher model in two
target languages, disjoint from these files) is built next, by data/prepare_sft.py:

    python data/prepare_sft.py --from_dir exports --exclude data/full/train.jsonl data/full/val.jsonl \
        --teacher PATH --out data/full/sft.jsonl

Decisions:
1. HelpSteer3 (preference config): question = the last user turn of `context`; reference = the
   preferred response (response1 if overall_preference < 0, response2 if > 0); ties are dropped.
   `language` is normalised to our codes by data/eval_sets.py (names or codes, any case); English
   (a routing target only) and every other language, programming languages of the code domain
   included, are dropped.
2. CARE: question as published; reference = its `answer` when present, else the best-rated
   `response` (`human_rating` or `rating`) among the rows of the same question; `language` when
   present, else the detected language of the question; `region` (CARE-pro style) or
   `associated_culture` ("Native (Japanese)" in CARE's files: the culture in parentheses) as the
   region label, normalised by data/labels.py ("Japanese" -> Japan). A blank question is dropped
   and counted, like HelpSteer3's rows without user text.
3. Labels already present (`topic`, `region` on a row) are kept; missing ones come from
   `--label_model` (data/labels.py). A row that still has no topic is not trained on: it is
   counted and written to the review file with the reason.
4. The same question twice in one language is kept once (counted): HelpSteer3 has several
   response pairs per prompt, CARE several responses per question.
5. Local exports are read by file name: helpsteer3*.{jsonl,json,parquet} and
   care*.{jsonl,json,parquet} under --from_dir. A .json file is a JSON list of objects or, when
   it does not start with "[", JSON Lines (what `datasets.Dataset.to_json` writes by default):
   told apart by content, not by name. A byte order mark is accepted. Parquet needs pyarrow
   (optional, checked).
6. Split 90/10 stratified by language with a fixed seed (paper: seed 42): items of each language
   are sorted by id and shuffled with one seeded generator, so the split does not depend on the
   order of the input files. Every language with 2+ items has at least one validation item.
7. Bad input (missing field, wrong type, broken JSON, a byte that is not UTF-8) stops the run
   with file:line and field; only rows that are valid but unusable for training are dropped, and
   each is counted. When no row is left, the review file and the drop table are still written
   before the run stops.
8. Outputs are checked before anything is read: --out_dir must be (or can become) a writable
   directory, and train.jsonl, val.jsonl and the review file are refused if they exist, unless
   --overwrite. Each is written to a temporary file and renamed into place (data/outputs.py).
   Bad input and outputs raise RecordError / OutputError from main(); the command prints one line.
"""
import argparse
import glob
import json
import os
import random
import re
import sys
from collections import Counter

if __package__ in (None, ""):  # run as `python data/prepare.py`: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data import eval_sets  # noqa: E402
from data.labels import label_items, normalise_region  # noqa: E402
from data.outputs import OutputError, atomic_write, check_output, check_writable  # noqa: E402
from data.records import (RecordError, check_policy, check_unicode, load_train, ranged,  # noqa: E402
                          read_jsonl, read_text)
from reward import LANGUAGES, detect_language  # noqa: E402
from router import REGIONS, TOPICS  # noqa: E402

TRAIN_EXCLUDED = ("en",)  # English is a routing target only (decision 1)


def normalise_lang(value: str, languages=LANGUAGES) -> str | None:
    """Our code for a language name or code ('Chinese', 'zh-CN', 'pt_BR', 'Indonesian'), else None."""
    try:
        code = eval_sets.normalise_lang(value, "language")  # the one normaliser, aliases included
    except RecordError:
        return None
    return code if code in languages else None


def _need(where: str, row: dict, name: str, kind):
    if name not in row or row[name] is None:
        raise RecordError(f"{where}: field '{name}' is missing")
    if not isinstance(row[name], kind):
        raise RecordError(f"{where}: field '{name}' must be {kind.__name__}, got {type(row[name]).__name__}")
    return row[name]


def _labels(where: str, row: dict) -> dict:
    """Labels already on a row (decision 3): topic must be one of ours, region a list or string."""
    out = {}
    if row.get("topic") not in (None, ""):
        if row["topic"] not in TOPICS:
            raise RecordError(f"{where}: field 'topic' is {row['topic']!r}, not one of {TOPICS}")
        out["topic"] = row["topic"]
    region = row.get("region")
    if region not in (None, ""):
        region = [region] if isinstance(region, str) else region
        if not isinstance(region, list) or not all(isinstance(r, str) for r in region):
            raise RecordError(f"{where}: field 'region' must be a string or a list of strings")
        out["region"] = [normalise_region(r, REGIONS) for r in region if r.strip()]
    return out


def _keep_lang(raw: str, source: str, drops: Counter) -> str | None:
    lang = normalise_lang(raw)
    if lang is None:
        drops[f"{source}: language {raw!r} is not a router language"] += 1
    elif lang in TRAIN_EXCLUDED:
        drops[f"{source}: language {lang!r} is a routing target only"] += 1
        lang = None
    return lang


def helpsteer3_items(rows, stem: str, drops: Counter) -> list[dict]:
    """Training items of HelpSteer3 preference rows [(where, row)] (decision 1)."""
    items = []
    for n, (where, row) in enumerate(rows, 1):
        context = _need(where, row, "context", list)
        pref = _need(where, row, "overall_preference", int)
        lang = _keep_lang(_need(where, row, "language", str), "helpsteer3", drops)
        response1, response2 = _need(where, row, "response1", str), _need(where, row, "response2", str)
        if not all(isinstance(t, dict) and isinstance(t.get("role"), str)
                   and isinstance(t.get("content"), str) for t in context):
            raise RecordError(f"{where}: field 'context' must be a list of {{role, content}} strings")
        reference = response1 if pref < 0 else response2
        if lang is None:
            continue
        if pref == 0:
            drops["helpsteer3: tie (overall_preference 0)"] += 1
            continue
        users = [t for t in context if t["role"] == "user"]
        question = users[-1]["content"] if users else ""
        if not question.strip():
            drops["helpsteer3: no user turn with text in context"] += 1
            continue
        if not reference.strip():
            drops["helpsteer3: preferred response is empty"] += 1
            continue
        items.append({"id": f"hs3-{stem}-{n}", "question": question.strip(),
                      "reference": reference.strip(), "lang": lang, **_labels(where, row)})
    return items


def _care_culture(value):
    """CARE writes cultures as "Native (Japanese)": the part in parentheses names the culture."""
    if isinstance(value, str):
        match = re.fullmatch(r"[^()]*\((.+)\)\s*", value.strip())
        return match.group(1) if match else value
    return value


def care_items(rows, stem: str, drops: Counter) -> list[dict]:
    """Training items of CARE rows [(where, row)], one per question (decision 2)."""
    by_question: dict[str, dict] = {}
    for n, (where, row) in enumerate(rows, 1):
        question = _need(where, row, "question", str).strip()
        answer = row.get("answer") or ""
        response = row.get("response") or ""
        if not isinstance(answer, str) or not isinstance(response, str):
            raise RecordError(f"{where}: fields 'answer' / 'response' must be strings")
        if not question:
            drops["care: question is empty"] += 1
            continue
        rating = row.get("human_rating", row.get("rating"))
        try:
            rating = float(rating) if rating not in (None, "") else float("-inf")
        except (TypeError, ValueError):
            raise RecordError(f"{where}: field 'human_rating' is {rating!r}, not a number") from None
        if not answer.strip() and not response.strip():
            raise RecordError(f"{where}: neither 'answer' nor 'response' has text")
        seen = by_question.get(question)
        if seen is not None:
            drops["care: more rows of a question already seen (one item per question)"] += 1
            if not seen["has_answer"] and (answer.strip() or rating > seen["rating"]):
                seen.update(reference=(answer or response).strip(), rating=rating,
                            has_answer=bool(answer.strip()))
            continue
        region = row.get("region") or _care_culture(row.get("associated_culture"))
        by_question[question] = {"where": where, "n": n, "row": {**row, "region": region},
                                 "reference": (answer or response).strip(), "rating": rating,
                                 "has_answer": bool(answer.strip())}
    items = []
    for question, seen in by_question.items():
        raw = seen["row"].get("language")
        if raw:
            lang = _keep_lang(str(raw), "care", drops)
        else:
            detected = detect_language(question)
            lang = _keep_lang(detected, "care", drops) if detected else None
            if detected is None:
                drops["care: no language field and none detected"] += 1
        if lang is not None:
            items.append({"id": f"care-{stem}-{seen['n']}", "question": question,
                          "reference": seen["reference"], "lang": lang,
                          **_labels(seen["where"], seen["row"])})
    return items


def read_rows(path: str) -> list[tuple[str, dict]]:
    """[(file:line, row)] of a .jsonl, .json or .parquet file (decision 5)."""
    if path.endswith(".jsonl"):
        return [(f"{path}:{n}", row) for n, row in read_jsonl(path)]
    if path.endswith(".json"):
        text = read_text(path)
        if not text.lstrip().startswith("["):  # `Dataset.to_json` writes JSON Lines by default
            return [(f"{path}:{n}", row) for n, row in read_jsonl(path)]
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecordError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not all(isinstance(r, dict) for r in data):
            raise RecordError(f"{path}: expected a JSON list of objects")
        for n, row in enumerate(data, 1):
            check_unicode(f"{path}:item {n}", row)
        return [(f"{path}:item {n}", row) for n, row in enumerate(data, 1)]
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit(f"{path}: reading Parquet needs pyarrow (pip install pyarrow); "
                         "or export the split as JSON Lines") from None
    return [(f"{path}:row {n}", row) for n, row in enumerate(pq.read_table(path).to_pylist(), 1)]


def load_local(from_dir: str, drops: Counter) -> list[dict]:
    """Items of every helpsteer3* / care* export in `from_dir` (decision 5)."""
    items, used = [], []
    for path in sorted(glob.glob(os.path.join(from_dir, "*"))):
        name = os.path.basename(path).lower()
        stem, ext = os.path.splitext(name)
        if ext not in (".jsonl", ".json", ".parquet"):
            continue
        if name.startswith("helpsteer3"):
            items += helpsteer3_items(read_rows(path), stem, drops)
        elif name.startswith("care"):
            items += care_items(read_rows(path), stem, drops)
        else:
            continue
        used.append(os.path.basename(path))
    if not used:
        raise SystemExit(f"{from_dir}: no helpsteer3*.jsonl|json|parquet or care*.jsonl|json|parquet files")
    print(f"read {', '.join(used)}")
    return items


def load_hub(drops: Counter) -> list[dict]:
    """HelpSteer3 (preference, train) and CARE (train) through the `datasets` library."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise SystemExit("loading from the Hugging Face Hub needs the `datasets` library "
                         "(pip install datasets); offline, export the files and pass --from_dir") from None
    hs3 = load_dataset("nvidia/HelpSteer3", "preference", split="train")
    care = load_dataset("geyang627/CARE", split="train")
    hs3_rows = ((f"nvidia/HelpSteer3[train]:row {i}", r) for i, r in enumerate(hs3, 1))
    care_rows = ((f"geyang627/CARE[train]:row {i}", r) for i, r in enumerate(care, 1))
    return helpsteer3_items(hs3_rows, "train", drops) + care_items(care_rows, "train", drops)


def dedupe(items: list[dict], drops: Counter) -> list[dict]:
    """First item of each (lang, question) (decision 4)."""
    seen, out = set(), []
    for item in items:
        key = (item["lang"], " ".join(item["question"].split()))
        if key in seen:
            drops["duplicate question in the same language"] += 1
            continue
        seen.add(key)
        out.append(item)
    return out


def split_by_language(items: list[dict], val_frac: float = 0.1, seed: int = 42):
    """(train, val), `val_frac` of every language in val (decision 6)."""
    rng = random.Random(seed)
    train, val = [], []
    for lang in sorted({it["lang"] for it in items}):
        group = sorted((it for it in items if it["lang"] == lang), key=lambda it: it["id"])
        rng.shuffle(group)
        n_val = int(len(group) * val_frac + 0.5)
        if len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        else:
            n_val = 0
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def table(items: list[dict], languages=LANGUAGES, topics=TOPICS) -> str:
    """Counts per language x topic as a fixed-width text table, with totals."""
    counts = Counter((it["lang"], it["topic"]) for it in items)
    rows = [lang for lang in languages if any(it["lang"] == lang for it in items)] + ["all"]
    widths = [max(len(t), 5) for t in topics]
    lines = ["lang " + " ".join(f"{t:>{w}}" for t, w in zip(topics, widths)) + "  total"]
    for lang in rows:
        n = [sum(c for (code, t), c in counts.items() if t == topic and lang in (code, "all"))
             for topic in topics]
        lines.append(f"{lang:<4} " + " ".join(f"{k:>{w}}" for k, w in zip(n, widths)) + f"  {sum(n):>5}")
    return "\n".join(lines)


def apply_labels(items: list[dict], label_model: str | None, batch_size: int, device: str,
                 max_new_tokens: int, drops: Counter, notes: Counter) -> tuple[list[dict], list[dict]]:
    """(labelled items, review rows): labels missing topics/regions when a model is given; every
    item still without a topic or with an unparseable answer goes to review (decision 3)."""
    regional = "Regional Knowledge"
    review = []
    if label_model and any("topic" not in it or (it["topic"] == regional and "region" not in it)
                           for it in items):
        check_policy(label_model)  # a chat template and an EOS, before the model loads
        review = label_items(items, label_model, TOPICS, REGIONS, batch_size, device, max_new_tokens)
        for row in review:
            drops[f"label model: unparseable {row['field']} answer"] += 1
    flagged = {row["id"] for row in review}
    for it in items:
        if it["id"] not in flagged and "topic" not in it:
            review.append({"id": it["id"], "question": it["question"], "field": "topic",
                           "answer": None, "reason": "no topic label; run with --label_model"})
            drops["no topic label (run with --label_model)"] += 1
    done = {row["id"] for row in review}
    notes["Regional Knowledge item without a region label (region [])"] += sum(
        it["id"] not in done and it.get("topic") == regional and "region" not in it for it in items)
    keep = [{"region": [], **it} for it in items if it["id"] not in done]  # labels.py decision 2
    return [{k: it[k] for k in ("id", "question", "reference", "lang", "topic", "region")}
            for it in keep], review


def write_jsonl(path: str, rows: list[dict]) -> None:
    """JSON Lines, atomically: a reader never sees half a file (data/outputs.py)."""
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def report(drops: Counter, notes: Counter, review: list[dict], review_path: str) -> None:
    """Print the kept-row notes, every dropped row counted by reason, and where the review went."""
    for note, n in notes.items():
        if n:
            print(f"kept {n:>6}  {note}")
    print(f"dropped {sum(drops.values())}:" if drops else "dropped 0")
    for reason, n in drops.most_common():
        print(f"  {n:>6}  {reason}")
    if review:
        print(f"review: {len(review)} rows -> {review_path}")


def main(argv=None) -> dict:
    INT1 = ranged(int, lo=1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from_dir", help="read local exports (helpsteer3*.jsonl|json|parquet, "
                   "care*.jsonl|json|parquet) instead of the Hugging Face Hub")
    p.add_argument("--out_dir", required=True, help="where train.jsonl / val.jsonl are written")
    p.add_argument("--overwrite", action="store_true", help="replace train.jsonl, val.jsonl and the "
                   "review file if they exist (decision 8)")
    p.add_argument("--label_model", help="local path or name of a Hugging Face chat model that "
                   "labels missing topics and regions (paper Figures 5 and 6)")
    p.add_argument("--review", help="file for rows a person must look at (default OUT/review.jsonl)")
    p.add_argument("--seed", type=ranged(int, lo=0), default=42, help="seed of the train/val split (>= 0)")
    p.add_argument("--val_frac", type=ranged(float, lo=0, hi=1), default=0.1,
                   help="share of each language in val (in [0, 1]; decision 6 keeps 1+ in each split)")
    p.add_argument("--batch_size", type=INT1, default=16, help="prompts per labelling batch (>= 1)")
    p.add_argument("--device", default="cpu", help="device of the label model, e.g. cuda")
    p.add_argument("--max_new_tokens", type=INT1, default=32,
                   help="longest label answer generated (a label is a few tokens; >= 1)")
    args = p.parse_args(argv)
    review_path = args.review or os.path.join(args.out_dir, "review.jsonl")
    outputs = [os.path.join(args.out_dir, name) for name in ("train.jsonl", "val.jsonl")] + [review_path]
    if len({os.path.abspath(path) for path in outputs}) < 3:
        p.error(f"--review {review_path} is one of the split files")
    check_writable(args.out_dir, directory=True)               # decision 8: in the first second
    for path in outputs:
        check_output(path, overwrite=args.overwrite)

    drops: Counter = Counter()  # rows not trained on, by reason
    notes: Counter = Counter()  # rows kept that a reader may want to know about
    items = load_local(args.from_dir, drops) if args.from_dir else load_hub(drops)
    items = dedupe(items, drops)
    items, review = apply_labels(items, args.label_model, args.batch_size, args.device,
                                 args.max_new_tokens, drops, notes)
    if review:  # written first: with nothing left to train on, it says why
        write_jsonl(review_path, review)
    if not items:
        report(drops, notes, review, review_path)
        why = ("every row was dropped (reasons above)" if not review else
               f"the label model's answers were unparseable for every row left (see {review_path})"
               if args.label_model else "no row left has a topic label: pass --label_model, "
               "or add topic labels")
        raise SystemExit(f"no labelled items to write: {why}")

    train, val = split_by_language(items, args.val_frac, args.seed)
    for path, rows in zip(outputs, (train, val)):
        write_jsonl(path, rows)
        if rows:  # what the trainer will read must pass the trainer's own check
            load_train(path, LANGUAGES, TOPICS)
    notes["reference detected as another language than 'lang' (e.g. translations)"] = sum(
        detect_language(it["reference"]) != it["lang"] for it in items)

    print(table(items))
    print(f"train {len(train)}  val {len(val)}  (per language: " + ", ".join(
        f"{lang} {sum(i['lang'] == lang for i in train)}/{sum(i['lang'] == lang for i in val)}"
        for lang in LANGUAGES if any(i["lang"] == lang for i in items)) + ")")
    report(drops, notes, review, review_path)
    return {"train": train, "val": val, "review": review, "drops": drops, "notes": notes}


if __name__ == "__main__":
    try:
        main()
    except (RecordError, OutputError) as e:  # one line, no traceback
        raise SystemExit(f"prepare.py: {e}") from None
