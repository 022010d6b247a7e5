"""The compiled SQL agrees with the plain-Python reference evaluator, on both databases."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.kernel.context import AppContext
from leadflow.segments import rules
from leadflow.segments.compiler import Compiler
from tests.support.reference import World
from tests.support.worlds import NOW, ids, load, rule_trees, worlds

RANDOM = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@RANDOM
@given(world=worlds(), trees=st.lists(rule_trees, min_size=1, max_size=6))
def test_sql_matches_the_reference_evaluator(
    ctx: AppContext, world: World, trees: list[dict[str, Any]]
) -> None:
    load(ctx, world)
    for tree in trees:
        rule = rules.parse(tree)
        compiler = Compiler(ctx.db.dialect, NOW)
        assert ids(ctx, compiler.select_ids(rule)) == world.matching(rule), tree


@RANDOM
@given(world=worlds(), tree=rule_trees, data=st.data())
def test_restricting_to_some_contacts_evaluates_only_them(
    ctx: AppContext, world: World, tree: dict[str, Any], data: st.DataObject
) -> None:
    load(ctx, world)
    subset = data.draw(st.sets(st.sampled_from([c["id"] for c in world.contacts])))
    rule = rules.parse(tree)
    query = Compiler(ctx.db.dialect, NOW).select_ids(rule, restrict=sorted(subset))
    assert ids(ctx, query) == world.matching(rule) & subset
