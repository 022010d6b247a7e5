"""The small HTML pages recipients see: unsubscribe confirmation, "you are unsubscribed" (with a
resubscribe button), "you are subscribed again", the preference centre.

Self-contained (inline CSS, no scripts, no external resources) and every value escaped with
:func:`html.escape`: an address or a topic name is data, never markup. Forms post back to the page's
own URL (no ``action``) or to a relative one, so they work wherever the app is mounted.
"""

from __future__ import annotations

from html import escape

from leadflow.messaging.feedback.subscription import PreferenceView

__all__ = ["preference_centre", "resubscribed", "unsubscribe_confirm", "unsubscribed"]

_STYLE = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
  background:#f5f5f7;color:#1d1d1f}
main{max-width:32rem;margin:3rem auto;background:#fff;border-radius:8px;padding:2rem}
h1{font-size:1.4rem;margin-top:0}
button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1d1d1f;color:#fff}
label{display:block;margin:.6rem 0}
.note{color:#6e6e73;font-size:.9rem}
.saved{background:#e8f5e9;padding:.6rem 1rem;border-radius:6px}
""".strip()


def _page(brand: str, title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)} · {escape(brand)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _who(address: str | None) -> str:
    return f"<strong>{escape(address)}</strong>" if address else "your address"


def unsubscribe_confirm(*, brand: str, address: str | None, preferences_url: str) -> str:
    """Asks before unsubscribing: a link followed by a scanner must not unsubscribe anybody."""
    body = (
        "<h1>Unsubscribe</h1>"
        f"<p>Stop marketing email from {escape(brand)} to {_who(address)}?</p>"
        '<form method="post"><button type="submit">Unsubscribe</button></form>'
        f'<p class="note">Or <a href="{escape(preferences_url)}">choose which emails you get</a>.</p>'
    )
    return _page(brand, "Unsubscribe", body)


def unsubscribed(
    *,
    brand: str,
    address: str | None,
    preferences_url: str,
    resubscribe_url: str | None = None,
    topic: str | None = None,
) -> str:
    """After unsubscribing, and when the link is visited again: says so, and offers to resubscribe (a form
    posting to ``resubscribe_url``). ``topic``: the name of the topic they left, when only that is off."""
    what = f"{escape(topic)} email" if topic else "marketing email"
    again = (
        f'<form method="post" action="{escape(resubscribe_url)}">'
        '<button type="submit">Resubscribe</button></form>'
        if resubscribe_url
        else ""
    )
    body = (
        "<h1>You are unsubscribed</h1>"
        f"<p>{_who(address) if address else 'Your address'} will get no more {what} from "
        f"{escape(brand)}.</p>"
        f'<p class="note">Changed your mind?</p>{again}'
        f'<p class="note"><a href="{escape(preferences_url)}">Manage your preferences</a>.</p>'
    )
    return _page(brand, "Unsubscribed", body)


def resubscribed(*, brand: str, address: str | None, preferences_url: str) -> str:
    body = (
        "<h1>You are subscribed again</h1>"
        f"<p>{_who(address) if address else 'Your address'} will get {escape(brand)}'s email again.</p>"
        f'<p class="note"><a href="{escape(preferences_url)}">Choose which emails you get</a>.</p>'
    )
    return _page(brand, "Subscribed", body)


def preference_centre(*, brand: str, view: PreferenceView, saved: bool = False) -> str:
    """Topics as checkboxes (``topic=<key>`` for each one ticked) and one box for all marketing
    (``unsubscribe_all=yes``)."""
    notice = '<p class="saved" role="status">Saved.</p>' if saved else ""
    boxes = "".join(
        '<label><input type="checkbox" name="topic" '
        f'value="{escape(topic.key)}"{" checked" if topic.subscribed else ""}> {escape(topic.name)}'
        + (f'<br><span class="note">{escape(topic.description)}</span>' if topic.description else "")
        + "</label>"
        for topic in view.topics
    )
    everything = "" if view.all_marketing else " checked"
    body = (
        f"<h1>Email preferences</h1>{notice}"
        f"<p>Choose the email {escape(brand)} sends to {_who(view.email)}.</p>"
        f'<form method="post">{boxes}'
        f'<label><input type="checkbox" name="unsubscribe_all" value="yes"{everything}> '
        "Unsubscribe from all marketing email</label>"
        '<p class="note">Messages about your account and orders are still sent.</p>'
        '<button type="submit">Save</button></form>'
    )
    return _page(brand, "Email preferences", body)
