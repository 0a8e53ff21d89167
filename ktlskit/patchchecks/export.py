"""``ktlskit patches export DIR``: each series as ``git format-patch`` files ready to post.

Per series, in a scratch git repository holding only the files the patches
touch (from the pristine tree, with earlier series applied): ``git am`` the
patches, then ``git format-patch`` with the target tree in the subject prefix
(the one the stored subjects name, else ``net`` when a patch has Fixes:, else
``net-next``; ``RFC`` kept where the stored subjects have it), the stored cover letter's
subject and text in place of git's placeholders, a fresh shortlog and
diffstat, ``To:`` (lists) and ``Cc:`` (people) from ``get_maintainer.pl``
per patch and their union on the cover letter, and a ``base-commit:`` line
followed, for a series that applies on top of earlier ones, by one
``prerequisite-patch-id:`` per earlier patch (``git patch-id --stable``, as
``git format-patch --base`` writes them), computed from the patches as they are
now, so they cannot go stale.
The base is the tree's ``HEAD`` when it is a git tree; a tree without history
(a Debian source package) is named by the upstream tag of its version, e.g.
``v7.3.4``, which is what ``b4``/``git`` resolve, and the caller is told so.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import KtlskitError
from ..kernel.source import KernelSource
from ..shell import cmd
from . import maintainers
from .fixes import has_history
from .model import SeriesGroup
from .patchfile import PatchFile
from .patchset import PatchSet
from .seriescheck import designated_tree

GIT_ENV = {"GIT_COMMITTER_NAME": "ktlskit export", "GIT_COMMITTER_EMAIL": "export@localhost",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
_SHORTLOG = re.compile(r"^\S.* \(\d+\):$")


class ExportError(KtlskitError):
    """The series cannot be exported as it is."""


@dataclass(frozen=True)
class ExportedSeries:
    name: str
    directory: Path
    files: tuple[Path, ...]
    tree: str
    base: str
    base_note: str  # how the base was chosen
    to: tuple[str, ...]
    cc: tuple[str, ...]


def base_of(src: KernelSource) -> tuple[str, str]:
    """The base-commit value and a sentence on where it comes from."""
    if has_history(src.path):
        sha = cmd(["git", "-C", src.path, "rev-parse", "HEAD"], timeout=30).stdout.strip()
        return sha, f"HEAD of the git tree {src.path}"
    return version_tag(src.version), (
        f"{src.path} has no git history ({src.kind} {src.ident}); base-commit names the "
        f"upstream tag of its version, Linux {src.version}")


def version_tag(version: str) -> str:
    """``7.3.4`` -> ``v7.3.4``; ``7.3.0`` -> ``v7.3``; ``7.4.0-rc2`` -> ``v7.4-rc2``."""
    m = re.match(r"^(\d+)\.(\d+)\.(\d+)(.*)$", version)
    if not m:
        return f"v{version}"
    sub = f".{m[3]}" if m[3] != "0" else ""
    return f"v{m[1]}.{m[2]}{sub}{m[4]}"


def export(ps: PatchSet, src: KernelSource, out: Path, *, force: bool = False,
           version: int = 1, tree_override: str | None = None) -> list[ExportedSeries]:
    for g in ps.groups:
        _refuse_unpostable(g)
    dests = [out / g.name for g in ps.groups]
    busy = [d for d in dests if d.is_dir() and any(d.glob("*.patch"))]
    if busy and not force:
        raise ExportError(f"{', '.join(map(str, busy))} already hold patches; "
                          "--force replaces them")
    base, note = base_of(src)
    done = []
    with tempfile.TemporaryDirectory(prefix="ktlskit-export-") as tmp:
        repo = Path(tmp) / "repo"
        _init_repo(repo, src.path, {f.path for p in ps.patches for f in p.files})
        prereqs: list[str] = []  # the patch ids of the earlier series' patches
        for g, dest in zip(ps.groups, dests, strict=True):
            start = _head(repo)
            _am(repo, g.patches)
            if dest.exists():
                shutil.rmtree(dest)
            tree = tree_override or named_tree(g) or designated_tree(g)
            files = _format_patch(repo, start, dest, g, tree, version)
            ids = patch_ids("".join(f.read_text() for f in files[1 if g.cover else 0:]))
            to, cc = _address(files, src.path, g.cover is not None)
            _add_base(files[0], base, prereqs)
            prereqs += ids
            done.append(ExportedSeries(g.name, dest, tuple(files), tree, base, note, to, cc))
    return done


def named_tree(g: SeriesGroup) -> str | None:
    """The tree the patches' own subjects name (``[RFC PATCH net-next 1/3]``), if one."""
    named = {p.tags.tree for p in g.patches} - {None}
    return named.pop() if len(named) == 1 else None


def is_rfc(g: SeriesGroup) -> bool:
    """Whether the stored subjects mark the series as an RFC; the export keeps that."""
    return any("RFC" in p.tags.words for p in (*g.patches, *([g.cover] if g.cover else [])))


def _refuse_unpostable(g: SeriesGroup) -> None:
    for p in g.patches:
        if not p.author_email or not p.subject:
            raise ExportError(f"{p.name}: not a git format-patch file (no From:/Subject:), "
                              "cannot be posted as it is")
    if len(g.patches) >= 3 and g.cover is None:
        raise ExportError(f"series {g.name}: {len(g.patches)} patches and no cover letter "
                          "(0000-cover-letter.patch next to them)")


