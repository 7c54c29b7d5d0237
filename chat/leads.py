"""Lead capture: pull a visitor's name, email and phone out of free chat text.

This module holds the pure extraction part (no Django), so it can be tested and reused alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

# Strict enough to find candidates in running text; email_validator decides what is actually valid.
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)

# A number right after one of these words is a reference the visitor is quoting, not a way to reach them.
_REFERENCE_BEFORE_RE = re.compile(
    r"\b(?:order|invoice|ref|reference|ticket|tracking|account|acct|booking|confirmation|case|item|sku|"
    r"pedido|factura|commande|facture|bestellung|rechnung|encomenda|fatura)"
    r"(?:\s*(?:no\.?|nr\.?|num\.?|number|n[º°o]\.?|id|is|was)\b\.?){0,2}\s*[#:]?\s*$",
    re.IGNORECASE,
)
_REFERENCE_WINDOW = 40

# Straight or typographic apostrophe, as phones autocorrect "I'm" to "I\u2019m".
_APOS = "['\u2019]"
# "my name is …" and friends say outright that a name follows, so lowercase input is accepted ("ana lopez").
_EXPLICIT_NAME_RE = re.compile(
    rf"\b(?:my\s+name\s+is|my\s+name{_APOS}s|me\s+llamo|mi\s+nombre\s+es|je\s+m{_APOS}\s*appelle|mon\s+nom\s+est|"
    r"ich\s+hei(?:ß|ss)e|mein\s+name\s+ist|me\s+chamo|meu\s+nome\s+[ée])\s+",
    re.IGNORECASE,
)
# "Name: Ana" is explicit too, unless it labels something else ("Company name: Acme").
_NAME_LABEL_RE = re.compile(r"\b(?:full\s+|first\s+)?name\s*[:=]\s*", re.IGNORECASE)
# "I'm …" / "this is …" are just as often followed by "interested" or "Acme support", so only capitalised
# words that are not stopwords count, and a long capitalised run is taken for a title, not a name.
_IMPLIED_NAME_RE = re.compile(rf"\b(?:i{_APOS}m|i\s+am|this\s+is|soy|je\s+suis)\s+", re.IGNORECASE)
_NAME_TRIGGERS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (_EXPLICIT_NAME_RE, True),
    (_NAME_LABEL_RE, True),
    (_IMPLIED_NAME_RE, False),
)

_NAME_WORD_RE = re.compile(rf"[ \t]*([^\W\d_]+(?:(?:{_APOS}|-)[^\W\d_]+)*)")
_TITLE_RE = re.compile(r"(?:mr|mrs|ms|miss|dr|sr|sra|srta|mme|herr|frau)\.?\s+", re.IGNORECASE)
_NAME_PART_START_RE = re.compile(rf"(?:^|(?<={_APOS})|(?<=-))[^\W\d_]")
_MAX_NAME_WORDS = 3

# The word lists below keep several words per line; the formatter would put each on its own line.
# fmt: off
# Words after which "name:" introduces something other than the visitor's name.
_NOT_PERSON_NAME_LABELS = frozenset({
    "company", "business", "brand", "product", "store", "shop", "domain", "file", "user", "pet", "dog",
    "cat", "restaurant", "event", "project", "street", "team",
})
# Lowercase particles allowed between name words ("Ana de la Cruz", "Ludwig van Beethoven").
_NAME_PARTICLES = frozenset({
    "de", "del", "la", "las", "los", "da", "das", "do", "dos", "di", "du", "van", "von", "der", "den", "le",
})
# Words that end a name ("I'm Ana and…") or show there was none ("I'm interested", "this is urgent").
_NAME_STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "so", "as", "at", "by", "for", "from", "in", "into", "of",
    "on", "to", "with", "without", "about", "after", "before", "here", "there", "this", "that", "these",
    "those", "it", "its", "i", "im", "me", "my", "mine", "you", "your", "we", "our", "they", "their", "he",
    "she", "him", "her", "us", "them", "is", "am", "are", "was", "were", "be", "been", "being", "do", "does",
    "did", "have", "has", "had", "will", "would", "can", "could", "should", "may", "might", "must", "not",
    "no", "yes", "yeah", "yep", "nope", "ok", "okay", "sure", "just", "also", "still", "very", "really",
    "quite", "too", "only", "even", "already", "again", "what", "when", "where", "who", "why", "how",
    "which", "whose", "hi", "hello", "hey", "thanks", "thank", "please", "regarding", "re", "interested",
    "looking", "trying", "wondering", "hoping", "planning", "calling", "writing", "asking", "emailing",
    "texting", "messaging", "going", "coming", "leaving", "thinking", "waiting", "searching", "checking",
    "contacting", "reaching", "following", "getting", "having", "glad", "happy", "sorry", "sad", "afraid",
    "unable", "able", "new", "back", "done", "ready", "fine", "good", "great", "well", "busy", "free",
    "available", "curious", "confused", "frustrated", "disappointed", "upset", "annoyed", "angry", "worried",
    "concerned", "unsure", "certain", "urgent", "important", "currently", "actually", "probably",
    "definitely", "booked", "booking", "ordered", "owner", "customer", "client", "member", "patient", "mr",
    "mrs", "ms", "dr",
    # Function words of the other languages whose introductions are recognised.
    "y", "e", "o", "el", "los", "las", "un", "una", "muy", "aqui", "de", "del", "que", "para", "por", "con",
    "quiero", "necesito", "tengo", "busco", "estoy", "interesado", "interesada", "buscando", "cliente", "et",
    "je", "le", "les", "pour", "avec", "und", "ich", "bin", "der", "die", "das", "eu", "quero", "preciso",
    "com",
})
# fmt: on


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """Contact details found in a message; each field is None when not found. Phone is E.164."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Return only the fields that were found, e.g. ``{"email": "ana@example.com"}``."""
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name))}

    def merge(self, other: ContactInfo) -> ContactInfo:
        """Combine with details from a newer message: the newer non-empty values win."""
        return replace(self, **other.as_dict())

    def __bool__(self) -> bool:
        """True when at least one detail was found."""
        return bool(self.name or self.email or self.phone)


