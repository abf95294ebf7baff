"""`registry import fides`: Fides resource files (fideslang 1.x to 3.x) read into a manifest.

The raw YAML is read, not fideslang's models: 1.x files carry keys 3.x refuses
(``third_country_transfers``, ``data_responsibility_title``, ``data_qualifier``), and those are
the ones a RoPA needs. What maps is in :mod:`.fides_map` and the README; every other key with a
value is listed in ``unmapped`` with the reason. The manifest written always declares: it is
validated like ``registry declare`` validates a file before it is returned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from pydantic import BaseModel

from registry.exceptions import InputError
from registry.model.manifest import Manifest, manifest_from_document

from .fides_common import COUNTRY_TAG, PARENT_TAG, Importer, Resources, Unmapped
from .fides_systems import build_manifest

__all__ = ["Unmapped", "ImportResult", "Imported", "import_fides", "read_resources", "manifest_yaml", "COUNTRY_TAG", "PARENT_TAG"]

RESOURCE_KINDS = ("organization", "system", "dataset", "data_category", "data_use", "data_subject", "data_qualifier", "policy",
                  "registry", "evaluation")


class ImportResult(BaseModel):
    recipients: int
    activities: int
    unmapped: list[Unmapped]


@dataclass
class Imported:
    manifest: Manifest
    unmapped: list[Unmapped]

    def summary(self) -> ImportResult:
        return ImportResult(recipients=len(self.manifest.recipients), activities=len(self.manifest.activities), unmapped=self.unmapped)


def manifest_yaml(manifest: Manifest) -> str:
    return yaml.safe_dump(manifest.model_dump(exclude_defaults=True), sort_keys=False, allow_unicode=True)


def read_resources(paths: Iterable[str | Path], notes: list[Unmapped]) -> Resources:
    """Every Fides resource in the files (folders: their ``*.yml``/``*.yaml``, recursively), by
    kind, each with the path it is reported under (``file:system[2]``)."""
    paths = list(paths)
    found: Resources = {kind: [] for kind in RESOURCE_KINDS}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise InputError("no such file or folder", str(given))
        for file in files:
            try:
                document = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read as YAML: {exc}", str(file)) from None
            if not isinstance(document, dict):
                notes.append(Unmapped(path=str(file), reason="not a Fides resource file (no mapping of resource kinds)"))
                continue
            for kind, items in document.items():
                if kind not in RESOURCE_KINDS:
                    notes.append(Unmapped(path=f"{file}:{kind}", reason="not a Fides resource kind"))
                elif not isinstance(items, list):
                    notes.append(Unmapped(path=f"{file}:{kind}", reason=f"not a list of {kind} resources: left out"))
                else:
                    for i, item in enumerate(items):
                        if isinstance(item, dict):
                            found[kind].append((f"{file}:{kind}[{i}]", item))
                        else:
                            notes.append(Unmapped(path=f"{file}:{kind}[{i}]",
                                                  reason=f"not a {kind} resource (a mapping of fides_key, name, ...): left out"))
    if not any(found.values()):
        raise InputError("no Fides resources (organization, system, dataset, data_category, data_use, data_subject) found",
                         ", ".join(str(p) for p in paths))
    return found


def import_fides(paths: Iterable[str | Path]) -> Imported:
    notes: list[Unmapped] = []
    resources = read_resources(paths, notes)
    importer = Importer(resources, notes)
    try:
        document = build_manifest(importer)
    except KeyError as exc:
        # a shape no check above foresaw: one line naming where, in words, not a traceback (contract §6)
        raise InputError(f"the field {exc.args[0]} is missing, and fideslang requires it", importer.where) from None
    except (AttributeError, TypeError):
        raise InputError("a field holds a value of a shape fideslang does not allow (such as a list or a number where a "
                         "mapping or a text belongs)", importer.where) from None
    return Imported(manifest=manifest_from_document(document), unmapped=importer.notes)
