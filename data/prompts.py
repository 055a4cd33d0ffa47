"""
How a rollout's language is requested (paper §3.1, §5.4), and the chat text around the request.

    from data.prompts import build_prompt, answer_text
    prompt = build_prompt(tok, question, "ja", how="tag")             # ends with the generation prompt
    target = answer_text(tok, question, "ja", answer, how="tag")      # what a warm start teaches after it

Decisions:
1. `tag` (LRPO, with the warm start of §5.4): the plain-text tag "\\n<|out_lang_xx|>" after the
   question. No token is added to the vocabulary: the tag is text the warm start teaches.
2. `system` (LRPO-Zero, §5.4): a system prompt written in the target language, the base prompt
   "You are a helpful assistant." translated plus an explicit instruction to answer in that
   language, one per router language (SYSTEM_PROMPTS; the authors' release keeps one per language).
3. `system_en`: the same request in English for every language ("... Answer in Japanese."), kept
   for comparison only. `none`: the bare question (the GRPO baseline, every rollout in l_x).
4. A chat template with no system role gets the system text as its own template would: rendered
   with a system message when the template accepts one and keeps its text (Gemma-3's folds it into
   the first user turn itself), else folded by hand the way Gemma-3 does: system text, a blank
   line, then the question, in the first user turn.
5. answer_text ends with the template's end of turn (<|im_end|>, <end_of_turn>, <|eot_id|>), so a
   warm start teaches the stop the rollouts use; a template that cannot render an assistant turn
   gets the tokenizer's EOS instead.
"""
import jinja2

from reward import LANGUAGE_NAMES, detect_language

REQUESTS = ("tag", "system", "system_en", "none")

SYSTEM_PROMPTS = {  # "You are a helpful assistant. Always answer in <language>.", in that language
    "ar": "أنت مساعد مفيد. أجب دائمًا باللغة العربية.",
    "de": "Du bist ein hilfreicher Assistent. Antworte immer auf Deutsch.",
    "en": "You are a helpful assistant. Always answer in English.",
    "es": "Eres un asistente útil. Responde siempre en español.",
    "fr": "Tu es un assistant utile. Réponds toujours en français.",
    "id": "Anda adalah asisten yang membantu. Selalu jawab dalam bahasa Indonesia.",
    "it": "Sei un assistente utile. Rispondi sempre in italiano.",
    "ja": "あなたは役に立つアシスタントです。必ず日本語で答えてください。",
    "ko": "당신은 도움이 되는 어시스턴트입니다. 항상 한국어로 답하세요.",
    "nl": "Je bent een behulpzame assistent. Antwoord altijd in het Nederlands.",
    "pl": "Jesteś pomocnym asystentem. Zawsze odpowiadaj po polsku.",
    "pt": "Você é um assistente prestativo. Responda sempre em português.",
    "ru": "Ты полезный ассистент. Всегда отвечай на русском языке.",
    "vi": "Bạn là một trợ lý hữu ích. Luôn trả lời bằng tiếng Việt.",
    "zh": "你是一个乐于助人的助手。请始终用中文回答。",
}


def messages(question: str, lang: str, how: str = "tag") -> list[dict]:
    """The chat asking for an answer to `question` in `lang` (Decisions 1-3)."""
    if how == "tag":
        return [{"role": "user", "content": f"{question}\n<|out_lang_{lang}|>"}]
    if how == "system":
        return [{"role": "system", "content": SYSTEM_PROMPTS[lang]}, {"role": "user", "content": question}]
    if how == "system_en":
        system = f"You are a helpful assistant. Answer in {LANGUAGE_NAMES[lang]}."
        return [{"role": "system", "content": system}, {"role": "user", "content": question}]
    if how == "none":
        return [{"role": "user", "content": question}]
    raise ValueError(f"language request {how!r} is not one of {REQUESTS}")


def _render(tok, chat: list[dict], generation_prompt: bool) -> str:
    """apply_chat_template; a system turn the template rejects or drops is folded (Decision 4)."""
    if chat[0]["role"] == "system":
        try:
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)
            if chat[0]["content"] in text:
                return text
        except jinja2.TemplateError:                        # "System role not supported" and kin
            pass
        user = {"role": "user", "content": f"{chat[0]['content']}\n\n{chat[1]['content']}"}
        chat = [user] + chat[2:]
    return tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=generation_prompt)


def build_prompt(tok, question: str, lang: str, how: str = "tag") -> str:
    """The chat-templated prompt, ending with the assistant's generation prompt."""
    return _render(tok, messages(question, lang, how), True)


def answer_text(tok, question: str, lang: str, answer: str, how: str = "tag") -> str:
    """What the model should write after build_prompt(...): the answer and the end of turn (Decision 5)."""
    prompt = build_prompt(tok, question, lang, how)
    full = _render(tok, messages(question, lang, how) + [{"role": "assistant", "content": answer}], False)
    return full[len(prompt):].rstrip() if full.startswith(prompt) else answer + tok.eos_token


def prompt_tokens(tok, question: str, langs, how: str = "tag") -> int:
    """Prompt length in tokens: the longest over the languages it may be asked in."""
    prompts = [build_prompt(tok, question, lang, how) for lang in langs]
    return max(map(len, tok(prompts, add_special_tokens=False)["input_ids"]))


def prepare_items(tok, items: list[dict], how: str, max_len: int, languages) -> tuple[list[dict], int, int]:
    """Training or validation items ready for rollouts: those whose prompt fits `max_len` tokens in
    every language of `languages` (the others are counted, never truncated: the request is at their
    end), each given "gate_lang", the language its answer is asked, gated and calibrated in: a
    Translation item's reference's own (detected) language, any other item's own language.
    -> (items, count skipped as too long, Translation references detected in no router language)"""
    fits = [prompt_tokens(tok, it["question"], languages, how) <= max_len for it in items]
    kept = [it for it, ok in zip(items, fits) if ok]
    found = {it["id"]: detect_language(it["reference"]) for it in kept if it["topic"] == "Translation"}
    for it in kept:
        it["gate_lang"] = found[it["id"]] if found.get(it["id"]) in languages else it["lang"]
    return kept, fits.count(False), sum(lang not in languages for lang in found.values())
