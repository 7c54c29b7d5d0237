"""The form renderer: Django's templates lookup, with the portal's field layout (templates/dashboard/field.html)."""

from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class PortalFormRenderer(TemplatesSetting):
    """Each `field.as_field_group` is one block: label, help text, errors, then the input."""

    field_template_name = "dashboard/field.html"
