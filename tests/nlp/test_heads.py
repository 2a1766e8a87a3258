"""Serving classifier heads: one shared backbone, per-task adapters, rules for the rest."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from bot.accounts import Account, load_accounts
from bot.config import DEFAULT_INTENTS, Settings
from bot.domain import Analysis, Sentiment, Verdict, VerdictAction
from bot.errors import ModelLoadError
from bot.nlp.classify import LexicalClassifier
from bot.nlp.head_backbone import clear_backbones, load_classification_model, shared_backbone
from bot.nlp.heads import (
    HeadClassifier,
    SafetyHeadPolicy,
    heads_by_account,
    load_account_classifier,
    read_head,
    safety_verdict,
    softmax_t,
    with_safety_head,
)
from tests.nlp.head_helpers import make_head
from training.train_classifier import predict_logits

ROOT = Path(__file__).resolve().parents[2]
SENTIMENTS = ("negative", "neutral", "positive")
TEXTS = ["thanks so much, love it!", "where is my order??", "", "hi"]
SETTINGS = Settings(device="cpu")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_backbones()
    yield
    clear_backbones()


@pytest.fixture
def account() -> Account:
    return replace(load_accounts(SETTINGS).default, name="acme")


def test_without_heads_the_rules_answer_and_torch_is_not_imported() -> None:
    code = (
        "import sys\n"
        "from bot.accounts import load_accounts\nfrom bot.config import Settings\n"
        "from bot.nlp.heads import load_account_classifier\n"
        "s = Settings()\n"
        "c = load_account_classifier(s, load_accounts(s).default, {})\n"
        "print(type(c).__name__, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().split() == ["LexicalClassifier", "False"]


def test_serving_computes_what_training_computed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """LoRA weights and each head's own score layer (3 and 8 labels) on one backbone."""
    sentiment = make_head(tiny_model_dir, tmp_path / "s", "sentiment", SENTIMENTS, seed=1)
    intent = make_head(tiny_model_dir, tmp_path / "i", "intent", DEFAULT_INTENTS, seed=2)
    backbone = shared_backbone(str(tiny_model_dir), "cpu")
    backbone.add_head("s", sentiment)
    backbone.add_head("i", intent)
    for name, path, labels in (("s", sentiment, SENTIMENTS), ("i", intent, DEFAULT_INTENTS)):
        # peft's own loading of the saved adapter, on a fresh classification model
        model, tokenizer = load_classification_model(str(tiny_model_dir), len(labels), "cpu")
        reference = PeftModel.from_pretrained(model, str(path))
        expected = predict_logits(reference, tokenizer, TEXTS, max_length=64)
        served = backbone.logits(name, TEXTS, max_length=64, batch_size=3)
        assert served.shape == (len(TEXTS), len(labels))
        assert torch.allclose(served, expected, atol=1e-5), name
    assert len(shared_backbone(str(tiny_model_dir), "cpu").head_names) == 2


def test_heads_of_accounts_share_one_backbone(
    tiny_model_dir: Path, tmp_path: Path, account: Account
) -> None:
    s = make_head(tiny_model_dir, tmp_path / "s", "sentiment", SENTIMENTS, seed=1)
    i = make_head(tiny_model_dir, tmp_path / "i", "intent", DEFAULT_INTENTS, seed=2)
    first = load_account_classifier(
        SETTINGS,
        account,
        {"sentiment": ("acme-sentiment-v1", str(s)), "intent": ("acme-intent-v1", str(i))},
    )
    other = load_account_classifier(
        SETTINGS, replace(account, name="zeta"), {"sentiment": ("acme-sentiment-v1", str(s))}
    )
    assert isinstance(first, HeadClassifier) and isinstance(other, HeadClassifier)
    assert len(first.backbones) == 1 and first.backbones[0] is other.backbones[0]
    again = load_account_classifier(SETTINGS, account, {"sentiment": ("acme-sentiment-v1", str(s))})
    assert isinstance(again, HeadClassifier) and again.backbones[0] is first.backbones[0]
    assert first.name == "heads:acme-intent-v1+acme-sentiment-v1"


