"""
Cross-lingual calibration of similarity rewards (paper §3.2, Eq. 2 and 3; §5.4; Appendix D):
an offline table per unordered language pair, and the online calibration of raw similarities.

Build a table from a parallel corpus (rows sharing an id are translations; an optional `alt` is
a paraphrase of `text`, Decision 2), or convert the authors' release (Decision 9; shipped as
data/calibration/mmbert-small-release.json):

    python calibrate.py --parallel data/sample/parallel.jsonl --encoder jhu-clsp/mmBERT-small --out calib.json
    python calibrate.py --from_release data/calibration/mmbert-small-release.csv --out calib.json

then, in the trainer (reward.compute_rewards calls `calibrate`; reward.py needs only the object):

    from calibrate import CalibrationTable, release_table
    table = CalibrationTable.load("calib.json", mode="mean")   # or release_table(encoder_name)
    cal, missing = table.calibrate(sim, ref_langs, out_langs, "mean")       # (N,), (N,) bool

Raw mmBERT cosines are compressed near 1 and shifted per language pair (0.925 ja-pt to 0.997
zh-zh in the release), so a rollout in one language cannot be compared with one in another
inside a GRPO group. Per unordered pair {l_i, l_j} the table stores what "equivalent" looks like.

Decisions:
1. Three kinds of pairs per unordered language pair (§3.2, §5.4): equivalent (the same item in
   both languages; n_equiv=30, "30 pairs sampled per language pair"), mismatched (n_mismatch=10
   random other items per reference), hard (the n_hard=2 most similar other items per reference).
   The paper's equivalents are Aya-expanse-32b translations of its references; here, whatever the
   parallel file holds. References alternate sides (even in l_i, odd in l_j): both directions.
2. No text is ever scored against itself. A self-pair scores exactly 1: as a same-language (l, l)
   "equivalent" it shifts same-language rollouts down under Eq. 2 and, filling the top of the
   mixture, caps them near 0.92 under Eq. 3. So (l, l) equivalents are (text, alt) of one item,
   `alt` a paraphrase in l; mismatched and hard pairs are other items' texts, as for any pair. A
   language with fewer than 2 items carrying an `alt` gets no (l, l) entry: listed in meta
   `same_language_without_alt` and in the report; online such rows are missing (Decision 6).
3. Per pair: n, mean, std of the equivalent scores (and the scores), the mismatched and hard
   means, 101 quantiles of the mixture of all three, the upper-bound anchor `ub` = the 95th
   percentile of the equivalent scores; mu_ref = the n-weighted mean of the equivalent means.
   An entry with only n, mean, std (the release's) serves mean calibration only: quantile mode
   (or `ub`) on it is an error, never a silent fallback; `require` / `load(path, mode)` check it.
4. mean (Eq. 2): cal = s - lam * (mu_pair - mu_ref), clipped to [-1, 1]; with shrinkage k,
   lam is multiplied by n / (n + k), so a pair seen few times is corrected less.
5. quantile (Eq. 3): u = Q_pair(s), the piecewise-linear empirical CDF through the stored
   quantiles; 0 below the smallest, 1 at or above the largest. With `ub` (the release's
   upper-bound normalisation) s and the quantile points become min(1, x / ub): every score at or
   above the pair's 95th equivalent percentile is 1.
6. A pair missing from the table keeps the raw score and is counted, never silently.
7. JSON with every float exact (shortest repr): a save/load round trip is bit-exact; lists of numbers
   or codes on one line. Written atomically (data/outputs.py): `path` always holds a whole table.
8. Bad input fails early, naming the file (RecordError, a ValueError): a parallel record by
   file:line:field (`alt`: null, or a non-empty string other than `text`); a parallel file where
   no id has 2 languages; a table that is not JSON (truncated), has no pairs or a bad field. An
   id in one language only is skipped and counted; a pair with fewer than 2 shared items (no
   mismatched pair) is left out and listed in meta.
9. The authors' release (Apache-2.0) publishes for mmBERT-small the mean and std of 30
   equivalent pairs for 119 unordered pairs of the 15 languages, by language name (CSV); en-en
   is absent, so missing here (Decision 6); mu_ref = 0.95635. `release_table` returns it for
   "jhu-clsp/mmBERT-small", None for any other encoder.
10. The CLI checks, before it encodes anything, --out (writable; refused if it exists, without
   --overwrite), the parallel file, the encoder directory, and every numeric flag's range.
"""
import argparse
import csv
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import torch

