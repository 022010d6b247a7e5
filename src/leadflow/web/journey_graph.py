"""A journey's graph laid out for the page: boxes in layers from the trigger down, arrows between them.

The layout is computed here and drawn by ``templates/journeys/graph.html`` as inline SVG (no script):
each step sits one layer below the furthest step that leads to it (the trigger on top, then the first
step, an *End* box under the steps that finish the journey); steps of a layer side by side in the order
a walk from the first step meets them. An arrow back up (a loop through a wait) runs along the right
edge. Each box carries the step's counts (entered, waiting, completed, failed, converted) from the
journey's metrics; each arrow of a branch, split or wait-for-event carries its outcome's label.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from leadflow.journeys import service as journeys

BOX_W, BOX_H = 232, 96  # a step's box
GAP_X, GAP_Y = 28, 56  # between boxes, between layers
SMALL_H = 52  # the trigger's and the end's box
MARGIN = 16
LANE = 12  # room on the right for each arrow that goes back up
LABEL_W = 64  # and for their labels
END = "__end__"
TRIGGER = "__trigger__"
TEXT = 30  # characters of a line that fit in a box
TITLE = 24  # characters of a box's bold title line that fit in it (a wider font than the lines under it)


@dataclass
class Node:
    id: str
    title: str
    detail: str
    kind: str  # the step type, "trigger" or "end"
    counts: journeys.StepMetrics | None = None
    x: int = 0
    y: int = 0
    layer: int = 0

    @property
    def box(self) -> bool:
        return self.kind not in ("trigger", "end")

    @property
    def height(self) -> int:
        return BOX_H if self.box else SMALL_H


@dataclass
class Edge:
    path: str
    label: str
    label_x: int
    label_y: int
    back: bool


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    width: int = 0
    height: int = 0
    box_w: int = BOX_W
    box_h: int = BOX_H


def _short(text: str, size: int = TEXT) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def trigger_text(trigger: Any) -> str:
    """The trigger in a few words: its type and what it names."""
    named = next(
        (
            getattr(trigger, a)
            for a in ("event", "segment", "band", "stage", "field")
            if getattr(trigger, a, None)
        ),
        None,
    )
    return f"{trigger.type.replace('_', ' ')}: {named}" if named else trigger.type.replace("_", " ")


def step_detail(step: Any) -> str:
    """What a step does, in a few words (its type and main setting)."""
    kind = step.type
    if kind in ("send_email", "notify_owner"):
        return f"email {step.template}"
    if kind == "wait":
        return f"wait {step.duration}"
    if kind == "wait_until":
        return f"wait for {step.event} ≤ {step.timeout}"
    if kind == "wait_for_time":
        return f"wait until {step.time}"
    if kind == "wait_until_time":
        return f"wait until the time {step.offset or ''}".strip()
    if kind == "split":
        holdout = f", holdout {step.holdout:g}%" if step.holdout else ""
        return f"split {len(step.paths)} ways{holdout}"
    if kind == "goal":
        return f"goal: {step.event}"
    return str(kind).replace("_", " ")


def outcomes(step: Any) -> list[tuple[str | None, str]]:
    """Where a step leads, each with its outcome's label ("" for the one way on)."""
    kind = step.type
    if kind == "branch":
        return [(step.then, "yes"), (step.otherwise, "no")]
    if kind == "split":
        return [(p.next, f"{p.name} {p.weight:g}%") for p in step.paths]
    if kind == "wait_until":
        return [(step.on_event, "event"), (step.on_timeout, "timeout")]
    if kind == "wait_until_time" and step.skip_if_past:
        return [(step.next, ""), (step.on_past, "past")]
    if kind == "goal":
        return [(step.next, "not yet")]
    return [(target, "") for target in step.targets()]