def test_a_task_without_a_head_keeps_the_rules(
    tiny_model_dir: Path, tmp_path: Path, account: Account
) -> None:
    path = make_head(tiny_model_dir, tmp_path / "s", "sentiment", SENTIMENTS)  # zero score
    classifier = load_account_classifier(
        SETTINGS, account, {"sentiment": ("acme-sentiment-v1", str(path))}
    )
    rules = LexicalClassifier(account.intent_labels).classify_many(TEXTS)

    analyses = classifier.classify_many(TEXTS)

    assert classifier.name == "heads:acme-sentiment-v1+lexical-intent"
    assert rules[0].sentiment is Sentiment.POSITIVE
    for head, rule in zip(analyses, rules, strict=True):
        assert (head.intent, head.intent_score) == (rule.intent, rule.intent_score)
        assert head.sentiment is Sentiment.NEGATIVE  # zero logits: the first label wins
        assert head.sentiment_score == pytest.approx(1 / 3)
        assert head.scores["sentiment:positive"] == pytest.approx(1 / 3)
        assert head.scores["intent:question"] == rule.scores["intent:question"]
        assert head.model == classifier.name
    assert classifier.classify_many([]) == []


def test_probabilities_use_the_fitted_temperature(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = make_head(tiny_model_dir, tmp_path / "s", "sentiment", SENTIMENTS, seed=3)
    head_json = path / "head.json"
    head_json.write_text(head_json.read_text().replace('"temperature": 1.0', '"temperature": 2.5'))
    spec = read_head("h", path)
    assert spec.temperature == 2.5 and spec.labels == SENTIMENTS
    account = load_accounts(SETTINGS).default
    classifier = load_account_classifier(SETTINGS, account, {"sentiment": ("h", str(path))})
    assert isinstance(classifier, HeadClassifier)
    logits = classifier.heads["sentiment"].backbone.logits("h", TEXTS[:1], max_length=64)
    (analysis,) = classifier.classify_many(TEXTS[:1])
    expected = softmax_t(logits[0].tolist(), 2.5)
    assert [analysis.scores[f"sentiment:{s}"] for s in SENTIMENTS] == pytest.approx(expected)


def test_wrong_task_or_unknown_labels_are_refused(
    tiny_model_dir: Path, tmp_path: Path, account: Account
) -> None:
    path = make_head(tiny_model_dir, tmp_path / "i", "intent", ("question", "refund", "other"))
    with pytest.raises(ModelLoadError, match="is a intent head but is active as the sentiment"):
        load_account_classifier(SETTINGS, account, {"sentiment": ("x", str(path))})
    with pytest.raises(ModelLoadError, match="labels the account does not have \\(refund\\)"):
        load_account_classifier(SETTINGS, account, {"intent": ("x", str(path))})
    with pytest.raises(ModelLoadError, match="incomplete"):
        load_account_classifier(SETTINGS, account, {"intent": ("y", str(tmp_path))})


def test_safety_labels_map_to_verdicts() -> None:
    verdicts = SETTINGS.safety_label_verdicts
    assert safety_verdict("hate", verdicts) is VerdictAction.BLOCK
    assert safety_verdict("neither", verdicts) is VerdictAction.ALLOW
    assert safety_verdict("never-heard-of", verdicts) is VerdictAction.REVIEW
    assert safety_verdict("x", {"x": "typo"}) is VerdictAction.REVIEW

    policy = SafetyHeadPolicy(verdicts, confidence=0.6)
    allow = Verdict(VerdictAction.ALLOW, 0.1)
    base = Analysis("other", 1.0, Sentiment.NEUTRAL, 1.0)
    assert with_safety_head(allow, base, policy) == allow  # no safety head
    hateful = replace(base, scores={"safety:hate": 0.7, "safety:neither": 0.3})
    assert with_safety_head(allow, hateful, policy) == Verdict(
        VerdictAction.BLOCK, 0.1, ("safety_hate",)
    )
    fine = replace(base, scores={"safety:hate": 0.2, "safety:neither": 0.8})
    assert with_safety_head(allow, fine, policy) == allow
    blocked = Verdict(VerdictAction.BLOCK, 0.9, ("toxic",))
    offensive = replace(base, scores={"safety:offensive": 0.9})
    assert with_safety_head(blocked, offensive, policy).action is VerdictAction.BLOCK


def test_an_unsure_safety_head_flags_nothing_and_answers_with_its_allowed_label() -> None:
    sure = SafetyHeadPolicy(SETTINGS.safety_label_verdicts, confidence=0.9)
    allow = Verdict(VerdictAction.ALLOW, 0.1)
    base = Analysis("other", 1.0, Sentiment.NEUTRAL, 1.0)
    unsure = replace(base, scores={"safety:hate": 0.7, "safety:neither": 0.2, "safety:x": 0.1})
    assert with_safety_head(allow, unsure, sure) == allow
    assert sure.flagging_label(unsure) is None
    assert sure.label(unsure) == "neither"  # what the eval gate counts it as
    certain = replace(base, scores={"safety:hate": 0.95, "safety:neither": 0.05})
    assert sure.flagging_label(certain) == "hate" and sure.label(certain) == "hate"
    assert with_safety_head(allow, certain, sure).flags == ("safety_hate",)
    assert sure.label(base) is None  # no safety head at all
    assert SafetyHeadPolicy.from_settings(SETTINGS).confidence == SETTINGS.safety_head_confidence


def test_the_head_has_the_last_word_only_on_toxicity_from_naming_a_group() -> None:
    policy = SafetyHeadPolicy(SETTINGS.safety_label_verdicts, confidence=0.9)
    base = Analysis("other", 1.0, Sentiment.NEUTRAL, 1.0)
    talk = replace(base, scores={"safety:hate": 0.3, "safety:neither": 0.7})
    by_name = Verdict(VerdictAction.REVIEW, 0.97, ("toxic_identity",))
    # "I am gay": the profanity model reacts to the word; the head sees no hate: allowed.
    assert with_safety_head(by_name, talk, policy) == Verdict(VerdictAction.ALLOW, 0.97, ())
    # Any other flag beside it stays, and so does real toxicity.
    both = Verdict(VerdictAction.REVIEW, 0.97, ("toxic_identity", "pii_email"))
    assert with_safety_head(both, talk, policy) == both
    toxic = Verdict(VerdictAction.BLOCK, 0.99, ("toxic",))
    assert with_safety_head(toxic, talk, policy) == toxic
    # Without a safety head nothing changes: the text waits for a moderator.
    assert with_safety_head(by_name, base, policy) == by_name
    # A sure head that finds hate makes it stricter.
    hate = replace(base, scores={"safety:hate": 0.95, "safety:neither": 0.05})
    assert with_safety_head(by_name, hate, policy).action is VerdictAction.BLOCK


def test_heads_by_account_keeps_classifier_kinds_only() -> None:
    active = {
        ("acme", "reply"): ("acme-reply-v3", "/a/r"),
        ("acme", "sentiment"): ("acme-sentiment-v1", "/a/s"),
        ("zeta", "safety"): ("zeta-safety-v2", "/z/s"),
    }
    assert heads_by_account(active) == {
        "acme": {"sentiment": ("acme-sentiment-v1", "/a/s")},
        "zeta": {"safety": ("zeta-safety-v2", "/z/s")},
    }


def test_the_service_gives_each_account_its_promoted_heads(
    tiny_model_dir: Path, tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What `Service.run` does before its channels start: AdapterSync's first poll loads each
    account's promoted heads through `head_loader`; a broken head keeps the rules."""
    import asyncio

    from bot.adapter_sync import AdapterSync
    from bot.service import build_classifiers, head_loader
    from bot.storage import accounts as account_store
    from bot.storage.db import Database
    from bot.storage.migrate import ensure_schema
    from tests.nlp.head_helpers import promote_head

    ensure_schema(sqlite_url)
    db = Database(sqlite_url)
    names = ("acme", "zeta", "broken")
    with db.session() as s:
        for name in names:
            account_store.bind(s, name, "console", name)
    promote_head(db, tmp_path, "acme", "sentiment", tiny_model_dir, SENTIMENTS)
    broken = promote_head(db, tmp_path, "broken", "sentiment", tiny_model_dir, SENTIMENTS)
    (tmp_path / "broken" / "sentiment" / "v1" / "head.json").unlink()
    default = load_accounts(SETTINGS).default
    accounts = [replace(default, name=name) for name in names]
    built: dict[str, object] = dict(build_classifiers(accounts))

    class Pipeline:
        def set_adapter(self, account: str, adapter: str) -> None:
            raise AssertionError("no model host here")

        def set_classifier(self, account: str, classifier: object) -> None:
            built[account] = classifier

    sync = AdapterSync(db, Pipeline(), accounts, host=None, load_classifier=head_loader(SETTINGS))
    asyncio.run(sync.poll())

    assert isinstance(built["acme"], HeadClassifier)
    assert built["acme"].name == "heads:acme-sentiment-v1+lexical-intent"
    assert isinstance(built["zeta"], LexicalClassifier)
    assert isinstance(built["broken"], LexicalClassifier)  # logged, and the rules serve
    assert f"broken: loading classifier heads failed: classifier head {broken}" in caplog.text
    db.dispose()


def _tiny_llama(tiny_model_dir: Path, out: Path) -> Path:
    """A random 3-block Llama (SmolLM2's architecture) with the tiny GPT-2's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_heads_share_the_blocks_below_their_lora_layers(
    tiny_model_dir: Path, tmp_path: Path, arch: str
) -> None:
    """Two heads with LoRA on the top block only: the lower blocks run once per batch for
    both, and each head's logits are what it computes alone."""
    base = tiny_model_dir if arch == "gpt2" else _tiny_llama(tiny_model_dir, tmp_path / "llama")
    s = make_head(base, tmp_path / "s", "sentiment", SENTIMENTS, seed=1, lora_layers=1)
    i = make_head(base, tmp_path / "i", "intent", DEFAULT_INTENTS, seed=2, lora_layers=1)
    backbone = shared_backbone(str(base), "cpu")
    backbone.add_head("s", s)
    backbone.add_head("i", i)
    alone = {name: backbone.logits(name, TEXTS, max_length=64, batch_size=3) for name in "si"}
    blocks = backbone._blocks
    assert blocks is not None and len(blocks) in (2, 3)
    # Hooks on a part inside each block count the blocks' real work (a block hook would also
    # count the replayed calls).
    calls = {"first": 0, "last": 0}
    hooks = [
        next(blocks[where].children()).register_forward_hook(
            lambda *_, key=key: calls.__setitem__(key, calls[key] + 1)
        )
        for where, key in ((0, "first"), (-1, "last"))
    ]
    try:
        together = backbone.logits_many(["s", "i"], TEXTS, max_length=64, batch_size=3)
    finally:
        for hook in hooks:
            hook.remove()
    batches = 2  # 4 texts in batches of 3
    assert calls == {"first": batches, "last": 2 * batches}
    for name in "si":
        assert torch.allclose(together[name], alone[name], atol=1e-5), name
    # The blocks compute again afterwards (nothing left patched).
    assert torch.allclose(backbone.logits("i", TEXTS, max_length=64), alone["i"], atol=1e-5)


def test_heads_with_lora_everywhere_share_nothing_and_stay_right(
    tiny_model_dir: Path, tmp_path: Path, account: Account
) -> None:
    """Default heads on the 2-block model put LoRA on every block: the classifier still gets
    each head's own answer when it runs them together."""
    s = make_head(tiny_model_dir, tmp_path / "s", "sentiment", SENTIMENTS, seed=1)
    i = make_head(tiny_model_dir, tmp_path / "i", "intent", DEFAULT_INTENTS, seed=2)
    both = load_account_classifier(
        SETTINGS, account, {"sentiment": ("s-v1", str(s)), "intent": ("i-v1", str(i))}
    )
    assert isinstance(both, HeadClassifier)
    backbone = both.backbones[0]
    analyses = both.classify_many(TEXTS)
    for task, name in (("sentiment", "s-v1"), ("intent", "i-v1")):
        logits = backbone.logits(name, TEXTS, max_length=64)
        labels = both.heads[task].spec.labels
        expected = [labels[int(row.argmax())] for row in logits]
        got = [a.sentiment.value if task == "sentiment" else a.intent for a in analyses]
        assert got == expected, task