def extract_contact(text: str, default_region: str = "US") -> ContactInfo:
    """Find the first name, email and phone number in a chat message.

    ``default_region`` (ISO 3166 alpha-2, e.g. the tenant's country) is how numbers written without a
    country code are read: "612 34 56 78" is a Spanish mobile only with ``default_region="ES"``.
    """
    email, email_spans = _extract_email(text)
    # Blank the emails out so their digits can never be read as a phone number.
    masked = text
    for start, end in email_spans:
        masked = masked[:start] + " " * (end - start) + masked[end:]
    return ContactInfo(
        name=extract_name(masked),
        email=email,
        phone=extract_phone(masked, default_region=default_region),
    )


def extract_email(text: str) -> str | None:
    """Return the first valid email address in text, domain lowercased, or None."""
    return _extract_email(text)[0]


def _extract_email(text: str) -> tuple[str | None, list[tuple[int, int]]]:
    """Return the first valid email and the spans of every email-looking candidate."""
    found: str | None = None
    spans: list[tuple[int, int]] = []
    for match in _EMAIL_RE.finditer(text):
        spans.append(match.span())
        if found is None:
            try:
                found = validate_email(match.group(), check_deliverability=False).normalized
            except EmailNotValidError:
                continue
    return found, spans


def extract_phone(text: str, default_region: str = "US") -> str | None:
    """Return the first valid phone number in text as E.164, or None.

    Uses libphonenumber's matcher at VALID leniency, which already rejects dates, times, prices and numbers
    that are not valid for their region; numbers quoted as an order, invoice or ticket reference are skipped.
    """
    region = default_region.upper()
    plus = any(sign in text for sign in _PLUS_SIGNS)
    if sum(map(str.isdigit, text)) < _fewest_phone_digits(region, plus=plus):
        return None  # most chat messages: libphonenumber's matcher (costly) could find nothing valid
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        before = text[max(0, match.start - _REFERENCE_WINDOW) : match.start]
        if _REFERENCE_BEFORE_RE.search(before):
            continue
        return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


# What libphonenumber reads as the plus of a number written internationally.
_PLUS_SIGNS = "+\uff0b"


