"""
Multilingual evaluation (paper §4, Appendix C.2): mGSM, multiple choice (Global-MMLU-Lite,
INCLUDE-lite) and open regional QA (CARE / CARE-pro) of any Hugging Face causal LM, printed as the
paper's per-language table.

    python eval.py --model out/ckpt --task mgsm --data data/sample/eval/mgsm.jsonl --out results.json
    python eval.py --model out/ckpt --suite data/sample/eval/suite.json --out results.json
    python eval.py --model out/ckpt --suite ... --judge openai/gpt-oss-20b --judge_max_new_tokens 1024
    torchrun --standalone --nproc_per_node=8 eval.py --model out/ckpt --suite ... --out results.json

Under torchrun the items are split across ranks and gathered on rank 0, which writes results.json
(per-item predictions, per-language scores) and prints a markdown row per task. The data files
(the public datasets' own fields) and the suite are read and checked by data/eval_sets.py.

Decisions:
1. Greedy decoding, batched, left-padded, prompts longest first. mGSM and open QA put the bare
   question (0-shot) through the model's chat template.
2. Multiple choice as lm-eval-harness: the raw prompt "{q}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:"
   (default special tokens, no chat template) and the letter whose continuation " A".." D",
   tok(prompt + " A")[len(tok(prompt)):], has the highest summed log-likelihood. `--mc_mode
   generate` asks the same prompt through the chat template and reads it with `extract_choice`.
3. Answers are read by data/eval_sets.py (its Decisions 4 and 6): mGSM's number after the last
   answer word, in the canonical form of the gold ("18.0" == "18"); a generated choice's letter.
4. Open QA with `--judge`: a local chat model grades greedily with the CARE-pro rubric of the
   paper's Fig. 7 (examples shortened; 1 for CORRECT only, Appendix B.3) or the CARE 1-10 rating
   (rating / 10, Appendix C.2), in up to `--judge_max_new_tokens` (512: room for a reasoning
   judge's trace). The verdict is read from the final answer: `<think>..</think>` blocks removed
   (an unclosed one runs to the end; a trace whose opening tag sat in the prompt ends at the last
   `</think>`), of gpt-oss's channels only the last `final` one; then the last grade stated counts
   (a grade name, or a letter A-D standing alone; for CARE, the number after the last "Rating:").
   A reply without a verdict (e.g. a trace cut off by the token limit) scores 0 and is counted as
   `judge_unparsed`, in the table row's label, the printed counters and results.json (each item
   keeps `judge_reply`). Scored 0, not left out: only a CORRECT verdict counts as correct in
   CARE-pro, and leaving items out would make a model's score depend on which of its answers the
   judge failed to read, with a different denominator per model.
5. Open QA without a judge: a *proxy*, reward.compute_rewards' r_qual * r_lang against the gold
   answer (calibrated with `--calib`, raw similarity without), labelled "proxy" wherever printed.
   Language ID is reward.py's, expecting the router's languages plus the item's own, so an item in
   a language outside the 15 (e.g. Swahili) gets gate 1 for an answer in it. Such a language has
   no calibration pair: raw similarity, counted in `missing_pairs` when a table is given.
6. Languages are names or codes, normalised by data/eval_sets.py (unseen ones are welcome). Seen =
   the 14 training languages (the router's 15 minus English) unless `--seen` says otherwise.
7. Scores are percentages. A task's Avg is the macro mean over its languages, as in the paper's
   Table 1 (Qwen2.5 vanilla mGSM: (6 x 35.73 + 5 x 11.84) / 11 = 24.87); the Overall row averages
   the tasks' Seen, Unseen and Avg (the five task averages give the paper's Overall 28.64).
"""
import argparse
import json
import os
import re
from collections import Counter

import torch
import torch.distributed as dist
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from calibrate import CalibrationTable
from data.eval_sets import (LETTERS, MC_MODES, METRICS, TASKS, extract_choice, extract_number, load_items,
                            load_suite, normalise_lang)
from data.records import RecordError, check_model
from grpo import init_distributed
from reward import LANGUAGES, Encoder, compute_rewards

# --- prompts and model calls ----------------------------------------------------------------------

def mc_prompt(item: dict) -> str:
    options = "\n".join(f"{L}. {c}" for L, c in zip(LETTERS, item["choices"]))
    return f"{item['question'].strip()}\n{options}\nAnswer:"


def load_model(name_or_path: str, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(name_or_path)
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype).to(device).eval(), tok


