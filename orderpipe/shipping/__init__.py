"""The shipment: UPU S10 tracking numbers (``tracking_number``), the PDF label (``label``), and
the two shipping connectors: embedded (``local``) and PostNord (``postnord``).
"""
