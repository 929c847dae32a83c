"""The printed workup summary: the tryptase trend drawn on it and the PDF
(WeasyPrint, local files only).
"""
