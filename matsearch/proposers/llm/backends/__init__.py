"""Chat backends of the LLM proposer: `openai` (OpenAI-compatible servers) and `hf` (in-process)."""
