"""What the connectors of every domain share: the interfaces and result types (``base``),
HTTP calls to vendors (``vendor_http``), JSON request bodies (``json_body``), the file
stores labels and invoices go to (``file_store_local``, ``file_store_s3``), and the shop's
status callback (``status_callback``). Each step's own connectors live in its domain
package: ``crm``, ``production_log``, ``shipping``, ``invoicing``, ``email``, ``alerting``."""
