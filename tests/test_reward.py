"""
reward.py: the sentence encoder (masked mean pooling), language ID and gate, compute_rewards.

    python -m pytest -q tests/test_reward.py

The language-ID set below was written for this test: 6 full sentences per router language on
everyday topics, with Spanish / Portuguese and Japanese / Chinese sentences that say the same
thing in the same script (the near misses a character-n-gram classifier is most likely to get
wrong), including a Japanese sentence written almost entirely in kanji.
"""
import numpy as np
import pytest
import torch

from calibrate import CalibrationTable, pair_stats
from reward import (LANGUAGE_NAMES, LANGUAGES, Encoder, compute_rewards, detect_language,
                    language_gate)

SENTENCES = {
    "ar": [
        "يجب أن تشرب الكثير من الماء عندما يكون الطقس حارا جدا في الصيف.",
        "افتتحت المكتبة العامة في مدينتنا قسما جديدا لكتب الأطفال الأسبوع الماضي.",
        "لحل هذه المسألة، اطرح العدد الأصغر من الأكبر ثم اقسم النتيجة على اثنين.",
        "يعتبر النيل من أطول الأنهار في العالم ويمر عبر عدة دول أفريقية.",
        "إذا شعرت بالتعب أثناء العمل، خذ استراحة قصيرة وامش قليلا في الهواء الطلق.",
        "تعلمت أختي الطبخ من جدتي التي كانت تعد أشهى الأطباق في العائلة.",
    ],
    "de": [
        "Wenn du morgens früh aufstehst, hast du mehr Zeit für ein ruhiges Frühstück.",
        "Die Hauptstadt von Deutschland ist Berlin, und dort leben etwa dreieinhalb Millionen Menschen.",
        "Um den Kuchen zu backen, musst du zuerst die Butter mit dem Zucker verrühren.",
        "Unser Nachbar repariert am Wochenende gern alte Fahrräder in seiner Garage.",
        "Bitte schließe das Fenster, bevor du das Haus verlässt, denn es soll regnen.",
        "Regelmäßige Bewegung und ausreichend Schlaf sind wichtig für die Gesundheit.",
    ],
    "en": [
        "If you want to learn a new language, practice a little every day instead of cramming once a week.",
        "The museum downtown is closed on Mondays, but it stays open late on Fridays.",
        "To reset your password, click the link in the email and follow the instructions.",
        "Mount Everest is the highest mountain on Earth, rising nearly nine kilometres above sea level.",
        "My grandmother always said that a good breakfast is the key to a productive morning.",
        "Before you sign any contract, read it carefully and ask questions about anything unclear.",
    ],
    "es": [
        "Si quieres aprender a tocar la guitarra, practica un poco todos los días.",
        "La biblioteca del barrio abre a las nueve de la mañana y cierra a las ocho de la noche.",
        "Para preparar una buena tortilla, bate los huevos y fríe las patatas a fuego lento.",
        "Mi hermano trabaja en un hospital y a menudo tiene turnos de noche.",
        "Ayer llovió tanto que las calles del centro quedaron completamente inundadas.",
        "El río Amazonas atraviesa varios países de América del Sur y es muy caudaloso.",
    ],
    "fr": [
        "Si tu veux apprendre à jouer de la guitare, entraîne-toi un peu chaque jour.",
        "La boulangerie au coin de la rue vend les meilleurs croissants du quartier.",
        "Pour économiser de l'énergie, éteignez les lumières quand vous quittez une pièce.",
        "Mon frère est parti en vacances en Bretagne avec ses amis la semaine dernière.",
        "La Seine traverse Paris d'est en ouest avant de se jeter dans la Manche.",
        "Il faut laisser reposer la pâte pendant une heure avant de la cuire au four.",
    ],
    "id": [
        "Jika kamu ingin belajar bahasa baru, berlatihlah sedikit setiap hari.",
        "Perpustakaan kota buka dari jam delapan pagi sampai jam lima sore.",
        "Untuk membuat nasi goreng, tumis bawang putih lalu masukkan nasi dan kecap manis.",
        "Adik saya sedang belajar untuk ujian masuk universitas bulan depan.",
        "Jakarta adalah ibu kota Indonesia dan merupakan kota terbesar di negara ini.",
        "Jangan lupa membawa payung karena sore ini kemungkinan akan turun hujan.",
    ],
    "it": [
        "Se vuoi imparare a suonare la chitarra, esercitati un po' ogni giorno.",
        "La biblioteca del quartiere apre alle nove del mattino e chiude alle otto di sera.",
        "Per preparare un buon risotto, tosta il riso e aggiungi il brodo poco alla volta.",
        "Mio fratello lavora in ospedale e spesso fa i turni di notte.",
        "Il Colosseo è uno dei monumenti più famosi di Roma e attira milioni di turisti.",
        "Prima di partire per un lungo viaggio, controlla sempre la pressione delle gomme.",
    ],
    "ja": [
        "毎日少しずつ練習すれば、新しい言語も必ず上達します。",
        "駅前の図書館は午前九時に開いて、午後八時に閉まります。",
        "美味しいカレーを作るには、玉ねぎをじっくり炒めることが大切です。",
        "兄は病院で働いていて、よく夜勤をしています。",
        "富士山は日本で一番高い山で、標高は三千七百七十六メートルです。",
        "経済成長率は前年比で二パーセント上昇したと政府が発表した。",
    ],
    "ko": [
        "새로운 언어를 배우고 싶다면 매일 조금씩 연습하는 것이 좋습니다.",
        "역 앞에 있는 도서관은 오전 아홉 시에 문을 열고 오후 여덟 시에 닫습니다.",
        "맛있는 김치찌개를 만들려면 잘 익은 김치를 사용해야 합니다.",
        "우리 형은 병원에서 일하고 자주 야간 근무를 합니다.",
        "서울은 한국의 수도이며 천만 명 가까운 사람들이 살고 있습니다.",
        "외출하기 전에 창문을 꼭 닫아 주세요. 오후에 비가 온다고 합니다.",
    ],
    "nl": [
        "Als je een nieuwe taal wilt leren, oefen dan elke dag een beetje.",
        "De bibliotheek in onze wijk gaat om negen uur open en sluit om acht uur 's avonds.",
        "Voor een goede erwtensoep moet je de soep minstens twee uur laten trekken.",
        "Mijn broer werkt in het ziekenhuis en heeft vaak nachtdiensten.",
        "Amsterdam is de hoofdstad van Nederland en staat bekend om zijn grachten.",
        "Vergeet niet je fiets op slot te zetten als je naar de winkel gaat.",
    ],
    "pl": [
        "Jeśli chcesz nauczyć się nowego języka, ćwicz trochę każdego dnia.",
        "Biblioteka na naszym osiedlu jest otwarta od dziewiątej rano do ósmej wieczorem.",
        "Aby przygotować dobre pierogi, trzeba cienko rozwałkować ciasto.",
        "Mój brat pracuje w szpitalu i często ma nocne dyżury.",
        "Wisła jest najdłuższą rzeką w Polsce i przepływa przez Warszawę i Kraków.",
        "Przed wyjściem z domu sprawdź, czy wyłączyłeś żelazko i zamknąłeś okna.",
    ],
    "pt": [
        "Se você quer aprender a tocar violão, pratique um pouco todos os dias.",
        "A biblioteca do bairro abre às nove da manhã e fecha às oito da noite.",
        "Para preparar uma boa omelete, bata os ovos e frite as batatas em fogo baixo.",
        "Meu irmão trabalha em um hospital e muitas vezes faz plantões noturnos.",
        "Ontem choveu tanto que as ruas do centro ficaram completamente alagadas.",
        "O rio Amazonas atravessa vários países da América do Sul e é muito caudaloso.",
    ],
    "ru": [
        "Если вы хотите выучить новый язык, занимайтесь понемногу каждый день.",
        "Библиотека в нашем районе открывается в девять утра и закрывается в восемь вечера.",
        "Чтобы приготовить вкусный борщ, нужно сначала сварить крепкий бульон.",
        "Мой брат работает в больнице и часто дежурит по ночам.",
        "Байкал — самое глубокое озеро в мире, оно находится в Сибири.",
        "Перед поездкой обязательно проверьте, не забыли ли вы паспорт и билеты.",
    ],
    "vi": [
        "Nếu bạn muốn học một ngôn ngữ mới, hãy luyện tập một chút mỗi ngày.",
        "Thư viện gần nhà tôi mở cửa lúc chín giờ sáng và đóng cửa lúc tám giờ tối.",
        "Để nấu một nồi phở ngon, bạn cần ninh xương trong nhiều giờ.",
        "Anh trai tôi làm việc ở bệnh viện và thường phải trực đêm.",
        "Hà Nội là thủ đô của Việt Nam và có lịch sử hơn một nghìn năm.",
        "Trước khi ra ngoài, nhớ mang theo áo mưa vì chiều nay có thể mưa to.",
    ],
    "zh": [
        "如果你想学好一门新语言，最好每天都练习一点。",
        "车站旁边的图书馆早上九点开门，晚上八点关门。",
        "做一锅好吃的咖喱，关键是要把洋葱慢慢炒透。",
        "我哥哥在医院工作，经常要上夜班。",
        "长江是中国最长的河流，全长大约六千三百公里。",
        "政府宣布经济增长率比去年同期上升了两个百分点。",
    ],
}

