"""The audit trail: every change and access as a hash-chained event, saving as a
named user (attribution), and events in words for the History page.
"""
