# Land-use carbon pipeline. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV   ?= .venv
CONFIG ?= sample_data/config.yaml
OUT    ?= out/$(notdir $(patsubst %/,%,$(dir $(abspath $(CONFIG)))))
ARGS   ?=

BIN    := $(VENV)/bin
# Material for MkDocs prints a banner about its successor on every build; the docs do not need it.
export NO_MKDOCS_2_WARNING := 1
STAMP  := $(VENV)/.installed
# A run is redone when the config, anything beside it (outside OUT) or the package changes.
# The run's own lock and staging files beside OUT are not inputs.
INPUTS := $(shell find $(dir $(CONFIG)) -type f -not -path '$(OUT)/*' -not -path '$(OUT).previous/*' -not -path '*/.$(notdir $(OUT)).*' -not -path '*/__pycache__/*' 2>/dev/null)
SOURCES := $(shell find pipeline -type f \( -name '*.py' -o -name '*.csv' \) 2>/dev/null)

SIZES  ?= 6000 10000 12000 20000 24000

.PHONY: help env run validate test lint docs bench sample-data clean mutate

help: ## list the targets
	@echo "Land-use carbon pipeline"
	@echo "  make run      [CONFIG=region.yaml] [OUT=dir] [ARGS='--scheduler tcp://...']"
	@echo "  make validate [CONFIG=region.yaml]"
	@echo "  make bench    [SIZES='6000 10000 12000 20000 24000'] [ARGS='--fault-size 10000 --memory-limit 1.5GB"
	@echo "                --fault-chunks 2048 --timeout 3600 --worldcover']   (options: bench/run.py --help)"
	@echo "  make test     [ARGS='-k pattern']"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

env: $(STAMP) ## create or refresh .venv (only when pyproject.toml changed)

# The stamp is older than pyproject.toml when dependencies changed: reinstall.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "error: $(PYTHON) is older than 3.10; set PYTHON=python3.11 or similar" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs,lint]'
	@touch $@

run: $(OUT)/manifest.json ## run the pipeline (skipped when outputs are up to date)

$(OUT)/manifest.json: $(CONFIG) $(INPUTS) $(SOURCES) $(STAMP)
	$(BIN)/carbon-pipeline run $(CONFIG) --output $(OUT) $(ARGS)

validate: $(STAMP) ## check every input of CONFIG without computing
	$(BIN)/carbon-pipeline validate $(CONFIG)

# The docs are built first, warnings as errors, into a throw-away folder: a broken page fails the tests.
test: $(STAMP) ## build the docs (strict) and run the test suite
	@site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && $(BIN)/mkdocs build --strict --quiet --site-dir "$$site"
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy pipeline

docs: $(STAMP) ## build the documentation site into site/ (warnings are errors)
	$(BIN)/mkdocs build --strict

# Floors, InVEST, threads against a local cluster per size, faults on the cluster; bench/results/results.md.
# A quick check that every run works: make bench SIZES="1500 3000" ARGS="--fault-size 3000".
bench: $(STAMP) ## benchmark (floors, InVEST, growth, cluster, faults): SIZES="6000 ...", ARGS="--fault-size 10000"
	$(BIN)/python bench/run.py --sizes $(SIZES) $(ARGS)

sample-data: $(STAMP) ## regenerate sample_data/ with the seeded generator
	$(BIN)/carbon-pipeline sample-data sample_data

# Mutation testing of the science modules (not in CI): mutmut in a copy under out/mutate (a setup.cfg
# there names what to mutate; the checkout is not touched), with the fast unit tests of those modules.
# Workers come from a fork server: forked from mutmut's own process, which ran the suite and so holds
# Dask's thread pools, they hung until their CPU limit (every CLI-level test "timed out").
# MUTATE='pipeline/stages/intensity.py' narrows it; `cd out/mutate && ../../.venv/bin/mutmut browse` lists survivors.
MUTATE ?= pipeline/stages/carbon.py pipeline/stages/balance.py pipeline/stages/transitions.py \
	pipeline/stages/intensity.py pipeline/stages/zonal.py pipeline/stages/trends.py pipeline/stages/statistics.py \
	pipeline/stages/redline.py pipeline/stages/reclassify.py pipeline/stages/counts.py pipeline/model/grid.py
MUTATE_TESTS ?= tests/test_carbon.py tests/test_transitions.py tests/test_intensity.py tests/test_zonal.py \
	tests/test_trends.py tests/test_statistics.py tests/test_redline.py tests/test_reclassify.py tests/test_grid.py \
	tests/test_split.py tests/test_maps.py tests/test_honest_balance.py tests/test_areas.py
MUTATE_DIR ?= out/mutate
# MUTATE_SAMPLE='*[05]' checks only the mutants whose number ends in 0 or 5 (a systematic 1-in-5 sample;
# mutmut's fnmatch patterns over mutant names); empty checks every mutant.
MUTATE_SAMPLE ?=

mutate: $(STAMP) ## mutation score of the science modules (mutmut; MUTATE='file.py ...' to narrow; slow)
	@$(BIN)/python -c 'import mutmut' 2>/dev/null || $(BIN)/python -m pip install --quiet mutmut
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)
	tar --exclude=./.venv --exclude=./out --exclude=./site --exclude='*/__pycache__' -cf - . | tar -xf - -C $(MUTATE_DIR)
	{ echo '[mutmut]'; echo 'source_paths=pipeline/'; echo 'process_isolation=forkserver'; echo 'only_mutate='; \
	  for f in $(MUTATE); do echo "    $$f"; done; \
	  echo 'pytest_add_cli_args_test_selection='; for t in $(MUTATE_TESTS); do echo "    $$t"; done; \
	  echo 'pytest_add_cli_args='; echo '    -p no:cacheprovider'; echo '    -q'; } > $(MUTATE_DIR)/setup.cfg
	cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut run --max-children $$(nproc) $(foreach p,$(MUTATE_SAMPLE),'$(p)') > mutmut.log 2>&1; \
	  status=$$?; tail -c 300 mutmut.log | tr '\r' '\n' | tail -3; exit $$status
	@cd $(MUTATE_DIR) && $(abspath $(BIN))/mutmut results --all true > results.txt 2>&1; \
	  killed=$$(grep -cE ': (killed|timeout)$$' results.txt); survived=$$(grep -c ': survived$$' results.txt); \
	  untested=$$(grep -c ': no tests$$' results.txt); total=$$((killed + survived + untested)); \
	  echo "killed (or timed out) $$killed, survived $$survived, not reached by MUTATE_TESTS $$untested," \
	    "of $$total mutants checked (score $$((100 * killed / (total > 0 ? total : 1))) %);" \
	    "survivors: $(MUTATE_DIR)/results.txt"

clean: ## remove outputs and the built docs (keeps .venv)
	rm -rf out site
