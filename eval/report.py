"""The comparison report: ``report.html`` (self-contained: inline CSS, plots as embedded PNG),
``report.md`` (tables; plots as files in ``plots/``) and ``metrics.json`` (everything computed).

:func:`run_compare` is what ``python -m eval compare`` and ``textualize compare`` both call.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.compare import Comparison, compare, load_runs
from eval.stats import DEFAULT_RESAMPLES

TEMPLATES = Path(__file__).parent / "templates"
PERCENT_METRICS = ("accuracy", "weighted_f1", "macro_f1", "uar")
METRIC_NAMES = {"accuracy": "Accuracy", "weighted_f1": "Weighted F1", "macro_f1": "Macro F1", "uar": "UAR",
                "ece": "ECE", "nll": "NLL", "brier": "Brier"}
APPROACH_COLOURS = {"text": "#1f77b4", "feature": "#ff7f0e", "hybrid": "#2ca02c"}


# ---------------------------------------------------------------- plots


def _figure_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _short(name: str, n: int = 34) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def plot_confusions(result: dict[str, Any], level: str) -> bytes:
    """Row-normalised confusion matrix per run, each cell annotated with its count."""
    plt = _plt()
    classes = result["classes"]
    runs = result["runs"]
    cols = min(3, len(runs))
    rows = int(np.ceil(len(runs) / cols))
    k = len(classes)
    side = max(3.2, 0.55 * k + 1.6)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        m = result["metrics"][level][run["name"]]["all"]
        norm = np.asarray(m["confusion_normalized"])
        counts = np.asarray(m["confusion"])
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{counts[i, j]}", ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
        ax.set_title(_short(run["name"]), fontsize=9)
    fig.suptitle(f"Confusion matrices ({level}; colour = share of the gold row, number = count)", fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


def plot_per_class_f1(result: dict[str, Any], level: str) -> bytes:
    plt = _plt()
    classes = result["classes"]
    runs = result["runs"]
    k, n = len(classes), len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * k * max(1, n) ** 0.5 + 2), 3.4))
    width = 0.8 / max(n, 1)
    cmap = plt.get_cmap("tab10")
    for j, run in enumerate(runs):
        pc = result["metrics"][level][run["name"]]["all"].get("per_class", {})
        vals = [pc.get(c, {}).get("f1", np.nan) for c in classes]
        ax.bar(np.arange(k) - 0.4 + width * (j + 0.5), vals, width, label=_short(run["name"], 40), color=cmap(j % 10))
    ax.set_xticks(range(k), classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Per-class F1 ({level})", fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


def plot_reliability(result: dict[str, Any], level: str) -> bytes | None:
    plt = _plt()
    runs = [r for r in result["runs"] if "reliability" in result["metrics"][level][r["name"]]["all"]]
    if not runs:
        return None
    cols = min(4, len(runs))
    rows = int(np.ceil(len(runs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        m = result["metrics"][level][run["name"]]["all"]
        curve = m["reliability"]
        edges = np.asarray(curve["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        counts = np.asarray(curve["count"])
        acc = np.where(counts > 0, curve["accuracy"], np.nan)
        ax.bar(centres, acc, width=edges[1] - edges[0], edgecolor="black", linewidth=0.5,
               color=APPROACH_COLOURS.get(run["approach"], "#888"), alpha=0.8, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.set_title(f"{_short(run['name'], 28)}\nECE {m.get('ece', float('nan')):.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"Reliability diagrams ({level}, 10 bins)", fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


def plot_hybrid_weights(result: dict[str, Any]) -> bytes | None:
    plt = _plt()
    fused = [h for h in result["hybrids"] if "weight" in h]
    if not fused:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    for h in fused:
        ws = sorted(float(w) for w in h["validation_scores"])
        ax.plot(ws, [h["validation_scores"][w] if w in h["validation_scores"] else h["validation_scores"][str(w)] for w in ws],
                marker="o", markersize=3, label=_short(h["name"], 50))
        ax.axvline(h["weight"], linestyle=":", color="grey")
    ax.set_xlabel("weight of the text run (0 = feature run alone, 1 = text run alone)", fontsize=8)
    ax.set_ylabel(f"validation {fused[0]['metric']}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_png(fig)


# ---------------------------------------------------------------- formatting


def fmt_metric(m: dict[str, Any], key: str, ci: bool = True) -> str:
    """``61.2 [55.0–67.1]`` for percentages, ``0.912 [0.85–0.97]`` for scores; ``–`` if absent."""
    if key not in m or m[key] is None or (isinstance(m[key], float) and not np.isfinite(m[key])):
        return "–"
    pct = key in PERCENT_METRICS
    scale, digits = (100.0, 1) if pct else (1.0, 3)
    text = f"{m[key] * scale:.{digits}f}"
    interval = (m.get("ci") or {}).get(key)
    if ci and interval and interval.get("low") is not None and np.isfinite(interval["low"]):
        text += f" [{interval['low'] * scale:.{digits}f}–{interval['high'] * scale:.{digits}f}]"
    return text


def fmt_p(p: float | None) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_diff(d: dict[str, Any]) -> str:
    return f"{d['difference'] * 100:+.1f} [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]"


def fmt_prob(p: float | None) -> str:
    return "–" if p is None else f"{p:.2f}"


# ---------------------------------------------------------------- writing


def _env():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True, undefined=__import__("jinja2").StrictUndefined)
    env.filters.update(metric=fmt_metric, p=fmt_p, diff=fmt_diff, prob=fmt_prob,
                       tojson_pretty=lambda x: json.dumps(x, indent=1, ensure_ascii=False, default=str))
    env.globals.update(METRIC_NAMES=METRIC_NAMES)
    return env


def render(result: dict[str, Any], out_dir: str | Path, title: str = "Text vs feature comparison",
           note: str | None = None) -> dict[str, Path]:
    """Write report.html, report.md, metrics.json and plots/*.png into ``out_dir``."""
    from textualize.manifest import atomic_write_bytes, atomic_write_json, atomic_write_text

    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    plots: dict[str, dict[str, Any]] = {}
    for level in result["levels"]:
        for kind, fn in (("confusion", plot_confusions), ("per_class_f1", plot_per_class_f1), ("reliability", plot_reliability)):
            png = fn(result, level)
            if png is not None:
                plots[f"{kind}_{level}"] = {"png": png, "level": level, "kind": kind}
    png = plot_hybrid_weights(result)
    if png is not None:
        plots["hybrid_weights"] = {"png": png, "level": None, "kind": "hybrid_weights"}
    for name, p in plots.items():
        atomic_write_bytes(out / "plots" / f"{name}.png", p["png"])
        p["b64"] = base64.b64encode(p["png"]).decode("ascii")
        p["file"] = f"plots/{name}.png"
    result = {**result, "title": title, "note": note}
    env = _env()
    context = dict(r=result, plots=plots, metrics_list=("accuracy", "weighted_f1", "macro_f1", "uar"),
                   prob_metrics=("ece", "nll", "brier"))
    html = env.get_template("report.html.j2").render(**context)
    md_env = _env()
    md_env.autoescape = False
    md = md_env.get_template("report.md.j2").render(**context)
    atomic_write_text(out / "report.html", html)
    atomic_write_text(out / "report.md", md)
    atomic_write_json(out / "metrics.json", result)
    return {"html": out / "report.html", "md": out / "report.md", "json": out / "metrics.json", "plots": out / "plots"}


def run_compare(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    split: str = "test",
    level: str = "both",
    hybrid: bool = True,
    strict: bool = False,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    max_disagreements: int = 40,
    title: str = "Text vs feature comparison",
    note: str | None = None,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Load, check, compare and render (the one function behind both command lines)."""
    comp: Comparison = load_runs(run_dirs, split=split, strict=strict)
    result = compare(comp, level=level, hybrid=hybrid, n_resamples=n_resamples, seed=seed,
                     max_disagreements=max_disagreements)
    return render(result, out, title=title, note=note), result
