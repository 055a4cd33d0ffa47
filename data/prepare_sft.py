"""
Build the paper's warm-start SFT set (§5.4, Table 5): Aya prompts, disjoint from the RL training
data, each answered by a local teacher model in two randomly chosen target languages.

    python data/prepare_sft.py --from_dir exports --exclude data/full/train.jsonl data/full/val.jsonl \
        --teacher /models/Qwen2.5-7B-Instruct --device cuda --out data/full/sft.jsonl
    python data/prepare_sft.py --exclude data/full/train.jsonl data/full/val.jsonl \
        --teacher Qwen/Qwen2.5-7B-Instruct --device cuda --out data/full/sft.jsonl  # Hub, needs `datasets`

Writes OUT in the warm-start record format of data/records.py (decision 5: id, question, lang =
the answer's target language, answer), OUT's .review.jsonl beside it with every dropped answer
and its reason, and prints every dropped row, prompt and answer counted by reason.

Decisions:
1. Source: the Aya dataset (CohereForAI/aya_dataset, train split; fields `inputs`, `targets`,
   `language`, `language_code`). Question = `inputs`. Its language: `language` through
   prepare.normalise_lang, else `language_code` (ISO 639-3) through ISO3; the Arabic varieties
   (arb, ary, arz, ...) count as Arabic. Rows in other languages, and blank inputs, are dropped
   and counted. The question may be in any of the 15 router languages, English included: the
   warm start teaches the tag, whatever the question's language. Local exports: aya*.jsonl|json|
   parquet under --from_dir, read as prepare.py reads its exports.
2. Disjoint from the RL data (paper §5.4): a question of any --exclude training file
   (records.question_key: case and spacing ignored) is dropped and counted, as is a repeat of a
   question already kept.
3. Sampling (paper: 420 prompts, seed 42): the candidates are sorted by (language, question) and
   shuffled by one generator seeded with --seed, so the sample does not depend on file order.
   Each prompt in turn gets two distinct target languages drawn uniformly from the 15 by the same
   generator ("two randomly selected target languages"; the question's own language may be one of
   them). A prompt whose teacher prompt is longer than --max_prompt_tokens for either target is
   skipped and counted, and the next candidate is taken, so --n prompts come out while
   candidates last.
4. Teacher: any local Hugging Face chat model (the paper used gpt-oss-20b), batched greedy
   decoding with its own chat template through data/labels.generate_answers (the labelling
   machinery). The request is in the user turn (TEACHER_PROMPT, "Answer in {Language}."). A
   leading <think>...</think> block of a reasoning model is removed.
5. An answer is dropped, counted and sent to the review file when it is empty, when its
   re-tokenised length reaches --max_new_tokens (cut off: the warm start would teach stopping
   mid-sentence), or when reward.detect_language finds another language than the target (the
   warm start exists to teach the tag). Nothing is dropped silently: 2 x prompts sampled =
   answers written + answers dropped, and the run says so.
6. Ids are "{file stem}-{row}" ("aya-train-{row}" from the Hub), so the two answers of one prompt
   share an id and question.
7. Before anything is read, --out and the review file must be writable and new (or --overwrite);
   both are written to a temporary file and renamed into place (data/outputs.py). The teacher
   directory is checked (chat template, EOS, weights) before it loads. Bad input and outputs raise
   RecordError / OutputError from main(); the command prints one line.
"""
import argparse
import glob
import os
import random
import re
import sys
from collections import Counter

if __package__ in (None, ""):  # run as `python data/prepare_sft.py`: make the repo root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.labels import generate_answers  # noqa: E402
from data.prepare import normalise_lang, read_rows, write_jsonl  # noqa: E402
from data.outputs import OutputError, check_output  # noqa: E402
from data.records import RecordError, check_policy, load_sft, load_train, question_key, ranged  # noqa: E402
from reward import LANGUAGE_NAMES, LANGUAGES, detect_language  # noqa: E402
from router import TOPICS  # noqa: E402

TEACHER_PROMPT = "{question}\n\nAnswer in {language}."
ISO3 = {**dict.fromkeys("ara arb ary ars acq acm aeb ajp apc arz".split(), "ar"),
        **dict.fromkeys("zho chi cmn".split(), "zh"),
        "deu": "de", "ger": "de", "eng": "en", "spa": "es", "fra": "fr", "fre": "fr", "ind": "id",
        "ita": "it", "jpn": "ja", "kor": "ko", "nld": "nl", "dut": "nl", "pol": "pl", "por": "pt",
        "rus": "ru", "vie": "vi"}
THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)


