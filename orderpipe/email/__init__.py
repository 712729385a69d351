"""The confirmation email: texts in each language (``texts``), the RFC 5322 message (``render``),
the sent-once ledger every sender checks (``ledger``), the credit note email (``credit_note``),
and the senders: ``outbox`` (files), ``smtp``, ``mailgun``, ``resend`` (with ``parts``, what the
two HTTP APIs share).

Absolute imports everywhere: ``import email`` / ``from email.message import ...`` inside orderpipe
is the standard library, never this package.
"""
