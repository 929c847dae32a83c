"""The pure core: protocol spec, rules engine and compiler, checklist builder, value checks.

Plain data in, plain data out: no Django, no ORM, no request (an import-linter
contract in `make test` enforces it). The protocol is data here; nothing in the
core names a disease.
"""
