"""Ops alerts: the alerts table with one row per dedupe key and its delivery (``alerts``), the
alert's text (``text``), and the sinks: the log (``log``), Slack (``slack``), Telegram (``telegram``).
"""
