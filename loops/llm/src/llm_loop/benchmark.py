"""The loop's benchmark (``python -m llm_loop benchmark``): the demo's evaluation through vLLM
(the adapter trained here by default), then the same prompt version through Hugging Face
transformers: prompt-registry's local provider on the base, and on the adapter merged into the
base by llm-alignment's ``merge-adapter`` (the HF baseline, measured in the same run).

vLLM serves in bfloat16 and HF generates in float32 (the local provider's default), and vLLM
batches continuously where HF pads a static batch: greedy answers may part after a token whose
top two logits are closer than bfloat16's rounding, and every later token differs. The
comparison therefore reports, per model, how many answers are identical and how many verdicts
agree, and whether HF's paired gain lies within vLLM's interval.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from roadmap_lab.results import BenchmarkConditions, Headline, ResultsWriter, headline_figure
from roadmap_lab.stats import Interval, mean_difference

from llm_loop import PROJECT
from llm_loop.adapter import Adapter
from llm_loop.control import control_lora
from llm_loop.demo import CLAIM, loop_record, settings_record
from llm_loop.errors import LlmLoopError
from llm_loop.evaluation import GateOutcome, PromptRegistry, evaluate_control, gate_adapter
from llm_loop.report import Pair, pair_answers, paired_gain
from llm_loop.serving import vllm_server
from llm_loop.settings import ENV_PREFIX, LoopSettings
from llm_loop.stack import check_inputs, obtain_adapter, tracking_server
from llm_loop.steps import Steps, pex_argv

logger = logging.getLogger(__name__)
HF_GAIN_FIGURE = "the adapter's pass-rate gain over the base, paired (held-out rules, HF)"


def hf_evaluation(
    settings: LoopSettings,
    steps: Steps,
    folder: Path,
    adapter: Adapter,
    outcome: GateOutcome,
    tracking_uri: str,
    limit: int | None = None,
) -> list[Pair]:
    """The base's version (v1) through prompt-registry's local provider: on the base, then on
    the adapter merged into it (the first ``limit`` examples, default all); the answers side by
    side."""
    merged = folder / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    steps.run(
        "llm-alignment merge-adapter",
        [*pex_argv(settings.alignment_pex, f"{ENV_PREFIX}ALIGNMENT_PEX"), "merge-adapter",
         adapter.uri, str(merged), "--tracking-uri", adapter.tracking_uri],
        settings.train_timeout_s,
    )  # fmt: skip
    cli = PromptRegistry(settings, steps, folder, tracking_uri, base_url="")
    local = ["--provider", "local", *(["--limit", str(limit)] if limit else [])]
    base = cli.evaluate(outcome.base_version, folder / "hf-base.json", local)
    merged_eval = cli.evaluate(
        outcome.base_version, folder / "hf-adapter.json", [*local, "--model-dir", str(merged)]
    )
    return pair_answers(base, merged_eval, outcome.golden)


def agreement(vllm: list[Pair], hf: list[Pair]) -> dict[str, Any]:
    """Per model: identical greedy answers and agreeing verdicts on the examples HF answered
    (the first of vLLM's); HF's gain against vLLM's interval (on all of vLLM's)."""
    if [p.id for p in vllm[: len(hf)]] != [p.id for p in hf]:
        raise LlmLoopError("HF answered examples that vLLM did not")
    record: dict[str, Any] = {"prompts": len(hf)}
    for side in ("base", "adapter"):
        pairs = [(getattr(v, side), getattr(h, side)) for v, h in zip(vllm, hf, strict=False)]
        record[side] = {
            "identical_answers": sum(a.output.strip() == b.output.strip() for a, b in pairs),
            "same_verdicts": sum(a.passed == b.passed for a, b in pairs),
            "passes_vllm": sum(a.passed for a, _ in pairs),
            "passes_hf": sum(b.passed for _, b in pairs),
        }
    vllm_gain, hf_gain = paired_gain(vllm), paired_gain(hf)
    record["vllm_gain"] = vllm_gain.as_dict()
    record["hf_gain"] = hf_gain.as_dict()
    record["hf_within_vllm_interval"] = vllm_gain.low <= hf_gain.estimate <= vllm_gain.high
    record["gain_difference_vllm_minus_hf"] = gain_difference(vllm[: len(hf)], hf).as_dict()
    record["disagreeing_verdicts"] = disagreements(vllm, hf)
    return record


def gain_difference(vllm: list[Pair], hf: list[Pair]) -> Interval:
    """vLLM's gain minus HF's on the same prompts: per prompt, (adapter - base) on each engine,
    paired bootstrap over the prompts (an interval around 0 when the engines agree)."""

    def gains(pairs: list[Pair]) -> list[float]:
        return [float(p.adapter.passed) - float(p.base.passed) for p in pairs]

    return mean_difference(gains(hf), gains(vllm))


def disagreements(vllm: list[Pair], hf: list[Pair]) -> list[dict[str, Any]]:
    """Every answer whose verdict differs between the engines, with both answers."""
    listed = []
    for v, h in zip(vllm, hf, strict=False):
        for side in ("base", "adapter"):
            a, b = getattr(v, side), getattr(h, side)
            if a.passed != b.passed:
                listed.append({"id": v.id, "rule": v.rule, "model": side, "vllm_passed": a.passed,
                               "vllm_answer": a.output, "hf_answer": b.output})  # fmt: skip
    return listed


def agreement_headline(vllm: list[Pair], hf: list[Pair], record: dict[str, Any]) -> list[Headline]:
    """HF's gain (no target of its own: it is judged by lying within vLLM's interval), the
    identical answers per model, and the difference of the two engines' gains."""
    within = "within" if record["hf_within_vllm_interval"] else "outside"
    n = record["prompts"]
    return [
        headline_figure(
            f"{HF_GAIN_FIGURE}: {within} vLLM's interval", None, "pass rate", baseline=0.0,
            interval=paired_gain(hf), digits=4, hf_within_vllm_interval=record[
                "hf_within_vllm_interval"],
        ),
        *(
            headline_figure(
                f"greedy answers identical, vLLM (bf16) vs HF (fp32): {side}",
                f"{record[side]['identical_answers']}/{n}", "answers",
                same_verdicts=f"{record[side]['same_verdicts']}/{n}",
            )
            for side in ("base", "adapter")
        ),
        headline_figure(
            "the adapter's gain, vLLM minus HF, on the same prompts", None, "pass rate",
            interval=gain_difference(vllm[:n], hf), digits=4,
            disagreeing_verdicts=len(record["disagreeing_verdicts"]),
        ),
    ]  # fmt: skip


