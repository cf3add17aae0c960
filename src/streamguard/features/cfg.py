"""Statement-level control-flow graph of one C function, with each statement's definitions, uses and sinks.

Built from tree-sitter's tree (the same parse as the AST graph). Nodes are statements, conditions of
if/while/for/do/switch, case labels and the function's parameters; edges follow sequence, branches, loops,
switch fall-through, break/continue/return and goto (to its label, or to the exit when the label is unknown).
What a statement defines and uses is read off its expression, conservatively: ``*p = ...``, ``p->f = ...``
and ``a[i] = ...`` define the base variable without killing its other definitions, as do ``&x`` passed to a
call and the pointer given to ``free``. Used by ``features.taintflow``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tree_sitter import Node

from streamguard.data.risky_api import risky_name

# input-like calls: their result, and the buffers they are given, are attacker-controlled data
INPUT_CALLS = frozenset({"read", "pread", "readv", "recv", "recvfrom", "recvmsg", "fread", "fgets", "gets", "getenv",
                         "getline", "getdelim", "scanf", "fscanf", "sscanf", "vscanf", "vfscanf", "vsscanf", "getc",
                         "fgetc", "getchar", "copy_from_user", "get_user", "avio_read", "avio_rb32", "avio_rb16",
                         "avio_r8", "get_bits", "get_bits_long", "bytestream_get_byte", "bytestream2_get_byte",
                         "qemu_get_be32", "qemu_get_byte", "ldl_p", "ldq_p", "lduw_p"})
_DECLARATORS = ("pointer_declarator", "array_declarator", "parenthesized_declarator", "attributed_declarator",
                "init_declarator", "function_declarator")
_COMPOUND_OPS = frozenset({"+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "|=", "^="})
_LVALUE_WRAPPERS = ("pointer_expression", "field_expression", "subscript_expression", "parenthesized_expression",
                    "cast_expression")


@dataclass
class Facts:
    """What one CFG node does to variables: defs are (name, strong, source), strong ones kill the others."""
    defs: list[tuple[str, bool, bool]] = field(default_factory=list)
    uses: set[str] = field(default_factory=set)
    sink_vars: set[str] = field(default_factory=set)
    sink: bool = False


def _key(node: Node) -> tuple[int, int]:
    return node.start_byte, node.end_byte


def declared_name(node: Node | None) -> Node | None:
    """The identifier a declarator declares (through pointer, array, parenthesised and init declarators)."""
    while node is not None and node.type in _DECLARATORS:
        node = node.child_by_field_name("declarator")
    return node if node is not None and node.type == "identifier" else None


def base_variable(node: Node | None) -> Node | None:
    """The variable an lvalue or argument writes through: ``p`` of ``*p``, ``p->f``, ``p[i]``, ``&p``, ``(T)p``."""
    while node is not None and node.type in _LVALUE_WRAPPERS:
        if node.type == "parenthesized_expression":
            node = node.named_children[0] if node.named_child_count else None
        elif node.type == "cast_expression":
            node = node.child_by_field_name("value")
        else:
            node = node.child_by_field_name("argument")
    return node if node is not None and node.type == "identifier" else None


class FactReader:
    """Reads the Facts of one statement or condition from its tree-sitter subtree (iteratively: no recursion)."""

    def __init__(self, source: bytes, extra_inputs: frozenset[str] = frozenset()) -> None:
        self.source = source
        self.inputs = INPUT_CALLS | extra_inputs

    def text(self, node: Node) -> str:
        return self.source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")

    def idents(self, node: Node, skip: set[tuple[int, int]] | None = None) -> set[str]:
        """Variable names read in ``node``: not callees, not what sizeof measures, not ``skip``."""
        out, stack = set(), [node]
        while stack:
            n = stack.pop()
            if n.type == "identifier":
                if not skip or _key(n) not in skip:
                    out.add(self.text(n))
            elif n.type == "sizeof_expression":
                continue
            elif n.type == "call_expression":
                args = n.child_by_field_name("arguments")
                fn = n.child_by_field_name("function")
                stack.extend(c for c in (args, fn) if c is not None and c.type != "identifier")
            else:
                stack.extend(n.named_children)
        return out

    def read(self, node: Node, loop_condition: bool = False) -> Facts:
        facts, skip, tainted_call = Facts(), set(), False
        stack = [node]
        while stack:
            n = stack.pop()
            t = n.type
            if t in ("compound_statement", "sizeof_expression") and n is not node:
                continue  # a statement expression's body is its own business; sizeof reads no value
            stack.extend(n.named_children)
            if t == "call_expression":
                tainted_call |= self._call(n, facts)
            elif t == "assignment_expression":
                self._assignment(n, facts, skip)
            elif t == "update_expression":
                var = base_variable(n.child_by_field_name("argument"))
                if var is not None:
                    facts.defs.append((self.text(var), n.child_by_field_name("argument").type == "identifier", False))
            elif t == "init_declarator":
                var = declared_name(n.child_by_field_name("declarator"))
                if var is not None:
                    skip.add(_key(var))
                    facts.defs.append((self.text(var), True, False))
            elif t in ("declaration", "parameter_declaration"):
                for d in n.children_by_field_name("declarator"):
                    var = declared_name(d)
                    if var is not None:
                        skip.add(_key(var))
                        if t == "parameter_declaration":  # parameters are taint sources
                            facts.defs.append((self.text(var), True, True))
            elif t == "array_declarator" and (size := n.child_by_field_name("size")) is not None:
                self._sink(facts, size)  # a variable-length array's size is an allocation size
            elif t == "subscript_expression" and (index := n.child_by_field_name("index")) is not None:
                self._sink(facts, index)
            elif t == "binary_expression" and self.text(n.child_by_field_name("operator")) in ("/", "%"):
                self._sink(facts, n.child_by_field_name("right"))
            elif t == "pointer_expression" and self._is_arithmetic(n.child_by_field_name("argument")):
                self._sink(facts, n.child_by_field_name("argument"))
        facts.uses = self.idents(node, skip)
        if loop_condition:  # a loop's bound
            facts.sink_vars |= facts.uses
            facts.sink = facts.sink or bool(facts.uses)
        if tainted_call:  # what an input call's result is stored in is attacker-controlled
            facts.defs = [(v, strong, True) for v, strong, _ in facts.defs]
        return facts

    def _sink(self, facts: Facts, node: Node | None) -> None:
        if node is not None:
            facts.sink = True
            facts.sink_vars |= self.idents(node)

    def _is_arithmetic(self, node: Node | None) -> bool:
        while node is not None and node.type == "parenthesized_expression" and node.named_child_count:
            node = node.named_children[0]
        return node is not None and node.type == "binary_expression" and \
            self.text(node.child_by_field_name("operator")) in ("+", "-")

    def _assignment(self, n: Node, facts: Facts, skip: set[tuple[int, int]]) -> None:
        left, op = n.child_by_field_name("left"), self.text(n.child_by_field_name("operator"))
        if left is None:
            return
        if left.type == "identifier":
            facts.defs.append((self.text(left), True, False))
            if op not in _COMPOUND_OPS:
                skip.add(_key(left))  # a plain assignment does not read what it overwrites
        elif (var := base_variable(left)) is not None:
            facts.defs.append((self.text(var), False, False))  # a write through it: may or may not be all of it
        if op in ("/=", "%="):
            self._sink(facts, n.child_by_field_name("right"))

    def _call(self, n: Node, facts: Facts) -> bool:
        """Record a call's sinks and the definitions it makes; True when it is an input-like call."""
        fn, args = n.child_by_field_name("function"), n.child_by_field_name("arguments")
        name = self.text(fn) if fn is not None and fn.type == "identifier" else ""
        arg_nodes = list(args.named_children) if args is not None else []
        risky = risky_name(name) if name else None
        is_input = name in self.inputs
        if risky is not None and args is not None:  # the risky call's size and buffer arguments
            self._sink(facts, args)
        for i, arg in enumerate(arg_nodes):
            address_taken = arg.type == "pointer_expression" and self.text(arg).startswith("&")
            freed = risky == "free" and i == 0
            if address_taken or freed or (is_input and arg.type in ("identifier", "field_expression",
                                                                     "subscript_expression")):
                var = base_variable(arg.child_by_field_name("argument") if address_taken else arg)
                if var is not None:
                    facts.defs.append((self.text(var), False, is_input))
        return is_input


