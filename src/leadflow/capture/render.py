"""The form as HTML: the hosted page, the copy-paste snippets and the embed script (no CDN, no
framework). Accessible: every input has its label, required fields say so (``required`` and
``aria-required``), errors are tied to their input (``aria-describedby``) and announced
(``role="alert"``). The honeypot is off-screen, out of the tab order and hidden from screen readers.
Without JavaScript the page posts itself and the server fills the UTM fields from the page's own
address; with it, a small script fills them from the embedding page's address."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from leadflow.capture.schemas import CONSENT, HONEYPOT, UTM_FIELDS, FormField, FormFields

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
    ".lf-field{margin:0 0 1rem}.lf-field label{display:block;font-weight:600;margin-bottom:.25rem}"
    ".lf-field input:not([type=checkbox]),.lf-field select,.lf-field textarea"
    "{width:100%;padding:.4rem;box-sizing:border-box}.lf-error{color:#b00020;margin:.25rem 0 0}"
    ".lf-hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}"
)

#: Fills the hidden UTM and page fields from the address of the page showing the form (``window`` is
#: the embedding page for the script snippet; for the hosted page in an iframe, its referrer).
FILL = (
    "(function(f){if(!f)return;var top=window.self!==window.top;"
    "var url=top&&document.referrer?document.referrer:location.href,q;"
    "try{q=new URL(url).searchParams}catch(e){q=new URLSearchParams(location.search)}"
    "['utm_source','utm_medium','utm_campaign','utm_term','utm_content'].forEach(function(n){"
    "var i=f.querySelector('[name='+n+']');if(i&&!i.value&&q.get(n))i.value=q.get(n)});"
    "var p=f.querySelector('[name=page_url]');if(p&&!p.value)p.value=url;"
    "var r=f.querySelector('[name=referrer]');if(r&&!r.value&&!top)r.value=document.referrer||''"
    "})(document.currentScript&&document.currentScript.previousElementSibling);"
)


def _attr(name: str, value: Any) -> str:
    return f' {name}="{escape(str(value), quote=True)}"'


def _input(spec: FormField, value: Any, error: str | None) -> str:
    ident = f"lf-{spec.name}"
    described = f' aria-describedby="{ident}-error" aria-invalid="true"' if error else ""
    required = ' required aria-required="true"' if spec.required else ""
    extra = _attr("maxlength", spec.limit) if spec.type not in ("checkbox", "select", "number") else ""
    if spec.pattern:
        extra += _attr("pattern", spec.pattern)
    text = "" if value is None or isinstance(value, bool) else str(value)
    if spec.type == "textarea":
        control = (
            f'<textarea id="{ident}" name="{spec.name}"{required}{extra}{described}>{escape(text)}</textarea>'
        )
    elif spec.type == "select":
        options = "".join(
            f"<option{_attr('value', o)}{' selected' if o == text else ''}>{escape(o)}</option>"
            for o in spec.options or []
        )
        attrs = f'id="{ident}" name="{spec.name}"{required}{described}'
        control = f'<select {attrs}><option value=""></option>{options}</select>'
    elif spec.type == "checkbox":
        checked = " checked" if value is True else ""
        attrs = f'id="{ident}" name="{spec.name}" value="on"{checked}{required}{described}'
        control = f'<input type="checkbox" {attrs}>'
    else:
        attrs = f'id="{ident}" name="{spec.name}"{_attr("value", text)}{required}{extra}{described}'
        control = f'<input type="{spec.type}" {attrs}>'
    star = ' <span aria-hidden="true">*</span>' if spec.required else ""
    label = f'<label for="{ident}">{escape(spec.label)}{star}</label>'
    message = f'<p class="lf-error" id="{ident}-error" role="alert">{escape(error)}</p>' if error else ""
    if spec.type == "checkbox":
        return f'<div class="lf-field">{control} {label}{message}</div>'
    return f'<div class="lf-field">{label}{control}{message}</div>'


def form_html(
    form: FormFields,
    action: str,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    hidden: Mapping[str, str] | None = None,
) -> str:
    """The ``<form>`` element posting to ``action``."""
    values, errors, hidden = values or {}, errors or {}, hidden or {}
    parts = [f'<form class="leadflow-form" method="post" action="{escape(action, quote=True)}" novalidate>']
    if errors:
        parts.append('<p class="lf-error" role="alert">Please correct the fields marked below.</p>')
    for spec in form.fields:
        if spec.type == "hidden":
            value = values.get(spec.name) or spec.value or ""
            parts.append(f'<input type="hidden" name="{spec.name}"{_attr("value", value)}>')
        else:
            parts.append(_input(spec, values.get(spec.name), errors.get(spec.name)))
    if form.consent is not None:
        consent = FormField(name="consent_box", label=form.consent.text, type="checkbox", required=True)
        box = _input(consent, values.get(CONSENT) in (True, "on", "true"), errors.get(CONSENT))
        parts.append(
            box.replace('name="consent_box"', f'name="{CONSENT}"').replace("lf-consent_box", "lf-consent")
        )
    for name in (*UTM_FIELDS, "page_url", "referrer"):
        parts.append(f'<input type="hidden" name="{name}"{_attr("value", hidden.get(name, ""))}>')
    parts.append(
        f'<div class="lf-hp" aria-hidden="true"><label for="lf-{HONEYPOT}">Leave this empty</label>'
        f'<input type="text" id="lf-{HONEYPOT}" name="{HONEYPOT}" tabindex="-1" autocomplete="off"></div>'
    )
    parts.append('<button type="submit">Submit</button></form>')
    return "".join(parts)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def hosted(form: FormFields, action: str, **kwargs: Any) -> str:
    """The hosted page: the form, then the script that fills its hidden fields (when JavaScript runs)."""
    return page(form.name, form_html(form, action, **kwargs) + f"<script>{FILL}</script>")


def message(title: str, text: str) -> str:
    return page(title, f'<p role="status">{escape(text)}</p>')


def confirm_button(title: str, text: str) -> str:
    """A page whose one button posts back to the address it was opened at."""
    button = '<form method="post"><button type="submit">Confirm</button></form>'
    return page(title, f"<p>{escape(text)}</p>{button}")


def embed_js(form: FormFields, form_id: str, action: str) -> str:
    """The script snippet's body: inject the form into ``<div data-leadflow-form="{id}">``, fill its
    hidden fields from this page's address and post it as JSON with fetch (CORS); show the errors per
    field, the thank-you message, or go to the redirect address."""
    html = json.dumps(form_html(form, action))
    return (
        "(function(){"
        f"var id={json.dumps(form_id)},action={json.dumps(action)},html={html};"
        "var boxes=document.querySelectorAll('[data-leadflow-form=\"'+id+'\"]');"
        "Array.prototype.forEach.call(boxes,function(box){box.innerHTML=html;var f=box.querySelector('form');"
        "var q=new URLSearchParams(location.search);"
        "['utm_source','utm_medium','utm_campaign','utm_term','utm_content'].forEach(function(n){"
        "var v=q.get(n);if(v)f.elements[n].value=v});"
        "f.elements.page_url.value=location.href;f.elements.referrer.value=document.referrer||'';"
        "f.addEventListener('submit',function(e){e.preventDefault();var data={};"
        "Array.prototype.forEach.call(f.elements,function(el){if(!el.name)return;"
        "if(el.type==='checkbox'){if(el.checked)data[el.name]=true}else data[el.name]=el.value});"
        "box.querySelectorAll('.lf-error').forEach(function(p){p.remove()});"
        "fetch(action,{method:'POST',headers:{'Content-Type':'application/json','Accept':'application/json'},"
        "body:JSON.stringify(data)}).then(function(r){return r.json().then(function(b){return[r,b]})})"
        ".then(function(a){var r=a[0],b=a[1];if(r.ok){if(b.redirect_url){location.href=b.redirect_url;return}"
        "box.innerHTML='<p role=\"status\"></p>';box.firstChild.textContent=b.message||'Thank you!';return}"
        "var fields=(b.error&&b.error.details&&b.error.details.fields)||{};"
        "var msg=(b.error&&b.error.message)||'Something went wrong';"
        "if(!Object.keys(fields).length)fields={'':msg};"
        "Object.keys(fields).forEach(function(n){var p=document.createElement('p');p.className='lf-error';"
        "p.setAttribute('role','alert');p.textContent=fields[n];var el=n&&f.elements[n];"
        "(el&&el.parentNode?el.parentNode:f).appendChild(p)})})});"
        "});})();"
    )


def snippets(form: FormFields, form_id: str, base_url: str) -> tuple[str, str]:
    """(script snippet, plain HTML snippet) for copy-paste."""
    action = f"{base_url}/f/{form_id}"
    script = (
        f'<div data-leadflow-form="{escape(form_id, quote=True)}"></div>\n'
        f'<script src="{escape(action, quote=True)}/embed.js" async></script>'
    )
    return script, form_html(form, action)
