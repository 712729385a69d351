"""Stripe-Signature verification with the stripe SDK, against every configured secret."""

from __future__ import annotations

import stripe

TOLERANCE_SECONDS = 300


class BadSignature(ValueError):
    """The request is not a Stripe delivery we can trust; the message says why."""


def verify(raw_body: bytes, header: str | None, secrets: list[str], tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise BadSignature unless one v1 signature matches one secret within the tolerance."""
    if not secrets:  # never skip verification: start-up refuses to run without a secret
        raise BadSignature("no webhook secret configured")
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    try:
        payload = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("body is not UTF-8") from None
    reasons = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            reasons.append(str(exc.user_message or exc).strip())
        except Exception:  # noqa: BLE001 - a header the SDK chokes on is simply not a valid signature
            reasons.append("Unable to extract timestamp and signatures from header")
    # A signature that matched one secret but is too old says more than "no match" from the others.
    stale = [r for r in reasons if "tolerance" in r.lower()]
    raise BadSignature(_short((stale or reasons or ["no matching signature"])[0]))


def _short(message: str) -> str:
    # The SDK's messages are precise ("Timestamp outside the tolerance zone", "Unable to extract
    # timestamp and signatures from header", "No signatures found matching ..."); keep the first line.
    return message.splitlines()[0].rstrip(".")