@lru_cache(maxsize=64)
def _fewest_phone_digits(region: str, *, plus: bool) -> int:
    """The fewest digits a valid number (libphonenumber's metadata) has when read from text in `region`: written
    internationally, a country code and that country's shortest number, after a plus or else after the
    region's international prefix (at least one digit: "00", "011"...); nationally, the shortest number of
    the region's country code. A six-digit order number is no phone number in text without a plus (in the
    US)."""
    shortest: dict[int, int] = {}
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        for name in regions:
            metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, name)
            general = metadata.general_desc if metadata else None
            lengths = [n for n in (general.possible_length if general else ()) if n > 0]
            if lengths:
                shortest[code] = min(shortest.get(code, min(lengths)), min(lengths))
    international = min(len(str(code)) + length for code, length in shortest.items())
    metadata = PhoneMetadata.metadata_for_region(region)
    # A national prefix transform rule may add digits (Jersey's "045021" is +44 1534 045021): no sharper bound.
    if not plus and metadata is not None and metadata.national_prefix_transform_rule is None:
        international += 1
    return min(international, shortest.get(phonenumbers.country_code_for_region(region), international))


def extract_name(text: str) -> str | None:
    """Return the name a visitor introduces themselves with ("my name is Ana Pérez", "I'm Ana"), or None."""
    best: tuple[int, str] | None = None
    for pattern, explicit in _NAME_TRIGGERS:
        for match in pattern.finditer(text):
            # The earliest introduction in the message wins, whichever pattern found it.
            if best is not None and match.start() >= best[0]:
                break
            if pattern is _NAME_LABEL_RE and _word_before(text, match.start()) in _NOT_PERSON_NAME_LABELS:
                continue
            name = _read_name(text, match.end(), explicit=explicit)
            if name:
                best = (match.start(), name)
                break
    return best[1] if best else None


def _word_before(text: str, pos: int) -> str:
    """Return the lowercased word immediately before pos, or an empty string."""
    found = re.search(r"([^\W\d_]+)\s*$", text[:pos])
    return found.group(1).lower() if found else ""


def _read_name(text: str, pos: int, *, explicit: bool) -> str | None:
    """Read up to three name words starting at pos; None when what follows is not a name."""
    title = _TITLE_RE.match(text, pos)
    if title:
        pos = title.end()
    words: list[str] = []
    pending_particles: list[str] = []
    count = 0
    while True:
        match = _NAME_WORD_RE.match(text, pos)
        if not match:
            break
        word = match.group(1)
        lowered = word.casefold()
        if words and lowered in _NAME_PARTICLES and word.islower():
            pending_particles.append(word)
            pos = match.end()
            continue
        if lowered in _NAME_STOPWORDS or len(word) > 30:
            break
        # After "my name is" a lowercase name is accepted, but only if the visitor types the whole name in
        # lowercase: "me llamo Ana y quiero…" must stop at "y".
        lowercase_ok = explicit and (not words or words[0].islower())
        if not word[0].isupper() and not (lowercase_ok and word.islower()):
            break
        count += 1
        if count > _MAX_NAME_WORDS:
            if not explicit:
                # "This is Acme Home Cleaning Services" is a business introducing itself.
                return None
            break
        words.extend(pending_particles)
        pending_particles = []
        words.append(word)
        pos = match.end()
    return " ".join(word if word in _NAME_PARTICLES else _capitalise(word) for word in words) or None


def _capitalise(word: str) -> str:
    """Title-case an all-lowercase or all-uppercase name word, keep mixed case ("McDonald") as typed."""
    if word.islower() or (word.isupper() and len(word) > 1):
        # Each part after a hyphen or apostrophe is capitalised too: "o'brien" -> "O'Brien".
        return _NAME_PART_START_RE.sub(lambda m: m.group().upper(), word.lower())
    return word


def redact_contact_details(text: str, *, known: list[str] | tuple[str, ...] = (), default_region: str = "US") -> str:
    """`text` without contact details: emails, phone numbers and the `known` values (a visitor's name, email
    and phone) replaced by placeholders. For copies kept outside the tenant's schema (staff-wide previews)."""
    for value in sorted({v.strip() for v in known if v and len(v.strip()) >= 2}, key=len, reverse=True):
        text = re.sub(re.escape(value), "[contact]", text, flags=re.IGNORECASE)
    text = _EMAIL_RE.sub("[email]", text)
    region = default_region.upper()
    matches = list(phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE))
    for match in reversed(matches):
        text = text[: match.start] + "[phone]" + text[match.end :]
    return text
