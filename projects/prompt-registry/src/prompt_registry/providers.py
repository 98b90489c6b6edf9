"""Model providers: local transformers generation (batched) and any OpenAI-compatible endpoint
(such as the llm-serving project's vLLM server), plus the on-disk generation cache.

A provider turns :class:`GenerationRequest` s (a rendered user message and sampling parameters)
into texts, and counts the model calls it made (``calls``: one per generated example), which is
how the tests prove that a cached rerun calls no model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from prompt_registry.errors import ProviderError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 32
    temperature: float = 0.0
    # Sampling seed (temperature > 0); a judge's repeats differ only in it.
    seed: int = 0


class Provider(Protocol):
    # What produced a generation (provider, model, revision): part of the cache key.
    identity: str
    calls: int

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...


Progress = Callable[[int], None]


class LocalProvider:
    """Greedy (or sampled) generation with a transformers causal LM through its chat template,
    ``batch_size`` requests at a time (left padding; requests sorted by length so that a batch
    pads little). The model loads on the first call, so a fully cached run never loads it."""

    def __init__(
        self,
        model_dir: Path | None = None,
        batch_size: int = 16,
        progress: Progress | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.progress = progress
        self.calls = 0
        name = str(model_dir) if model_dir else "SmolLM2-135M-Instruct"
        self.identity = f"local:{name}"
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.model_dir is None:
            from roadmap_lab.models import load_smollm2

            self._model, self._tokenizer = load_smollm2(torch.float32)
        else:
            self._model = AutoModelForCausalLM.from_pretrained(
                self.model_dir, dtype=torch.float32, local_files_only=True
            ).eval()
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    def _chat(self, prompt: str) -> str:
        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        if not requests:
            return []
        self._load()
        texts = [self._chat(r.prompt) for r in requests]
        lengths = [len(self._tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        # Batches share sampling parameters; within them, similar lengths pad least.
        order = sorted(
            range(len(requests)),
            key=lambda i: (requests[i].max_new_tokens, requests[i].temperature, lengths[i]),
        )
        outputs: list[str] = [""] * len(requests)
        start = 0
        while start < len(order):
            first = requests[order[start]]
            batch = [order[start]]
            for index in order[start + 1 : start + self.batch_size]:
                r = requests[index]
                if (r.max_new_tokens, r.temperature) != (first.max_new_tokens, first.temperature):
                    break
                batch.append(index)
            generated = self._generate_batch([texts[i] for i in batch], first)
            for index, text in zip(batch, generated, strict=True):
                outputs[index] = text
            start += len(batch)
            self.calls += len(batch)
            if self.progress:
                self.progress(len(batch))
        return outputs

    def _generate_batch(self, texts: list[str], params: GenerationRequest) -> list[str]:
        import torch

        encoded = self._tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        sampling: dict[str, Any] = {"do_sample": False}
        if params.temperature > 0:
            torch.manual_seed(params.seed)
            sampling = {"do_sample": True, "temperature": params.temperature, "top_p": 1.0}
        with torch.inference_mode():
            generated = self._model.generate(
                **encoded,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self._tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        return [self._tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]


class OpenAIProvider:
    """Chat completions from an OpenAI-compatible endpoint (``POST {base_url}/chat/completions``),
    ``concurrency`` requests in flight."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        progress: Progress | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key = model, api_key
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.progress = progress
        self.identity = f"openai:{self.base_url}:{model}"
        self.calls = 0
        self._lock = threading.Lock()

    def _complete(self, request: GenerationRequest) -> str:
        import requests

        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        url = f"{self.base_url}/chat/completions"
        try:
            response = requests.post(
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as error:
            raise ProviderError(f"cannot reach {url}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise ProviderError(f"{url} answered {response.status_code}: {response.text[:200]}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderError(f"{url}: not a chat completion: {response.text[:200]}") from None
        with self._lock:
            self.calls += 1
        if self.progress:
            self.progress(1)
        return str(content or "").strip()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete, requests))


class GenerationCache:
    """Generations on disk (sqlite), keyed by provider, prompt version, input and parameters."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(
        identity: str, prompt_digest: str, values: dict[str, Any], request: GenerationRequest
    ) -> str:
        canonical = json.dumps(
            {"provider": identity, "prompt": prompt_digest, "input": values, **asdict(request)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, text FROM generations WHERE key IN ({marks})", chunk
                )
                found.update(dict(rows.fetchall()))
        return found

    def put_many(self, items: dict[str, str]) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?)", items.items())


@dataclass
class CachedGeneration:
    texts: list[str]
    hits: int
    misses: int


def generate_cached(
    provider: Provider,
    requests: Sequence[GenerationRequest],
    keys: Sequence[str],
    cache: GenerationCache | None,
) -> CachedGeneration:
    """Generate what the cache lacks (in one provider call, so batching still applies)."""
    if cache is None:
        return CachedGeneration(provider.generate(requests), 0, len(requests))
    found = cache.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in found]
    if missing:
        texts = provider.generate([requests[i] for i in missing])
        new = {keys[i]: text for i, text in zip(missing, texts, strict=True)}
        cache.put_many(new)
        found.update(new)
    return CachedGeneration([found[k] for k in keys], len(keys) - len(missing), len(missing))
