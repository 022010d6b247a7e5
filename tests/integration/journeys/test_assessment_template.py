"""The shipped persona-specific journey (``assessment-career-changer``) in the simulator: entered by an
``assessment.completed`` event of its persona only, results at once, a sales task and the owner's notice
for a ready candidate, a nurture tag otherwise."""

from __future__ import annotations

from typing import Any

from leadflow.journeys import installer, service, simulator
from leadflow.journeys.simulator import Simulation, SimulationRequest
from leadflow.kernel.context import AppContext

ASSESSMENT = {
    "assessment_type": "career-readiness",
    "readiness_score": 82,
    "recommended_service": "Data Analyst Bootcamp",
}


def _simulate(ctx: AppContext, persona: str, score: int) -> Simulation:
    installed = installer.install(ctx, "assessment-career-changer", actor="test")
    definition = service.get(ctx, installed.journey_id).definition
    properties: dict[str, Any] = {**ASSESSMENT, "persona": persona, "readiness_score": score}
    request = {
        "contact": {"email": "ann@example.com", "first_name": "Ann", "traits": {"readiness_score": score}},
        "events": [{"event": "assessment.completed", "properties": properties}],
        "horizon": "2d",
    }
    return simulator.simulate(ctx, definition, SimulationRequest.model_validate(request))


def test_a_ready_career_changer_gets_results_and_a_sales_task(ctx: AppContext) -> None:
    result = _simulate(ctx, "career_changer", 82)
    steps = [(m.step, m.status) for m in result.timeline]
    assert [s for s, _ in steps] == ["send-results", "ready", "call-task", "tell-owner", "done"], steps
    results, notice = [m.email for m in result.timeline if m.email is not None]
    assert results is not None
    assert notice is not None
    assert results.subject == "Your readiness: 82/100"
    assert "Data Analyst Bootcamp" in results.html
    assert "Ann" in notice.subject
    assert all(m.error is None for m in result.timeline)


def test_a_candidate_not_ready_is_tagged_for_nurture_and_other_personas_do_not_enter(
    ctx: AppContext,
) -> None:
    later = _simulate(ctx, "career_changer", 40)
    assert [m.step for m in later.timeline] == ["send-results", "ready", "nurture", "done"]
    assert _simulate(ctx, "student", 90).timeline == []
