"""Chat backend for OpenAI and any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp,
`transformers serve`), with bounded concurrency, retries with exponential backoff, token and cost
accounting and a SQLite answer cache. The API key lives only inside the openai client: it is never
logged, cached or shown in a repr.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from matsearch.proposers.llm.backends.base import (
    ChatRequest,
    Completion,
    LLMConfigError,
    LLMUnavailableError,
    Message,
    OutputMode,
    estimate_tokens,
    prompt_hash,
)
from matsearch.proposers.llm.cache import CompletionCache

logger = logging.getLogger(__name__)

OPENAI_API_URL = "https://api.openai.com/v1"

# Estimated list prices, USD per million tokens (prompt, completion), as published by OpenAI, 2025.
PRICES_USD_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
_REFUSED = (400, 413, 422)  # the server refused this one request; other requests may still work
# a refusal whose message says one of these is taken as "no JSON-schema output on this server"
_SCHEMA_REFUSAL_WORDS = (
    "response_format",
    "json_schema",
    "schema",
    "guided",
    "grammar",
    "unsupported",
    "not supported",
)


def needs_api_key(base_url: str | None) -> bool:
    """True for OpenAI itself (no base URL, or api.openai.com); local servers accept any key."""
    return base_url is None or "api.openai.com" in base_url


def price_for(model: str) -> tuple[float, float] | None:
    """(prompt, completion) USD per million tokens for a known model or dated snapshot of one."""
    matches = [name for name in PRICES_USD_PER_MTOK if model == name or model.startswith(name + "-")]
    return PRICES_USD_PER_MTOK[max(matches, key=len)] if matches else None


class MalformedReply(Exception):
    """The server answered (HTTP 200) with a body that is not a chat completion."""


def _check_reply(response: Any) -> Any:
    """The response when it has the shape of a chat completion; else MalformedReply."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise MalformedReply("a body without a list of choices")
    for choice in choices[:1]:
        content = getattr(getattr(choice, "message", None), "content", None)
        if content is not None and not isinstance(content, str):
            raise MalformedReply("a choice whose message content is not text")
    usage = getattr(response, "usage", None)
    if usage is not None:
        tokens = (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if not all(isinstance(t, int) for t in tokens):
            raise MalformedReply("token counts that are not integers")
    return response


def _transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, dropped connections, malformed replies, 408/409/429 and 5xx."""
    if isinstance(exc, openai.APIConnectionError | MalformedReply):  # incl. APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (
        exc.status_code in (408, 409, 429) or exc.status_code >= 500
    )


def _refuses_schema(exc: openai.APIStatusError) -> bool:
    """A 400/422/501 answer that names the response format or an unsupported feature."""
    if exc.status_code not in (400, 422, 501):
        return False
    text = f"{exc.message} {exc.body}".lower()
    return any(word in text for word in _SCHEMA_REFUSAL_WORDS)


def _describe(exc: BaseException) -> str:
    """Error class and HTTP status only; server messages stay out (they may echo headers)."""
    if isinstance(exc, MalformedReply):
        return f"a malformed reply: {exc}"
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" (HTTP {status})" if status else "")


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server.

    `model`, `base_url` and `api_key` come from the arguments or from OPENAI_API_KEY and
    OPENAI_BASE_URL. Requests run `max_concurrency` at a time; each is retried on transient errors
    with exponential backoff (starting at `backoff_initial_s`, at most `backoff_max_s` between
    attempts) until `max_attempts` attempts or `max_total_s` seconds have been spent, then
    LLMUnavailableError is raised. `timeout_s` bounds one HTTP request. Answers are cached in
    `cache_path` (SQLite) by prompt hash. `tokenizer` (a local path or hub id) makes prompt-size
    checks exact; otherwise tokens are estimated as characters / 4. Prices are USD per million
    tokens (prompt, completion); the default is looked up by model name.

    With `structured_output`, a request that carries a JSON schema is sent with
    `response_format: {type: json_schema, ...}`. A server that refuses it (HTTP 400/422/501 naming
    the response format or an unsupported feature) is asked again without it, and from then on
    every request goes out as free text; each Completion records its `output_mode`.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_path: Path | str | None = None,
        max_concurrency: int = 4,
        timeout_s: float = 120.0,
        max_attempts: int = 6,
        max_total_s: float = 600.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        context_tokens: int = 128_000,
        tokenizer: str | None = None,
        price_usd_per_mtok: tuple[float, float] | None = None,
        structured_output: bool = True,
    ) -> None:
        if max_concurrency < 1 or max_attempts < 1:
            raise LLMConfigError(
                f"max_concurrency ({max_concurrency}) and max_attempts ({max_attempts}) must be at least 1"
            )
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.max_total_s = max_total_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.context_tokens = context_tokens
        self.structured_output = structured_output
        self.price_usd_per_mtok = price_usd_per_mtok or price_for(model)
        official = needs_api_key(self.base_url)
        self._max_tokens_param = "max_completion_tokens" if official else "max_tokens"
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if official:
                raise LLMConfigError(
                    "No OpenAI API key: set the OPENAI_API_KEY environment variable or api_key in the spec."
                )
            key = "no-key"  # local servers usually accept any key
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=timeout_s)
        self._cache = CompletionCache(cache_path) if cache_path is not None else None
        self._tokenizer_name = tokenizer
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.where!r})"

    @property
    def where(self) -> str:
        return self.base_url or OPENAI_API_URL

    # --- tokens ---------------------------------------------------------------------------

    def count_tokens(self, messages: list[Message]) -> int:
        """Prompt tokens: exact with the configured tokenizer, else characters / 4."""
        if self._tokenizer_name is None:
            return estimate_tokens(messages)
        if self._tokenizer is None:
            from matsearch.proposers.llm.backends.hf_backend import load_tokenizer

            self._tokenizer = load_tokenizer(self._tokenizer_name)
        from matsearch.proposers.llm.backends.hf_backend import chat_token_count

        return chat_token_count(self._tokenizer, messages)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_usd_per_mtok is None:
            return None
        prompt_price, completion_price = self.price_usd_per_mtok
        return (prompt_tokens * prompt_price + completion_tokens * completion_price) / 1e6

    # --- requests -------------------------------------------------------------------------

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """Answers in request order; cached answers are reused, the rest fetched concurrently.
        Answers fetched before a failure are cached: a resumed run does not pay twice."""
        keys = [prompt_hash(self.model, r) for r in requests]
        results: dict[str, Completion] = {}
        todo: dict[str, ChatRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            hit = self._cache.get(key) if self._cache is not None else None
            if hit is not None:
                results[key] = hit
            else:
                todo[key] = request
        if todo:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(todo))) as pool:
                futures = {key: pool.submit(self._fetch, key, request) for key, request in todo.items()}
            errors = [f.exception() for f in futures.values() if f.exception() is not None]
            if errors:
                raise errors[0]  # type: ignore[misc]
            results.update({key: f.result() for key, f in futures.items()})
        return [results[key] for key in keys]

    def _wait_s(self, state: RetryCallState) -> float:
        """Exponential backoff, or the server's Retry-After when it gives one (both capped)."""
        exc = state.outcome.exception() if state.outcome else None
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            wait = float(retry_after) if retry_after is not None else None
        except ValueError:
            wait = None
        if wait is None:
            wait = self.backoff_initial_s * 2 ** (state.attempt_number - 1)
        return min(wait, self.backoff_max_s)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.warning(
            "LLM request to %s failed with %s; attempt %d of %d, next in %.2f s",
            self.where,
            _describe(exc) if exc else "?",
            state.attempt_number,
            self.max_attempts,
            state.next_action.sleep if state.next_action else 0.0,
        )

    def _fetch(self, key: str, request: ChatRequest) -> Completion:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            self._max_tokens_param: request.max_tokens,
        }
        if request.seed is not None:
            params["seed"] = request.seed
        schema = request.json_schema if self.structured_output else None
        if schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "structures", "strict": True, "schema": dict(schema)},
            }
            mode = OutputMode.JSON_SCHEMA
        elif request.json_schema is not None:
            mode = OutputMode.FREE_TEXT_FALLBACK
        else:
            mode = OutputMode.FREE_TEXT
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_total_s),
            wait=self._wait_s,
            retry=retry_if_exception(_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            response = retrying(self._create, **params)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMConfigError(
                f"The LLM server at {self.where} rejected the API key ({_describe(exc)}); "
                "set OPENAI_API_KEY or api_key in the spec."
            ) from None
        except openai.NotFoundError:
            raise LLMConfigError(
                f"The LLM server at {self.where} answered 404 for model '{self.model}'; "
                "check the model name and that base_url ends in /v1."
            ) from None
        except openai.APIStatusError as exc:
            if schema is not None and _refuses_schema(exc):
                self._schema_refused(exc)
                return self._fetch(key, request)
            if exc.status_code in _REFUSED:
                logger.warning("LLM server refused a request: %s", _describe(exc))
                return Completion(
                    "", key, 0, 0, 0.0, False, None, f"http_{exc.status_code}", output_mode=mode
                )
            if not _transient(exc):
                raise LLMConfigError(
                    f"The LLM server at {self.where} answered {_describe(exc)}, which matsearch "
                    "cannot handle; check the server and its logs."
                ) from None
            raise self._unavailable(exc, started) from None
        except (openai.APIConnectionError, MalformedReply) as exc:
            raise self._unavailable(exc, started) from None
        return self._completion(key, request, response, mode)

    def _schema_refused(self, exc: openai.APIStatusError) -> None:
        if self.structured_output:
            logger.warning(
                "The LLM server at %s refused JSON-schema output (%s); answers are requested and "
                "parsed as free text from now on.",
                self.where,
                _describe(exc),
            )
        self.structured_output = False

    def _create(self, **params: Any) -> Any:
        """One request; a reply that is not a well-formed chat completion raises MalformedReply."""
        try:
            response = self._client.chat.completions.create(**params)
        except ValueError:  # the body is not JSON (json.JSONDecodeError)
            raise MalformedReply("a body that is not JSON") from None
        return _check_reply(response)

    def _unavailable(self, exc: BaseException, started: float) -> LLMUnavailableError:
        return LLMUnavailableError(
            f"The LLM server at {self.where} did not answer within {self.max_attempts} attempts "
            f"and {time.monotonic() - started:.1f} s (last error: {_describe(exc)}); "
            "start or fix it, then run `matsearch resume`."
        )

    def _completion(self, key: str, request: ChatRequest, response: Any, mode: OutputMode) -> Completion:
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice is not None else None) or ""
        usage = response.usage
        if usage is not None:
            prompt_tokens, completion_tokens = (
                int(usage.prompt_tokens),
                int(usage.completion_tokens),
            )
        else:  # some servers do not count; estimate
            prompt_tokens = self.count_tokens(request.messages)
            completion_tokens = estimate_tokens([{"role": "assistant", "content": text}])
        completion = Completion(
            text=text,
            prompt_hash=key,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.cost_usd(prompt_tokens, completion_tokens),
            cached=False,
            finish_reason=choice.finish_reason if choice is not None else None,
            output_mode=mode,
        )
        if self._cache is not None:
            self._cache.put(self.model, request, completion)
        return completion

    def close(self) -> None:
        """Release the HTTP client and the cache file."""
        self._client.close()
        if self._cache is not None:
            self._cache.close()