# Same-script near misses: the same sentence in the neighbouring language.
NEAR_MISSES = [("es", "pt", SENTENCES["es"][5]), ("pt", "es", SENTENCES["pt"][5]),
               ("es", "pt", SENTENCES["es"][1]), ("pt", "es", SENTENCES["pt"][1]),
               ("ja", "zh", SENTENCES["ja"][5]), ("zh", "ja", SENTENCES["zh"][5]),
               ("ja", "zh", SENTENCES["ja"][3]), ("zh", "ja", SENTENCES["zh"][3])]

NO_LANGUAGE = ["", "   \n\t ", "?!... --- !!! ;;; ***", "12 + 30 = 42",
               "```python\ndef f(x):\n    return x * 2\n```",
               "~~~\nSELECT name FROM users WHERE id = 1;\n~~~\n",
               "```\nunclosed fence with english words in it",
               "a" + "." * 96 + "bcd"]  # 4 letters in 100 characters: under 5%


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return Encoder(tiny_encoder_dir, batch_size=2)


# --- language ID and the gate -----------------------------------------------------------------

def test_languages_are_the_routers_fifteen():
    assert LANGUAGES == "ar de en es fr id it ja ko nl pl pt ru vi zh".split()
    assert sorted(LANGUAGE_NAMES) == LANGUAGES and LANGUAGE_NAMES["pt"] == "Portuguese"


