"""Interchange with other privacy tools' declaration formats (Fides resources)."""
