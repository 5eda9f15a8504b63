# make demo: create the environment, generate the demo data, train both demo models into the
#            local MLflow store (outputs/mlflow.db) and say where the results are.
# make test: create the environments and run the tests.
PYTHON ?= python3
comma := ,
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DATA ?= demo_data
STORE := sqlite:///$(CURDIR)/outputs/mlflow.db
# TORCH_INDEX=https://download.pytorch.org/whl/cpu: the same torch and torchvision versions, built for
# CPU only, installed first (the PyPI build pulls several GB of CUDA libraries); the pins then hold.
TORCH_INDEX ?=
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' requirements/training.txt)

.PHONY: venv checkov demo demo-data test lint ui serve frontend synth bench clean

venv: $(VENV)/.installed
$(VENV)/.installed: requirements/*.txt package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --index-url $(TORCH_INDEX) $(TORCH_PINS))
	$(PY) -m pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov, for the tests only: its pins clash with ours, so it has an environment of its own.
CHECKOV_VENV ?= .venv-checkov
checkov: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: requirements/checkov.txt requirements/checkov-constraints.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip==25.3
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt -c requirements/checkov-constraints.txt
	touch $@

demo-data: venv
	$(PY) -m training.demo_data $(DEMO_DATA)

demo: demo-data
	$(PY) training/fit.py --config demo.yaml --data.root $(DEMO_DATA)
	$(PY) training/fit.py --config demo-mlp.yaml --data.root $(DEMO_DATA)
	@echo ""
	@echo "Both runs are in the MLflow store $(STORE)"
	@echo "Look at them with: make ui   (then open http://127.0.0.1:5000)"

test: venv checkov
	$(PY) -m pytest -n auto --dist loadfile --durations=20  # a file per worker, a worker per core; the slowest shown

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: venv
	$(VENV)/bin/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port 5000

# make serve: publish the newest demo run of MODEL_NAME into outputs/models and serve it on 127.0.0.1:$(PORT):
#             with Docker, as EC2 does (the service image, inference/docker-compose.yml: nginx in front of
#             gunicorn, the model folder mounted read-only); without, gunicorn alone in gunicorn_conf.py's layout.
#             Where no registry answers: BASE_IMAGE=mhist-base:bookworm (.ci/base-image.sh builds it); behind a
#             TLS proxy, PIP_CA=<its CA bundle> for pip inside the build.
MODEL_NAME ?= vit_tiny_patch16_224
PORT ?= 8080
DOCKER ?= docker
BASE_IMAGE ?= python:3.11-slim-bookworm
PIP_CA ?=
COMPOSE = $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo $(DOCKER) compose || echo docker-compose)
serve: venv
	$(PY) -m inference.publish --latest $(MODEL_NAME) --to outputs/models --tracking-uri $(STORE)
	@if $(DOCKER) info >/dev/null 2>&1; then \
		echo "serving with Docker (nginx + gunicorn) on 127.0.0.1:$(PORT)"; \
		DOCKER_BUILDKIT=1 $(DOCKER) build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) \
			$(if $(PIP_CA),--secret id=pip-ca$(comma)src=$(PIP_CA)) -f inference/Dockerfile.server \
			-t mhist-inference:local . && \
		SERVICE_IMAGE=mhist-inference:local MODEL_HOST_PATH=$(CURDIR)/outputs/models MODEL_NAME=$(MODEL_NAME) \
			PROXY_BIND=127.0.0.1:$(PORT) $(COMPOSE) -f inference/docker-compose.yml up --no-build; \
	else \
		echo "no Docker engine: gunicorn alone on 127.0.0.1:$(PORT)"; \
		MODEL_ROOT=outputs/models MODEL_NAME=$(MODEL_NAME) BIND=127.0.0.1:$(PORT) \
			$(VENV)/bin/gunicorn -c inference/gunicorn_conf.py; \
	fi

# make frontend: the Streamlit app on 127.0.0.1:8501, talking to `make serve` (and the Lambda API if set).
frontend: venv
	EC2_SERVICE_URL=$${EC2_SERVICE_URL:-http://127.0.0.1:8080} MHIST_ROOT=$${MHIST_ROOT:-$(DEMO_DATA)} \
		$(VENV)/bin/streamlit run frontend/app.py --server.address 127.0.0.1 --browser.gatherUsageStats false

# make synth: the CloudFormation template into cdk.out/, cdk-nag checked, then cfn-lint.
synth: venv
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 node_modules/.bin/cdk synth --no-notices -q
	$(VENV)/bin/cfn-lint cdk.out/*.template.json

# make bench: every benchmark on this machine, then the comparison report (about 30 minutes on 2 CPUs).
bench: venv
	$(PY) -m bench.inference
	$(PY) -m bench.cold_start
	$(PY) -m bench.serving
	$(PY) -m bench.training
	$(PY) -m bench.report --tracking-uri $(STORE) --readme docs/benchmarks.md $(if $(wildcard outputs/mlflow.db),,--no-mlflow)

# make clean: what can be made again (the generated demo set, the benchmarks' models and results, the
#             synthesized template). Training results in outputs/ (the MLflow store, runs, checkpoints) stay.
clean:
	rm -rf demo_data outputs/bench outputs/models bench/results cdk.out
