"""Decoding stored and received JSON into wire models, with our own error type."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from btq.schemas.exceptions import DecodeError

M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], raw: str | bytes) -> M:
    """Parse `raw` JSON as `model`; raise DecodeError naming the model on any mismatch."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise DecodeError(f"invalid {model.__name__} JSON: {exc}") from exc
