"""
Reading and validating the evaluation sets (SPEC §6): a suite listing the tasks, and one JSON Lines
file per task in the public datasets' own field names, turned into items
{id, lang, question, gold, [choices]} for eval.py.

    from data.eval_sets import load_items, load_suite, normalise_lang
    seen, tasks = load_suite("data/sample/eval/suite.json")
    items = load_items(tasks[0]["data"], tasks[0]["task"])       # task: mgsm | mc | open

Suite (JSON): {"seen": [codes], "tasks": [{"name", "task", "data" (relative to the suite),
optional "metric" (care_pro | care), "mc_mode" (loglik | generate)}]}.

Fields (every record also has `lang` (a code) or `language` (a name), optionally `id` / `sample_id`):
    mgsm  mGSM               `question`, `answer_number`
    mc    Global-MMLU-Lite   `question`, `option_a`..`option_d`, `answer` (a letter A-D)
    mc    INCLUDE-lite       `question`, `choices` (a list of 4), `answer` (a 0-based index)
    mc    INCLUDE (lm-eval)  `question`, `option_a`..`option_d`, `answer` (a 0-based index)
    open  CARE / CARE-pro    `question`, `answer`

Decisions:
1. Every error names the file, the 1-based line and the field at fault, and eval.py raises it
   before any model is loaded. A field that is missing, null or "" is missing.
2. Languages: codes or English names ("German", "de", "pt-BR", "North Macedonian", "Chinese
   (Simplified)": a part in parentheses is ignored; aliases such as "Farsi", "Bahasa Indonesia")
   become ISO 639-1 codes; any code py3langid knows is accepted (unseen languages are welcome),
   anything else is an error that lists the router's languages. data/prepare.py uses it too.
3. A multiple-choice record with `choices` is INCLUDE (gold index -> letter); one with
   `option_a`..`option_d` takes a letter or a 0-based int index; gold is always a letter A-D.
4. Numbers: full-width and other Unicode digits become ASCII; a separator followed by exactly
   three digits groups thousands ("1,234", "1.234", "1 234"), otherwise it is a decimal point
   ("2,5"); canonical form drops the grouping and a zero fraction ("18.0" -> "18"). mGSM gold is
   the last number of `answer_number` in this form, the same form eval.extract_number returns,
   so gold and prediction compare as strings.
5. An item without `id` / `sample_id` is named "file.jsonl:line", stable across ranks and runs.
"""
import json
import os
import re
import unicodedata
from functools import lru_cache

from data.records import RecordError, read_jsonl
from reward import LANGUAGE_NAMES, LANGUAGES

TASKS = ("mgsm", "mc", "open")
METRICS = ("care_pro", "care")        # open QA judge protocols (eval.py Decision 4)
MC_MODES = ("loglik", "generate")     # multiple-choice scoring (eval.py Decision 2)
LETTERS = "ABCD"
OTHER_LANGUAGES = (  # English name: ISO 639-1 code, beyond the router's 15 ("_" is a space)
    "albanian:sq amharic:am armenian:hy azerbaijani:az basque:eu belarusian:be bengali:bn bulgarian:bg "
    "burmese:my croatian:hr czech:cs danish:da estonian:et finnish:fi georgian:ka greek:el hausa:ha "
    "hebrew:he hindi:hi hungarian:hu igbo:ig kazakh:kk lithuanian:lt malay:ms malagasy:mg malayalam:ml "
    "nepali:ne north_macedonian:mk macedonian:mk norwegian:no persian:fa romanian:ro serbian:sr "
    "sinhala:si somali:so swahili:sw swedish:sv tagalog:tl filipino:tl tamil:ta telugu:te thai:th "
    "turkish:tr ukrainian:uk urdu:ur uzbek:uz yoruba:yo "
    "mandarin:zh farsi:fa bahasa_indonesia:id indonesia:id fil:tl in:id")  # aliases; "in": paper Table 6
NAME_TO_CODE = {**{n.lower(): c for c, n in LANGUAGE_NAMES.items()},
                **dict(p.replace("_", " ").split(":") for p in OTHER_LANGUAGES.split())}


