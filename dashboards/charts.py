"""Plotly figures (as JSON dicts for plotly.js) for a run's and a trial's pages, built from store records.

Every string that came from the store is HTML-escaped here: plotly.js renders a subset of HTML in labels.

Figures are plain dicts in plotly.js's own schema, not `plotly.graph_objects`: validating a sweep's few hundred traces
through plotly.py cost ~200 ms a sweep and ~60 ms a trial, per change of their results. plotly.py still supplies the
template (`plotly_white`, read once) and the grid of the parameter-effects panels (`make_subplots`, per shape)."""

from __future__ import annotations

import functools
import html
import json
import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tunelab.dashboards.schemas import LeaderboardRow, Trial

TOP_CURVES = 10  # learning curves drawn in colour; other finished trials and early-stopped ones in grey
MAX_GREY_CURVES = 200
_LAYOUT = dict(height=360, margin=dict(l=60, r=20, t=40, b=50), legend=dict(font=dict(size=11)), hovermode="closest")


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=False)


@functools.lru_cache(maxsize=1)
def _template() -> dict:
    """plotly_white as plotly.js reads it."""
    return json.loads(go.Figure(layout=dict(template="plotly_white")).to_json())["layout"]["template"]


def _finite(v):
    """`v` with every NaN or infinity made None (null in JSON, a gap in a line), lists and dicts walked."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


def _fig(data: list[dict], title: str, **layout) -> dict:
    """A figure of `data` (trace dicts) in the dashboard's layout with `title`, `layout` on top."""
    lay = {"template": _template(), **_LAYOUT, "title": dict(text=title, font=dict(size=14)), **layout}
    return {"data": _finite(data), "layout": lay}


def _axis(title: str, **kw) -> dict:
    return dict(title=dict(text=title), **kw)


def _epoch_axis(epochs: list) -> dict:
    """Whole-number epoch ticks (one per epoch while they fit)."""
    top = max([e for e in epochs if isinstance(e, (int, float))], default=1)
    return _axis("epoch", tickformat="d", **({"dtick": 1} if top <= 20 else {}))


def _pct(v):
    return None if v is None else 100 * v


def _when(record: dict) -> float | None:
    t = record.get("recorded_at", record.get("timestamp"))
    return float(t) if isinstance(t, (int, float)) else None


def best_so_far(run: dict, trials: list[Trial], epochs: dict[str, list[dict]]) -> dict:
    """The best validation accuracy reached by the sweep so far, against seconds since it started."""
    points = sorted((t, _pct(r["val_acc"]), tr.trial) for tr in trials for r in epochs.get(tr.id, [])
                    if (t := _when(r)) is not None and r.get("val_acc") is not None)
    start = min([run.get("started") or math.inf] + [t for t, _, _ in points[:1]])
    xs, ys, best = [], [], -math.inf
    for t, acc, _ in points:
        best = max(best, acc)
        xs.append(round(t - start, 2))
        ys.append(best)
    data = [
        dict(type="scatter", x=[round(t - start, 2) for t, _, _ in points], y=[a for _, a, _ in points],
             mode="markers", name="epoch results", marker=dict(size=5, color="rgba(120,120,120,0.45)"),
             text=[_esc(n) for _, _, n in points], hovertemplate="trial %{text}<br>%{y:.2f}%<extra></extra>"),
        dict(type="scatter", x=xs, y=ys, mode="lines", line=dict(shape="hv", width=2.5, color="#1f77b4"),
             name="best so far", hovertemplate="%{x:.0f} s: best %{y:.2f}%<extra></extra>"),
    ]
    return _fig(data, "Best validation accuracy so far", xaxis=_axis("seconds since the sweep started"),
                yaxis=_axis("val accuracy %"))


def _param_names(trials: list[Trial]) -> list[str]:
    names: list[str] = []
    for t in trials:
        for k, v in t.params.items():
            if k not in names and not isinstance(v, (dict, list)):
                names.append(k)
    return names


def _is_numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


def _log_scaled(values: list) -> bool:
    nums = [v for v in values if v is not None]
    return bool(nums) and min(nums) > 0 and max(nums) / min(nums) >= 20  # spans more than ~1.3 decades


def parallel_coordinates(trials: list[Trial], metric_label: str = "val accuracy %") -> dict:
    """One line per trial with a result, across every searched parameter, coloured by its best accuracy."""
    ranked = [t for t in trials if t.best_val_acc is not None]
    dims = []
    for name in _param_names(ranked):
        values = [t.params.get(name) for t in ranked]
        if _is_numeric(values) and len({v for v in values if v is not None}) > 0:
            if _log_scaled(values):
                dims.append(dict(label=f"log10 {_esc(name)}", values=[math.log10(v) if v else None for v in values]))
            else:
                dims.append(dict(label=_esc(name), values=values))
        else:
            cats = sorted({str(v) for v in values})
            dims.append(dict(label=_esc(name), values=[cats.index(str(v)) for v in values],
                             tickvals=list(range(len(cats))), ticktext=[_esc(c) for c in cats]))
    accs = [_pct(t.best_val_acc) for t in ranked]
    dims.append(dict(label=metric_label, values=accs))
    data = [dict(type="parcoords", dimensions=dims, line=dict(color=accs, colorscale=_viridis(), showscale=True))]
    return _fig(data, "Parameters against validation accuracy", margin=dict(l=70, r=70, t=90, b=40))


