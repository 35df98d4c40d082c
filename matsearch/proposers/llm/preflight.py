"""What can be checked of an LLM proposer entry before a run starts: its prompt templates, the
package it needs, an API key for OpenAI itself and, for `hf`, that the model can be found. Loads
nothing large and sends no request."""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

from matsearch.proposers.llm.backends.base import LLMConfigError
from matsearch.proposers.prompts import load_templates

if TYPE_CHECKING:
    from matsearch.spec import HFProposerSpec, OpenAIProposerSpec


def check_openai_proposer(spec: OpenAIProposerSpec, index: int) -> None:
    """Raise SpecError or LLMConfigError (one sentence naming `proposers[index]`): templates, the
    openai package, and an API key when the server is OpenAI itself."""
    where = _check_templates_and_package(spec, index, "openai")
    from matsearch.proposers.llm.backends.openai_backend import needs_api_key

    base_url = spec.base_url or os.environ.get("OPENAI_BASE_URL") or None
    key = (spec.api_key.get_secret_value() if spec.api_key else None) or os.environ.get("OPENAI_API_KEY")
    if needs_api_key(base_url) and not key:
        raise LLMConfigError(
            f"{where} has no API key: set the OPENAI_API_KEY environment variable or api_key in the "
            "spec, or point base_url at a local server"
        )


def check_hf_proposer(spec: HFProposerSpec, index: int) -> None:
    """Raise SpecError or LLMConfigError (one sentence naming `proposers[index]`): templates, the
    transformers package, and a model that is a local folder or in the Hugging Face cache."""
    where = _check_templates_and_package(spec, index, "transformers")
    from matsearch.proposers.llm.backends.hf_backend import check_model_source

    try:
        check_model_source(spec.model)
    except LLMConfigError as exc:
        message = str(exc)
        raise LLMConfigError(f"{where}: {message[:1].lower()}{message[1:]}") from None


def _check_templates_and_package(spec: OpenAIProposerSpec | HFProposerSpec, index: int, package: str) -> str:
    """Check what every LLM kind needs (readable templates, `package` installed); returns how
    messages name the entry."""
    where = f"proposers[{index}] ({spec.kind}, model '{spec.model}')"
    load_templates(spec.templates)
    if importlib.util.find_spec(package) is None:
        raise LLMConfigError(
            f"{where} needs the {package} package; install it with pip install 'matsearch[llm]'"
        )
    return where
