"""
Reading and validating the project's JSON Lines records (SPEC §4).

    from data.records import read_jsonl, load_train
    items = load_train("data/sample/train.jsonl", languages=LANGUAGES, topics=TOPICS)

Decisions:
1. Every error names the file, the 1-based line and the field at fault, and is raised before any
   model is loaded: a typo on line 4,000 must not cost a GPU hour.
2. Blank lines are allowed and skipped (editors add them); everything else must parse.
3. Training record: {"id": str, "question": str, "reference": str, "lang": code,
   "topic": one of the topics, "region": list of str (may be empty)}. Regions are free text:
   the router adds unknown ones lazily (SPEC §4), so they are checked for type only.
"""
import json
from typing import Iterator


class RecordError(ValueError):
    """A bad record: the message names the file, line and field."""


def read_jsonl(path: str) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for every non-blank line; raise RecordError on bad JSON."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise RecordError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _field(path, lineno, obj, name, kind=str, nonempty=True):
    if name not in obj:
        raise RecordError(f"{path}:{lineno}: field '{name}' is missing")
    value = obj[name]
    if not isinstance(value, kind):
        raise RecordError(f"{path}:{lineno}: field '{name}' must be {kind.__name__}, "
                          f"got {type(value).__name__}")
    if nonempty and kind is str and not value.strip():
        raise RecordError(f"{path}:{lineno}: field '{name}' is empty")
    return value


def validate_train(path: str, lineno: int, obj: dict, languages, topics) -> dict:
    """Check one training record; return it with `region` normalised to a list."""
    _field(path, lineno, obj, "id")
    _field(path, lineno, obj, "question")
    _field(path, lineno, obj, "reference")
    lang = _field(path, lineno, obj, "lang")
    if lang not in languages:
        raise RecordError(f"{path}:{lineno}: field 'lang' is {lang!r}, not one of {sorted(languages)}")
    topic = _field(path, lineno, obj, "topic")
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
