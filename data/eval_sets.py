"""
Reading and validating the evaluation sets (paper §4, Appendix C.2): a suite listing the tasks,
and one JSON Lines file per task in the public datasets' own field names, turned into items
{id, lang, question, gold, [choices], [domain], [culture_type]} for eval.py; the benchmarks'
prompt formats (multiple choice and INCLUDE as lm-eval-harness builds them, lm-eval's
mgsm_direct); reading a model's answers in the gold's form; and the per-language table with the
paper's Seen / Unseen / Avg and Overall cells (Table 5).

    from data.eval_sets import load_items, load_suite, normalise_lang, extract_number, mc_prompt
    seen, tasks = load_suite("data/sample/eval/suite.json")
    items = load_items(tasks[0]["data"], tasks[0]["task"])       # task: mgsm | mc | open
    extract_number("Antwort: 1.234 Äpfel", "de") == "1234"       # compared with an mGSM item's gold
    prompt, stops = lm_eval_mgsm_prompt(item)                    # lm-eval's mgsm_direct
    flexible_extract("The answer is 1,234.") == "1,234."         # its flexible-extract filter

Suite (JSON): {"seen": [codes], "tasks": [{"name", "task", "data" (relative to the suite),
optional "metric" (care_pro | care), "mc_mode" (loglik | generate)}]}.

Fields (every record also has `lang` (a code) or `language` (a name), optionally `id` / `sample_id`):
    mgsm  mGSM               `question`, `answer_number`
    mc    Global-MMLU-Lite   `question`, `option_a`..`option_d`, `answer` (a letter A-D)
    mc    INCLUDE-lite       `question`, `choices` (a list of 4), `answer` (a 0-based index), `domain`
    mc    INCLUDE (lm-eval)  `question`, `option_a`..`option_d`, `answer` (a 0-based index), `domain`
    open  CARE               `question`, `answer`, `culture_type` (or `cul_type`; for the judge)
    open  CARE-pro           `question`, `answer`

Decisions:
1. Every error names the file, the 1-based line and the field at fault, and eval.py raises it
   before any model is loaded. A field that is missing, null or "" is missing.
2. Languages: codes or English names ("German", "de", "pt-BR", "North Macedonian", "Chinese
   (Simplified)": a part in parentheses is ignored; aliases such as "Farsi", "Bahasa Indonesia")
   become ISO 639-1 codes; any code reward.py's language ID can answer is accepted (unseen
   languages are welcome, and an answer in one can pass the proxy's gate), anything else is an
   error that lists the router's languages. data/prepare.py uses it too.
3. A multiple-choice record with `choices` is INCLUDE (gold index -> letter); one with
   `option_a`..`option_d` takes a letter or a 0-based int index; gold is always a letter A-D.
4. Numbers: full-width and other Unicode digits become ASCII; a separator followed by exactly
   three digits groups thousands ("1,234", "1.234", "1 234"), otherwise it is a decimal point
   ("2,5"); canonical form drops the grouping and a zero fraction ("18.0" -> "18"). mGSM gold is
   the last number of `answer_number` in this form, the same form eval.extract_number returns,
   so gold and prediction compare as strings.
5. An item without `id` / `sample_id` is named "file.jsonl:line", stable across ranks and runs.
6. Answers of a generation, read here beside the gold they are compared with. mGSM
   (`extract_number`): the first number after the *last* answer word ("Answer", "Antwort", "答案",
   ...: the item's language and English) that stands alone and is followed by ':' or the number,
   maybe after a copula and markup ("is: ", "是", "は **$"; not "beantworten", "To answer this"),
   else the last number, in Decision 4's canonical form. Multiple choice (`extract_choice`): the
   letter after an answer word, else a marked one ("(B)", "C.", "**D**"), else a lone one.
7. Multiple-choice prompts are lm-eval-harness's, as its task files render them: Global-MMLU-Lite
   "{q}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:"; an item with a `domain` is INCLUDE, whose template
   (tasks/include/default) renders "\n D." (its YAML folds the line break before "D." into a
   space) and whose description "The following is multiple-choice question about {domain}." is
   joined to the question with nothing between (0-shot, no chat template: lm-eval's plain-text
   join of the description and the question, since v0.4.8 when INCLUDE was added).
8. lm-eval's mgsm_direct (tasks/mgsm/direct): 0-shot "{Question word}: {q}\n{Answer word}:" in the
   item's language as its per-language files write it (the English words for a language it lacks,
   counted by eval.py), no chat template, greedy, until that question word, "</s>" or
   "<|im_end|>", 256 tokens; the text is cut at the first stop. flexible-extract: the last match of
   (-?[$0-9.,]{2,})|(-?[0-9]+), its first non-empty group, stripped ("[invalid]" when none);
   exact_match ignoring case and string.punctuation against str(answer_number).
9. CARE's culture type (`culture_type` in the CARE test files, `cul_type` on the Hugging Face
   card) is kept for the judge, which picks CARE's rating prompt by it; any spelling of the five
   types (case, "_" for a space) is accepted, anything else is an error listing them; the judge
   needs it on every CARE item (`load_items(..., metric="care")`).
"""
import json
import os
import re
import string
import unicodedata

