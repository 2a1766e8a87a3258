"""A tiny offline model: a 2-layer GPT-2 with a BPE trained here, for tests and benchmarks.

Nothing is downloaded. The tokenizer is trained with `tokenizers` on a small chat corpus and
wrapped with `tokenizer_object=` (building it from vocab/merges files tokenizes to [] in
transformers 5). `n_positions` stays 1,024 like real GPT-2 so the left-cut logic is exercised
at the real size. The weights are random but the same every run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

EOS = "<|endoftext|>"

_CORPUS = [
    "Hello! How can I help you today?",
    "Hi there, thanks for reaching out.",
    "Where is my order? It has been a week.",
    "Your order shipped yesterday and should arrive soon.",
    "Can I return these shoes if they do not fit?",
    "Of course, returns are free within thirty days.",
    "The app keeps crashing when I open my account.",
    "Sorry about that! Please try updating to the latest version.",
    "Do you ship to Canada and Mexico?",
    "Yes, we ship to most countries in North America and Europe.",
    "I love your new summer collection!",
    "Thank you so much, we are glad you like it.",
    "What are your opening hours on Sunday?",
    "We are open from ten in the morning until six in the evening.",
    "My package arrived damaged, what should I do?",
    "Please send us a photo and we will replace it right away.",
    "Is the blue jacket still available in medium?",
    "Let me check the stock for you, one moment please.",
    "Thanks for the quick answer, have a nice day.",
    "You are welcome! Have a great weekend.",
    "User: hi\nBot: Hello! What can I do for you?",
    "User: where is my refund?\nBot: Refunds take three to five business days.",
    "Great service, I will order again. 😀 👍",
    "Can you help me? I forgot my password.",
    "Click on forgot password and follow the email we send.",
]


def _train_tokenizer() -> GPT2Tokenizer:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=[EOS],
        # Every byte must be in the vocabulary, or unseen text (emoji, RTL) cannot be encoded.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    # In transformers 5 GPT2TokenizerFast is an alias of GPT2Tokenizer (tokenizers-backed);
    # the statically declared name keeps mypy happy.
    return GPT2Tokenizer(tokenizer_object=bpe, bos_token=EOS, eos_token=EOS, unk_token=EOS)


def build_tiny_model(path: Path) -> Path:
    """Write the tiny model to `path` (the tests' `tiny_model_dir` too)."""
    tokenizer = _train_tokenizer()
    eos_id = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    with torch.random.fork_rng(devices=[]):  # same weights every run, global RNG untouched
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path
