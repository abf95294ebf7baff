"""Fides interchange (contract §6): `import fides` reads fideslang 1.x and 3.x resource files
(tests/fixtures/fides, modelled on Fides' demo resources) into a manifest that declares, mapped
as the README's table says, every unmapped key reported; `export fides` writes 3.x resources that
fideslang's own models accept; and import(export(m)) declares the same manifest for generated m."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml
from fideslang.models import DataCategory, DataSubject, DataUse, Organization, System
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from registry.cli import app
from registry.exceptions import InputError
from registry.intake.ingest import Ingestor
from registry.interchange.fides import RESOURCE_KINDS, import_fides, manifest_yaml
from registry.interchange.fides_export import REVIEW_TAG, fides_resources
from registry.model.declarations import declare
from registry.model.history import KeyedChanges, diff_manifests
from registry.model.manifest import Manifest, manifest_from_document, parse_manifest
from registry.model.taxonomy import default_taxonomy

from .helpers import record, transfer

FIXTURES = Path(__file__).parent / "fixtures" / "fides"


def _canonical(m: Manifest) -> dict[str, Any]:
    """The manifest as a set of declarations: list order carries no meaning (README)."""
    doc = m.model_dump()
    for a in doc["activities"]:
        for k in ("purposes", "recipients", "sources", "data_categories", "data_subjects"):
            a[k] = sorted(a[k])
    doc["activities"].sort(key=lambda a: a["key"])
    doc["recipients"].sort(key=lambda r: r["key"])
    doc["taxonomy"] = {k: sorted((e.model_dump() if hasattr(e, "model_dump") else e for e in v), key=lambda e: e["key"])
                       for k, v in doc["taxonomy"].items() if v}
    return doc


def _unmapped(paths: list[Path]) -> dict[str, str]:
    return {u.path.replace(str(FIXTURES) + "/", ""): u.reason for u in import_fides(paths).unmapped}


def test_fideslang_1x_files_map_as_documented() -> None:
    imported = import_fides([FIXTURES / "v1"])
    m = imported.manifest
    assert parse_manifest(manifest_yaml(m)) == m  # the written manifest declares
    c = m.controller
    assert (c.name, c.country, c.dpo) == ("Demo Company Inc.", "US", "DataPro Tection, dpo@demo-company.example")
    assert c.contact == "controller@demo-company.example; +1 555 555 0100"
    assert c.representative == "Demo Company EU B.V., Keizersgracht 1, Amsterdam, Netherlands"
    recipients = {r.key: (r.role, r.country, r.transfer_mechanism, r.processor_of, r.service) for r in m.recipients}
    assert recipients == {
        "google_analytics": ("processor", "US", None, None, "analytics"),  # data_responsibility_title Processor, USA → US
        "stripe": ("processor", "US", None, None, "other"),  # first of two third_country_transfers
        "stripe_aws": ("sub_processor", "US", None, "stripe", "other"),  # Sub-Processor under the system whose egress names it
        "partner_clinic": ("joint_controller", "CH", None, None, "communications"),  # Controller + joint_controller, CHE → CH
    }
    assert "demo_web_app" not in recipients  # the controller's own service: a source
    activities = {a.key: a for a in m.activities}
    web = activities["analyze-customer-behaviour-for-improvements"]
    assert (web.purposes, web.legal_basis, web.recipients, web.sources) == (
        ["functional.service.improve"], "legitimate_interests", ["google_analytics"], ["//services/demo_web_app"])
    assert web.data_categories == ["user.device.cookie_id", "user.device.ip_address", "user.behavior.browsing_history"]
    pay = activities["payments"]  # declared on the recipient's system; the source from its ingress
    assert (pay.purposes, pay.legal_basis, pay.recipients, pay.sources) == (["essential.service"], "contract", ["stripe"],
                                                                           ["//services/demo_web_app"])
    assert pay.data_categories == ["user.financial", "user.name", "user.loyalty_id"]  # the extension, renamed for 3.x
    care = activities["shared-care"]
    assert (care.purposes, care.legal_basis, care.data_subjects) == (["essential.service.operations.support"], "vital_interests",
                                                                    ["patient", "caregiver"])
    assert {k: [e.key for e in v] for k, v in m.taxonomy.items()} == {"data_categories": ["user.loyalty_id"], "data_subjects": ["caregiver"]}


def test_fideslang_1x_legacy_keys_are_reported_with_their_reason() -> None:
    unmapped = _unmapped([FIXTURES / "v1"])
    assert unmapped == {
        "v1/demo_organization.yml:organization[0].description": "no manifest field holds it",
        "v1/demo_organization.yml:organization[0].security_policy": "the manifest has no security-policy link",
        "v1/demo_system.yml:system[0].description": "no manifest field holds it",
        "v1/demo_system.yml:system[0].administrating_department": "the manifest has no departments",
        "v1/demo_system.yml:system[0].privacy_declarations[0].data_qualifier":
            "data qualifiers were removed in fideslang 2.0 and the manifest has none",
        "v1/demo_system.yml:system[2].privacy_declarations[0].data_qualifier":
            "data qualifiers were removed in fideslang 2.0 and the manifest has none",
        "v1/demo_system.yml:system[2].privacy_declarations[0].dataset_references":
            "datasets describe storage; the manifest records recipients and flows",
        "v1/demo_system.yml:system[2].third_country_transfers[1]": "a recipient has one country: US is kept, IE is not",
        "v1/demo_system.yml:system[4].joint_controller":
            "the joint controller's contact details have no manifest field (the role is kept)",
        "v1/demo_dataset.yml:dataset[0]": "datasets describe storage; the manifest records recipients and flows",
        "v1/demo_taxonomy.yml:data_use[1].recipients": "1.x data-use recipients are free text; recipients come from systems",
        "v1/demo_taxonomy.yml:data_qualifier[0]": "data qualifiers were removed in fideslang 2.0 and the manifest has none",
    }


def test_fideslang_3x_files_map_as_documented() -> None:
    m = import_fides([FIXTURES / "v3"]).manifest
    assert (m.controller.name, m.controller.country, m.controller.dpo) == ("Demo Health Ltd", "IE",
                                                                          "Data Protection Office, dpo@demo-health.example")
    assert {r.key: (r.role, r.country, r.transfer_mechanism, r.processor_of, r.contract) for r in m.recipients} == {
        "mailchimp": ("processor", "IE", "scc", None, "https://mailchimp.com/legal/data-processing-addendum/"),
        "mandrill": ("sub_processor", "IE", "adequacy", "mailchimp", None),
        "hotjar": ("processor", "IE", None, None, None),
    }
    activities = {a.key: a for a in m.activities}
    news = activities["newsletter"]
    assert (news.purposes, news.legal_basis, news.recipients, news.sources, news.retention) == (
        ["marketing.communications.email"], "consent", ["mailchimp"], ["//services/patient_app"], "Until the subscriber unsubscribes")
    rec = activities["session-recording"]
    assert (rec.legal_basis, rec.data_categories[-1], rec.recipients) == ("legitimate_interests", "user.workplace.specialty", ["hotjar"])
    assert activities["heatmaps"].purposes == ["analytics.reporting"]  # an unknown data use widens to its known parent
    assert {k: [e.key for e in v] for k, v in m.taxonomy.items()} == {"data_categories": ["user.workplace.specialty"],
                                                                      "data_uses": ["marketing.communications.newsletter"]}
    unmapped = _unmapped([FIXTURES / "v3"])
    assert {p for p in unmapped} == {
        "v3/organization.yml:organization[0].security_policy", "v3/systems.yml:system[0].privacy_declarations[0].features",
        "v3/systems.yml:system[1].uses_cookies", "v3/systems.yml:system[1].meta.owner", "v3/systems.yml:system[1].data_security_practices",
        "v3/systems.yml:system[3].privacy_declarations[0].impact_assessment_location",
        "v3/systems.yml:system[3].privacy_declarations[1].data_use",
        "v3/systems.yml:system[3].privacy_declarations[1].legal_basis_for_processing",
        "v3/systems.yml:system[1].third_country_transfers", "v3/systems.yml:system[2].third_country_transfers",
        "v3/systems.yml:system[3].third_country_transfers", "v3/systems.yml:system[2].legal_basis_for_transfers[1]",
        "v3/dataset.yml:dataset[0]", "v3/systems.yml:system[4]"}
    assert "assumed the controller's (IE)" in unmapped["v3/systems.yml:system[1].third_country_transfers"]
    # review of issue 21: the internal CRM declares nothing; it was dropped without a word
    assert "with no privacy declarations: left out" in unmapped["v3/systems.yml:system[4]"]


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_every_key_of_the_fixtures_is_mapped_or_reported(version: str) -> None:
    """Completeness: each key with a value in each resource is either one the mapping reads or
    is reported under its own path."""
    from registry.interchange.fides_common import _ORG_FIELDS, _TAXONOMY_FIELDS, DECLARATION_FIELDS, SYSTEM_FIELDS

    reported = set(_unmapped([FIXTURES / version]))
    mapped = {"organization": _ORG_FIELDS, "system": SYSTEM_FIELDS, "data_category": _TAXONOMY_FIELDS, "data_use": _TAXONOMY_FIELDS,
              "data_subject": _TAXONOMY_FIELDS}
    for file in sorted((FIXTURES / version).glob("*.yml")):
        for kind, items in yaml.safe_load(file.read_text()).items():
            assert kind in RESOURCE_KINDS
            for i, res in enumerate(items):
                path = f"{version}/{file.name}:{kind}[{i}]"
                if kind not in mapped:
                    assert path in reported, path
                    continue
                for key, value in res.items():
                    if value not in (None, [], {}, "", False) and key not in mapped[kind]:
                        assert f"{path}.{key}" in reported, f"{path}.{key}"
                for j, decl in enumerate(res.get("privacy_declarations") or []):
                    for key, value in decl.items():
                        if value not in (None, [], {}, "", False) and key not in DECLARATION_FIELDS:
                            assert f"{path}.privacy_declarations[{j}].{key}" in reported


def test_nothing_fides_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "x.yml").write_text("hello: [1]\n")
    with pytest.raises(InputError, match="no Fides resources"):
        import_fides([tmp_path])
    result = CliRunner().invoke(app, ["import", "fides", str(tmp_path)])
    assert result.exit_code == 2 and "no Fides resources" in result.stderr


# -- export, and the round trip --------------------------------------------------------------

def _validate_with_fideslang(files: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for org in files["organization.yml"]["organization"]:
        Organization.model_validate(org)
    for system in files["systems.yml"]["system"]:
        System.model_validate(system)
    models = {"data_category": DataCategory, "data_use": DataUse, "data_subject": DataSubject}
    for kind, items in files.get("taxonomy.yml", {}).items():
        for item in items:
            models[kind].model_validate(item)


def _write(files: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in files.items():
        (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return folder


def test_example_manifest_round_trips(manifest: Manifest, tmp_path: Path) -> None:
    files = fides_resources(manifest)
    _validate_with_fideslang(files)
    again = import_fides([_write(files, tmp_path)])
    assert _canonical(again.manifest) == _canonical(manifest)
    assert again.unmapped == []
    systems = {s["fides_key"]: s for s in files["systems.yml"]["system"]}
    assert systems["stripe"]["responsibility"] == ["Processor"] and systems["stripe-aws"]["responsibility"] == ["Sub-Processor"]
    assert systems["twilio"]["legal_basis_for_transfers"] == ["SCCs"]
    assert systems["sharethis"]["meta"]["dataflow_registry"]["transfer_mechanism"] == "none"  # no Fides value for it
    assert systems["hotjar"]["meta"]["dataflow_registry"]["country"] == "MT"  # 3.x has no country field


_TEXT = st.text(string.ascii_letters + string.digits + " .-&'()", min_size=1, max_size=20).map(str.strip).filter(bool)
_KEY = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_USES = sorted(default_taxonomy().keys("data_uses"))
_CATEGORIES = sorted(k for k in default_taxonomy().keys("data_categories") if k.count(".") <= 2)
_SUBJECTS = sorted(default_taxonomy().keys("data_subjects"))
_SOURCES = ["//services/web", "//services/api", "//svc/a b", "services/x"]
_COUNTRIES = ["US", "DE", "IE", "BR", "CH", "IN", "GB"]


# names in any script, and optional fields that are absent, empty or set (issue 21: "" must come
# back as "", not as absent)
_UTEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20).map(str.strip).filter(bool)
_OPTIONAL = st.one_of(st.none(), st.just(""), _UTEXT)


@st.composite
def manifests(draw: st.DrawFn, exact: bool = False) -> Manifest:
    _TEXT = globals()["_UTEXT" if exact else "_TEXT"]  # noqa: N806
    maybe = _OPTIONAL if exact else st.one_of(st.none(), _TEXT)
    keys = draw(st.lists(_KEY, max_size=5, unique=True))
    recipients = []
    for i, key in enumerate(keys):
        parent = draw(st.one_of(st.none(), st.sampled_from(keys[:i]))) if i else None
        recipients.append({"key": key, "name": draw(_TEXT), "country": draw(st.sampled_from(_COUNTRIES)),
                           "service": draw(st.sampled_from(["hosting", "billing", "analytics", "marketing", "other", "advisors"])),
                           "role": draw(st.sampled_from(["processor", "sub_processor", "independent_controller", "joint_controller",
                                                         "public_authority", "group_company"])),
                           "transfer_mechanism": draw(st.sampled_from([None, "adequacy", "scc", "bcr", "derogation", "none"])),
                           "processor_of": parent, "contract": draw(maybe)})
    extensions = draw(st.sampled_from([{}, {"data_categories": [{"key": "user.custom_id", "parent": "user", "name": "Custom id"}]},
                                       {"data_subjects": [{"key": "member", "parent": None, "description": "A club member"}],
                                        "data_uses": [{"key": "analytics.club", "parent": "analytics"}]}]))
    # names and descriptions of extensions absent, empty or in any script (an empty one once came back as null)
    extensions = {kind: [{k: v for k, v in {**e, "name": draw(maybe), "description": draw(maybe)}.items()
                          if v is not None or k == "parent"} for e in items] for kind, items in extensions.items()}
    uses = _USES + [e["key"] for e in extensions.get("data_uses", [])]
    categories = _CATEGORIES + [e["key"] for e in extensions.get("data_categories", [])]
    subjects = _SUBJECTS + [e["key"] for e in extensions.get("data_subjects", [])]
    activities = [{"key": key, "name": draw(_TEXT), "purposes": draw(st.lists(st.sampled_from(uses), min_size=1, max_size=3, unique=True)),
                   "legal_basis": draw(st.sampled_from(["consent", "contract", "legal_obligation", "vital_interests", "public_task",
                                                        "legitimate_interests"])),
                   "data_subjects": draw(st.lists(st.sampled_from(subjects), max_size=2, unique=True)),
                   "data_categories": draw(st.lists(st.sampled_from(categories), min_size=1, max_size=3, unique=True)),
                   "recipients": draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if keys else [],
                   "sources": draw(st.lists(st.sampled_from(_SOURCES), max_size=2, unique=True)),
                   "retention": draw(maybe), "security_measures": draw(maybe)}
                  for key in draw(st.lists(_KEY, max_size=4, unique=True))]
    controller = {"name": draw(_TEXT), "country": draw(st.sampled_from(_COUNTRIES)), "address": draw(maybe),
                  "contact": draw(st.one_of(st.none(), st.just("privacy@example.org"))),
                  "dpo": draw(st.one_of(st.none(), _TEXT, _TEXT.map(lambda n: f"{n}, dpo@example.org"))),
                  "representative": draw(maybe)}

    def present(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if v is not None}

    # absent optional fields are left out, as a manifest file leaves them out
    controller = present(controller)
    recipients = [present(r) for r in recipients]
    activities = [present(a) for a in activities]
    return manifest_from_document({"controller": controller, "recipients": recipients, "activities": activities,
                                   **({"taxonomy": extensions} if extensions else {})})


def test_cli_export_then_import_declares(declared: sa.Engine, db_url: str, tmp_path: Path, manifest: Manifest) -> None:
    Ingestor(declared).ingest([record(transfer("e1", recipient="shadow-cdn", data_categories=["user.device.ip_address"])),
                               record(transfer("e2", recipient="shadow-cdn", purpose="analytics.reporting"))])
    runner = CliRunner()
    result = runner.invoke(app, ["--db", db_url, "export", "fides", "--out", str(tmp_path / "plain"), "--json"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["files"] == ["organization.yml", "systems.yml", "taxonomy.yml"]
    result = runner.invoke(app, ["--db", db_url, "export", "fides", "--out", str(tmp_path / "seen"), "--observed", "--json"])
    assert orjson.loads(result.stdout)["observed"] == 1
    systems = yaml.safe_load((tmp_path / "seen" / "systems.yml").read_text())["system"]
    shadow = [s for s in systems if s["meta"]["dataflow_registry"]["kind"] == "observed"]
    assert [(s["fides_key"], s["tags"], s["meta"]["dataflow_registry"]["events"]) for s in shadow] == [("shadow-cdn", [REVIEW_TAG], 2)]
    assert {d["data_use"] for d in shadow[0]["privacy_declarations"]} == {"analytics.reporting"}
    for s in systems:
        System.model_validate(s)
    imported = runner.invoke(app, ["import", "fides", str(tmp_path / "seen"), "--out", str(tmp_path / "m.yaml"), "--json"])
    summary = orjson.loads(imported.stdout)
    assert set(summary) == {"recipients", "activities", "unmapped"} and summary["recipients"] == len(manifest.recipients)
    assert [u["reason"][:18] for u in summary["unmapped"]] == ["marked for review "]  # the observed system is not declared
    declared_again = runner.invoke(app, ["--db", db_url, "declare", str(tmp_path / "m.yaml"), "--json"])
    assert declared_again.exit_code == 0, declared_again.output
    text = runner.invoke(app, ["import", "fides", str(tmp_path / "plain")])
    assert text.exit_code == 0 and _canonical(manifest_from_document(yaml.safe_load(text.stdout))) == _canonical(manifest)


def test_export_as_of_uses_the_version_in_force(engine: sa.Engine, db_url: str, manifest: Manifest, tmp_path: Path) -> None:
    from datetime import datetime, timezone

    declare(engine, manifest, datetime(2026, 1, 1, tzinfo=timezone.utc))
    smaller = manifest.model_copy(update={"activities": manifest.activities[:2]})
    declare(engine, smaller, datetime(2026, 6, 1, tzinfo=timezone.utc))
    result = CliRunner().invoke(app, ["--db", db_url, "export", "fides", "--out", str(tmp_path / "jan"), "--as-of", "2026-02-01"])
    assert result.exit_code == 0, result.output
    assert _canonical(import_fides([tmp_path / "jan"]).manifest) == _canonical(manifest)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=manifests(exact=True))
def test_import_of_export_declares_exactly_the_manifest(m: Manifest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Issue 21: import(export(m)) declares exactly m: every list in its order, empty strings as
    empty strings, names in any script, extension taxonomies; `manifests diff` finds nothing."""
    files = fides_resources(m)
    _validate_with_fideslang(files)
    again = import_fides([_write(files, tmp_path_factory.mktemp("fides"))]).manifest
    # the whole stored body, taxonomy extensions included (`manifests diff` does not compare those)
    engine = _round_trip_store(tmp_path_factory)
    versions = (declare(engine, m).version, declare(engine, again).version)
    with engine.connect() as conn:
        bodies = [conn.execute(sa.text("SELECT body FROM manifest_version WHERE version = :v"), {"v": v}).scalar_one() for v in versions]
    assert orjson.loads(bodies[1]) == orjson.loads(bodies[0])