def aya_prompts(rows, stem: str, excluded: set, seen: set, drops: Counter) -> list[dict]:
    """Candidate prompts {"id", "question", "qlang"} of Aya rows [(where, row)] (decisions 1, 2);
    `seen` holds the questions kept so far, over every file read."""
    out = []
    for n, (where, row) in enumerate(rows, 1):
        question = row.get("inputs")
        if not isinstance(question, str):
            raise RecordError(f"{where}: field 'inputs' must be a string, got {type(question).__name__}")
        raw, code = row.get("language"), row.get("language_code")
        if not isinstance(raw, str) and not isinstance(code, str):
            raise RecordError(f"{where}: field 'language' (or 'language_code') is missing")
        lang = (normalise_lang(raw) if isinstance(raw, str) else None) or \
            (ISO3.get(code.strip().lower()) if isinstance(code, str) else None)
        key = question_key(question)
        if lang is None:
            drops[f"aya: language {raw if isinstance(raw, str) else code!r} is not a router language"] += 1
        elif not key:
            drops["aya: inputs is empty"] += 1
        elif key in excluded:
            drops["aya: question is in an --exclude training file"] += 1
        elif key in seen:
            drops["aya: repeat of a question already kept"] += 1
        else:
            seen.add(key)
            out.append({"id": f"{stem}-{n}", "question": question.strip(), "qlang": lang})
    return out


def load_local(from_dir: str, excluded: set, drops: Counter) -> list[dict]:
    """Candidates of every aya* export in `from_dir`."""
    out, used, seen = [], [], set()
    for path in sorted(glob.glob(os.path.join(from_dir, "*"))):
        name = os.path.basename(path).lower()
        stem, ext = os.path.splitext(name)
        if name.startswith("aya") and ext in (".jsonl", ".json", ".parquet"):
            out += aya_prompts(read_rows(path), stem, excluded, seen, drops)
            used.append(os.path.basename(path))
    if not used:
        raise SystemExit(f"{from_dir}: no aya*.jsonl|json|parquet files")
    print(f"read {', '.join(used)}")
    return out


def load_hub(name: str, excluded: set, drops: Counter) -> list[dict]:
    """Candidates of the train split of `name` through the `datasets` library."""
    try:
        from datasets import load_dataset
    except ImportError:
        raise SystemExit("loading from the Hugging Face Hub needs the `datasets` library "
                         "(pip install datasets); offline, export the file and pass --from_dir") from None
    rows = ((f"{name}[train]:row {i}", r) for i, r in enumerate(load_dataset(name, split="train"), 1))
    return aya_prompts(rows, "aya-train", excluded, set(), drops)


def teacher_chat(tokenizer, question: str, lang: str) -> str:
    """The teacher's prompt as generate_answers renders it (one user turn)."""
    prompt = TEACHER_PROMPT.format(question=question, language=LANGUAGE_NAMES[lang])
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def sample(candidates: list[dict], n: int, seed: int, tokenizer, max_prompt_tokens: int,
           languages=LANGUAGES) -> tuple[list[dict], int]:
    """([{"id", "question", "qlang", "targets"}] of up to n prompts, prompts skipped as too long)."""
    rng = random.Random(seed)
    order = sorted(candidates, key=lambda c: (c["qlang"], question_key(c["question"]), c["id"]))
    rng.shuffle(order)
    chosen, too_long = [], 0
    for cand in order:
        if len(chosen) == n:
            break
        targets = rng.sample(list(languages), 2)
        chats = [teacher_chat(tokenizer, cand["question"], lang) for lang in targets]
        if max(map(len, tokenizer(chats, add_special_tokens=False)["input_ids"])) > max_prompt_tokens:
            too_long += 1
            continue
        chosen.append({**cand, "targets": targets})
    return chosen, too_long


def check_answer(answer: str, target: str, tokenizer, max_new_tokens: int) -> tuple[str, str | None]:
    """(cleaned answer, the reason to drop it or None) (decisions 4, 5)."""
    answer = THINK.sub("", answer).strip()
    if not answer:
        return answer, "answer is empty"
    if len(tokenizer(answer, add_special_tokens=False)["input_ids"]) >= max_new_tokens:
        return answer, "answer reached --max_new_tokens (cut off)"
    found = detect_language(answer)
    if found != target:
        return answer, "answer detected as another language than the target"
    return answer, None


def sort_answers(jobs: list[tuple[dict, str]], answers: list[str], tokenizer, max_new_tokens: int):
    """(records kept, review rows, drop counts) of the teacher's answers to (prompt, target) jobs."""
    written, review, dropped = [], [], Counter()
    for (c, lang), raw in zip(jobs, answers, strict=True):
        answer, reason = check_answer(raw, lang, tokenizer, max_new_tokens)
        row = {"id": c["id"], "question": c["question"], "lang": lang, "answer": answer}
        if reason:
            dropped[reason] += 1
            review.append({**row, "answer": raw, "detected": detect_language(answer), "reason": reason})
        else:
            written.append({**row, "qlang": c["qlang"]})
    return written, review, dropped


