"""
LRPO's reward for one rollout (SPEC §1 step 3): r = r_qual(y) * r_lang(y).

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
- r_lang: 1 if the language identified in y is the rollout's target language, else 0.

Decisions:
1. E(.) is attention-masked mean pooling of `last_hidden_state`, then L2 normalisation, computed
   in float32 whatever the model dtype (bf16 on CUDA by default, fp32 on CPU). Batches are right
   padded (pooling ignores pads; the position ids of real tokens stay 0..T-1) and texts are sorted
   by token count, so a batch holds texts of similar length and little padding.
2. A text with no tokens (an empty response) gets the zero vector, so its cosine with anything is 0;
   it is never run through the model (an all-padding row has nothing to attend to).
3. Embeddings and rewards are returned on the CPU as float32: they are per-rollout scalars that
   the trainer logs, all-reduces or moves as it likes.
4. Identical references are embedded once: the K rollouts of a prompt share one reference.
5. Language ID is py3langid restricted to the router's languages (measured 100% on full sentences,
   ~46 us each, offline). Input: fenced code blocks removed, whitespace collapsed. "No language"
   (None, gate 0) when the text is empty, when under 5% of its characters are letters or digits,
   or when it has no letter at all (digits alone carry no language).
6. Mean and none calibration give a score in [-1, 1]: r_qual = clamp((cal + 1) / 2, 0, 1)
   (SPEC §1.3). Quantile calibration is already in [0, 1]; a row whose pair is missing from the
   table falls back to the raw score, mapped like the mean case, and is counted.
7. Language codes are checked against `languages` up front: a typo fails with the valid list
   instead of silently gating every rollout to 0.
"""
import re
from functools import lru_cache

import torch
from tqdm import tqdm

LANGUAGE_NAMES = {
    "ar": "Arabic", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "vi": "Vietnamese", "zh": "Chinese",
}
LANGUAGES = sorted(LANGUAGE_NAMES)  # the router's 15 languages (SPEC §4)


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
    """A frozen sentence encoder: masked mean pooling of a Hugging Face encoder, L2-normalised."""

    def __init__(self, name_or_path: str = "jhu-clsp/mmBERT-small", device: str = "cpu",
                 dtype: torch.dtype | None = None, max_length: int = 512, batch_size: int = 128):
        from transformers import AutoModel, AutoTokenizer

        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
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


@lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...]):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    ident.set_languages(list(languages))
    return ident


def clean_for_lid(text: str) -> str:
    """Remove fenced code blocks and collapse whitespace."""
    return " ".join(_FENCE.sub(" ", text).split())


def detect_language(text: str, languages=LANGUAGES) -> str | None:
    """The language of `text` among `languages`, or None when it has no language (Decision 5)."""
    check_languages(languages)
    text = clean_for_lid(text)
    if not text or not any(c.isalpha() for c in text):
        return None
    if sum(c.isalnum() for c in text) < 0.05 * len(text):
        return None
    return _identifier(tuple(sorted(languages))).classify(text)[0]


def language_gate(texts: list[str], target_langs: list[str], languages=LANGUAGES) -> torch.Tensor:
    """(N,) float32: 1.0 where the detected language is the target, else 0.0."""
    assert len(texts) == len(target_langs), f"{len(texts)} texts but {len(target_langs)} targets"
    check_languages(target_langs, languages, "target language")
    found = [detect_language(t, languages) for t in texts]
    return torch.tensor([float(f == t) for f, t in zip(found, target_langs)])


# ---------------------------------------------------------------------------------------------
# r = r_qual * r_lang
# ---------------------------------------------------------------------------------------------

def compute_rewards(responses: list[str], references: list[str], ref_langs: list[str],
                    target_langs: list[str], encoder: Encoder, table, mode: str = "mean",
                    lam: float = 1.0, k: float | None = None, ub: bool = False,
                    languages=LANGUAGES) -> dict:
    """Rewards for N rollouts.

    Returns {"reward", "r_qual", "r_lang", "sim"}: (N,) float32 tensors, and the int counters
    "missing_pairs" (rows whose language pair is not in `table`: raw score used) and
    "no_language" (responses with no identifiable language: gate 0).
    `table` may be None only with mode "none". Translation items: pass the reference's own
    language as the target (SPEC §1.3).
    """
    N = len(responses)
    assert len(references) == len(ref_langs) == len(target_langs) == N, \
        f"lengths differ: {N} responses, {len(references)} references, " \
        f"{len(ref_langs)} reference languages, {len(target_langs)} target languages"
    check_languages(ref_langs, languages, "reference language")
    check_languages(target_langs, languages, "target language")

    sim = encoder.similarity(responses, references)                        # (N,) in [-1, 1]
    if mode == "none":
        cal, missing = sim.clone(), torch.zeros(N, dtype=torch.bool)
    elif table is None:
        raise ValueError(f"calibration mode {mode!r} needs a table (build one with calibrate.py)")
    else:
        cal, missing = table.calibrate(sim, ref_langs, target_langs, mode, lam, k, ub)  # Eq. 2 / 3
    r_qual = ((cal + 1) / 2).clamp(0, 1)                                   # SPEC §1.3
    if mode == "quantile":
        r_qual = torch.where(missing, r_qual, cal)                        # Eq. 3 is in [0, 1]

    found = [detect_language(y, languages) for y in responses]
    r_lang = torch.tensor([float(f == t) for f, t in zip(found, target_langs)])
    reward = r_qual * r_lang
    assert ((reward >= 0) & (reward <= 1)).all(), "reward left [0, 1]"
    return {"reward": reward, "r_qual": r_qual, "r_lang": r_lang, "sim": sim,
            "missing_pairs": int(missing.sum()), "no_language": sum(f is None for f in found)}
