"""Turn what the Stripe API returns for one paid order into the normalised :class:`Order`.

Pure: dicts in (as ``StripeObject.to_dict()`` or the raw JSON gives them), an ``Order`` out.

Sources, in order of preference:

- amounts: ``amount_total`` is what was charged (``payment_intent.amount_received``, else
  ``amount``); lines come from the Checkout line items (expanded ``taxes`` and, optionally,
  ``price.product``), plus one shipping line (``is_shipping=True``) from
  ``session.shipping_cost`` when it costs something (or, for payloads without
  ``shipping_cost``, from ``total_details.amount_shipping``);
- customer: ``session.customer_details``, else the Customer object, else
  ``payment_intent.receipt_email`` / ``payment_intent.shipping``;
- shipping address: ``session.collected_information.shipping_details`` (basil and later),
  else ``session.shipping_details`` (older API versions), else ``payment_intent.shipping``;
- locale: ``session.locale``, else ``customer.preferred_locales[0]``.

A PaymentIntent without a Checkout Session becomes one line (its description, else
``"Order <pi id>"``) for the charged amount, with no tax from Stripe.

Missing email or shipping address leave the fields ``None``: the step that needs them
fails with a clear message, not this one.

Reconciliation: the lines must add up to what was charged (``check_adds_up``: only
rounding and a session-level discount Stripe reports may explain a difference; anything
else stops the order). A difference they explain is spread over the product lines (the shipping line
only when there are no product lines) in proportion to their ``amount_total``, using
largest remainders so the result is exact; each adjusted line's ``amount_discount`` grows
by what it lost (shrinks if the difference is positive) and its ``amount_tax`` is scaled by
the same factor so its tax rate stays what Stripe said. ``amount_subtotal`` and
``unit_amount`` keep Stripe's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orderpipe.errors import OrderDataError
from orderpipe.money import round_div
from orderpipe.order import Address, Order, OrderLine

# Tax id types that are VAT numbers, most useful first; any other "*_vat" follows.
VAT_ID_TYPES = ("eu_vat", "gb_vat", "no_vat", "ch_vat", "is_vat", "li_vat")

Json = Mapping[str, Any]


def normalise(
    payment_intent: Json,
    session: Json | None,
    line_items: list[dict[str, Any]],
    customer: Json | None,
) -> Order:
    """Build the Order of one PaymentIntent (and its Checkout Session, line items, Customer)."""
    pi = payment_intent
    order_id = str(pi["id"])
    customer = customer if customer and not customer.get("deleted") else None
    charged = _int(pi.get("amount_received")) or _int(pi.get("amount"))
    currency = str(pi.get("currency") or (session or {}).get("currency") or "").lower()

    if session is not None:
        lines = [_item_line(item) for item in line_items]
        shipping_line = _shipping_line(session)
        if shipping_line is not None:
            lines.append(shipping_line)
        if not lines:
            lines = [_bare_line(pi, charged)]
        check_adds_up(order_id, lines, charged, currency, _int((session.get("total_details") or {}).get(
            "amount_discount")))
        lines = reconcile_lines(lines, charged)
        totals = session.get("total_details") or {}
        amount_tax = _int(totals.get("amount_tax"))
        tax_from_stripe = amount_tax > 0 or any(
            line.amount_tax > 0 or line.tax_rate is not None for line in lines
        )
        amount_shipping = _int(totals.get("amount_shipping")) or _int(
            (session.get("shipping_cost") or {}).get("amount_subtotal")
        )
        amount_discount = _int(totals.get("amount_discount"))
    else:
        lines = [_bare_line(pi, charged)]
        amount_tax = amount_shipping = amount_discount = 0
        tax_from_stripe = False

    details: Json = (session or {}).get("customer_details") or {}
    collected: Json = (session or {}).get("collected_information") or {}
    pi_shipping: Json = pi.get("shipping") or {}
    cust: Json = customer or {}

    vat_id, vat_type = _vat_id(details.get("tax_ids") or [])
    name = _text(details.get("name")) or _text(details.get("individual_name")) or _text(cust.get("name")) \
        or _text(pi_shipping.get("name"))

    metadata = {str(k): str(v) for k, v in (pi.get("metadata") or {}).items() if v is not None}
    metadata.update({str(k): str(v) for k, v in ((session or {}).get("metadata") or {}).items() if v is not None})
    reference = metadata.get("order_ref") or _text((session or {}).get("client_reference_id"))

    return Order(
        order_id=order_id,
        checkout_session_id=str(session["id"]) if session is not None and session.get("id") else None,
        livemode=bool(pi.get("livemode")),
        created=datetime.fromtimestamp(_int(pi.get("created")), tz=UTC),
        currency=currency,
        amount_total=charged,
        amount_tax=amount_tax,
        amount_shipping=amount_shipping,
        amount_discount=amount_discount,
        tax_from_stripe=tax_from_stripe,
        customer_id=_id_of((session or {}).get("customer")) or _id_of(pi.get("customer")) or _text(cust.get("id")),
        customer_email=_text(details.get("email")) or _text((session or {}).get("customer_email"))
        or _text(cust.get("email")) or _text(pi.get("receipt_email")),
        customer_name=name,
        customer_phone=_text(details.get("phone")) or _text(cust.get("phone")) or _text(pi_shipping.get("phone")),
        business_name=_text(details.get("business_name")) or _text(collected.get("business_name")),
        buyer_vat_id=vat_id,
        buyer_vat_id_type=vat_type,
        tax_exempt=_text(details.get("tax_exempt")) or _text(cust.get("tax_exempt")) or "none",
        billing_address=_address(details.get("address"), name) or _address(cust.get("address"), name),
        shipping_address=_shipping_address(session, pi_shipping),
        locale=_locale(session, cust),
        lines=lines,
        metadata=metadata,
        reference=reference,
    )


def normalise_free(session: Json, line_items: list[dict[str, Any]], customer: Json | None) -> Order:
    """A free Checkout order (no PaymentIntent, `no_payment_required`): the session is the order,
    its id the order id, and nothing was charged (`amount_total` 0)."""
    charged = {"id": session["id"], "object": "payment_intent", "amount": 0, "amount_received": 0,
               "currency": session.get("currency"), "created": session.get("created"),
               "livemode": session.get("livemode"), "customer": session.get("customer"), "metadata": {}}
    return normalise(charged, session, line_items, customer)


def check_adds_up(order_id: str, lines: list[OrderLine], charged: int, currency: str, reported_discount: int) -> None:
    """Stripe's lines and shipping must come to what was charged, give or take rounding (a
    minor unit per line) and a discount Stripe reports at the session level but did not put
    on the lines (``total_details.amount_discount``): the only reasons lines may differ from
    their prices. Anything else (a partial capture, a shipping cost that is not this order's)
    stops the order here with a clear message, instead of being stretched into an invoice."""
    listed = sum(line.amount_total for line in lines)
    diff = charged - listed
    unspread = max(0, reported_discount - sum(line.amount_discount for line in lines))
    tolerance = max(1, len(lines))
    if -unspread - tolerance <= diff <= tolerance:
        return
    raise OrderDataError(
        f"order {order_id}: Stripe's lines and shipping come to {listed} but {charged} was charged "
        f"({currency.upper()} minor units, {diff:+}), more than rounding or a reported discount "
        f"({unspread}) explains; nothing was fulfilled. Check the order in the Stripe Dashboard "
        "(a partial capture? a wrong shipping rate?), then `orderpipe replay` it once it adds up")


def reconcile_lines(lines: list[OrderLine], charged: int) -> list[OrderLine]:
    """Make sum(line.amount_total) equal ``charged`` (see the module docstring for the rule)."""
    diff = charged - sum(line.amount_total for line in lines)
    if diff == 0:
        return lines
    targets = [i for i, line in enumerate(lines) if not line.is_shipping and line.amount_total > 0]
    if not targets:
        targets = [i for i, line in enumerate(lines) if line.amount_total > 0] or [0]
    weights = [max(lines[i].amount_total, 0) for i in targets]
    shares = _split(diff, weights)
    out = list(lines)
    for i, share in zip(targets, shares, strict=True):
        line = lines[i]
        new_total = line.amount_total + share
        new_tax = round_div(line.amount_tax * new_total, line.amount_total) if line.amount_total else 0
        out[i] = line.model_copy(update={
            "amount_total": new_total,
            "amount_tax": new_tax,
            "amount_discount": line.amount_discount - share,
        })
    return out


def _split(amount: int, weights: list[int]) -> list[int]:
    """Split an integer amount in proportion to weights, exactly (largest remainder)."""
    total = sum(weights)
    if total <= 0:
        return [amount] + [0] * (len(weights) - 1)
    sign = -1 if amount < 0 else 1
    absolute = abs(amount)
    floors = [absolute * w // total for w in weights]
    remainders = [absolute * w % total for w in weights]
    left = absolute - sum(floors)
    for i in sorted(range(len(weights)), key=lambda k: (-remainders[k], k))[:left]:
        floors[i] += 1
    return [sign * f for f in floors]


def _item_line(item: Json) -> OrderLine:
    price: Json = item.get("price") or {}
    product = price.get("product")
    product_name = product.get("name") if isinstance(product, Mapping) else None
    rate, inclusive, reason = _tax_info(item.get("taxes"))
    subtotal = _int(item.get("amount_subtotal"))
    return OrderLine(
        description=_text(item.get("description")) or _text(product_name) or "Item",
        quantity=max(_int(item.get("quantity")) or 1, 1),
        unit_amount=_opt_int(price.get("unit_amount")),
        amount_subtotal=subtotal,
        amount_discount=_int(item.get("amount_discount")),
        amount_tax=_int(item.get("amount_tax")),
        amount_total=_int(item.get("amount_total")) if item.get("amount_total") is not None else subtotal,
        tax_rate=rate,
        tax_inclusive=inclusive,
        taxability_reason=reason,
        product_id=_id_of(product),
    )


def _shipping_line(session: Json) -> OrderLine | None:
    cost: Json = session.get("shipping_cost") or {}
    if cost:
        total = _int(cost.get("amount_total"))
        if total <= 0:
            return None
        rate, inclusive, reason = _tax_info(cost.get("taxes"))
        subtotal = _int(cost.get("amount_subtotal")) if cost.get("amount_subtotal") is not None else total
        return OrderLine(
            description="Shipping", quantity=1, unit_amount=subtotal, amount_subtotal=subtotal,
            amount_tax=_int(cost.get("amount_tax")), amount_total=total, tax_rate=rate,
            tax_inclusive=inclusive, taxability_reason=reason, is_shipping=True,
        )
    shipping = _int((session.get("total_details") or {}).get("amount_shipping"))
    if shipping <= 0:
        return None
    return OrderLine(description="Shipping", quantity=1, unit_amount=shipping, amount_subtotal=shipping,
                     amount_total=shipping, is_shipping=True)


def _bare_line(pi: Json, charged: int) -> OrderLine:
    return OrderLine(
        description=_text(pi.get("description")) or f"Order {pi['id']}",
        quantity=1,
        unit_amount=charged,
        amount_subtotal=charged,
        amount_total=charged,
    )


def _tax_info(taxes: Any) -> tuple[Decimal | None, bool | None, str | None]:
    """Rate (percent), inclusive flag and taxability reason of the first tax, from expanded ``taxes``."""
    if not taxes:
        return None, None, None
    first: Json = taxes[0]
    rate: Json = first.get("rate") or {}
    percentage = rate.get("percentage") if isinstance(rate, Mapping) else None
    inclusive = rate.get("inclusive") if isinstance(rate, Mapping) else None
    return (
        _percent(percentage) if percentage is not None else None,
        bool(inclusive) if inclusive is not None else None,
        _text(first.get("taxability_reason")),
    )


def _percent(value: Any) -> Decimal:
    """25.5 -> Decimal('25.5'), 20.0 -> Decimal('20') (no exponent notation, no float noise)."""
    d = Decimal(str(value))
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _vat_id(tax_ids: list[Json]) -> tuple[str | None, str | None]:
    usable = [t for t in tax_ids if t.get("value")]
    for wanted in VAT_ID_TYPES:
        for t in usable:
            if t.get("type") == wanted:
                return _clean_vat(str(t["value"])), wanted
    for t in usable:
        if str(t.get("type") or "").endswith("_vat"):
            return _clean_vat(str(t["value"])), str(t["type"])
    return None, None


def _clean_vat(value: str) -> str:
    return "".join(value.split()).upper()


def _shipping_address(session: Json | None, pi_shipping: Json) -> Address | None:
    if session is not None:
        for details in (
            (session.get("collected_information") or {}).get("shipping_details"),
            session.get("shipping_details"),
            session.get("shipping"),
        ):
            if details:
                found = _address(details.get("address"), _text(details.get("name")))
                if found:
                    return found
    if pi_shipping:
        return _address(pi_shipping.get("address"), _text(pi_shipping.get("name")))
    return None


def _address(raw: Any, name: str | None) -> Address | None:
    if not isinstance(raw, Mapping):
        return None
    fields = {k: _text(raw.get(k)) for k in ("line1", "line2", "postal_code", "city", "state", "country")}
    if not any(fields.values()):
        return None
    if fields["country"]:
        fields["country"] = fields["country"].upper()
    return Address(name=name, **fields)


def _locale(session: Json | None, customer: Json) -> str | None:
    locale = _text((session or {}).get("locale"))
    if locale:
        return locale
    preferred = customer.get("preferred_locales") or []
    return _text(preferred[0]) if preferred else None


def _id_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None
