"""Doc-vs-code: the SDK's tables name exactly what docs/ipc-protocol.md and
docs/events.md list."""
import re

from blvm_module.events import KNOWN_EVENTS
from blvm_module.invocations import INVOCATIONS
from blvm_module.node_api import NodeApi
from blvm_module.requests import REQUESTS
from blvm_module.schema import hints, type_name

from conftest import DOCS

SPEC = (DOCS / "ipc-protocol.md").read_text()


def section(start: str, end: str) -> str:
    return SPEC[SPEC.index(start):SPEC.index(end, SPEC.index(start))]


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| `"):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def test_request_table_is_the_spec_method_table():
    rows = table_rows(section("### 8.2 Method table", "### 8.3"))
    spec = {r[0].strip("`"): (None if r[-1] == "none" else r[-1].strip("`")) for r in rows}
    sdk = {r.method: r.capability for r in REQUESTS}
    assert list(sdk) == list(spec), "order or names differ"
    assert sdk == spec


def top_level_fields(cell: str) -> list[str]:
    """The field names (`name`:) of a method table cell at depth 0 of its
    brackets, in order: a nested shape's fields are not the method's."""
    depth, names = 0, []
    for m in re.finditer(r"[\[\]{}()]|`([a-z_]+)`:", cell):
        tok = m.group(0)
        if tok in "[{(":
            depth += 1
        elif tok in "]})":
            depth -= 1
        elif depth == 0:
            names.append(m.group(1))
    return names


def test_every_param_field_of_the_spec_is_in_the_params_shape():
    rows = table_rows(section("### 8.2 Method table", "### 8.3"))
    by_method = {r.method: r for r in REQUESTS}
    for cells in rows:
        method, params = cells[0].strip("`"), cells[1]
        names = top_level_fields(params)
        fields = list(hints(by_method[method].params))
        assert names == fields, f"{method}: spec {names}, sdk {fields}"


def test_every_result_field_of_the_spec_is_in_the_result_shape():
    rows = table_rows(section("### 8.2 Method table", "### 8.3"))
    by_method = {r.method: r for r in REQUESTS}
    for cells in rows:
        method, result = cells[0].strip("`"), cells[2]
        names = top_level_fields(result)
        assert names == list(hints(by_method[method].result)), method


def test_invocation_table_is_the_spec_table():
    rows = table_rows(section("## 9. Invocations", "### 9.1"))
    assert [r[0].strip("`") for r in rows] == [i.method for i in INVOCATIONS]


def test_node_api_has_a_typed_method_per_request():
    import inspect
    for row in REQUESTS:
        method = getattr(NodeApi, row.method)
        sig = inspect.signature(method)
        assert list(sig.parameters)[1:] == list(hints(row.params)), row.method
        assert sig.return_annotation is row.result
        assert row.method in method.__doc__ and type_name(int) == "int"


def test_known_events_are_the_catalogue():
    text = (DOCS / "events.md").read_text()
    catalogue = text[text.index("## Catalogue"):]
    names = set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", catalogue, re.M))
    assert names == set(KNOWN_EVENTS)
