"""The tiny models load through the same from_pretrained path a hub name takes."""
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
