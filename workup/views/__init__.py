"""The pages, one module per page family; thin: fetch through web.access, read
through workup.reads, write through workup.records, render.
"""
