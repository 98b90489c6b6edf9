"""What one retrain run decided and measured: the pipeline (retrain.py) fills it in, the report
(report.py) renders it, the CLI and the demo read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ml_cicd.slices import DataVersion
from ml_cicd.validation import ValidationReport

Status = Literal["promoted", "rejected", "invalid", "unchanged"]


@dataclass
class RetrainOutcome:
    status: Status
    reason: str
    model_name: str
    dry_run: bool
    data: DataVersion
    previous_data: DataVersion | None
    validation: ValidationReport | None = None
    champion_version: str | None = None
    champion_metrics: dict[str, Any] | None = None
    challenger_metrics: dict[str, Any] | None = None
    gain: dict[str, Any] | None = None
    behaviour: dict[str, Any] | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    registered_version: str | None = None
    run_id: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    data_stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when the pipeline ran (promoted, rejected or nothing to do); 1 for invalid data."""
        return 1 if self.status == "invalid" else 0

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["data"] = {
            "version": self.data.version,
            "slices": [asdict(s) for s in self.data.slices],
        }
        result["previous_data"] = (
            {
                "version": self.previous_data.version,
                "slices": [asdict(s) for s in self.previous_data.slices],
            }
            if self.previous_data
            else None
        )
        result["validation"] = self.validation.as_dict() if self.validation else None
        return result

