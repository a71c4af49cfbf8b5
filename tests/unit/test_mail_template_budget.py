"""Staff-edited mail templates render under a time, memory and size budget."""

import time

import pytest
from jinja2 import TemplateError

from services.mailgateway import templates
from services.mailgateway.templates import RenderBudgetExceeded, TemplateInvalid, check, render

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    "body",
    [
        NESTED_LOOPS,  # ten billion turns, no output
        "{{ 'x' * 1000000000 }}",  # a gigabyte at once
        "{{ 'x' * 300000 }}",  # more than a mail may be
        "{% for i in range(100000) %}{{ 'yyyyyyyyyy' }}{% endfor %}",  # a megabyte bit by bit
    ],
)
def test_a_template_past_the_budget_is_refused_when_saved(body):
    started = time.monotonic()
    with pytest.raises(TemplateInvalid) as refused:
        check("payment_received", "en", "Payment", body)
    assert refused.value.field == "body"
    assert time.monotonic() - started < templates.RENDER_SECONDS + 10


def test_an_edited_template_fails_cleanly_when_sent():
    hostile = templates.Template("payment_received", "en", "Hi", NESTED_LOOPS, edited=True)
    with pytest.raises(RenderBudgetExceeded):
        render(hostile, templates.SAMPLE_CONTEXT)
    broken = templates.Template("payment_received", "en", "Hi", "{{ nothing }}", edited=True)
    with pytest.raises(TemplateError):
        render(broken, templates.SAMPLE_CONTEXT)


def test_a_reasonable_edit_renders_as_before():
    body = "Dear {{ customer_name }},\n{% for i in range(3) %}-{{ i }}{% endfor %}\n"
    template = check("payment_received", "en", "Paid {{ number }}", body)
    assert template.edited
    assert render(template, templates.SAMPLE_CONTEXT) == (
        "Paid INV-2026-000001",
        "Dear Jane Doe,\n-0-1-2\n",
    )
    shipped = templates.shipped()["payment_received", "en"]
    assert not shipped.edited  # shipped templates render in process, as before
