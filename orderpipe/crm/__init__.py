"""The CRM step's connectors: embedded contacts and deals (``local``) and Zoho CRM (``zoho``,
with its OAuth token cache ``zoho_tokens``).
"""

# The deal's stage after a refund or dispute, by the order's payment status (both connectors).
REFUND_STAGES = {"refunded": "Refunded", "partially_refunded": "Partially refunded", "disputed": "Disputed"}


def refund_stage(payment_status: str) -> str:
    return REFUND_STAGES.get(payment_status, "Closed Won")
