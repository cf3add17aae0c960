"""The container contract, run locally: a temp root laid out as SageMaker lays out /opt/ml, the hyperparameters
of a real launcher request, the packaged source's entry script, S3 on a moto server on loopback."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

import streamguard.cloud.container as container
from streamguard.cloud.jobspec import SageMakerPaths
from streamguard.cloud.package import ENTRY, package_source
from streamguard.cloud.sagemaker import JobOptions, training_request

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
DATA = FIXTURES / "gnn_processed"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
# small and deterministic: batch 4 gives 12 steps an epoch, so a SIGTERM lands inside the run
TINY = ("hidden=16", "embed_dim=8", "head_hidden=16", "layers=1", "batch_size=4", "patience=50", "seed=7",
        "deterministic=true", "tracking_uri=off", "threads=1")
BUCKET = "sg-test"


def request_hyperparameters(epochs: int) -> dict[str, str]:
    req = training_request(JobOptions(kind="gnn", data=f"s3://{BUCKET}/data", output=f"s3://{BUCKET}/jobs", role=ROLE,
                                      region="us-east-1", sets=(*TINY, f"epochs={epochs}")))
    return req["HyperParameters"]


def layout(root: Path, hp: dict[str, str], data: bool = True) -> Path:
    """/opt/ml as SageMaker leaves it when the container starts."""
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    if data:
        shutil.copytree(DATA, root / "input" / "data" / "train")
    for sub in ("checkpoints", "model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The code channel as the launcher packages it."""
    dest = tmp_path_factory.mktemp("code") / "code"
    package_source(dest, allow_dirty=True)
    return dest


