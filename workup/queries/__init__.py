"""Read queries that pages share: the worklist page (keyset pager, search keys) and
a workup's marks read as one JSON column of the workup's own query.
"""