def chat(tok, text: str) -> str:
    if not tok.chat_template:
        raise ValueError(f"{tok.name_or_path}: no chat template; mgsm, open and --judge need a chat "
                         "model (multiple choice with --mc_mode loglik does not)")
    return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                   add_generation_prompt=True)


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int,
             desc: str = "generate", show: bool = True, keep_special: bool = False) -> list[str]:
    """Greedy completions of chat-templated prompts, batched longest first, left-padded;
    `keep_special` keeps special tokens but the padding (a judge's channel markers, Decision 4)."""
    from transformers import GenerationConfig
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                              eos_token_id=model.generation_config.eos_token_id or tok.eos_token_id)
    order, out = sorted(range(len(prompts)), key=lambda i: -len(prompts[i])), [""] * len(prompts)
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=not show):
        rows = order[s:s + batch_size]
        enc = tok([prompts[i] for i in rows], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(model.device)
        ids = model.generate(**enc, generation_config=config)                # (B, T + new)
        texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=not keep_special)
        for i, t in zip(rows, texts):
            out[i] = (t.replace(tok.pad_token, "") if keep_special else t).strip()
    return out


@torch.no_grad()
def choice_logliks(model, tok, prompts: list[str], batch_size: int, desc: str = "loglik",
                   show: bool = True) -> torch.Tensor:
    """(N, 4) float64: summed log-likelihood of " A".." D" after each raw prompt (Decision 2)."""
    seqs = []                                                 # (token ids, continuation length)
    for p in prompts:
        ctx = tok(p)["input_ids"]
        for L in LETTERS:
            whole = tok(p + " " + L)["input_ids"]
            assert whole[:len(ctx)] == ctx and len(whole) > len(ctx), f"' {L}' does not extend {p!r}"
            seqs.append((whole, len(whole) - len(ctx)))
    scores = torch.empty(len(seqs), dtype=torch.float64)
    for s in tqdm(range(0, len(seqs), batch_size * 4), desc=desc, disable=not show):
        batch = seqs[s:s + batch_size * 4]
        rows = [torch.tensor(row) for row, _ in batch]
        ids = pad_sequence(rows, batch_first=True, padding_value=tok.pad_token_id, padding_side="left")
        mask = pad_sequence([torch.ones_like(r) for r in rows], batch_first=True, padding_side="left")
        ids, mask = ids.to(model.device), mask.to(model.device)              # (B, T), left-padded
        pos = (mask.cumsum(1) - 1).clamp(min=0)                              # (B, T)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()  # (B, T, V)
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]   # (B, T-1)
        for b, (_, n) in enumerate(batch):
            scores[s + b] = logp[b, -n:].double().sum().cpu()
    return scores.view(-1, 4)                                                # (N, 4)


# --- open QA: judge and proxy ---------------------------------------------------------------------

CARE_PRO_RUBRIC = """Your job is to look at a question, a gold target, and a predicted answer, and then
assign a grade of either: ["CORRECT", "CORRECT_BUT_WRONG_LANGUAGE", "INCORRECT", "NOT_ATTEMPTED"].
- CORRECT: it fully contains the important information in the gold target, contradicts none of it,
  and is in the same language as the question. Only meaning matters; hedging is fine when the gold
  target is fully included.
- CORRECT_BUT_WRONG_LANGUAGE: the factual content is correct, but the answer is not in the language
  of the question (code-switching for proper nouns is allowed).
- INCORRECT: a factual statement contradicts the gold target, in any language, even when hedged.
- NOT_ATTEMPTED: the important information is missing and nothing contradicts the gold target.
Example: Question: 谁发明了电话？ Gold target: 亚历山大·格拉汉姆·贝尔
Predicted answer: Invented by Alexander Bell. -> CORRECT_BUT_WRONG_LANGUAGE
```
Question: {question}
Gold target: {target}
Predicted answer: {predicted}
```
Grade the predicted answer of this new question as one of:
A. CORRECT
B. CORRECT_BUT_WRONG_LANGUAGE
C. INCORRECT
D. NOT_ATTEMPTED
Just return the letters "A", "B", "C", or "D", with no text around it."""
CARE_RATING = """Please act as an impartial judge. Rate the response to the question from 1 to 10: how
correct, complete and culturally appropriate it is against the reference answer, and whether it is in the
language of the question.
Question: {question}
Reference answer: {target}
Response: {predicted}
Reply only with "Rating: N", where N is an integer from 1 to 10."""
VERDICTS = ("CORRECT", "CORRECT_BUT_WRONG_LANGUAGE", "INCORRECT", "NOT_ATTEMPTED")
THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.DOTALL | re.IGNORECASE)
THINK_END = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
FINAL_CHANNEL = re.compile(r"<\|channel\|>\s*final\b.*?<\|message\|>", re.DOTALL)   # gpt-oss harmony
SPECIAL = re.compile(r"<\|[^<>|]{1,40}\|>")                     # leftovers: <|return|>, <|im_end|>, ...
# a grade name (any case, spaces for underscores), or a capital letter A-D standing alone ("A" not
# as the article of a following lower-case word); the last one stated counts
GRADE = re.compile(r"(?<![A-Za-z0-9])(?:(?i:(CORRECT[\s_]+BUT[\s_]+WRONG[\s_]+LANGUAGE|NOT[\s_]+ATTEMPTED"
                   r"|INCORRECT|CORRECT))|([B-D]|A(?!\s+[a-z])))(?![A-Za-z0-9'])")


