"""The production log step's connectors: embedded (``local``) and Airtable (``airtable``).
"""
