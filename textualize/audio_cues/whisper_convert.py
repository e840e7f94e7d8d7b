"""CTranslate2 Whisper ``model.bin`` -> openai-whisper checkpoint.

Offline, the only Whisper weights here are the CTranslate2 tiny.en folder; openai-whisper needs
a ``.pt`` checkpoint. Both hold the same tensors (CTranslate2 converts from Hugging Face, which
converted from OpenAI's fp16 release), only under other names, with q/k/v fused and with the
key bias (absent in Whisper) stored as zeros. This module reads CTranslate2's binary format
(written by ``ctranslate2.specs.model_spec.ModelSpec._serialize``), maps the names back and caches
the result once under ``cache_root()/models`` keyed by the model.bin's SHA-256.
"""
from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path

import numpy as np

# type ids of ctranslate2.specs.model_spec._dtype_to_type_id
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SUPPORTED_BINARY_VERSIONS = (5, 6)
CONVERTER_VERSION = 1  # bump when the mapping changes, so stale cached checkpoints are rebuilt


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin``: (spec name, variables, aliases)."""
    path = Path(path)
    data = path.read_bytes()
    offset = 0

    def unpack(fmt: str):
        nonlocal offset
        try:
            value = struct.unpack_from(fmt, data, offset)[0]
        except struct.error:
            raise CT2FormatError(f"{path}: truncated CTranslate2 model file at byte {offset}") from None
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        n = unpack("<H")
        text = data[offset : offset + n - 1].decode("utf-8")
        offset += n
        return text

    version = unpack("<I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise CT2FormatError(
            f"{path}: CTranslate2 binary version {version} is not supported (known: {SUPPORTED_BINARY_VERSIONS})"
        )
    spec_name = string()
    unpack("<I")  # spec revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(unpack("<I")):
        name = string()
        rank = unpack("<B")
        shape = tuple(unpack("<I") for _ in range(rank))
        type_id = unpack("<B")
        num_bytes = unpack("<I")
        if type_id >= len(_CT2_DTYPES):
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        dtype = _CT2_DTYPES[type_id]
        raw = data[offset : offset + num_bytes]
        offset += num_bytes
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's top half
            array = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        variables[name] = array.reshape(shape)
    aliases = {}
    for _ in range(unpack("<I")):
        alias = string()
        aliases[alias] = string()
    return spec_name, variables, aliases


def _dequantize(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Float value of ``name``: float16 stays float16 (lossless, half the cache size); int8/int16
    weights carry a per-row ``weight_scale`` (q = w * scale) and come back as float32."""
    value = variables[name]
    scale_name = name[: -len("weight")] + "weight_scale" if name.endswith("weight") else None
    if scale_name and scale_name in variables and value.dtype in (np.int8, np.int16):
        scale = variables[scale_name].astype(np.float32)
        return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
    return value if value.dtype == np.float16 else value.astype(np.float32)


def ct2_whisper_to_openai(model_dir: str | Path) -> dict:
    """Checkpoint dict ``{"dims", "model_state_dict", "alignment_heads"}`` for openai-whisper."""
    import torch

    model_dir = Path(model_dir)
    spec_name, variables, aliases = read_ct2_model(model_dir / "model.bin")
    if spec_name != "WhisperSpec":
        raise CT2FormatError(f"{model_dir / 'model.bin'}: spec {spec_name!r} is not a Whisper model")
    for alias, target in aliases.items():
        variables[alias] = variables[target]
    config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise CT2FormatError(f"{model_dir / 'model.bin'}: variable {name!r} is missing")
        return _dequantize(variables, name)

    def layers(prefix: str) -> int:
        return len({m.group(1) for k in variables if (m := re.match(prefix + r"/layer_(\d+)/", k))})

    n_audio_layer, n_text_layer = layers("encoder"), layers("decoder")
    n_audio_ctx, n_audio_state = variables["encoder/position_encodings/encodings"].shape
    n_text_ctx, n_text_state = variables["decoder/position_encodings/encodings"].shape
    dims = {
        "n_mels": int(variables["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(n_audio_ctx),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(variables["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(n_text_ctx),
        "n_text_state": int(n_text_state),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }

    sd: dict[str, np.ndarray] = {}

    def layer_norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/gamma")
        sd[f"{dst}.bias"] = get(f"{src}/beta")

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = get(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = get(f"{src}/bias")

    def split(src: str, parts: list[str], dst: str) -> None:
        """Undo CTranslate2's fused projection (rows stacked in ``parts`` order)."""
        weight, bias = get(f"{src}/weight"), get(f"{src}/bias")
        n = weight.shape[0] // len(parts)
        for i, part in enumerate(parts):
            sd[f"{dst}.{part}.weight"] = weight[i * n : (i + 1) * n]
            if part != "key":  # Whisper's key projection has no bias; CT2 stored zeros
                sd[f"{dst}.{part}.bias"] = bias[i * n : (i + 1) * n]

    def block(dst: str, src: str, cross: bool) -> None:
        split(f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        layer_norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{src}/attention/linear_1", ["key", "value"], f"{dst}.cross_attn")
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            layer_norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        layer_norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(n_audio_layer):
        block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
    layer_norm("encoder.ln_post", "encoder/layer_norm")
    sd["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(n_text_layer):
        block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
    layer_norm("decoder.ln", "decoder/layer_norm")

    return {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(np.array(v, copy=True)) for k, v in sd.items()},
        "alignment_heads": [list(map(int, pair)) for pair in config.get("alignment_heads", [])],
    }


def converted_checkpoint_path(model_dir: str | Path) -> Path:
    """Where the converted checkpoint of this CT2 model lives (keyed by model.bin's SHA-256)."""
    from textualize.demo import cache_root
    from textualize.models import sha256_of

    digest = sha256_of(Path(model_dir) / "model.bin")[:16]
    return cache_root() / "models" / f"openai-whisper-from-ct2-{digest}-v{CONVERTER_VERSION}.pt"


def ensure_openai_checkpoint(model_dir: str | Path) -> Path:
    """Convert once and cache atomically; later calls return the cached file."""
    import torch

    from textualize.manifest import atomic_write_bytes

    target = converted_checkpoint_path(model_dir)
    if target.exists():
        return target
    checkpoint = ct2_whisper_to_openai(model_dir)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target


def load_openai_whisper(checkpoint_path: str | Path, device: str = "cpu"):
    """Build ``whisper.model.Whisper`` from a converted checkpoint (strict: every tensor mapped)."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"], strict=True)
    heads = checkpoint.get("alignment_heads") or []
    if heads:  # the cross-attention heads used for word timestamps (from the CT2 config)
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device)
