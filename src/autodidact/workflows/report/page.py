"""The report page: one HTML file with its styles, charts (inline SVG), videos and figures inside.

Sections: with several runs, a comparison table and overlaid curves; then for each run its facts,
success per task beside OGBench's published rate, learning curves, evaluation videos, the figures
its method drew, prompt results, and its command and config.
"""

import json
import math
from html import escape
from pathlib import Path

from tqdm import tqdm

from autodidact.core.errors import UserError
from autodidact.core.io import atomic_write_text
from autodidact.workflows.report.charts import line_chart
from autodidact.workflows.report.media import png_uri, video_uri
from autodidact.workflows.report.published import dataset_key
from autodidact.workflows.report.runinfo import read_summary

SUCCESS = "evaluation/overall_success"
SPEED = "time/steps_per_s"

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2327;margin:0;background:#fff}
main{max-width:1120px;margin:0 auto;padding:16px 28px 48px}
h1{font-size:26px;margin:12px 0 2px}h2{font-size:21px;margin:34px 0 6px;border-bottom:2px solid #e3e6e8;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 8px;color:#3c434a}.sub,.note{color:#646970;font-size:13px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 12px;text-align:left;border-bottom:1px solid #e3e6e8}
th{background:#f6f7f7;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.overall td{font-weight:600;border-top:2px solid #c3c4c7}
.bar{display:inline-block;height:9px;background:#0072B2;border-radius:2px;vertical-align:middle;margin-left:6px}
.charts{display:flex;flex-wrap:wrap;gap:10px}
svg.chart{border:1px solid #e3e6e8;border-radius:4px;background:#fff;font-size:11px;fill:#3c434a}
svg.chart .chart-title{font-size:13px;font-weight:600;fill:#1d2327}svg.chart .grid{stroke:#eceeef}
svg.chart .frame{fill:none;stroke:#c3c4c7}
video,img.video,img.figure{max-width:100%;border:1px solid #e3e6e8;border-radius:4px}
figure{margin:8px 0 16px}figcaption{color:#646970;font-size:13px}
pre{background:#f6f7f7;padding:10px;border-radius:4px;overflow-x:auto;font-size:12.5px}
.facts span{margin-right:18px}.facts b{font-weight:600}
"""


def write_report(run_dirs, out, title=None, videos=True, progress=True):
    """Write the report on `run_dirs` to `out` (atomically); returns `out` as a Path."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{out}: the report is an HTML page; name it with .html")
    names = _unique_names([Path(r) for r in run_dirs])
    runs = [read_summary(r, name) for r, name in zip(run_dirs, names)]
    title = title or "autodidact report: " + ", ".join(names)
    parts = []
    if len(runs) > 1:
        parts.append(_comparison(runs))
    for k, run in enumerate(tqdm(runs, desc="report", unit="run", disable=not progress)):
        parts.append(_run_section(run, k, videos))
    from autodidact import __version__
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body><main>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">autodidact {escape(__version__)}; {len(runs)} run"
            f"{'s' if len(runs) > 1 else ''}</p>\n" + "\n".join(parts) + "\n</main></body></html>\n")
    atomic_write_text(out, page)
    return out


def _unique_names(paths):
    """Run directory names, or their last two path parts where two runs share a name."""
    names = [p.resolve().name for p in paths]
    return [str(Path(p.resolve().parent.name) / n) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _pct(x):
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _num(x):
    return "–" if x is None else f"{x:,.1f}"


# ------------------------------------------------------------------ comparison
def _comparison(runs):
    rows = []
    for k, r in enumerate(runs):
        rows.append(f'<tr><td><a href="#run-{k}">{escape(r.name)}</a></td><td>{escape(r.method)}</td>'
                    f"<td>{escape(dataset_key(r.run['dataset']))}</td><td class=num>{r.run['steps']:,}</td>"
                    f"<td class=num>{r.run['seed']}</td><td class=num>{_pct(r.overall_success)}</td>"
                    f"<td class=num>{_pct(r.published)}</td><td class=num>{_num(r.metric(SPEED))}</td></tr>")
    table = ("<table><tr><th>run</th><th>method</th><th>dataset</th><th class=num>steps</th><th class=num>seed"
             "</th><th class=num>success</th><th class=num>OGBench</th><th class=num>steps/s</th></tr>"
             + "".join(rows) + "</table>")
    charts = []
    if any(SUCCESS in r.evals for r in runs):
        charts.append(_overlay(runs, "evals", SUCCESS, "overall success", (0, 1)))
    shared = [key for key in _ordered_keys(runs) if sum(key in r.metrics for r in runs) > 1]
    charts += [_overlay(runs, "metrics", key, key) for key in shared]
    return ('<section id="comparison"><h2>Comparison</h2>' + table + _published_note()
            + (f'<h3>Curves</h3><div class="charts">{"".join(charts)}</div>' if charts else "") + "</section>")


def _ordered_keys(runs):
    """Losses first, then training speed: the curves a person compares."""
    keys = []
    for r in runs:
        keys += [k for k in r.metrics if k.endswith("/loss") and k not in keys]
    return keys + [SPEED]


def _overlay(runs, table, key, label, y_range=None):
    series = [(r.name, *getattr(r, table)[key]) for r in runs if key in getattr(r, table)]
    return line_chart(key, series, label, y_range)


def _published_note():
    return ('<p class="note">OGBench: the published success rate for the same dataset and method (Park et al., '
            "OGBench, ICLR 2025, Table 2: 1M steps at batch 1024, 8 seeds; pixel datasets 500k steps). A run "
            "with a smaller budget is not expected to reach it. – : none published.</p>")


# ------------------------------------------------------------------ one run
def _run_section(run, k, videos):
    r = run.run
    facts = [("method", r["method"]), ("dataset", run.dataset), ("environment", r.get("env") or "none"),
             ("steps", f"{r['steps']:,}"), ("seed", r["seed"]), ("batch", r["config"].get("batch_size", "?"))]
    html = [f'<section class="run" id="run-{k}"><h2>{escape(run.name)}</h2><p class="facts">'
            + "".join(f"<span>{name} <b>{escape(str(v))}</b></span>" for name, v in facts) + "</p>"]
    html.append(_success_table(run))
    html.append(_curves(run))
    if videos and run.videos:
        html.append("<h3>Evaluation videos</h3>" + "".join(_video(path) for path in run.videos))
    if run.figures:
        html.append("<h3>What the method learned</h3>" + "".join(
            f'<figure><img class="figure" alt="{escape(p.name)}" src="{png_uri(p)}">'
            f"<figcaption>{escape(p.name)}</figcaption></figure>" for p in run.figures))
    if run.prompts:
        html.append(_prompts(run))
    html.append("<h3>Command and config</h3>")
    if run.commands:
        html.append("<pre>" + escape("\n".join(run.commands)) + "</pre>")
    html.append("<details><summary>config.json</summary><pre>"
                + escape(json.dumps(r["config"], indent=2, sort_keys=True)) + "</pre></details>")
    return "".join(html) + "</section>"


def _success_table(run):
    if run.result is None:
        return ("<h3>Success per task</h3><p class=note>Not evaluated yet: run "
                f"<code>autodidact eval {escape(str(run.path))}</code>.</p>")
    res = run.result
    step = res.get("checkpoint_step")
    rows = [f"<tr><td>{escape(str(t.get('task_name', t.get('task_id', '?'))))}</td>"
            f"<td class=num>{_pct(t['success'])}{_bar(t['success'])}</td>"
            f"<td class=num>{t.get('episodes', '')}</td><td></td></tr>" for t in res["tasks"]]
    rows.append(f"<tr class=overall><td>overall</td><td class=num>{_pct(res.get('overall_success'))}"
                f"{_bar(res.get('overall_success'))}</td><td class=num>{res.get('episodes_per_task', '')} per task"
                f"</td><td class=num>{_pct(run.published)}</td></tr>")
    return (f"<h3>Success per task</h3><p class=note>{escape(run.result_file)}"
            + (f", checkpoint at step {step:,}" if isinstance(step, int) else "") + "</p>"
            "<table><tr><th>task</th><th class=num>success</th><th class=num>episodes</th>"
            "<th class=num>OGBench</th></tr>" + "".join(rows) + "</table>" + _published_note())


def _bar(x):
    if x is None or not math.isfinite(x):
        return ""
    return f'<span class="bar" style="width:{max(0.0, min(1.0, x)) * 80:.0f}px"></span>'


def _curves(run):
    charts = []
    if run.evals:
        tasks = [k for k in run.evals if k != SUCCESS]
        series = [("overall", *run.evals[SUCCESS])] if SUCCESS in run.evals else []
        series += [(k.removeprefix("evaluation/").removesuffix("_success"), *run.evals[k]) for k in tasks]
        charts.append(line_chart("success at each evaluation", series, "success", (0, 1)))
    for key in [k for k in run.metrics if k.endswith("/loss")] + [SPEED]:
        if key in run.metrics:
            charts.append(line_chart(key, [(run.name, *run.metrics[key])], key.split("/")[-1]))
    if not charts:
        return "<h3>Learning curves</h3><p class=note>No metrics.csv or eval.csv in this run.</p>"
    return f'<h3>Learning curves</h3><div class="charts">{"".join(charts)}</div>'


def _video(path):
    uri, mime = video_uri(path)
    caption = f"<figcaption>{escape(path.name)}: one episode per task, goal left of each frame</figcaption>"
    if mime.startswith("image/"):
        return f'<figure><img class="video" alt="{escape(path.name)}" src="{uri}">{caption}</figure>'
    return (f'<figure><video controls autoplay muted loop playsinline preload="auto" src="{uri}">'
            f"</video>{caption}</figure>")


def _prompts(run):
    rows = []
    for name, res in run.prompts.items():
        kind = res.get("prompt", {}).get("kind", "") if isinstance(res.get("prompt"), dict) else ""
        tasks = ", ".join(f"{t.get('task_name', '?')} {_pct(t['success'])}" for t in res["tasks"])
        rows.append(f"<tr><td>{escape(name)}</td><td>{escape(str(kind))}</td>"
                    f"<td class=num>{_pct(res.get('overall_success'))}</td><td>{escape(tasks)}</td></tr>")
    return ("<h3>Prompts</h3><table><tr><th>prompt</th><th>kind</th><th class=num>success</th><th>per task</th>"
            "</tr>" + "".join(rows) + "</table>")
