"""The clinical writers, and the only ones: open a workup, record a step, mark or
unmark it, the adult pathway, moving a workup to a newer protocol version, and
the snapshot each write refreshes. Each write claims the workup's version.
"""
