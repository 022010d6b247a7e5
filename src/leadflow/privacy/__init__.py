"""GDPR: where personal data lives (:mod:`.columns`), a person's export across every domain and their
erasure (:mod:`.service`), and their routes (:mod:`.api`). It sits above the domains it gathers from."""

from leadflow.privacy.columns import REGISTRY as REGISTRY
from leadflow.privacy.columns import Treatment as Treatment
from leadflow.privacy.columns import personal_columns as personal_columns