from data.outputs import atomic_write, check_output
from data.records import RecordError, check_encoder, check_field, check_lang, ranged, read_jsonl

MODES = ("mean", "quantile", "none")
FORMAT = "lrpo-calibration/1"
RELEASE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "calibration")
RELEASE_TABLES = {"jhu-clsp/mmBERT-small": "mmbert-small-release.json"}       # Decision 9


def pair_key(a: str, b: str) -> str:
    """The unordered pair {a, b} as 'a-b' with a <= b."""
    return "-".join(sorted((a, b)))


# --- Offline: parallel records -> table ------------------------------------------------------
def load_parallel(path: str, languages) -> list[dict]:
    """Parallel records {"id", "lang", "text"[, "alt"]} of `path`, validated (Decision 8)."""
    records, seen = [], {}
    for lineno, obj in read_jsonl(path):
        for name in ("id", "text"):
            check_field(path, lineno, obj, name)                 # data/records.py: file:line:field
        check_lang(path, lineno, obj, languages)
        key = (obj["id"], obj["lang"])
        if key in seen:
            raise RecordError(f"{path}:{lineno}: field 'id' {key[0]!r} in {key[1]!r} "
                              f"repeats line {seen[key]}")
        seen[key] = lineno
        alt = obj.get("alt")                                     # null = absent (JSON exports)
        if alt is not None and (not isinstance(alt, str) or alt.split() in ([], obj["text"].split())):
            raise RecordError(f"{path}:{lineno}: field 'alt' must be a non-empty string other than "
                              "'text' (a paraphrase of it, Decision 2)")
        records.append({"id": obj["id"], "lang": obj["lang"], "text": obj["text"]}
                       | ({} if alt is None else {"alt": alt}))
    if not records:
        raise RecordError(f"{path}: no records")
    if not group_parallel(records)[0]:
        raise RecordError(f"{path}: no id is in 2 or more languages ({len(records)} records in "
                          f"{sorted({r['lang'] for r in records})}): nothing to calibrate with")
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
    return {"n": len(eq), "mean": eq.mean().item(), "std": eq.std().item() if len(eq) > 1 else 0.0,
            "mismatch_mean": mm.mean().item(), "hard_mean": hd.mean().item() if len(hd) else None,
            "n_mixture": len(mix), "ub": torch.quantile(eq, ub_q).item(),          # Decision 3
            "quantiles": torch.quantile(mix, p).tolist(), "equiv": eq.tolist()}


# --- The table: per-pair statistics, online calibration of raw similarities (Eq. 2, Eq. 3) ---
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


def _lacks(entry: dict, mode: str, ub: bool) -> list[str]:
    """The fields `mode` needs that `entry` does not have (Decision 3)."""
    need = {"mean": ["n", "mean"], "quantile": ["quantiles"] + ["ub"] * ub, "none": []}[mode]
    return [name for name in need if entry.get(name) is None]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


FIELDS = {  # what `load` checks per pair: name -> (required, test, what it must be); Decision 3
    "n": (True, lambda x: _number(x) and x == int(x) and x > 0, "an integer > 0"),
    "mean": (True, _number, "a number"), "std": (True, _number, "a number"),
    "ub": (False, _number, "a number"),
    "quantiles": (False, lambda q: isinstance(q, list) and len(q) >= 2 and all(map(_number, q))
                  and all(a <= b for a, b in zip(q, q[1:])), "a list of 2+ nondecreasing numbers")}


