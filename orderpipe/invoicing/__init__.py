"""The VAT invoice and credit note: the document and its VAT maths (``document``, ``vat``,
``eu_vat_rates``, ``credit_note``, ``seller``), its renderings (``pdf``, ``ubl``), and the two
invoicing connectors: embedded with gapless numbering (``local``) and Netvisor (``netvisor``).
"""
