"""The navigation: one table per menu. A new area of the interface (calls, peers, coalitions)
adds its line here, and the menu shows it to those whose role is high enough."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.services.members import role_at_least
from node.web.pages.i18n import N_

__all__ = ["ADMIN_NAV", "MAIN_NAV", "Nav", "NavItem", "visible_nav"]


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    label: str  # an English msgid
    role: str = "member"  # the least role that sees it

    def current(self, path: str) -> bool:
        """Whether ``path`` is this item's page or one under it."""
        if self.path == "/":
            return path == "/"
        return path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True, slots=True)
class Nav:
    main: tuple[NavItem, ...]
    admin: tuple[NavItem, ...]


MAIN_NAV: Final = (
    NavItem("/", N_("Home")),
    NavItem("/proposals", N_("Proposals")),
    NavItem("/calls", N_("Calls to action")),
    NavItem("/notifications", N_("Notifications")),
    NavItem("/profile", N_("Profile")),
)
ADMIN_NAV: Final = (
    NavItem("/admin/members", N_("Members"), "admin"),
    NavItem("/admin/invites", N_("Invites"), "admin"),
    NavItem("/admin/peers", N_("Peers"), "admin"),
    NavItem("/admin/coalitions", N_("Coalitions"), "admin"),
    NavItem("/admin/policy", N_("Governance policy"), "admin"),
    NavItem("/admin/audit", N_("Audit log"), "admin"),
)


def visible_nav(role: str | None) -> Nav:
    """The menus a reader with ``role`` sees (nothing for a visitor)."""
    if role is None:
        return Nav((), ())
    return Nav(
        tuple(item for item in MAIN_NAV if role_at_least(role, item.role)),
        tuple(item for item in ADMIN_NAV if role_at_least(role, item.role)),
    )
