"""The loop's figures and page from prompt-registry's files (as its ``eval --output-json`` writes
them): answers paired by example, the paired gain judged on its target by the shared rule, the
gate's decision, the side-by-side page, and the HF comparison's counts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from llm_loop.adapter import Adapter
from llm_loop.benchmark import agreement, agreement_headline
from llm_loop.demo import PAGE, loop_record
from llm_loop.errors import LlmLoopError
from llm_loop.evaluation import GateOutcome
from llm_loop.report import GAIN_FIGURE, GAIN_TARGET, headline, pair_answers
from roadmap_lab.results import ResultsWriter

TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "targets.toml"
RULES = ("starts_with", "letter_case", "quoted", "no_commas")


def write_golden(path: Path, n: int) -> Path:
    rows = [
        {"id": f"ex-{i:02d}", "vars": {"instruction": f"Instruction {i} <b>"},
         "expected": "x", "check": {"rule": RULES[i % 4]}}
        for i in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_eval(path: Path, passes: list[bool], prefix: str, model: str = "smollm2") -> Path:
    examples = [
        {"id": f"ex-{i:02d}", "output": f"{prefix} answer {i} & more", "passed": passed,
         "scores": {}, "truncated": i == 0}
        for i, passed in enumerate(passes)
    ]  # fmt: skip
    summary = {"provider": f"openai:http://127.0.0.1:1/v1:{model}", "examples": len(passes)}
    path.write_text(json.dumps({"summary": summary, "examples": examples}))
    return path


def pairs_of(tmp_path: Path, base: list[bool], adapter: list[bool]) -> list:
    golden = write_golden(tmp_path / "golden.jsonl", len(base))
    return pair_answers(
        write_eval(tmp_path / "base.json", base, "base"),
        write_eval(tmp_path / "adapter.json", adapter, "adapter", "dpo"),
        golden,
    )


def by_name(figures: list[dict], start: str) -> dict:
    return next(f for f in figures if f["name"].startswith(start))


def test_a_clear_gain_is_met_and_the_pass_rates_carry_wilson_intervals(tmp_path: Path) -> None:
    # 32 prompts: the base passes 8, the adapter those 8 and 16 more.
    base = [i < 8 for i in range(32)]
    adapter = [i < 24 for i in range(32)]
    figures = headline(pairs_of(tmp_path, base, adapter), "promoted", "all checks pass")
    gain = by_name(figures, GAIN_FIGURE)
    assert gain["value"] == pytest.approx(0.5) and gain["target"] == GAIN_TARGET
    assert gain["interval"]["method"] == "newcombe paired score" and gain["interval"]["low"] > 0
    assert gain["verdict"] == "met"
    assert (gain["fixed"], gain["broken"], gain["same"]) == (16, 0, 16)
    base_rate = by_name(figures, "pass rate of the base")
    assert base_rate["value"] == 0.25 and base_rate["interval"]["method"] == "wilson"
    assert by_name(figures, "pass rate of the adapter")["value"] == 0.75
    gate = by_name(figures, "prompt-registry's gate")
    assert gate["value"] == "promoted: all checks pass" and gate["verdict"] is None


def test_a_loss_misses_and_no_gain_or_a_few_flips_are_within_noise(tmp_path: Path) -> None:
    same = [i % 3 == 0 for i in range(32)]
    figures = headline(pairs_of(tmp_path, same, same), "refused", "floor")
    # No flip in 32 prompts still leaves a small gain possible: the interval straddles 0.
    assert by_name(figures, GAIN_FIGURE)["verdict"] == "within noise"
    lost = headline(pairs_of(tmp_path, same, [False] * 32), "refused", "drop")
    assert by_name(lost, GAIN_FIGURE)["verdict"] == "missed"
    # Four fixed, none broken (exact McNemar p = 0.125): not a gain beyond noise.
    four = headline(pairs_of(tmp_path, [False] * 32, [i < 4 for i in range(32)]), "refused", "x")
    assert by_name(four, GAIN_FIGURE)["verdict"] == "within noise"
    # Two fixed, one broken of 32: a small gain whose interval straddles 0.
    adapter = list(same)
    adapter[1], adapter[2], adapter[0] = True, True, False
    mixed = headline(pairs_of(tmp_path, same, adapter), "promoted", "ok")
    assert by_name(mixed, GAIN_FIGURE)["verdict"] == "within noise"


def test_length_and_cut_answers_are_reported_beside_the_gain(tmp_path: Path) -> None:
    # The first prompt's answers are cut on both sides (write_eval); the adapter's win there
    # does not count in the gain on uncut prompts.
    base = [False] * 32
    adapter = [i == 0 for i in range(32)]
    figures = headline(pairs_of(tmp_path, base, adapter), "refused", "no win")
    cut = by_name(figures, "answers cut at the token limit")
    assert cut["value"] == "1/32 -> 1/32" and cut["target"] is None
    assert cut["mean_words_base"] == 5.0 and cut["mean_words_adapter"] == 5.0
    uncut = by_name(figures, "the adapter's gain on prompts neither answer was cut on")
    assert uncut["prompts"] == 31 and uncut["value"] == 0.0 and uncut["fixed"] == 0
    assert by_name(figures, GAIN_FIGURE)["fixed"] == 1
    # Every answer here has 5 words: all uncut prompts are length-matched.
    matched = by_name(figures, "the adapter's gain on uncut prompts whose two answers are in the")
    assert matched["prompts"] == 31


def test_the_length_matched_gain_leaves_out_answers_of_other_lengths(tmp_path: Path) -> None:
    base_eval = write_eval(tmp_path / "base.json", [False] * 4, "base")
    adapter_eval = write_eval(tmp_path / "adapter.json", [True] * 4, "adapter", "dpo")
    examples = json.loads(adapter_eval.read_text())
    examples["examples"][1]["output"] = "word " * 30  # 30 words against the base's 5
    adapter_eval.write_text(json.dumps(examples))
    pairs = pair_answers(base_eval, adapter_eval, write_golden(tmp_path / "golden.jsonl", 4))
    figures = headline(pairs, "refused", "x")
    matched = by_name(figures, "the adapter's gain on uncut prompts whose two answers are in the")
    assert (matched["prompts"], matched["fixed"]) == (2, 2)  # ex-00 is cut, ex-01 longer


def test_the_benchmark_names_its_targeted_figure_as_targets_toml_does() -> None:
    listed = tomllib.loads(TARGETS.read_text())["figure"]
    assert [(f["name"], f["target"]) for f in listed] == [(GAIN_FIGURE, GAIN_TARGET)]


def test_answers_that_do_not_pair_are_refused(tmp_path: Path) -> None:
    golden = write_golden(tmp_path / "golden.jsonl", 4)
    base = write_eval(tmp_path / "base.json", [True] * 4, "base")
    short = write_eval(tmp_path / "adapter.json", [True] * 3, "adapter")
    with pytest.raises(LlmLoopError, match="hold different examples"):
        pair_answers(base, short, golden)
    with pytest.raises(LlmLoopError, match="lacks the examples ex-02, ex-03"):
        pair_answers(base, base, write_golden(tmp_path / "small.jsonl", 2))
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(LlmLoopError, match="not a prompt-registry eval file"):
        pair_answers(tmp_path / "broken.json", base, golden)


def outcome(tmp_path: Path, passed: bool) -> GateOutcome:
    golden = write_golden(tmp_path / "golden.jsonl", 8)
    return GateOutcome(
        prompt="alignment-heldout-rules", base_version=1, adapter_version=2,
        base_eval=write_eval(tmp_path / "base.json", [i < 2 for i in range(8)], "base"),
        adapter_eval=write_eval(tmp_path / "adapter.json", [i < 5 for i in range(8)], "adapter",
                                "dpo"),
        golden=golden, gate_json=tmp_path / "gate.json", gate_markdown=tmp_path / "gate.md",
        passed=passed, reason="floor of the candidate's eval config: pass rate 0.625 is below "
        "the floor 1.00", production_before=1, production_after=2 if passed else 1,
    )  # fmt: skip


def test_the_results_carry_the_decision_and_link_the_side_by_side_page(tmp_path: Path) -> None:
    writer = ResultsWriter("llm-loop", tmp_path / "dist", "python -m llm_loop demo")
    adapter = Adapter("llm-loop-dpo", "3", "http://127.0.0.1:5000", "trained")
    figures, record = loop_record(writer, adapter, outcome(tmp_path, passed=False))
    path = writer.write({"headline": figures, **record})
    results = json.loads(path.read_text())
    assert results["pages"] == [PAGE] and results["plots"] == ["pass_rates.png"]
    assert results["gate"]["decision"] == "refused" and results["gate"]["production_after"] == 1
    assert results["adapter"]["uri"] == "models:/llm-loop-dpo/3"
    assert results["held_out_rules_check"].startswith("unverified")  # no data card
    assert results["providers"]["adapter"].endswith(":dpo")
    assert results["flips"] == {"fixed": 3, "broken": 0, "same": 5}
    assert sum(r["prompts"] for r in results["per_rule"].values()) == 8
    page = (path.parent / PAGE).read_text()
    assert "Gate decision: refused" in page and "below the floor 1.00" in page
    for i in range(8):  # every prompt with both answers, escaped
        assert f"base answer {i} &amp; more" in page and f"adapter answer {i} &amp; more" in page
        assert f"Instruction {i} &lt;b&gt;" in page
    assert page.count('class="pass"') == 2 + 5 and page.count('class="fail"') == 6 + 3
    assert "cut at the token limit" in page


def test_hf_agreement_counts_identical_answers_and_checks_the_interval(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    vllm = pairs_of(tmp_path / "v", [i < 8 for i in range(16)], [i < 12 for i in range(16)])
    (tmp_path / "h").mkdir()
    golden = write_golden(tmp_path / "h" / "golden.jsonl", 8)
    hf_base = write_eval(tmp_path / "h" / "base.json", [i < 8 for i in range(8)], "base")
    # HF's adapter answers differ in wording on every example, and one verdict flips.
    hf_adapter = write_eval(tmp_path / "h" / "adapter.json", [i != 3 for i in range(8)], "other")
    hf = pair_answers(hf_base, hf_adapter, golden)
    record = agreement(vllm, hf)
    assert record["prompts"] == 8
    assert record["base"] == {"identical_answers": 8, "same_verdicts": 8, "passes_vllm": 8,
                              "passes_hf": 8}  # fmt: skip
    assert record["adapter"]["identical_answers"] == 0
    assert record["adapter"]["same_verdicts"] == 7
    # HF: gain -1/8 on its 8 examples; vLLM's gain 0.25 with an interval above it.
    assert record["hf_within_vllm_interval"] is False
    # The one verdict that differs, with both answers; vLLM's gain minus HF's on the 8 prompts.
    (differs,) = record["disagreeing_verdicts"]
    assert (differs["id"], differs["model"], differs["vllm_passed"]) == ("ex-03", "adapter", True)
    assert (differs["vllm_answer"], differs["hf_answer"]) == (
        "adapter answer 3 & more", "other answer 3 & more")  # fmt: skip
    assert record["gain_difference_vllm_minus_hf"]["estimate"] == pytest.approx(0.125)
    figures = agreement_headline(vllm, hf, record)
    assert figures[0]["name"].endswith("outside vLLM's interval") and figures[0]["target"] is None
    assert [f["value"] for f in figures[1:3]] == ["8/8", "0/8"]
    assert figures[3]["value"] == pytest.approx(0.125) and figures[3]["disagreeing_verdicts"] == 1
    with pytest.raises(LlmLoopError, match="HF answered examples that vLLM did not"):
        agreement(vllm[1:], hf)