def final_answer(reply: str, special_tokens=()) -> str:
    """A judge's final answer (Decision 4): reasoning removed, then the special tokens."""
    if "<|channel|>" in reply:                          # harmony: only the final channel answers
        parts = FINAL_CHANNEL.split(reply)
        reply = parts[-1] if len(parts) > 1 else ""
    elif m := re.match(r"\s*analysis.*assistantfinal", reply, re.DOTALL):
        reply = reply[m.end():]                         # harmony decoded without its special tokens
    reply = THINK_END.split(THINK.sub("", reply))[-1]   # "..</think>": the trace was opened in the prompt
    for t in special_tokens:
        reply = reply.replace(t, "")
    return SPECIAL.sub("", reply).strip()


def parse_verdict(reply: str) -> str | None:
    """The last CARE-pro grade stated in a judge's final answer (a name or a letter A-D); else None."""
    grades = list(GRADE.finditer(reply))
    if not grades:
        return None
    name, letter = grades[-1].groups()
    return re.sub(r"[\s_]+", "_", name.upper()) if name else VERDICTS[LETTERS.index(letter)]


def parse_rating(reply: str) -> int | None:
    """A CARE 1-10 rating: the first integer 1..10 after the last "Rating:" (or anywhere); else None."""
    m = re.search(r"(?<!\d)(10|[1-9])(?!\d)", re.split(r"(?i)rating\s*:", reply)[-1])
    return int(m.group(1)) if m else None


JUDGES = {  # --open_metric: (prompt template, reply parser, grade -> score in [0, 1], what it means)
    "care_pro": (CARE_PRO_RUBRIC, parse_verdict, lambda grade: float(grade == "CORRECT"), "judge CORRECT %"),
    "care": (CARE_RATING, parse_rating, lambda grade: (grade or 0) / 10, "judge rating x 10")}
assert tuple(JUDGES) == METRICS, "one judge per metric of data/eval_sets.py"


def judge_items(items: list[dict], judge, judge_tok, metric: str, max_new_tokens: int, batch_size: int,
                show: bool) -> Counter:
    """Decision 4: grade each item's `output` against its gold answer; a reply without a verdict
    scores 0 and is counted."""
    template, parse, score, _ = JUDGES[metric]
    prompts = [chat(judge_tok, template.format(question=it["question"], target=it["gold"],
                                               predicted=it["output"])) for it in items]
    replies = generate(judge, judge_tok, prompts, max_new_tokens, batch_size, "judge", show,
                       keep_special=True)
    for it, reply in zip(items, replies):
        grade = parse(final_answer(reply, judge_tok.all_special_tokens))
        it.update(judge_reply=reply, grade=grade, score=score(grade))
    return Counter(judge_unparsed=sum(it["grade"] is None for it in items))


def proxy_items(items: list[dict], encoder: Encoder, table, mode: str) -> Counter:
    """Decision 5: score = r_qual * r_lang of each item's `output` against its gold answer."""
    groups, counts = {}, Counter()
    for it in items:                   # the router's languages together, each other one apart
        groups.setdefault(None if it["lang"] in LANGUAGES else it["lang"], []).append(it)
    for other, group in groups.items():
        langs = [it["lang"] for it in group]
        r = compute_rewards([it["output"] for it in group], [it["gold"] for it in group], langs, langs,
                            encoder, table, mode if table is not None else "none",
                            languages=LANGUAGES if other is None else LANGUAGES + [other])
        counts.update(missing_pairs=r["missing_pairs"], no_language=r["no_language"])
        for it, s, g, q, found in zip(group, r["sim"].tolist(), r["r_lang"].tolist(), r["reward"].tolist(),
                                      r["detected"]):
            it.update(sim=s, r_lang=g, score=q, detected=found)
    return counts


