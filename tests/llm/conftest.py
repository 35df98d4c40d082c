"""A tiny random-weight chat model built locally (no download): a character-level tokenizer with a
chat template and a one-layer Llama. It checks protocols and failure paths, not answer quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from matsearch.candidate import Candidate, Status

from .crystals import rocksalt

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def build_tiny_chat_model(folder: Path) -> Path:
    """Save a tokenizer (ASCII + newline, one token per character) and a tiny LlamaForCausalLM."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {chr(c): c - 32 for c in range(32, 127)}
    for token in ("\n", "<unk>", "<s>", "</s>", "<pad>"):
        vocab[token] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern=Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat-model"))


@pytest.fixture
def scored_parents() -> list[Candidate]:
    """Three scored parents as the engine hands them over (ids, relaxed structures, eV/atom)."""
    parents = []
    for i, (cation, a, e_hull) in enumerate([("Na", 5.64, 0.0), ("K", 6.29, 0.012), ("Li", 5.13, 0.031)]):
        s = rocksalt(a, cation)
        parents.append(
            Candidate(
                id=10 + i,
                generation=1,
                origin="builtin",
                operator="substitution",
                structure=s,
                relaxed=s,
                status=Status.SCORED,
                e_above_hull=e_hull,
                scores={"e_above_hull": e_hull},
            )
        )
    return parents