_STORES: dict[str, sa.Engine] = {}


def _round_trip_store(factory: pytest.TempPathFactory) -> sa.Engine:
    """One store for every example of the property (a store per example would cost seconds)."""
    if "store" not in _STORES:
        from registry.model.store import open_store

        _STORES["store"] = open_store(f"sqlite:///{factory.mktemp('roundtrip') / 'registry.db'}")
    return _STORES["store"]


ISSUE_21_MANIFEST = """\
controller: {name: Example Shop Ltd, country: IE, address: ""}
recipients:
  - {key: r4, name: Recipient four, service: hosting, role: processor, country: DE}
  - {key: r-two, name: Recipient two, service: billing, role: processor, country: IE, contract: ""}
activities:
  - key: orders
    name: Orders
    purposes: [essential.service, analytics.reporting]
    legal_basis: contract
    data_categories: [user.contact.email, user.name]
    recipients: [r4, r-two]
    retention: ""
"""


def test_the_issue_s_manifest_comes_back_exactly(tmp_path: Path) -> None:
    """Recipients [r4, r-two] and retention "" once came back as [r-two, r4] and null."""
    runner = CliRunner()
    db = str(tmp_path / "registry.db")
    (tmp_path / "m.yaml").write_text(ISSUE_21_MANIFEST)
    assert runner.invoke(app, ["--db", db, "declare", str(tmp_path / "m.yaml")]).exit_code == 0
    assert runner.invoke(app, ["--db", db, "export", "fides", "--out", str(tmp_path / "fides")]).exit_code == 0
    imported = runner.invoke(app, ["import", "fides", str(tmp_path / "fides"), "--out", str(tmp_path / "again.yaml"), "--json"])
    assert orjson.loads(imported.stdout)["unmapped"] == []
    assert runner.invoke(app, ["--db", db, "declare", str(tmp_path / "again.yaml")]).exit_code == 0
    diff = orjson.loads(runner.invoke(app, ["--db", db, "--json", "manifests", "diff", "1", "2"]).stdout)
    assert diff["controller"] == {} and diff["recipients"]["changed"] == [] and diff["activities"]["changed"] == []
    again = yaml.safe_load((tmp_path / "again.yaml").read_text())
    assert again["activities"][0]["recipients"] == ["r4", "r-two"] and again["activities"][0]["retention"] == ""


