"""Chat backend running a transformers model in-process: chat template, batched sampling, a device
and dtype of choice, and the same SQLite answer cache as the server backend. Offline
(HF_HUB_OFFLINE=1 or MATSEARCH_OFFLINE=1) models come from local folders or the local Hugging Face
cache only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

from matsearch.data import downloads_allowed
from matsearch.proposers.llm.backends.base import (
    ChatRequest,
    Completion,
    LLMConfigError,
    Message,
    prompt_hash,
)
from matsearch.proposers.llm.cache import CompletionCache

logger = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16")
DEFAULT_CONTEXT_TOKENS = 4096  # used when neither config nor tokenizer states a context length


def hub_offline() -> bool:
    """True when Hugging Face downloads are off (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE or
    MATSEARCH_OFFLINE set)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    hf_off = any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)
    return hf_off or not downloads_allowed()


def _source(model: str | Path) -> tuple[str, bool]:
    """(what to pass to from_pretrained, local_files_only); LLMConfigError for a missing path."""
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise LLMConfigError(
                f"The hf model folder '{path}' holds no config.json; give a transformers model folder."
            )
        return str(path), True
    if path.exists() or path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1:
        raise LLMConfigError(
            f"The hf model path '{path}' does not exist; give a local model folder or a Hugging Face hub id."
        )
    return text, hub_offline()


def check_model_source(model: str | Path) -> None:
    """LLMConfigError, before anything is loaded, when `model` is a missing local path, or a hub id
    that is not in the local Hugging Face cache while downloads are off."""
    source, local_only = _source(model)
    if local_only and not Path(source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(source, "config.json"), str):
            raise _load_error(source, local_only, FileNotFoundError(source))


def _load_error(model: str, local_only: bool, exc: Exception) -> LLMConfigError:
    if local_only:
        return LLMConfigError(
            f"The hf model '{model}' is not in the local Hugging Face cache and downloads are off "
            "(HF_HUB_OFFLINE=1); download it on a connected machine or give a local model folder."
        )
    return LLMConfigError(
        f"The hf model '{model}' could not be loaded ({type(exc).__name__}); check the hub id and "
        "network access, or give a local model folder."
    )


def load_tokenizer(model: str | Path) -> Any:
    """The model's tokenizer, padding on the left for batched generation."""
    from transformers import AutoTokenizer

    source, local_only = _source(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise _load_error(str(model), local_only, exc) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _ids(encoded: Any) -> list[int]:
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def chat_token_count(tokenizer: Any, messages: list[Message]) -> int:
    """Tokens of the chat after the model's chat template (with the generation prompt)."""
    if getattr(tokenizer, "chat_template", None):
        return len(_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)))
    return sum(len(tokenizer(m["content"])["input_ids"]) + 4 for m in messages)


class HFBackend:
    """A transformers causal LM in-process. `model` is a local folder or a hub id; `device` 'cpu',
    'cuda', 'cuda:1' (default: cuda when available); `dtype` one of DTYPES; `batch_size` prompts
    are generated together. Answers are cached in `cache_path` (SQLite) by prompt hash.

    No constrained decoding: requests carrying a JSON schema are generated as free text and parsed
    by the tolerant parser (`output_mode` free_text); prompts then describe the POSCAR format."""

    name = "hf"
    structured_output = False

    def __init__(
        self,
        model: str | Path,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 4,
        cache_path: Path | str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        if dtype not in DTYPES:
            raise LLMConfigError(f"dtype '{dtype}' is not supported; allowed: {', '.join(DTYPES)}")
        if batch_size < 1:
            raise LLMConfigError(f"batch_size must be at least 1, not {batch_size}")
        self.model = str(model)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(model)
        if not getattr(self.tokenizer, "chat_template", None):
            raise LLMConfigError(
                f"The hf model '{model}' has no chat template; use an instruction-tuned model."
            )
        source, local_only = _source(model)
        try:
            self._lm = AutoModelForCausalLM.from_pretrained(
                source,
                local_files_only=local_only,
                dtype="auto" if dtype == "auto" else getattr(torch, dtype),
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise _load_error(self.model, local_only, exc) from None
        self._lm.to(self.device).eval()
        config = self._lm.config.get_text_config()
        limit = getattr(config, "max_position_embeddings", None) or self.tokenizer.model_max_length
        self.context_tokens = int(limit) if limit and limit < 10_000_000 else DEFAULT_CONTEXT_TOKENS
        self._cache = CompletionCache(cache_path) if cache_path is not None else None

    def __repr__(self) -> str:
        return f"HFBackend(model={self.model!r}, device='{self.device}')"

    def count_tokens(self, messages: list[Message]) -> int:
        return chat_token_count(self.tokenizer, messages)

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """Answers in request order: cached ones reused, the rest generated in batches of
        `batch_size` that share temperature, top_p and max_tokens."""
        keys = [prompt_hash(self.model, r) for r in requests]
        results: dict[str, Completion] = {}
        todo: dict[str, ChatRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            hit = self._cache.get(key) if self._cache is not None else None
            if hit is not None:
                results[key] = hit
            else:
                todo[key] = request

        def sampling(item: tuple[str, ChatRequest]) -> tuple[float, float, int]:
            return item[1].temperature, item[1].top_p, item[1].max_tokens

        for _, group in groupby(sorted(todo.items(), key=sampling), key=sampling):
            items = list(group)
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                for (key, request), completion in zip(batch, self._generate(batch), strict=True):
                    results[key] = completion
                    if self._cache is not None:
                        self._cache.put(self.model, request, completion)
        return [results[key] for key in keys]

    def _generate(self, batch: list[tuple[str, ChatRequest]]) -> list[Completion]:
        import torch

        first = batch[0][1]
        texts = [
            self.tokenizer.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False)
            for _, r in batch
        ]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        sample = first.temperature > 0
        options: dict[str, Any] = {"max_new_tokens": first.max_tokens, "do_sample": sample}
        if sample:
            options |= {"temperature": first.temperature, "top_p": first.top_p}
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(first.seed if first.seed is not None else 0)
            output = self._lm.generate(**encoded, **options, pad_token_id=self.tokenizer.pad_token_id)
        prompt_width = encoded["input_ids"].shape[1]
        eos = self._lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        completions = []
        for row, (key, _), mask in zip(output, batch, encoded["attention_mask"], strict=True):
            new = row[prompt_width:].tolist()
            stop = next((i for i, t in enumerate(new) if t in eos_ids), None)
            used = new if stop is None else new[: stop + 1]
            completions.append(
                Completion(
                    text=self.tokenizer.decode(used, skip_special_tokens=True),
                    prompt_hash=key,
                    prompt_tokens=int(mask.sum()),
                    completion_tokens=len(used),
                    cost_usd=0.0,
                    cached=False,
                    finish_reason="length" if stop is None else "stop",
                )
            )
        return completions

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
