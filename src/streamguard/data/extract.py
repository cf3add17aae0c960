"""C sources on disk -> C function definitions: the one extractor that ``scan`` and corpus building share.

``iter_c_files`` walks files and directories the way source tools usually do (``.git`` and other VCS folders
skipped, directory symlinks not followed, so no loop is possible; each real file once) and accounts for every
candidate: a file is either read (``data`` set) or skipped with a reason. ``extract_functions`` parses one file
with tree-sitter-c and returns every ``function_definition`` with its name, line span and byte span.

Byte spans index the file's bytes as read; ``code`` is that slice decoded as UTF-8 with replacement, so a file
that is not valid UTF-8 still yields its functions (``CFile.non_utf8`` says so).
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import tree_sitter_c
from tree_sitter import Language, Node, Parser

C_LANGUAGE = Language(tree_sitter_c.language())  # the one C grammar: extraction, ASTs, normalisation, fingerprints
DEFAULT_INCLUDE = ("*.c", "*.h")
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"})
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
BINARY_SNIFF = 8192  # the first bytes looked at for a NUL (git's rule for "binary")

# Skip reasons, stable strings for summaries and JSON.
NOT_FOUND = "not found"
UNREADABLE = "unreadable"
BINARY = "binary"
TOO_LARGE = "size cap"
SPECIAL = "not a regular file"          # a FIFO, device or socket: reading one could block forever
OUTSIDE = "symlink out of the tree"     # a file link leaving the scanned folder (unless follow_symlinks)

# A macro-made function header: a macro call starting a line, its arguments with no nested parentheses.
_MACRO_HEAD = re.compile(rb"^([A-Za-z_]\w*)[ \t]*\(([^()]*)\)\s*\Z", re.MULTILINE)
_KEYWORDS = {b"if", b"while", b"for", b"switch", b"return", b"sizeof"}
_MACRO_LOOKBACK = 600
# Declarator wrappers between a function_definition and its name.
_DECLARATOR_WRAPPERS = {"function_declarator", "pointer_declarator", "parenthesized_declarator",
                        "attributed_declarator", "reference_declarator"}
# Nodes that can hold function definitions (top level, #if blocks, extern "C", error recovery).
_CONTAINERS = {"translation_unit", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif",
               "preproc_elifdef", "linkage_specification", "declaration_list", "ERROR"}


@dataclasses.dataclass(frozen=True)
class CFunction:
    path: str          # as given / relative to the scan root
    name: str
    start_line: int    # 1-based, inclusive
    end_line: int
    start_byte: int
    end_byte: int
    code: str


@dataclasses.dataclass(frozen=True)
class CFile:
    """One candidate file: read (``data`` holds its bytes) or skipped (``skip`` says why, ``detail`` more)."""
    path: str                   # relative to the root when under it, else as found; POSIX separators
    abspath: Path
    data: bytes | None = None
    skip: str | None = None     # NOT_FOUND | UNREADABLE | BINARY | TOO_LARGE | SPECIAL | OUTSIDE
    detail: str = ""
    non_utf8: bool = False      # read, but not valid UTF-8: decoded with replacement

    @property
    def text(self) -> str:
        return (self.data or b"").decode("utf-8", errors="replace")


def _node_name(node: Node, source: bytes) -> str:
    """The function's name: the identifier inside its (possibly pointer/parenthesised) declarator."""
    decl = node.child_by_field_name("declarator")
    while decl is not None and decl.type in _DECLARATOR_WRAPPERS:
        inner = decl.child_by_field_name("declarator") or next(iter(decl.named_children), None)
        if inner is None:
            break
        decl = inner
    if decl is not None and decl.type in ("identifier", "field_identifier", "qualified_identifier"):
        return source[decl.start_byte:decl.end_byte].decode("utf-8", errors="replace")
    # Macro-made headers (``SYSCALL_DEFINE2(name, ...)``) parse oddly: fall back to the text before "(".
    head = source[node.start_byte:min(node.end_byte, node.start_byte + 400)].decode("utf-8", errors="replace")
    head = head.split("(", 1)[0].split()
    return head[-1].lstrip("*") if head else "<anonymous>"


def extract_functions(source: bytes | str, path: str = "") -> list[CFunction]:
    """Every tree-sitter-c ``function_definition`` in ``source``, in file order (nested ones are not split out).

    Never raises on any input; code tree-sitter cannot make sense of simply yields fewer functions.
    """
    return [fn for fn, _ in function_nodes(source, path)]


