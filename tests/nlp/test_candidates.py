"""Best-of-n filters: real replies pass in any language, garbage and loops are dropped, and
ranking keeps every candidate with the reason it was not used."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from bot.domain import Candidate, DropReason
from bot.nlp.candidates import drop_reason, rank

VALID = [
    "Sure thing 👍",
    "sure thing 👍",
    "👍",
    "Thanks!",
    "ok",
    "Hi",
    "Yes, we have it in small, medium and large.",
    "Your total is $5.99, pick it up at 10:30am.",
    "Hi! Your order #1234 shipped yesterday and should arrive by Friday.",
    "Visit https://example.com/help or email help@example.com :)",
    "Call 1-800-FLY-DELTA and quote booking ABC123, they'll sort it out.",
    "You can pay with PayPal, or order on your iPhone in the app.",
    "We have Vanilla, Sugar Free Vanilla, Hazelnut, Chocolate Sauce, Caramel Sauce, Honey, "
    "and Sugar.",
    "I can't find that item on the menu unfortunately",
    "okay great does this look right",
    "Thank you, thank you! See you soon.",
    "Your order is ready. Enjoy, and thanks again!",
    "Ha ha, glad you liked it 😂🎉",
    "We're so sorry 🙏🏽 we'll fix it today",
]
NON_ENGLISH = [
    "¡Hola! Su pedido salió ayer y llegará en dos o tres días hábiles.",
    "Vielen Dank für Ihre Geduld! Ihre Bestellung wurde heute versandt, die "
    "Sendungsverfolgungsnummer erhalten Sie per E-Mail.",
    "Kiitos yhteydenotostasi! Valitettavasti tilauksesi toimitus viivästyy, mutta lähetämme sen "
    "heti kun tuote on taas varastossa.",
    "Mohon maaf atas ketidaknyamanannya, pesanan Anda sedang kami proses dan akan segera "
    "dikirimkan hari ini juga.",
    "Elnézést kérünk a kellemetlenségért, a csomagját holnap délelőtt kézbesítjük, és előtte "
    "e-mailben értesítjük.",
    "Спасибо за сообщение! Ваш заказ отправлен вчера и прибудет в течение двух дней.",
    "Да, iPhone 15 есть в наличии, доставка по Москве бесплатная.",
    "Ευχαριστούμε για το μήνυμά σας! Η παραγγελία σας θα φτάσει αύριο.",
    "شكرا لتواصلك معنا! سيصل طلبك خلال يومين.",
    "धन्यवाद! आपका ऑर्डर कल तक पहुंच जाएगा।",
    "您好！您的订单已于昨天发货，预计两天内送达。如有任何问题，请随时联系我们的客服团队。",
    "お問い合わせありがとうございます。ご注文の商品は明日お届けします。",
    "ขอบคุณที่ติดต่อเรา คำสั่งซื้อของคุณจะถึงพรุ่งนี้",
    "Cảm ơn bạn đã liên hệ! Đơn hàng của bạn sẽ được giao vào ngày mai.",
]
EMPTY = ["", "   ", "...", "?!", "— …", "$$$"]
GIBBERISH = [
    "ok\x07",  # a control byte
    "nope\ufffd",  # a character cut between byte-level tokens
    "asdfghjklqwertyuiopzxcvbnmasdfghjklqwerty",  # no word is this long
    "hello привет 你好 مرحبا",  # letters of four scripts
    "Hеllo",  # a Cyrillic e in a Latin word
    '="",mill }] ::-avasZinality $(',  # symbols glued to letters
    "le blue morning` andY",
    # Uniformly random SmolLM2 tokens, decoded (benchmarks/candidate_filters.py):
    " Pew complexity dependency Eg。 Aristot Oper postures dt itertoolsComp SMART Gogh NK "
    "spiral Psalm adequizal discharged accommodations arkClient ISOclosure flooding",
    'teacher cru butterflies streamlined}] directingrase Sara markings="",mill appraisal '
    "solely secre boost collapsing segregation timedelta preservative",
    " PFAS insecurity streamline expire resonate kingdom crashing installmentucslugirium battle "
    "Optim Elders complete undocumented springsmask",
]
REPETITIVE = [
    "no no no no",
    "Sure, sure, sure, sure.",
    "Thank you thank you thank you",
    "I am sorry I am sorry I am sorry",
    "Your order is ready. Your order is ready.",
    "We will check and get back to you. Thanks! We will check and get back to you.",
    "Great. We will have it ready for you shortly. for you shortly. for you shortly.",
    "hahahahahahahahaha",
    "sooooooooooo good",
    "the the cat the cat the cat the dog the cat the dog the cat",
]


@pytest.mark.parametrize("text", VALID + NON_ENGLISH)
def test_real_replies_pass(text: str) -> None:
    assert drop_reason(text) is None


@pytest.mark.parametrize("text", EMPTY)
def test_nothing_to_say_is_empty(text: str) -> None:
    assert drop_reason(text) is DropReason.EMPTY


@pytest.mark.parametrize("text", GIBBERISH)
def test_gibberish_is_dropped(text: str) -> None:
    assert drop_reason(text) is DropReason.GIBBERISH


@pytest.mark.parametrize("text", REPETITIVE)
def test_loops_are_repetitive(text: str) -> None:
    assert drop_reason(text) is DropReason.REPETITIVE


def test_random_byte_level_tokens_are_nearly_all_dropped(tiny_model_dir: Path) -> None:
    # What a model with random weights samples: uniformly random ids of the tiny byte-level
    # BPE, decoded (broken UTF-8, control bytes, subwords glued together).
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rng = random.Random(0)
    texts = [
        str(tokenizer.decode([rng.randrange(len(tokenizer)) for _ in range(rng.randint(5, 48))]))
        for _ in range(500)
    ]
    kept = [text for text in texts if drop_reason(text) is None]
    assert len(kept) / len(texts) < 0.05, kept[:5]


def _c(name: str, score: float, dropped: DropReason | None = None) -> Candidate:
    return Candidate(text=name, raw=name, score=score, new_tokens=3, dropped=dropped)


def test_rank_puts_the_best_survivor_first_and_marks_the_rest() -> None:
    loop = _c("loop", -0.1, DropReason.REPETITIVE)  # the highest score, but dropped
    good = _c("good", -0.9)
    best = _c("best", -0.5)
    empty = _c("", -3.0, DropReason.EMPTY)
    fine = _c("fine", -1.4)
    blocked = _c("blocked", -0.2, DropReason.BLOCKED)

    ranked = rank([loop, good, best, empty, fine, blocked])

    assert [(c.text, c.dropped) for c in ranked] == [
        ("best", None),
        ("good", DropReason.OUTRANKED),
        ("fine", DropReason.OUTRANKED),
        ("loop", DropReason.REPETITIVE),
        ("blocked", DropReason.BLOCKED),
        ("", DropReason.EMPTY),
    ]
    assert [c.score for c in ranked] == [-0.5, -0.9, -1.4, -0.1, -0.2, -3.0]


def test_rank_with_no_survivor_keeps_every_reason() -> None:
    ranked = rank([_c("a", -2.0, DropReason.GIBBERISH), _c("b", -1.0, DropReason.EMPTY)])
    assert [(c.text, c.dropped) for c in ranked] == [
        ("b", DropReason.EMPTY),
        ("a", DropReason.GIBBERISH),
    ]
    assert all(c.dropped is not None for c in ranked)


def test_rank_sorts_nan_last_and_keeps_sampling_order_on_ties() -> None:
    ranked = rank([_c("nan", math.nan), _c("first", -1.0), _c("second", -1.0)])
    assert [(c.text, c.dropped) for c in ranked] == [
        ("first", None),
        ("second", DropReason.OUTRANKED),
        ("nan", DropReason.OUTRANKED),
    ]
    assert rank([]) == ()
