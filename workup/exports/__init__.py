"""Exports: CSV for registries and research, FHIR R4 for the health record.

- `coding.py`: standard and local codes, read from `fixtures/codes/` (protocol data).
- `data.py`: the plain data every export is built from (no ORM).
- `csv_export.py`, `fhir.py`: pure builders over that data.
- `policy.py`: who may export identifiers, pseudonyms, settings (the edge).
- `loading.py`: the ORM side, loading workups in bounded chunks.

See docs/exports.md.
"""
