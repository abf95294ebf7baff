"""Interchange with other privacy tools' declaration formats: Fides resource files read into a
manifest (fides, with the system mapper fides_systems and what both share in fides_common) and
written from one (fides_export); the key and vocabulary maps in fides_map.

May import :mod:`registry.answers` and everything below it; not :mod:`registry.reports`
(its layer-mate), :mod:`registry.web` or :mod:`registry.cli`."""
