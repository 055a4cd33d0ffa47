"""
Reading and validating the project's inputs: JSON Lines records (paper §4 data, §5.4 warm start),
models and tokenizers, and numeric command-line settings.

    from data.records import read_jsonl, load_train, load_sft, check_model, check_policy, check_encoder, ranged
    items = load_train("data/sample/train.jsonl", languages=LANGUAGES, topics=TOPICS)
    pairs = load_sft("data/sample/sft.jsonl", languages=LANGUAGES)
    check_model("out/ckpt-68")                       # RecordError at once if it cannot be a model
    check_policy("out/ckpt-68")                      # ... nor a chat model (chat template, EOS, weights)
    check_encoder("/models/mmBERT-small")            # ... nor the reward encoder (pad token, weights)
    parser.add_argument("--K", type=ranged(int, lo=2))

Decisions:
1. Every error names the file, the 1-based line and the field at fault, and is raised before any
   model is loaded: a typo on line 4,000 must not cost a GPU hour.
2. Blank lines are allowed and skipped (editors add them); everything else must parse.
3. Files are UTF-8. A byte order mark at the start of the file is accepted (Windows editors write
   one); a byte that is not UTF-8 is an error naming the file and line, never a bare
   UnicodeDecodeError. So is a lone UTF-16 surrogate written as a JSON escape ("\\ud800", what a
   string cut inside an emoji's pair turns into): valid JSON, yet no text, and it would fail later,
   deep in a tokenizer or a writer; `check_unicode` names the line and field.
4. Training record: {"id": str, "question": str, "reference": str, "lang": code,
   "topic": one of the topics, "region": list of str (may be empty)}. Regions are free text:
   the router adds unknown ones lazily (a new region starts as a zero row of B), so they are
   checked for type only.
5. Warm-start (SFT) record, paper §5.4: {"id": str, "question": str, "lang": code, "answer": str},
   `lang` being the language of the answer, i.e. the target language the tag asks for (any of
   the router's languages, English included; the question may be in any language). One prompt is
   answered in two target languages, so two lines share an id and question; a repeated
   (id, lang) pair, or an id whose lines disagree on the question, is an error.
6. Questions compare by `question_key` (case-folded, whitespace collapsed): the warm-start set
   must share no question with the RL training data (paper §5.4: "disjoint from our training
   data"), and data/prepare_sft.py and the tests use this one definition.
7. A model name that looks local (starts with . / ~, has more than one slash, ends in ckpt-N, or
   its first directory exists) must be a directory with a config.json: a typo fails at once with
   "no such directory" instead of a minute of hub retries. A hub name is fine when it is in the
   local Hugging Face cache; otherwise, with HF_HUB_OFFLINE unset, one 10-second query says
   whether the Hub has it, and the answer is one line.
8. `ranged` is an argparse type whose error names the allowed range ("must be >= 1, got 0"); the
   scripts state the range (or what 0 means) in each flag's help. A float must be finite: nan passes
   every comparison (each is False) and inf every lower bound, so both are refused by name.
9. A chat model (the policy, a teacher, a label model: `check_policy`) or the reward encoder
   (`check_encoder`) given as a local directory is checked from its files, without loading weights:
   a weights file (*.safetensors or pytorch_model*.bin), a tokenizer file that loads, and what the code
   needs of it: a chat template and an EOS token (the prompts are rendered with the template, the
   answers end with EOS, and EOS stands in for a missing pad token), or a pad token (reward.Encoder
   pads its batches with it). Each missing piece is one line naming the directory. A hub name is
   checked by check_model only: its files come as published.
"""
import argparse
import glob
import json
import math
import os
import re
from typing import Iterator

BOM = "\ufeff"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model")                 # any one of them holds a vocabulary
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")       # a JSON escape of a UTF-16 surrogate


class RecordError(ValueError):
    """A bad record: the message names the file, line and field."""


def _decode(path: str, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}:{lineno}: not UTF-8 ({e.reason}: byte 0x{raw[e.start]:02x} "
                          f"at column {e.start + 1})") from None


