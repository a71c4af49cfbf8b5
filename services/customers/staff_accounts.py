"""Staff accounts as administrators and each member see them: a new member invited by
mail, password reset links staff send, a member's own password and preferences, and
the staff's login policy. Mixed into the Customers application.

    invite            a new member with no password anyone knows: the member gets a
                      link by mail to set one (staff never see or set another person's
                      password)
    send reset link   administrators for a staff member, administrators and support for
                      a client: the account's own reset mail, as a forgotten password
                      gives (the same single-use link and limits)
    own account       a member changes their own password (the current one first; their
                      other sessions end), language and notification preferences
    policy            two-factor authentication mandatory for every staff member: a
                      member without it who logs in is told to set it up first; only
                      an administrator who has it on makes it mandatory, and while it
                      is, no member turns theirs off (two_factor.py)
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import customers as contract
from contracts.errors import Conflict, InvalidCredentials, NotFound
from services.customers.domain import StaffMember, StaffPolicy
from services.infra import context
from services.infra.rpc import load, rpc

POLICY = "staff"
SET_UP_YOURS_FIRST = (
    "Set up two-factor authentication on your own account first "
    "(POST /api/v1/auth/2fa/enrol, then POST /api/v1/auth/2fa/confirm): once it is "
    "mandatory, a member without it can do nothing else, this switch included."
)


class StaffAccountCommands:
    """Mixed into services.customers.application.Customers (which provides the staff,
    sessions, login limits and reset links used here)."""

    # -- new members and reset links -------------------------------------------------------

    def invite_staff(self, data: dict) -> StaffMember:
        """A new member whose password nobody knows, and a mail with a link to set one."""
        member, _ = self.register_staff(
            username=data["username"],
            name=data["name"],
            role=data["role"],
            email=data["email"],
            language=data["language"],
            notify=data.get("notifications"),
        )
        self.send_reset_link(member)
        return member

    def send_reset_link(self, owner) -> dict:
        """Staff send an account its reset link: 409 when it has nowhere to go (no e-mail,
        disabled), 429 past the account's few reset mails per window."""
        recipient = self._reset_recipient(owner)
        if recipient is None:
            raise Conflict(
                "This account has no e-mail address a link could be sent to, or it is disabled.",
                {"email": ["No address to send the link to."]},
            )
        self._reserve({"reset_mail": f"reset-mail:{owner.id}"}, "reset mails")
        self._record_reset_mail(owner, recipient)
        return {"status": "sent", "email": recipient["email"]}

    # -- one's own account -------------------------------------------------------------------

    def change_staff_password(
        self, staff_id: UUID, current: str, new: str, keep_token: str | None
    ) -> None:
        """The member's own password: the current one first (guesses count as logins
        do); every other session of theirs ends, this one stays."""
        member = self.get_staff(staff_id)
        keys = {"pair": f"pair:{member.id}|password-change", "account": f"account:{member.id}"}
        self._reserve(keys)
        if not self.password_matches(member, current):
            raise InvalidCredentials(
                "The current password is wrong.",
                {"current_password": ["The current password is wrong."]},
            )
        self._give_back(keys)
        member.change_password()
        self.save(member, also=[self.password_statement(member, new)])
        self._end_other_staff_sessions(member.id, keep_token)

    def _end_other_staff_sessions(self, staff_id: UUID, keep_token: str | None) -> None:
        from services.customers.application import _token_hash
        from services.customers.session_ends import end_sessions

        kept = _token_hash(keep_token) if keep_token else ""
        end_sessions(
            self,
            "(staff_id = %s OR impersonator_id = %s) AND token_hash <> %s"
            " AND (parent_token_hash IS NULL OR parent_token_hash <> %s)",
            (staff_id, staff_id, kept, kept),
            "password",
            staff_id=staff_id,
        )

    def edit_own_staff_account(self, staff_id: UUID, changes: dict) -> StaffMember:
        """The member's own language and notification preferences (those given)."""
        member = self.get_staff(staff_id)
        wanted = {}
        if "language" in changes and changes["language"] != member.language:
            wanted["language"] = changes["language"]
        if changes.get("notifications"):
            notify = dict(member.notify, **changes["notifications"])
            if notify != member.notify:
                wanted["notify"] = notify
        if wanted:
            member.edit(wanted)
            self.save(member)
        return member

    # -- the staff's login policy ------------------------------------------------------------

    def staff_policy(self) -> dict:
        policy = self._policy_or_none()
        return {"two_factor_required": bool(policy and policy.two_factor_required)}

    def set_staff_policy(self, two_factor_required: bool) -> dict:
        """An administrator's choice, recorded as an event with who made it. Only one who
        has two-factor authentication on makes it mandatory (409 naming
        `two_factor_required` otherwise): the policy would shut them out at once, of its
        own switch too."""
        if two_factor_required and not self._acting_member_has_two_factor():
            raise Conflict(SET_UP_YOURS_FIRST, {"two_factor_required": [SET_UP_YOURS_FIRST]})
        for _ in range(2):
            policy = self._policy_or_none() or StaffPolicy(name=POLICY)
            if policy.two_factor_required == two_factor_required and policy.version > 1:
                return self.staff_policy()
            policy.require_two_factor(required=two_factor_required)
            try:
                self.save(policy)
            except IntegrityError:
                continue  # another administrator changed it at the same moment: read again
            return self.staff_policy()
        raise Conflict("Someone else changed this at the same moment; try again.")

    def _acting_member_has_two_factor(self) -> bool:
        """The staff member this command is done by has two-factor authentication on."""
        actor = context.current.actor
        if actor is None or actor.kind != "staff":
            return False
        try:
            return bool(self.get_staff(UUID(str(actor.id))).two_factor)
        except (NotFound, ValueError):
            return False

    def _policy_or_none(self) -> StaffPolicy | None:
        try:
            return self.repository.get(StaffPolicy.id_for(POLICY))
        except AggregateNotFoundError:
            return None

    def two_factor_setup_required(self, member: StaffMember) -> bool:
        """The policy asks every staff member for two-factor authentication and this one
        has not set it up yet."""
        return not member.two_factor and self.staff_policy()["two_factor_required"]