def _order(definition: journeys.definitions.Definition) -> list[str]:
    """Steps in the order a walk from the first meets them (then any other, as written)."""
    by_id = {s.id: s for s in definition.steps}
    seen: list[str] = []
    todo = deque([definition.start])
    while todo:
        current = todo.popleft()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(t for t, _ in outcomes(by_id[current]) if t is not None and t not in seen)
    return seen + [s.id for s in definition.steps if s.id not in seen]


def layout(definition: journeys.definitions.Definition, metrics: dict[str, journeys.StepMetrics]) -> Graph:
    """The boxes and arrows of ``definition``, with each step's counts from ``metrics``."""
    by_id = {s.id: s for s in definition.steps}
    order = _order(definition)
    rank = {step_id: index for index, step_id in enumerate(order)}
    layer = dict.fromkeys(order, 1)
    links: list[tuple[str, str, str]] = [(TRIGGER, definition.start, "")]
    for step_id in order:  # forward arrows only: a walk's order is a topological order for them
        for target, label in outcomes(by_id[step_id]):
            links.append((step_id, target or END, label))
            if target is not None and rank[target] > rank[step_id]:
                layer[target] = max(layer[target], layer[step_id] + 1)
    nodes = {
        TRIGGER: Node(TRIGGER, "Trigger", _short(trigger_text(definition.trigger)), "trigger", layer=0),
        **{
            s: Node(
                s,
                _short(by_id[s].name or s, TITLE),
                _short(step_detail(by_id[s])),
                by_id[s].type,
                metrics.get(s),
                layer=layer[s],
            )
            for s in order
        },
    }
    if any(target == END for _, target, _ in links):
        nodes[END] = Node(END, "End", "", "end", layer=max(layer.values()) + 1)
    rows: dict[int, list[Node]] = {}
    for node in nodes.values():
        rows.setdefault(node.layer, []).append(node)
    widest = max(len(row) for row in rows.values())
    inner = widest * BOX_W + (widest - 1) * GAP_X
    for number, row in rows.items():
        span = len(row) * BOX_W + (len(row) - 1) * GAP_X
        for index, node in enumerate(row):
            node.x = MARGIN + (inner - span) // 2 + index * (BOX_W + GAP_X)
            node.y = MARGIN + number * (BOX_H + GAP_Y)
    back = [(a, b, label) for a, b, label in links if nodes[b].layer <= nodes[a].layer]
    graph = Graph(
        nodes=list(nodes.values()),
        width=2 * MARGIN + inner + LANE * (len(back) + 1),
        height=2 * MARGIN
        + max(rows) * (BOX_H + GAP_Y)
        + nodes[order[-1] if END not in nodes else END].height,
    )
    lanes = {(a, b): MARGIN + inner + LANE * (index + 1) for index, (a, b, _) in enumerate(back)}
    graph.edges = [_edge(nodes[a], nodes[b], label, lanes.get((a, b), 0)) for a, b, label in links]
    return graph


def _edge(start: Node, end: Node, label: str, lane: int) -> Edge:
    """Down: a curve from the bottom middle to the top middle. Back up or sideways: out of the right
    side to the edge's lane, up to the gap above the target's layer, across, and down into it."""
    if end.layer > start.layer:
        x0, y0 = start.x + BOX_W // 2, start.y + start.height
        x1, y1 = end.x + BOX_W // 2, end.y
        bend = GAP_Y // 2 + 10
        path = f"M{x0},{y0} C{x0},{y0 + bend} {x1},{y1 - bend} {x1},{y1}"
        return Edge(path, label, (x0 + x1) // 2 + 6, (y0 + y1) // 2, back=False)
    x0, y0 = start.x + BOX_W, start.y + start.height // 2
    above = end.y - GAP_Y // 3
    x1 = end.x + BOX_W // 2 + 24  # beside the arrows that come down into its middle
    path = f"M{x0},{y0} H{lane} V{above} H{x1} V{end.y}"
    return Edge(path, label, lane + 4, (y0 + above) // 2, back=True)
