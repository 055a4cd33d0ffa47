"""
Tiny models built from configs, for the CPU demo (`lrpo.py --tiny`) and the tests.

    from data.tiny import build_tiny
    paths = build_tiny("out/tiny", texts)   # {"tokenizer": ..., "policy": ..., "encoder": ...}

Nothing here is downloaded: a byte-level BPE tokenizer is trained with `tokenizers` on the given
multilingual text, a tiny Qwen2 policy and a tiny ModernBERT encoder are made from configs, and
every piece is written with `save_pretrained` (safetensors). Callers then load them with
`AutoTokenizer` / `AutoModelForCausalLM` / `AutoModel.from_pretrained`, the same code path a hub
name such as Qwen/Qwen2.5-1.5B-Instruct takes.

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
"""
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

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


def build_tokenizer(texts: list[str], out_dir: str, vocab_size: int = 4000) -> str:
    """Train a byte-level BPE on `texts` (+ SEED_TEXT), give it a chat template, save it."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts) + SEED_TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


def build_policy(tokenizer_dir: str, out_dir: str, hidden: int = 128, layers: int = 2,
                 heads: int = 4, kv_heads: int = 2, seed: int = 0) -> str:
    """A tiny Qwen2ForCausalLM (Qwen2.5's architecture) sized to the tokenizer, saved with its tokenizer."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tok.convert_tokens_to_ids(BOS),
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
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


def build_tiny(out_dir: str, texts: list[str] = (), vocab_size: int = 4000,
               seed: int = 0) -> dict:
    """Tokenizer, policy and encoder under `out_dir`; returns their directories."""
    tok = build_tokenizer(texts, os.path.join(out_dir, "tokenizer"), vocab_size)
    return {"tokenizer": tok,
            "policy": build_policy(tok, os.path.join(out_dir, "policy"), seed=seed),
            "encoder": build_encoder(tok, os.path.join(out_dir, "encoder"), seed=seed)}
