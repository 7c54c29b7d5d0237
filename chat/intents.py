"""Keyword-based intent detection for visitor messages, configurable per tenant.

Pure Python (no Django) so it can be imported and benchmarked alone. A tenant's bot configuration stores
``{intent: [keyword, ...]}`` overrides; :func:`effective_keywords` lays them over
:data:`DEFAULT_INTENT_KEYWORDS` and :func:`classifier_for` compiles the result once per configuration version.

Matching works on normalised text (see :func:`normalize`): case-, accent- and punctuation-insensitive, and on
whole words and whole phrases only, so "price" never matches "priceless" and "book" never matches "facebook".
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

OTHER = "other"

# Keywords are matched after normalize(), so write them naturally: "don't" == "dont", "día" == "dia".
# Each list is English first, then Spanish, French, German and Portuguese, one line group per language;
# fmt: off keeps that grouping, which the formatter would explode into one keyword per line.
# fmt: off
DEFAULT_INTENT_KEYWORDS: dict[str, list[str]] = {
    "greeting": [
        "hi", "hii", "hiii", "hello", "helloo", "hey", "heyy", "heyyy", "hiya", "howdy", "yo", "sup",
        "whats up", "greetings", "good morning", "good afternoon", "good evening", "morning", "gday",
        "hi there", "hello there", "hey there", "hi all", "hello everyone", "hey guys", "hi team", "ciao",
        "buongiorno", "buonasera",
        "hola", "buenos dias", "buenas tardes", "buenas noches", "buenas",
        "bonjour", "bonsoir", "salut", "coucou",
        "hallo", "guten tag", "guten morgen", "guten abend", "moin", "servus",
        "ola", "oi", "bom dia", "boa tarde", "boa noite",
    ],
    "pricing": [
        "price", "prices", "pricing", "priced", "pricey", "price list", "price range", "cost", "costs",
        "costing", "how much", "what do you charge", "run me", "set me back", "fee", "fees", "rate", "rates",
        "quote", "quotation", "estimate", "charge", "charges", "cheap", "cheaper", "cheapest", "expensive",
        "affordable", "afford", "budget", "discount", "discounts", "coupon", "coupons", "promo", "promo code",
        "promotion", "special offer", "offers", "deal", "deals", "on sale", "plans", "subscription",
        "membership", "memberships", "monthly", "per month", "per hour", "per person", "per night",
        "per session", "deposit", "tariff", "free trial", "for free", "is it free", "free of charge",
        "packages", "dollars", "euros", "bucks",
        "precio", "precios", "cuanto cuesta", "cuanto vale", "cuanto cobran", "cuanto sale", "tarifa",
        "tarifas", "presupuesto", "descuento", "oferta", "barato", "caro", "cuota", "gratis", "gratuito",
        "cobrar", "cobran", "cobrarian",
        "prix", "tarif", "tarifs", "combien", "devis", "cher", "reduction", "gratuit",
        "preis", "preise", "preisliste", "kosten", "kostet", "wie viel", "wieviel", "teuer", "rabatt",
        "angebot", "kostenlos",
        "preco", "precos", "quanto custa", "quanto e", "orcamento", "desconto", "mensalidade",
    ],
    "booking": [
        "book", "booking", "bookings", "booked", "book in", "reserve", "reservation", "reservations",
        "appointment", "appointments", "schedule", "reschedule", "slot", "slots", "availability",
        "available on", "available at", "available for", "available today", "available tomorrow",
        "anything available", "anything open", "any openings", "openings", "next available", "earliest",
        "are you free", "table for", "a room for", "room for", "nights", "a spot", "save me a",
        "consultation", "session", "trial class", "trial lesson", "sign up", "sign me up", "enroll", "enrol",
        "register", "check in", "visit", "home visit", "house call", "can i come in", "can we come in",
        "come in for", "get in today", "fit me in", "squeeze me in", "pencil me in", "come out",
        "send someone", "walk in", "walk ins",
        "cita", "pedir cita", "reservar", "reserva", "agendar", "turno", "inscribirme",
        "rendez vous", "reserver", "reservation", "inscrire",
        "termin", "buchen", "reservieren", "anmelden",
        "marcar", "marcacao", "agendamento", "inscrever",
    ],
    "opening_hours": [
        "opening hours", "opening times", "business hours", "office hours", "hours", "open", "opening",
        "open now", "are you open", "close", "closed", "closing", "closing time", "shut", "shuts",
        "what time", "how late", "how early", "until when", "24 7", "what days", "which days",
        "last appointment", "last orders", "last entry", "weekends", "weekend", "holiday", "holidays",
        "public holiday", "christmas", "christmas eve", "new year", "easter", "thanksgiving", "mondays",
        "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays",
        "horario", "horarios", "que hora", "abierto", "abiertos", "abre", "abren", "cierra", "cierran",
        "festivos",
        "horaires", "ouvert", "ouverts", "ouverture", "ferme", "fermez", "fermeture",
        "offnungszeiten", "wie viel uhr", "um wie viel uhr", "offnen", "geoffnet", "offen", "geschlossen",
        "schliessen",
        "horario de funcionamento", "que horas", "aberto", "abertos", "abrem", "fechado", "fecham",
        "funcionam",
    ],
    "location": [
        "where", "where are you", "where are you located", "where r u", "where are u", "where exactly",
        "located", "location", "locations", "address", "directions", "how do i get there", "how do i get to",
        "how to get there", "how to get to", "get there", "find you", "how far", "far from", "distance",
        "near", "nearby", "near me", "near you", "close to", "parking", "park", "map", "google maps",
        "branch", "branches", "neighborhood", "neighbourhood", "street", "downtown", "area", "town",
        "part of town", "city", "which floor", "entrance", "bus", "metro", "subway", "train station",
        "station", "postcode", "zip code", "do you deliver to", "your store", "your shop", "your office",
        "donde", "donde estan", "donde queda", "direccion", "ubicacion", "ubicados", "como llegar",
        "como llego", "llegar", "cerca", "aparcamiento", "estacionamiento",
        "adresse", "ou etes vous", "ou se trouve", "comment venir", "plan d acces",
        "wo sind sie", "wo finde ich", "anfahrt", "wegbeschreibung", "parken",
        "endereco", "onde", "onde fica", "onde ficam", "como chegar", "chegar", "perto", "estacionamento",
    ],
    "contact_request": [
        "call me", "call me back", "callback", "call back", "call", "call you", "can i call",
        "give me a call", "give me a ring", "ring me", "number i can call", "number to call", "contact me",
        "contact you", "contact", "contact details", "contact info", "get in contact", "get in touch",
        "reach out", "reach me", "reach you", "you can reach me", "get back to me", "follow up", "email",
        "e mail", "email me", "drop me", "drop me a line", "send me", "text me", "message me", "dm",
        "whatsapp", "phone", "phone number", "your number", "your phone", "your email", "your email address",
        "email address", "my number", "my email", "my phone", "my cell", "mobile", "leave my number",
        "leave a message", "voicemail",
        "llamame", "llamenme", "llamar", "contactar", "contacto", "telefono", "numero", "correo", "escribir",
        "rappelez moi", "rappeler", "appeler", "appelez moi", "contacter", "telephone",
        "ruckruf", "rufen sie mich", "anrufen", "kontakt", "nummer",
        "ligar", "me ligue", "me liga", "contato", "telefone",
    ],
    "support": [
        "order", "orders", "my order", "order status", "where is my", "wheres my", "tracking", "track",
        "tracking number", "delivery", "delivered", "shipping", "shipped", "shipment", "package arrived",
        "my package", "arrived", "never arrived", "never got", "never received", "didnt get", "didnt receive",
        "havent received", "not received", "refund", "return", "returns", "exchange", "replacement", "broken",
        "broke", "damaged", "defective", "faulty", "ripped", "torn", "not working", "doesnt work",
        "does not work", "stopped working", "isnt working", "wont apply", "cant open", "wont open",
        "open the app", "open the link", "open the email", "open an account", "problem", "problems", "issue",
        "issues", "error", "bug", "crash", "glitch", "stuck", "help", "help with", "support", "login",
        "log in", "password", "reset", "account", "balance", "invoice", "receipt", "confirmation", "checkout",
        "charged", "charged twice", "double charged", "payment failed", "declined", "warranty", "cancel",
        "cancel my order", "unsubscribe", "missing", "wrong item", "wrong size", "bought", "purchase",
        "purchased", "any update", "how do i", "where can i find my", "where do i find my", "update my",
        "change my", "card details", "cancel my subscription", "download", "troubleshoot", "fix",
        "pedido", "donde esta mi", "envio", "devolucion", "reembolso", "ayuda", "problema", "no funciona",
        "no llego", "roto", "garantia", "factura",
        "commande", "livraison", "remboursement", "aide", "probleme", "facture", "garantie",
        "bestellung", "lieferung", "ruckerstattung", "hilfe", "rechnung", "defekt", "kaputt",
        "encomenda", "entrega", "ajuda", "nao funciona", "fatura", "quebrado", "troca",
    ],
    "complaint": [
        "complaint", "complain", "complaining", "terrible", "awful", "horrible", "worst", "disappointed",
        "disappointing", "unacceptable", "not acceptable", "rude", "angry", "furious", "upset", "ridiculous",
        "scam", "not happy", "unhappy", "not satisfied", "dissatisfied", "useless", "very bad", "so bad",
        "bad service", "poor service", "poor quality", "bad experience", "bad review", "never again",
        "waste of money", "fed up", "frustrated", "frustrating", "disgusting", "lousy", "shameful",
        "outrageous", "appalling", "dreadful", "shocking", "pathetic", "unprofessional", "incompetent",
        "disrespectful", "nightmare", "disgusted", "didnt apologise", "didnt apologize", "no apology",
        "nobody answered", "no one answered", "nobody answers", "didnt care", "done with you",
        "how i was treated", "the way i was treated", "treated badly", "treated poorly", "ruined",
        "fell apart", "left a mess", "what a mess", "overcharged", "rip off", "ripoff", "ripped off",
        "messed up", "screwed up", "undercooked", "overcooked", "was burnt", "were burnt", "was dirty",
        "so dirty", "food poisoning",
        "queja", "reclamacion", "reclamo", "pesimo", "mal servicio", "decepcionado", "decepcionada",
        "inaceptable", "molesto", "molesta", "enfadado",
        "plainte", "inacceptable", "inadmissible", "decu", "decue", "decevant", "mauvais service", "fache",
        "beschwerde", "unverschamt", "enttauscht", "unzufrieden", "schlecht", "katastrophe",
        "reclamacao", "pessimo", "horrivel", "insatisfeito", "vergonha",
    ],
    "human_handoff": [
        "human", "a human", "real person", "actual person", "real people", "someone real", "real human",
        "not a bot", "a bot", "bot", "robot", "agent", "an agent", "live agent", "representative", "operator",
        "staff member", "member of staff", "supervisor", "the manager", "your manager", "a manager",
        "speak to someone", "talk to someone", "speak with someone", "talk with someone", "speak to a",
        "speak to an", "speak to the", "speak to your", "talk to a", "talk to an", "talk to the",
        "talk to your", "speak with", "talk with", "chat with someone", "someone i can talk to",
        "someone i can speak to", "someone who can help", "anyone from the team", "someone from the team",
        "anyone online", "someone online", "transfer me", "connect me", "put me through", "escalate",
        "live chat",
        "persona real", "humano", "hablar con", "hablar con alguien", "agente",
        "un humain", "conseiller", "parler a", "parler avec",
        "einem menschen", "echten menschen", "mit jemandem", "mit einem mitarbeiter", "einen mitarbeiter",
        "atendente", "pessoa real", "falar com", "falar com alguem",
    ],
}
# fmt: on

# Intents that win whenever they match at all: a visitor asking for a person or complaining must never be
# answered as if they had asked about prices.
PRIORITY_INTENTS: tuple[str, ...] = ("human_handoff", "complaint")
# Intents chosen only when nothing else matched ("hi, how much is it?" is a pricing question).
FALLBACK_INTENTS: tuple[str, ...] = ("greeting",)
# Tie-break among the remaining intents with equal scores; tenant-defined intents come after these. Intents
# with more specific vocabulary come first: a pricing question often names a bookable service ("the fee for
# a consultation") and a directions request may say "send me", not the other way round.
TIE_BREAK_ORDER: tuple[str, ...] = (
    "pricing",
    "booking",
    "opening_hours",
    "location",
    "support",
    "contact_request",
)

_APOSTROPHES = "'\u2019\u02bc\u2018`"
# English contractions are glued ("don't" -> "dont") so keywords work with or without the apostrophe; any
# other apostrophe separates words so French elision works ("l'adresse" -> "l adresse").
_CONTRACTION_RE = re.compile(rf"(?<=[^\W_])[{_APOSTROPHES}](?=(?:s|t|m|re|ve|ll|d)\b)")
_TOKEN_RE = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Split text into normalised word tokens (casefolded, accents and punctuation removed)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.casefold()
    text = _CONTRACTION_RE.sub("", text)
    return _TOKEN_RE.findall(text)


def normalize(text: str) -> str:
    """Return text as space-separated normalised tokens, the form every keyword comparison uses."""
    return " ".join(tokenize(text))


def contains_phrase(text: str, phrases: Iterable[str]) -> list[str]:
    """Return the phrases (as given, in given order, without duplicates) occurring in text as whole words."""
    haystack = f" {normalize(text)} "
    found: list[str] = []
    seen: set[str] = set()
    for phrase in phrases:
        needle = normalize(phrase)
        if needle and needle not in seen and f" {needle} " in haystack:
            seen.add(needle)
            found.append(phrase)
    return found


@dataclass(frozen=True, slots=True)
class IntentResult:
    """The outcome of classifying one message.

    ``matched`` holds the chosen intent's keywords (as configured) in order of appearance; ``scores`` maps
    every intent that matched anything to its number of distinct matched keywords.
    """

    intent: str
    matched: tuple[str, ...]
    scores: dict[str, int]


class IntentClassifier:
    """A keyword set compiled into a token lookup table; build once per configuration, classify many times."""

    __slots__ = ("_lexicon", "_order", "_phrase_lengths")

    def __init__(
        self,
        lexicon: Mapping[str, tuple[tuple[str, str], ...]],
        phrase_lengths: Mapping[str, tuple[int, ...]],
        order: Mapping[str, int],
    ) -> None:
        """Store a compiled lexicon; use :meth:`from_keywords` rather than calling this directly."""
        self._lexicon = lexicon
        self._phrase_lengths = phrase_lengths
        self._order = order

    @classmethod
    def from_keywords(cls, mapping: Mapping[str, Iterable[str]]) -> IntentClassifier:
        """Compile a complete ``{intent: [keyword, ...]}`` mapping; effective_keywords adds the defaults."""
        lexicon: dict[str, list[tuple[str, str]]] = {}
        lengths: dict[str, set[int]] = {}
        for intent, keywords in mapping.items():
            _check_intent(intent)
            if isinstance(keywords, str):
                raise TypeError(f"keywords for {intent!r} must be a list of strings, not a string")
            for keyword in keywords:
                tokens = tokenize(keyword)
                if not tokens:
                    continue
                key = " ".join(tokens)
                entries = lexicon.setdefault(key, [])
                # The first spelling of a keyword within an intent is the one IntentResult.matched reports.
                if all(existing != intent for existing, _ in entries):
                    entries.append((intent, keyword))
                if len(tokens) > 1:
                    lengths.setdefault(tokens[0], set()).add(len(tokens))
        # Rank: priority intents first, then the fixed tie-break order, then tenant-defined intents as given,
        # then the fallback intents.
        ranked = [i for i in PRIORITY_INTENTS if i in mapping]
        ranked += [i for i in TIE_BREAK_ORDER if i in mapping]
        ranked += [i for i in mapping if i not in ranked and i not in FALLBACK_INTENTS]
        ranked += [i for i in FALLBACK_INTENTS if i in mapping]
        return cls(
            lexicon=MappingProxyType({k: tuple(v) for k, v in lexicon.items()}),
            # Longest first, so the longest phrase starting at a position wins.
            phrase_lengths=MappingProxyType({k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()}),
            order=MappingProxyType({intent: rank for rank, intent in enumerate(ranked)}),
        )

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents this classifier can return besides "other", in tie-break order."""
        return tuple(self._order)

    def classify(self, text: str) -> IntentResult:
        """Return the message's intent and the keywords that decided it.

        Tokens are scanned left to right; at each position the longest configured phrase wins and its words
        are consumed, so "where is my order" counts for support, not also "where" for location. An intent's
        score is its number of distinct matched keywords. The chosen intent is:

        1. human_handoff if it matched, else complaint if it matched (they outrank everything);
        2. otherwise the highest score among the other intents, ties broken by TIE_BREAK_ORDER and then by the
           order tenant-defined intents appear in the configuration;
        3. greeting only when nothing else matched;
        4. "other", with no matched keywords, when no keyword matched.
        """
        tokens = tokenize(text)
        lexicon = self._lexicon
        phrase_lengths = self._phrase_lengths
        hits: dict[str, list[str]] = {}
        i, n = 0, len(tokens)
        while i < n:
            token = tokens[i]
            step = 1
            entries = None
            for length in phrase_lengths.get(token, ()):
                if i + length <= n:
                    entries = lexicon.get(" ".join(tokens[i : i + length]))
                    if entries is not None:
                        step = length
                        break
            if entries is None:
                entries = lexicon.get(token)
            if entries is not None:
                for intent, keyword in entries:
                    found = hits.setdefault(intent, [])
                    if keyword not in found:
                        found.append(keyword)
            i += step
        if not hits:
            return IntentResult(intent=OTHER, matched=(), scores={})
        order = self._order
        best = min(hits, key=lambda intent: _rank(intent, len(hits[intent]), order[intent]))
        return IntentResult(
            intent=best,
            matched=tuple(hits[best]),
            scores={intent: len(found) for intent, found in hits.items()},
        )


