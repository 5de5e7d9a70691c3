"""Who made each invitation: ``invitations.invited_by_user``, the user id of the person
who invited (directly, or through an API key they made).

``invited_by`` names the inviter for people (``user:<email>``), not for the database:
a removed or demoted admin's pending invitations stayed valid for their week, and
accepting one, under another address of theirs, brought them back. With the inviter
known, the removal or demotion withdraws the pending invitations its person may no
longer make. Invitations made before this revision, or by a key of the command line,
have no inviter (NULL) and stay until they expire or are revoked.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invitations", sa.Column("invited_by_user", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invitations") as batch:
        batch.drop_column("invited_by_user")
