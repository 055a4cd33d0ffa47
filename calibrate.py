"""
Cross-lingual calibration of similarity rewards (SPEC §3): an offline table, online calibration.

Build the table once from a parallel corpus (rows sharing an id are translations of each other):

    python calibrate.py --parallel data/sample/parallel.jsonl --encoder jhu-clsp/mmBERT-small --out calib.json

then, in the trainer (reward.compute_rewards does this; reward.py needs only the table object):

    from calibrate import CalibrationTable
    table = CalibrationTable.load("calib.json")
    cal, missing = table.calibrate(sim, ref_langs, out_langs, "mean")       # (N,), (N,) bool

Raw mmBERT cosines are compressed near 1 and shifted per language pair (0.925 ja-pt to 0.997
zh-zh in the release), so a rollout in one language cannot be compared with one in another
inside a GRPO group. Per unordered pair {l_i, l_j} the table stores what "equivalent" looks like.

Decisions:
1. Three kinds of pairs per unordered language pair, as in the paper: equivalent (the same item
   in both languages; up to n_equiv=30 items), mismatched (n_mismatch=10 random other items per
   reference), hard (the n_hard=2 most similar other items per reference, by the encoder).
   References alternate sides (even ones in l_i, odd ones in l_j) so both directions in which
   the table is used online are in the mixture.
2. Same-language pairs (l, l) are in the table: most rollouts are in the reference's language.
   A parallel corpus holds one text per (id, language), so the only equivalent of a reference
   in its own language is itself and these equivalent scores are 1 (up to float rounding). The
   release's 0.997 for zh-zh implies paraphrases there; same-language rollouts are therefore
   shifted down slightly more here than in the release under mean calibration, and under quantile
   calibration the self-scores fill the top ~8% of the (l, l) mixture, so a same-language rollout
   that is not a verbatim copy maps to at most ~0.92 while a cross-language one can reach 1.
   A parallel set with paraphrases (an id's text in language l written twice) would lift both
   effects; the format does not carry them yet.
3. Stored per pair: n, mean and std of the equivalent scores (and the scores themselves), the
   means of the mismatched and hard scores, 101 empirical quantiles of the mixture of all three,
   and an upper-bound anchor `ub` = the 95th percentile of the equivalent scores. Globally:
   mu_ref = the n-weighted mean of the equivalent means.
4. mean (Eq. 2): cal = s - lam * (mu_pair - mu_ref), clipped to [-1, 1]; with shrinkage k,
   lam is multiplied by n / (n + k), so a pair seen few times is corrected less.
5. quantile (Eq. 3): u = Q_pair(s), the piecewise-linear empirical CDF through the stored
   quantiles; monotone, 0 below the smallest and 1 at or above the largest. With `ub`, s and the
   quantile points both become min(1, x / ub): every score at or above the anchor is 1.
6. A pair missing from the table keeps the raw score and is counted, never silently.
7. The table is JSON with every float written exactly (Python's shortest repr), so a save/load
   round trip is bit-exact; lists of numbers or codes are kept on one line, for readability.
8. Bad input fails with file:line and field; an id present in only one language is skipped and
   counted; a language pair with fewer than 2 shared items cannot have a mismatched pair and is
   left out of the table (listed in meta, so online rows fall back and are counted).
"""
import argparse
import json
import random
import re
from dataclasses import dataclass, field

import torch

from data.records import RecordError, read_jsonl

MODES = ("mean", "quantile", "none")
FORMAT = "lrpo-calibration/1"


def pair_key(a: str, b: str) -> str:
    """The unordered pair {a, b} as 'a-b' with a <= b."""
    return "-".join(sorted((a, b)))


# ---------------------------------------------------------------------------------------------
# Offline: parallel records -> table
# ---------------------------------------------------------------------------------------------

