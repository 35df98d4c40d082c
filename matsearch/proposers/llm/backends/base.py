"""What every chat backend offers the LLM proposer: requests in, `Completion`s out, token counts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from matsearch.errors import MatsearchError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}

CHARS_PER_TOKEN = 4  # rough size of a token in English and numbers, used when no tokenizer is known


class LLMUnavailableError(MatsearchError):
    """The LLM server was not reached after all retries; the run stops and `resume` continues."""


class LLMConfigError(MatsearchError):
    """The LLM backend is misconfigured: missing model, missing or rejected API key."""


class OutputMode(StrEnum):
    """How an answer was asked for, recorded with every call."""

    JSON_SCHEMA = "json_schema"  # the request carried the schema and the server accepted it
    FREE_TEXT = "free_text"  # no schema was asked for; the answer is parsed as text
    FREE_TEXT_FALLBACK = "free_text_fallback"  # a schema was asked for, the server refused it


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion. `seed` makes repeated prompts distinct samples and cache keys;
    `json_schema`, when set, asks a server that supports it to constrain the answer to it."""

    messages: list[Message]
    temperature: float
    max_tokens: int
    seed: int | None = None
    top_p: float = 1.0
    json_schema: Mapping[str, Any] | None = None

    def sampling(self) -> dict[str, Any]:
        """The sampling parameters that change the answer (part of the cache key)."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "top_p": self.top_p,
        }


@dataclass(frozen=True)
class Completion:
    """One answer. Tokens are counted by the server (or the local tokenizer); cost is in USD and is
    None when the model's price is unknown, 0.0 when the answer came from the cache."""

    text: str
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    cached: bool
    finish_reason: str | None = None
    error: str | None = None  # set when the server refused this one request (e.g. "bad_request: ...")
    output_mode: OutputMode = OutputMode.FREE_TEXT


def prompt_hash(model: str, request: ChatRequest) -> str:
    """sha256 of model + messages + sampling parameters (+ the JSON schema when one is asked
    for): the cache key of a request."""
    key: dict[str, Any] = {
        "model": model,
        "messages": request.messages,
        "sampling": request.sampling(),
    }
    if request.json_schema is not None:
        key["json_schema"] = request.json_schema
    payload = json.dumps(
        key,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def estimate_tokens(messages: list[Message]) -> int:
    """Token count of a chat when no tokenizer is at hand: characters / 4 plus 4 per message."""
    return sum(len(m["content"]) // CHARS_PER_TOKEN + 4 for m in messages)


@runtime_checkable
class ChatBackend(Protocol):
    """A chat model behind the proposer. `name` is the proposer origin ("openai", "hf")."""

    name: str
    model: str
    context_tokens: int  # prompt + answer must fit in this many tokens
    structured_output: bool  # requests with a json_schema are answered under it (while True)

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens the prompt occupies (exact with a tokenizer, else `estimate_tokens`)."""
        ...

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """Answer every request, in order; LLMUnavailableError when the model cannot be reached."""
        ...
