"""More of the staff panel's customer card and directory: support sends a client its
password reset link from the card (the card says it went, and says so when it could not
go); billing staff see no such button; in French an administrator renames a project and
removes it once nothing refers to it; a deleted customer's discounts stay on its card and
on their own page, read-only; the customer's history, opened from the card, shows a user
the client added, by name. Each page is checked (console, requests, axe-core) and kept
as a screenshot."""

import uuid

from playwright.sync_api import expect

from tests.browser.staff import staff_page


def test_send_a_client_its_password_reset_link_from_the_card(stack, browser):
    customer = stack.register_customer(contact_person=f"Rita Reset {uuid.uuid4().hex[:6]}")
    _, _, page = staff_page(stack, browser, "support", "en", "staff-card-reset")
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}")

    def send_the_link():
        """Click the button; back once the page it leads to has replaced this one (the
        answer may be at the same address, and the panel swaps pages in place)."""
        button = p.get_by_role("button", name="Send a password reset link")
        button.evaluate("b => { b.dataset.sent = 'before'; }")
        button.click()
        p.locator("button[data-sent='before']").wait_for(state="detached")
        p.wait_for_load_state("networkidle")

    send_the_link()
    p.wait_for_url(f"**/staff/customers/{customer['id']}?done=reset_sent")
    expect(
        p.get_by_role("status").filter(has_text="A link to set a new password is mailed")
    ).to_be_visible()
    page.check("reset-sent")
    # an account gets a few links in a while: past them, the card says it did not go
    for _ in range(2):
        send_the_link()
        expect(
            p.get_by_role("status").filter(has_text="A link to set a new password is mailed")
        ).to_be_visible()
    send_the_link()
    p.wait_for_url(f"**/staff/customers/{customer['id']}?done=reset_not_sent")
    expect(p.get_by_role("alert")).to_contain_text("The password reset link could not be sent")
    page.check("reset-not-sent")
    page.close()

    # billing staff may not send one: no button
    _, _, page = staff_page(stack, browser, "billing", "en", "staff-card-reset-billing")
    page.goto(f"/staff/customers/{customer['id']}")
    expect(page.page.get_by_role("heading", name=f"Customer {customer['number']}:")).to_be_visible()
    expect(page.page.get_by_role("button", name="Send a password reset link")).to_have_count(0)
    page.check("no-reset-button")
    page.close()


def test_rename_a_project_then_remove_it_in_french(stack, browser):
    tag = uuid.uuid4().hex[:6]
    r = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": f"Marque {tag}", "sender_email": "facturation@marque.example"},
    )
    assert r.status_code == 201, r.text
    project = r.json()
    customer = stack.register_customer(project_id=project["id"])
    _, _, page = staff_page(stack, browser, "admin", "fr", "staff-project-edit-fr")
    p = page.page
    page.goto("/staff/projects")
    p.get_by_role("link", name=f"Marque {tag}").click()
    p.wait_for_url(f"**/staff/projects/{project['id']}")
    p.get_by_label("Nom", exact=True).fill(f"Nouvelle marque {tag}")
    p.get_by_label("Nom de l'expéditeur").fill("Équipe Nouvelle")
    p.get_by_role("button", name="Enregistrer").click()
    p.wait_for_url(f"**/staff/projects/{project['id']}?done=project_saved")
    expect(p.get_by_role("status").filter(has_text="Le projet est enregistré.")).to_be_visible()
    expect(p.get_by_role("heading", name=f"Nouvelle marque {tag}")).to_be_visible()
    page.check("project-renamed")

    # a customer is in it: it stays, and the page says why
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/customers",
                stack.admin_token,
                params={"project_id": project["id"]},
            ).json()["total"]
            == 1
        ),
        what="the customer listed in the project",
    )
    p.get_by_role("button", name="Supprimer le projet").click()
    expect(p.get_by_role("alert")).to_have_text(
        "1 client est dans ce projet : déplacez-le d'abord vers un autre projet."
    )
    page.check("project-in-use", allow=(409,))

    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{customer['id']}",
        stack.admin_token,
        json={"project_id": None, "reason": "plus de marque"},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: (
            stack.http(
                "GET",
                "/api/v1/staff/customers",
                stack.admin_token,
                params={"project_id": project["id"]},
            ).json()["total"]
            == 0
        ),
        what="the customer out of the project",
    )
    page.goto(f"/staff/projects/{project['id']}")
    p.get_by_role("button", name="Supprimer le projet").click()
    p.wait_for_url("**/staff/projects?done=project_removed")
    expect(p.get_by_role("status").filter(has_text="Le projet est supprimé.")).to_be_visible()
    page.check("project-removed")
    page.close()