def test_language_id_on_full_sentences():
    assert sorted(SENTENCES) == LANGUAGES and all(len(s) >= 5 for s in SENTENCES.values())
    pairs = [(lang, s) for lang, ss in SENTENCES.items() for s in ss]
    wrong = [(lang, detect_language(s), s) for lang, s in pairs if detect_language(s) != lang]
    assert len(wrong) <= 0.02 * len(pairs), wrong


def test_gate_rejects_right_script_wrong_language():
    texts = [s for _, _, s in NEAR_MISSES]
    right = language_gate(texts, [lang for lang, _, _ in NEAR_MISSES])
    wrong = language_gate(texts, [other for _, other, _ in NEAR_MISSES])
    assert right.tolist() == [1.0] * len(texts) and wrong.tolist() == [0.0] * len(texts)


@pytest.mark.parametrize("text", NO_LANGUAGE)
def test_no_language_and_gate_zero(text):
    assert detect_language(text) is None
    assert language_gate([text], ["en"]).tolist() == [0.0]


def test_code_blocks_and_whitespace_do_not_sway_the_language():
    code = "```python\nfor item in items:\n    print('the value of the item is', item)\n```"
    text = f"{SENTENCES['de'][2]}\n\n{code}\n\n   {SENTENCES['de'][4]}"
    assert detect_language(text) == "de"
    at_five = "abcde" + "." * 95            # exactly 5% letters: still has a language
    assert detect_language(at_five) is not None


def test_restricted_languages_and_unknown_codes():
    assert detect_language(SENTENCES["pt"][0], languages=["es", "it"]) in ("es", "it")
    with pytest.raises(ValueError, match=r"'xx'.*\['ar', 'de'"):
        detect_language("hello there my friend", languages=["en", "xx"])
    with pytest.raises(ValueError, match=r"'english'.*\['ar', 'de'"):
        language_gate(["hello there my friend"], ["english"])


# --- the encoder --------------------------------------------------------------------------------

def test_tiny_encoder_loads_through_the_hub_code_path(encoder, tiny_encoder_dir):
    assert encoder.model.config.model_type == "modernbert"
    assert encoder.model.dtype == torch.float32 and not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    e = encoder.embed(["Hallo Welt.", "你好，世界。", "Hello world."])
    assert e.shape == (3, encoder.dim) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))