from data.records import RecordError, read_jsonl
from reward import LANGUAGE_NAMES, LANGUAGES, lid_languages

TASKS = ("mgsm", "mc", "open")
METRICS = ("care_pro", "care")        # open QA judge protocols (eval.py Decision 4)
MC_MODES = ("loglik", "generate")     # multiple-choice scoring (eval.py Decision 2)
LETTERS = "ABCD"
CULTURE_TYPES = ("Cultural commonsense", "Cultural entities", "Literacy", "Opinion", "Social norms")  # CARE
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


def normalise_lang(value, where: str) -> str:
    """Decision 2: 'German' / 'de' / 'pt-BR' -> ISO code; RecordError naming `where` otherwise."""
    text = re.sub(r"\(.*\)", "", str(value)).strip().lower().replace("_", "-")   # "Chinese (Simplified)"
    code = NAME_TO_CODE.get(text, text.split("-")[0])
    if code not in lid_languages():
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


# --- answers (Decision 6) -------------------------------------------------------------------------

ANSWER_WORDS = {
    "en": ["answer"], "de": ["antwort"], "es": ["respuesta"], "fr": ["réponse"], "it": ["risposta"],
    "pt": ["resposta"], "nl": ["antwoord"], "pl": ["odpowiedź"], "id": ["jawaban"],
    "vi": ["câu trả lời", "đáp án"], "ru": ["ответ"], "ar": ["الإجابة", "الجواب"], "zh": ["答案"],
    "ja": ["答え"], "ko": ["정답", "답변", "답"], "bn": ["উত্তর"], "sw": ["jibu"], "te": ["సమాధానం"],
    "th": ["คำตอบ"], "el": ["απάντηση"], "tr": ["cevap", "yanıt"], "hi": ["उत्तर"], "uk": ["відповідь"],
}
# between an answer word and its value: "correct", a copula, markup ("**", "$", "\boxed{", "(")
QUALIFIER = r"(?:\s*(?:correct[aeo]?|corretta|đúng|الصحيحة|yang benar|sahihi))?"
COPULA = r"is|ist|lautet|es|est|è|é|ni|adalah|là|是|为|為|は|은|는|이|هي|คือ|—|–|="
MARKUP = r"(?:\s|\*|_|\$|€|£|¥|\\boxed\{|\\\(|[(\[{])*"
CHOICE_WORDS = ["option", "choice", "正解", "選択肢", "选项"]                  # extract_choice only
UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # Thai, kana, Han, Hangul


def answer_marker(words) -> str:
    """Regex: an answer word (a spaced script's word standing alone), an optional copula, then ':'."""
    alts = "|".join(re.escape(w) if UNSPACED.search(w) else rf"(?<!\w){re.escape(w)}(?!\w)"
                    for w in sorted(words, key=len, reverse=True))
    return rf"(?i:(?:{alts}){QUALIFIER}{MARKUP}(?:(?:{COPULA}){MARKUP})?)"


def extract_number(text: str, lang: str) -> str | None:
    """mGSM's predicted answer (Decision 6) as a canonical string, or None when there is no number."""
    text = to_ascii(text)
    words = set(ANSWER_WORDS.get(lang, sum(ANSWER_WORDS.values(), [])) + ANSWER_WORDS["en"])
    after = [m.end() for m in re.finditer(answer_marker(words) + r"(?::|(?=-?\d))", text)]
    if after and (m := NUMBER.search(text, after[-1])):
        return canonical_number(m)
    return last_number(text)


def extract_choice(text: str) -> str | None:
    """The letter A-D after an answer word, else a marked one ("(B)", "C.", "**D**"), else a lone one."""
    text = to_ascii(text)
    marker = answer_marker([w for ws in ANSWER_WORDS.values() for w in ws] + CHOICE_WORDS)
    # after an answer word a lower-case letter counts too, unless a word follows ("is a dog")
    for pattern in (rf"{marker}:?{MARKUP}(?:([A-D])|([a-d])(?!\s+\w))(?![A-Za-z])",
                    r"[(\[]([A-D])[)\]]|\*\*([A-D])\*\*|(?<!\w)([A-D])[.):](?!\w)", r"^\W*([A-D])\W*$"):
        if m := re.search(pattern, text):
            return next(g for g in m.groups() if g).upper()
    return None


