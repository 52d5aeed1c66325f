"""The figures of ``rag eval`` as a Markdown table, and the hit@k plot (``pip install -e '.[eval]'``)."""

from __future__ import annotations

from pathlib import Path

KS = tuple(range(1, 11))


def _cell(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_report(result: dict) -> str:
    """The figures as the table printed by ``rag eval`` (Markdown)."""
    lines = [
        f"questions: {result['questions']} ({result['answerable']} answerable) from {result['questions_file']}",
        "",
    ]
    names = list(result["retrieval"])
    lines.append("| retrieval | " + " | ".join(names) + " | ours / best baseline |")
    lines.append("|---|" + "---|" * (len(names) + 1))
    for metric in ("hit@1", "hit@3", "hit@5", "hit@10", "mrr"):
        ratio = result["ratio_to_best_baseline"].get(metric)
        cells = " | ".join(f"{result['retrieval'][n][metric]:.3f}" for n in names)
        lines.append(f"| {metric} | {cells} | {f'{ratio:.2f}' if ratio else '—'} |")
    lines.append("")
    systems = list(result["answers"])
    lines.append("| answers | " + " | ".join(systems) + " |")
    lines.append("|---|" + "---|" * len(systems))
    for metric in (
        "answer_contains",
        "within_150_chars",
        "mean_answer_chars",
        "citation_precision",
        "refusal_accuracy",
        "false_refusal_rate",
    ):
        digits = 0 if metric == "mean_answer_chars" else 3
        cells = " | ".join(_cell(result["answers"][n].get(metric), digits) for n in systems)
        lines.append(f"| {metric} | {cells} |")
    lines.append("")
    answerers = [n for n in systems if n != "langchain"]
    columns = ["hit@5"] + [f"{n} {m}" for n in answerers for m in ("answer_contains", "refused")]
    lines.append("| type | questions | " + " | ".join(columns) + " |")
    lines.append("|---|---|" + "---|" * len(columns))
    for t, v in result["per_type"].items():
        cells = " | ".join(_cell(v[m], 2) for m in columns)
        lines.append(f"| {t} | {v['questions']} | {cells} |")
    lines.append("")
    s = result["speed"]
    asks = "; ".join(f"{n} ask() p50 {s[f'{n} ask_p50_ms']} ms, p95 {s[f'{n} ask_p95_ms']} ms" for n in answerers)
    lines.append(
        f"speed: {s['documents']} documents, {s['chunks']} chunks, {s['characters']} characters; model load "
        f"{s['model_load_seconds']} s; ingest {s['ingest_seconds']} s = {s['ingest_chars_per_second']} chars/s; "
        f"{asks}; peak memory {s['peak_memory_mb']} MB"
    )
    if result["worst_misses"]:
        lines.append("")
        lines.append("worst misses:")
        for m in result["worst_misses"]:
            lines.append(
                f"- {m['id']} [{m['type']}] rank {m['rank']}: {m['question']} → {m['answer'][:80]!r} (gold {m['gold']})"
            )
    return "\n".join(lines)


def plot_hit_at_k(result: dict, path: Path) -> None:
    """hit@k for k = 1..10, ours beside the baselines, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, figures in result["retrieval"].items():
        ax.plot(KS, [figures[f"hit@{k}"] for k in KS], marker="o", label=name, linewidth=2.5 if name == "ours" else 1.5)
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k")
    ax.set_xticks(KS)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(Path(result["questions_file"]).name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