# --- tasks, scores and the table ------------------------------------------------------------------

def run_task(spec: dict, items: list[dict], model, tok, args, extras: dict, show: bool) -> Counter:
    """Fill each item (this rank's share) with its prediction and a score in [0, 1]."""
    task, counts = spec["task"], Counter()
    if task == "mc" and spec["mc_mode"] == "loglik":
        ll = choice_logliks(model, tok, [mc_prompt(it) for it in items], args.batch_size, spec["name"], show)
        for it, row in zip(items, ll):                                       # row: (4,)
            it.update(loglik=row.tolist(), pred=LETTERS[int(row.argmax())])
    else:
        texts = [mc_prompt(it) if task == "mc" else it["question"] for it in items]
        outputs = generate(model, tok, [chat(tok, t) for t in texts], args.max_new_tokens,
                           args.batch_size, spec["name"], show)
        for it, out in zip(items, outputs):
            it["output"] = out
            if task != "open":
                it["pred"] = extract_number(out, it["lang"]) if task == "mgsm" else extract_choice(out)
    if task == "open" and "judge" in extras:
        counts += judge_items(items, *extras["judge"], spec["metric"], args.judge_max_new_tokens,
                              args.batch_size, show)
    elif task == "open":
        counts += proxy_items(items, *extras["proxy"], args.calib_mode)
    else:                              # canonical numbers (Decision 3) and letters compare as strings
        for it in items:
            it["score"] = float(it["pred"] == it["gold"])
        counts["no_answer"] = sum(it["pred"] is None for it in items)
    return counts


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarise(items: list[dict], seen: set[str]) -> dict:
    """Per-language percentages and the Seen / Unseen / Avg macro means (Decision 7)."""
    by_lang = {}
    for it in items:
        by_lang.setdefault(it["lang"], []).append(it["score"])
    scores = {l: 100 * sum(v) / len(v) for l, v in by_lang.items()}
    return {"scores": scores, "n": {l: len(v) for l, v in by_lang.items()}, "avg": _mean(list(scores.values())),
            "seen_avg": _mean([s for l, s in scores.items() if l in seen]),
            "unseen_avg": _mean([s for l, s in scores.items() if l not in seen])}


def format_table(tasks: list[dict]) -> tuple[str, dict]:
    """Markdown: a row per task, a column per language, Seen, Unseen, Avg; then the Overall row."""
    langs = sorted({l for t in tasks for l in t["scores"]}, key=lambda l: (l not in LANGUAGES, l))
    total = {"scores": {l: _mean([t["scores"].get(l) for t in tasks]) for l in langs},
             **{k: _mean([t[k] for t in tasks]) for k in ("seen_avg", "unseen_avg", "avg")}}
    lines = ["| task | " + " | ".join(langs) + " | Seen | Unseen | Avg |", "|---" * (len(langs) + 4) + "|"]
    for name, t in [(t["label"], t) for t in tasks] + [("Overall", total)]:
        cells = [t["scores"].get(l) for l in langs] + [t["seen_avg"], t["unseen_avg"], t["avg"]]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in cells) + " |")
    return "\n".join(lines), total


# --- CLI ------------------------------------------------------------------------------------------

def task_specs(args) -> list[dict]:
    """The tasks to run, from --suite or --task/--data; --open_metric / --mc_mode fill in the rest."""
    if args.suite:
        seen, tasks = load_suite(args.suite)
        args.seen = args.seen or ",".join(seen)
    elif args.task and args.data:
        tasks = [{"task": args.task, "data": args.data}]                # load_items checks the task
    else:
        raise ValueError("give --suite, or both --task and --data")
    return [{"name": os.path.splitext(os.path.basename(t["data"]))[0], "metric": args.open_metric,
             "mc_mode": args.mc_mode, **t} for t in tasks]


