"""The console's SQL (its own two tables)."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.web.models import web_credentials as _c
from leadflow.web.models import web_sessions as _s

PASSWORD_OF = sa.select(_c.c.password_hash).where(_c.c.user_id == sa.bindparam("user_id"))
DELETE_PASSWORD = _c.delete().where(_c.c.user_id == sa.bindparam("user_id"))
INSERT_PASSWORD = _c.insert()
HAVE_PASSWORDS = sa.select(_c.c.user_id)

INSERT_SESSION = _s.insert()
SESSION = sa.select(_s).where(_s.c.id_hash == sa.bindparam("id_hash"))
TOUCH_SESSION = (
    _s.update().where(_s.c.id_hash == sa.bindparam("session")).values(last_seen_at=sa.bindparam("now"))
)
DELETE_SESSION = _s.delete().where(_s.c.id_hash == sa.bindparam("id_hash"))
DELETE_USER_SESSIONS = _s.delete().where(_s.c.user_id == sa.bindparam("user_id"))
USER_SESSIONS = (
    sa.select(_s).where(_s.c.user_id == sa.bindparam("user_id")).order_by(_s.c.last_seen_at.desc()).limit(50)
)
DELETE_EXPIRED = _s.delete().where(_s.c.expires_at <= sa.bindparam("now"))