@dataclass
class CalibrationTable:
    """Per unordered language pair statistics (Decision 3) and the global mu_ref."""
    pairs: dict[str, dict]
    mu_ref: float
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: dict[str, dict], meta: dict | None = None) -> "CalibrationTable":
        n = sum(e["n"] for e in pairs.values())
        if not pairs or n <= 0:
            raise ValueError("no language pairs: a calibration table needs at least one")
        mu_ref = sum(e["n"] * e["mean"] for e in pairs.values()) / n
        return cls(pairs=pairs, mu_ref=mu_ref, meta=dict(meta or {}))

    def require(self, mode: str, ub: bool = False, where: str = "calibration table") -> None:
        """RecordError unless every pair has what `mode` (and `ub`) needs: check before training."""
        if mode not in MODES:
            raise ValueError(f"calibration mode {mode!r} is not one of {list(MODES)}")
        lacking = sorted(key for key, e in self.pairs.items() if _lacks(e, mode, ub))
        if lacking:
            raise RecordError(f"{where}: {mode} calibration{' with ub' if ub else ''} needs "
                              f"{_lacks(self.pairs[lacking[0]], mode, ub)} in every pair; "
                              f"{len(lacking)} of {len(self.pairs)} pairs lack it (first "
                              f"{lacking[0]}; table source: {self.meta.get('source', 'unknown')}). "
                              "Use mean calibration, or build a table with calibrate.py --parallel")

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
                continue
            if _lacks(entry, mode, ub):                                 # Decision 3: never a fallback
                raise ValueError(f"pair {key}: {mode} calibration{' with ub' if ub else ''} needs "
                                 f"{_lacks(entry, mode, ub)}, which this table does not have")
            if mode == "mean":
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
        """Write the table as JSON (Decision 7), atomically: a temporary file, then os.replace."""
        obj = {"format": FORMAT, "mu_ref": self.mu_ref, "meta": self.meta, "pairs": self.pairs}
        text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False)
        scalar = r'-?[0-9][0-9.eE+-]*|"[A-Za-z0-9_-]*"'            # numbers, language codes
        text = re.sub(rf"\[\s*((?:{scalar})(?:,\s*(?:{scalar}))*)\s*\]",  # such lists on one line
                      lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
        with atomic_write(path) as f:                              # Decision 7: all or nothing
            f.write(text + "\n")

    @classmethod
    def load(cls, path: str, mode: str | None = None, ub: bool = False) -> "CalibrationTable":
        """A table written by `save`, validated (Decision 8); with `mode`, `require(mode, ub)` too."""
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:     # e.g. a truncated file
            raise RecordError(f"{path}: not a JSON table ({e}); rebuild it with calibrate.py") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise RecordError(f"{path}: not a calibration table (expected format {FORMAT!r})")
        pairs = obj.get("pairs")
        if not isinstance(pairs, dict) or not pairs:
            raise RecordError(f"{path}: no language pairs (field 'pairs' is empty or not an object)")
        if not _number(obj.get("mu_ref")):
            raise RecordError(f"{path}: field 'mu_ref' must be a number")
        for key, e in pairs.items():
            for name, (required, ok, what) in FIELDS.items():
                x = e.get(name) if isinstance(e, dict) else None
                if (x is None and required) or (x is not None and not ok(x)):
                    raise RecordError(f"{path}: pair {key!r}: field {name!r} must be {what}")
        table = cls(pairs=pairs, mu_ref=obj["mu_ref"], meta=obj.get("meta", {}))
        if mode is not None:
            table.require(mode, ub, where=path)
        return table

    @classmethod
    def from_release_csv(cls, path: str, names: dict[str, str]) -> "CalibrationTable":
        """The release's mean statistics (Decision 9): a CSV lang_a,lang_b,count,mean,std with
        language names; `names` maps each name to its code."""
        pairs, where = {}, {}
        with open(path, encoding="utf-8", newline="") as f:
            for lineno, row in enumerate(csv.DictReader(f), 2):
                try:
                    key = pair_key(names[row["lang_a"]], names[row["lang_b"]])
                    entry = {"n": int(row["count"]), "mean": float(row["mean"]), "std": float(row["std"])}
                except (KeyError, TypeError, ValueError) as e:
                    raise RecordError(f"{path}:{lineno}: {type(e).__name__} {e}: expected columns "
                                      f"lang_a,lang_b,count,mean,std, names in {sorted(names)}") from None
                if key in where:
                    raise RecordError(f"{path}:{lineno}: pair {key} repeats line {where[key]}")
                pairs[key], where[key] = entry, lineno
        langs = sorted({code for key in pairs for code in key.split("-")})
        meta = {"source": "the authors' release (Apache-2.0): mean and std of 30 equivalent pairs "
                          "per language pair, no quantiles (mean calibration only)",
                "release_csv": os.path.basename(path), "languages": langs,
                "pairs_missing": [pair_key(a, b) for a, b in combinations_with_replacement(langs, 2)
                                  if pair_key(a, b) not in pairs]}
        return cls.from_pairs(pairs, meta)


def release_table(encoder: str) -> CalibrationTable | None:
    """The shipped release table for `encoder` (a hub name), or None if there is none (Decision 9)."""
    name = RELEASE_TABLES.get(encoder.rstrip("/"))
    return CalibrationTable.load(os.path.join(RELEASE_DIR, name)) if name else None


def given_table(calib_file: str, encoder: str | None, mode: str, ub: bool = False) -> "CalibrationTable | None":
    """The table a run is given: `calib_file`, else the release's for `encoder` (None: no encoder has
    one), else None (the caller builds one); checked to hold what `mode` needs. None for mode "none"."""
    if mode == "none":
        return None
    table = CalibrationTable.load(calib_file) if calib_file else release_table(encoder) if encoder else None
    if table:
        table.require(mode, ub, where=calib_file or "the release's table")
    return table


# --- Offline: the builder --------------------------------------------------------------------
def build_table(records: list[dict], encoder, n_equiv: int = 30, n_mismatch: int = 10,
                n_hard: int = 2, seed: int = 0, n_quantiles: int = 101, ub_q: float = 0.95,
                progress: bool = False) -> CalibrationTable:
    """The table for every unordered pair of the languages in `records` (Decisions 1-3, 8).
    `encoder` needs `.embed(texts, progress) -> (N, D)` unit-norm rows (reward.Encoder)."""
    items, single = group_parallel(records)
    if not items:
        raise ValueError("no id is in 2 or more languages: cannot build a table")
    alts = {(r["id"], r["lang"]): r["alt"] for r in records if r.get("alt") and r["id"] in items}
    ids = sorted(items)
    langs = sorted({lang for texts in items.values() for lang in texts})
    keys = [(i, lang) for i in ids for lang in sorted(items[i])]
    row = {key: j for j, key in enumerate(keys)}
    alt_row = {key: len(keys) + j for j, key in enumerate(sorted(alts))}
    texts = [items[i][lang] for i, lang in keys] + [alts[key] for key in sorted(alts)]
    E = encoder.embed(texts, progress=progress).double()                 # (M, D)
    rng = random.Random(seed)
    pairs, too_few, no_alt = {}, [], []
    for x, a in enumerate(langs):
        for b in langs[x:]:
            if a == b:                                                   # Decision 2
                common, partner = [i for i in ids if (i, a) in alts], alt_row
            else:
                common, partner = [i for i in ids if a in items[i] and b in items[i]], row
            if len(common) < 2:
                (no_alt if a == b else too_few).append(pair_key(a, b))
                continue
            refs = rng.sample(common, min(n_equiv, len(common)))
            equiv = [(E[row[i, a]] @ E[partner[i, b]]).clamp(-1, 1) for i in refs]
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
            "pairs_too_few_items": too_few, "same_language_without_alt": no_alt,
            "n_alt": len(alts), "n_equiv": n_equiv, "n_mismatch": n_mismatch, "n_hard": n_hard,
            "seed": seed, "ub_quantile": ub_q}
    return CalibrationTable.from_pairs(pairs, meta)


