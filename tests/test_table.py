from ktlskit import table


def test_render_aligns_numbers_right() -> None:
    out = table.render(["name", "n"], [("a", 1), ("bbb", 100)])
    lines = out.splitlines()
    assert lines[0].split() == ["name", "n"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].endswith("  1")
    assert lines[3].endswith("100")


def test_render_floats() -> None:
    assert "1.50" in table.render(["x"], [(1.5,)])
