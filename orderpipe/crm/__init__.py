"""The CRM step's connectors: embedded contacts and deals (``local``) and Zoho CRM (``zoho``,
with its OAuth token cache ``zoho_tokens``).
"""
