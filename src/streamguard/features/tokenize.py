"""SafeTokenizer: fast (Rust-backed) tokenizers only, with character offsets checked at start-up.

Offline, a byte-level BPE tokenizer is trained on the train split with the ``tokenizers`` library and saved
beside the processed data, so that training and scanning use the very same tokenizer.
"""
from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from streamguard.errors import UserError

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa/CodeBERT order: pad id 1


def hub_reachable(host: str = "huggingface.co", timeout: float = 1.5) -> bool:
    """Whether the model hub answers; when not, we set HF_HUB_OFFLINE instead of waiting ~45 s on retries."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class SafeTokenizer:
    """A fast Hugging Face tokenizer that is known to return character offsets."""

    def __init__(self, hf_tokenizer, name: str):
        if not getattr(hf_tokenizer, "is_fast", False):
            raise UserError(f"tokenizer '{name}' is not a fast (Rust) tokenizer: offsets would be unreliable")
        probe = "int main(void) { return 0; }"
        enc = hf_tokenizer(probe, return_offsets_mapping=True, add_special_tokens=False)
        spans = enc["offset_mapping"]
        if not spans or spans[-1][1] != len(probe) or any(a > b for a, b in spans):
            raise UserError(f"tokenizer '{name}' does not return usable character offsets")
        self.hf = hf_tokenizer
        self.name = name

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path) -> SafeTokenizer:
        """Load a hub model's tokenizer or a saved one; offline without it, one line that names the fix."""
        from transformers import AutoTokenizer

        name = str(name_or_path)
        local = Path(name).is_dir()
        if not local and not hub_reachable():
            os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            tok = AutoTokenizer.from_pretrained(name, use_fast=True)
        except (OSError, ValueError) as exc:
            where = "local directory" if local else "model hub (offline or unreachable)"
            raise UserError(f"cannot load tokenizer '{name}' from the {where}: {str(exc).splitlines()[0][:160]}; "
                            "use --tokenizer bpe to train one on the train split, or --tokenizer PATH") from None
        return cls(tok, name)

    @classmethod
    def train_bpe(cls, texts: Iterable[str], vocab_size: int, out_dir: Path) -> SafeTokenizer:
        """Train a byte-level BPE (RoBERTa-style specials) and save it where the processed data lives."""
        from tokenizers import ByteLevelBPETokenizer
        from tokenizers.processors import RobertaProcessing
        from transformers import PreTrainedTokenizerFast

        bpe = ByteLevelBPETokenizer(trim_offsets=True)
        bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                                show_progress=False)
        bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")),
                                               trim_offsets=True)
        fast = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                       sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                       mask_token="<mask>", model_max_length=512)
        out_dir.mkdir(parents=True, exist_ok=True)
        fast.save_pretrained(str(out_dir))
        return cls(fast, "bpe")

    def save(self, out_dir: Path) -> None:
        self.hf.save_pretrained(str(out_dir))

    # -- use -----------------------------------------------------------------------------------------
    def encode(self, code: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and character spans of ``code`` without special tokens, no truncation."""
        enc = self.hf(code, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                      verbose=False)
        return enc["input_ids"], [tuple(span) for span in enc["offset_mapping"]]

    @property
    def cls_id(self) -> int:
        return self.hf.cls_token_id if self.hf.cls_token_id is not None else self.hf.bos_token_id

    @property
    def sep_id(self) -> int:
        return self.hf.sep_token_id if self.hf.sep_token_id is not None else self.hf.eos_token_id

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def identity(self, saved_dir: Path) -> dict:
        """What a model needs to know to refuse data made with another tokenizer."""
        digest = hashlib.sha256((saved_dir / "tokenizer.json").read_bytes()).hexdigest()
        return {"name": self.name, "sha256": digest, "vocab_size": self.vocab_size, "pad_id": self.hf.pad_token_id,
                "cls_id": self.cls_id, "sep_id": self.sep_id}
