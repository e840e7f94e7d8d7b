"""``python -m eval``: compare runs, write a hybrid run.

    python -m eval compare runs/text runs/lfan --out reports/meld [--split test] [--level rows|clips|both]
    python -m eval hybrid runs/text runs/lfan --out runs/hybrid
    python -m eval ensemble runs/minilm-seed42 runs/minilm-seed1 --out runs/minilm-ensemble
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Evaluate textualize runs: side-by-side report, late-fusion hybrid, ensembles.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console()


def compare_cli(
    runs: List[Path],
    out: Path,
    split: str = "test",
    level: str = "both",
    hybrid: bool = True,
    strict: bool = False,
    resamples: int = 2000,
    seed: int = 0,
    max_disagreements: int = 40,
    title: str = "Text vs feature comparison",
    note: Optional[str] = None,
) -> dict:
    """Shared by ``python -m eval compare`` and ``textualize compare``: run, print, exit 2 on refusal."""
    from eval.compare import ComparisonError
    from eval.predictions import PredictionFileError
    from eval.report import run_compare

    try:
        paths, result = run_compare(runs, out, split=split, level=level, hybrid=hybrid, strict=strict,
                                    n_resamples=resamples, seed=seed, max_disagreements=max_disagreements,
                                    title=title, note=note)
    except (ComparisonError, PredictionFileError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    print_summary(result)
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    console.print(f"report: {paths['html']}\n        {paths['md']}\n        {paths['json']}")
    return paths


def print_summary(result: dict) -> None:
    from rich.table import Table

    from eval.report import fmt_diff, fmt_metric, fmt_p

    level = result["levels"][0]
    table = Table(title=f"{result['split']} ({level}; % with 95 % bootstrap CI)")
    table.add_column("run", overflow="fold", min_width=12)
    table.add_column("approach", min_width=7)
    table.add_column("n", justify="right", min_width=3)
    for col in ("accuracy", "weighted F1", "macro F1", "UAR"):  # the CI wraps under the value on narrow terminals
        table.add_column(col, justify="right", overflow="fold")
    for run in result["runs"]:
        m = result["metrics"][level][run["name"]]["all"]
        table.add_row(run["name"], run["approach"], str(m["n"]),
                      *(fmt_metric(m, k) for k in ("accuracy", "weighted_f1", "macro_f1", "uar")))
    console.print(table)
    for h in result["hybrids"]:
        if "weight" in h:
            console.print(f"hybrid {h['name']}: text weight {h['weight']:.2f} (chosen on {h['n_validation']} validation samples)",
                          highlight=False)
    for t in result["paired"]:
        if t["level"] == level and t["variant"] == "all":
            b = t["bootstrap"]["weighted_f1"]
            console.print(f"{t['a']} vs {t['b']}: McNemar p {fmt_p(t['mcnemar']['pvalue'])}"
                          f"{' (exact)' if t['mcnemar']['exact'] else ''}; Δ weighted F1 {fmt_diff(b)} p {fmt_p(b['pvalue'])}",
                          highlight=False)


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="Run folders (run.json + predictions/<split>.jsonl) of any approach."),
    out: Path = typer.Option(..., "--out", help="Folder for report.html, report.md, metrics.json, plots/."),
    split: str = typer.Option("test", help="Split to compare."),
    level: str = typer.Option("both", help="rows, clips or both (clips aggregates rows that name a clip)."),
    hybrid: bool = typer.Option(True, "--hybrid/--no-hybrid", help="Add a late-fusion row per text × feature pair."),
    strict: bool = typer.Option(False, "--strict", help="Refuse runs whose dataset manifests differ (default: warn)."),
    resamples: int = typer.Option(2000, help="Bootstrap resamples."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    max_disagreements: int = typer.Option(40, help="Disagreeing samples shown per pair in the report."),
    title: str = typer.Option("Text vs feature comparison", help="Report title."),
    note: Optional[str] = typer.Option(None, help="A note printed at the top of the report."),
) -> None:
    """Compare text, feature and hybrid runs over the same samples: metrics with 95 % CIs, paired
    tests, hybrid, plots, disagreements with prompts, provenance."""
    compare_cli(runs, out, split, level, hybrid, strict, resamples, seed, max_disagreements, title, note)


@app.command()
def hybrid(
    text_run: Path = typer.Argument(..., help="Text run folder (needs validation predictions)."),
    feature_run: Path = typer.Argument(..., help="Feature run folder (needs validation predictions)."),
    out: Path = typer.Option(..., "--out", help="Run folder to write (approach 'hybrid')."),
    metric: str = typer.Option("weighted_f1", help="Validation metric that picks the weight."),
    aggregate: str = typer.Option("mean_probs", help="Clip aggregation when rows are parts of clips."),
) -> None:
    """Late fusion (probability averaging) of a text and a feature run, weight chosen on validation."""
    import json

    from eval.hybrid import write_hybrid_run
    from eval.predictions import PredictionFileError

    try:
        path = write_hybrid_run(text_run, feature_run, out, metric=metric, aggregate=aggregate)
    except (PredictionFileError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    info = json.loads((path / "run.json").read_text())
    cfg = info["config"]
    console.print(f"hybrid run: {path}  (text weight {cfg['text_weight']:.2f}, chosen on {cfg['n_validation']} "
                  f"validation samples by {cfg['selection_metric']})")
    for split, m in info["metrics"].items():
        rows = m["rows"]
        console.print(f"  {split}: weighted F1 {rows['weighted_f1'] * 100:.1f}, accuracy {rows['accuracy'] * 100:.1f}, n {rows['n']}")


@app.command()
def ensemble(
    runs: List[Path] = typer.Argument(..., help="Two or more run folders over the same samples (seeds, models, folds)."),
    out: Path = typer.Option(..., "--out", help="Run folder to write (the members' approach, method 'ensemble')."),
    aggregate: str = typer.Option("mean_probs", help="Clip aggregation when rows are parts of clips."),
) -> None:
    """Mean of the runs' probabilities with equal weights (nothing is chosen on any split), written
    as a run folder that ``compare`` reads like a trained run."""
    import json

    from eval.ensemble import write_ensemble_run
    from eval.predictions import PredictionFileError

    try:
        path = write_ensemble_run(runs, out, aggregate=aggregate)
    except (PredictionFileError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    info = json.loads((path / "run.json").read_text())
    size = info["describe"]["parameters"]
    console.print(f"ensemble run: {path}  ({len(runs)} members" + (f", {size / 1e6:.1f} M parameters in all)" if size else ")"))
    for split, m in info["metrics"].items():
        rows = m["rows"]
        console.print(f"  {split}: weighted F1 {rows['weighted_f1'] * 100:.1f}, macro F1 {rows['macro_f1'] * 100:.1f}, "
                      f"accuracy {rows['accuracy'] * 100:.1f}, n {rows['n']}")


if __name__ == "__main__":
    app()
