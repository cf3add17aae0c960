"""Files shipped inside the package (package-data): schemas, checksums, and the default model bundle."""
from __future__ import annotations

from pathlib import Path

from streamguard.errors import UserError

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"


def default_model_dir() -> Path:
    """The bundle ``streamguard scan`` and ``streamguard.load()`` use when no model is given (its card:
    ``default_model/MODEL_CARD.md``); a checkout or install without it is one clear error."""
    if not (DEFAULT_MODEL / "bundle.json").is_file():
        raise UserError(f"no default model in this install ({DEFAULT_MODEL}); pass --model BUNDLE "
                        "(a `streamguard export` bundle)")
    return DEFAULT_MODEL
