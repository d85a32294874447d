"""Chat examples to tokens: only the assistant's answer is learned; long prompts lose their start."""

from typing import Any

import pytest

from btq.worker.lm.local.training.sft_data import IGNORE, encode_chat, pad_batch


class CharTokenizer:
    """One token per character; a ChatML-like template, as SmolLM2's."""

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        text = "".join(f"<{m['role']}>{m['content']}<end>\n" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [ord(c) for c in text]}


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "date?"},
    {"role": "assistant", "content": "2024-01-02"},
]


def test_only_the_answer_and_its_end_token_are_labelled() -> None:
    encoded = encode_chat(CharTokenizer(), MESSAGES, max_length=1000)
    learned = "".join(chr(t) for t in encoded.labels if t != IGNORE)
    assert learned == "2024-01-02<end>\n"
    assert len(encoded.input_ids) == len(encoded.labels) and not encoded.truncated


def test_long_examples_lose_the_prompt_start_not_the_answer() -> None:
    encoded = encode_chat(CharTokenizer(), MESSAGES, max_length=20)
    assert encoded.truncated and len(encoded.input_ids) == 20
    assert "".join(chr(t) for t in encoded.labels if t != IGNORE) == "2024-01-02<end>\n"


def test_an_example_must_end_with_the_answer() -> None:
    with pytest.raises(ValueError, match="assistant"):
        encode_chat(CharTokenizer(), MESSAGES[:2], max_length=100)


def test_pad_batch_masks_padding() -> None:
    tok = CharTokenizer()
    a = encode_chat(tok, MESSAGES, 1000)
    b = encode_chat(tok, [*MESSAGES[:2], {"role": "assistant", "content": "x"}], 1000)
    batch = pad_batch([a, b], pad_id=0)
    width = len(a.input_ids)
    assert all(len(row) == width for rows in batch.values() for row in rows)
    pad = width - len(b.input_ids)
    assert batch["attention_mask"][1][-pad:] == [0] * pad and batch["labels"][1][-pad:] == [IGNORE] * pad
