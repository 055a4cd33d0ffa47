"""
LLM-as-judge for open regional QA (paper Appendix B.3, C.2): the published prompts, reading the
judge's verdicts, and two ways to ask: any OpenAI-compatible chat-completions server (vLLM,
SGLang; where the paper's judge, gpt-oss-120b, runs) or a model in this process. A verdict cache
lets a killed evaluation resume without asking anything twice.

    from judge import ServerJudge, VerdictCache, judge_items, load_prompts
    prompts = load_prompts(care_pro="prompt.txt")         # CARE's own ship in data/care_prompts/
    judge = ServerJudge("http://127.0.0.1:8000/v1", "openai/gpt-oss-120b", max_tokens=1024)
    judge.probe()                                         # JudgeError at once when unreachable
    counts = judge_items(items, "care_pro", prompts, judge, VerdictCache("results.judge-cache.jsonl"))
    items[0]["score"]                                     # 1.0 / 0.0; CARE: rating / 10, or None

An item is {"question", "gold", "output"} (CARE also "culture_type"). A judge is any object with
`name`, `params` (decoding, part of the cache key), `special_tokens` and `complete(batch,
on_done)`, which answers a list of chat messages calling on_done(j, {"reply", "cut"}) for each.
The server client is standard library only (urllib, concurrent.futures).

Decisions:
1. CARE-pro (Appendix B.3, Figure 7): the authors' grader, their release's evaluation/prompt.txt,
   read from a path the user gives (the file carries no licence, so it is not shipped). Its sha256
   is compared with the published file's; a difference is reported beside the scores, not an
   error (a user may grade with their own variant, knowingly). Placeholders {question}, {target},
   {predicted_answer} (Figure 7), filled by plain replacement, so braces elsewhere stay as written.
2. CARE (Appendix C.2): the CARE benchmark's own rating prompts, chosen by the item's culture type
   (CARE_PROMPT_FILES; data/care_prompts/README.md says why two files serve the types their names
   swap). Placeholders {question}, {answer} (gold), {response}.
3. Verdicts are read from the final answer: reasoning removed (<think>..</think>, an unclosed one
   to the end, a trace whose opening tag sat in the prompt up to the last </think>; of gpt-oss's
   harmony channels only the last `final`; a server's separate reasoning field is never read).
   CARE-pro: the first grade name in capitals standing in the answer ("NOT ATTEMPTED" too; "the
   answer is correct" is prose, not a grade), else the first capital A-D anywhere, as
   SimpleQA's grader reads its letters (simple-evals simpleqa_eval.py, re.search("(A|B|C)"));
   names first, since CORRECT and NOT_ATTEMPTED hold capitals of other grades. Score 1 for
   CORRECT only (CORRECT_BUT_WRONG_LANGUAGE counts as incorrect, Appendix B.3). CARE: n of the
   last "[[n]]" (else of the last "Rating: n"), 1 <= n <= 10; score n / 10 (rating x 10 once
   eval.py makes percentages).
4. A reply without a verdict (e.g. a trace cut by the token limit) is counted `judge_unparsed` and
   the item keeps `judge_reply`. CARE-pro scores it 0: accuracy counts CORRECT verdicts, and
   leaving items out would give each model its own denominator. CARE leaves it out of the mean
   (score None): 0 is below the 1-10 scale and any other number would be invented. A request
   that fails for good (Decision 6) is counted `judge_failed`, scored alike and never cached, so
   the next run asks it again. Replies that reached the token limit are counted `judge_cut`.
5. Cache: JSON Lines {key, reply, cut}; key = sha256 of the judge's name, the messages and the
   decoding parameters. Each verdict is appended (one os.write on an O_APPEND file) as soon as
   it arrives, so a killed run keeps every finished one and several ranks can share the file; a
   line cut short by a kill is skipped and counted (`dropped`).
6. ServerJudge: POST {url}/chat/completions, temperature 0 and `max_tokens`, at most
   `concurrency` requests in flight. 429, 5xx, timeouts, connection errors and replies that are
   not the expected JSON are retried `retries` times after 1, 2, 4, ... s (`backoff` doubling,
   at most 60 s, or the server's Retry-After); another 4xx (a prompt too long, an unknown model)
   is not. `probe()` asks GET {url}/models, so an unreachable server, or one that does not serve
   the model, is a one-line error before anything loads.
"""
import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed

