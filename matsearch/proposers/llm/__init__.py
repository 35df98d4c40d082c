"""LLM proposers: prompts from scored parents, chat backends, and a tolerant parser of the answers.

Heavy clients (openai, transformers) are imported only when a backend is built.
"""

from matsearch.proposers.llm.backends.base import (
    ChatBackend,
    ChatRequest,
    Completion,
    LLMConfigError,
    LLMUnavailableError,
)
from matsearch.proposers.llm.parse import ParseResult, Rejection, RejectReason, parse_response
from matsearch.proposers.llm.proposer import LLMProposer

__all__ = [
    "ChatBackend",
    "ChatRequest",
    "Completion",
    "LLMConfigError",
    "LLMProposer",
    "LLMUnavailableError",
    "ParseResult",
    "RejectReason",
    "Rejection",
    "parse_response",
]