class StaffAccountRpcs:
    """The customers service's RPCs of staff accounts (mixed into the service, which
    provides `app`, `mail_requests` and `_require_admin`)."""

    @rpc
    def send_staff_password_reset(self, staff_id: str) -> dict:
        """Administrators: mail a staff member the link to set a new password."""
        self._require_admin()
        member = self.app.get_staff(_id(staff_id, "staff member"))
        answer = self.app.send_reset_link(member)
        self.mail_requests.wake()
        return answer

    @rpc
    def send_customer_password_reset(self, customer_id: str) -> dict:
        """Staff (administrators, support): mail a client the link to set a new password."""
        customer = self.app.get_customer(_id(customer_id, "customer"))
        answer = self.app.send_reset_link(customer)
        self.mail_requests.wake()
        return answer

    @rpc
    def staff_account(self, staff_id: str) -> dict:
        """A member's own account: as the staff list shows it, with whether two-factor
        authentication is on, whether the policy makes it mandatory (it cannot be turned
        off then) and whether the policy asks them to set it up."""
        member = self.app.get_staff(_id(staff_id, "staff member"))
        mandatory = self.app.staff_policy()["two_factor_required"]
        return dict(
            self.app.staff_view(member),
            two_factor=bool(member.two_factor),
            two_factor_required=mandatory,
            two_factor_setup_required=mandatory and not member.two_factor,
        )

    @rpc
    def edit_own_staff_account(self, staff_id: str, payload: dict) -> dict:
        data = load(contract.EditOwnStaffAccount, payload)
        self.app.edit_own_staff_account(_id(staff_id, "staff member"), data)
        return self.staff_account(staff_id)

    @rpc
    def change_staff_password(self, staff_id: str, payload: dict, keep_token: str | None) -> None:
        data = load(contract.ChangePassword, payload)
        self.app.change_staff_password(
            _id(staff_id, "staff member"),
            data["current_password"],
            data["new_password"],
            keep_token if isinstance(keep_token, str) else None,
        )

    @rpc
    def staff_policy(self) -> dict:
        return self.app.staff_policy()

    @rpc
    def set_staff_policy(self, payload: dict) -> dict:
        """Administrators: the staff's login policy (recorded with who changed it)."""
        self._require_admin()
        data = load(contract.StaffPolicy, payload)
        return self.app.set_staff_policy(data["two_factor_required"])


def _id(value, what: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None
