"""Request plumbing the pages share: access scoping (another site's object is a 404),
forms built from the protocol, session middleware, the rendered-checklist cache.
"""