def read_text(path: str) -> str:
    """The whole file as text, without a leading BOM; RecordError naming the line of a bad byte."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for lineno, raw in enumerate(data.split(b"\n"), 1):
            _decode(path, lineno, raw)
        raise
    return text[1:] if text.startswith(BOM) else text


def read_jsonl(path: str, partial_tail=None) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for every non-blank line; raise RecordError on bad JSON.
    partial_tail(message): when given, a last line cut short by a crash mid-write (no newline, not
    valid JSON) is reported through it and skipped instead (a log being written)."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = _decode(path, lineno, raw)
            if lineno == 1 and line.startswith(BOM):
                line = line[1:]
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if partial_tail and not raw.endswith(b"\n") and not f.peek(1):
                    partial_tail(f"{path}:{lineno}: dropped a half-written last line")
                    return
                raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            if SURROGATE_ESCAPE.search(raw):                 # rare: a pair is fine, a lone half is not
                check_unicode(f"{path}:{lineno}", obj)
            yield lineno, obj


def _lone_surrogate(obj, where: str = "") -> tuple[str, str] | None:
    """(field, escape) of the first string in `obj` (keys included) holding a lone surrogate."""
    if isinstance(obj, str):
        bad = next((c for c in obj if "\ud800" <= c <= "\udfff"), None)
        return (where, f"\\u{ord(bad):04x}") if bad else None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        name = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        if found := _lone_surrogate(key, name) if isinstance(key, str) else None:
            return found
        if found := _lone_surrogate(value, name):
            return found
    return None


def check_unicode(where: str, obj) -> None:
    """RecordError naming `where` (file:line) and the field if a string of `obj` holds a lone
    UTF-16 surrogate (decision 3)."""
    if found := _lone_surrogate(obj):
        raise RecordError(f"{where}: field '{found[0]}' holds a lone UTF-16 surrogate ({found[1]}), "
                          "which is not text: fix the program that wrote this line")


def question_key(text: str) -> str:
    """The form in which two questions are the same question (decision 6)."""
    return " ".join(text.casefold().split())


def check_disjoint(train_file: str, items: list[dict], others: dict[str, list[dict]]) -> None:
    """ValueError if the records of any file in `others` ({path: records}: warm-start, validation)
    share a question with the RL items of `train_file` (decision 6; paper §5.4)."""
    seen = {question_key(it["question"]) for it in items}
    for path, records in others.items():
        if shared := {question_key(r["question"]) for r in records} & seen:
            raise ValueError(f"{path} shares {len(shared)} question(s) with {train_file}: warm-start and "
                             "validation data must be disjoint from the RL data (paper §5.4)")


def check_field(path, lineno, obj, name, kind=str, nonempty=True):
    """obj[name], checked present, of `kind` and (a string) not blank; else RecordError naming file:line:field."""
    if name not in obj:
        raise RecordError(f"{path}:{lineno}: field '{name}' is missing")
    value = obj[name]
    if not isinstance(value, kind):
        raise RecordError(f"{path}:{lineno}: field '{name}' must be {kind.__name__}, "
                          f"got {type(value).__name__}")
    if nonempty and kind is str and not value.strip():
        raise RecordError(f"{path}:{lineno}: field '{name}' is empty")
    return value


def check_lang(path, lineno, obj, languages) -> str:
    """obj["lang"], checked to be one of `languages`."""
    lang = check_field(path, lineno, obj, "lang")
    if lang not in languages:
        raise RecordError(f"{path}:{lineno}: field 'lang' is {lang!r}, not one of {sorted(languages)}")
    return lang


def validate_train(path: str, lineno: int, obj: dict, languages, topics) -> dict:
    """Check one training record; return it with `region` normalised to a list."""
    check_field(path, lineno, obj, "id")
    check_field(path, lineno, obj, "question")
    check_field(path, lineno, obj, "reference")
    check_lang(path, lineno, obj, languages)
    topic = check_field(path, lineno, obj, "topic")
    if topic not in topics:
        raise RecordError(f"{path}:{lineno}: field 'topic' is {topic!r}, not one of {list(topics)}")
    region = obj.get("region", [])
    if region is None:
        region = []
    if not isinstance(region, list) or not all(isinstance(r, str) and r.strip() for r in region):
        raise RecordError(f"{path}:{lineno}: field 'region' must be a list of non-empty strings")
    return {**obj, "region": region}


def load_train(path: str, languages, topics) -> list[dict]:
    """All training records of `path`, validated; duplicate ids are an error too."""
    items, seen = [], {}
    for lineno, obj in read_jsonl(path):
        item = validate_train(path, lineno, obj, languages, topics)
        if item["id"] in seen:
            raise RecordError(f"{path}:{lineno}: field 'id' {item['id']!r} repeats line {seen[item['id']]}")
        seen[item["id"]] = lineno
        items.append(item)
    if not items:
        raise RecordError(f"{path}: no records")
    return items


def validate_sft(path: str, lineno: int, obj: dict, languages) -> dict:
    """Check one warm-start record (decision 5); return its four fields."""
    for name in ("id", "question", "answer"):
        check_field(path, lineno, obj, name)
    check_lang(path, lineno, obj, languages)
    return {k: obj[k] for k in ("id", "question", "lang", "answer")}


def load_sft(path: str, languages) -> list[dict]:
    """All warm-start records of `path`, validated (decision 5); an empty file is an error."""
    pairs, seen, question_of = [], {}, {}
    for lineno, obj in read_jsonl(path):
        pair = validate_sft(path, lineno, obj, languages)
        key = (pair["id"], pair["lang"])
        if key in seen:
            raise RecordError(f"{path}:{lineno}: field 'lang' {pair['lang']!r} repeats id "
                              f"{pair['id']!r} of line {seen[key]}")
        first = question_of.setdefault(pair["id"], (lineno, pair["question"]))
        if question_key(first[1]) != question_key(pair["question"]):
            raise RecordError(f"{path}:{lineno}: field 'question' differs from line {first[0]} "
                              f"of the same id {pair['id']!r}")
        seen[key] = lineno
        pairs.append(pair)
    if not pairs:
        raise RecordError(f"{path}: no records")
    return pairs


def check_model(name: str) -> None:
    """Raise RecordError (one line) unless `name` can be a model (decision 7)."""
    if os.path.isdir(os.path.expanduser(name)):
        if not os.path.exists(os.path.join(os.path.expanduser(name), "config.json")):
            raise RecordError(f"{name}: not a model directory (no config.json)")
        return
    parent = name.split("/")[0]
    if (name.startswith((".", "/", "~")) or name.count("/") > 1 or re.search(r"ckpt-\d+/*$", name)
            or os.path.exists(name) or ("/" in name and os.path.isdir(parent))):
        raise RecordError(f"{name}: no such directory")
    import huggingface_hub
    from huggingface_hub import constants
    if isinstance(huggingface_hub.try_to_load_from_cache(name, "config.json"), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise RecordError(f"{name}: not a local directory, and not in the Hugging Face cache (HF_HUB_OFFLINE is set)")
    try:
        huggingface_hub.model_info(name, timeout=10)
    except Exception as e:                                   # offline, unknown name, gated, ...
        cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecordError(f"{name}: not a local directory, and the Hugging Face Hub cannot provide it "
                          f"({type(e).__name__}: {cause[:160]})") from None


def _tokenizer(name: str, path: str):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:                                   # missing files, a broken tokenizer.json, ...
        cause = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise RecordError(f"{name}: its tokenizer does not load ({type(e).__name__}: {cause[:160]})") from None


def _model_files(name: str):
    """check_model(name); for a local directory, its weights file and tokenizer (decision 9)."""
    check_model(name)
    path = os.path.expanduser(name)
    if not os.path.isdir(path):
        return None                                          # a hub name: its files come as published
    if not any(glob.glob(os.path.join(path, p)) for p in ("*.safetensors", "pytorch_model*.bin")):
        raise RecordError(f"{name}: no weights file (*.safetensors or pytorch_model*.bin) beside its config.json")
    if not any(os.path.exists(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise RecordError(f"{name}: no tokenizer ({', '.join(TOKENIZER_FILES[:3])}, ...); transformers "
                          "would build an empty one from the config alone")
    return _tokenizer(name, path)


def check_policy(name: str, chat: bool = True) -> None:
    """RecordError (one line naming the directory and what is missing) unless `name` can be a chat
    model: check_model, and for a local directory weights, a tokenizer, and (`chat`: it will answer
    through its chat template) a chat template and an EOS token (decision 9)."""
    tok = _model_files(name)
    if not chat:
        return
    if tok is not None and not tok.chat_template:
        raise RecordError(f"{name}: no chat template (tokenizer_config.json 'chat_template' or "
                          "chat_template.jinja): prompts are rendered with it")
    if tok is not None and tok.eos_token is None:
        raise RecordError(f"{name}: no EOS token (tokenizer_config.json 'eos_token'): answers end with it")


def check_encoder(name: str) -> None:
    """RecordError (one line naming the directory and what is missing) unless `name` can be the
    reward encoder: check_model, and for a local directory weights and a pad token (decision 9)."""
    tok = _model_files(name)
    if tok is not None and tok.pad_token is None:
        raise RecordError(f"{name}: its tokenizer has no pad token (tokenizer_config.json 'pad_token'): "
                          "the reward encoder pads its batches with it")


def ranged(kind, lo=None, hi=None, above=None):
    """An argparse type: a `kind` >= lo, <= hi, > above, and finite if a float (decision 8); the
    error names the allowed range."""
    rule = " and ".join(s for s in (above is not None and f"> {above}", lo is not None and f">= {lo}",
                                    hi is not None and f"<= {hi}") if s)

    def parse(text):
        x = kind(text)
        if isinstance(x, float) and not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be a finite number{' ' + rule if rule else ''}, got {text}")
        if (lo is not None and x < lo) or (hi is not None and x > hi) or (above is not None and x <= above):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return x
    parse.__name__ = kind.__name__                           # argparse's "invalid int value: 'x'"
    return parse
