"""Source keys as numbered references: "[ECNM14][HART16]" reads "[3] [5]" on the page.

The keys stay the protocol's own (data, reviewed in fixtures); the clinician sees
numbers that point at the full citation in the page's reference list.
"""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from workup.core.checklist import SOURCE_REFERENCE

register = template.Library()


@register.filter
def cite(text: str | None, numbers: dict[str, int]) -> SafeString:
    """Escape the text and replace each known [KEY] by a link to its numbered reference."""
    if not text:
        return mark_safe("")
    parts = []
    position = 0
    for match in SOURCE_REFERENCE.finditer(text):
        parts.append(escape(text[position : match.start()]))
        number = (numbers or {}).get(match.group(1))
        if number is None:
            parts.append(escape(f"[{match.group(1)}]"))
        else:
            parts.append(
                f'<a class="ref" href="#ref-{number}" title="Reference {number}">[{number}]</a>'
            )
        position = match.end()
    parts.append(escape(text[position:]))
    return mark_safe("".join(parts))
