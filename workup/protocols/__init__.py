"""Protocol versions as data: the one row <-> spec mapping, the cache, fixture files
(read, check, export), diffs, edits checked against the whole draft, the case
library, and drafting / publishing versions.
"""
