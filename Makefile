# beatdbn: make setup | make demo | make real | make curve | make test | make test-fast | make bench
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    ?= demo
TRACKS  ?= 2000

# make real REAL_MSD=/path/to/MillionSongSubset/data: MSD .h5 files (searched recursively); where the folder has
# subset-* folders (the project's copy: subset-AA and subset-AB-AI, 878 tracks) only those are read.
REAL_MSD ?= ../shared/data/msd
REAL_TAGTRAUM ?= $(REAL_MSD)/additional/msd_tagtraum_cd1.cls
REAL_SEEDS ?= 3
REAL    ?= $(DEMO)/real
REAL_SOURCES = $(or $(wildcard $(REAL_MSD)/subset-*),$(REAL_MSD))

.PHONY: setup demo real real-check curve test test-fast bench bench-scale clean model browser synth-tools

setup: $(STAMP)

# PyTorch, CPU build. The project's machines hold torch 2.13.0's CPU wheel, which pip takes for the plain pin; on
# stock PyPI the same pin (or any looser one) takes a multi-GB CUDA build on Linux x86_64. Elsewhere give PyTorch's
# CPU index: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu (used only when set; TORCH_VERSION to pin
# another release).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)$(if $(TORCH_INDEX), --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e '.[test,serve]'
	touch $(STAMP)

demo: setup
	$(BIN)/beatdbn synth $(DEMO)/msd --tracks $(TRACKS) --artists 40
	$(BIN)/beatdbn extract $(DEMO)/msd --out $(DEMO)/store
	$(BIN)/beatdbn info $(DEMO)/store
	$(BIN)/beatdbn reproduce $(DEMO)/store --out $(DEMO)/run --quick --artists 10 --per-artist 40 --per-genre 40 --per-key 60 --per-decade 60

# Table 1 on real MSD track files (REAL_MSD, default ../shared/data/msd: its 878 subset tracks), tasks at the
# scale the corpus supports (--scale auto: the classes that use the most tracks, 2+ test tracks each), the tagtraum
# genre labels when REAL_TAGTRAUM exists, REAL_SEEDS (3) seeds; resumes when rerun.
real: real-check setup
	OMP_NUM_THREADS=1 $(BIN)/beatdbn extract $(REAL_SOURCES) --out $(REAL)/store --scheduler sync
	OMP_NUM_THREADS=1 $(BIN)/beatdbn reproduce $(REAL)/store --out $(REAL)/run --scale auto --seeds $(REAL_SEEDS) \
	  $(if $(wildcard $(REAL_TAGTRAUM)),--genre-labels $(REAL_TAGTRAUM)) --recipe both --pretrain-min-beats 1000000
	@cat $(REAL)/run/table.md

# Label-efficiency curve on the real tracks (issue 23 item 4): one DBN pretrained without labels, then every model
# on 1..50 labelled tracks per class, 3 seeds; REAL_CURVE_TASK (key) at --scale auto; resumes when rerun.
REAL_CURVE_TASK ?= key
curve: real-check setup
	OMP_NUM_THREADS=1 $(BIN)/beatdbn extract $(REAL_SOURCES) --out $(REAL)/store --scheduler sync
	OMP_NUM_THREADS=1 $(BIN)/beatdbn curve $(REAL)/store $(REAL)/curve-$(REAL_CURVE_TASK) --task $(REAL_CURVE_TASK) \
	  --scale auto --seeds $(REAL_SEEDS) $(if $(wildcard $(REAL_TAGTRAUM)),--genre-labels $(REAL_TAGTRAUM)) \
	  --pretrain-min-beats 1000000

real-check:
	@test -d "$(REAL_MSD)" || { echo "make real: REAL_MSD=$(REAL_MSD) is not a folder; give REAL_MSD=/path/to/MillionSongSubset/data (a folder of MSD .h5 track files)" >&2; exit 2; }

# tests/test_serve.py drives Debian's chromium (Playwright, no browser download); installed here when missing
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "no chromium: the browser test will skip (run: apt-get update && apt-get install -y chromium)"

# fluidsynth, a small GM soundfont and espeak-ng for the key corpus tests (tests/test_key_corpus.py); they skip without
synth-tools:
	@command -v fluidsynth >/dev/null 2>&1 && command -v espeak-ng >/dev/null 2>&1 && [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fluidsynth timgm6mb-soundfont espeak-ng >/dev/null; } \
	  || echo "no fluidsynth/espeak-ng: the key corpus render tests will skip"

# the MSD-sized dry run (issue 27; not in CI): SCALE_TRACKS synthetic tracks through extract (Dask), one pretraining
# pass on every core, paper-scale tasks, one Table 1 experiment; projections to the full MSD in docs/measurements/.
# 50,000 tracks need about 20 GB free.
SCALE_TRACKS ?= 50000
bench-scale: setup
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench_scale.py --tracks $(SCALE_TRACKS)

# the layer contracts (pyproject.toml, [tool.importlinter]) first: a cycle fails CI before any test runs
test: setup browser synth-tools
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --doctest-modules --ignore-glob='tests/_*.py' src/beatdbn tests

# the fast set alone (no end-to-end runs marked slow), for the edit-test loop
test-fast: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow" tests

# the shipped audio key model (src/beatdbn/pretrained/key_audio): 24 keys + "no key" (scripts/train_key_model.py).
# Debian: FluidSynth, three GM soundfonts (never FluidR3: it is reserved for evaluation), espeak-ng for speech,
# and free game soundtracks for pretraining on real recorded music.
MODEL_DEBS := fluidsynth timgm6mb-soundfont musescore-general-soundfont-small csound-soundfont espeak-ng \
              singularity-music hyperrogue-music
model: setup
	@dpkg -s $(MODEL_DEBS) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends $(MODEL_DEBS) >/dev/null; }
	$(BIN)/python -m pip install --quiet -e '.[model]'
	OMP_NUM_THREADS=1 $(BIN)/python scripts/train_key_model.py

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(DEMO) bench-results.json .pytest_cache
