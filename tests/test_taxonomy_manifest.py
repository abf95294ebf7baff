from __future__ import annotations

import pytest
import yaml

from registry.exceptions import ManifestError
from registry.model.manifest import parse_manifest
from registry.model.taxonomy import Term, covers, default_taxonomy

from .conftest import EXAMPLE_MANIFEST


def test_covers_is_hierarchy_aware() -> None:
    assert covers("user.contact", "user.contact.email")
    assert covers("user.contact", "user.contact.address.city")
    assert covers("user.contact", "user.contact")
    assert not covers("user.contact", "user.contacts")
    assert not covers("user.contact.email", "user.contact")


def test_default_taxonomy_comes_from_fideslang() -> None:
    t = default_taxonomy()
    assert t.has("data_categories", "user.contact.email")
    assert t.has("data_uses", "marketing.communications.email")
    assert t.has("data_subjects", "visitor")
    assert t.descendants("data_categories", "user.contact.address") == [
        "user.contact.address", "user.contact.address.city", "user.contact.address.country",
        "user.contact.address.postal_code", "user.contact.address.state", "user.contact.address.street",
    ]


def test_extension_needs_a_known_parent() -> None:
    t = default_taxonomy()
    extended = t.extend({"data_categories": [Term("user.workplace.specialty", "user.workplace", "Medical specialty")]})
    assert extended.name("data_categories", "user.workplace.specialty") == "Medical specialty"
    assert not t.has("data_categories", "user.workplace.specialty")  # the default is not mutated
    with pytest.raises(ValueError, match="user.nowhere"):
        t.extend({"data_categories": [Term("user.nowhere.x", "user.nowhere", "x")]})


def _example() -> dict:
    return yaml.safe_load(EXAMPLE_MANIFEST.read_text())


def _fails(document: dict) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        parse_manifest(yaml.safe_dump(document))
    return info.value


def test_example_manifest_is_valid(manifest) -> None:  # type: ignore[no-untyped-def]
    assert manifest.controller.country == "US"
    assert len(manifest.recipients) == 18 and len(manifest.activities) == 13
    assert manifest.processor_chain("mandrill-gcp") == ["mailchimp", "mandrill", "mandrill-gcp"]
    assert manifest.taxonomy_view().has("data_categories", "user.device.advertising_id")


def test_bad_enum_names_the_path() -> None:
    doc = _example()
    doc["activities"][3]["legal_basis"] = "because"
    error = _fails(doc)
    assert error.path == "activities[3].legal_basis"
    assert "must be one of" in str(error)


def test_missing_field_names_the_path() -> None:
    doc = _example()
    del doc["recipients"][2]["country"]
    assert _fails(doc).path == "recipients[2].country"


def test_unknown_taxonomy_key_names_the_path() -> None:
    doc = _example()
    doc["activities"][1]["data_categories"].append("user.telepathy")
    error = _fails(doc)
    assert error.path == "activities[1].data_categories[2]"
    assert "user.telepathy" in str(error)


def test_unknown_recipient_in_activity() -> None:
    doc = _example()
    doc["activities"][0]["recipients"] = ["nobody"]
    assert _fails(doc).path == "activities[0].recipients[0]"


def test_processor_of_must_exist_and_not_cycle() -> None:
    doc = _example()
    doc["recipients"][0]["processor_of"] = "ghost"
    assert _fails(doc).path == "recipients[0].processor_of"
    doc = _example()
    keys = [r["key"] for r in doc["recipients"]]
    doc["recipients"][keys.index("mailchimp")]["processor_of"] = "mandrill-gcp"
    error = _fails(doc)
    assert "cycle" in str(error)


def test_duplicate_keys_are_refused() -> None:
    doc = _example()
    doc["recipients"].append(dict(doc["recipients"][0]))
    assert _fails(doc).path == f"recipients[{len(doc['recipients']) - 1}].key"


def test_invalid_yaml_is_an_input_error() -> None:
    with pytest.raises(ManifestError, match="YAML"):
        parse_manifest("controller: [unclosed")


def test_the_taxonomy_data_file_is_fideslangs_default_taxonomy() -> None:
    """The registry reads the default taxonomy from its data file (fast start-up); it must be the
    installed fideslang's, term for term (``python -m registry.model.taxonomy`` rewrites it)."""
    import json

    from registry.model.taxonomy import DEFAULT_TAXONOMY_FILE, fideslang_taxonomy

    assert json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8")) == fideslang_taxonomy()
