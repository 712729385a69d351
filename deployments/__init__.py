"""How orderpipe's flows are deployed, scheduled and executed."""
