# Everything sets itself up: the virtual environment is made on first use.
# make demo   - the main job end to end on the bundled sample (CPU, local tracking)
# make test   - the whole test suite (offline, CPU)
# make devign - the same pipeline on the full Devign data in ../shared/data/devign
# make encoder KERNEL=DIR - pre-train the shipped C encoder from the kernel source (docs/pretrain.md)
# make transfer - the transfer benchmark: held-out packages, fix pairs, cross-project (docs/transfer.md)
# make collect - rebuild data/collected/debian from Debian's security patches (network; docs/data-debian.md)

VENV     ?= .venv
PY       := $(VENV)/bin/python
SG       := $(VENV)/bin/streamguard
STAMP    := $(VENV)/.installed
DEVIGN   ?= ../shared/data/devign
KERNEL   ?= /usr/src/linux-source-6.1
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1

.PHONY: demo test devign encoder collect transfer lint clean

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(SG) pipeline --config configs/pipeline-demo.yaml

devign: $(STAMP)
	$(SG) pipeline --config configs/pipeline-devign.yaml --set source=$(DEVIGN)

encoder: $(STAMP)
	$(SG) pipeline --config configs/pipeline-encoder.yaml --set kernel=$(KERNEL) devign=$(DEVIGN)

# TRANSFER_SET: extra key=value settings of benchmarks/transfer.py (kinds=lexical,gnn; quick=true)
TRANSFER_SET ?=
transfer: $(STAMP)
	nice -n 10 $(PY) benchmarks/transfer.py --set devign=$(DEVIGN) $(TRANSFER_SET)

DEBIAN_SUITES ?= bullseye-security,bookworm-security,trixie-security,bullseye,bookworm,trixie,forky
DEBIAN_CACHE  ?= $(HOME)/.cache/streamguard/debian
DEBIAN_OUT    ?= build/debian
collect: $(STAMP)
	$(SG) data collect debian --all --suites $(DEBIAN_SUITES) --cache $(DEBIAN_CACHE) --out $(DEBIAN_OUT)
	mkdir -p data/collected/debian
	gzip -9nc $(DEBIAN_OUT)/pool.jsonl > data/collected/debian/pool.jsonl.gz
	gzip -9nc $(DEBIAN_OUT)/rejects.jsonl > data/collected/debian/rejects.jsonl.gz
	cp $(DEBIAN_OUT)/manifest.json data/collected/debian/manifest.json

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf data/raw data/processed runs reports
