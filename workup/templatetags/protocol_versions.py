"""`{% newer_protocol_version workup as newer %}`: the version a workup could move to."""

from django import template

from workup.protocols.versions import newer_published_version

register = template.Library()


@register.simple_tag
def newer_protocol_version(workup):
    # No query while the workup's version is the published one (the usual case).
    return newer_published_version(workup.protocol)