def learning_curves(trials: list[Trial], epochs: dict[str, list[dict]], metric: str = "val_acc") -> dict:
    """Validation accuracy per epoch: the top trials in colour, the rest (early-stopped ones dashed) in grey."""
    traces = []
    ranked = [t for t in trials if epochs.get(t.id)]
    for i, t in enumerate(ranked[: TOP_CURVES + MAX_GREY_CURVES]):
        recs = [r for r in epochs[t.id] if r.get(metric) is not None]
        top = i < TOP_CURVES
        stopped = t.status == "stopped"
        label = f"{_esc(t.trial)} ({_esc(t.status)})"
        traces.append(dict(
            type="scatter", x=[r["epoch"] for r in recs], y=[_pct(r[metric]) for r in recs], mode="lines+markers",
            name=label if top or i != TOP_CURVES else "other trials (dashed: early-stopped)",
            legendgroup="top" if top else "rest", showlegend=top or i == TOP_CURVES,
            line=dict(width=2 if top else 1, dash="dash" if stopped else "solid",
                      **({} if top else {"color": "rgba(150,150,150,0.6)"})),
            marker=dict(size=5 if top else 3), hovertemplate=f"trial {label}<br>epoch %{{x}}: %{{y:.2f}}%<extra></extra>",
        ))
    return _fig(traces, f"Learning curves — top {min(TOP_CURVES, len(ranked))} in colour; dashed: early-stopped",
                xaxis=_epoch_axis([r.get("epoch") for t in ranked for r in epochs[t.id]]),
                yaxis=_axis("val accuracy %"))


def parameter_effects(trials: list[Trial]) -> dict:
    """Each searched parameter against the trial's best validation accuracy (one panel per parameter)."""
    ranked = [t for t in trials if t.best_val_acc is not None]
    names = _param_names(ranked) or ["(no searched parameters)"]
    accs = [_pct(t.best_val_acc) for t in ranked]
    data, axis_types = [], []
    for name in names:
        values = [t.params.get(name) for t in ranked]
        numeric = _is_numeric(values)
        axis_types.append("log" if numeric and _log_scaled(values) else "" if numeric else "category")
        data.append(dict(
            type="scatter", x=values if numeric else [_esc(v) for v in values], y=accs,
            mode="markers", showlegend=False, text=[_esc(t.trial) for t in ranked],
            marker=dict(size=8, color=accs, colorscale=_viridis()),
            hovertemplate="trial %{text}<br>%{x}: %{y:.2f}%<extra></extra>"))
    grid, anchors = _panels(tuple(_esc(n) for n in names), tuple(axis_types))
    for trace, (x, y) in zip(data, anchors):
        trace.update(xaxis=x, yaxis=y)
    return _fig(data, "Each parameter against validation accuracy", **grid)


@functools.lru_cache(maxsize=1)
def _viridis() -> list:
    """plotly's Viridis colour scale, as [position, colour] pairs."""
    trace = json.loads(go.Figure(go.Scatter(marker=dict(colorscale="Viridis"))).to_json())["data"][0]
    return trace["marker"]["colorscale"]


@functools.lru_cache(maxsize=32)
def _panels(titles: tuple[str, ...], axis_types: tuple[str, ...]) -> tuple[dict, list[tuple[str, str]]]:
    """The layout of one panel per title, three to a row (x axes of the given types, '' for linear; `height` too), and
    each panel's (x axis, y axis) for its trace: plotly's `make_subplots` grid, built once per shape."""
    cols = min(3, len(titles))
    rows = math.ceil(len(titles) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles), vertical_spacing=0.18)
    anchors = []
    for i, kind in enumerate(axis_types):
        r, c = i // cols + 1, i % cols + 1
        if kind:
            fig.update_xaxes(type=kind, row=r, col=c)
        panel = fig.get_subplot(r, c)
        anchors.append((panel.xaxis.plotly_name.replace("axis", ""), panel.yaxis.plotly_name.replace("axis", "")))
    fig.update_yaxes(title_text="val acc %", col=1)
    layout = json.loads(fig.layout.to_json())
    layout.pop("template", None)
    return {**layout, "height": max(320, 300 * rows)}, anchors


def _fmt(v, fmt: str) -> str:
    return "—" if v is None else fmt.format(v)


def _pareto_layout() -> dict:
    return _fig([], "Validation accuracy against parameters — ★ Pareto-optimal trials joined",
                xaxis=_axis("parameters (log)", type="log", dtick="D2", tickformat="~s"),
                yaxis=_axis("val accuracy %"))["layout"]