def run_benchmark(settings: LoopSettings, command: str) -> tuple[Path, dict[str, Any]]:
    """The loop through vLLM, then the HF comparison after vLLM stopped; the results file."""
    reused = check_inputs(settings)
    folder = settings.run_dir.resolve() / "benchmark"
    shutil.rmtree(folder, ignore_errors=True)
    conditions = BenchmarkConditions()
    steps = Steps(folder / "logs")
    with tracking_server(folder / "mlflow") as tracking_uri:
        adapter = obtain_adapter(settings, steps, folder, tracking_uri, reused)
        control = control_lora(settings, adapter, folder)
        with vllm_server(settings, folder / "serving", adapter, control) as base_url:
            outcome = gate_adapter(
                settings, steps, folder / "prompt-registry", tracking_uri, base_url,
                adapter.trained_rules,
            )  # fmt: skip
            control_eval = (
                evaluate_control(
                    settings, steps, folder / "prompt-registry", tracking_uri, base_url
                )
                if control
                else None
            )
        logger.info("vLLM stopped; the same version through Hugging Face transformers")
        hf = hf_evaluation(
            settings, steps, folder / "prompt-registry", adapter, outcome, tracking_uri
        )
    writer = ResultsWriter(PROJECT, settings.dist_dir, command, kind="benchmark")
    figures, record = loop_record(writer, adapter, outcome, control_eval)
    vllm = pair_answers(outcome.base_eval, outcome.adapter_eval, outcome.golden)
    compared = agreement(vllm, hf)
    results = {
        "claim": CLAIM,
        "headline": figures + agreement_headline(vllm, hf, compared),
        **record,
        "hf_comparison": compared,
        "settings": settings_record(settings),
        "conditions": conditions.finish(),
    }
    return writer.write(results), results
