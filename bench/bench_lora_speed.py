"""LoRA and QLoRA training-step speed of a LLaMA-3-8B-shaped decoder (random weights).

Shape: hidden 4096, MLP 14336, 32 heads (8 KV heads), vocab 128256, RoPE θ 500000: LLaMA-3-8B.
``--layers`` keeps the width and cuts the depth (a 2-core CPU cannot hold or run 32 layers in
useful time); on a GPU run the full shape (``--layers 32``). Weights are random: speed does not
depend on their values.

Per method it reports the step time, tokens/s, peak memory, and two utilisation figures against
the device's peak (``--peak-tflops``; default: the bf16 dense peak of known GPUs, on CPU the
measured bf16 GEMM rate of this machine — on a shared CPU that rate moves with the other load, so
CPU utilisation figures are indicative only; ``achieved_tflops_lora`` is reported as well):
- ``mfu``: model FLOPs utilisation with the usual full-training count per token,
  6·N + 12·L·T·d (N = matmul parameters: decoder layers + LM head; T = sequence length);
- ``hfu_lora``: the arithmetic a LoRA step actually does with frozen base weights (forward plus
  activation gradients, no weight gradients): 4·N + 8·L·T·d (adapters are negligible).

QLoRA replaces every decoder-layer linear layer with a bitsandbytes NF4 ``Linear4bit``
(double-quantised constants, bf16 compute) built from the same random weights, as
``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
bnb_4bit_compute_dtype=torch.bfloat16)`` does at load time; the LM head stays bf16.

    # CPU here (reduced depth: 2 of 32 layers)
    OMP_NUM_THREADS=2 nice -n 10 python bench/bench_lora_speed.py --layers 2 --seq-len 128 --steps 2 --out runs/bench/lora_speed_cpu.json
    # one GPU, full 8B shape
    python bench/bench_lora_speed.py --device cuda --layers 32 --seq-len 2048 --batch 1 --steps 10 --out runs/bench/lora_speed_gpu.json
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                 vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192, rms_norm_eps=1e-5)
GPU_BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 125.0, "L4": 121.0,
                        "RTX 4090": 165.2, "RTX 3090": 71.0}


def peak_tflops(device: str, override: float | None) -> tuple[float, str]:
    if override:
        return override, "given (--peak-tflops)"
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for key, tf in GPU_BF16_PEAK_TFLOPS.items():
            if key in name:
                return tf, f"{name}: bf16 dense datasheet peak"
        raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops")
    n = 2048
    a = torch.randn(n, n, dtype=torch.bfloat16)
    b = torch.randn(n, n, dtype=torch.bfloat16)
    a @ b
    t0, reps = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3.0:
        a @ b
        reps += 1
    rate = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12
    return rate, f"measured bf16 {n}x{n} GEMM on this CPU ({torch.get_num_threads()} threads)"


def build(layers: int, device: str, dtype: torch.dtype, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(num_hidden_layers=layers, tie_word_embeddings=False, **LLAMA3_8B)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.config.use_cache = False
    return model, cfg


def quantize_nf4(model, device: str):
    """Every decoder-layer nn.Linear -> bitsandbytes NF4 Linear4bit (double quant, bf16 compute)."""
    import bitsandbytes as bnb

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                      compute_dtype=torch.bfloat16, quant_type="nf4", compress_statistics=True,
                                      device="meta")
                q.weight = bnb.nn.Params4bit(lin.weight.data.to("cpu"), requires_grad=False, quant_type="nf4",
                                             compress_statistics=True)
                setattr(parent, name, q.to(device))
                del lin
    gc.collect()
    return model


def matmul_params(model) -> int:
    n = model.lm_head.weight.numel()
    for layer in model.model.layers:
        for m in layer.modules():
            if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Linear4bit":
                n += m.in_features * m.out_features
    return n


def run_method(method: str, args, peak: float) -> dict:
    from peft import LoraConfig, get_peft_model

    dev = args.device
    model, cfg = build(args.layers, dev, torch.bfloat16, args.attn)
    n_mm = matmul_params(model)
    if method == "qlora":
        model = quantize_nf4(model, dev)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                             target_modules=targets, task_type="CAUSAL_LM"))
    trainable, total = model.get_nb_trainable_parameters()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len), generator=g).to(dev)
    model.train()

    def step():
        with torch.autocast(device_type="cuda" if dev.startswith("cuda") else "cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    step_s = sorted(times)[len(times) // 2]
    tokens = args.batch * args.seq_len
    L, d, T = cfg.num_hidden_layers, cfg.hidden_size, args.seq_len
    flops_full = 6 * n_mm + 12 * L * T * d
    flops_lora = 4 * n_mm + 8 * L * T * d
    tps = tokens / step_s
    out = {
        "method": method, "layers": L, "seq_len": T, "batch": args.batch, "steps_timed": len(times),
        "step_s_median": round(step_s, 4), "step_s_all": [round(t, 4) for t in times],
        "tokens_per_s": round(tps, 2),
        "matmul_params": n_mm, "parameters": int(total), "trainable_parameters": int(trainable),
        "model_tflops_per_step": round(flops_full * tokens / 1e12, 3),
        "achieved_tflops_lora": round(flops_lora * tps / 1e12, 5),  # arithmetic actually done per second
        "mfu": round(flops_full * tps / (peak * 1e12), 5),
        "hfu_lora": round(flops_lora * tps / (peak * 1e12), 5),
        "gradient_checkpointing": bool(args.gradient_checkpointing),
    }
    if dev.startswith("cuda"):
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        out["peak_rss_gib_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    del model, opt
    gc.collect()
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=32, help="decoder layers (LLaMA-3-8B has 32; reduce on CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--methods", default="lora,qlora")
    ap.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager, flash_attention_2)")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: see module doc)")
    ap.add_argument("--out", default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = set(methods) - {"lora", "qlora"}
    if bad:
        ap.error(f"unknown methods {sorted(bad)}")
    if "qlora" in methods:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from llm.decoder import QuantizationUnavailableError, require_4bit

        try:
            require_4bit(device=args.device)
        except QuantizationUnavailableError as e:
            print(f"qlora skipped: {e}", file=sys.stderr)
            methods.remove("qlora")
    peak, peak_src = peak_tflops(args.device, args.peak_tflops)
    results = {
        "shape": {**LLAMA3_8B, "num_hidden_layers": args.layers, "full_depth": 32},
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "peak_tflops": round(peak, 3), "peak_source": peak_src, "runs": [],
    }
    for m in methods:
        r = run_method(m, args, peak)
        results["runs"].append(r)
        print(f"{m:6s} layers={r['layers']} T={r['seq_len']} B={r['batch']}: step {r['step_s_median']:.3f} s, "
              f"{r['tokens_per_s']:.1f} tok/s, MFU {100 * r['mfu']:.2f}%, LoRA HFU {100 * r['hfu_lora']:.2f}%", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