def function_nodes(source: bytes | str, path: str = "") -> list[tuple[CFunction, Node | None]]:
    """``extract_functions`` with each function's node in the file's tree, for callers that need more of its
    syntax than the text (the scan's fingerprints) without parsing it again. The node is None for a body after a
    macro-made header (``SYSCALL_DEFINE3(...) {...}``): the header is not part of any node."""
    data = source.encode("utf-8", errors="replace") if isinstance(source, str) else bytes(source)
    try:
        root = Parser(C_LANGUAGE).parse(data).root_node
    except (ValueError, RuntimeError):
        return []
    out: list[tuple[CFunction, Node | None]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        for child in reversed(node.children):
            if child.type == "function_definition":
                out.append((_function(child, data, path), child))
            elif child.type == "compound_statement":
                fn = _macro_function(child, data, path)
                if fn is not None:
                    out.append((fn, None))
            elif child.type in _CONTAINERS or child.has_error:
                stack.append(child)
    out.sort(key=lambda f: f[0].start_byte)
    return out


def _function(node: Node, data: bytes, path: str) -> CFunction:
    return CFunction(path=path, name=_node_name(node, data), start_line=node.start_point[0] + 1,
                     end_line=node.end_point[0] + 1, start_byte=node.start_byte, end_byte=node.end_byte,
                     code=data[node.start_byte:node.end_byte].decode("utf-8", errors="replace"))


def _macro_function(body: Node, data: bytes, path: str) -> CFunction | None:
    """A body at file level after a line-leading macro call (``SYSCALL_DEFINE3(setpriority, int, which, ...)``):
    tree-sitter cannot know the macro makes a function header, so the pair is recognised here. Its name is the
    macro's first argument (the defined function's name by convention), else the macro's name."""
    before = data[max(0, body.start_byte - _MACRO_LOOKBACK):body.start_byte]
    match = _MACRO_HEAD.search(before)
    if match is None or match.group(1) in _KEYWORDS:
        return None
    start = body.start_byte - len(before) + match.start()
    args = match.group(2).decode("utf-8", errors="replace").split(",")
    first = args[0].strip() if args else ""
    name = first if first.isidentifier() else match.group(1).decode()
    line = data.count(b"\n", 0, start) + 1
    return CFunction(path=path, name=name, start_line=line, end_line=body.end_point[0] + 1, start_byte=start,
                     end_byte=body.end_byte, code=data[start:body.end_byte].decode("utf-8", errors="replace"))


def matches_any(rel: str, patterns: Iterable[str]) -> bool:
    """A pattern without '/' matches the file or any folder name; with '/', the relative path (``*`` spans '/')."""
    parts = rel.split("/")
    for pat in patterns:
        pat = pat.rstrip("/")
        if "/" in pat:
            if fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel, pat + "/*"):
                return True
        elif any(fnmatch.fnmatchcase(p, pat) for p in parts):
            return True
    return False


def included(rel: str, name: str, include: list[str]) -> bool:
    """An include pattern without '/' matches the file name; with '/', the relative path."""
    return any(fnmatch.fnmatchcase(rel if "/" in pat else name, pat) for pat in include)


def relative_path(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_c_file(path: Path, rel: str, max_bytes: int = DEFAULT_MAX_BYTES) -> CFile:
    """Read one regular file, or say why not: not a regular file (a named pipe would block the read forever),
    unreadable, over the size cap, binary (a NUL in its first 8 KiB)."""
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once; fstat then says what was opened, so a
        # file swapped for a pipe after a check is still caught.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return CFile(rel, path, skip=UNREADABLE, detail=exc.strerror or type(exc).__name__)
    with open(fd, "rb", closefd=True) as fh:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return CFile(rel, path, skip=SPECIAL, detail=_file_type(st.st_mode))
            if st.st_size > max_bytes:
                return CFile(rel, path, skip=TOO_LARGE, detail=f"{st.st_size} bytes > {max_bytes}")
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            return CFile(rel, path, skip=UNREADABLE, detail=exc.strerror or type(exc).__name__)
    if len(data) > max_bytes:  # grew since stat
        return CFile(rel, path, skip=TOO_LARGE, detail=f"over {max_bytes} bytes")
    if b"\x00" in data[:BINARY_SNIFF]:
        return CFile(rel, path, skip=BINARY, detail="NUL byte in the first 8 KiB")
    try:
        data.decode("utf-8")
        non_utf8 = False
    except UnicodeDecodeError:
        non_utf8 = True
    return CFile(rel, path, data=data, non_utf8=non_utf8)


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"), (stat.S_ISDIR, "directory")):
        if test(mode):
            return name
    return "special file"


def walk_files(top: Path, root: Path, include: list[str], exclude: list[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False, onerror=None):
        here = Path(dirpath)
        # Sorted, in place: a stable order, and pruned folders are never entered.
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not (exclude and matches_any(relative_path(here / d, root), exclude)))
        for name in sorted(filenames):
            rel = relative_path(here / name, root)
            if included(rel, name, include) and not (exclude and matches_any(rel, exclude)):
                yield here / name


def iter_c_files(paths: Iterable[str | os.PathLike], include: list[str] | None = None,
                 exclude: list[str] | None = None, root: str | os.PathLike | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, follow_symlinks: bool = False) -> Iterator[CFile]:
    """Each C file under ``paths`` once, read or skipped with a reason.

    Directories are walked for ``include`` (default ``*.c``, ``*.h``) minus ``exclude``; a file named directly
    is taken whatever its extension (as grep and linters do) unless excluded. Paths are reported relative to
    ``root`` (default: the current directory) when under it. A file link met in a walked folder whose target
    lies outside that folder is skipped (``OUTSIDE``) unless ``follow_symlinks``: a tree must not pull in
    ``/etc/passwd`` through ``x.c -> /etc/passwd``. Only regular files are read.
    """
    include = list(include) if include else list(DEFAULT_INCLUDE)
    exclude = list(exclude or [])
    base = Path(root or os.getcwd()).resolve()
    seen: set[Path] = set()
    for given in paths:
        p = Path(given)
        top = p if p.is_absolute() else Path(os.path.abspath(p))
        walked = p.is_dir()
        if walked:
            candidates: Iterable[Path] = walk_files(top, base, include, exclude)
        elif p.exists() or p.is_symlink():
            candidates = [] if exclude and matches_any(relative_path(top, base), exclude) else [top]
        else:
            yield CFile(relative_path(top, base), top, skip=NOT_FOUND, detail="no such file or directory")
            continue
        for path in candidates:
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError) as exc:  # dangling link, link loop
                yield CFile(relative_path(path, base), path, skip=UNREADABLE, detail=f"cannot resolve ({exc})")
                continue
            if real in seen:
                continue
            seen.add(real)
            if walked and not follow_symlinks and not real.is_relative_to(top.resolve()):
                yield CFile(relative_path(path, base), path, skip=OUTSIDE, detail=f"points to {real}")
                continue
            yield read_c_file(path, relative_path(path, base), max_bytes)
