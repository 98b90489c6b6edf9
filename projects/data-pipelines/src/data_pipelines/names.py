"""DAG and task names, importable without importing Airflow (which reads its configuration on
first import: the CLI configures it first)."""

PIPELINE_DAG_ID = "housing_pipeline"
REPORT_DAG_ID = "housing_model_report"
PIPELINE_TASKS = ("fetch", "validate", "preprocess", "train", "evaluate", "publish")
REGISTER_TASK = "register"  # after publish, only with a registry configured
