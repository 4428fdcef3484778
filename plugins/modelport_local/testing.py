"""A tiny, randomly initialised chat model for tests and benchmarks (no network, no download).

:func:`tiny_model` writes a Llama-shaped model with a hidden size of 32 and two layers, and a
byte-level BPE tokenizer trained on a few sentences, to a directory that
``[backends.local] base_model`` (or ``base_model=`` of a job) can point at. It learns nothing
useful; it makes the whole training loop run in seconds on a CPU.

It needs the ``local`` extra (``pip install 'modelport[local]'``); importing this module does
not load it, calling :func:`tiny_model` does.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__all__ = ["CHATML_TEMPLATE", "tiny_model"]

#: The ChatML chat template (also the worker's fallback for a tokenizer without a template).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_TEXT = (
    "You are a helpful assistant. Answer in one word. What is the capital of France? Paris. "
    "What colour is the sky? Blue. How many legs has a cat? Four. Say hello. Hello there! "
    "Question Answer user assistant system 0 1 2 3 4 5 6 7 8 9 ? . , ! the a of and to in is"
)


def _load(name: str) -> Any:
    return importlib.import_module(name)


def tiny_model(
    directory: str | Path,
    *,
    chat_template: bool = True,
    hidden_size: int = 32,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama model and its tokenizer to ``directory``; return its path.

    :param chat_template: give the tokenizer the ChatML template; without it the trainer
        falls back to its own (as for a base model that has none).
    """
    torch = _load("torch")
    transformers = _load("transformers")
    tokenizers = _load("tokenizers")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_TEXT] * 4, trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
