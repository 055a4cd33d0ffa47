"""
Topic and region labels from a local Hugging Face chat model (paper Appendix A.2, Figures 5 and 6).

    from data.labels import label_items, parse_topic, parse_regions
    review = label_items(items, "Qwen/Qwen2.5-7B-Instruct", topics=TOPICS, regions=REGIONS)
    parse_topic("[[Reasoning / Logic]]", TOPICS)            # -> "Reasoning"
    parse_regions("[[France]] [[germany]]", REGIONS)        # -> ["France", "Germany"]

The paper labelled every training question with two prompts to gpt-oss-120b (98% agreement with
native annotators on 200 items). Any local chat model can stand in; `data/prepare.py
--label_model` calls `label_items`.

Decisions:
1. The prompts follow Figures 5 and 6. The topic prompt keeps the paper's six labels as written
   there ("Chat / Conversational", "Reasoning / Logic", "Safety / Ethics", ...); the parser maps
   them to our short topic names. The region prompt lists our 24 regions (router.REGIONS), lets the model
   name another country or culture when none fits, and asks for [[None]] when the question is not
   about a region.
2. Topic first, for every item without one; region only for Regional Knowledge items without one
   (the paper's region prompt is "used to assign each regional query"). Other topics get no region:
   the router's region term B applies to Regional Knowledge items only (Eq. 1).
3. Greedy decoding, left-padded batches, the model's own chat template, a tqdm bar per prompt.
4. Parsing is forgiving about form and strict about meaning: case, spacing, quotes, extra words
   and the paper's long label forms are accepted; several different topics, an empty or
   sentence-long tag, or no recognisable label at all is "unparseable" (None). An unparseable
   answer is never replaced by a default: the item goes to the review list with the raw answer,
   and the caller counts it.
5. Regions: a tag naming one of the 24 regions (any case, or a demonym such as "Japanese") maps to
   it; any other short tag is kept as written, because the router adds unknown regions lazily.
   Without tags, the answer is searched for the 24 names as whole words.
"""
import re

# The paper's Figure 5 labels that differ from our topic names.
PAPER_TOPIC_NAMES = {"Chat / Conversational": "Chat", "Reasoning / Logic": "Reasoning",
                     "Safety / Ethics": "Safety"}
# Labels a model may write for one of our regions. "Korea" and "United States" are the paper's own
# Figure 6 examples; our list has South Korea / North Korea and Anglosphere instead.
REGION_ALIASES = {
    "korea": "South Korea", "south korean": "South Korea", "korean": "South Korea",
    "north korean": "North Korea", "united states": "Anglosphere", "usa": "Anglosphere",
    "united kingdom": "Anglosphere", "uk": "Anglosphere", "arab": "Arab World",
    "arabic": "Arab World", "chinese": "China", "japanese": "Japan", "french": "France",
    "german": "Germany", "spanish": "Spain", "italian": "Italy", "polish": "Poland",
    "russian": "Russia", "vietnamese": "Vietnam", "turkish": "Turkey", "iranian": "Iran",
    "persian": "Iran", "indian": "India", "israeli": "Israel",
}
NONE_WORDS = {"none", "no region", "n/a", "na", "null", "nothing"}
MAX_TAG_WORDS = 4  # a region tag longer than this is a sentence, not a label