CARE_PRO_SHA256 = "2555629214410b4b1d5145896dd9a5e7d3475920ebd22067913d663ff785fdfd"   # evaluation/prompt.txt
CARE_PROMPT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "care_prompts")
CARE_PROMPT_FILES = {  # culture type -> CARE's prompt file (Decision 2)
    "Cultural entities": "entities_opinion.txt", "Opinion": "entities_opinion.txt",
    "Cultural commonsense": "literacy.txt", "Social norms": "literacy.txt", "Literacy": "norms_commonsense.txt"}
PLACEHOLDERS = {"care_pro": ("{question}", "{target}", "{predicted_answer}"),   # question, gold, output
                "care": ("{question}", "{answer}", "{response}")}
METRIC_MEANING = {"care_pro": "judge CORRECT %", "care": "judge rating x 10"}
VERDICTS = ("CORRECT", "CORRECT_BUT_WRONG_LANGUAGE", "INCORRECT", "NOT_ATTEMPTED")   # = A, B, C, D


class JudgeError(ValueError):
    """A judge that cannot be used (a prompt file, the server): the message is one line."""


# --- prompts (Decisions 1 and 2) ------------------------------------------------------------------

def _read_prompt(path: str, metric: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise JudgeError(f"{path}: cannot read the {metric} judge prompt ({type(e).__name__}: {e})") from None
    missing = [p for p in PLACEHOLDERS[metric] if p not in text]
    if missing:
        raise JudgeError(f"{path}: the {metric} judge prompt lacks the placeholder(s) {', '.join(missing)}")
    return text


def load_prompts(care_pro: str | None = None, care_dir: str = CARE_PROMPT_DIR) -> dict:
    """{"care": {culture type: template}, "care_pro": {"text", "path", "sha256", "published"} or None}."""
    files = {name: _read_prompt(os.path.join(care_dir, name), "care") for name in set(CARE_PROMPT_FILES.values())}
    prompts = {"care": {kind: files[name] for kind, name in CARE_PROMPT_FILES.items()}, "care_pro": None}
    if care_pro is not None:
        text = _read_prompt(care_pro, "care_pro")
        with open(care_pro, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        prompts["care_pro"] = {"text": text, "path": care_pro, "sha256": digest, "published": digest == CARE_PRO_SHA256}
    return prompts


def judge_prompt(item: dict, metric: str, prompts: dict) -> str:
    """The filled prompt for one item: CARE-pro's, or the CARE one of its culture type."""
    if metric == "care_pro":
        if prompts["care_pro"] is None:
            raise JudgeError("CARE-pro needs the authors' prompt: --judge_prompt care_pro=PATH")
        template = prompts["care_pro"]["text"]
    else:
        template = prompts["care"][item["culture_type"]]
    for placeholder, value in zip(PLACEHOLDERS[metric], (item["question"], item["gold"], item["output"])):
        template = template.replace(placeholder, value)
    return template


# --- reading a verdict (Decision 3) ---------------------------------------------------------------

THINK = re.compile(r"<(think|thinking|reasoning)>.*?(?:</\1>|\Z)", re.DOTALL | re.IGNORECASE)
THINK_END = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
FINAL_CHANNEL = re.compile(r"<\|channel\|>\s*final\b.*?<\|message\|>", re.DOTALL)   # gpt-oss harmony
SPECIAL = re.compile(r"<\|[^<>|]{1,40}\|>")                     # leftovers: <|return|>, <|im_end|>, ...
GRADE_NAME = re.compile(r"(?<![A-Za-z0-9])(CORRECT[\s_]+BUT[\s_]+WRONG[\s_]+LANGUAGE|NOT[\s_]+ATTEMPTED"
                        r"|INCORRECT|CORRECT)(?![A-Za-z0-9])")      # as the prompt spells them: capitals
LETTER = re.compile(r"(A|B|C|D)")                                # SimpleQA's, with D
RATING = re.compile(r"\[\[\s*(\d+)\s*\]\]")
RATING_WORD = re.compile(r"(?i)rating\W{0,4}(\d+)(?!\d)")


def final_answer(reply: str, special_tokens=()) -> str:
    """A judge's final answer: reasoning removed, then the special tokens."""
    if "<|channel|>" in reply:                          # harmony: only the final channel answers
        parts = FINAL_CHANNEL.split(reply)
        reply = parts[-1] if len(parts) > 1 else ""
    elif m := re.match(r"\s*analysis.*assistantfinal", reply, re.DOTALL):
        reply = reply[m.end():]                         # harmony decoded without its special tokens
    reply = THINK_END.split(THINK.sub("", reply))[-1]   # "..</think>": the trace was opened in the prompt
    for t in special_tokens:
        reply = reply.replace(t, "")
    return SPECIAL.sub("", reply).strip()


def parse_verdict(answer: str) -> str | None:
    """A CARE-pro grade: the first grade name, else the first capital A-D (SimpleQA); else None."""
    if m := GRADE_NAME.search(answer):
        return re.sub(r"[\s_]+", "_", m.group(1).upper())
    if m := LETTER.search(answer):
        return VERDICTS["ABCD".index(m.group(1))]
    return None


def parse_rating(answer: str) -> int | None:
    """A CARE rating 1..10: the last "[[n]]", else the last "Rating: n"; else None."""
    found = RATING.findall(answer) or RATING_WORD.findall(answer)
    return int(found[-1]) if found and 1 <= int(found[-1]) <= 10 else None


# --- the cache (Decision 5) -----------------------------------------------------------------------

def cache_key(judge, messages: list[dict]) -> str:
    blob = json.dumps({"judge": judge.name, "messages": messages, "params": judge.params},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class VerdictCache:
    """Verdicts by key, read from and appended to a JSON Lines file."""

    def __init__(self, path: str):
        self.path, self.records, self.dropped = path, {}, 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            with open(path, "rb") as f:
                for raw in f:
                    try:
                        rec = json.loads(raw.decode("utf-8"))
                        self.records[rec["key"]] = rec
                    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
                        self.dropped += bool(raw.strip())     # a line cut short by a kill
        self._newline = os.path.exists(path) and not _ends_with_newline(path)

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        record = {"key": key, **record}
        line = ("\n" if self._newline else "") + json.dumps(record, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        self._newline, self.records[key] = False, record


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


# --- judging --------------------------------------------------------------------------------------

def judge_items(items: list[dict], metric: str, prompts: dict, judge, cache: VerdictCache | None = None) -> Counter:
    """Grade each item's `output` against its `gold` (Decisions 3 and 4); fills judge_reply, grade,
    score; returns the counters. Verdicts already in `cache` are not asked again (Decision 5)."""
    messages = [[{"role": "user", "content": judge_prompt(it, metric, prompts)}] for it in items]
    keys = [cache_key(judge, m) for m in messages]
    records = {k: cache.get(k) for k in keys if cache is not None and cache.get(k) is not None}
    todo = list({k: i for i, k in enumerate(keys) if k not in records}.values())   # each question once
    counts = Counter(judge_cached=sum(k in records for k in keys), judge_asked=len(todo))

    def done(j: int, record: dict) -> None:
        records[keys[todo[j]]] = record
        if cache is not None and record["reply"] is not None:
            cache.put(keys[todo[j]], {"reply": record["reply"], "cut": record["cut"]})
    if todo:
        judge.complete([messages[i] for i in todo], done)

    parse = parse_verdict if metric == "care_pro" else parse_rating
    for it, k in zip(items, keys):
        reply, cut = records[k]["reply"], records[k]["cut"]
        grade = None if reply is None else parse(final_answer(reply, judge.special_tokens))
        if metric == "care_pro":
            score = float(grade == "CORRECT")
        else:
            score = None if grade is None else grade / 10
        it.update(judge_reply=reply, grade=grade, score=score)
        if "error" in records[k]:
            it["judge_error"] = records[k]["error"]
        counts.update(judge_failed=reply is None, judge_unparsed=reply is not None and grade is None,
                      judge_cut=bool(cut))
    return counts


class ServerJudge:
    """An OpenAI-compatible chat-completions server as judge (Decision 6)."""

    def __init__(self, url: str, model: str, max_tokens: int, concurrency: int = 16, timeout: float = 600.0,
                 retries: int = 5, backoff: float = 1.0, progress=None):
        self.url, self.name, self.concurrency, self.timeout = url.rstrip("/"), model, concurrency, timeout
        self.retries, self.backoff, self.progress = retries, backoff, progress
        self.params, self.special_tokens = {"temperature": 0, "max_tokens": max_tokens}, ()

    def probe(self, timeout: float = 10.0) -> None:
        """JudgeError (one line) unless GET {url}/models answers, listing this model if any."""
        try:
            with urllib.request.urlopen(self.url + "/models", timeout=timeout) as r:
                served = [m.get("id") for m in json.loads(r.read().decode("utf-8")).get("data", [])]
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as e:
            reason = getattr(e, "reason", None) or e
            raise JudgeError(f"judge server {self.url} does not answer GET /models "
                             f"({type(e).__name__}: {str(reason)[:160]})") from None
        if served and self.name not in served:
            raise JudgeError(f"judge server {self.url} serves {served}, not {self.name!r} (--judge)")

    def ask(self, messages: list[dict]) -> dict:
        """One verdict: {"reply": str, "cut": bool}, or {"reply": None, "error": ...} after the retries."""
        body = json.dumps({"model": self.name, "messages": messages, **self.params}).encode("utf-8")
        error = None
        for attempt in range(self.retries + 1):
            wait = min(self.backoff * 2 ** attempt, 60.0)
            try:
                request = urllib.request.Request(self.url + "/chat/completions", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout) as r:
                    choice = json.loads(r.read().decode("utf-8"))["choices"][0]
                return {"reply": choice["message"].get("content") or "", "cut": choice.get("finish_reason") == "length"}
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code}"
                if e.code != 429 and e.code < 500:                      # the request itself is wrong
                    return {"reply": None, "cut": False, "error": f"{error}: {e.read()[:200]!r}"}
                after = e.headers.get("Retry-After", "")
                wait = min(float(after), 60.0) if after.replace(".", "", 1).isdigit() else wait
            except (OSError, http.client.HTTPException) as e:           # refused, dropped, timed out
                error = f"{type(e).__name__}: {getattr(e, 'reason', None) or e}"
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:   # not the JSON asked for
                error = f"malformed reply ({type(e).__name__})"
            if attempt < self.retries:
                time.sleep(wait)
        return {"reply": None, "cut": False, "error": error}

    def complete(self, batch: list[list[dict]], on_done) -> None:
        """Ask every message list, `concurrency` at a time; on_done(j, verdict) in this thread."""
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = {pool.submit(self.ask, m): j for j, m in enumerate(batch)}
            for n, f in enumerate(as_completed(futures), 1):
                on_done(futures[f], f.result())
                if self.progress:
                    self.progress(n, len(batch))
        finally:                                        # a kill: nothing queued is sent afterwards
            pool.shutdown(wait=False, cancel_futures=True)