@lru_cache(maxsize=64)
def lid(languages: tuple[str, ...] | None = None):
    """py3langid's identifier, restricted to `languages` (all of its ~140 when None)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    ident.set_languages(list(languages) if languages else None)
    return ident


def normalise_lang(value, where: str) -> str:
    """Decision 2: 'German' / 'de' / 'pt-BR' -> ISO code; RecordError naming `where` otherwise."""
    text = re.sub(r"\(.*\)", "", str(value)).strip().lower().replace("_", "-")   # "Chinese (Simplified)"
    code = NAME_TO_CODE.get(text, text.split("-")[0])
    if code not in set(LANGUAGES) | set(lid().nb_classes):
        raise RecordError(f"{where}: {value!r} is neither a known language name nor an ISO 639-1 "
                          f"code (router languages: {', '.join(LANGUAGES)})")
    return code


# --- numbers (Decision 4) -------------------------------------------------------------------------

# a thousands group needs a leading 1-9 and the same separator throughout; else digits[.,digits]
NUMBER = re.compile(r"(?<![\d.,])-?(?:[1-9]\d{0,2}([,.' \u00a0\u202f])\d{3}(?:\1\d{3})*(?:[.,]\d+)?"
                    r"|\d+(?:[.,]\d+)?)(?!\d)")
_SEPARATORS = str.maketrans({"٫": ".", "٬": ",", "−": "-"})


def to_ascii(text: str) -> str:
    """Full-width forms (NFKC) and every Unicode decimal digit (Arabic-Indic, ...) to ASCII."""
    return "".join(unicodedata.normalize("NFKC", c) if "\uff01" <= c <= "\uff5e" else
                   str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text).translate(_SEPARATORS)


def canonical_number(match: re.Match) -> str:
    """A NUMBER match without its thousands separator, decimal comma as point, "18.0" as "18"."""
    s = match.group(0).replace(match.group(1), "") if match.group(1) else match.group(0)
    value = float(s.replace(",", "."))
    return str(int(value)) if value.is_integer() else repr(value)


def last_number(text: str) -> str | None:
    """The last number in `text`, canonical; None when there is none."""
    numbers = list(NUMBER.finditer(to_ascii(text)))
    return canonical_number(numbers[-1]) if numbers else None


# --- files ----------------------------------------------------------------------------------------

def _field(obj: dict, where: str, *names: str):
    """The first of `names` that is present and non-empty (Decision 1)."""
    for n in names:
        if obj.get(n) not in (None, ""):
            return obj[n]
    raise RecordError(f"{where}: field '{'/'.join(names)}' is missing or empty")


def load_items(path: str, task: str) -> list[dict]:
    """Items of one JSON Lines file as {id, lang, question, gold, [choices]} (fields above)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    items = []
    for lineno, obj in read_jsonl(path):
        where = f"{path}:{lineno}"
        item = {"id": str(obj.get("id", obj.get("sample_id", f"{os.path.basename(path)}:{lineno}"))),
                "lang": normalise_lang(_field(obj, where, "lang", "language"), f"{where}: field 'lang'"),
                "question": str(_field(obj, where, "question"))}
        if task == "mgsm":
            item["gold"] = last_number(str(_field(obj, where, "answer_number")))
            if item["gold"] is None:
                raise RecordError(f"{where}: field 'answer_number' is not a number")
        elif task == "open":
            item["gold"] = str(_field(obj, where, "answer"))
        elif "choices" in obj:                                    # INCLUDE: list + 0-based index
            choices, answer = _field(obj, where, "choices"), _field(obj, where, "answer")
            if not isinstance(choices, list) or len(choices) != 4:
                raise RecordError(f"{where}: field 'choices' must be a list of 4 options")
            if type(answer) is not int or not 0 <= answer < 4:
                raise RecordError(f"{where}: field 'answer' must be a 0-based index 0..3")
            item.update(choices=[str(c) for c in choices], gold=LETTERS[answer])
        else:                         # option_a..d + a letter (Global-MMLU) or an index (INCLUDE)
            answer = _field(obj, where, "answer")
            item.update(choices=[str(_field(obj, where, f"option_{c}")) for c in "abcd"],
                        gold=LETTERS[answer] if type(answer) is int and 0 <= answer < 4
                        else str(answer).strip().upper())
            if item["gold"] not in tuple(LETTERS):
                raise RecordError(f"{where}: field 'answer' must be a letter A-D or a 0-based index 0..3")
        items.append(item)
    if not items:
        raise RecordError(f"{path}: no records")
    return items


def load_suite(path: str) -> tuple[list[str], list[dict]]:
    """A suite's seen languages and its tasks, each `data` path joined to the suite's folder."""
    with open(path, encoding="utf-8") as f:
        suite = json.load(f)
    tasks, base = suite.get("tasks"), os.path.dirname(os.path.abspath(path))
    if not isinstance(tasks, list) or not tasks:
        raise RecordError(f"{path}: 'tasks' must be a non-empty list")
    for i, t in enumerate(tasks):
        if t.get("task") not in TASKS:
            raise RecordError(f"{path}: task #{i} is {t.get('task')!r}; valid tasks: {', '.join(TASKS)}")
        if "data" not in t or t.get("metric", METRICS[0]) not in METRICS \
                or t.get("mc_mode", MC_MODES[0]) not in MC_MODES:
            raise RecordError(f"{path}: task #{i}: needs 'data'; 'metric' is {'|'.join(METRICS)}, "
                              f"'mc_mode' {'|'.join(MC_MODES)}")
    return suite.get("seen", []), [dict(t, data=os.path.join(base, t["data"])) for t in tasks]
