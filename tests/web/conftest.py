"""Makes the browser tests' fixtures (browser_fixtures.py) visible to pytest."""

from browser_fixtures import (  # noqa: F401 - fixtures are found by name
    admin_name,
    axe_source,
    browser,
    chromium_path,
    context,
    make_node,
    node,
    page,
    playwright,
)
