import subprocess
import sys

from streamguard.cli import main


def test_help_lists_the_stages():
    out = subprocess.run([sys.executable, "-m", "streamguard.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for stage in ("data", "preprocess"):
        assert stage in out.stdout


def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["preprocess", "--raw", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
                 "--tokenizer", "bpe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamguard: error:") and err.count("\n") == 1 and "not found" in err


def test_bad_config_override_is_a_user_error(tmp_path, capsys):
    assert main(["preprocess", "--raw", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "max_tokens=lots"]) == 2
    assert "expected int" in capsys.readouterr().err
