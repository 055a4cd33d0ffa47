"""The tiny models load through the same from_pretrained path a hub name takes; the tokenizer trains on
capped texts (data/tiny.py, decision 6); the Llama and Gemma-3 policies mimic their families (decision 7)."""
import torch


def test_tiny_models_round_trip(tiny_dirs, tiny_tokenizer):
    from transformers import AutoModel, AutoModelForCausalLM
    text = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "你好\n<|out_lang_ja|>"}],
                                              tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tiny_tokenizer(text, return_tensors="pt")["input_ids"]
    assert tiny_tokenizer.decode(ids[0]) == text  # byte-level BPE round-trips every script
    policy = AutoModelForCausalLM.from_pretrained(tiny_dirs["policy"])
    assert policy.config.model_type == "qwen2"
    assert policy(ids).logits.shape == (1, ids.shape[1], len(tiny_tokenizer))
    encoder = AutoModel.from_pretrained(tiny_dirs["encoder"])
    assert encoder.config.model_type == "modernbert"
    hidden = encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert hidden.shape == (1, ids.shape[1], encoder.config.hidden_size)


def test_tokenizer_training_texts_are_capped():
    from data.tiny import capped_texts
    texts = ["a" * 10, "b" * 5000, "c" * 30, "d" * 20]
    kept, cut, left_out = capped_texts(texts, max_chars=100, max_total=140)
    assert kept == ["a" * 10, "b" * 100, "c" * 30] and cut == 1 and left_out == 1   # 140 + 20 > 140
    assert capped_texts(["x" * 7], 100, 100) == (["x" * 7], 0, 0)


def test_a_two_million_character_token_builds_a_tokenizer(tmp_path):
    """Uncapped, BPE training on this one 2M-character pre-token took over 400 s; capped, about 1 s."""
    import random
    from transformers import AutoTokenizer
    from data.tiny import build_tokenizer
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(2_000_000))
    tok = AutoTokenizer.from_pretrained(build_tokenizer([word, "Hello world"], str(tmp_path)))
    assert tok.decode(tok("Grüße, 世界")["input_ids"]) == "Grüße, 世界"


def test_policy_families_mimic_their_templates_and_stops(tiny_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from data.tiny import build_policy
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    want = {
        "llama": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
                  ["<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"], "<|eot_id|>"),
        # Gemma-3 has no system role: the system message opens the first user turn
        "gemma3": ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
                   ["<eos>", "<end_of_turn>"], "<eos>"),
    }
    for family, (text, stops, eos) in want.items():
        path = build_policy(tiny_dirs["tokenizer"], str(tmp_path / family), family=family)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
        assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == text
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text and tok.eos_token == eos
        for s in stops:                                               # one token each
            assert len(tok(s, add_special_tokens=False)["input_ids"]) == 1
        assert sorted(model.generation_config.eos_token_id) == sorted(tok.convert_tokens_to_ids(stops))
        assert model.config.vocab_size == len(tok)
        assert model(torch.tensor([ids])).logits.shape == (1, len(ids), len(tok))
    gemma = AutoModelForCausalLM.from_pretrained(str(tmp_path / "gemma3"))
    assert gemma.config.model_type == "gemma3_text"
    assert set(gemma.config.layer_types) == {"sliding_attention", "full_attention"}
    assert AutoTokenizer.from_pretrained(str(tmp_path / "llama")).pad_token is None   # as the real one


def test_the_demo_tokenizer_learns_from_the_corpus_it_always_did(tmp_path, monkeypatch):
    """The demo's metrics depend on the tiny tokenizer, so its corpus is pinned: the items' questions and
    references, then the warm-start answers, then each parallel text and its alternative (or "")."""
    import data.tiny as tiny
    seen = []
    monkeypatch.setattr(tiny, "build_tiny", lambda out, texts, seed: seen.append((list(texts), seed)))
    items = [{"question": "q1", "reference": "r1", "topic": "t"}, {"question": "q2", "reference": "r2"}]
    sft = [{"answer": "a1", "question": "ignored"}]
    par = [{"text": "p1", "alt": "x1"}, {"text": "p2"}]
    policy, encoder = tiny.tiny_models(str(tmp_path), items, sft, par, seed=7)
    assert seen == [(["q1", "r1", "q2", "r2", "a1", "p1", "x1", "p2", ""], 7)]
    assert (policy, encoder) == (str(tmp_path / "policy"), str(tmp_path / "encoder"))
    tiny.tiny_models(str(tmp_path), items, sft, par, seed=7, build=False)   # not rank 0: builds nothing
    assert len(seen) == 1
