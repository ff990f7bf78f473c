"""The domain: functions that take a session and plain values and return plain values.

Nothing here imports `telegram`; nothing here commits (the handler or job owns the transaction).
"""