def report(source: Counter, n_candidates: int, chosen: list[dict], too_long: int, n: int,
           written: list[dict], dropped: Counter) -> None:
    """Every count of the run; the answer counts add up to 2 x prompts sampled (decision 5)."""
    print(f"source: {n_candidates} candidate prompts; rows dropped {sum(source.values())}")
    for reason, k in source.most_common():
        print(f"  {k:>6}  {reason}")
    short = f" (fewer than --n {n}: the candidates ran out)" if len(chosen) < n else ""
    print(f"prompts: {len(chosen)} sampled{short}; {too_long} skipped, longer than --max_prompt_tokens")
    print(f"answers: {2 * len(chosen)} generated = {len(written)} written + {sum(dropped.values())} dropped")
    for reason, k in dropped.most_common():
        print(f"  {k:>6}  {reason}")
    for what, key in (("target", "lang"), ("question", "qlang")):
        counts = Counter(r[key] for r in written)
        if counts:
            print(f"{what} languages: " + ", ".join(f"{lang} {counts[lang]}" for lang in LANGUAGES
                                                     if counts[lang]))


def main(argv=None) -> dict:
    INT1 = ranged(int, lo=1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from_dir", help="read local exports (aya*.jsonl|json|parquet) instead of the Hub")
    p.add_argument("--dataset", default="CohereForAI/aya_dataset", help="Hub name of the prompt source")
    p.add_argument("--exclude", nargs="+", required=True, help="training files (train.jsonl, "
                   "val.jsonl) whose questions must not be in the warm start (paper §5.4)")
    p.add_argument("--teacher", required=True, help="local path or name of a Hugging Face chat model")
    p.add_argument("--out", required=True, help="the SFT file to write (JSON Lines)")
    p.add_argument("--review", help="dropped answers with reasons (default: OUT's stem + .review.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace --out and the review file if they exist")
    p.add_argument("--n", type=INT1, default=420, help="prompts to sample (paper: 420; >= 1)")
    p.add_argument("--seed", type=ranged(int, lo=0), default=42, help="seed of the sample and the target languages (>= 0)")
    p.add_argument("--max_prompt_tokens", type=INT1, default=512,
                   help="longest teacher prompt; longer prompts are skipped and counted (>= 1)")
    p.add_argument("--max_new_tokens", type=INT1, default=1024,
                   help="longest answer; an answer that reaches it is cut off and dropped (>= 1)")
    p.add_argument("--batch_size", type=INT1, default=16, help="prompts per generation batch (>= 1)")
    p.add_argument("--device", default="cpu", help="device of the teacher, e.g. cuda")
    args = p.parse_args(argv)
    review_path = args.review or os.path.splitext(args.out)[0] + ".review.jsonl"
    if os.path.abspath(review_path) == os.path.abspath(args.out):
        p.error(f"--review and --out name the same file {args.out}")
    for path in (args.out, review_path):  # decision 7: before anything is read
        check_output(path, overwrite=args.overwrite)

    excluded = {question_key(it["question"]) for path in args.exclude
                for it in load_train(path, LANGUAGES, TOPICS)}  # validated before any model loads
    source: Counter = Counter()
    candidates = (load_local(args.from_dir, excluded, source) if args.from_dir
                  else load_hub(args.dataset, excluded, source))
    check_policy(args.teacher)  # a chat template and an EOS token, before it loads
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    chosen, too_long = sample(candidates, args.n, args.seed, tokenizer, args.max_prompt_tokens)
    if not chosen:
        report(source, len(candidates), chosen, too_long, args.n, [], Counter())
        raise SystemExit("no prompt to answer: every source row was dropped or too long (reasons above)")
    model = AutoModelForCausalLM.from_pretrained(args.teacher, dtype="auto").to(args.device).eval()
    jobs = [(c, lang) for c in chosen for lang in c["targets"]]
    answers = generate_answers(model, tokenizer, [TEACHER_PROMPT.format(
        question=c["question"], language=LANGUAGE_NAMES[lang]) for c, lang in jobs],
        args.batch_size, args.max_new_tokens, "teacher")

    written, review, dropped = sort_answers(jobs, answers, tokenizer, args.max_new_tokens)
    if review:
        write_jsonl(review_path, review)
    report(source, len(candidates), chosen, too_long, args.n, written, dropped)
    if review:
        print(f"review: {len(review)} dropped answers -> {review_path}")
    if not written:
        raise SystemExit(f"no answer to write: every answer was dropped (reasons above, rows in {review_path})")
    write_jsonl(args.out, [{k: r[k] for k in ("id", "question", "lang", "answer")} for r in written])
    load_sft(args.out, LANGUAGES)  # what the trainer will read must pass the trainer's own check
    print(f"wrote {len(written)} records -> {args.out}")
    return {"records": written, "review": review, "source": source, "dropped": dropped,
            "prompts": chosen, "too_long": too_long, "candidates": len(candidates)}


if __name__ == "__main__":
    try:
        main()
    except (RecordError, OutputError) as e:  # one line, no traceback
        raise SystemExit(f"prepare_sft.py: {e}") from None
