"""Serve SmolLM2 (bf16 or quantized) with vLLM behind an OpenAI-compatible API, and benchmark it
against plain Hugging Face generation."""

PROJECT = "llm-serving"
