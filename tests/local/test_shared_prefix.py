"""Training on a batch's shared prefix once gives the loss and gradients of the whole batch."""

import warnings
from typing import Any

import pytest

from btq.worker.lm.local.training.sft_data import IGNORE, Encoded, shared_prefix


def _example(ids: list[int], answer_from: int) -> Encoded:
    return Encoded(ids, [IGNORE] * answer_from + ids[answer_from:], truncated=False)


def test_the_shared_prefix_stops_before_the_first_labelled_token() -> None:
    a = _example([1, 2, 3, 4, 5, 6], 4)
    b = _example([1, 2, 3, 4, 9, 9, 9], 5)
    assert shared_prefix([a, b]) == 3  # 4 tokens agree, but a's first label (index 4) is read at logit 3
    assert shared_prefix([a, _example([1, 2, 7, 4, 5, 6], 4)]) == 2
    assert shared_prefix([a]) == 0  # one example: nothing to share


def _tiny_lora_model() -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = transformers.LlamaForCausalLM(config)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    return peft.get_peft_model(model, lora)


def test_shared_prefix_loss_and_gradients_match_the_whole_batch() -> None:
    model = _tiny_lora_model()
    from btq.worker.lm.local.training.train import batch_loss

    prefix = list(range(3, 23))  # 20 shared prompt tokens (system prompt and demos)
    batch = [
        _example([*prefix, 30, 31, 32, 40, 41], 23),
        _example([*prefix, 33, 34, 42, 43, 44, 45], 22),
        _example([*prefix, 35, 46], 21),
    ]
    assert shared_prefix(batch) == 20

    def loss_and_grads(min_prefix: int) -> tuple[float, list[Any]]:
        model.zero_grad(set_to_none=True)
        loss = batch_loss(model, batch, pad_id=0, min_prefix=min_prefix)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    whole_loss, whole_grads = loss_and_grads(min_prefix=10_000)  # never shared
    shared_loss, shared_grads = loss_and_grads(min_prefix=1)
    assert shared_loss == pytest.approx(whole_loss, rel=1e-5)
    import torch

    assert len(shared_grads) == len(whole_grads) > 0
    for shared, whole in zip(shared_grads, whole_grads, strict=True):
        assert torch.allclose(shared, whole, rtol=1e-4, atol=1e-6)


def test_the_shared_prefix_pass_passes_its_cache_as_transformers_names_it() -> None:
    model = _tiny_lora_model()
    from btq.worker.lm.local.training.train import batch_loss

    prefix = list(range(3, 23))
    batch = [_example([*prefix, 30, 31], 21), _example([*prefix, 33, 34, 35], 22)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch_loss(model, batch, pad_id=0, min_prefix=1)
    # transformers 5 renamed the forward's `past_key_values` to `cache` (the old name goes in 5.40).
    assert [str(w.message) for w in caught if "past_key_values" in str(w.message)] == []
