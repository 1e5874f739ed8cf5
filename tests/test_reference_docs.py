"""docs/reference/ is generated from the code (plugbay.docgen) and must match it."""

from __future__ import annotations

import difflib
from pathlib import Path

import click
import msgspec
import pytest

from plugbay import docgen, manifest
from plugbay.cli.app import command_group

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
REGENERATE = f".venv/bin/{docgen.REGENERATE} (from the repository root)"


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    return docgen.render_references()


@pytest.mark.parametrize("name", ["cli.md", "manifest.md"])
def test_reference_file_matches_the_code(generated: dict[str, str], name: str) -> None:
    path = REFERENCE / name
    assert path.is_file(), f"docs/reference/{name} is missing; generate it with: {REGENERATE}"
    on_disk = path.read_text(encoding="utf-8")
    if on_disk != generated[name]:
        diff = difflib.unified_diff(
            on_disk.splitlines(),
            generated[name].splitlines(),
            f"docs/reference/{name}",
            "generated from the code",
            lineterm="",
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"docs/reference/{name} is out of date with the code; regenerate it with: "
            f"{REGENERATE}\n{shown}",
            pytrace=False,
        )


def _commands(group: click.Group, ctx: click.Context) -> list[str]:
    paths = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        sub = click.Context(cmd, info_name=name, parent=ctx)
        paths.append(sub.command_path)
        if isinstance(cmd, click.Group):
            paths += _commands(cmd, sub)
    return paths


def test_every_registered_command_has_a_section(generated: dict[str, str]) -> None:
    group = command_group()
    paths = _commands(group, click.Context(group, info_name="plugbay"))
    assert {"plugbay install", "plugbay key generate", "plugbay index build"} <= set(paths)
    missing = [p for p in paths if f"\n## `{p}`\n" not in generated["cli.md"]]
    assert missing == []


def test_commands_registered_lazily_are_documented() -> None:
    # A group whose commands exist only when asked for, as a host's lazy group would be.
    class Lazy(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return ["later"]

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            if name != "later":
                return None
            return click.Command(
                "later",
                help="Made on demand.",
                params=[click.Option(["--when"], default="soon", help="When to run.")],
            )

    group = click.Group("root", commands=[Lazy("lazy", help="Lazy commands.")])
    ctx = click.Context(group, info_name="root")
    seen = {c.command_path: cmd for cmd, c in docgen._walk(group, ctx)}
    assert sorted(seen) == ["root lazy", "root lazy later"]
    later_ctx = click.Context(seen["root lazy later"], info_name="later")
    section = docgen._command_section(seen["root lazy later"], later_ctx, set())
    assert "| `--when TEXT` | `soon` | When to run. |" in section


def test_every_option_has_help_text() -> None:
    group = command_group()
    ctx = click.Context(group, info_name="plugbay")
    lacking = []
    for cmd, cctx in docgen._walk(group, ctx):
        if not cmd.help:
            lacking.append(cctx.command_path)
        lacking += [
            f"{cctx.command_path} {p.opts[-1]}"
            for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden and not p.help
        ]
    assert lacking == [], "add help text (help=... or a docstring) to these in src/plugbay/cli/"


def test_every_manifest_field_is_documented(generated: dict[str, str]) -> None:
    text = generated["manifest.md"]
    structs = [*manifest._STRUCT_AT.values(), manifest.Contribution]
    for struct in structs:
        descriptions = docgen.field_descriptions(struct)
        for field in msgspec.structs.fields(struct):
            row = f"| `{field.encode_name}` |"
            assert row in text, f"{struct.__name__}.{field.name}"
            assert descriptions[field.name] in text
    for name in manifest.MANIFEST_NAMES:
        assert f"`{name}`" in text
    assert 'one of `"python"`, `"exec"`, `"wasm"` | `"python"`' in text


class _Undocumented(msgspec.Struct):
    #: Documented.
    kept: int = 0
    forgotten: str = ""


def test_a_field_without_description_is_refused() -> None:
    with pytest.raises(docgen.DocgenError, match=r"_Undocumented: field forgotten has no desc"):
        docgen.field_descriptions(_Undocumented)


def test_output_does_not_depend_on_the_terminal(
    generated: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    monkeypatch.setenv("LINES", "5")
    assert docgen.cli_reference() == generated["cli.md"]


def test_main_writes_then_checks(
    generated: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Rendered once by the fixture: main() is about writing and comparing files.
    monkeypatch.setattr(docgen, "render_references", lambda: generated)
    out = tmp_path / "reference"
    assert docgen.main(["--check", "--out", str(out)]) == 1
    assert "cli.md is out of date; regenerate it with: python -m plugbay.docgen" in (
        capsys.readouterr().out
    )
    assert docgen.main(["--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cli.md", "manifest.md"]
    assert docgen.main(["--check", "--out", str(out)]) == 0
    (out / "manifest.md").write_text("edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert docgen.main(["--check", "--out", str(out)]) == 1
    assert capsys.readouterr().out == (
        f"{out / 'manifest.md'} is out of date; regenerate it with: python -m plugbay.docgen\n"
    )


def test_main_outside_the_repository_says_where_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert docgen.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no docs/ folder here")
    assert "run from the repository root, or give --out DIR" in err
    assert not (tmp_path / "docs").exists()
