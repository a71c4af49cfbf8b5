"""Changing and removing the customer directory's groups, projects and discounts (creating
them and changing a project are in the service's own module).

A group is renamed or described again; removed only while no customer is in it (its
history stays in its events; a removed group is no longer listed nor given to anyone).
A project is removed only while no customer (not deleted) and no product of the catalog
refers to it; the refusal says how many of each do.
A discount's name and validity change; deleting it ends it now rather than erasing it,
since invoices priced with it must still be explained by it. A discount given to a
customer that was deleted stays as it was, read-only: it is no longer given to anything.
Each change is its own event, stamped with the staff member who made it like every event.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts.customers import ChangeDiscount, ChangeGroup
from contracts.errors import Conflict, NotFound, ValidationFailed
from services.customers.application import VIEWS, discount_view, group_view
from services.customers.domain import Customer, CustomerGroup, Discount, Project
from services.infra import clock
from services.infra.rpc import ask, load, rpc

# a discount of a deleted customer is kept as it was
CUSTOMER_DELETED = (
    "The customer this discount was given to was deleted: the discount is kept as it was."
)


def _get(app, kind: type, aggregate_id: str, what: str):
    try:
        found = app.repository.get(UUID(str(aggregate_id)))
    except (ValueError, AggregateNotFoundError):
        found = None
    if not isinstance(found, kind) or getattr(found, "removed", False):
        raise NotFound(f"No such {what}.")
    return found


def customers_in_group(app, group_id: UUID) -> int:
    """How many customers (not deleted) the customer list has in the group."""
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT count(*) AS n FROM customer_list"
            " WHERE group_ids @> ARRAY[%s]::uuid[] AND NOT deleted",
            (group_id,),
        )
        return curs.fetchone()["n"]


def customers_in_project(app, project_id: UUID) -> int:
    """How many customers (not deleted) the customer list has in the project."""
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT count(*) AS n FROM customer_list WHERE project_id = %s AND NOT deleted",
            (project_id,),
        )
        return curs.fetchone()["n"]


def _check_customer_kept(app, discount: Discount) -> None:
    """409 for a discount given to a customer that was deleted (read-only from then on)."""
    if discount.customer_id is None:
        return
    try:
        customer = app.repository.get(discount.customer_id)
    except AggregateNotFoundError:
        return
    if isinstance(customer, Customer) and customer.deleted:
        raise Conflict(CUSTOMER_DELETED, {"customer_id": [CUSTOMER_DELETED]})


class DirectoryRpcs:
    """Mixed into CustomersService: what staff change in the directory."""

    @rpc
    def directory_entry(self, kind: str, entry_id: str) -> dict:
        """One group, project or discount as its list shows it (404: none, or removed)."""
        classes = {"group": CustomerGroup, "project": Project, "discount": Discount}
        if kind not in classes:
            raise NotFound(f"No such {kind}.")
        return VIEWS[kind](_get(self.app, classes[kind], entry_id, kind))

    @rpc
    def change_group(self, group_id: str, payload: dict) -> dict:
        """The fields sent change; nothing is recorded when nothing changes."""
        data = load(ChangeGroup, payload, partial=True)
        group = _get(self.app, CustomerGroup, group_id, "group")
        name = data.get("name", group.name)
        description = data.get("description", group.description)
        if (name, description) != (group.name, group.description):
            group.change(name=name, description=description)
            self.app.save(group)
        return group_view(group)

    @rpc
    def remove_group(self, group_id: str) -> None:
        """409 while customers are in the group: take them out first."""
        group = _get(self.app, CustomerGroup, group_id, "group")
        count = customers_in_group(self.app, group.id)
        if count:
            raise Conflict(
                f"{count} customer(s) are in this group; take them out of it first.",
                {"customers": [str(count)]},
            )
        group.remove()
        self.app.save(group)

    @rpc
    def remove_project(self, project_id: str) -> None:
        """409 while customers (not deleted) or products of the catalog refer to the
        project, saying how many of each: move them to another project first."""
        project = _get(self.app, Project, project_id, "project")
        customers = customers_in_project(self.app, project.id)
        # the orders service keeps the catalog (products on sale or not)
        products = sum(
            1
            for p in ask(self.orders, "catalog", None, False)
            if p.get("project_id") == str(project.id)
        )
        if customers or products:
            why, fields = [], {}
            if customers:
                why.append(f"{customers} customer(s)")
                fields["customers"] = [str(customers)]
            if products:
                why.append(f"{products} product(s)")
                fields["products"] = [str(products)]
            raise Conflict(
                f"{' and '.join(why)} refer to this project; move them to another one first.",
                fields,
            )
        project.remove()
        self.app.save(project)

    @rpc
    def change_discount(self, discount_id: str, payload: dict) -> dict:
        """Its name and when it is valid (the fields sent; null: no bound). 409 for one
        given to a customer that was deleted."""
        data = load(ChangeDiscount, payload, partial=True)
        discount = _get(self.app, Discount, discount_id, "discount")
        _check_customer_kept(self.app, discount)
        name = data.get("name", discount.name)
        start = data.get("valid_from", discount.valid_from)
        end = data.get("valid_to", discount.valid_to)
        if start is not None and end is not None and end <= start:
            raise ValidationFailed(
                "It must end after it starts.", {"valid_to": ["It must end after it starts."]}
            )
        if (name, start, end) != (discount.name, discount.valid_from, discount.valid_to):
            discount.change(name=name, valid_from=start, valid_to=end)
            self.app.save(discount)
        return discount_view(discount)

    @rpc
    def end_discount(self, discount_id: str) -> dict:
        """The discount is no longer given from now on (ended already: unchanged). 409 for
        one given to a customer that was deleted: it is given to nothing any more."""
        discount = _get(self.app, Discount, discount_id, "discount")
        _check_customer_kept(self.app, discount)
        now = clock.now()
        if discount.valid_to is None or discount.valid_to > now:
            discount.end(at=now)
            self.app.save(discount)
        return discount_view(discount)