def test_a_deleted_customers_discounts_stay_read_only(stack, browser):
    tag = uuid.uuid4().hex[:6]
    customer = stack.register_customer(contact_person=f"Dora Gone {tag}")
    r = stack.http(
        "POST",
        "/api/v1/staff/discounts",
        stack.admin_token,
        json={
            "name": f"Faithful {tag}",
            "kind": "percentage",
            "percent": "15",
            "customer_id": customer["id"],
        },
    )
    assert r.status_code == 201, r.text
    discount = r.json()
    r = stack.http(
        "DELETE",
        f"/api/v1/staff/customers/{customer['id']}?confirm=true&reason=closed",
        stack.admin_token,
    )
    assert r.status_code == 200, r.text

    _, _, page = staff_page(stack, browser, "billing", "en", "staff-deleted-discounts")
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}")
    expect(p.get_by_text("This customer was deleted; its card is read-only.")).to_be_visible()
    panel = p.get_by_role("region", name="Groups and discounts")
    expect(panel.get_by_role("link", name=f"Faithful {tag}")).to_be_visible()
    expect(panel.get_by_text("15 %")).to_be_visible()
    expect(panel.get_by_text("Kept as they were when the customer was deleted")).to_be_visible()
    page.check("deleted-customer-discounts")

    panel.get_by_role("link", name=f"Faithful {tag}").click()
    p.wait_for_url(f"**/staff/discounts/{discount['id']}")
    expect(p.get_by_role("note")).to_contain_text(
        "The customer this discount was given to was deleted"
    )
    expect(p.get_by_role("button", name="Save")).to_have_count(0)
    expect(p.get_by_role("button", name="End the discount now")).to_have_count(0)
    page.check("deleted-customer-discount-page")
    page.close()


def test_the_history_shows_a_user_the_client_added(stack, browser):
    tag = uuid.uuid4().hex[:6]
    customer = stack.register_customer(contact_person=f"Hugo Owner {tag}")
    token = stack.login(customer["credentials"]["username"], customer["credentials"]["password"])
    username = f"helper{tag}"
    r = stack.http(
        "POST",
        "/api/v1/client/users",
        token,
        json={
            "username": username,
            "email": f"{username}@example.com",
            "name": f"Helga Helper {tag}",
            "permissions": ["support"],
        },
    )
    assert r.status_code == 201, r.text

    def history_has_the_user():
        r = stack.http(
            "GET",
            f"/api/v1/staff/audit/customers/{customer['id']}/history",
            stack.admin_token,
            params={"limit": 200},
        )
        return any(i["type"] == "CustomerUser.Added" for i in r.json()["items"])

    stack.wait_until(history_has_the_user, what="the user in the history")
    _, _, page = staff_page(stack, browser, "support", "en", "staff-card-history")
    p = page.page
    page.goto(f"/staff/customers/{customer['id']}")
    p.get_by_role("link", name="History", exact=True).click()
    p.wait_for_url(f"**/staff/customers/{customer['id']}/history")
    entry = p.get_by_role("row").filter(has_text="User added")
    expect(entry).to_contain_text(f"User: Helga Helper {tag}")
    expect(entry).to_contain_text(f"Username: {username}")
    expect(entry).to_contain_text(f"E-mail: {username}@example.com")
    expect(entry).to_contain_text("The client")
    expect(p.get_by_role("row").filter(has_text="Customer registered")).to_be_visible()
    page.check("history-user-added")
    page.close()
