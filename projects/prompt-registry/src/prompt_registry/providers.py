"""Model providers: local transformers generation (batched) and any OpenAI-compatible endpoint
(such as the llm-serving project's vLLM server, through the ``openai`` SDK), plus the on-disk
generation cache.

A provider turns :class:`GenerationRequest` s (a rendered user message and sampling parameters)
into :class:`Generation` s (the text and why it ended: ``length`` when cut at the token limit),
reports each finished one as it comes (so a failure later in a batch loses nothing finished), and
counts the model calls it made (``calls``: one per generated example), which is how the tests
prove that a cached rerun calls no model. Its ``identity()`` names what generates (the weights'
digest of a local model; the endpoint, the served name and the model the server reports for a
remote one): the cache key holds it with every generation parameter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from roadmap_lab.settings import cache_dir

from prompt_registry.errors import ProviderError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 32
    temperature: float = 0.0
    # Sampling seed (temperature > 0); a judge's repeats differ only in it.
    seed: int = 0


STOP, LENGTH = "stop", "length"


@dataclass(frozen=True)
class Generation:
    text: str
    # STOP: the model ended its answer; LENGTH: it was cut at max_new_tokens.
    finish_reason: str = STOP

    @property
    def truncated(self) -> bool:
        return self.finish_reason == LENGTH


# Hears of each finished generation: the request's index and the generation.
Finished = Callable[[int, Generation], None]
Progress = Callable[[int], None]


class Provider(Protocol):
    # A short description for reports (the cache uses ``identity()``).
    name: str
    calls: int

    def identity(self) -> str: ...

    def generate(
        self, requests: Sequence[GenerationRequest], finished: Finished | None = None
    ) -> list[Generation]: ...


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# File digests by (device, inode, path, size, mtime, ctime), like git's index: a process hashes a
# model's files once, and a rerun in a new process finds them in the machine's digest store
# instead of hashing gigabytes again; any write to a file moves its ctime, so it is hashed again.
FileKey = tuple[int, int, str, int, int, int]
_FILE_DIGESTS: dict[FileKey, str] = {}
DIGEST_STORE_ENV = "PROMPT_REGISTRY_DIGEST_STORE"
# A digest is stored only for a file unchanged for this long: one written within the same clock
# tick as its hashing could keep its key with other content ("racily clean" in git's words).
SETTLED_NS = 2_000_000_000


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _file_key(path: Path) -> FileKey:
    stat = path.stat()
    return (
        stat.st_dev,
        stat.st_ino,
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        stat.st_ctime_ns,
    )


def _digest_store() -> Path | None:
    """The machine's digest store; None when ``PROMPT_REGISTRY_DIGEST_STORE=off`` (for file
    systems whose ctime cannot be trusted, such as some network mounts)."""
    if os.environ.get(DIGEST_STORE_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    return cache_dir() / "file-digests.sqlite"


def _hash_and_store(key: FileKey, path: Path, db: sqlite3.Connection | None) -> str:
    digest = sha256_file(path)
    settled = time.time_ns() - key[5] > SETTLED_NS
    if db is not None and settled and _file_key(path) == key:
        db.execute(
            "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?)", (*key, digest)
        )
    return digest


def _stored_digest(key: FileKey, path: Path) -> str:
    """The digest from the digest store, hashed (and stored, once the file has settled) when
    missing; an unusable or disabled store only costs the hashing."""
    store = _digest_store()
    if store is None:
        return sha256_file(path)
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(store, timeout=30)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS file_digests (device INTEGER, inode INTEGER, "
                "path TEXT, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, "
                "sha256 TEXT NOT NULL, "
                "PRIMARY KEY (device, inode, path, size, mtime_ns, ctime_ns))"
            )
            row = db.execute(
                "SELECT sha256 FROM file_digests WHERE device = ? AND inode = ? AND path = ? "
                "AND size = ? AND mtime_ns = ? AND ctime_ns = ?",
                key,
            ).fetchone()
            return str(row[0]) if row is not None else _hash_and_store(key, path, db)
    except (sqlite3.Error, OSError) as error:
        logger.warning("file digest store %s unusable (%s): hashing %s", store, error, path)
        return sha256_file(path)


def file_digest(path: Path) -> str:
    key = _file_key(path)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = _stored_digest(key, path)
    return _FILE_DIGESTS[key]


def forget_file_digests() -> None:
    """Forget this process's file digests, as a new process starts (the store stays)."""
    _FILE_DIGESTS.clear()