TOPIC_PROMPT = """Topic Classification
You are a classification model that assigns EXACTLY ONE topic label to the given user query.
Choose one and only one label from this list:
* [[Regional Knowledge]] | Questions whose core content concerns a specific country/region, culture, local customs, geography, holidays, policies, or community-unique practices.
Examples: "Why do Japanese people bow?", "What is Ramadan?", "Laws about traffic lights in Germany"
* [[General Knowledge]] | Factual questions that do NOT depend on a specific region or culture.
Examples: "What is photosynthesis?", "How does a jet engine work?"
* [[Chat / Conversational]] | Greetings, opinions, or casual conversation without a clear problem-solving goal.
Examples: "How is your day?", "Tell me something interesting"
* [[Reasoning / Logic]] | Math, coding, puzzles, or queries requiring structured inference or problem solving.
Examples: "Solve this equation...", "Write Python to parse JSON"
* [[Safety / Ethics]] | Harmful, dangerous, sensitive, medical, political, or morally-charged topics.
Examples: "How to hack...", "Is this drug safe for me?"
* [[Translation]] | Requests about translation, word meaning, or language comparison.
Examples: "Translate this...", "What does X mean in English?"
---
GLOBAL PRINCIPLES:
1. Classify based on intent and meaning only | NEVER based on the language of the query.
2. If multiple labels seem possible, choose the SINGLE MOST SPECIFIC label that fits the user's intent.
---
OUTPUT REQUIREMENTS:
- Output ONLY one label.
- Format MUST be exactly:
[[<label>]]
- The label MUST be exactly one of the six options above.
- No explanation, no additional text.
---
EXAMPLE 1:
Input Query:
初めまして。田中と申します。
Output:
[[Chat / Conversational]]
---
EXAMPLE 2:
Input Query:
quelle est la hauteur de la tour Eiffel
Output:
[[General Knowledge]]
---
EXAMPLE 3:
Input Query:
小粉红是什么
Output:
[[Regional Knowledge]]
---
Input Query:
{question}
Output:"""

REGION_PROMPT = """Region Classification
You are a classifier that determines which REGION or CULTURE a user query is about. Given a user query:
1. Identify the region(s) or culture(s) the query is primarily about.
2. The region(s) should reflect cultural or country-level knowledge required to answer the question correctly.
IMPORTANT CONSTRAINTS:
- Use a label from this list whenever one fits: {regions}.
- If none of them fits, name the country or culture itself, e.g. [[Brazil]].
- Prefer the most specific label: output [[France]] [[Germany]] rather than [[Europe]]. Use a broad label of the list (Europe, Latin America, Southeast Asia, Africa, Arab World, Anglosphere, ...) only when the query is about that whole area.
- Do NOT infer the region from the language of the query alone.
  The language used to ask the question may differ from the culture it refers to.
- If the query involves MULTIPLE distinct countries or cultures, output EACH of them explicitly.
- Only output regions that are NECESSARY to answer the question.
- If the query is not about any specific region or culture, output [[None]].
OUTPUT FORMAT:
Output one or more region labels.
Each label must be wrapped in double brackets.
Separate multiple labels with a single space.
No explanation. No reasoning. No additional text.
---
EXAMPLE 1
Input Query:
"小粉红是什么？"
Output:
[[China]]
---
EXAMPLE 2
Input Query:
"¿Por qué a los japoneses les gusta comer natto?"
Output:
[[Japan]]
---
EXAMPLE 3
Input Query:
"フランス革命は何ですか？"
Output:
[[France]]
---
EXAMPLE 4
Input Query:
"How do wedding traditions differ between China and South Korea?"
Output:
[[China]] [[South Korea]]
---
Input Query:
"{question}"
Output:"""


def _norm(text: str) -> str:
    """Lower case, one space, ' / ' around slashes, no surrounding quotes or punctuation."""
    text = re.sub(r"\s*/\s*", " / ", text)
    return re.sub(r"\s+", " ", text).strip(" \t\n\"'`*.,:;!?()").lower()


def _tags(answer: str) -> list[str]:
    return re.findall(r"\[\[(.*?)\]\]", answer, flags=re.S)


def _scan(answer: str, names: dict[str, str]) -> list[str]:
    """Values of `names` (lower-case phrase -> label) found as whole words, longest phrase first,
    each span used once (so "South Korea" does not also count as a shorter name inside it)."""
    text, found = answer.lower(), []
    for phrase in sorted(names, key=len, reverse=True):
        pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
        if re.search(pattern, text):
            found.append(names[phrase])
            text = re.sub(pattern, " ", text)
    return found


