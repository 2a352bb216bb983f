"""Writing a benchmark run: ``<name>.json`` (everything), ``<name>.md`` (tables) and ``<name>.png`` (recall@k
curves per category for every system, and the search latency histogram)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .metrics import KS
from .runner import BenchRun


def run_to_dict(run: BenchRun) -> dict[str, Any]:
    return {
        "dataset": run.dataset,
        "config": run.config,
        "ingest": run.ingest,
        "resources": run.resources,
        "systems": {name: sr.summary() for name, sr in run.systems.items()},
        "answers": {k: v.get("per_category") for k, v in run.answers.items()},
        "questions": {
            name: [{"id": r.question_id, "category": r.category, "latency_ms": r.latency_ms, **r.metrics}
                   for r in sr.results]
            for name, sr in run.systems.items()
        },
    }


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(run: BenchRun) -> str:
    data = run_to_dict(run)
    systems = data["systems"]
    cats = sorted({c for s in systems.values() for c in s["metrics"]} - {"overall"}) + ["overall"]
    lines = [f"# remem bench {run.dataset}", ""]
    lines.append(f"{run.config['conversations']} histories, {run.config['questions']} scored questions, "
                 f"embedder `{run.config['embedder']}`.")
    lines += ["", "## Evidence recall@10 per category (turns covered by the top-10)", ""]
    lines.append("| system | " + " | ".join(f"{c} (n={int(next(iter(systems.values()))['metrics'][c]['n'])})"
                                          for c in cats) + " | turns@10 | tokens@10 |")
    lines.append("|---" * (len(cats) + 3) + "|")
    for name, s in systems.items():
        m = s["metrics"]
        lines.append(f"| {name} | " + " | ".join(_f(m[c].get("recall@10")) for c in cats)
                     + f" | {_f(m['overall'].get('turns@10'), 1)} | {_f(m['overall'].get('tokens@10'), 0)} |")
    lines += ["", "## Overall, every k", ""]
    metric_names = ["recall", "hit", "all"]
    if any("session_any@10" in s["metrics"]["overall"] for s in systems.values()):
        metric_names += ["session_any", "session_all"]
    header = [f"{m}@{k}" for m in metric_names for k in KS]
    lines.append("| system | " + " | ".join(header) + " | p50 ms | p95 ms | p99 ms |")
    lines.append("|---" * (len(header) + 4) + "|")
    for name, s in systems.items():
        o, lat = s["metrics"]["overall"], s["latency_ms"]
        lines.append(f"| {name} | " + " | ".join(_f(o.get(h)) for h in header)
                     + f" | {_f(lat.get('p50'), 2)} | {_f(lat.get('p95'), 2)} | {_f(lat.get('p99'), 2)} |")
    ing, res = run.ingest, run.resources
    embed = ing.get("embed_seconds")
    share = (f"; the embedder alone took {embed:.1f} s of it, so add = {ing['seconds'] / embed:.2f}× the embedder's "
             "own time") if embed else ""
    lines += ["", (f"Ingest: {int(ing['turns'])} turns in {ing['seconds']:.1f} s ({ing['turns_per_s']:.0f} turns/s, "
                   f"embedding included{share}). Peak RSS {res['peak_rss_mb']:.0f} MB; store on disk "
                   f"{res['store_mb']:.1f} MB."),
              "Latency is per query, in process, query embedding included (baselines: bm25s / numpy, no store)."]
    lm = run.config.get("ingest_lm")
    if lm:
        lines += ["", (f"LLM pipeline ingest{' with graph memory' if run.config.get('graph') else ''}: "
                       f"{lm['calls']} LM calls ({lm['calls_per_turn']:.2f} per turn), {lm['prompt_tokens']} prompt + "
                       f"{lm['completion_tokens']} completion tokens ({lm['tokens_per_turn']:.0f} per turn).")]
    for spec in run.config.get("stores", ["edge"])[1:]:
        seconds = ing[f"seconds@{spec}"]
        lines.append(f"Store `{spec}` (systems `…@{spec}`): ingest {int(ing['turns'])} turns in {seconds:.1f} s "
                     f"(embeddings reused from the edge ingest); on disk {res[f'store_mb@{spec}']:.1f} MB.")
    for system, answers in data["answers"].items():
        if not answers:
            continue
        lines += ["", f"## Answers from {system}'s top memories (LM)", "",
                  "| category | n | judge | F1 | BLEU-1 | tokens/question | abstention |", "|---|---|---|---|---|---|---|"]
        for cat, row in answers.items():
            lines.append(f"| {cat} | {int(row['n'])} | {_f(row.get('judge'))} | {_f(row.get('f1'))} | "
                         f"{_f(row.get('bleu1'))} | {_f(row.get('tokens'), 0)} | {_f(row.get('abstained'))} |")
    return "\n".join(lines) + "\n"


def plot(run: BenchRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = {name: sr.summary() for name, sr in run.systems.items()}
    cats = sorted({c for s in systems.values() for c in s["metrics"]} - {"overall"}) + ["overall"]
    fig, axes = plt.subplots(1, len(cats) + 1, figsize=(3.2 * (len(cats) + 1), 3.4))
    for ax, cat in zip(axes, cats, strict=False):
        for name, s in systems.items():
            row = s["metrics"].get(cat, {})
            ax.plot(KS, [row.get(f"recall@{k}", 0.0) for k in KS], marker="o", label=name)
        ax.set_title(cat, fontsize=9)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1)
        ax.set_xticks(list(KS))
    axes[0].set_ylabel("evidence recall@k")
    axes[0].legend(fontsize=6)
    ax = axes[-1]
    for name, sr in run.systems.items():
        ax.hist([r.latency_ms for r in sr.results], bins=30, alpha=0.5, label=name)
    ax.set_title("search latency (ms)", fontsize=9)
    ax.set_xlabel("ms")
    fig.suptitle(f"remem bench {run.dataset}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run: BenchRun, out_dir: Path, name: str | None = None) -> dict[str, Path]:
    """Write JSON, Markdown and PNG under ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or run.dataset
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    paths["json"].write_text(json.dumps(run_to_dict(run), indent=1))
    paths["markdown"].write_text(markdown(run))
    plot(run, paths["png"])
    return paths
