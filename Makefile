# Two entry points for a fresh machine: `make run` (the main job) and `make test` (everything);
# `make test-fast` skips the tests that drive Chromium, coturn, PulseAudio or Node.js.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the tests drive for real: a PulseAudio null sink for the microphone test,
# Chromium (libwebrtc) as the interop peer, coturn as the TURN relay,
# Node.js for the official Orga SDK when the machine has none, and flite/espeak-ng for speech.
TEST_DEBS := pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 chromium coturn flite espeak-ng \
	$(if $(shell command -v node),,nodejs npm)
APT := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test test-fast typecheck install test-debs bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

## make run: a 10-second call against the embedded Orga-compatible server, with a sample file.
run: install
	$(BIN)/peerbot call --source samples/hello.wav --video samples/pattern.mp4:loop --duration 10 --transcripts

test-debs:
	@missing=$$(for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(APT) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(APT) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## make test: install everything the tests need (Debian packages included) and run them,
## two at a time (most tests wait on real-time media; see tests/conftest.py for what stays serial).
## Real UDP, real codecs and real devices on a shared machine: a test that fails is run again
## (at most twice, shown as R in the summary) before the run is red; run pytest alone to see every failure.
test: install test-debs typecheck
	$(BIN)/pytest -raR -n 2 --dist loadgroup --reruns 2 --reruns-delay 1

## make typecheck: mypy over src/ (strict flags on the public modules, see pyproject.toml).
typecheck: install
	$(BIN)/mypy

## make test-fast: the tests that need none of Chromium, coturn, PulseAudio or Node.js (no Debian packages).
FAST := not chromium and not turn and not pulseaudio and not node
test-fast: install
	$(BIN)/pytest -ra -m "$(FAST)"

bench: install
	$(BIN)/peerbot bench setup

clean:
	rm -rf $(VENV) .pytest_cache