# --- prompts as lm-eval-harness builds them (Decisions 7 and 8) ------------------------------------

def mc_prompt(item: dict) -> str:
    """Global-MMLU-Lite's prompt, or INCLUDE's when the item has a `domain` (Decision 7)."""
    a, b, c, d = item["choices"]
    if item.get("domain"):
        return (f"The following is multiple-choice question about {item['domain']}."
                f"{item['question'].strip()}\nA. {a}\nB. {b}\nC. {c}\n D. {d}\nAnswer:")
    return f"{item['question'].strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"


LM_EVAL_MGSM = {  # mgsm_direct_{lang}.yaml: (question word, answer word), Decision 8
    "bn": ("প্রশ্ন:", "Answer:"), "de": ("Frage:", "Antwort:"), "en": ("Question:", "Answer:"),
    "es": ("Pregunta:", "Respuesta:"), "fr": ("Question :", "Réponse :"), "ja": ("問題：", "Answer:"),
    "ru": ("Задача:", "Answer:"), "sw": ("Swali:", "Answer:"), "te": ("ప్రశ్న:", "Answer:"),
    "th": ("โจทย์:", "Answer:"), "zh": ("问题：", "Answer:")}
LM_EVAL_MAX_TOKENS = 256                                    # lm-eval's max_gen_toks
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")       # mgsm_direct's flexible-extract


def lm_eval_mgsm_prompt(item: dict) -> tuple[str, list[str]]:
    """(prompt, stop strings) of lm-eval's mgsm_direct for an mGSM item (Decision 8)."""
    ask, answer = LM_EVAL_MGSM.get(item["lang"], LM_EVAL_MGSM["en"])
    return f"{ask} {item['question']}\n{answer}", [ask, "</s>", "<|im_end|>"]


def lm_eval_cut(text: str, stops: list[str]) -> str:
    """The generation up to the first stop string, as lm-eval's postprocess_generated_text."""
    for stop in stops:
        text = text.split(stop)[0]
    return text


def flexible_extract(text: str) -> str:
    """lm-eval's RegexFilter(group_select=-1) with mgsm_direct's pattern (Decision 8)."""
    found = FLEXIBLE.findall(text)
    if not found:
        return "[invalid]"
    groups = [g for g in found[-1] if g]
    return groups[0].strip() if groups else "[invalid]"


def lm_eval_exact_match(pred: str, gold: str) -> bool:
    """lm-eval's exact_match with ignore_case and ignore_punctuation (string.punctuation)."""
    drop = str.maketrans("", "", string.punctuation)
    return pred.lower().translate(drop) == gold.lower().translate(drop)


# --- files ----------------------------------------------------------------------------------------

def _field(obj: dict, where: str, *names: str):
    """The first of `names` that is present and non-empty (Decision 1)."""
    for n in names:
        if obj.get(n) not in (None, ""):
            return obj[n]
    raise RecordError(f"{where}: field '{'/'.join(names)}' is missing or empty")


def culture_type(value, where: str) -> str:
    """Decision 9: one of CULTURE_TYPES in any case, "_" or "-" for a space."""
    key = " ".join(str(value).replace("_", " ").replace("-", " ").split()).lower()
    for name in CULTURE_TYPES:
        if name.lower() == key:
            return name
    raise RecordError(f"{where}: field 'culture_type' is {value!r}, not one of {', '.join(CULTURE_TYPES)}")


def load_items(path: str, task: str, metric: str | None = None) -> list[dict]:
    """Items of one JSON Lines file as {id, lang, question, gold, [choices], [domain],
    [culture_type]} (fields above); metric "care" requires each item's culture type (Decision 9)."""
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
            if metric == "care" or obj.get("culture_type", obj.get("cul_type")) not in (None, ""):
                item["culture_type"] = culture_type(_field(obj, where, "culture_type", "cul_type"), where)
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
        if task == "mc" and obj.get("domain") not in (None, ""):                 # INCLUDE (Decision 7)
            item["domain"] = str(obj["domain"]).strip()
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


# --- scores: the paper's table (eval.py Decisions 6 and 7) ---------------------------------------

def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarise(items: list[dict], seen: set[str]) -> dict:
    """Per-language percentages (None scores left out) and the Seen / Unseen / Avg macro means
    (eval.py Decisions 6 and 7)."""
    by_lang = {}
    for it in items:
        by_lang.setdefault(it["lang"], []).append(it["score"])
    scores = {l: None if _mean(v) is None else 100 * _mean(v) for l, v in by_lang.items()}
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