def _git(repo: Path, *args: str, input_text: str | None = None) -> str:
    return cmd(["git", "-C", repo, *args], timeout=300, env=GIT_ENV,
               input_text=input_text).stdout


def _head(repo: Path) -> str:
    return _git(repo, "rev-parse", "HEAD").strip()


def _init_repo(repo: Path, tree: Path, files: set[str]) -> None:
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    for f in sorted(files):
        if (tree / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / f, repo / f)
    # the tree's .gitattributes gives C files "diff=cpp" hunk headers, as in the kernel's repo
    attrs = tree / ".gitattributes"
    (repo / ".git/info/attributes").write_text(attrs.read_text() if attrs.is_file()
                                               else "*.c diff=cpp\n*.h diff=cpp\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=ktlskit", "-c", "user.email=export@localhost",
         "commit", "-q", "--allow-empty", "-m", "base")


def _am(repo: Path, patches: tuple[PatchFile, ...]) -> None:
    for p in patches:
        res = cmd(["git", "-C", repo, "am", "-q", "--keep-cr", str(p.path)], timeout=120,
                  env=GIT_ENV, check=False)
        if res.rc != 0:
            cmd(["git", "-C", repo, "am", "--abort"], timeout=60, env=GIT_ENV, check=False)
            raise ExportError(f"{p.name}: git am failed:\n{res.stdout}{res.stderr}")


def _format_patch(repo: Path, start: str, dest: Path, g: SeriesGroup, tree: str,
                  version: int) -> list[Path]:
    prefix = f"{'RFC ' if is_rfc(g) else ''}PATCH {tree}"
    args = ["format-patch", "-q", "--abbrev=12", "-o", str(dest), f"--subject-prefix={prefix}",
            "--no-base"]
    if version > 1:
        args.append(f"-v{version}")
    if g.cover is not None:
        args.append("--cover-letter")
    if len(g.patches) > 1:
        args.append("--numbered")
    # git writes the cover letter From: the committer: make that the cover's author
    author = g.cover or g.patches[0]
    cmd(["git", "-C", repo, *args, f"{start}..HEAD"], timeout=300,
        env={**GIT_ENV, "GIT_COMMITTER_NAME": author.author_name or "",
             "GIT_COMMITTER_EMAIL": author.author_email or ""})
    files = sorted(dest.glob("*.patch"))
    if g.cover is not None:
        _fill_cover(files[0], g.cover)
    return files


def cover_text(cover: PatchFile) -> str:
    """The stored cover letter's own text: without shortlog, diffstat and base-commit."""
    lines = cover.message.splitlines()
    for i, line in enumerate(lines):
        if _SHORTLOG.match(line) and i + 1 < len(lines) and lines[i + 1].startswith("  "):
            lines = lines[:i]
            break
    lines = [ln for ln in lines if not ln.startswith(("base-commit:", "prerequisite-patch-id:"))]
    return "\n".join(lines).rstrip() + "\n"


def _fill_cover(path: Path, cover: PatchFile) -> None:
    text = path.read_text()
    if "*** SUBJECT HERE ***" not in text or "*** BLURB HERE ***" not in text:
        raise ExportError(f"{path}: git format-patch wrote no cover letter placeholders")
    text = text.replace("*** SUBJECT HERE ***", cover.title, 1)
    text = text.replace("*** BLURB HERE ***\n", cover_text(cover), 1)
    path.write_text(text)


def _address(files: list[Path], tree: Path, has_cover: bool) -> tuple[tuple[str, ...],
                                                                        tuple[str, ...]]:
    all_to: dict[str, None] = {}
    all_cc: dict[str, None] = {}
    patches = files[1:] if has_cover else files
    for f in patches:
        to, cc = _recipients(tree, f)
        all_to.update(dict.fromkeys(to))
        all_cc.update(dict.fromkeys(cc))
        _add_headers(f, to, cc)
    if has_cover:
        _add_headers(files[0], list(all_to), list(all_cc))
    return tuple(all_to), tuple(all_cc)


def _recipients(tree: Path, patch: Path) -> tuple[list[str], list[str]]:
    found = [r for r in maintainers.for_patch(tree, patch) if r.email not in maintainers.IGNORED]
    to = list(dict.fromkeys(r.address for r in found if r.is_list))
    cc = list(dict.fromkeys(r.address for r in found if not r.is_list))
    return to, cc


def _add_headers(path: Path, to: list[str], cc: list[str]) -> None:
    text = path.read_text()
    head, sep, body = text.partition("\n\n")
    extra = "".join(f"\n{name}: " + ",\n    ".join(addrs)
                    for name, addrs in (("To", to), ("Cc", cc)) if addrs)
    path.write_text(head + extra + sep + body)


def patch_ids(mbox: str) -> list[str]:
    """``git patch-id --stable`` of each patch in ``mbox`` (patch files concatenated), in order."""
    out = cmd(["git", "patch-id", "--stable"], timeout=60, env=GIT_ENV, input_text=mbox).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _add_base(first: Path, base: str, prereqs: list[str]) -> None:
    """``base-commit:`` and ``prerequisite-patch-id:`` lines before the mail signature of the
    first file (cover or single patch)."""
    text = first.read_text()
    idx = text.rfind("\n-- \n")
    line = f"\n\nbase-commit: {base}" + "".join(f"\nprerequisite-patch-id: {p}"
                                                  for p in prereqs)
    text = text[:idx] + line + text[idx:] if idx != -1 else text.rstrip("\n") + line + "\n"
    first.write_text(text)
