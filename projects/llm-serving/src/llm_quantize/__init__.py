"""Quantized variants of SmolLM2-135M-Instruct for vLLM, made with llmcompressor (own resolve)."""