def test_fideslang_1x_extensions_keep_every_declaration() -> None:
    """After the public fidesdemo: data uses extended under 1.x parents (one key with a hyphen)
    and referenced by systems; every declaration is kept, under the renamed keys."""
    imported = import_fides([FIXTURES / "extended_v1"])
    m = imported.manifest
    uses = {e.key: e.parent for e in m.taxonomy["data_uses"]}
    assert uses["essential.service.operations.e_commerce"] == "essential.service.operations"
    assert sorted(p for a in m.activities for p in a.purposes) == ["collect.analytics", "collect.analytics",
                                                                  "essential.service.operations.e_commerce",
                                                                  "essential.service.operations.e_commerce"]
    assert len(m.activities) == 4 and {a.legal_basis for a in m.activities if "e_commerce" in a.purposes[0]} == {"consent"}
    assert [u.reason for u in imported.unmapped if "e-commerce" in u.reason] == [
        "provide.service.operations.e-commerce is declared as essential.service.operations.e_commerce (the registry's keys have no hyphens)"]


@pytest.mark.parametrize("system", [
    {"fides_key": "a", "name": "A", "privacy_declarations": [["x", "y"], {"data_use": "essential", "data_categories": ["user"]}]},
    {"fides_key": "a", "name": "A", "meta": [1], "egress": 5, "privacy_declarations": {"data_use": "essential"}},
    {"fides_key": "a", "name": "A", "privacy_declarations": [{"data_use": "essential", "data_categories": "user"}]},
])
def test_a_wrong_shape_is_reported_not_raised(tmp_path: Path, system: dict[str, Any]) -> None:
    (tmp_path / "s.yml").write_text(yaml.safe_dump({"system": [system]}))
    result = CliRunner().invoke(app, ["--json", "import", "fides", str(tmp_path / "s.yml")])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    reasons = [u["reason"] for u in orjson.loads(result.stdout)["unmapped"]]
    assert any(r.startswith(("not a list", "not a mapping", "not a privacy declaration")) for r in reasons)