@dataclass
class CFG:
    nodes: list[Node | None] = field(default_factory=list)  # the statement or condition (None: entry, exit)
    kinds: list[str] = field(default_factory=list)          # entry, exit, param, stmt, cond, loop
    succ: list[set[int]] = field(default_factory=list)

    def new(self, node: Node | None, kind: str, preds: list[int]) -> int:
        self.nodes.append(node)
        self.kinds.append(kind)
        self.succ.append(set())
        idx = len(self.nodes) - 1
        for p in preds:
            self.succ[p].add(idx)
        return idx


class CFGBuilder:
    """The CFG of one function_definition: ``build`` returns it with node 0 the entry and node 1 the exit."""

    def __init__(self) -> None:
        self.cfg = CFG()
        self.breaks: list[list[int]] = []
        self.continues: list[int] = []
        self.labels: dict[str, int] = {}
        self.gotos: list[tuple[int, str]] = []

    def build(self, func: Node, source: bytes) -> CFG:
        cfg = self.cfg
        preds = [cfg.new(None, "entry", [])]
        cfg.new(None, "exit", [])
        params = func.child_by_field_name("declarator")
        while params is not None and params.type != "function_declarator":
            params = params.child_by_field_name("declarator")
        plist = params.child_by_field_name("parameters") if params is not None else None
        for p in plist.named_children if plist is not None else []:
            if p.type == "parameter_declaration":
                preds = [cfg.new(p, "param", preds)]
        body = func.child_by_field_name("body")
        outs = self.stmt(body, preds) if body is not None else preds
        for p in outs:
            cfg.succ[p].add(1)
        for node, label in self.gotos:  # a goto to a label that is not there: conservatively, the exit
            cfg.succ[node].add(self.labels.get(label, 1))
        return cfg

    def stmt(self, node: Node, preds: list[int]) -> list[int]:
        handler = getattr(self, "_" + node.type, None)
        if handler is not None:
            return handler(node, preds)
        if node.type in ("comment", "{", "}", ";") or not node.is_named:
            return preds
        return [self.cfg.new(node, "stmt", preds)]

    def _compound_statement(self, node: Node, preds: list[int]) -> list[int]:
        for child in node.named_children:
            preds = self.stmt(child, preds)
        return preds

    def _cond(self, node: Node, kind: str, preds: list[int]) -> int:
        return self.cfg.new(node.child_by_field_name("condition") or node, kind, preds)

    def _if_statement(self, node: Node, preds: list[int]) -> list[int]:
        c = self._cond(node, "cond", preds)
        cons, alt = node.child_by_field_name("consequence"), node.child_by_field_name("alternative")
        outs = self.stmt(cons, [c]) if cons is not None else [c]
        if alt is not None and alt.type == "else_clause":
            alt = alt.named_children[0] if alt.named_child_count else None
        return outs + (self.stmt(alt, [c]) if alt is not None else [c])

    def _loop_body(self, body: Node | None, preds: list[int], cont: int) -> tuple[list[int], list[int]]:
        self.breaks.append([])
        self.continues.append(cont)
        outs = self.stmt(body, preds) if body is not None else preds
        self.continues.pop()
        return outs, self.breaks.pop()

    def _while_statement(self, node: Node, preds: list[int]) -> list[int]:
        c = self._cond(node, "loop", preds)
        outs, breaks = self._loop_body(node.child_by_field_name("body"), [c], c)
        for p in outs:
            self.cfg.succ[p].add(c)
        return [c] + breaks

    def _do_statement(self, node: Node, preds: list[int]) -> list[int]:
        c = self._cond(node, "loop", [])
        outs, breaks = self._loop_body(node.child_by_field_name("body"), preds + [c], c)
        for p in outs:
            self.cfg.succ[p].add(c)
        return [c] + breaks

    def _for_statement(self, node: Node, preds: list[int]) -> list[int]:
        init = node.child_by_field_name("initializer")
        if init is not None:
            preds = [self.cfg.new(init, "stmt", preds)]
        cond = node.child_by_field_name("condition")
        c = self.cfg.new(cond, "loop", preds)
        update = node.child_by_field_name("update")
        u = self.cfg.new(update, "stmt", []) if update is not None else c
        outs, breaks = self._loop_body(node.child_by_field_name("body"), [c], u)
        for p in outs:
            self.cfg.succ[p].add(u)
        self.cfg.succ[u].add(c)
        return ([c] if cond is not None else []) + breaks

    def _switch_statement(self, node: Node, preds: list[int]) -> list[int]:
        c = self._cond(node, "cond", preds)
        body = node.child_by_field_name("body")
        self.breaks.append([])
        fall: list[int] = []
        has_default = False
        for case in body.named_children if body is not None else []:
            if case.type != "case_statement":
                fall = self.stmt(case, fall)
                continue
            value = case.child_by_field_name("value")
            has_default |= value is None
            # the label alone (``default`` is its keyword): its facts must not read the statements under it
            fall = [self.cfg.new(value or case.children[0], "stmt", fall + [c])]
            for child in case.named_children:
                if value is None or child != value:
                    fall = self.stmt(child, fall)
        return fall + self.breaks.pop() + ([] if has_default else [c])

    def _jump(self, node: Node, preds: list[int]) -> list[int]:
        n = self.cfg.new(node, "stmt", preds)
        if node.type == "break_statement" and self.breaks:
            self.breaks[-1].append(n)
        elif node.type == "continue_statement" and self.continues:
            self.cfg.succ[n].add(self.continues[-1])
        elif node.type == "goto_statement" and (label := node.child_by_field_name("label")) is not None:
            self.gotos.append((n, label.text.decode("utf-8", errors="replace")))
        else:
            self.cfg.succ[n].add(1)  # return, or a break/continue outside any loop
        return []

    _break_statement = _continue_statement = _return_statement = _goto_statement = _jump

    def _labeled_statement(self, node: Node, preds: list[int]) -> list[int]:
        label = node.child_by_field_name("label")
        n = self.cfg.new(label, "stmt", preds)
        if label is not None:
            self.labels[label.text.decode("utf-8", errors="replace")] = n
        inner = [c for c in node.named_children if c != label]
        for child in inner:
            preds = self.stmt(child, preds if child != inner[0] else [n])
        return preds if inner else [n]
