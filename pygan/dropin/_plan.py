"""Finding what to replace in a module tree: fusable chains in the forwards of containers and
plain sequential blocks (read with torch.fx, every child a leaf), residual instance-norm blocks,
stand-alone layers, and fade-in / minibatch-stddev methods.

A *group* is the unit that is verified and kept or dropped as a whole: a chain's head computes
the maths of the modules it folds, which then become the identity, so chains sharing a folded
module (one LeakyReLU used after two convolutions) stand or fall together.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import operator
from collections.abc import Callable

import torch
import torch.fx
from torch import nn

from . import _fused, _match
from ._report import Replacement, _natural


@dataclasses.dataclass
class Change:
    """Set ``module.<attr>`` to ``patch`` (an instance attribute shadowing the class's)."""

    module: nn.Module
    attr: str
    patch: object

    def apply(self) -> None:
        object.__setattr__(self.module, self.attr, self.patch)

    def undo(self) -> None:
        if vars(self.module).get(self.attr) is self.patch:
            delattr(self.module, self.attr)


@dataclasses.dataclass
class Check:
    """One probe: ``original(*inputs)`` and ``patched(*inputs)`` must agree, inputs from
    ``make_inputs(dtype, device)``, on the ``like`` module's dtype and device."""

    original: Callable
    patched: Callable
    make_inputs: Callable[[torch.dtype, torch.device], list]
    like: nn.Module


@dataclasses.dataclass
class Group:
    changes: list[Change]
    checks: list[Check]
    rows: list[Replacement]


class _ChildrenAsLeaves(torch.fx.Tracer):
    """Trace one module's own forward: every submodule call stays a single node."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _act_name(slope: float) -> str:
    return "ReLU" if slope == 0.0 else f"LeakyReLU({slope:g})"


def _tensor_probe(shape) -> Callable:
    def make(dtype, device):
        gen = torch.Generator().manual_seed(3)
        return [torch.randn(shape, generator=gen, dtype=torch.float64).to(device, dtype)]
    return make


@dataclasses.dataclass
class _Chain:
    parent: nn.Module
    head: nn.Module
    node: torch.fx.Node
    kind: str                                  # "producer" | "norm"
    producer: _fused.Producer | None
    tails: list[tuple[str, nn.Module, torch.fx.Node, float | None]]  # (role, module, node, value)


class Planner:
    def __init__(self, model: nn.Module, backend: str | None) -> None:
        self.model, self.backend = model, backend
        self.paths = {}
        for path, m in model.named_modules():
            self.paths.setdefault(id(m), path)
        self.counts = collections.Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
        self.modules = {id(m): m for _, m in model.named_modules()}
        self.claimed: set[int] = set()
        self.why_not: dict[int, str] = {}
        self._producers: dict[int, tuple[_fused.Producer | None, str]] = {}
        self.groups: list[Group] = []

    # -- helpers ---------------------------------------------------------------------------------
    def path(self, m: nn.Module) -> str:
        return self.paths[id(m)]

    def producer(self, m: nn.Module) -> _fused.Producer | None:
        if id(m) not in self._producers:
            self._producers[id(m)] = _match.producer(m)
        form, why = self._producers[id(m)]
        if why:
            self.why_not.setdefault(id(m), why)
        return form

    def blocked(self, m: nn.Module) -> str | None:
        """Why ``m`` may not be changed at all."""
        if isinstance(vars(m).get("forward"), _fused._Patch):
            return "already accelerated"
        if "forward" in vars(m):
            return "its forward is already replaced on the instance"
        if _match.has_hooks(m):
            return "has hooks (they would see other values)"
        return None

    def describe_head(self, chain: _Chain) -> str:
        if chain.kind == "norm":
            affine = ", affine" if chain.head.affine else ""
            return f"InstanceNorm2d({chain.head.num_features}{affine})"
        form = chain.producer
        layer = form.layer(chain.head)
        if not form.inner:
            return type(layer).__name__ + ("" if layer.bias is not None else " (no bias)")
        where = {"inner.bias": "bias inside", None: "no bias"}.get(form.bias_attr, "bias beside")
        return f"{type(chain.head).__name__} [{form.describe(chain.head)}, {where}]"

    # -- containers and sequential blocks ---------------------------------------------------------
    def trace(self, m: nn.Module) -> torch.fx.Graph | None:
        if not list(m.children()) or (_match.is_library_module(m) and type(m) is not nn.Sequential):
            return None
        try:
            return _ChildrenAsLeaves().trace(m)
        except Exception as err:  # noqa: BLE001 - untraceable forwards are simply not fused across
            self.why_not.setdefault(id(m), f"forward not traceable by torch.fx ({type(err).__name__})")
            return None

    def find_residuals(self, parent: nn.Module, graph: torch.fx.Graph) -> None:
        """``x + block(x)`` with ``block`` an nn.Sequential ending in an InstanceNorm2d."""
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        out = next(n for n in graph.nodes if n.op == "output")
        if len(placeholders) != 1 or not isinstance(out.args[0], torch.fx.Node):
            return
        add, x = out.args[0], placeholders[0]
        if add.op != "call_function" or add.target not in (operator.add, torch.add) or add.kwargs:
            return
        others = [a for a in add.args if a is not x]
        if len(add.args) != 2 or len(others) != 1 or x not in add.args:
            return
        call = others[0]
        if call.op != "call_module" or call.args != (x,) or call.kwargs or len(call.users) != 1:
            return
        block = parent.get_submodule(call.target)
        if type(block) is not nn.Sequential or len(block) < 2:
            return
        norm = block[-1]
        if _match.is_instance_norm(norm) is not None:
            return
        for m in (parent, block, norm):
            why = self.blocked(m) or (None if self.counts[id(m)] == 1 else "shared")
            if why:
                self.why_not.setdefault(id(norm), f"residual block {self.path(parent)}: {why}")
                return
        self.claimed.update((id(parent), id(norm)))
        patch = _fused.ResidualNorm(parent, call.target, self.backend)
        self.groups.append(Group(
            [Change(parent, "forward", patch)],
            [Check(lambda x, p=parent: _fused.class_forward(p, x), patch,
                   _tensor_probe(_match.probe_shape(norm)), parent)],
            [Replacement(self.path(norm), f"x + {call.target}(x) ending in InstanceNorm2d",
                         f"instance_norm_act(residual=x) in {self.path(parent) or '(root)'}.forward")]))

    def chains(self, parent: nn.Module, graph: torch.fx.Graph) -> None:
        calls = collections.defaultdict(list)
        for n in graph.nodes:
            if n.op == "call_module":
                calls[n.target].append(n)
        found: list[_Chain] = []
        for node in graph.nodes:
            if node.op != "call_module":
                continue
            head = parent.get_submodule(node.target)
            if _match.activation_slope(head) is not None and node.args and not (
                    isinstance(node.args[0], torch.fx.Node) and node.args[0].op == "call_module"
                    and self._is_head(parent.get_submodule(node.args[0].target))):
                self.why_not.setdefault(id(head), f"follows {self._node_name(parent, node.args[0])}, "
                                                  "not a conv or linear")
            if id(head) in self.claimed:
                continue
            form = self.producer(head)
            norm_why = _match.is_instance_norm(head)
            if form is None and norm_why != "" and norm_why is not None:
                self.why_not.setdefault(id(head), norm_why)
            if form is None and norm_why is not None:
                continue
            why = (self.blocked(head) or (None if self.counts[id(head)] == 1 else "shared")
                   or (None if len(calls[node.target]) == 1 else "called more than once")
                   or (None if len(node.args) == 1 and not node.kwargs else "called with extra arguments"))
            if why:
                self.why_not.setdefault(id(head), why)
                for user in node.users:
                    if user.op == "call_module":
                        self.why_not.setdefault(id(parent.get_submodule(user.target)),
                                                f"the {type(head).__name__} before it is {why}")
                continue
            chain = _Chain(parent, head, node, "norm" if form is None else "producer", form, [])
            roles = ("act", "pn") if form is not None else ("act",)
            cur = node
            for role in roles:
                users = list(cur.users)
                if len(users) != 1 or users[0].op != "call_module" or users[0].args != (cur,) \
                        or users[0].kwargs:
                    break
                nxt = users[0]
                tail = parent.get_submodule(nxt.target)
                value = (_match.activation_slope(tail) if role == "act"
                         else self._pixel_norm_eps(tail))
                if value is None:
                    if role == "act":      # no activation: a pixel norm may follow directly
                        eps = self._pixel_norm_eps(tail) if form is not None else None
                        if eps is not None:
                            chain.tails.append(("pn", tail, nxt, eps))
                    break
                chain.tails.append((role, tail, nxt, value))
                cur = nxt
            found.append(chain)
        self._validate_tails(parent, found, calls)
        self._group(found)

    def _is_head(self, m: nn.Module) -> bool:
        return self.producer(m) is not None or _match.is_instance_norm(m) is None

    @staticmethod
    def _node_name(parent: nn.Module, node: object) -> str:
        if not isinstance(node, torch.fx.Node):
            return "a constant"
        if node.op == "call_module":
            return type(parent.get_submodule(node.target)).__name__
        if node.op == "placeholder":
            return "the block's input"
        return getattr(node.target, "__name__", str(node.target))

    def _pixel_norm_eps(self, m: nn.Module) -> float | None:
        name = _match.pixel_norm_eps(m)
        return None if name is None else float(getattr(m, name))

    def _validate_tails(self, parent, found: list[_Chain], calls) -> None:
        """A folded module becomes the identity, so every call of it must be a folded one."""
        changed = True
        while changed:
            changed = False
            positions = collections.defaultdict(set)
            for chain in found:
                for _, tail, node, _ in chain.tails:
                    positions[id(tail)].add(node)
            for chain in found:
                for i, (_, tail, node, _) in enumerate(chain.tails):
                    target = node.target
                    why = self.blocked(tail) or (None if self.counts[id(tail)] == 1 else "shared")
                    if why is None and set(calls[target]) != positions[id(tail)]:
                        why = "also called where it does not follow a fusable layer"
                    if why:
                        self.why_not.setdefault(id(tail), why)
                        del chain.tails[i:]
                        changed = True
                        break

    def _group(self, found: list[_Chain]) -> None:
        keep = [c for c in found if c.tails or c.kind == "norm" or c.producer.inner]
        # union the chains that share a folded module
        owner: dict[int, int] = {}
        sets: list[list[_Chain]] = []
        for chain in keep:
            hit = {owner[id(t)] for _, t, _, _ in chain.tails if id(t) in owner}
            merged = [chain]
            for i in sorted(hit, reverse=True):
                merged += sets[i]
                sets[i] = []
            sets.append(merged)
            for c in merged:
                for _, t, _, _ in c.tails:
                    owner[id(t)] = len(sets) - 1
        for chains in sets:
            if chains:
                self.groups.append(self._chain_group(chains))

    def _chain_group(self, chains: list[_Chain]) -> Group:
        changes, checks, rows = [], [], []
        folded: dict[int, tuple[nn.Module, str, list[str]]] = {}
        for chain in chains:
            self.claimed.add(id(chain.head))
            tails = tuple(t for _, t, _, _ in chain.tails)
            slope = next((v for r, _, _, v in chain.tails if r == "act"), None)
            eps = next((v for r, _, _, v in chain.tails if r == "pn"), None)
            if chain.kind == "norm":
                patch = _fused.NormChain(chain.head, slope, tails, self.backend)
                op = "instance_norm_act" + (f"(activation={_fused._activation_name(slope)[0]!r})"
                                            if slope is not None else "")
                shape = _match.probe_shape(chain.head)
            else:
                layer = chain.producer.layer(chain.head)
                eager_on_cpu = (type(layer) is nn.Linear and not chain.producer.inner
                                and eps is None)
                patch = _fused.ProducerChain(chain.head, chain.producer, slope, eps, tails,
                                             self.backend, eager_on_cpu)
                op = "bias_lrelu_pixel_norm" if eps is not None else "bias_lrelu"
                shape = _match.probe_shape(layer)
                op = f"{type(layer).__name__}(bias=False) + {op}"
                if patch.eager_on_cpu:
                    op += " (CPU tensors: addmm + activation, faster there)"
            was = " + ".join([self.describe_head(chain)] + [
                _act_name(v) if r == "act" else f"{type(t).__name__}(eps={v:g})"
                for r, t, _, v in chain.tails])
            rows.append(Replacement(self.path(chain.head), was, op))
            changes.append(Change(chain.head, "forward", patch))
            original = functools.partial(_fused.original_chain, chain.head, tails)
            checks.append(Check(original, patch, _tensor_probe(shape), chain.head))
            for _, t, _, _ in chain.tails:
                self.claimed.add(id(t))
                folded.setdefault(id(t), (t, type(t).__name__, []))[2].append(self.path(chain.head))
        for t, name, heads in folded.values():
            heads.sort(key=_natural)
            changes.append(Change(t, "forward", _fused.Folded(t, ", ".join(heads))))
            was = _act_name(_match.activation_slope(t)) if _match.activation_slope(t) is not None \
                else name
            rows.append(Replacement(self.path(t), was, "folded into " + ", ".join(heads)))
        return Group(changes, checks, rows)

    # -- stand-alone layers and methods ------------------------------------------------------------
    def standalone(self, m: nn.Module) -> None:
        if id(m) in self.claimed:
            return
        form = self.producer(m)
        kind = ("producer" if form is not None and form.inner
                else "norm" if _match.is_instance_norm(m) is None else None)
        if kind is not None:          # a weight-scaled layer or an instance norm on its own
            why = self.blocked(m)
            if why:
                self.why_not.setdefault(id(m), why)
            else:
                self.groups.append(self._chain_group([_Chain(None, m, None, kind, form, [])]))
            return
        if not _match.is_users_module(m) or list(m.parameters()) or list(m.children()):
            return
        eps_attr = _match.pixel_norm_eps(m)
        if eps_attr is not None:
            if self.blocked(m):
                self.why_not.setdefault(id(m), self.blocked(m))
                return
            patch = _fused.PixelNormOnly(m, eps_attr, self.backend)
            self.claimed.add(id(m))
            self.groups.append(Group(
                [Change(m, "forward", patch)],
                [Check(lambda x, m=m: _fused.class_forward(m, x), patch,
                       _tensor_probe((2, 8, 4, 4)), m)],
                [Replacement(self.path(m), f"{type(m).__name__}({eps_attr}={getattr(m, eps_attr):g})",
                             "pixel_norm")]))
            return
        self.minibatch_std(m, "forward", lambda x, m=m: _fused.class_forward(m, x))

    def minibatch_std(self, m: nn.Module, name: str, fn: Callable) -> None:
        form = _match.minibatch_std_form(fn)
        label = self.path(m) if name == "forward" else _method_path(self.path(m), name)
        if form is None:
            if name != "forward":
                self.why_not[(id(m), name)] = "not a minibatch standard deviation pygan computes"
            return
        why = self.blocked(m) if name == "forward" else (
            "already accelerated" if isinstance(vars(m).get(name), _fused._Patch) else None)
        if why:
            self.why_not[(id(m), name)] = why
            return
        patch = _fused.MinibatchStdMethod(m, name, form, self.backend)
        original = getattr(type(m), name)
        self.groups.append(Group(
            [Change(m, name, patch)],
            [Check(lambda x, m=m, f=original: f(m, x), patch, _tensor_probe((4, 3, 4, 4)), m)],
            [Replacement(label, f"minibatch stddev ({form.describe()})",
                         f"minibatch_std(group_size={form.group_size}, unbiased={form.unbiased}"
                         f", eps={form.eps:g})")]))

    def methods(self, m: nn.Module) -> None:
        if not _match.is_users_module(m):
            return
        for name in _match.user_methods(m, keyword="std", arity=1):
            self.minibatch_std(m, name, getattr(m, name))
        for name in _match.user_methods(m, keyword="fade", arity=3):
            label = _method_path(self.path(m), name)
            if isinstance(vars(m).get(name), _fused._Patch):
                self.why_not[(id(m), name)] = "already accelerated"
                continue
            form = _match.fade_in_form(getattr(m, name))
            if form is None:
                self.why_not[(id(m), name)] = "does not compute [tanh](alpha*a + (1-alpha)*b)"
                continue
            patch = _fused.FadeInMethod(m, name, form, self.backend)
            original = getattr(type(m), name)
            self.groups.append(Group(
                [Change(m, name, patch)],
                [Check(lambda *a, m=m, f=original: f(m, *a), patch, _fade_probe(form), m)],
                [Replacement(label, f"fade-in {form.describe()}",
                             f"fade_in(activation={form.activation!r})")]))

    # -- everything ------------------------------------------------------------------------------
    def plan(self) -> list[Group]:
        traced = [(m, self.trace(m)) for m in self.modules.values()]
        traced = [(m, g) for m, g in traced if g is not None]
        for m, graph in traced:
            self.find_residuals(m, graph)
        for m, graph in traced:
            self.chains(m, graph)
        for m in self.modules.values():
            self.standalone(m)
        for m in self.modules.values():
            self.methods(m)
        return self.groups

    def left_alone(self, listed: set[str]) -> list[Replacement]:
        """Rows for the layers pygan has ops for that are not in ``listed`` paths yet, with the
        reason they were not replaced."""
        rows = []
        for m in self.modules.values():
            if self.path(m) in listed:
                continue
            slope = _match.activation_slope(m)
            if slope is not None:
                rows.append(Replacement(self.path(m), _act_name(slope), reason=self.why_not.get(
                    id(m), "does not directly follow a conv or linear in a traceable forward")))
            elif _match.is_instance_norm(m) != "":
                rows.append(Replacement(self.path(m), "InstanceNorm2d",
                                        reason=self.why_not.get(id(m), "not replaced")))
            elif id(m) in self.why_not and _match.is_users_module(m) and self._producers.get(
                    id(m), (None, ""))[1]:
                rows.append(Replacement(self.path(m), type(m).__name__, reason=self.why_not[id(m)]))
        for key, why in self.why_not.items():
            if isinstance(key, tuple):
                m = self.modules[key[0]]
                rows.append(Replacement(_method_path(self.path(m), key[1]), "method", reason=why))
        return rows


def _method_path(path: str, name: str) -> str:
    return f"{path}.{name}()" if path else f"{name}()"


def _fade_probe(form: _fused.FadeInForm) -> Callable:
    def make(dtype, device):
        gen = torch.Generator().manual_seed(4)
        args = [None] * 3
        args[form.alpha] = 0.37
        args[form.high] = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64).to(device, dtype)
        args[form.low] = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64).to(device, dtype)
        return args
    return make