def pareto_chart(rows: list[LeaderboardRow]) -> dict:
    """A leaderboard's rows as validation accuracy (%) against parameters (log axis): the Pareto-optimal ones (on the
    whole board, `row.pareto`) highlighted and joined in order of parameters as the front, the others in grey; hover
    names the model, trial and costs. Rows without a parameter count are left out."""
    def hover(r: LeaderboardRow) -> str:
        return "<br>".join([
            f"{_esc(r.model)} · trial {_esc(r.trial)} ({_esc(r.run_name or r.run_id)})",
            f"val {_fmt(_pct(r.val_acc), '{:.2f}')}% · rank {r.rank}" + (" · Pareto-optimal" if r.pareto else ""),
            f"{_fmt(r.n_params, '{:,}')} parameters · {_fmt(r.train_time_s, '{:,.1f}')} s training",
            f"{_fmt(r.infer_images_per_s, '{:,.0f}')} inference images/s"])

    def scatter(points: list[LeaderboardRow], **style) -> dict:
        return dict(type="scatter", x=[r.n_params for r in points], y=[_pct(r.val_acc) for r in points],
                    text=[hover(r) for r in points], hovertemplate="%{text}<extra></extra>", **style)

    shown = [r for r in rows if r.n_params and r.val_acc is not None]
    front = sorted((r for r in shown if r.pareto), key=lambda r: (r.n_params, -r.val_acc))
    others = [r for r in shown if not r.pareto]
    return {"data": [scatter(others, mode="markers", name="other trials",
                             marker=dict(size=7, color="rgba(130,130,130,.55)")),
                     scatter(front, mode="lines+markers", name="★ Pareto-optimal", line=dict(color="#d62728", width=1.5),
                             marker=dict(size=12, symbol="star", color="#d62728"))],
            "layout": dict(_pareto_layout())}


def run_charts(run: dict, trials: list[Trial], epochs: dict[str, list[dict]]) -> dict[str, dict]:
    """A sweep page's four charts."""
    return {
        "best_so_far": best_so_far(run, trials, epochs),
        "parallel": parallel_coordinates(trials),
        "curves": learning_curves(trials, epochs),
        "params": parameter_effects(trials),
    }


def trial_charts(trial: Trial, epochs: list[dict]) -> dict[str, dict]:
    """A trial page's charts: loss, accuracy and throughput per epoch."""
    x = [r["epoch"] for r in epochs]

    def series(key, pct=False):
        return [(_pct(r.get(key)) if pct else r.get(key)) for r in epochs]

    def line(y, name):
        return dict(type="scatter", x=x, y=y, mode="lines+markers", name=name)

    loss = [line(series("train_loss"), "train loss"), line(series("val_loss"), "val loss")]
    acc = [line(series("val_acc", True), "val accuracy")]
    if any(r.get("val_acc_coarse") is not None for r in epochs):
        acc.append(line(series("val_acc_coarse", True), "val accuracy (coarse)"))
    if trial.test_acc is not None and x:
        acc.append(dict(type="scatter", x=[x[-1]], y=[_pct(trial.test_acc)], mode="markers", name="test accuracy",
                        marker=dict(size=11, symbol="star")))
    speed = [dict(type="bar", x=x, y=series("images_per_s"), name="images/s")]
    return {
        "loss": _fig(loss, "Loss per epoch", xaxis=_epoch_axis(x), yaxis=_axis("loss")),
        "accuracy": _fig(acc, "Accuracy per epoch", xaxis=_epoch_axis(x), yaxis=_axis("accuracy %")),
        "throughput": _fig(speed, "Training throughput", xaxis=_epoch_axis(x), yaxis=_axis("images/s")),
    }


def importance_chart(imp) -> dict:
    """A sweep's parameter importance (a `schemas.Importance`) as horizontal bars, the most important on top."""
    from tunelab.dashboards.importance import EVALUATORS

    names = [_esc(p.param) for p in imp.importances]
    shares = [p.importance for p in imp.importances]
    data = [dict(type="bar", x=shares, y=names, orientation="h", marker=dict(color="#1f77b4"),
                 text=[f"{v:.2f}" for v in shares], textposition="auto", hovertemplate="%{y}: %{x:.3f}<extra></extra>")]
    how = EVALUATORS.get(imp.evaluator, imp.evaluator)
    return _fig(data, f"Parameter importance for validation accuracy — {how}, {imp.trials_used} trials",
                height=max(_LAYOUT["height"], 120 + 40 * len(names)),
                xaxis=_axis("share of importance", range=[0, max([1.0, *shares])], tickformat=".1f"),
                yaxis=dict(type="category", autorange="reversed", automargin=True))


def importance_unavailable(message: str) -> dict:
    """The importance chart's place when there is none yet: empty axes and the reason."""
    import textwrap

    lines = textwrap.wrap(_esc(message), 90, break_long_words=False)  # plotly does not wrap annotations
    note = dict(text="<br>".join(lines), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                font=dict(size=13, color="#687085"))
    return _fig([], "Parameter importance for validation accuracy", xaxis=dict(visible=False),
                yaxis=dict(visible=False), annotations=[note])