def folder_digest(folder: Path) -> str:
    """sha256 over every file of a model folder (weights, config, tokenizer, chat template)."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    if not files:
        raise ProviderError(f"model folder {folder} holds no files")
    listing = {str(path.relative_to(folder)): file_digest(path) for path in files}
    return hashlib.sha256(canonical(listing).encode("utf-8")).hexdigest()


class LocalProvider:
    """Greedy (or sampled) generation with a transformers causal LM through its chat template,
    ``batch_size`` requests at a time (left padding; requests sorted by length so that a batch
    pads little). The model loads on the first call, so a fully cached run never loads it."""

    DTYPE = "float32"

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
        self.name = f"local:{model_dir if model_dir else 'SmolLM2-135M-Instruct'}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._stop_ids: set[int] = set()

    def folder(self) -> Path:
        if self.model_dir is not None:
            return self.model_dir
        from roadmap_lab.models import smollm2_dir

        return smollm2_dir()

    def identity(self) -> str:
        """The weights (every file of the model folder) and how they are run."""
        return canonical({"local": folder_digest(self.folder()), "dtype": self.DTYPE, "top_p": 1.0})

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = self.folder()
        self._model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, self.DTYPE), local_files_only=True
        ).eval()
        self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        eos = self._model.generation_config.eos_token_id
        self._stop_ids = {
            *(eos if isinstance(eos, list) else [eos]),
            self._tokenizer.eos_token_id,
            self._tokenizer.pad_token_id,
        } - {None}

    def _chat(self, prompt: str) -> str:
        text = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def generate(
        self, requests: Sequence[GenerationRequest], finished: Finished | None = None
    ) -> list[Generation]:
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
        outputs: list[Generation] = [Generation("")] * len(requests)
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
            for index, generation in zip(batch, generated, strict=True):
                outputs[index] = generation
                if finished:
                    finished(index, generation)
            start += len(batch)
            self.calls += len(batch)
            if self.progress:
                self.progress(len(batch))
        return outputs

    def _generate_batch(self, texts: list[str], params: GenerationRequest) -> list[Generation]:
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
        return [
            Generation(
                self._tokenizer.decode(row, skip_special_tokens=True).strip(),
                STOP if self._stop_ids & set(row.tolist()) else LENGTH,
            )
            for row in new_tokens
        ]


class OpenAIProvider:
    """Chat completions from an OpenAI-compatible endpoint through the ``openai`` SDK,
    ``concurrency`` requests in flight. The SDK retries 408/409/429/5xx answers and lost
    connections ``max_retries`` times with exponential backoff (honouring Retry-After); a request
    that still fails stops the batch, and what finished before is reported (``finished``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "EMPTY",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        progress: Progress | None = None,
    ) -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self.model, self.concurrency = model, concurrency
        self.api_key, self.timeout_s, self.max_retries = api_key, timeout_s, max_retries
        self.progress = progress
        self.name = f"openai:{self.base_url}:{model}"
        self.calls = 0
        self._lock = threading.Lock()
        self._identity: str | None = None
        self._client = OpenAI(
            base_url=self.base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries
        )

    def serving(self, model: str) -> OpenAIProvider:
        """The same endpoint asked for another model it serves by name (an adapter such as
        ``dpo`` beside the base): its own identity, so its cache entries are its own."""
        if model == self.model:
            return self
        return OpenAIProvider(
            self.base_url, model, self.api_key, self.concurrency, self.timeout_s,
            self.max_retries, self.progress,
        )  # fmt: skip

    def _failure(self, error: Exception) -> ProviderError:
        import openai

        if isinstance(error, openai.APIStatusError):
            return ProviderError(
                f"{self.base_url} answered {error.status_code}: {str(error.message)[:200]}"
            )
        return ProviderError(f"cannot reach {self.base_url}: {type(error).__name__}")

    def identity(self) -> str:
        """The endpoint, the served model name and the model the server lists under it (for
        vLLM: the weights' path as ``root``); asked once per provider. ``GET /v1/models`` (the
        list) because vLLM serves no ``/v1/models/<name>``."""
        import openai

        if self._identity is None:
            try:
                listed = [m.to_dict() for m in self._client.models.list()]
            except openai.OpenAIError as error:
                raise self._failure(error) from None
            reported = next((m for m in listed if m.get("id") == self.model), None)
            if reported is None:
                served = ", ".join(str(m.get("id")) for m in listed) or "none"
                raise ProviderError(
                    f"{self.base_url} serves no model named {self.model!r} (it serves: "
                    f"{served}; set PROMPT_REGISTRY_OPENAI_MODEL, or the version's model.name)"
                )
            # What changes per request is no part of the model.
            stable = {k: v for k, v in reported.items() if k not in ("created", "permission")}
            self._identity = canonical(
                {"openai": self.base_url, "model": self.model, "reported": stable}
            )
        return self._identity

    def _complete(self, request: GenerationRequest) -> Generation:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": request.prompt}],
                max_tokens=request.max_new_tokens,
                temperature=request.temperature,
                seed=request.seed,
            )
            choice = response.choices[0]
            generation = Generation(
                str(choice.message.content or "").strip(), choice.finish_reason or STOP
            )
        except openai.OpenAIError as error:
            raise self._failure(error) from None
        except (AttributeError, IndexError, TypeError):
            raise ProviderError(f"{self.base_url}: not a chat completion") from None
        with self._lock:
            self.calls += 1
        if self.progress:
            self.progress(1)
        return generation

    def generate(
        self, requests: Sequence[GenerationRequest], finished: Finished | None = None
    ) -> list[Generation]:
        """Every request, in order; the first failure cancels what has not started."""
        outputs: list[Generation | None] = [None] * len(requests)
        failures: list[ProviderError] = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._complete, r): i for i, r in enumerate(requests)}
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    generation = future.result()
                except ProviderError as error:
                    failures.append(error)
                    for pending in futures:
                        pending.cancel()
                    continue
                outputs[futures[future]] = generation
                if finished:
                    finished(futures[future], generation)
        if failures:
            done = sum(output is not None for output in outputs)
            raise ProviderError(f"{failures[0]} ({done} of {len(requests)} generations finished)")
        return [output for output in outputs if output is not None]