def describe(spec: dict, args, counters: dict) -> tuple[str, str]:
    """(table row label, what the score means) of one task; a judged task's label says how many
    replies had no verdict (Decision 4)."""
    if spec["task"] != "open":
        return spec["name"], "accuracy %"
    if args.judge:
        return f"{spec['name']} (judge, {counters['judge_unparsed']} unparsed)", JUDGES[spec["metric"]][3]
    calibrated = f"{args.calib_mode}-calibrated" if args.calib and args.calib_mode != "none" else "raw"
    return spec["name"] + " (proxy)", f"proxy: r_qual x r_lang vs gold, {calibrated} similarity"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face causal LM: hub name or directory")
    p.add_argument("--task", help=f"one of {', '.join(TASKS)} (with --data)")
    p.add_argument("--data", help="JSON Lines file of the task (fields: data/eval_sets.py)")
    p.add_argument("--suite", help="JSON {'seen': [...], 'tasks': [{'name', 'task', 'data', ...}]}")
    p.add_argument("--seen", default="", help="comma-separated seen languages (default: the 14 training ones)")
    p.add_argument("--out", default="results.json", help="per-item predictions and scores (rank 0)")
    p.add_argument("--batch_size", type=int, default=16, help="prompts per forward / generate call")
    p.add_argument("--max_new_tokens", type=int, default=512, help="answer length: mgsm, open, mc generate")
    p.add_argument("--mc_mode", default="loglik", choices=MC_MODES, help="multiple-choice scoring")
    p.add_argument("--judge", help="local chat model grading open answers; without it, the proxy score")
    p.add_argument("--judge_max_new_tokens", type=int, default=512,
                   help="judge reply length: a reasoning judge's trace and its verdict (Decision 4)")
    p.add_argument("--open_metric", default="care_pro", choices=METRICS,
                   help="judge protocol: CARE-pro rubric accuracy, or CARE 1-10 rating x 10")
    p.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="the proxy's sentence encoder")
    p.add_argument("--calib", help="calibrate.py table for the proxy; without it, raw similarity")
    p.add_argument("--calib_mode", default="mean", choices=["mean", "quantile", "none"], help="proxy calibration")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    specs = task_specs(args)
    data = [load_items(s["data"], s["task"]) for s in specs]           # fail before loading a model
    seen = {normalise_lang(l, "--seen") for l in args.seen.split(",") if l} or set(LANGUAGES) - {"en"}
    has_open = any(s["task"] == "open" for s in specs)
    for name in [args.model] + ([args.judge or args.encoder] if has_open else []):
        check_model(name)                                                 # a typo fails now, not after a hub retry

    rank, world, device = init_distributed()        # one process per device under torchrun, else one process
    ddp = dist.is_initialized()

    model, tok = load_model(args.model, device)
    extras = {}
    if has_open and args.judge:
        extras["judge"] = load_model(args.judge, device)
    elif has_open:
        table = CalibrationTable.load(args.calib) if args.calib else None
        extras["proxy"] = (Encoder(args.encoder, str(device)), table)

    results = []
    for spec, items in zip(specs, data):
        mine = [dict(it, index=i) for i, it in enumerate(items)][rank::world]   # this rank's share
        counts = run_task(spec, mine, model, tok, args, extras, show=rank == 0)
        parts = [(mine, counts)] * world
        if ddp:
            dist.all_gather_object(parts, (mine, counts))
        merged = sorted((it for part, _ in parts for it in part), key=lambda it: it["index"])
        counters = dict(sum((c for _, c in parts), Counter()))
        if spec["task"] == "open" and args.judge:
            counters.setdefault("judge_unparsed", 0)                   # Decision 4: reported even when 0
        label, metric = describe(spec, args, counters)
        results.append({"name": spec["name"], "label": label, "task": spec["task"], "data": spec["data"],
                        "metric": metric, "counters": counters, **summarise(merged, seen), "items": merged})
    if rank == 0:
        table, total = format_table(results)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"model": args.model, "judge": args.judge, "seen": sorted(seen), "world_size": world,
                       "overall": total, "tasks": results}, f, ensure_ascii=False, indent=1)
        print(table)
        for t in results:
            print(f"{t['label']}: {t['metric']}; items per language {t['n']}; counters {t['counters']}")
            if t["counters"].get("judge_unparsed"):
                print(f"{t['name']}: {t['counters']['judge_unparsed']} judge replies had no verdict and score 0 "
                      f"(judge_reply in {args.out}); a reasoning judge may need a larger --judge_max_new_tokens")
    if ddp:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except RecordError as e:                   # bad input (a file, a field, a model name): one line
        raise SystemExit(f"eval.py: {e}")
