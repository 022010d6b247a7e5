"""What the API, the CLI, other domains and the console may do with journeys: the one module they
import. Re-exports only; nothing in :mod:`leadflow.journeys` imports it (it sits above every other
module of the package).

- journeys themselves (:mod:`~leadflow.journeys.manage`): create, edit, validate, publish, pause,
  resume, archive, delete; runs, metrics, run counts per journey, published versions; GDPR erasure and
  export of a person's runs;
- the ready-made journeys shipped in ``templates/`` (:mod:`~leadflow.journeys.installer`):
  :data:`TEMPLATE_NAMES`, :func:`load_template`, :func:`install_template`;
- the simulator (:mod:`~leadflow.journeys.simulator`): :func:`simulate` with its request and answer;
- the per-day A/B split counters (:mod:`~leadflow.journeys.splits`): the table the readouts read,
  :func:`rebuild_split_counters`;
- the journey funnel's per-day counters (:mod:`~leadflow.journeys.funnels`): the tables the funnel
  reads, :func:`rebuild_funnel_counters`;
- the definition language (:mod:`~leadflow.journeys.definitions`): :class:`Definition` and its steps,
  read by the console to draw a journey's graph.
"""

from __future__ import annotations

from leadflow.journeys import definitions as definitions
from leadflow.journeys import funnels, installer, splits
from leadflow.journeys.installer import Installed as Installed
from leadflow.journeys.manage import DEAL_CODES as DEAL_CODES
from leadflow.journeys.manage import ERASED as ERASED
from leadflow.journeys.manage import archive as archive
from leadflow.journeys.manage import check_deal_steps as check_deal_steps
from leadflow.journeys.manage import check_references as check_references
from leadflow.journeys.manage import check_webhook_targets as check_webhook_targets
from leadflow.journeys.manage import create as create
from leadflow.journeys.manage import delete as delete
from leadflow.journeys.manage import export as export
from leadflow.journeys.manage import get as get
from leadflow.journeys.manage import listing as listing
from leadflow.journeys.manage import metrics as metrics
from leadflow.journeys.manage import on_contacts_erased as on_contacts_erased
from leadflow.journeys.manage import pause as pause
from leadflow.journeys.manage import publish as publish
from leadflow.journeys.manage import resume as resume
from leadflow.journeys.manage import run as run
from leadflow.journeys.manage import run_counts as run_counts
from leadflow.journeys.manage import runs_of as runs_of
from leadflow.journeys.manage import update as update
from leadflow.journeys.manage import validate as validate
from leadflow.journeys.manage import version as version
from leadflow.journeys.manage import versions_of as versions_of
from leadflow.journeys.models import journey_entry_daily as journey_entry_daily  # the journey funnel
from leadflow.journeys.models import journey_reach_daily as journey_reach_daily
from leadflow.journeys.models import journey_runs as journey_runs  # the funnel's and readouts' references
from leadflow.journeys.models import journey_split_daily as journey_split_daily  # the A/B readouts
from leadflow.journeys.models import journey_steps as journey_steps
from leadflow.journeys.schemas import Journey as Journey
from leadflow.journeys.schemas import JourneyCreate as JourneyCreate
from leadflow.journeys.schemas import JourneyMetrics as JourneyMetrics
from leadflow.journeys.schemas import JourneyPatch as JourneyPatch
from leadflow.journeys.schemas import Run as Run
from leadflow.journeys.schemas import StepMetrics as StepMetrics
from leadflow.journeys.schemas import StepRecord as StepRecord
from leadflow.journeys.schemas import Version as Version
from leadflow.journeys.simulator import Email as Email
from leadflow.journeys.simulator import Moment as Moment
from leadflow.journeys.simulator import SimContact as SimContact
from leadflow.journeys.simulator import SimEvent as SimEvent
from leadflow.journeys.simulator import Simulation as Simulation
from leadflow.journeys.simulator import SimulationRequest as SimulationRequest
from leadflow.journeys.simulator import simulate as simulate

TEMPLATE_NAMES = installer.NAMES  # the shipped journeys, in the order they are offered
load_template = installer.load
install_template = installer.install
rebuild_split_counters = splits.rebuild  # ``leadflow analytics rebuild``
split_counters = splits.counters
rebuild_funnel_counters = funnels.rebuild  # ``leadflow analytics rebuild``
funnel_counters = funnels.counters
