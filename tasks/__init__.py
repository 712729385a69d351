"""One Prefect task per business step of an order."""
