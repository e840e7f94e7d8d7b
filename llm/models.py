"""Model names -> loadable paths, and which family (encoder or decoder) a model belongs to.

``--model`` takes a name from ``textualize models`` (offline weights from registry packages or
the toolkit's cache), a local folder, or a hub id (``org/name``, loaded from the local Hugging
Face cache; this machine has no hub access). Anything else is refused with the list of names.
"""
from __future__ import annotations

import json
from pathlib import Path

# model_type values of decoder-only (causal LM) families: LLaMA and relatives
DECODER_MODEL_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi", "phi3", "gpt2", "gpt_neox", "gptj", "falcon", "olmo", "olmo2", "stablelm",
    "starcoder2", "smollm3", "granite", "cohere", "opt", "bloom",
}


class ModelNameError(ValueError):
    """--model names nothing usable (says what is accepted)."""


def resolve_model(name: str) -> tuple[str, str | None]:
    """``(path_or_hub_id, gguf_file or None)`` for a ``--model`` value.

    Registered names must be installed (``ModelUnavailableError`` names what to install); a GGUF
    file resolves to its folder plus the file name, as ``from_pretrained(..., gguf_file=)`` wants.
    """
    from textualize.models import MODELS

    if name in MODELS:
        path = MODELS[name].require()
        if path.is_file() and path.suffix == ".gguf":
            return str(path.parent), path.name
        return str(path.parent if path.is_file() else path), None  # a weights file -> its model folder
    p = Path(name).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return str(p.parent), p.name
    if p.is_dir():
        if not (p / "config.json").exists() and not list(p.glob("*.gguf")):
            raise ModelNameError(f"--model {name}: folder has no config.json (not a transformers model folder)")
        return str(p), None
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return name, None  # hub id: from_pretrained reads the local cache (offline here)
    known = ", ".join(MODELS_FOR_TEXT)
    raise ModelNameError(
        f"--model {name!r} is not a known model name ({known}), an existing folder, or a hub id 'org/name'"
    )


MODELS_FOR_TEXT = ("minilm-l6-bert", "mpnet-base", "smollm2-135m-instruct-gguf")


def is_decoder(path: str, gguf_file: str | None = None) -> bool:
    """True for causal-LM families (by ``config.json``'s model_type/architectures; GGUF files are
    decoders). A hub id that is not in the local cache counts as an encoder here; loading it then
    fails with a clear message."""
    if gguf_file:
        return True
    config_path = Path(path) / "config.json"
    config = None
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
    else:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path).to_dict()
        except Exception:
            return False
    if config.get("model_type") in DECODER_MODEL_TYPES:
        return True
    return any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or [])
