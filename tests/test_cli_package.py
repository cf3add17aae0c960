"""The command line as one package: old option spellings still work, every pipeline step parses with the real
parser, PretrainConfig refuses what it does not use, and ``python -m streamguard.cli`` runs."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from streamguard.cli import build_parser, main
from streamguard.config import PreprocessConfig, load_config
from streamguard.pipeline import load_steps

ROOT = Path(__file__).resolve().parents[1]


def _sub(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


@pytest.mark.parametrize("pipeline", sorted((ROOT / "configs").glob("pipeline-*.yaml")), ids=lambda p: p.name)
def test_every_step_of_every_pipeline_parses(pipeline: Path, capsys: pytest.CaptureFixture) -> None:
    steps, _ = load_steps(pipeline, {})  # params substituted as the pipeline does
    assert steps
    parser = build_parser()
    for step in steps:
        try:
            args = parser.parse_args(step["args"])
        except SystemExit:
            pytest.fail(f"{pipeline.name} step {step['name']}: {capsys.readouterr().err.strip()}")
        assert callable(args.func), step["name"]
    assert "deprecated" not in capsys.readouterr().err  # the shipped pipelines use today's spellings


def test_merge_threshold_is_a_deprecated_alias_that_warns(capsys: pytest.CaptureFixture) -> None:
    base = ["data", "merge", "--base", "b", "--add", "a", "--out", "o"]
    new = build_parser().parse_args([*base, "--near-dup-jaccard", "0.7"])
    assert new.near_dup_jaccard == 0.7 and "deprecated" not in capsys.readouterr().err
    old = build_parser().parse_args([*base, "--threshold", "0.7"])
    assert old.near_dup_jaccard == 0.7
    assert "--threshold is deprecated here, use --near-dup-jaccard" in capsys.readouterr().err


def test_token_budget_is_max_length_and_max_tokens_still_works() -> None:
    base = ["preprocess", "--raw", "r", "--out", "o"]
    assert build_parser().parse_args([*base, "--max-length", "200"]).max_length == 200
    assert build_parser().parse_args([*base, "--max-tokens", "200"]).max_length == 200  # hidden, for a release
    helptext = _sub(build_parser(), "preprocess").format_help()
    assert "--max-length" in helptext and "--max-tokens" not in helptext
    assert load_config(PreprocessConfig, None, None, ["max_length=200"]).max_tokens == 200
    assert load_config(PreprocessConfig, None, None, ["max_tokens=300"]).max_tokens == 300


def test_preprocess_runs_with_the_old_spelling(raw_small: Path, tmp_path: Path) -> None:
    out, raw = tmp_path / "p", tmp_path / "raw"
    assert main(["data", "import", "codexglue", "--source", str(raw_small), "--out", str(raw)]) == 0
    assert main(["preprocess", "--raw", str(raw), "--out", str(out), "--tokenizer", "bpe", "--quick-test",
                 "--workers", "1", "--max-tokens", "64", "--set", "bpe_vocab_size=300"]) == 0
    import json
    assert json.loads((out / "preprocessing_metadata.json").read_text())["config"]["max_tokens"] == 64


@pytest.mark.parametrize("setting, message", [
    ("epochs=-5", "config key 'epochs': must be >= 1, got -5"),
    ("lr=0", "config key 'lr': must be > 0, got 0.0"),
    ("mlm_probability=1.5", "config key 'mlm_probability'"),
    ("optimizer=adam", "unknown config key 'optimizer' for PretrainConfig"),
    ("patience=3", "unknown config key 'patience' for PretrainConfig"),
])
def test_pretrain_config_checks_ranges_and_refuses_unused_keys(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               setting: str, message: str) -> None:
    assert main(["pretrain", "--corpus", str(tmp_path), "--out", str(tmp_path / "o"), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("streamguard: error:") and message in err and len(err.splitlines()) == 1


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "streamguard.cli", "train", "--help"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0 and "lexical" in proc.stdout


def test_the_help_cites_docs_that_exist() -> None:
    """Every docs/*.md a help text names is a file of the repository."""
    import re
    texts = []

    def walk(parser: argparse.ArgumentParser) -> None:  # the raw texts: a formatted help may wrap at a hyphen
        texts.append(parser.description or "")
        for action in parser._actions:
            texts.append(action.help or "")
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    walk(child)
    walk(build_parser())
    cited = set(re.findall(r"docs/[\w./-]+\.md", "\n".join(texts)))
    assert cited and {c for c in cited if not (ROOT / c).is_file()} == set()


def test_pretrain_config_built_in_python_checks_its_ranges_too() -> None:
    from streamguard.errors import UserError
    from streamguard.pretrain.train import PretrainConfig
    with pytest.raises(UserError, match="'epochs': must be >= 1"):
        PretrainConfig(epochs=-5)


WITH_CONFIG = {"preprocess", "train lexical", "train gnn", "train transformer", "train analysers", "fuse", "evaluate",
               "pretrain",
               "cloud sagemaker train", "cloud sagemaker pretrain", "cloud estimate", "pipeline"}


def test_the_commands_with_config_and_set_are_the_ones_readme_names() -> None:
    """README lists the commands that take --config/--set; a new command with settings must join the list."""
    found = set()

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            for name, child in subs[0].choices.items():
                walk(child, f"{path} {name}".strip())
        elif {"--config", "--set"} <= {f for a in parser._actions for f in a.option_strings}:
            found.add(path)
    walk(build_parser(), "")
    assert found == WITH_CONFIG
    readme = " ".join((ROOT / "README.md").read_text().split())
    for command in {"train KIND" if c.startswith("train ") else c for c in WITH_CONFIG}:
        assert f"`{command}`" in readme, command