def test_an_extension_s_empty_name_and_description_come_back_empty(tmp_path: Path) -> None:
    m = manifest_from_document({"controller": {"name": "C", "country": "IE"}, "recipients": [], "activities": [],
                                "taxonomy": {"data_categories": [{"key": "user.custom_id", "parent": "user", "name": "",
                                                                  "description": ""}]}})
    again = import_fides([_write(fides_resources(m), tmp_path / "fides")]).manifest
    assert again.model_dump()["taxonomy"] == m.model_dump()["taxonomy"]


def _import(tmp_path: Path, document: Any) -> tuple[int, str, str]:
    (tmp_path / "s.yml").write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["--json", "import", "fides", str(tmp_path / "s.yml")])
    return result.exit_code, result.stdout, result.stderr


def test_every_skipped_system_is_reported(tmp_path: Path) -> None:
    """A system entry that is no mapping, one without a fides_key, and one of the controller's
    own services without privacy declarations were dropped without a word; a third party without
    declarations is still a recipient."""
    code, out, err = _import(tmp_path, {"system": [5, {"name": "no key"}, {"fides_key": "web", "name": "Web"},
                                                   {"fides_key": "stripe", "name": "Stripe", "vendor_id": "gvl.1"}]})
    assert code == 0, err
    summary = orjson.loads(out)
    notes = {u["path"].split(":", 1)[1]: u["reason"] for u in summary["unmapped"] if ":" in u["path"]}
    assert notes["system[0]"].startswith("not a system resource")
    assert notes["system[1].fides_key"].startswith("a system needs a fides_key")
    assert notes["system[2]"].startswith("a system of the controller's own") and "no privacy declarations" in notes["system[2]"]
    assert summary["recipients"] == 1


def test_a_shape_error_names_the_resource_in_words(tmp_path: Path) -> None:
    code, out, err = _import(tmp_path, {"organization": [{"fides_key": "o", "controller": "str"}],
                                        "data_category": [{"fides_key": "user.custom", "tags": 5}]})
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"error: {tmp_path / 's.yml'}:data_category[0]: a field holds a value of a shape fideslang does not allow")
    assert "TypeError" not in err and "PATH" not in err
    code, out, err = _import(tmp_path, {"organization": [{"fides_key": "o", "controller": "str"}]})
    assert code == 0 and any(u["path"].endswith("organization[0].controller") for u in orjson.loads(out)["unmapped"]), err
