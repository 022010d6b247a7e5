"""How much work a hostile Liquid template costs before it is refused, next to a normal email's render.

    python -m bench.templates [--repeat 7]
    python -m bench.templates --normal-only      # only the normal renders (to compare two versions)

For each class of hostile template: the milliseconds until `render.check` refuses it (what saving costs)
and until `Renderer.render` refuses it (what a preview or a send costs), the median of ``--repeat`` runs.
In the same run, the ceiling it is compared with: rendering the welcome email of ``bench/email.py`` in the
default layout — through the fast path (no tags), through python-liquid (the same email with a loop),
and checking it as a save does. Target: every refusal well under a second of work.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.common import machine
from bench.email import HTML as EMAIL_HTML
from leadflow.messaging.build import render

WELCOME = EMAIL_HTML  # the welcome email bench/email.py sends
WELCOME_LOOP = WELCOME.replace(
    "<ul>\n", "<ul>\n{% for course in vars.courses %}<li>{{ course | upcase }}</li>{% endfor %}\n"
)
DATA: dict[str, Any] = {
    "contact": {"id": "c1", "first_name": "Ann", "traits": {"plan": "pro"}, "email": "ann@example.com"},
    "brand": {"name": "Acme", "url": "https://acme.example", "address": "1 Main St, Springfield"},
    "links": {"unsubscribe": "https://acme.example/u/x", "preferences": "https://acme.example/p/x"},
    "vars": {"courses": ["python", "sql", "stats"]},
    "journey": {"key": "welcome"},
    "message": {"id": "m1"},
}

S = "{% assign s = 'ab' %}"
HOSTILE = {
    "loop of 5 million": "{% for i in (1..5000000) %}x{% endfor %}",
    "nested loops 3000 x 3000": "{% for i in (1..3000) %}{% for j in (1..3000) %}.{% endfor %}{% endfor %}",
    "200 loops of 9000": "{% for i in (1..9000) %}{% endfor %}" * 200,
    "45 MB of output": "{% for i in (1..9000) %}{{ 'x' | append: '" + "y" * 5000 + "' }}{% endfor %}",
    "capture doubling": S + "{% for i in (1..60) %}{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}",
    "append doubling": S + "{% for i in (1..60) %}{% assign s = s | append: s %}{% endfor %}",
    "replace blow-up": "{% assign s = 'aaaaaaaaaa' %}"
    + "{% for i in (1..8) %}{% assign s = s | replace: 'a', s %}{% endfor %}",
    "churning 250 KB strings": S
    + "{% for i in (1..17) %}{% assign s = s | append: s %}{% endfor %}"
    + "{% for i in (1..5000) %}{% assign t = s | upcase %}{% endfor %}",
    "number squaring": "{% assign n = 3 %}{% for i in (1..40) %}{% assign n = n | times: n %}{% endfor %}",
    "long comparisons": S
    + "{% for i in (1..17) %}{% assign s = s | append: s %}{% endfor %}"
    + "{% for i in (1..9000) %}{% if s contains 'z' %}{% endif %}{% endfor %}" * 2,
    "nesting 40 deep": "{% if true %}" * 40 + "{% endif %}" * 40,
    "500 KB of markup": "{{ brand.name | default: 'x' }}" * 16_000,
    "include": "{% include 'footer' %}",
}


def _layout() -> render.Layout:
    path = Path(__file__).parent.parent / "src/leadflow/messaging/layouts/default.yaml"
    found = yaml.safe_load(path.read_text())
    return render.Layout(key="default", revision=1, html=found["html"], text=found.get("text"))


def _median_ms(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU (this thread) milliseconds of ``action``."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.thread_time()
        with contextlib.suppress(render.TemplateError):
            action()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.thread_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def _per_render_us(action: Callable[[], object], count: int) -> float:
    action()  # warm the cache
    start = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - start) / count * 1e6


def normal(repeat: int) -> dict[str, float]:
    layout, renderer = _layout(), render.Renderer()
    subject = "Hi {{ contact.first_name }}"
    fast = render.Source(key="welcome", revision=1, subject=subject, html=WELCOME, text=None)
    loop = render.Source(key="loop", revision=1, subject=subject, html=WELCOME_LOOP, text=None)
    figures = {
        "welcome email, fast path (µs/render)": _per_render_us(
            lambda: renderer.render(fast, DATA, layout), 20_000
        ),
        "welcome email, python-liquid (µs/render)": _per_render_us(
            lambda: renderer.render(loop, DATA, layout), 5_000
        ),
        "welcome email, checked as a save (ms)": _median_ms(lambda: render.check(fast), repeat)[0],
    }
    for name, value in figures.items():
        print(f"  {name:45} {value:10.1f}")
    return figures


def hostile(repeat: int) -> float:
    print(f"  {'hostile template':28} {'save ms (cpu)':>15} {'render ms (cpu)':>17}  refused with")
    worst = 0.0
    for name, html in HOSTILE.items():
        source = render.Source(key="hostile", revision=1, subject="Hi", html=html, text=None)
        try:
            render.Renderer().render(source, DATA)
            reason = "rendered in full (within every limit)"
        except render.TemplateError as err:
            reason = str(err).split(": ", 1)[1][:60]
        save = _median_ms(lambda source=source: render.check(source), repeat)  # type: ignore[misc]
        send = _median_ms(lambda source=source: render.Renderer().render(source, DATA), repeat)  # type: ignore[misc]
        worst = max(worst, save[0], send[0])
        print(f"  {name:28} {save[0]:7.1f} ({save[1]:5.1f}) {send[0]:9.1f} ({send[1]:5.1f})  {reason}")
    return worst


UNTRUSTED_HTML = {  # what a template may output within the limits, as the send converts and tracks it
    "'<a ' x 160,000 (480 KB)": "<a " * 160_000,
    "'<a \"' x 120,000 (480 KB)": '<a "' * 120_000,
    "'<div>' x 100,000 (500 KB)": "<div>" * 100_000,
    "links x 14,000 (490 KB)": '<a href="https://shop.example/p">p</a>' * 14_000,
}


def html_work(repeat: int) -> None:
    from leadflow.kernel.clock import SystemClock
    from leadflow.messaging.build import links
    from leadflow.messaging.build.htmltext import html_to_text
    from leadflow.messaging.build.tokens import Tokens

    tokens = Tokens("s" * 32, SystemClock())
    print(f"  {'rendered HTML':30} {'to text ms (cpu)':>17} {'track links ms (cpu)':>21}")
    for name, html in UNTRUSTED_HTML.items():
        text = _median_ms(lambda html=html: html_to_text(html), repeat)  # type: ignore[misc]
        track = _median_ms(
            lambda html=html: links.track(html, message_id="m", base_url="https://x", tokens=tokens),  # type: ignore[misc]
            repeat,
        )
        print(f"  {name:30} {text[0]:9.1f} ({text[1]:5.1f}) {track[0]:12.1f} ({track[1]:5.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--normal-only", action="store_true")
    args = parser.parse_args()
    print(machine())
    print("normal renders (the ceiling):")
    figures = normal(args.repeat)
    if args.normal_only:
        return
    print("hostile templates (median of", args.repeat, "runs):")
    worst = hostile(args.repeat)
    ceiling = figures["welcome email, checked as a save (ms)"]
    print(f"worst case {worst:.1f} ms = {worst / ceiling:.0f}x checking the welcome email at save")
    print("untrusted HTML at send time (median of", args.repeat, "runs):")
    html_work(args.repeat)


if __name__ == "__main__":
    main()