# --- CLI -------------------------------------------------------------------------------------
def report(table: CalibrationTable) -> str:
    """The per-pair table and the spread of pair means before vs after mean calibration."""
    m, fmt = table.meta, lambda x: "-" if x is None else f"{x:.4f}"
    lines = [f"{m['n_items']} items in {len(m['languages'])} languages, {m['n_alt']} with an alt; "
             f"{m['skipped_single_language_ids']} ids in one language only, skipped; "
             f"{len(table.pairs)} pairs; missing: {m['pairs_too_few_items']} (fewer than 2 shared "
             f"items), {m['same_language_without_alt']} (same-language, fewer than 2 items with an "
             "alt); same-language equivalents are (text, alt) pairs (Decision 2)"
             if "n_items" in m else f"{m['source']}; {len(table.pairs)} pairs; missing: "
             f"{m['pairs_missing']}", f"mu_ref = {table.mu_ref:.5f}", "",
             "| pair | n | equivalent mean ± std | hard mean | mismatched mean |", "|---|---|---|---|---|"]
    for key in sorted(table.pairs):
        e = table.pairs[key]
        lines.append(f"| {key} | {e['n']} | {e['mean']:.4f} ± {e['std']:.4f} | "
                     f"{fmt(e.get('hard_mean'))} | {fmt(e.get('mismatch_mean'))} |")
    before, after = [], []
    for key, e in table.pairs.items():
        eq = torch.tensor(e.get("equiv", [e["mean"]]), dtype=torch.float64)
        before.append(eq.mean().item())
        a, b = key.split("-")
        after.append(table.calibrate(eq, [a] * len(eq), [b] * len(eq))[0].mean().item())
    lines += ["", f"spread of equivalent pair means: raw {min(before):.4f}..{max(before):.4f} "
              f"(range {max(before) - min(before):.4f}) -> mean-calibrated "
              f"{min(after):.4f}..{max(after):.4f} (range {max(after) - min(after):.4f})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> CalibrationTable:
    INT1 = ranged(int, lo=1)
    parser = argparse.ArgumentParser(description="Build a calibration table (paper §3.2, §5.4).")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--parallel", help="parallel JSONL: {id, lang, text[, alt]} per line")
    src.add_argument("--from_release", help="convert the release's CSV of mean statistics instead")
    parser.add_argument("--encoder", default="jhu-clsp/mmBERT-small", help="hub name or local dir")
    parser.add_argument("--out", required=True, help="where to write the JSON table (Decision 10)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--n_equiv", type=INT1, default=30, help="equivalent pairs per language pair (>= 1)")
    parser.add_argument("--n_mismatch", type=INT1, default=10, help="random mismatches per reference (>= 1)")
    parser.add_argument("--n_hard", type=ranged(int, lo=0), default=2, help="hardest mismatches per reference (>= 0)")
    parser.add_argument("--seed", type=ranged(int, lo=0), default=0, help="sampling seed (>= 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="encoder device")
    parser.add_argument("--batch_size", type=INT1, default=128, help="encoder batch size (>= 1)")
    args = parser.parse_args(argv)

    from reward import LANGUAGE_NAMES, LANGUAGES, Encoder    # the CLI's languages and encoder
    try:                                                         # bad input: one line, no traceback
        check_output(args.out, overwrite=args.overwrite)         # Decision 10: before any encoding
        if args.from_release:
            names = {name: code for code, name in LANGUAGE_NAMES.items()}
            table = CalibrationTable.from_release_csv(args.from_release, names)
            table.meta.update(encoder=args.encoder)
        else:
            records = load_parallel(args.parallel, LANGUAGES)
            check_encoder(args.encoder)
            encoder = Encoder(args.encoder, device=args.device, batch_size=args.batch_size)
            table = build_table(records, encoder, args.n_equiv, args.n_mismatch, args.n_hard,
                                args.seed, progress=True)
            table.meta.update(encoder=args.encoder, parallel=args.parallel)
        table.save(args.out)
    except (ValueError, OSError) as e:
        raise SystemExit(f"calibrate.py: {e}")
    print(f"{report(table)}\nwrote {args.out}")
    return table


if __name__ == "__main__":
    main()
