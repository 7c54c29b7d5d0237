"""Lead extraction from chat text: emails, phone numbers, names and how they combine."""

from __future__ import annotations

import phonenumbers
import pytest

from chat.leads import ContactInfo, extract_contact, extract_email, extract_name, extract_phone, redact_contact_details


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana@example.com", {"email": "ana@example.com"}),
        ("write to Ana.Perez@Example.COM please", {"email": "Ana.Perez@example.com"}),
        ("contact: bob.smith+leads@mail.co.uk.", {"email": "bob.smith+leads@mail.co.uk"}),
        ("(jo_e@sub.domain.io)", {"email": "jo_e@sub.domain.io"}),
        ("mail me at a1234567890@gmail.com", {"email": "a1234567890@gmail.com"}),
        ("first ana@example.com then bob@example.org", {"email": "ana@example.com"}),
        # Not emails.
        ("ana@@example.com or ana@example", {}),
        ("ping @ana on twitter", {}),
        ("ana.@example.com", {}),
    ],
)
def test_emails(text: str, expected: dict[str, str]) -> None:
    assert extract_contact(text).as_dict() == expected


@pytest.mark.parametrize(
    ("text", "region", "phone"),
    [
        ("call me at (415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("my cell 4155552671 thanks", "US", "+14155552671"),
        ("+1 415 555 2671", "GB", "+14155552671"),
        ("1-800-555-0199", "US", "+18005550199"),
        ("tel: 212 555 0100 ext. 12", "US", "+12125550100"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("mobile 07911 123456", "GB", "+447911123456"),
        ("llámame al 612 34 56 78", "ES", "+34612345678"),
        ("mi fijo es 912 345 678", "es", "+34912345678"),
        ("+34 612 345 678", "US", "+34612345678"),
        ("0044 20 7946 0958", "ES", "+442079460958"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_phones(text: str, region: str, phone: str) -> None:
    assert extract_contact(text, default_region=region).as_dict() == {"phone": phone}


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("see you on 12/05/2024 at 10:30", "US"),
        ("booked for 2024-05-12", "US"),
        ("between 10:30-11:30 tomorrow", "US"),
        ("it was $1,299.99 in the shop", "US"),
        ("cuesta 1.299,00 €", "ES"),
        ("order 123456", "US"),
        ("order #2015550123 has not arrived", "US"),
        ("my order number is 4155552671", "US"),
        ("Order No. 4155552671", "US"),
        ("invoice: 2125550100", "US"),
        ("booking ref 4155552671", "US"),
        ("pedido nº 612345678", "ES"),
        ("Bestellung 12345678", "DE"),
        ("zip 94103", "US"),
        ("postcode SW1A 1AA", "GB"),
        ("555-123-4567", "US"),
        ("12345678", "US"),
    ],
)
def test_not_phones(text: str, region: str) -> None:
    assert extract_contact(text, default_region=region).as_dict() == {}


def test_reference_number_is_skipped_but_a_later_phone_is_found() -> None:
    text = "order 2015550123 never came, call me on 212 555 0100"

    assert extract_contact(text).as_dict() == {"phone": "+12125550100"}


def test_digits_inside_an_email_are_not_a_phone() -> None:
    assert extract_contact("4155552671@example.com").as_dict() == {"email": "4155552671@example.com"}


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("my name is Ana Pérez", "Ana Pérez"),
        ("Hi, my name's Bob", "Bob"),
        ("I'm Ana", "Ana"),
        ("I\u2019m Ana O\u2019Brien", "Ana O\u2019Brien"),
        ("I am Jean-Luc Picard", "Jean-Luc Picard"),
        ("this is Ana from Acme", "Ana"),
        ("Hi, this is Dr. Smith", "Smith"),
        ("Name: Ana Pérez", "Ana Pérez"),
        ("full name: Ana", "Ana"),
        ("me llamo Ana y quiero una cita", "Ana"),
        ("Hola, soy María", "María"),
        ("mi nombre es Lucía Gómez", "Lucía Gómez"),
        ("je m'appelle Marie Dubois", "Marie Dubois"),
        ("ich heiße Jonas", "Jonas"),
        # An explicit introduction accepts a name typed in lowercase (or capitals) and tidies it.
        ("my name is john smith", "John Smith"),
        ("my name is sean o'brien and i need help", "Sean O'Brien"),
        ("MY NAME IS ANNE-MARIE DUPONT", "Anne-Marie Dupont"),
        ("my name is ana de la cruz", "Ana de la Cruz"),
        # At most three words.
        ("my name is Ana Maria Lopez Garcia", "Ana Maria Lopez"),
    ],
)
def test_names(text: str, name: str) -> None:
    assert extract_contact(text).as_dict() == {"name": name}


@pytest.mark.parametrize(
    "text",
    [
        "I'm interested in your services",
        "I'm looking for a quote",
        "I'm Looking for a quote",
        "I am not sure yet",
        "Hi! I'm in New York",
        "this is urgent",
        "This is Acme Home Cleaning Services",
        "Company name: Acme Ltd",
        "username: bob",
        "I'm ana",
        "soy cliente",
        "my name is",
    ],
)
def test_not_names(text: str) -> None:
    assert extract_name(text) is None


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        (
            "Hi, my name is Ana Pérez, email Ana.Perez@Example.COM, phone (415) 555-2671",
            "US",
            {"name": "Ana Pérez", "email": "Ana.Perez@example.com", "phone": "+14155552671"},
        ),
        (
            "Soy María, mi teléfono es 612 34 56 78 y mi correo maria@correo.es",
            "ES",
            {"name": "María", "email": "maria@correo.es", "phone": "+34612345678"},
        ),
        (
            "This is Tom from Acme Ltd (tom@acme.co.uk, +44 20 7946 0958), re: order 20155501",
            "GB",
            {"name": "Tom", "email": "tom@acme.co.uk", "phone": "+442079460958"},
        ),
        (
            "name: lee, lee@example.com / 020 7946 0958",
            "GB",
            {"name": "Lee", "email": "lee@example.com", "phone": "+442079460958"},
        ),
    ],
)
def test_all_three(text: str, region: str, expected: dict[str, str]) -> None:
    assert extract_contact(text, default_region=region).as_dict() == expected