class GenerationCache:
    """Generations on disk (sqlite), keyed by what generated (the provider's identity) and
    every generation parameter of the request (the rendered prompt included)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS completions "
                "(key TEXT PRIMARY KEY, text TEXT NOT NULL, finish_reason TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    @staticmethod
    def key(identity: str, request: GenerationRequest) -> str:
        text = canonical({"model": identity, **asdict(request)})
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get_many(self, keys: Sequence[str]) -> dict[str, Generation]:
        found: dict[str, Generation] = {}
        with self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, text, finish_reason FROM completions WHERE key IN ({marks})",
                    chunk,
                )
                found.update({key: Generation(text, reason) for key, text, reason in rows})
        return found

    def put_many(self, items: dict[str, Generation]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?)",
                [(key, g.text, g.finish_reason) for key, g in items.items()],
            )


@dataclass
class CachedGeneration:
    generations: list[Generation]
    hits: int
    misses: int

    @property
    def texts(self) -> list[str]:
        return [g.text for g in self.generations]


def generate_cached(
    provider: Provider, requests: Sequence[GenerationRequest], cache: GenerationCache | None
) -> CachedGeneration:
    """Generate what the cache lacks (in one provider call, so batching still applies); each
    generation is kept as it finishes, so a failure later in the batch loses none of them."""
    if cache is None:
        return CachedGeneration(provider.generate(requests), 0, len(requests))
    identity = provider.identity()
    keys = [GenerationCache.key(identity, request) for request in requests]
    found = cache.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in found]
    new: dict[str, Generation] = {}

    def keep(position: int, generation: Generation) -> None:
        new[keys[missing[position]]] = generation

    try:
        provider.generate([requests[i] for i in missing], keep)
    except ProviderError as error:
        cache.put_many(new)
        raise ProviderError(f"{error}; {len(new)} kept in the cache") from None
    cache.put_many(new)
    found.update(new)
    return CachedGeneration([found[k] for k in keys], len(keys) - len(missing), len(missing))
