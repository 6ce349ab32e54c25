"""nbval: compare text outputs only (HTML tables and JS are renderings of the same data)."""


def pytest_collection_modifyitems(items):
    for item in items:
        parent = getattr(item, "parent", None)
        if parent is not None and hasattr(parent, "skip_compare"):
            parent.skip_compare = tuple(parent.skip_compare) + ("text/html", "application/javascript",
                                                                "application/vnd.plotly.v1+json")