@pytest.fixture(scope="module")
def s3() -> dict[str, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # S3_ENDPOINT_URL too: where the real S3 server of the engine tests is running (CI), it would win
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "S3_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    yield {**env, "client": client}
    server.stop()


def child_env(root: Path, extra: dict | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the packaged source, not the checkout
    env.update({"SG_SAGEMAKER_ROOT": str(root), "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"})
    env.update({k: v for k, v in (extra or {}).items() if isinstance(v, str)})
    return env


def entry(code: Path) -> list[str]:
    # SageMaker's basic driver passes the hyperparameters as arguments too; the entry point ignores them
    return [sys.executable, str(code / ENTRY), "--sg_kind", "gnn"]


def restore_checkpoints(client: object, prefix: str, dest: Path) -> list[str]:
    """What SageMaker does before a restarted spot job starts: copy the CheckpointConfig S3 URI locally."""
    names = []
    for obj in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", []):
        rel = obj["Key"][len(prefix) + 1:]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        client.download_file(BUCKET, obj["Key"], str(dest / rel))
        names.append(rel)
    return names


def interrupt_after_first_epoch(code: Path, root: Path, s3: dict) -> None:
    """The two-minute warning of a spot interruption, once the first epoch's checkpoint is written."""
    proc = subprocess.Popen(entry(code), cwd=code, env=child_env(root, s3), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (root / "checkpoints" / "epoch-000.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err[-3000:]
    assert not (root / "output" / "failure").exists()  # an interruption is not a failure


def restart(code: Path, root: Path, s3: dict, prefix: str, last_epoch: int) -> None:
    """A new instance: its checkpoint dir restored from the S3 URI, it resumes and runs the remaining epochs."""
    assert "last.ckpt" in restore_checkpoints(s3["client"], prefix, root / "checkpoints")
    done = subprocess.run(entry(code), cwd=code, env=child_env(root, s3), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr
    epochs = [ln.split()[0] for ln in done.stdout.splitlines() if ln.startswith("epoch=")]
    assert "epoch=0" not in epochs and epochs[-1] == f"epoch={last_epoch}"


def test_sigterm_then_a_restarted_job_resumes_from_the_checkpoint_uri(tmp_path: Path, code: Path,
                                                                      s3: dict) -> None:
    hp = request_hyperparameters(epochs=4)
    prefix = "jobs/streamguard-gnn/checkpoints"
    assert hp["cfg.checkpoint_uri"] == f"s3://{BUCKET}/{prefix}"
    first = layout(tmp_path / "first", hp)
    interrupt_after_first_epoch(code, first, s3)
    assert not (first / "checkpoints" / "epoch-003.ckpt").exists(), "the run ended before SIGTERM"
    second = layout(tmp_path / "second", hp)  # a new instance: nothing local survives
    restart(code, second, s3, prefix, last_epoch=3)
    model = second / "model"
    assert json.loads((model / "exp_config.json").read_text())["resumed_from"]
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == ["best.ckpt"]
    assert (model / "predictions" / "test.jsonl").is_file() and (model / "metrics.csv").is_file()
    assert (second / "output" / "data" / "run" / "train_summary.json").is_file()  # output.tar.gz holds the run


def test_a_pretrain_job_resumes_after_sigterm_and_ships_the_encoder(tmp_path: Path, code: Path, s3: dict) -> None:
    """`cloud sagemaker pretrain`'s container: corpus, Devign and checkpoints where SageMaker puts them."""
    from streamguard.data.corpus import build_corpus

    sets = ("vocab_size=600", "hidden=32", "layers=1", "heads=2", "intermediate=64", "max_length=96",
            "steps_per_epoch=5", "batch_size=8", "warmup_steps=2", "valid_functions=8", "epochs=12", "seed=5",
            "tracking_uri=off", "threads=1")
    hp = training_request(JobOptions(kind="pretrain", data=f"s3://{BUCKET}/corpus", devign=f"s3://{BUCKET}/devign",
                                     output=f"s3://{BUCKET}/jobs", role=ROLE, region="us-east-1",
                                     sets=sets))["HyperParameters"]
    corpus = tmp_path / "corpus"
    build_corpus(FIXTURES / "kernel_c", corpus, FIXTURES / "raw_small")

    def instance(name: str) -> Path:
        root = layout(tmp_path / name, hp, data=False)
        shutil.copytree(corpus, root / "input" / "data" / "train")
        shutil.copytree(FIXTURES / "raw_small", root / "input" / "data" / "devign")
        return root

    first = instance("first")
    interrupt_after_first_epoch(code, first, s3)
    assert not (first / "output" / "data" / "run" / "pretrain_summary.json").exists(), "the run ended before SIGTERM"
    second = instance("second")
    restart(code, second, s3, "jobs/streamguard-pretrain/checkpoints", last_epoch=11)
    model = second / "model"
    summary = json.loads((model / "pretrain_summary.json").read_text())
    assert summary["steps"] == 60 and summary["resumed_from"]
    assert summary["heldout_mlm_loss_after"] < summary["heldout_mlm_loss_before"]
    assert (model / "encoder" / "model.safetensors").is_file() and (model / "encoder" / "README.md").is_file()
    assert not (model / "checkpoints").exists() and not (model / "cache").exists()  # they stay in S3 / behind
    config = json.loads((model / "pretrain_config.json").read_text())["config"]
    assert config["devign"] == str(second / "input" / "data" / "devign")  # read from its channel


def test_bad_input_writes_one_line_where_sagemaker_reads_the_failure(tmp_path: Path, code: Path) -> None:
    hp = {**request_hyperparameters(epochs=1), "cfg.checkpoint_uri": "null"}
    no_data = layout(tmp_path / "no-data", hp, data=False)
    proc = subprocess.run(entry(code), cwd=code, env=child_env(no_data), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2
    failure = (no_data / "output" / "failure").read_text().strip().splitlines()
    assert len(failure) == 1 and "data channel" in failure[0] and "not found" in failure[0]
    bad = layout(tmp_path / "bad", {**hp, "cfg.layers": "many"})
    proc = subprocess.run(entry(code), cwd=code, env=child_env(bad), capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2
    assert "config key 'layers': expected int" in (bad / "output" / "failure").read_text()


def test_a_crash_is_reported_in_the_failure_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hp = {"sg_kind": "lexical", "cfg.seed": "3"}
    root = layout(tmp_path / "root", hp)

    class Broken:
        @staticmethod
        def train(*_: object) -> None:
            raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr("streamguard.train.registry.get", lambda kind: Broken)
    monkeypatch.setenv("SG_SAGEMAKER_ROOT", str(root))
    assert container.main() == 1
    text = (root / "output" / "failure").read_text()
    assert text.startswith("RuntimeError: CUDA error") and len(text) <= container.MAX_FAILURE + 1
    assert SageMakerPaths.from_env().failure == root / "output" / "failure"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_instances_run_ddp_through_sagemakers_torchrun_driver(tmp_path: Path, code: Path) -> None:
    """Two 'instances' on loopback, each started by the SDK's own torchrun driver as SageMaker starts it."""
    import sagemaker.train.container_drivers as drivers
    from sagemaker.train.distributed import Torchrun

    driver = Path(drivers.__file__).parent / "distributed_drivers" / "torchrun_driver.py"
    hp = {**request_hyperparameters(epochs=2), "cfg.checkpoint_uri": "null"}
    port, procs = str(free_port()), []
    for rank in (0, 1):
        root = layout(tmp_path / f"algo-{rank + 1}", hp)
        env = child_env(root, {"SM_ENTRY_SCRIPT": str(code / ENTRY), "SM_HPS": json.dumps(hp),
                               "SM_DISTRIBUTED_CONFIG": json.dumps(Torchrun().model_dump()), "SM_HOST_COUNT": "2",
                               "SM_MASTER_ADDR": "127.0.0.1", "SM_MASTER_PORT": port,
                               "SM_CURRENT_HOST_RANK": str(rank), "SM_CURRENT_INSTANCE_TYPE": "ml.m5.xlarge",
                               "SM_CHANNEL_TRAIN": str(root / "input" / "data" / "train"),
                               "SM_MODEL_DIR": str(root / "model"), "GLOO_SOCKET_IFNAME": "lo",
                               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        procs.append(subprocess.Popen([sys.executable, str(driver)], cwd=code, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=500)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "--nnodes=2" in outs[0] and "--node_rank=1" in outs[1]
    exp = json.loads((tmp_path / "algo-1" / "model" / "exp_config.json").read_text())
    assert exp["hyperparameters"]["num_nodes"] == 2 and exp["hyperparameters"]["strategy"] == "ddp"
    assert "epoch=1 " in outs[0] and (tmp_path / "algo-1" / "model" / "predictions" / "test.jsonl").is_file()
    assert not any((tmp_path / "algo-2" / "model").iterdir())  # rank 1 leaves the outputs to rank 0
