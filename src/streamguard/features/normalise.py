"""Model input without project vocabulary (``PreprocessConfig.normalise_identifiers``).

A model trained on FFmpeg learns FFmpeg's names (``avctx``, ``AVPacket``, ``bytestream2_get_le16``); on QEMU
those n-grams and embeddings mean nothing. Normalised, a function keeps what transfers between projects:

- local variables, parameters, globals and macros used as values -> ``VAR_i``; user functions (called or
  defined) -> ``FUN_i``; user types -> ``TYPE_i``; struct fields -> ``FIELD_i``; goto labels -> ``LBL_i``, each
  numbered in order of first appearance, one name one placeholder throughout the function (fields and labels
  have their own name spaces, as in C);
- kept as written: C keywords and standard types, libc/POSIX names and common macros (``KEPT``: the near-duplicate
  key's ``neardup.KEPT_NAMES`` plus the list below), the risky APIs and their wrappers (``risky_api``: FFmpeg's
  ``av_malloc`` and GLib's ``g_free`` stay, since the risky-API list counts them as their libc family),
  operators and punctuation, character literals;
- integer literals are kept where they carry meaning across projects (values up to 255, powers of two and
  masks 2^k - 1: sizes, shifts, ``0xff``); other numbers become ``NUM``;
- string contents become ``"STR"`` (still a C string, so the parser sees a literal) and comments are dropped.

Newlines are kept (a comment or string spanning lines leaves its newlines), so line N of the normalised text
is line N of the function: line evidence computed on it points at the right source line.

Which name is a type, a function or a field comes from tree-sitter (the grammar knows ``T *p;`` is a
declaration and ``a * b`` a product, which a token rule cannot tell); names the parser does not place
(directive lines, which are blanked before parsing as in ``features.ast``) fall back to a token rule: followed by
``(`` a function, after ``->``/``.`` a field, else a variable. The output is a fixed point: normalising it again
changes nothing, so code that went through it once (the processed record) may go through it again.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from streamguard.data.extract import C_LANGUAGE
from streamguard.data.neardup import KEPT_NAMES
from streamguard.data.risky_api import risky_name
from streamguard.features.ast import strip_directives

# libc/POSIX names and macros every C project shares, beyond the near-duplicate key's list
EXTRA_KEPT = frozenset("""
fread fgets fgetc getc getchar ungetc sscanf fscanf fputc putc perror strerror strtok strtok_r strspn strcspn
strpbrk strcasestr strncasecmp memrchr bzero bcopy wcslen wcscpy wcsncpy isalpha isdigit isspace isupper islower
isalnum isxdigit isprint iscntrl ispunct toupper tolower abs labs llabs qsort bsearch rand srand time clock
getenv setenv unsetenv socket bind listen accept connect send sendto recvfrom select poll fcntl stat fstat lstat
access unlink rename mkdir rmdir opendir readdir closedir getpid getuid fork kill signal dup dup2 pipe chmod
chown umask htons htonl ntohs ntohl pthread_mutex_lock pthread_mutex_unlock pthread_create pthread_join
EOF SEEK_SET SEEK_CUR SEEK_END EINVAL ENOMEM EIO EAGAIN EINTR ENOENT EEXIST EPERM EACCES EFAULT ENOSPC ERANGE
EOVERFLOW ENOSYS EBADF EBUSY ENODEV ENOTSUP EPIPE ETIMEDOUT INT_MAX INT_MIN UINT_MAX LONG_MAX LONG_MIN ULONG_MAX
LLONG_MAX LLONG_MIN SIZE_MAX SSIZE_MAX INT8_MAX INT8_MIN INT16_MAX INT16_MIN INT32_MAX INT32_MIN INT64_MAX
INT64_MIN UINT8_MAX UINT16_MAX UINT32_MAX UINT64_MAX CHAR_BIT CHAR_MAX SHRT_MAX PATH_MAX BUFSIZ FILENAME_MAX
O_RDONLY O_WRONLY O_RDWR O_CREAT O_TRUNC O_APPEND O_EXCL STDIN_FILENO STDOUT_FILENO STDERR_FILENO stdin stdout
stderr EXIT_SUCCESS EXIT_FAILURE offsetof likely unlikely MIN MAX ARRAY_SIZE define undef ifdef ifndef elif
endif include pragma defined uint_least8_t wchar_t
""".split())
KEPT = KEPT_NAMES | EXTRA_KEPT
PLACEHOLDER = re.compile(r"(?:VAR|FUN|TYPE|FIELD|LBL)_\d+|NUM|STR")
_PREFIX = {"identifier": "VAR", "type_identifier": "TYPE", "field_identifier": "FIELD",
           "statement_identifier": "LBL"}
_LEXEME = re.compile(r'(?P<comment>/\*.*?\*/|//[^\n]*)|(?P<string>"(?:\\.|[^"\\])*")|'
                     r"(?P<char>'(?:\\.|[^'\\\n])*')|(?P<name>[A-Za-z_]\w*)|(?P<number>\.?\d(?:[\w.]|[eEpP][+-])*)",
                     re.S)
_INT = re.compile(r"(0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9]\d*)[uUlL]*")


def _parser():
    from tree_sitter import Parser
    return Parser(C_LANGUAGE)


_PARSER = None


def _roles(code: str) -> dict[int, str]:
    """Character offset of each name the parser placed -> VAR/FUN/TYPE/FIELD/LBL, or KEEP for the grammar's own
    names (primitive types, NULL, true/false)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = _parser()
    source = strip_directives(code).encode("utf-8")
    to_char = None if code.isascii() else _byte_to_char(code)
    roles: dict[int, str] = {}
    stack = [_PARSER.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.child_count:
            stack.extend(node.children)
            continue
        kind = node.type
        if kind in ("primitive_type", "null", "true", "false"):
            role = "KEEP"
        elif kind in _PREFIX:
            role = _PREFIX[kind]
            parent = node.parent
            if kind == "identifier" and parent is not None and (
                    (parent.type == "call_expression" and parent.child_by_field_name("function") == node)
                    or (parent.type == "function_declarator" and parent.child_by_field_name("declarator") == node)):
                role = "FUN"
        else:
            continue
        start = node.start_byte
        roles[start if to_char is None else to_char[start]] = role
    return roles


def _byte_to_char(code: str) -> dict[int, int]:
    out, pos = {}, 0
    for i, ch in enumerate(code):
        out[pos] = i
        pos += len(ch.encode("utf-8"))
    return out


def _fallback_role(code: str, start: int, end: int) -> str:
    before = code[:start].rstrip()
    if before.endswith(("->", ".")):
        return "FIELD"
    return "FUN" if code[end:].lstrip().startswith("(") else "VAR"


def _number(text: str) -> str:
    m = _INT.fullmatch(text)
    if not m:
        return "NUM"
    digits = m.group(1)
    value = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits[2:], 2) if digits[:2] in ("0b", "0B") \
        else int(digits, 8) if len(digits) > 1 and digits[0] == "0" else int(digits)
    meaningful = value <= 255 or (value & (value - 1)) == 0 or (value & (value + 1)) == 0
    return text if meaningful and value <= 2 ** 32 else "NUM"


