"""Who made each API key: ``api_keys.created_by``, the user id of the person who
created it through the API or the dashboard.

A key belonged to the tenant alone, so an admin who made an admin-scope key and was
then removed or demoted kept every admin power through it. With its maker known, the
removal or demotion revokes the keys its person may no longer make. Keys made before
this revision, by the command line or by another key have no maker (NULL): they stay
until someone revokes them. Processes of the previous version running during the
upgrade insert keys without a maker, as the command line does.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("created_by", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("created_by")
