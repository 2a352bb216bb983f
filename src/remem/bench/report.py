"""Writing a benchmark run: ``<name>.json`` (everything), ``<name>.md`` (tables) and ``<name>.png`` (recall@k
curves per category for every system, and the search latency histogram)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .metrics import BUDGETS, KS
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
                 f"embedder `{run.config['embedder']}`, tokens: `{run.config.get('tokenizer', 'cl100k_base')}`.")
    if run.config.get("facts"):
        lines.append(f"Store: the raw turns plus {run.config.get('fact_records', 0)} `{run.config['facts']}` as "
                     "`fact` memories (LLM-written by the dataset authors: a stand-in for what LLM extraction adds).")
    lines += _budget_tables(systems, cats, run.config.get("budgets") or list(BUDGETS))
    lines += ["", "## Evidence recall@10 per category (turns covered by the top-10)", ""]
    lines.append("| system | " + " | ".join(f"{c} (n={int(next(iter(systems.values()))['metrics'][c]['n'])})"
                                          for c in cats) + " | turns@10 | tokens@10 |")
    lines.append("|---" * (len(cats) + 3) + "|")
    for name, s in systems.items():
        m = s["metrics"]
        if "recall@10" not in m["overall"]:
            continue
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
        if "recall@10" not in o:
            continue
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


def _budget_tables(systems: dict[str, Any], cats: list[str], budgets: list[int]) -> list[str]:
    """Recall within each token budget (overall, with the tokens used), then per category at the middle one."""
    rows = {n: s for n, s in systems.items() if f"recall@{budgets[0]}tok" in s["metrics"]["overall"]}
    if not rows:
        return []
    lines = ["", "## Evidence recall within a token budget (context of at most B cl100k tokens)", ""]
    first = [s["metrics"]["overall"] for s in rows.values()]
    extra = [m for m in ("session_all", "fact_tokens")  # LongMemEval sessions; tokens spent on facts, if any
             if any(o.get(f"{m}@{budgets[0]}tok", 0.0) > 0 or (m == "session_all" and f"{m}@{budgets[0]}tok" in o)
                    for o in first)]
    head = ([f"recall@{b}" for b in budgets] + [f"{m}@{b}" for m in extra for b in budgets]
            + [f"tokens@{b}" for b in budgets] + [f"turns@{b}" for b in budgets])
    lines.append("| system | " + " | ".join(head) + " | context p50 ms | context p95 ms |")
    lines.append("|---" * (len(head) + 3) + "|")
    for name, s in rows.items():
        o, lat = s["metrics"]["overall"], s["latency_ms"]
        own = "recall@10" not in o  # a context system: its latency is the 1,000-token context() call
        cells = ([_f(o.get(f"recall@{b}tok")) for b in budgets]
                 + [_f(o.get(f"{m}@{b}tok"), 0 if m == "fact_tokens" else 3) for m in extra for b in budgets]
                 + [_f(o.get(f"tokens@{b}tok"), 0) for b in budgets] + [_f(o.get(f"turns@{b}tok"), 1) for b in budgets]
                 + [_f(lat.get("p50") if own else None, 1), _f(lat.get("p95") if own else None, 1)])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mid = budgets[len(budgets) // 2]
    lines += ["", f"Per category within {mid} tokens:", ""]
    lines.append("| system | " + " | ".join(cats) + " |")
    lines.append("|---" * (len(cats) + 1) + "|")
    for name, s in rows.items():
        m = s["metrics"]
        lines.append(f"| {name} | " + " | ".join(_f(m.get(c, {}).get(f"recall@{mid}tok")) for c in cats) + " |")
    return lines


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
            if "recall@1" not in s["metrics"]["overall"]:
                continue
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
