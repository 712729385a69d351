"""Texts of the confirmation email, per language, and the choice of language for an order.

Placeholders: ``{order_ref}``, ``{name}``, ``{tracking_number}``, ``{invoice_number}``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class EmailTexts:
    subject: str
    greeting: str  # with {name}
    greeting_anonymous: str
    thanks: str
    summary_heading: str
    order_number: str
    order_date: str
    item: str
    quantity: str
    amount: str
    total: str
    vat: str
    shipping_address_heading: str
    tracking: str  # with {tracking_number}
    track_link: str
    invoice_attached: str  # with {invoice_number}
    questions: str
    sign_off: str
    shipping_line: str = "Shipping"  # the order line for the shipping cost


TEXTS: dict[str, EmailTexts] = {
    "en": EmailTexts(
        subject="Order confirmation {order_ref}",
        greeting="Hi {name},",
        greeting_anonymous="Hello,",
        thanks="Thank you for your order! We have received your payment and are now getting your order ready "
        "for shipping.",
        summary_heading="Order summary",
        order_number="Order number",
        order_date="Order date",
        item="Item",
        quantity="Qty",
        amount="Amount",
        total="Total",
        vat="Of which VAT",
        shipping_address_heading="Shipping address",
        tracking="Your parcel's tracking number is {tracking_number}.",
        track_link="Track your parcel",
        invoice_attached="Your invoice {invoice_number} is attached to this email as a PDF.",
        questions="If you have any questions, simply reply to this email.",
        sign_off="Best regards,",
        shipping_line="Shipping",
    ),
    "fi": EmailTexts(
        subject="Tilausvahvistus {order_ref}",
        greeting="Hei {name},",
        greeting_anonymous="Hei,",
        thanks="Kiitos tilauksestasi! Maksusi on vastaanotettu, ja valmistelemme nyt tilaustasi lähetettäväksi.",
        summary_heading="Tilauksen yhteenveto",
        order_number="Tilausnumero",
        order_date="Tilauspäivä",
        item="Tuote",
        quantity="Määrä",
        amount="Summa",
        total="Yhteensä",
        vat="Josta arvonlisävero",
        shipping_address_heading="Toimitusosoite",
        tracking="Pakettisi seurantatunnus on {tracking_number}.",
        track_link="Seuraa pakettiasi",
        invoice_attached="Laskusi {invoice_number} on tämän viestin liitteenä PDF-tiedostona.",
        questions="Jos sinulla on kysyttävää, vastaa suoraan tähän viestiin.",
        sign_off="Ystävällisin terveisin",
        shipping_line="Toimitus",
    ),
    "sv": EmailTexts(
        subject="Orderbekräftelse {order_ref}",
        greeting="Hej {name},",
        greeting_anonymous="Hej,",
        thanks="Tack för din beställning! Vi har tagit emot din betalning och förbereder nu din order för leverans.",
        summary_heading="Ordersammanfattning",
        order_number="Ordernummer",
        order_date="Orderdatum",
        item="Artikel",
        quantity="Antal",
        amount="Belopp",
        total="Totalt",
        vat="Varav moms",
        shipping_address_heading="Leveransadress",
        tracking="Ditt paket har spårningsnumret {tracking_number}.",
        track_link="Spåra ditt paket",
        invoice_attached="Din faktura {invoice_number} finns bifogad i det här mejlet som PDF.",
        questions="Har du frågor är det bara att svara på det här mejlet.",
        sign_off="Vänliga hälsningar",
        shipping_line="Frakt",
    ),
    "da": EmailTexts(
        subject="Ordrebekræftelse {order_ref}",
        greeting="Hej {name},",
        greeting_anonymous="Hej,",
        thanks="Tak for din bestilling! Vi har modtaget din betaling og gør nu din ordre klar til afsendelse.",
        summary_heading="Ordreoversigt",
        order_number="Ordrenummer",
        order_date="Ordredato",
        item="Vare",
        quantity="Antal",
        amount="Beløb",
        total="I alt",
        vat="Heraf moms",
        shipping_address_heading="Leveringsadresse",
        tracking="Din pakke har sporingsnummeret {tracking_number}.",
        track_link="Følg din pakke",
        invoice_attached="Din faktura {invoice_number} er vedhæftet denne e-mail som PDF.",
        questions="Har du spørgsmål, kan du blot svare på denne e-mail.",
        sign_off="Med venlig hilsen",
        shipping_line="Fragt",
    ),
    "nb": EmailTexts(
        subject="Ordrebekreftelse {order_ref}",
        greeting="Hei {name},",
        greeting_anonymous="Hei,",
        thanks="Takk for bestillingen! Vi har mottatt betalingen din og gjør nå bestillingen klar for sending.",
        summary_heading="Ordresammendrag",
        order_number="Ordrenummer",
        order_date="Ordredato",
        item="Vare",
        quantity="Antall",
        amount="Beløp",
        total="Totalt",
        vat="Herav mva.",
        shipping_address_heading="Leveringsadresse",
        tracking="Pakken din har sporingsnummeret {tracking_number}.",
        track_link="Spor pakken din",
        invoice_attached="Fakturaen din, {invoice_number}, er vedlagt denne e-posten som PDF.",
        questions="Har du spørsmål, kan du bare svare på denne e-posten.",
        sign_off="Vennlig hilsen",
        shipping_line="Frakt",
    ),
    "de": EmailTexts(
        subject="Bestellbestätigung {order_ref}",
        greeting="Hallo {name},",
        greeting_anonymous="Guten Tag,",
        thanks="vielen Dank für Ihre Bestellung! Wir haben Ihre Zahlung erhalten und bereiten Ihre Bestellung "
        "jetzt für den Versand vor.",
        summary_heading="Bestellübersicht",
        order_number="Bestellnummer",
        order_date="Bestelldatum",
        item="Artikel",
        quantity="Menge",
        amount="Betrag",
        total="Gesamtbetrag",
        vat="Darin enthaltene MwSt.",
        shipping_address_heading="Lieferadresse",
        tracking="Die Sendungsnummer Ihres Pakets lautet {tracking_number}.",
        track_link="Sendung verfolgen",
        invoice_attached="Ihre Rechnung {invoice_number} finden Sie als PDF im Anhang dieser E-Mail.",
        questions="Bei Fragen antworten Sie einfach auf diese E-Mail.",
        sign_off="Mit freundlichen Grüßen",
        shipping_line="Versand",
    ),
    "fr": EmailTexts(
        subject="Confirmation de commande {order_ref}",
        greeting="Bonjour {name},",
        greeting_anonymous="Bonjour,",
        thanks="Merci pour votre commande\u00a0! Nous avons bien reçu votre paiement et préparons maintenant "
        "votre commande pour l’expédition.",
        summary_heading="Récapitulatif de la commande",
        order_number="Numéro de commande",
        order_date="Date de commande",
        item="Article",
        quantity="Qté",
        amount="Montant",
        total="Total",
        vat="Dont TVA",
        shipping_address_heading="Adresse de livraison",
        tracking="Le numéro de suivi de votre colis est le {tracking_number}.",
        track_link="Suivre votre colis",
        invoice_attached="Votre facture {invoice_number} est jointe à cet e-mail au format PDF.",
        questions="Pour toute question, il vous suffit de répondre à cet e-mail.",
        sign_off="Cordialement,",
        shipping_line="Livraison",
    ),
    "es": EmailTexts(
        subject="Confirmación del pedido {order_ref}",
        greeting="Hola, {name}:",
        greeting_anonymous="Hola:",
        thanks="¡Gracias por tu pedido! Hemos recibido tu pago y ya estamos preparando tu pedido para el envío.",
        summary_heading="Resumen del pedido",
        order_number="Número de pedido",
        order_date="Fecha del pedido",
        item="Artículo",
        quantity="Cant.",
        amount="Importe",
        total="Total",
        vat="IVA incluido",
        shipping_address_heading="Dirección de envío",
        tracking="El número de seguimiento de tu paquete es {tracking_number}.",
        track_link="Sigue tu paquete",
        invoice_attached="Te adjuntamos la factura {invoice_number} en formato PDF.",
        questions="Si tienes cualquier pregunta, solo tienes que responder a este correo.",
        sign_off="Un saludo,",
        shipping_line="Envío",
    ),
    "it": EmailTexts(
        subject="Conferma dell'ordine {order_ref}",
        greeting="Ciao {name},",
        greeting_anonymous="Ciao,",
        thanks="grazie per il tuo ordine! Abbiamo ricevuto il pagamento e stiamo preparando il tuo ordine "
        "per la spedizione.",
        summary_heading="Riepilogo dell'ordine",
        order_number="Numero d'ordine",
        order_date="Data dell'ordine",
        item="Articolo",
        quantity="Qtà",
        amount="Importo",
        total="Totale",
        vat="Di cui IVA",
        shipping_address_heading="Indirizzo di spedizione",
        tracking="Il numero di tracciamento del tuo pacco è {tracking_number}.",
        track_link="Traccia il tuo pacco",
        invoice_attached="In allegato a questa email trovi la fattura {invoice_number} in formato PDF.",
        questions="Per qualsiasi domanda, rispondi pure a questa email.",
        sign_off="Cordiali saluti,",
        shipping_line="Spedizione",
    ),
    "nl": EmailTexts(
        subject="Orderbevestiging {order_ref}",
        greeting="Hallo {name},",
        greeting_anonymous="Hallo,",
        thanks="Bedankt voor je bestelling! We hebben je betaling ontvangen en maken je bestelling nu klaar "
        "voor verzending.",
        summary_heading="Overzicht van je bestelling",
        order_number="Bestelnummer",
        order_date="Besteldatum",
        item="Artikel",
        quantity="Aantal",
        amount="Bedrag",
        total="Totaal",
        vat="Waarvan btw",
        shipping_address_heading="Verzendadres",
        tracking="Het trackingnummer van je pakket is {tracking_number}.",
        track_link="Volg je pakket",
        invoice_attached="Je factuur {invoice_number} is als pdf bij deze e-mail gevoegd.",
        questions="Heb je vragen? Beantwoord dan gewoon deze e-mail.",
        sign_off="Met vriendelijke groet,",
        shipping_line="Verzending",
    ),
    "pt": EmailTexts(
        subject="Confirmação do pedido {order_ref}",
        greeting="Olá, {name},",
        greeting_anonymous="Olá,",
        thanks="Obrigado pelo seu pedido! Recebemos o seu pagamento e o seu pedido já está a ser preparado "
        "para envio.",
        summary_heading="Resumo do pedido",
        order_number="Número do pedido",
        order_date="Data do pedido",
        item="Artigo",
        quantity="Qtd.",
        amount="Valor",
        total="Total",
        vat="Impostos incluídos",
        shipping_address_heading="Endereço de entrega",
        tracking="O código de rastreio da sua encomenda é {tracking_number}.",
        track_link="Acompanhar a encomenda",
        invoice_attached="A sua fatura {invoice_number} segue em anexo a este e-mail, em PDF.",
        questions="Se tiver alguma dúvida, basta responder a este e-mail.",
        sign_off="Com os melhores cumprimentos,",
        shipping_line="Envio",
    ),
}

LANGUAGES = frozenset(TEXTS)

# Stripe locale tags (and their base languages) that name a language we have under another code.
ALIASES = {"no": "nb", "nn": "nb"}

# The main language of a shipping country, used when Stripe's locale is "auto" or missing.
COUNTRY_LANGUAGE = {
    "FI": "fi", "AX": "sv", "SE": "sv", "DK": "da", "GL": "da", "FO": "da", "NO": "nb", "SJ": "nb",
    "DE": "de", "AT": "de", "CH": "de", "LI": "de",
    "FR": "fr", "MC": "fr", "LU": "fr", "BE": "nl", "NL": "nl", "SR": "nl",
    "ES": "es", "MX": "es", "AR": "es", "CO": "es", "CL": "es", "PE": "es", "UY": "es", "VE": "es",
    "EC": "es", "BO": "es", "PY": "es", "CR": "es", "PA": "es", "GT": "es", "DO": "es", "HN": "es",
    "SV": "es", "NI": "es", "CU": "es", "PR": "es",
    "IT": "it", "SM": "it", "VA": "it",
    "PT": "pt", "BR": "pt", "AO": "pt", "MZ": "pt",
}  # fmt: skip


def _known(tag: str) -> str | None:
    tag = ALIASES.get(tag, tag)
    return tag if tag in TEXTS else None


def pick_language(locale: str | None, country: str | None) -> str:
    """The template language for a Stripe locale, falling back as a person would.

    Tries the full tag ("fr-ca"), its base language ("fr"), Norwegian "no" as "nb"; when the
    locale is "auto" or missing, the shipping country's main language; then English.
    """
    tag = (locale or "").strip().replace("_", "-").lower()
    if tag and tag != "auto":
        return _known(tag) or _known(tag.split("-", 1)[0]) or DEFAULT_LANGUAGE
    return COUNTRY_LANGUAGE.get((country or "").strip().upper(), DEFAULT_LANGUAGE)


def texts_for(language: str) -> EmailTexts:
    return TEXTS.get(language, TEXTS[DEFAULT_LANGUAGE])
