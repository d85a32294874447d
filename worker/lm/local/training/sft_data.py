"""Chat examples (BootstrapFinetune's `{"messages": [...]}`) to token ids and loss labels."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100
"""Label of a token the loss skips (torch's cross-entropy ignore_index)."""


@dataclass(frozen=True)
class Encoded:
    """One training example: tokens, and labels that are `IGNORE` outside the assistant's answer."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def encode_chat(tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int) -> Encoded:
    """Tokenize one conversation with the model's chat template; learn only the last assistant turn.

    The prompt (system, user and earlier turns) is context, as it is when the server generates; the
    answer includes the template's end-of-turn token so the model learns to stop. An example longer
    than `max_length` loses tokens from the start of its prompt, never from its answer.

    Raises:
        ValueError: The conversation does not end with an assistant message.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("a chat training example must end with an assistant message")
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the full conversation")
    # Tokenized apart so the boundary between prompt and answer is exact.
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    ids = prompt_ids + answer_ids
    labels = [IGNORE] * len(prompt_ids) + answer_ids
    truncated = len(ids) > max_length
    if truncated:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return Encoded(ids, labels, truncated)


def pad_batch(batch: Sequence[Encoded], pad_id: int) -> dict[str, list[list[int]]]:
    """Right-pad a batch to its longest example; padding is masked out and ignored by the loss."""
    width = max(len(e.input_ids) for e in batch)
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for e in batch:
        pad = width - len(e.input_ids)
        out["input_ids"].append(e.input_ids + [pad_id] * pad)
        out["attention_mask"].append([1] * len(e.input_ids) + [0] * pad)
        out["labels"].append(e.labels + [IGNORE] * pad)
    return out


def shared_prefix(batch: Sequence[Encoded]) -> int:
    """Return how many leading tokens every example of `batch` shares, all of them unlabelled context.

    BootstrapFinetune's examples of one program share their system prompt and demos; training runs
    that prefix once per batch instead of once per example. The prefix stops one token before the first
    labelled token of any example, so every logit the loss reads comes after it.
    """
    if len(batch) < 2:
        return 0
    shortest = min(len(e.input_ids) for e in batch)
    first_label = min(next((i for i, label in enumerate(e.labels) if label != IGNORE), len(e.labels)) for e in batch)
    limit = min(shortest, first_label - 1)
    head = batch[0].input_ids
    n = 0
    while n < limit and all(e.input_ids[n] == head[n] for e in batch[1:]):
        n += 1
    return n