def _rank(intent: str, score: int, position: int) -> tuple[int, int, int]:
    """Sort key for choosing among matched intents: tier, then more keywords, then fixed position."""
    if intent in PRIORITY_INTENTS:
        tier = 0
    elif intent in FALLBACK_INTENTS:
        tier = 2
    else:
        tier = 1
    # Within the priority tier the fixed order decides, so a handoff request always beats a complaint.
    return (tier, 0 if tier == 0 else -score, position)


def _check_intent(intent: object) -> None:
    """Reject intent codes that cannot be stored or returned meaningfully."""
    if not isinstance(intent, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", intent):
        raise ValueError(f"intent codes are lowercase identifiers, got {intent!r}")
    if intent == OTHER:
        raise ValueError(f"{OTHER!r} is what no match returns; it cannot have keywords")


def effective_keywords(overrides: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """Lay a tenant's ``{intent: keywords}`` overrides over the defaults.

    An intent present in ``overrides`` uses exactly that list (the dashboard edits the full list, so adding
    and removing keywords are both just saving the list; an empty list disables the intent). Intents absent
    from ``overrides`` keep their default keywords; new intent codes are added.
    """
    merged = {intent: list(keywords) for intent, keywords in DEFAULT_INTENT_KEYWORDS.items()}
    for intent, keywords in (overrides or {}).items():
        if isinstance(keywords, str):
            raise TypeError(f"keywords for {intent!r} must be a list of strings, not a string")
        merged[intent] = list(keywords)
    return {intent: keywords for intent, keywords in merged.items() if keywords}


@lru_cache(maxsize=1)
def default_classifier() -> IntentClassifier:
    """Return the classifier for the default keywords, compiled once per process."""
    return IntentClassifier.from_keywords(DEFAULT_INTENT_KEYWORDS)


_CACHE_SIZE = 512
_cache: OrderedDict[Hashable, IntentClassifier] = OrderedDict()
_cache_lock = threading.Lock()


def classifier_for(mapping_key: Hashable, overrides: Mapping[str, Iterable[str]] | None) -> IntentClassifier:
    """Return the compiled classifier for a tenant's keyword overrides, building it once per key.

    ``mapping_key`` must change whenever ``overrides`` changes, e.g. ``(schema_name, config.updated_at)``;
    a key seen before returns its cached classifier without looking at ``overrides``.
    """
    with _cache_lock:
        classifier = _cache.get(mapping_key)
        if classifier is not None:
            _cache.move_to_end(mapping_key)
            return classifier
    # Compiled outside the lock: two threads racing on a new key both build it, which is harmless.
    classifier = IntentClassifier.from_keywords(effective_keywords(overrides))
    with _cache_lock:
        _cache[mapping_key] = classifier
        _cache.move_to_end(mapping_key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return classifier


def classify(text: str, overrides: Mapping[str, Iterable[str]] | None = None) -> IntentResult:
    """Classify one message with the defaults, or with overrides compiled uncached (tests, one-off use)."""
    if overrides is None:
        return default_classifier().classify(text)
    return IntentClassifier.from_keywords(effective_keywords(overrides)).classify(text)
