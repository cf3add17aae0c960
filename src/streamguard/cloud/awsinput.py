"""What the cloud commands check before they talk to AWS, and how AWS's errors reach the user: one line, exit 2,
no credential in it.

Instance types and regions are checked against botocore's own service model and endpoint data (shipped with
it, so the check needs no network and follows botocore's updates): ``ml.fake.huge`` is refused before a dry run
prints a request SageMaker would reject.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from streamguard.errors import UserError
from streamguard.redact import redact


def training_instance_types() -> list[str]:
    """Every instance type CreateTrainingJob accepts (the API's ``TrainingInstanceType`` enum)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return list(model.shape_for("TrainingInstanceType").enum)


def check_instance_type(name: str) -> str:
    known = training_instance_types()
    if name in known:
        return name
    families = sorted({t.rsplit(".", 1)[0] for t in known})
    family = name.rsplit(".", 1)[0]
    sizes = [t for t in known if t.rsplit(".", 1)[0] == family]
    hint = f"{family} comes in {', '.join(sizes)}" if sizes else f"known families: {', '.join(families)}"
    raise UserError(f"--instance-type {redact(name)!r} is not a SageMaker training instance type ({hint})")


def sagemaker_regions() -> list[str]:
    """Regions with a SageMaker endpoint, every partition (aws, aws-cn, aws-us-gov...)."""
    import botocore.session

    session = botocore.session.get_session()
    return sorted({r for p in session.get_available_partitions()
                   for r in session.get_available_regions("sagemaker", partition_name=p)})


def check_region(region: str | None) -> str:
    import os

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UserError("--region is required (or set AWS_DEFAULT_REGION)")
    if region not in sagemaker_regions():
        raise UserError(f"unknown AWS region {redact(region)!r} (SageMaker is in e.g. us-east-1, eu-west-1; "
                        "see botocore's endpoints)")
    return region


def refuse_credentials(values: dict[str, Any], what: str) -> None:
    """A URI with ``user:password@`` in any setting is refused, naming the key and never the value: the
    setting would travel in the job's hyperparameters, readable by anyone who can describe the job."""
    for key, value in values.items():
        text = value if isinstance(value, str) else repr(value)
        if "://" in text and redact(text) != text:
            raise UserError(f"{what} {key}: a URI with credentials (user:password@) is refused; it would be "
                            "stored in the job's hyperparameters. Give credentials through the job's role or "
                            "environment instead")


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """botocore's failures as one line: no credentials, an unknown job, a refused call, an unreachable endpoint."""
    import botocore.exceptions as bx

    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError):
        raise UserError(f"{what}: no AWS credentials found (configure a profile, or set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY)") from None
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        raise UserError(f"{what}: AWS refused it ({err.get('Code', '?')}): {redact(err.get('Message', ''))}") \
            from None
    except bx.BotoCoreError as exc:
        raise UserError(f"{what}: {redact(str(exc))}") from None


def client(service: str, region: str) -> Any:
    import boto3

    return boto3.client(service, region_name=region)