def test_masked_mean_pooling_matches_unpadded_reference(encoder):
    short = SENTENCES["en"][1]
    longer = [SENTENCES["de"][1] * 3, SENTENCES["ru"][1] * 3, SENTENCES["vi"][0] * 3]
    alone = encoder.embed([short])[0]
    padded = encoder.embed(longer + [short])[-1]     # batches of 2: padded against vi * 3
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    # independent reference: one unpadded sequence, plain mean over tokens, fp64 normalisation
    ids = encoder.tokenizer(short, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        h = encoder.model(input_ids=ids).last_hidden_state[0].double()      # (T, D)
    ref = (h.mean(0) / h.mean(0).norm()).float()
    torch.testing.assert_close(alone, ref, atol=1e-5, rtol=0)


def test_similarity_symmetric_identity_and_empty(encoder):
    a, b = SENTENCES["fr"][:2], SENTENCES["it"][:2]
    torch.testing.assert_close(encoder.similarity(a, b), encoder.similarity(b, a), atol=1e-6, rtol=0)
    torch.testing.assert_close(encoder.similarity(a, a), torch.ones(2), atol=1e-6, rtol=0)
    e = encoder.embed(["", SENTENCES["ko"][0]])
    assert e[0].abs().sum() == 0 and encoder.similarity([""], [SENTENCES["ko"][0]]).item() == 0


# --- compute_rewards ----------------------------------------------------------------------------

def _table() -> CalibrationTable:
    """A hand-made table: en-en equivalents near 0.99, en-pt near 0.90, es-en near 0.94."""
    rng = np.random.default_rng(0)
    pairs = {key: pair_stats(mu + 0.005 * rng.standard_normal(30), mu - 0.3 + 0.05 * rng.random(300),
                             mu - 0.1 + 0.01 * rng.random(60))
             for key, mu in (("en-en", 0.99), ("en-pt", 0.90), ("en-es", 0.94))}
    return CalibrationTable.from_pairs(pairs)


def test_compute_rewards_gate_range_counters(encoder):
    ref = SENTENCES["en"][0]
    responses = [SENTENCES["en"][0], SENTENCES["pt"][0], SENTENCES["es"][0],   # right languages
                 SENTENCES["es"][0],                                            # es asked pt
                 "", "```\nx = 1\n```",                                         # no language
                 SENTENCES["de"][0]]                                            # pair not in table
    targets = ["en", "pt", "es", "pt", "en", "en", "de"]
    table = _table()
    out = compute_rewards(responses, [ref] * 7, ["en"] * 7, targets, encoder, table, "mean")
    assert out["r_lang"].tolist() == [1, 1, 1, 0, 0, 0, 1]
    assert out["no_language"] == 2 and out["missing_pairs"] == 1
    assert ((out["reward"] >= 0) & (out["reward"] <= 1)).all()
    assert (out["reward"][out["r_lang"] == 0] == 0).all()
    # independent reference for r_qual: Eq. 2 by hand, mu_ref as the n-weighted mean, then SPEC 1.3
    s = out["sim"].double()
    mu = {k: float(np.mean(e["equiv"])) for k, e in table.pairs.items()}
    mu_ref = sum(mu.values()) / 3                                   # every pair has n = 30
    shift = [mu["en-en"], mu["en-pt"], mu["en-es"], mu["en-pt"], mu["en-en"], mu["en-en"], None]
    cal = [s[i] if m is None else (s[i] - (m - mu_ref)).clamp(-1, 1) for i, m in enumerate(shift)]
    expect = ((torch.stack(cal) + 1) / 2).clamp(0, 1).float()
    torch.testing.assert_close(out["r_qual"], expect, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["reward"], expect * out["r_lang"], atol=1e-6, rtol=0)


def test_compute_rewards_modes(encoder):
    responses = [SENTENCES["pt"][3], SENTENCES["en"][3], SENTENCES["de"][3]]
    refs, ref_langs, targets = [SENTENCES["en"][3]] * 3, ["en"] * 3, ["pt", "en", "de"]
    raw = compute_rewards(responses, refs, ref_langs, targets, encoder, None, "none")
    torch.testing.assert_close(raw["r_qual"], ((raw["sim"] + 1) / 2).clamp(0, 1))
    assert raw["missing_pairs"] == 0
    q = compute_rewards(responses, refs, ref_langs, targets, encoder, _table(), "quantile")
    assert ((q["r_qual"] >= 0) & (q["r_qual"] <= 1)).all() and q["missing_pairs"] == 1
    torch.testing.assert_close(q["r_qual"][2], raw["r_qual"][2])   # de-en missing: raw, mapped
    with pytest.raises(ValueError, match="needs a table"):
        compute_rewards(responses, refs, ref_langs, targets, encoder, None, "mean")
    with pytest.raises(ValueError, match=r"'EN'.*\['ar', 'de'"):
        compute_rewards(responses, refs, ["en", "EN", "en"], targets, encoder, None, "none")
