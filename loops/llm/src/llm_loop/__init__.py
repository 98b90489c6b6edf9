"""The LLM loop: llm-alignment's adapter served by llm-serving's vLLM beside its base, evaluated
and gated by prompt-registry on rules the adapter never trained on."""

PROJECT = "llm-loop"