def normalise_code(code: str) -> str:
    """The function with project vocabulary abstracted (module docstring); line structure is kept."""
    roles = _roles(code)
    # an ordinary name is a type or a function wherever the parser saw it as one once (``sizeof(T)`` and a
    # callback passed by name parse as values)
    rank = {"TYPE": 2, "FUN": 1}
    ordinary: dict[str, str] = {}
    for m in _LEXEME.finditer(code):
        role = roles.get(m.start()) if m.lastgroup == "name" else None
        if role in rank and rank[role] > rank.get(ordinary.get(m.group(0), ""), 0):
            ordinary[m.group(0)] = role
    names: dict[tuple[str, str], str] = {}  # C's name spaces: fields and labels apart from the ordinary names
    counts: dict[str, int] = {}

    def name(m: re.Match) -> str:
        text = m.group(0)
        if text in KEPT or PLACEHOLDER.fullmatch(text) or risky_name(text):
            return text
        role = roles.get(m.start()) or _fallback_role(code, m.start(), m.end())
        if role == "KEEP":
            return text
        if role not in ("FIELD", "LBL"):
            role = ordinary.get(text, role)
        key = (role if role in ("FIELD", "LBL") else "", text)
        if key not in names:
            names[key] = f"{role}_{counts.get(role, 0)}"
            counts[role] = counts.get(role, 0) + 1
        return names[key]

    def repl(m: re.Match) -> str:
        kind = m.lastgroup
        text = m.group(0)
        if kind == "comment":
            return "\n" * text.count("\n") or " "
        if kind == "string":
            return '"STR"' + "\n" * text.count("\n")
        if kind == "number":
            return _number(text)
        return name(m) if kind == "name" else text

    return _LEXEME.sub(repl, code)


def normaliser(prep_dir: Path | str) -> Callable[[str], str]:
    """What the model of a processed dataset (or a bundle's ``preprocess/``) reads instead of the code:
    ``normalise_code`` where it was preprocessed with ``normalise_identifiers``, else the code unchanged."""
    from streamguard.features.processed import ProcessedDir
    data = ProcessedDir(prep_dir)
    if not data.meta_path.is_file():  # no record of the preprocessing (a hand-made folder): nothing was applied
        return _same
    meta = data.metadata
    return normalise_code if (meta.get("config") or {}).get("normalise_identifiers") else _same


def _same(code: str) -> str:
    return code
