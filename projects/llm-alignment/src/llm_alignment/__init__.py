"""Align a small instruction model with preferences (DPO, a reward model, GRPO) and measure it."""

PROJECT = "llm-alignment"
