"""The filter language: grammar, type checks, limits, and the bound SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from storage.catalog import Catalog
from storage.database import make_engine, upgrade
from storage.filters import (
    MAX_TERMS,
    Compare,
    Either,
    Every,
    FilterError,
    Member,
    Negation,
    Prefix,
    parse_filter,
    quoted,
)


@pytest.fixture
def catalog(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    with Catalog(engine) as cat:
        rose, daisy = cat.label_id("rose"), cat.label_id("daisy")
        rows = [  # path, label, split, width, height, format, size
            ("/photos/2024/a.jpg", rose, "train", 640, 480, "JPEG", 120_000),
            ("/photos/2024/trip/b.jpg", daisy, "test", 1920, 1080, "JPEG", 2_400_000),
            ("/photos/2025/c.png", rose, "test", 300, 300, "PNG", 90_000),
            ("/photos/2025/d.png", None, None, 64, 64, "PNG", 4_000),
            ("/scans/100%_e.png", None, "val", 2000, 3000, "PNG", 9_000_000),
            ("/photos/2024/dup.jpg", rose, "train", 640, 480, "JPEG", 120_000),
        ]
        for path, label, split, width, height, fmt, size in rows:
            cat.add_image(path=path, sha256=path, status="duplicate" if "dup" in path else "ok", split=split,
                          label_id=label, width=width, height=height, format=fmt, size_bytes=size)
        cat.commit()
        yield cat


def paths(catalog, text):
    wanted = set(catalog.matching_ids(parse_filter(text)))
    return sorted(row.path.rsplit("/", 1)[-1] for row in catalog.images() if row.id in wanted)


def test_the_grammar_builds_a_typed_tree():
    assert parse_filter('label = "rose" and width >= 500') == Every(
        (Compare("label", "=", "rose"), Compare("width", ">=", 500)))
    assert parse_filter("not label in ['a', \"b\"] or path prefix '/x'") == Either(
        (Negation(Member("label", ("a", "b"))), Prefix("path", "/x")))
    assert parse_filter("LABEL NOT IN ('a') AND size < 1.5e3") == Every(
        (Member("label", ("a",), negate=True), Compare("size", "<", 1500)))
    assert parse_filter('label == "it\\"s"') == Compare("label", "=", 'it"s')
    moment = parse_filter('ingested >= "2026-01-31"').value
    assert moment == datetime(2026, 1, 31, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ('colour = "red"', "unknown field 'colour'; fields: label"),
    ("label = 3", "label is text; got the number 3"),
    ('width = "wide"', "width is a number; got the string 'wide'"),
    ('label < "b"', "label is text: '<' does not apply"),
    ('width prefix "1"', "prefix applies to text fields"),
    ('ingested > "yesterday"', "not an ISO date"),
    ('label = "x" and', "ends too early"),
    ('label = "x" label = "y"', "unexpected 'label' at column 13"),
    ("label in []", "the list is empty"),
    ("label = 'x'; DROP TABLE images", "unexpected '; DROP TABLE' at column 12"),
    ("(" * 40 + "label = 'x'" + ")" * 40, "nested 40 deep"),
    ("label in [" + ", ".join(f"'{i}'" for i in range(10_000)) + "]", "characters; at most"),
    (" or ".join(f"width = {i}" for i in range(MAX_TERMS + 1)), f"{MAX_TERMS + 1:,} terms; at most"),
])
def test_bad_filters_name_the_problem(text, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace("[", r"\[")) as caught:
        parse_filter(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"], indirect=True)
def test_filters_select_the_matching_ok_images(catalog):
    assert paths(catalog, 'label = "rose"') == ["a.jpg", "c.png"], "the duplicate is not an ok image"
    assert paths(catalog, 'label != "rose"') == ["100%_e.png", "b.jpg", "d.png"], "no label is 'not rose'"
    assert paths(catalog, 'not label = "rose"') == ["100%_e.png", "b.jpg", "d.png"]
    assert paths(catalog, "label not in ['rose', 'daisy']") == ["100%_e.png", "d.png"]
    assert paths(catalog, 'split in ["test", "val"] and width >= 300') == ["100%_e.png", "b.jpg", "c.png"]
    assert paths(catalog, 'folder = "/photos/2024"') == ["a.jpg", "b.jpg"], "any depth below"
    assert paths(catalog, 'folder = "/photos/2024/"') == ["a.jpg", "b.jpg"]
    assert paths(catalog, 'folder != "/photos"') == ["100%_e.png"]
    assert paths(catalog, 'path prefix "/photos/202"') == ["a.jpg", "b.jpg", "c.png", "d.png"]
    assert paths(catalog, 'format = "PNG" and (size > 1e6 or height < 100)') == ["100%_e.png", "d.png"]
    assert paths(catalog, 'ingested <= "2000-01-01"') == []
    today = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    assert len(paths(catalog, f'ingested >= "{today}"')) == 5


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"], indirect=True)
def test_values_are_bound_never_pasted_into_sql(catalog):
    """SQL in values is a plain string compared with the column; LIKE wildcards in a prefix are literal."""
    assert paths(catalog, "label = \"x' OR '1'='1\"") == []
    assert paths(catalog, "label = 'rose\\' OR 1=1 --'") == []
    assert paths(catalog, "path prefix '%'") == [], "% is a literal character, not a wildcard"
    assert paths(catalog, "path prefix '/scans/100%'") == ["100%_e.png"]
    assert paths(catalog, "path prefix '/photos/2024/_'") == [], "_ is literal too"
    assert paths(catalog, 'label in ["rose", "x\\"); DELETE FROM images; --"]') == ["a.jpg", "c.png"]
    assert catalog.count_images() == 5, "nothing was deleted"
    for text in ["label; DROP TABLE images = 'x'", "images.id = 1", "1 = 1", "label = label"]:
        with pytest.raises(FilterError):
            parse_filter(text)


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"], indirect=True)
def test_a_prefix_means_the_same_on_both_databases(catalog):
    """Case-sensitive (SQLite's LIKE is not, so SQLite gets a byte range), and exact at the range's ends."""
    assert paths(catalog, 'path prefix "/PHOTOS/"') == [] and paths(catalog, 'folder = "/Photos/2024"') == []
    assert paths(catalog, 'path prefix "/photos/2024/"') == ["a.jpg", "b.jpg"]
    assert paths(catalog, 'path prefix "/photos/2025/d.png"') == ["d.png"], "the whole path is a prefix of itself"
    assert paths(catalog, 'path prefix "/photos/2024/trip/b.jpgx"') == []
    assert paths(catalog, 'path prefix ""') == ["100%_e.png", "a.jpg", "b.jpg", "c.png", "d.png"]
    assert paths(catalog, 'not path prefix "/photos/"') == ["100%_e.png"]


def test_sqlite_answers_a_path_prefix_from_the_path_index(tmp_path):
    from sqlalchemy import event

    from storage.filter_sql import _after_prefix

    assert _after_prefix("ab") == "ac" and _after_prefix("a\U0010ffff") == "b" and _after_prefix("\U0010ffff") is None
    assert _after_prefix("\ud7ff") == "\ue000" and _after_prefix("é") == "ê"
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade(engine)
    sent = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append((args[2], args[3])))
    with Catalog(engine) as catalog:
        assert catalog.matching_ids(parse_filter('path prefix "/photos/"')) == []
    statement, values = next((text, values) for text, values in sent if "images.path >=" in text)
    assert "LIKE" not in statement and "/photos/" in values and "/photos0" in values
    with engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, values))
    assert "USING INDEX" in plan and "path" in plan, plan  # the path index, not a read of every row


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("narrow_share", [0.0, 1.0], ids=["exists-form", "in-form"])
def test_user_fields_are_typed_and_filterable(catalog, narrow_share, monkeypatch):
    import storage.catalog_fields
    from storage.fields import FieldTypeError

    monkeypatch.setattr(storage.catalog_fields, "NARROW_SHARE", narrow_share)  # both SQL forms give the same answers
    chosen = []
    narrow = catalog._few_match
    monkeypatch.setattr(catalog, "_few_match",
                        lambda field, match, limit: chosen.append(narrow(field, match, limit)) or chosen[-1])

    ids = {row.path.rsplit("/", 1)[-1]: row.id for row in catalog.images()}
    catalog.declare_field("colour", "text")
    catalog.declare_field("price", "number")
    catalog.declare_field("taken", "date")
    catalog.set_fields(ids["a.jpg"], {"colour": "red", "price": "12.5", "taken": "2024-06-01"})
    catalog.set_fields(ids["b.jpg"], {"colour": "blue", "price": 99, "taken": "2025-01-02T10:00:00+01:00"})
    catalog.set_fields(ids["c.png"], {"colour": "red"})
    catalog.commit()
    assert catalog.fields() == {"colour": "text", "price": "number", "taken": "date"}
    got = lambda text: sorted(  # noqa: E731
        name for name, i in ids.items() if i in set(catalog.matching_ids(catalog.parse_filter(text))))
    assert got('colour = "red"') == ["a.jpg", "c.png"]
    assert got('colour != "red"') == ["100%_e.png", "b.jpg", "d.png"], "no value is 'not red'"
    assert got("price >= 50 or colour in ['blue']") == ["b.jpg"]
    assert got('price < 50 and label = "rose"') == ["a.jpg"]
    assert got('taken >= "2025-01-01"') == ["b.jpg"]
    assert got('colour prefix "r" and not price > 20') == ["a.jpg", "c.png"]
    assert set(chosen) == {narrow_share > 0}, "the form under test was the one written"
    assert catalog.image_fields([ids["a.jpg"]])[ids["a.jpg"]]["price"] == 12.5
    with pytest.raises(FilterError, match="colour is text; got the number 3"):
        catalog.parse_filter("colour = 3")
    with pytest.raises(FilterError, match="unknown field 'size_cm'; fields: label.*colour, price, taken"):
        catalog.parse_filter("size_cm = 3")
    with pytest.raises(FieldTypeError, match="field 'price' is a number; got 'cheap'"):
        catalog.set_fields(ids["a.jpg"], {"price": "cheap"})
    with pytest.raises(FieldTypeError, match="field 'colour' is text; got a number value"):
        catalog.declare_field("colour", "number")
    with pytest.raises(FieldTypeError, match="not declared"):
        catalog.set_fields(ids["a.jpg"], {"weight": 3})
    with pytest.raises(FieldTypeError, match="field name"):
        catalog.declare_field("x'; DROP TABLE images; --", "text")
    catalog.rollback()
    catalog.set_fields(ids["a.jpg"], {"colour": "x' OR '1'='1"})  # a value is data, never SQL
    catalog.commit()
    assert got("colour = \"x' OR '1'='1\"") == ["a.jpg"] and got("colour = 'x'") == []
    catalog.set_fields(ids["a.jpg"], {"colour": None})
    assert catalog.image_fields([ids["a.jpg"]])[ids["a.jpg"]].get("colour") is None
    catalog.remove_images([ids["b.jpg"]])
    catalog.commit()
    assert catalog.image_fields([ids["b.jpg"]]) == {}, "values go with their image"


@pytest.mark.parametrize("text", ["colt's foot", 'the "best" rose', "back\\slash", 'both \\" and \'', ""])
def test_a_quoted_value_parses_back_to_itself(text):
    assert parse_filter(f"label = {quoted(text)}") == Compare("label", "=", text)
    assert parse_filter(f"label in [{quoted(text)}, 'x']") == Member("label", (text, "x"))
