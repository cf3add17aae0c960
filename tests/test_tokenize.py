import json

import pytest

from streamguard.errors import UserError
from streamguard.features.tokenize import SafeTokenizer


def test_offsets_point_at_the_token_text(processed_small, raw_small):
    tok = SafeTokenizer.load(processed_small / "tokenizer")
    code = json.loads((raw_small / "train.jsonl").read_text().splitlines()[0])["func"]
    ids, spans = tok.encode(code)
    assert len(ids) == len(spans) > 50
    starts = [a for a, _ in spans]
    assert starts == sorted(starts)
    for (a, b), token_id in zip(spans, ids):
        piece = tok.hf.decode([token_id])
        assert code[a:b].strip() == piece.strip() or "\ufffd" in piece  # split multi-byte chars decode alone


def test_a_slow_tokenizer_is_refused():
    from transformers import PreTrainedTokenizer

    class WhitespaceTokenizer(PreTrainedTokenizer):  # a pure-Python ("slow") tokenizer: no offsets guarantee
        def __init__(self):
            self.vocab = {"<unk>": 0}
            super().__init__(unk_token="<unk>")

        def get_vocab(self):
            return dict(self.vocab)

        @property
        def vocab_size(self):
            return len(self.vocab)

        def _tokenize(self, text, **kwargs):
            return text.split()

        def _convert_token_to_id(self, token):
            return self.vocab.get(token, 0)

        def _convert_id_to_token(self, index):
            return "<unk>"

    slow = WhitespaceTokenizer()
    assert not slow.is_fast
    with pytest.raises(UserError, match="not a fast"):
        SafeTokenizer(slow, "whitespace")


def test_offline_hub_model_fails_with_one_line_naming_bpe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        SafeTokenizer.load("microsoft/codebert-base")
    assert "--tokenizer bpe" in str(err.value) and "\n" not in str(err.value)


def test_bpe_training_saves_a_reloadable_tokenizer(tmp_path, raw_small):
    texts = [json.loads(line)["func"] for line in (raw_small / "train.jsonl").read_text().splitlines()]
    trained = SafeTokenizer.train_bpe(texts, 1000, tmp_path / "tok")
    again = SafeTokenizer.load(tmp_path / "tok")
    assert trained.encode(texts[3]) == again.encode(texts[3])
    assert trained.identity(tmp_path / "tok")["sha256"] == again.identity(tmp_path / "tok")["sha256"]
