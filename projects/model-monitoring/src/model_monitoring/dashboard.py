"""The Grafana dashboard, generated with grafana-foundation-sdk and committed as
monitoring/grafana/dashboards/model-monitoring.json (a test checks the file is up to date and that
every metric it queries is one the service exports). Regenerate from the repo root:

    python -m model_monitoring.dashboard \
        > projects/model-monitoring/monitoring/grafana/dashboards/model-monitoring.json
"""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DASHBOARD_UID = "model-monitoring"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
PREDICT_LATENCY = 'model_http_request_duration_seconds_bucket{endpoint="/predict"}'


def _quantile(q: float, bucket: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({bucket}[5m])))"


def _share_of_rows(counter: str) -> str:
    """A per-feature counter over the rows predicted, both over 5 minutes."""
    return (
        f"sum by (feature) (rate({counter}[5m]))"
        " / on() group_left() sum(rate(model_input_rows_total[5m]))"
    )


# (title, unit, [(expr, legend)]) per time-series panel, by row.
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    (
        "Service",
        [
            ("Requests by endpoint and status", "reqps", [
                ("sum by (endpoint, status) (rate(model_http_requests_total[5m]))",
                 "{{endpoint}} {{status}}"),
            ]),
            ("Predict latency p50 / p95 / p99", "s", [
                (_quantile(0.5, PREDICT_LATENCY), "p50"),
                ("model:http_request_duration_seconds:p95_5m", "p95"),
                (_quantile(0.99, PREDICT_LATENCY), "p99"),
            ]),
            ("Client errors (4xx) by reason", "reqps", [
                ("sum by (reason) (rate(model_client_errors_total[5m]))", "{{reason}}"),
            ]),
            ("5xx share", "percentunit", [("model:http_requests:error_ratio_5m", "5xx")]),
        ],
    ),
    (
        "Predictions",
        [
            ("Rows predicted per second", "short", [("model:input_rows:rate5m", "rows/s")]),
            ("Prediction distribution", "percentunit", [
                ("sum by (predicted_class) (rate(model_predictions_total[15m]))"
                 " / ignoring(predicted_class) group_left sum(rate(model_predictions_total[15m]))",
                 "class {{predicted_class}}"),
                ("max(model_reference_positive_rate)", "reference positive share"),
            ]),
            ("Mean confidence vs reference", "percentunit", [
                ("model:prediction_confidence:mean_15m", "mean confidence"),
                ("max(model_reference_confidence_mean)", "reference"),
            ]),
            ("Rows per request (p50)", "short", [
                (_quantile(0.5, "model_predict_batch_rows_bucket"), "p50"),
            ]),
        ],
    ),
    (
        "Inputs and drift",
        [
            ("PSI per feature (alert above 0.2)", "short", [
                ("max by (feature) (model_feature_drift_psi)", "{{feature}}"),
            ]),
            ("KS statistic per numeric feature", "short", [
                ("max by (feature) (model_feature_drift_ks_statistic)", "{{feature}}"),
            ]),
            ("Chi-square p-value per categorical feature", "short", [
                ("max by (feature) (model_feature_drift_chi2_p_value)", "{{feature}}"),
            ]),
            ("Feature mean", "short", [
                ("sum by (feature) (rate(model_feature_value_sum[5m]))"
                 " / sum by (feature) (rate(model_feature_value_count[5m]))", "{{feature}}"),
            ]),
            ("Missing, out-of-range and unknown-category share", "percentunit", [
                ("model:feature_missing:ratio_5m", "missing {{feature}}"),
                (_share_of_rows("model_feature_out_of_range_total"), "out of range {{feature}}"),
                ("model:feature_unknown_category:ratio_5m", "unknown category {{feature}}"),
            ]),
            ("Drift job: window rows and run time", "short", [
                ("max(model_drift_window_rows)", "window rows"),
                ("max(model_drift_run_duration_seconds)", "run seconds"),
            ]),
            ("Drift job health", "short", [
                ("time() - max(model_drift_last_success_timestamp_seconds)",
                 "seconds since the last successful run"),
                ("3 * max(model_drift_interval_seconds)", "stale above (ModelDriftJobStale)"),
                ("sum(increase(model_drift_job_failures_total[15m]))", "failed runs (15 min)"),
            ]),
        ],
    ),
    (
        "Quality (delayed labels)",
        [
            ("Accuracy and AUC over the labelled window", "percentunit", [
                ("max(model_labelled_accuracy)", "accuracy"),
                ("max(model_labelled_auc)", "AUC"),
                ("max(model_reference_accuracy)", "reference accuracy"),
                ("max(model_reference_auc)", "reference AUC"),
            ]),
            ("Labels received and unmatched", "short", [
                ("sum(rate(model_labels_received_total[5m]))", "received/s"),
                ("sum(rate(model_labels_unmatched_total[5m]))", "unmatched/s"),
                ("max(model_labelled_window_rows)", "labelled window rows"),
            ]),
        ],
    ),
]  # fmt: skip
STATS = [
    ("Model version", 'max by (version) (model_info)', "{{version}}"),
    ("Firing model alerts",
     'count(ALERTS{alertstate="firing", service="model-monitoring"}) or vector(0)', "alerts"),
    ("Targets up", 'sum(up{job="model-service"})', "up"),
]  # fmt: skip


def _query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )


def build_dashboard() -> dict[str, object]:
    board = (
        dashboard.Dashboard("Model monitoring")
        .uid(DASHBOARD_UID)
        .tags(["model-monitoring", "drift"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    for title, expr, legend in STATS:
        board = board.with_panel(
            stat.Panel().title(title).datasource(DATASOURCE).height(4).span(8)
            .with_target(_query(expr, legend, "A"))
        )  # fmt: skip
    for row_title, panels in ROWS:
        board = board.with_row(dashboard.Row(row_title))
        for title, unit, queries in panels:
            panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE)
            panel = panel.height(8).span(12)
            for index, (expr, legend) in enumerate(queries):
                panel = panel.with_target(_query(expr, legend, chr(ord("A") + index)))
            board = board.with_panel(panel)
    built: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return built


def dashboard_json() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


def queried_metric_names(exprs: list[str]) -> set[str]:
    """Metric names (not functions, labels or recording rules) in PromQL expressions."""
    names = set()
    for expr in exprs:
        without_labels = re.sub(r"\{[^}]*\}", "", expr)
        without_strings = re.sub(r'"[^"]*"', "", without_labels)
        names |= set(re.findall(r"\b(model_[a-z0-9_]+|up)\b", without_strings))
    return names


def dashboard_exprs(built: dict[str, object]) -> list[str]:
    panels = built.get("panels", [])
    assert isinstance(panels, list)
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


if __name__ == "__main__":
    print(dashboard_json(), end="")