def _topic_names(topics) -> dict[str, str]:
    names = {t.lower(): t for t in topics}
    for long, short in PAPER_TOPIC_NAMES.items():
        if short in topics:
            names[_norm(long)] = short
    return names


def parse_topic(answer: str, topics) -> str | None:
    """The one topic an answer names, or None when it names none or several (decision 4)."""
    names = _topic_names(topics)
    tags = _tags(answer)
    if tags:
        lenient = dict(names)  # inside a tag, half a label is still a label: [[Regional]], [[Logic]]
        for phrase, topic in list(names.items()):
            for part in re.split(r" / | ", phrase):
                if part not in ("knowledge",):
                    lenient.setdefault(part, topic)
        found = [lenient.get(_norm(tag)) for tag in tags]
        if None in found or len(set(found)) != 1:
            return None
        return found[0]
    found = set(_scan(answer, names))
    return found.pop() if len(found) == 1 else None


def normalise_region(name: str, regions) -> str:
    """One region label: the canonical spelling of a known region or alias, else as written."""
    known = {r.lower(): r for r in regions}
    key = _norm(name)
    if key in known:
        return known[key]
    if key in REGION_ALIASES and REGION_ALIASES[key] in regions:
        return REGION_ALIASES[key]
    return " ".join(name.split()).strip(" \"'`*.,:;")


def parse_regions(answer: str, regions) -> list[str] | None:
    """Regions an answer names ([] for an explicit "none"), or None when unparseable (decision 5)."""
    tags = [part for tag in _tags(answer) for part in re.split(r"[,;]", tag)]
    if tags:
        out, saw_none = [], False
        for tag in tags:
            key = _norm(tag)
            if key in NONE_WORDS:
                saw_none = True
            elif not re.search(r"\w", key) or len(key.split()) > MAX_TAG_WORDS:
                return None  # an empty tag or a sentence in brackets is not a label
            else:
                region = normalise_region(tag, regions)
                if region not in out:
                    out.append(region)
        if saw_none and out:
            return None  # "[[None]] [[Japan]]" contradicts itself
        return out
    found = _scan(answer, {r.lower(): r for r in regions})
    if found:
        return [r for r in regions if r in found]
    return [] if _norm(answer) in NONE_WORDS else None


def generate_answers(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int,
                     desc: str) -> list[str]:
    """Greedy answers of a chat model to `prompts` (one user turn each), in order."""
    import torch
    from tqdm import tqdm

    if not prompts:
        return []
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    answers = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        chats = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                               add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        enc = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)  # (b, T + new)
        answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return answers


def label_items(items: list[dict], model_path: str, topics, regions, batch_size: int = 16,
                device: str = "cpu", max_new_tokens: int = 32) -> list[dict]:
    """Fill in missing `topic` / `region` of `items` in place with a local chat model.

    Returns the review list: one {"id", "question", "field", "answer"} per unparseable answer.
    Those items keep the missing field missing; the caller must not train on them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto").to(device).eval()
    review = []

    def label(field, todo, prompts, parse):
        """Ask the model, keep the parsed answers, send the unparseable ones to review."""
        for item, answer in zip(todo, generate_answers(model, tokenizer, prompts, batch_size,
                                                       max_new_tokens, field)):
            value = parse(answer)
            if value is None:
                review.append({"id": item["id"], "question": item["question"], "field": field,
                               "answer": answer})
            else:
                item[field] = value

    todo = [it for it in items if not it.get("topic")]
    label("topic", todo, [TOPIC_PROMPT.replace("{question}", it["question"]) for it in todo],
          lambda a: parse_topic(a, topics))
    regional = "Regional Knowledge"
    todo = [it for it in items if it.get("topic") == regional and "region" not in it]
    listed = ", ".join(regions)
    label("region", todo, [REGION_PROMPT.replace("{regions}", listed).replace("{question}", it["question"])
                           for it in todo], lambda a: parse_regions(a, regions))
    for item in items:  # decision 2: only Regional Knowledge items carry regions
        if item.get("topic") and item["topic"] != regional and "region" not in item:
            item["region"] = []
    return review