def test_nothing_found() -> None:
    info = extract_contact("Do you have vegan options? It's $12 for 2 people on 3/14.")

    assert info == ContactInfo()
    assert info.as_dict() == {}
    assert not info


def test_merge_prefers_newer_non_empty_values() -> None:
    older = ContactInfo(name="Ana", email="old@example.com")
    newer = ContactInfo(email="new@example.com", phone="+14155552671")

    assert older.merge(newer).as_dict() == {
        "name": "Ana",
        "email": "new@example.com",
        "phone": "+14155552671",
    }
    assert newer.merge(ContactInfo()) == newer


def test_single_field_helpers() -> None:
    assert extract_email("x ana@example.com y") == "ana@example.com"
    assert extract_phone("612 34 56 78", default_region="ES") == "+34612345678"
    assert extract_name("I'm Ana") == "Ana"


def test_redaction_removes_emails_phones_and_the_known_details():
    text = (
        "Netia handed this conversation to your team (reason: complaint).\n"
        "Contact: name Ana Pérez, email ana@example.com, phone +14155552671\n"
        "Last visitor message: call me on (415) 555-2671 or write to a.perez@work.example, ANA PÉREZ here"
    )

    redacted = redact_contact_details(text, known=["Ana Pérez", "ana@example.com", "+14155552671"])

    assert redacted == (
        "Netia handed this conversation to your team (reason: complaint).\n"
        "Contact: name [contact], email [contact], phone [contact]\n"
        "Last visitor message: call me on [phone] or write to [email], [contact] here"
    )


@pytest.mark.parametrize("region", ["US", "GB", "AT", "NU", "ES", "ZZ", "JE", "SM"])
@pytest.mark.parametrize(
    "text",
    [
        "Order (1017)?",
        "+43 1234",
        "+43 12345",
        "When are you open (100001)?",
        "+43 123456",
        "011 44 20 7946 0958",
        "00 43 1 234567",
        # Jersey reads a local six-digit number as +44 1534 …, San Marino adds 0549.
        "tel: 045021",
        "at 096304.",
        "call 806 161",
        "+683 4002",
        "+290 5123",
        "ring 4002",
        "01 2345",
        "+800 1234 5678",
        "12345",
        "1234567",
        "call \u0664\u0661\u0665 \u0665\u0665\u0665 \u0662\u0666\u0667\u0661",
        # Arabic-Indic and fullwidth digits count as digits too.
        "+\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11",
    ],
)
def test_texts_with_too_few_digits_skip_the_matcher_and_miss_nothing(text: str, region: str) -> None:
    # extract_phone skips libphonenumber's matcher below the fewest digits any valid number has: whatever the
    # text and region, it finds what the matcher finds.
    found = [
        phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    ]

    assert extract_phone(text, default_region=region) == (found[0] if found else None)


def test_six_digits_without_a_plus_skip_the_matcher_where_no_number_is_that_short(monkeypatch) -> None:
    # A number read nationally has the region's shortest length (ten digits in the US); read internationally
    # without a plus, an international prefix (a digit at least) comes before the country code.
    def matcher(*args: object, **kwargs: object) -> None:
        raise AssertionError("libphonenumber's matcher was consulted")

    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", matcher)

    assert extract_phone("When are you open on Saturday (100001)?", default_region="US") is None
    assert extract_contact("order 123456 has not arrived", default_region="ES") == ContactInfo()
