"""The staff panel's customer directory: in French, a support member adds a customer
group, renames it, cannot remove it while a customer is in it, then removes it; in
English on a phone, a billing member adds a discount for a group and ends it; a support
member sees no way to add a discount. Each page is checked (console, requests, axe-core)
and kept as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.chromium import PHONE
from tests.browser.staff import staff_page


def _group_total(stack, group_id):
    r = stack.http(
        "GET", "/api/v1/staff/customers", stack.admin_token, params={"group_id": group_id}
    )
    return r.json()["total"]


def test_create_rename_and_remove_a_customer_group_in_french(stack, browser):
    tag = uuid.uuid4().hex[:6]
    _, _, page = staff_page(stack, browser, "support", "fr", "staff-groups-fr")
    p = page.page
    page.goto("/staff/groups")
    expect(p.get_by_role("heading", name="Groupes de clients")).to_be_visible()
    new = p.get_by_role("region", name="Nouveau groupe")
    new.get_by_label("Nom").fill(f"Revendeurs {tag}")
    new.get_by_label("Description").fill("Remises de gros")
    new.get_by_role("button", name="Ajouter le groupe").click()
    p.wait_for_url("**/staff/groups/*?done=group_created")
    expect(p.get_by_role("status").filter(has_text="Le groupe est ajouté.")).to_be_visible()
    expect(p.get_by_role("heading", name=f"Revendeurs {tag}")).to_be_visible()
    page.check("group-added")
    group_id = p.url.rsplit("/", 1)[1].split("?")[0]

    p.get_by_label("Nom").fill(f"Partenaires {tag}")
    p.get_by_role("button", name="Enregistrer").click()
    expect(p.get_by_role("status").filter(has_text="Le groupe est enregistré.")).to_be_visible()
    expect(p.get_by_role("heading", name=f"Partenaires {tag}")).to_be_visible()
    page.check("group-renamed")

    # a customer in it: it stays
    customer = stack.register_customer()
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": [group_id]},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(lambda: _group_total(stack, group_id) == 1, what="customer in the group")
    p.get_by_role("button", name="Supprimer le groupe").click()
    expect(p.get_by_role("alert")).to_have_text(
        "Des clients sont dans ce groupe : retirez-les-en d'abord."
    )
    page.check("group-not-empty", allow=(409,))

    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"group_ids": []},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(lambda: _group_total(stack, group_id) == 0, what="customer out of it")
    p.get_by_role("button", name="Supprimer le groupe").click()
    p.wait_for_url("**/staff/groups?done=group_removed")
    expect(p.get_by_role("status").filter(has_text="Le groupe est supprimé.")).to_be_visible()
    page.check("group-removed")
    # the list follows in a moment
    stack.wait_until(
        lambda: (
            group_id
            not in [
                g["id"]
                for g in stack.http(
                    "GET",
                    "/api/v1/staff/customer-groups",
                    stack.admin_token,
                    params={"page_size": 200},
                ).json()["items"]
            ]
        ),
        what="group gone from the list",
    )
    page.goto("/staff/groups")
    expect(p.get_by_role("link", name=f"Partenaires {tag}")).to_have_count(0)
    page.close()


def test_billing_adds_and_ends_a_discount_on_a_phone(stack, browser):
    tag = uuid.uuid4().hex[:6]
    r = stack.http(
        "POST",
        "/api/v1/staff/customer-groups",
        stack.admin_token,
        json={"name": f"Students {tag}"},
    )
    assert r.status_code == 201, r.text
    _, _, page = staff_page(stack, browser, "billing", "en", "staff-discounts-en", viewport=PHONE)
    p = page.page
    page.goto("/staff/discounts")
    p.get_by_role("link", name="New discount").click()
    p.get_by_label("Name").fill(f"Student {tag}")
    p.get_by_label("Given to").select_option(label=f"Students {tag}")
    p.get_by_label("Kind").select_option(label="A percentage")
    p.get_by_label("Percent").fill("15")
    p.get_by_role("button", name="Add the discount").click()
    expect(p.get_by_role("status").filter(has_text="The discount is added.")).to_be_visible()
    page.check("discount-added")
    p.get_by_role("button", name="End the discount now").click()
    expect(p.get_by_role("status").filter(has_text="The discount has ended.")).to_be_visible()
    expect(p.get_by_text("Ended", exact=True)).to_be_visible()
    expect(p.get_by_role("button", name="End the discount now")).to_have_count(0)
    page.check("discount-ended")
    page.close()

    _, _, page = staff_page(stack, browser, "support", "en", "staff-discounts-support")
    page.goto("/staff/discounts")
    expect(page.page.get_by_role("link", name="New discount")).to_have_count(0)
    assert page.goto("/staff/discounts/new").status == 403
    page.close()
