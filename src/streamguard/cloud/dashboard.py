"""A CloudWatch dashboard for one training job, built from the metric definitions the launcher sends.

SageMaker publishes each metric definition's matches to CloudWatch namespace ``/aws/sagemaker/TrainingJobs``,
dimension ``TrainingJobName`` (what the SDK's TrainingJobAnalytics reads), and the instances' own utilisation
to the same namespace with dimension ``Host`` = ``<job>/algo-<i>``. One widget per training metric (every
definition but ``epoch``, which is the x-axis of the others, not a curve), then GPU, GPU memory and memory
utilisation of every instance.
"""
from __future__ import annotations

import json
import re
from typing import Any

from streamguard.errors import UserError

NAMESPACE = "/aws/sagemaker/TrainingJobs"
TITLES = {"train_loss": "train loss", "val_loss": "validation loss", "val_accuracy": "validation accuracy",
          "val_roc_auc": "validation ROC-AUC", "val_f1_vulnerable": "validation F1 (vulnerable)",
          "lr": "learning rate"}
INSTANCE_METRICS = ("GPUUtilization", "GPUMemoryUtilization", "MemoryUtilization")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")   # PutDashboard's DashboardName
JOB_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # a TrainingJobName


def dashboard_name(job: str) -> str:
    name = (job if job.startswith("streamguard") else f"streamguard-{job}")[:255]
    if not NAME_RE.match(name):
        raise UserError(f"no dashboard name can be made from {job!r}")
    return name


def check_job_name(job: str) -> str:
    if not JOB_RE.match(job or ""):
        raise UserError(f"{job!r} is not a SageMaker training job name (1-63 letters, digits, hyphens)")
    return job


def _widget(title: str, metrics: list[list[Any]], region: str, x: int, y: int, unit: str | None = None) -> dict:
    props: dict[str, Any] = {"title": title, "metrics": metrics, "region": region, "view": "timeSeries",
                             "stat": "Average", "period": 60}
    if unit:
        props["yAxis"] = {"left": {"min": 0, "label": unit}}  # a multi-GPU host exceeds 100
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6, "properties": props}


def body(job: str, region: str, instance_count: int = 1) -> dict[str, Any]:
    """The ``DashboardBody`` of a job's dashboard (a dict; PutDashboard takes it JSON-encoded)."""
    from streamguard.cloud import jobspec

    check_job_name(job)
    names = [d["Name"] for d in jobspec.metric_definitions() if d["Name"] != "epoch"]
    widgets = []
    for i, name in enumerate(names):
        metrics = [[NAMESPACE, name, "TrainingJobName", job]]
        widgets.append(_widget(TITLES.get(name, name), metrics, region, 12 * (i % 2), 6 * (i // 2)))
    row = 6 * ((len(names) + 1) // 2)
    for i, metric in enumerate(INSTANCE_METRICS):
        metrics = [[NAMESPACE, metric, "Host", f"{job}/algo-{h}"] for h in range(1, instance_count + 1)]
        widgets.append(_widget(f"{metric} (%)", metrics, region, 12 * (i % 2), row + 6 * (i // 2), "%"))
    return {"widgets": widgets}


def widget_metric_names(dash: dict[str, Any]) -> list[str]:
    return [m[1] for w in dash["widgets"] for m in w["properties"]["metrics"]]


def put(job: str, region: str, dry_run: bool = False, instance_count: int | None = None) -> dict[str, Any]:
    """Create (or replace) the job's dashboard; a dry run returns the PutDashboard request and sends nothing.
    Without a dry run the job is described first: an unknown job is refused, and its instance count sets the
    hosts whose utilisation is shown."""
    from streamguard.cloud import awsinput

    region = awsinput.check_region(region)
    check_job_name(job)
    if instance_count is None and not dry_run:
        with awsinput.aws_errors(f"training job {job}"):
            desc = awsinput.client("sagemaker", region).describe_training_job(TrainingJobName=job)
        instance_count = int(desc["ResourceConfig"]["InstanceCount"])
    request = {"DashboardName": dashboard_name(job),
               "DashboardBody": json.dumps(body(job, region, instance_count or 1))}
    if dry_run:
        return request
    with awsinput.aws_errors(f"dashboard for {job}"):
        answer = awsinput.client("cloudwatch", region).put_dashboard(**request)
    problems = answer.get("DashboardValidationMessages") or []
    if problems:
        raise UserError(f"CloudWatch did not accept the dashboard: {problems[0].get('Message')}")
    return {"DashboardName": request["DashboardName"],
            "url": f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                   f"#dashboards:name={request['DashboardName']}"}
