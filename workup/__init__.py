"""The workup app. Parts, from the top (may import those below) to the bottom:

views -> web -> printing | exports | ops -> records -> reads -> queries
-> protocols -> audit -> models -> core. See docs/architecture.md.
"""
