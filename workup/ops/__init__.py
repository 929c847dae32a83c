"""Operating the service: database backup, restore and restore check, and
rebuilding the worklist's precomputed columns in batches.
"""
