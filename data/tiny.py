"""
Tiny models built from configs, for the CPU demo (`lrpo.py --tiny`) and the tests.

    from data.tiny import build_tiny, build_policy
    paths = build_tiny("out/tiny", texts)   # {"tokenizer": ..., "policy": ..., "encoder": ...}
    gemma = build_policy(paths["tokenizer"], "out/tiny/gemma3", family="gemma3")

Nothing here is downloaded: a byte-level BPE tokenizer is trained with `tokenizers` on the given
multilingual text, a tiny policy (Qwen2 by default; Llama-3.2 or Gemma-3 shaped on request) and a
tiny ModernBERT encoder are made from configs, and every piece is written with `save_pretrained`
(safetensors). Callers then load them with `AutoTokenizer` / `AutoModelForCausalLM` /
`AutoModel.from_pretrained`, the same code path a hub name such as Qwen/Qwen2.5-1.5B-Instruct takes.

Decisions:
1. Byte-level BPE: every script of the 15 router languages is representable, so no text is ever
   mapped to an unknown token, and decoding round-trips exactly.
2. A ChatML chat template (`<|im_start|>role ... <|im_end|>`), the one Qwen2.5 uses, so the prompt
   building code is the same for the tiny policy and the real one. `<|im_end|>` is EOS.
3. The encoder shares the policy's tokenizer: mean pooling only needs an attention mask.
4. Building is deterministic for a given seed and text, so the demo and tests are reproducible.
5. Vocabulary 4,000 (fewer if the text has fewer merges): with whole-word pieces the tiny policy's
   samples are recognisable words, so language ID can gate them. Measured with `lrpo.py --tiny`
   (1,000 SFT steps, then 120 RL steps, one process, with the warm start's prompts then cut to 160
   tokens): vocabulary 2,000 gave r_lang 0.26 -> 0.54
   over training, 4,000 gave 0.44 -> 0.64; at 800 the warm-started policy's gate rate was 0.19.
6. The tokenizer trains on at most the first 2,000 characters of each text and 1,000,000 characters
   in all (SEED_TEXT always included): BPE training time grows with the length of the longest
   pre-token, and one 2-million-character "word" took over 400 s. The sample sets (222k characters,
   texts up to 400) are untouched by the caps; what is cut or left out is counted and printed.
7. Policy families (`build_policy(family=...)`), each with the special tokens, chat template and
   stop ids of the real family, so code written against one keeps working on the others:
   - "qwen2" (default): Qwen2.5's ChatML (decision 2); EOS <|im_end|>.
   - "llama": Llama-3.2 (tied embeddings, llama3 RoPE scaling): <|begin_of_text|> then turns of
     <|start_header_id|>role<|end_header_id|>, a blank line, the text, <|eot_id|>; tokenizer EOS
     <|eot_id|>, no pad token (as the real one); generation_config stops at <|end_of_text|>,
     <|eom_id|> and <|eot_id|>.
   - "gemma3": Gemma-3 text-only (Gemma3ForCausalLM), sliding-window layers (window 8 tokens, every
     layer but each sixth and the last) and full-attention ones; <bos> then
     <start_of_turn>user|model ... <end_of_turn> turns with NO system role: a system message is
     folded into the first user turn, as the real template does; tokenizer EOS <eos>, pad <pad>;
     generation_config stops at <eos> and <end_of_turn>.
   The policy directory holds the family's tokenizer (the shared BPE plus its special tokens): load
   the tokenizer from there.
"""
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eom_id|>", "<|eot_id|>"]
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
GEMMA_TOKENS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for m in turns %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ prefix if loop.first else '' }}{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
FAMILIES = ("qwen2", "llama", "gemma3")

# A few sentences per router language, so a tokenizer trained with no other text still learns
# merges for every script. The demo adds the sample training and parallel sets to this.
SEED_TEXT = [
    "The weather is nice today, so we will walk to the market and buy fresh bread.",
    "Das Wetter ist heute schön, deshalb gehen wir zum Markt und kaufen frisches Brot.",
    "Hoy hace buen tiempo, así que iremos al mercado a comprar pan fresco.",
    "Il fait beau aujourd'hui, alors nous irons au marché acheter du pain frais.",
    "Oggi il tempo è bello, quindi andremo al mercato a comprare pane fresco.",
    "Het weer is vandaag mooi, dus we lopen naar de markt om vers brood te kopen.",
    "Dziś jest ładna pogoda, więc pójdziemy na targ kupić świeży chleb.",
    "O tempo está bom hoje, então vamos ao mercado comprar pão fresco.",
    "Сегодня хорошая погода, поэтому мы пойдём на рынок за свежим хлебом.",
    "الطقس جميل اليوم، لذلك سنمشي إلى السوق لشراء خبز طازج.",
    "Cuaca hari ini cerah, jadi kami akan berjalan ke pasar untuk membeli roti segar.",
    "Hôm nay trời đẹp, vì vậy chúng tôi sẽ đi bộ ra chợ mua bánh mì tươi.",
    "今天天气很好，所以我们要走路去市场买新鲜的面包。",
    "今日は天気が良いので、市場まで歩いて新鮮なパンを買いに行きます。",
    "오늘은 날씨가 좋아서 시장에 걸어가서 신선한 빵을 살 거예요.",
]


def capped_texts(texts: list[str], max_chars: int = 2000, max_total: int = 1_000_000
                 ) -> tuple[list[str], int, int]:
    """Decision 6: each text cut to max_chars, then texts kept while the total fits max_total.
    -> (texts to train on, how many were cut, how many were left out)."""
    kept, total, cut = [], 0, 0
    for t in texts:
        if len(t) > max_chars:
            t, cut = t[:max_chars], cut + 1
        if total + len(t) > max_total:
            break
        kept.append(t)
        total += len(t)
    return kept, cut, len(texts) - len(kept)


def build_tokenizer(texts: list[str], out_dir: str, vocab_size: int = 4000) -> str:
    """Train a byte-level BPE on `texts` (capped, decision 6) + SEED_TEXT, give it a chat template, save it."""
    from transformers import PreTrainedTokenizerFast

    texts, cut, left_out = capped_texts(list(texts))
    if cut or left_out:
        print(f"tiny tokenizer: {cut} texts cut to their first 2,000 characters, {left_out} texts beyond "
              "the 1,000,000-character budget left out (data/tiny.py, decision 6)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts + SEED_TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


def family_tokenizer(tokenizer_dir: str, family: str):
    """The shared BPE dressed as `family` (decision 7): special tokens, BOS/EOS/pad, chat template."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    if family == "llama":
        tok.add_special_tokens({"additional_special_tokens": LLAMA_TOKENS})
        tok.bos_token, tok.eos_token, tok.pad_token = "<|begin_of_text|>", "<|eot_id|>", None
        tok.chat_template = LLAMA_TEMPLATE
    elif family == "gemma3":
        tok.add_special_tokens({"additional_special_tokens": GEMMA_TOKENS})
        tok.bos_token, tok.eos_token, tok.pad_token = "<bos>", "<eos>", "<pad>"
        tok.chat_template = GEMMA_TEMPLATE
    elif family != "qwen2":
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return tok


def _policy_config(family: str, tok, hidden: int, layers: int, heads: int, kv_heads: int):
    """The config of a tiny `family` policy sized to `tok`, and its stop ids (decision 7)."""
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    size = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                max_position_embeddings=1024, tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    ids = tok.convert_tokens_to_ids
    if family == "qwen2":
        return Qwen2Config(**size, bos_token_id=ids(BOS), eos_token_id=tok.eos_token_id), None
    if family == "llama":
        stops = [ids("<|end_of_text|>"), ids("<|eom_id|>"), ids("<|eot_id|>")]
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 128}
        return LlamaConfig(**size, rope_parameters=rope, bos_token_id=tok.bos_token_id, eos_token_id=stops), stops
    if layers < 2:
        raise ValueError(f"a gemma3 policy needs >= 2 layers (sliding and full), got {layers}")
    types = ["full_attention" if (i + 1) % 6 == 0 or i == layers - 1 else "sliding_attention"
             for i in range(layers)]
    stops = [tok.eos_token_id, ids("<end_of_turn>")]
    config = Gemma3TextConfig(**size, head_dim=hidden // heads, query_pre_attn_scalar=hidden // heads,
                              sliding_window=8, layer_types=types, bos_token_id=tok.bos_token_id,
                              eos_token_id=stops)
    return config, stops


def build_policy(tokenizer_dir: str, out_dir: str, hidden: int = 128, layers: int = 2,
                 heads: int = 4, kv_heads: int = 2, seed: int = 0, family: str = "qwen2") -> str:
    """A tiny causal LM of `family` ("qwen2": Qwen2ForCausalLM, Qwen2.5's architecture; "llama";
    "gemma3"; decision 7) sized to the tokenizer, saved with its family's tokenizer."""
    from transformers import AutoModelForCausalLM

    tok = family_tokenizer(tokenizer_dir, family)
    config, stops = _policy_config(family, tok, hidden, layers, heads, kv_heads)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if stops is not None:
        model.generation_config.eos_token_id = stops
        model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def build_encoder(tokenizer_dir: str, out_dir: str, hidden: int = 64, layers: int = 2,
                  heads: int = 4, seed: int = 0) -> str:
    """A tiny ModernBertModel (mmBERT's architecture) sized to the tokenizer, saved with its tokenizer."""
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    bos = tok.convert_tokens_to_ids(BOS)
    config = ModernBertConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              max_position_embeddings=1024, global_attn_every_n_layers=1,
                              pad_token_id=tok.pad_token_id, bos_token_id=bos, cls_token_id=bos,
                              eos_token_id=tok.eos_token_id, sep_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    ModernBertModel(config).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def tiny_models(out_dir: str, items: list[dict], sft_records: list[dict], par_records: list[dict], seed: int,
                build: bool = True) -> tuple[str, str]:
    """lrpo.py --tiny's policy and encoder in out_dir (OUT/tiny), unless already there (a resumed run):
    the tokenizer learns from the training items' questions and references, the warm-start answers
    and the parallel texts; only the caller with build=True (rank 0) writes.
    -> (policy directory, encoder directory)"""
    if build and not os.path.exists(os.path.join(out_dir, "encoder", "config.json")):
        texts = [t for it in items for t in (it["question"], it["reference"])] + [r["answer"] for r in sft_records] + \
                [t for r in par_records for t in (r["text"], r.get("alt") or "")]
        build_tiny(out_dir, texts, seed=seed)
    return os.path.join(out_dir, "policy"), os.path.join(out_dir, "encoder")


def build_tiny(out_dir: str, texts: list[str] = (), vocab_size: int = 4000,
               seed: int = 0, family: str = "qwen2") -> dict:
    """Tokenizer, policy (of `family`) and encoder under `out_dir`; returns their directories."""
    tok = build_tokenizer(texts, os.path.join(out_dir, "tokenizer"), vocab_size)
    return {"tokenizer": tok,
            "policy": build_policy(tok, os.path.join(out_dir, "policy"), seed=seed, family=family),
            "encoder": build_encoder(tok, os.path.join(out_dir, "encoder"), seed=seed)}
