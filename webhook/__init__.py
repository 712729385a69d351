"""The Stripe webhook receiver (Flask)."""