def load_parallel(path: str, languages) -> list[dict]:
    """Parallel records {"id", "lang", "text"} of `path`, validated (Decision 8)."""
    records, seen = [], {}
    for lineno, obj in read_jsonl(path):
        for name in ("id", "lang", "text"):
            if name not in obj:
                raise RecordError(f"{path}:{lineno}: field '{name}' is missing")
            if not isinstance(obj[name], str) or not obj[name].strip():
                raise RecordError(f"{path}:{lineno}: field '{name}' must be a non-empty string")
        if obj["lang"] not in languages:
            raise RecordError(f"{path}:{lineno}: field 'lang' is {obj['lang']!r}, "
                              f"not one of {sorted(languages)}")
        key = (obj["id"], obj["lang"])
        if key in seen:
            raise RecordError(f"{path}:{lineno}: field 'id' {key[0]!r} in {key[1]!r} "
                              f"repeats line {seen[key]}")
        seen[key] = lineno
        records.append({"id": obj["id"], "lang": obj["lang"], "text": obj["text"]})
    if not records:
        raise RecordError(f"{path}: no records")
    return records


def group_parallel(records: list[dict]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """({id: {lang: text}} for ids in 2+ languages, the ids skipped for having only one)."""
    items: dict[str, dict[str, str]] = {}
    for r in records:
        items.setdefault(r["id"], {})[r["lang"]] = r["text"]
    single = sorted(i for i, texts in items.items() if len(texts) < 2)
    return {i: t for i, t in items.items() if len(t) >= 2}, single


def pair_stats(equiv, mismatch, hard, n_quantiles: int = 101, ub_q: float = 0.95) -> dict:
    """One table entry from the equivalent / mismatched / hard scores of a language pair."""
    eq, mm, hd = (torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in (equiv, mismatch, hard))
    assert len(eq) > 0 and len(mm) > 0, "a pair needs equivalent and mismatched scores"
    mix = torch.cat([eq, mm, hd])
    p = torch.linspace(0, 1, n_quantiles, dtype=torch.float64)
    return {"n": len(eq), "mean": eq.mean().item(),
            "std": eq.std().item() if len(eq) > 1 else 0.0,
            "mismatch_mean": mm.mean().item(),
            "hard_mean": hd.mean().item() if len(hd) else None,
            "n_mixture": len(mix), "ub": torch.quantile(eq, ub_q).item(),
            "quantiles": torch.quantile(mix, p).tolist(), "equiv": eq.tolist()}


# ---------------------------------------------------------------------------------------------
# The table: per-pair statistics, and online calibration of raw similarities (Eq. 2, Eq. 3)
# ---------------------------------------------------------------------------------------------

def empirical_cdf(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear CDF through nondecreasing quantile points q (P,) at 0, 1/(P-1), .., 1."""
    P = len(q)
    p = torch.linspace(0, 1, P, dtype=x.dtype)
    idx = torch.searchsorted(q, x, right=True)                   # how many points are <= x
    hi = idx.clamp(1, P - 1)
    lo = hi - 1
    w = (x - q[lo]) / (q[hi] - q[lo]).clamp_min(1e-300)        # q[lo] <= x < q[hi] inside
    u = p[lo] + w * (p[hi] - p[lo])
    return torch.where(idx == 0, 0.0, torch.where(idx == P, 1.0, u))


@dataclass
class CalibrationTable:
    """Per unordered language pair statistics (Decision 3) and the global mu_ref."""
    pairs: dict[str, dict]
    mu_ref: float
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: dict[str, dict], meta: dict | None = None) -> "CalibrationTable":
        n = sum(e["n"] for e in pairs.values())
        assert n > 0, "no pairs to calibrate with"
        mu_ref = sum(e["n"] * e["mean"] for e in pairs.values()) / n
        return cls(pairs=pairs, mu_ref=mu_ref, meta=dict(meta or {}))

    def calibrate(self, scores: torch.Tensor, ref_langs: list[str], out_langs: list[str],
                  mode: str = "mean", lam: float = 1.0, k: float | None = None,
                  ub: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated scores (N,) for the pairs (ref_langs[i], out_langs[i]) and the (N,) bool mask
        of rows whose pair is missing from the table (they keep the raw score, Decision 6)."""
        if mode not in MODES:
            raise ValueError(f"calibration mode {mode!r} is not one of {list(MODES)}")
        N = len(scores)
        assert len(ref_langs) == len(out_langs) == N, \
            f"{N} scores, {len(ref_langs)} reference and {len(out_langs)} output languages"
        missing = torch.zeros(N, dtype=torch.bool)
        if mode == "none":
            return scores.clone(), missing
        s = scores.detach().double()                                    # (N,)
        cal = s.clone()
        groups: dict[str, list[int]] = {}
        for i, (a, b) in enumerate(zip(ref_langs, out_langs)):
            groups.setdefault(pair_key(a, b), []).append(i)
        for key, rows in groups.items():
            entry, rows = self.pairs.get(key), torch.tensor(rows)
            if entry is None:
                missing[rows] = True                                    # Decision 6
            elif mode == "mean":
                lam_pair = lam if k is None else lam * entry["n"] / (entry["n"] + k)
                cal[rows] = (s[rows] - lam_pair * (entry["mean"] - self.mu_ref)).clamp(-1, 1)  # Eq. 2
            else:
                x, q = s[rows], torch.tensor(entry["quantiles"], dtype=torch.float64)
                if ub:
                    assert entry["ub"] > 0, f"pair {key}: upper-bound anchor {entry['ub']} is not > 0"
                    x, q = (x / entry["ub"]).clamp(max=1), (q / entry["ub"]).clamp(max=1)
                cal[rows] = empirical_cdf(x, q)                         # Eq. 3
        return cal.to(scores.dtype), missing

    def save(self, path: str) -> None:
        obj = {"format": FORMAT, "mu_ref": self.mu_ref, "meta": self.meta, "pairs": self.pairs}
        text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False)
        scalar = r'-?[0-9][0-9.eE+-]*|"[A-Za-z0-9_-]*"'            # numbers, language codes
        text = re.sub(rf"\[\s*((?:{scalar})(?:,\s*(?:{scalar}))*)\s*\]",  # such lists on one line
                      lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    @classmethod
    def load(cls, path: str) -> "CalibrationTable":
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path}: not a calibration table (expected format {FORMAT!r})")
        for key, entry in obj["pairs"].items():
            for name in ("n", "mean", "std", "ub", "quantiles"):
                if name not in entry:
                    raise ValueError(f"{path}: pair {key!r} lacks field {name!r}")
        return cls(pairs=obj["pairs"], mu_ref=obj["mu_ref"], meta=obj.get("meta", {}))


# ---------------------------------------------------------------------------------------------
# Offline: the builder
# ---------------------------------------------------------------------------------------------

def build_table(records: list[dict], encoder, n_equiv: int = 30, n_mismatch: int = 10,
                n_hard: int = 2, seed: int = 0, n_quantiles: int = 101, ub_q: float = 0.95,
                progress: bool = False) -> CalibrationTable:
    """The table for every unordered pair of the languages in `records` (Decisions 1-3, 8).
    `encoder` needs `.embed(texts, progress) -> (N, D)` unit-norm rows (reward.Encoder)."""
    items, single = group_parallel(records)
    ids = sorted(items)
    langs = sorted({lang for texts in items.values() for lang in texts})
    keys = [(i, lang) for i in ids for lang in sorted(items[i])]
    row = {key: j for j, key in enumerate(keys)}
    E = encoder.embed([items[i][lang] for i, lang in keys], progress=progress).double()  # (M, D)
    rng = random.Random(seed)
    pairs, too_few = {}, []
    for x, a in enumerate(langs):
        for b in langs[x:]:
            common = [i for i in ids if a in items[i] and b in items[i]]
            if len(common) < 2:
                too_few.append(pair_key(a, b))
                continue
            refs = rng.sample(common, min(n_equiv, len(common)))
            equiv = [(E[row[i, a]] @ E[row[i, b]]).clamp(-1, 1) for i in refs]
            mismatch, hard = [], []
            for r, i in enumerate(refs):
                src, dst = (a, b) if r % 2 == 0 else (b, a)
                cands = [j for j in ids if j != i and dst in items[j]]
                sims = (E[[row[j, dst] for j in cands]] @ E[row[i, src]]).clamp(-1, 1)  # (C,)
                mismatch += sims[rng.sample(range(len(cands)), min(n_mismatch, len(cands)))].tolist()
                hard += sims.topk(min(n_hard, len(cands))).values.tolist()
            pairs[pair_key(a, b)] = pair_stats(torch.stack(equiv), mismatch, hard, n_quantiles, ub_q)
    if not pairs:
        raise ValueError("no language pair has 2 or more shared items: cannot build a table")
    meta = {"n_items": len(ids), "languages": langs, "skipped_single_language_ids": len(single),
            "pairs_too_few_items": too_few, "n_equiv": n_equiv, "n_mismatch": n_mismatch,
            "n_hard": n_hard, "seed": seed, "ub_quantile": ub_q}
    return CalibrationTable.from_pairs(pairs, meta)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def report(table: CalibrationTable) -> str:
    """The per-pair table and the spread of pair means before vs after mean calibration."""
    m = table.meta
    lines = [f"{m.get('n_items')} items in {len(m.get('languages', []))} languages; "
             f"{m.get('skipped_single_language_ids', 0)} ids in one language only, skipped; "
             f"{len(table.pairs)} pairs, {len(m.get('pairs_too_few_items', []))} left out "
             f"(fewer than 2 shared items); mu_ref = {table.mu_ref:.4f}", "",
             "| pair | n | equivalent mean ± std | hard mean | mismatched mean |",
             "|---|---|---|---|---|"]
    for key in sorted(table.pairs):
        e = table.pairs[key]
        hard = "-" if e["hard_mean"] is None else f"{e['hard_mean']:.4f}"
        lines.append(f"| {key} | {e['n']} | {e['mean']:.4f} ± {e['std']:.4f} | {hard} | "
                     f"{e['mismatch_mean']:.4f} |")
    before, after = [], []
    for key, e in table.pairs.items():
        a, b = key.split("-")
        eq = torch.tensor(e["equiv"], dtype=torch.float64)
        before.append(eq.mean().item())
        after.append(table.calibrate(eq, [a] * len(eq), [b] * len(eq), "mean")[0].mean().item())
    lines += ["", f"spread of equivalent pair means: raw {min(before):.4f}..{max(before):.4f} "
              f"(range {max(before) - min(before):.4f}) -> mean-calibrated "
              f"{min(after):.4f}..{max(after):.4f} (range {max(after) - min(after):.4f})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> CalibrationTable:
    parser = argparse.ArgumentParser(description="Build a cross-lingual calibration table (SPEC §3).")
    parser.add_argument("--parallel", required=True, help="parallel JSONL: {id, lang, text} per line")
    parser.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="hub name or local dir")
    parser.add_argument("--out", required=True, help="where to write the JSON table")
    parser.add_argument("--n_equiv", type=int, default=30, help="equivalent pairs per language pair")
    parser.add_argument("--n_mismatch", type=int, default=10, help="random mismatches per reference")
    parser.add_argument("--n_hard", type=int, default=2, help="hardest mismatches per reference")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="encoder device")
    parser.add_argument("--batch_size", type=int, default=128, help="encoder batch size")
    args = parser.parse_args(argv)

    from reward import LANGUAGES, Encoder      # here, not at the top: reward imports this file
    records = load_parallel(args.parallel, LANGUAGES)
    encoder = Encoder(args.encoder, device=args.device, batch_size=args.batch_size)
    table = build_table(records, encoder, args.n_equiv, args.n_mismatch, args.n_hard, args.seed,
                        progress=True)
    table.meta.update(encoder=args.encoder, parallel=args.parallel)
    table.save(args.out)
    print(report(table))
    print(f"wrote {args.out}")
    return table


if __name__ == "__main__":
    main()
