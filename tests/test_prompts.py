"""data/prompts.py: how a rollout's language is asked for (paper §5.4), on three kinds of chat template."""
import copy

import pytest

from data.prompts import REQUESTS, SYSTEM_PROMPTS, answer_text, build_prompt, messages, prompt_tokens
from reward import LANGUAGES, detect_language

# Gemma-3's template, shortened: no system turn, a system message is folded into the first user turn.
GEMMA3 = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}"
    "{%- set prefix = messages[0]['content'] + '\n\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}{%- set role = 'model' if m['role'] == 'assistant' else m['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}")
# Gemma-2's: it refuses a system turn.
REFUSES = GEMMA3.replace("{%- set prefix = messages[0]['content'] + '\n\n' -%}",
                         "{{ raise_exception('System role not supported') }}")
# A template that silently drops anything but user and assistant turns.
DROPS = ("{%- for m in messages if m['role'] != 'system' -%}{{ '<|' + m['role'] + '|>' + m['content'] + '\n' }}"
         "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- endif -%}")


@pytest.fixture
def with_template(tiny_tokenizer):
    def make(template):
        tok = copy.deepcopy(tiny_tokenizer)
        tok.chat_template = template
        return tok
    return make


def test_one_system_prompt_per_language_written_in_it():
    assert sorted(SYSTEM_PROMPTS) == sorted(LANGUAGES)
    for lang, text in SYSTEM_PROMPTS.items():
        assert detect_language(text) == lang, (lang, text)


def test_requests(tiny_tokenizer):
    q = "Wie hoch ist die Zugspitze?"
    assert messages(q, "ja", "tag") == [{"role": "user", "content": q + "\n<|out_lang_ja|>"}]
    assert messages(q, "ja", "system")[0] == {"role": "system", "content": SYSTEM_PROMPTS["ja"]}
    assert messages(q, "ja", "system_en")[0]["content"].endswith("Answer in Japanese.")
    assert messages(q, "ja", "none") == [{"role": "user", "content": q}]
    with pytest.raises(ValueError, match="not one of"):
        messages(q, "ja", "shout")
    chatml = build_prompt(tiny_tokenizer, q, "ko", "system")                  # ChatML has a system turn
    assert chatml.startswith(f"<|im_start|>system\n{SYSTEM_PROMPTS['ko']}<|im_end|>\n<|im_start|>user\n{q}")
    assert chatml.endswith("<|im_start|>assistant\n")
    assert set(REQUESTS) == {"tag", "system", "system_en", "none"}


@pytest.mark.parametrize("template", [GEMMA3, REFUSES, DROPS])
def test_templates_without_a_system_turn_get_it_in_the_first_user_turn(with_template, template):
    tok, q = with_template(template), "ما هي عاصمة المغرب؟"
    prompt = build_prompt(tok, q, "fr", "system")
    assert SYSTEM_PROMPTS["fr"] + "\n\n" + q in prompt, prompt            # as Gemma-3 folds it
    assert prompt.count(SYSTEM_PROMPTS["fr"]) == 1
    if template is GEMMA3:                                                 # its own rendering, untouched
        native = tok.apply_chat_template(messages(q, "fr", "system"), tokenize=False, add_generation_prompt=True)
        assert prompt == native


@pytest.mark.parametrize("template", [None, GEMMA3, REFUSES])
def test_answer_text_ends_with_the_templates_end_of_turn(with_template, tiny_tokenizer, template):
    tok = tiny_tokenizer if template is None else with_template(template)
    answer = "Rabat est la capitale du Maroc."
    for how in ("tag", "system"):
        target = answer_text(tok, "ما هي عاصمة المغرب؟", "fr", answer, how)
        assert target.startswith(answer)
        assert target.endswith("<|im_end|>" if template is None else "<end_of_turn>"), target
    lengths = [prompt_tokens(tok, "Quelle heure est-il ?", [lang], "system") for lang in LANGUAGES]
    assert prompt_tokens(tok, "Quelle heure est-il ?", LANGUAGES, "system") == max(lengths)
