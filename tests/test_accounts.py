"""Accounts end to end, on both adapter sets (the ``runtime`` fixture): sign-up, login,
refresh rotation and reuse, logout, password change and reset by mail, invitations by
mail, API keys, CSRF on cookie sessions, login throttling, token forgery, and the
permission matrix generated from the app's routes."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from conftest import TenantHandle, tenant_connection
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import accounts as accounts_store
from dd0c_alert.storage import schema
from dd0c_alert.storage.account_rows import LastOwner
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.web.passwords import hash_password
from dd0c_alert.web.permissions import ROLES, SCOPES, TABLE, operation_of
from dd0c_alert.web.sessions import issue_access
from servers import free_port, start_serve
from stand_ins.smtp import SmtpStandIn
from test_notifications_e2e import serve_env

PASSWORD = "correct horse battery"


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as server:
        yield server


@pytest.fixture
def runtime(settings: Settings, smtp: SmtpStandIn) -> Runtime:  # overrides conftest's
    mailing = settings.model_copy(
        update={
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "signup_enabled": True,
            "public_url": "https://alerts.example.com",
        }
    )
    return build_runtime(mailing)


def signup(client: TestClient, email: str = "ann@example.com") -> dict[str, Any]:
    answer = client.post(
        "/v1/auth/signup", json={"email": email, "password": PASSWORD, "tenant_name": "Acme"}
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def link_token(smtp: SmtpStandIn, path: str) -> str:
    body = smtp.messages[-1].get_content()
    found = re.search(rf"https://alerts\.example\.com/{path}\?token=(\S+)", body)
    assert found, body
    return found.group(1)


def test_signup_login_me_refresh_logout(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts_store, "ROTATION_GRACE", timedelta(0))  # reuse at once
    made = signup(client)
    assert made["token_type"] == "bearer" and made["role"] == "owner"
    me = client.get("/v1/me", headers=bearer(made["access_token"])).json()
    assert me["email"] == "ann@example.com" and me["actor"] == "user:ann@example.com"
    assert me["tenant_id"] == made["tenant_id"]

    again = client.post(
        "/v1/auth/signup",
        json={"email": "ANN@example.com", "password": PASSWORD, "tenant_name": "x"},
    )
    assert again.status_code == 409

    wrong = client.post("/v1/auth/login", json={"email": "ann@example.com", "password": "nope"})
    unknown = client.post("/v1/auth/login", json={"email": "bob@example.com", "password": "n"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    login = client.post("/v1/auth/login", json={"email": "Ann@Example.com", "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert [t["tenant_id"] for t in tokens["tenants"]] == [made["tenant_id"]]

    rotated = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    newer = rotated.json()["refresh_token"]
    # the spent token presented again: 401, and its whole family is revoked
    reused = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": newer}).status_code == 401
    # ... and so are that sign-in's access tokens (a stolen copy is in use)
    assert client.get("/v1/me", headers=bearer(rotated.json()["access_token"])).status_code == 401
    # the other session (sign-up's) still works, until logout
    other = made["refresh_token"]
    assert client.get("/v1/me", headers=bearer(made["access_token"])).status_code == 200
    assert client.post("/v1/auth/logout", json={"refresh_token": other}).status_code == 204
    assert client.post("/v1/auth/refresh", json={"refresh_token": other}).status_code == 401
    # logout ends the sign-in's access tokens too, not only its refresh token
    gone = client.get("/v1/me", headers=bearer(made["access_token"]))
    assert gone.status_code == 401 and "signed out" in gone.text


def test_logout_with_the_access_token_alone_ends_the_sign_in(client: TestClient) -> None:
    signup(client)
    login = {"email": "ann@example.com", "password": PASSWORD}
    kept, ended = (client.post("/v1/auth/login", json=login).json() for _ in range(2))
    assert client.post("/v1/auth/logout", headers=bearer(ended["access_token"])).status_code == 204
    assert client.get("/v1/me", headers=bearer(ended["access_token"])).status_code == 401
    again = client.post("/v1/auth/refresh", json={"refresh_token": ended["refresh_token"]})
    assert again.status_code == 401
    assert client.get("/v1/me", headers=bearer(kept["access_token"])).status_code == 200


def test_weak_passwords_are_refused(client: TestClient) -> None:
    for weak in ("short", "password123", "qwertyuiop", "aaaaaaaaaaaa"):
        answer = client.post(
            "/v1/auth/signup", json={"email": "a@b.co", "password": weak, "tenant_name": "A"}
        )
        assert answer.status_code == 422 and answer.json()["error"] == "weak_password", weak


def test_a_token_renewed_twice_at_once_keeps_the_sign_in(client: TestClient) -> None:
    """Two dashboard tabs renewing at the same moment, or a client that lost the answer
    and asks again, present one refresh token twice: within a few seconds that is not
    a stolen copy, and both get a working token. Once the sign-in has ended, it is."""
    made = signup(client)
    spent = made["refresh_token"]
    first = client.post("/v1/auth/refresh", json={"refresh_token": spent})
    again = client.post("/v1/auth/refresh", json={"refresh_token": spent})
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["refresh_token"] != again.json()["refresh_token"]
    for answer in (first, again):
        assert (
            client.get("/v1/me", headers=bearer(answer.json()["access_token"])).status_code == 200
        )
    newest = client.post("/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert newest.status_code == 200
    out = client.post("/v1/auth/logout", json={"refresh_token": newest.json()["refresh_token"]})
    assert out.status_code == 204
    assert client.post("/v1/auth/refresh", json={"refresh_token": spent}).status_code == 401
    held = again.json()["refresh_token"]  # the other tab's: ended with the sign-in
    assert client.post("/v1/auth/refresh", json={"refresh_token": held}).status_code == 401


def test_password_change_revokes_refresh_tokens(client: TestClient) -> None:
    made = signup(client)
    changed = client.post(
        "/v1/auth/password",
        headers=bearer(made["access_token"]),
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
    )
    assert changed.status_code == 204
    refresh = client.post("/v1/auth/refresh", json={"refresh_token": made["refresh_token"]})
    assert refresh.status_code == 401
    old = client.post("/v1/auth/login", json={"email": "ann@example.com", "password": PASSWORD})
    assert old.status_code == 401
    new = {"email": "ann@example.com", "password": "another long passphrase"}
    assert client.post("/v1/auth/login", json=new).status_code == 200


def test_a_new_password_ends_the_other_sign_ins_at_once(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """A password change or reset revoked the other sign-ins, but this process kept
    answering their access tokens from its 5 s cache of live sign-ins."""
    made = signup(client)
    login = {"email": "ann@example.com", "password": PASSWORD}
    other = client.post("/v1/auth/login", json=login).json()["access_token"]
    assert client.get("/v1/me", headers=bearer(other)).status_code == 200  # cached alive
    new = "another long passphrase"
    changed = client.post(
        "/v1/auth/password",
        headers=bearer(made["access_token"]),
        json={"current_password": PASSWORD, "new_password": new},
    )
    assert changed.status_code == 204
    assert client.get("/v1/me", headers=bearer(other)).status_code == 401
    login["password"] = new
    other = client.post("/v1/auth/login", json=login).json()["access_token"]
    assert client.get("/v1/me", headers=bearer(other)).status_code == 200
    client.post("/v1/auth/reset-request", json={"email": "ann@example.com"})
    token = link_token(smtp, "reset")
    done = client.post("/v1/auth/reset", json={"token": token, "password": "brand new secret 1"})
    assert done.status_code == 204
    assert client.get("/v1/me", headers=bearer(other)).status_code == 401


def test_password_reset_by_mail(client: TestClient, smtp: SmtpStandIn) -> None:
    signup(client)
    assert client.post("/v1/auth/reset-request", json={"email": "zed@x.io"}).status_code == 202
    assert smtp.messages == []  # nobody by that email: nothing sent, same answer
    answer = client.post("/v1/auth/reset-request", json={"email": "ann@example.com"})
    assert answer.status_code == 202
    token = link_token(smtp, "reset")
    done = client.post("/v1/auth/reset", json={"token": token, "password": "brand new secret 1"})
    assert done.status_code == 204
    again = client.post("/v1/auth/reset", json={"token": token, "password": "brand new secret 2"})
    assert again.status_code == 401  # spent
    login = {"email": "ann@example.com", "password": "brand new secret 1"}
    assert client.post("/v1/auth/login", json=login).status_code == 200


def test_a_reset_request_answers_before_any_mail_is_sent(
    runtime: Runtime, settings: Settings, smtp: SmtpStandIn, tmp_path: Path
) -> None:
    """The link was made and mailed before the answer, only for a known address: the
    time taken (a database write, an SMTP exchange) told known addresses from unknown
    ones. Against a real server whose mail server hangs, the answer still comes."""
    accounts = runtime.store.accounts()
    accounts.create_user("ann@example.com", hash_password(PASSWORD))
    env = serve_env(
        settings,
        DD0C_SMTP_HOST=smtp.host,
        DD0C_SMTP_PORT=str(smtp.port),
        DD0C_SMTP_TLS="none",
        DD0C_PUBLIC_URL="https://alerts.example.com",
        DD0C_SUGGEST_INTERVAL_SECONDS="0",
    )
    port = free_port()
    server = start_serve(env, port, tmp_path / "serve.log")
    try:
        smtp.hold()
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/auth/reset-request",
            json={"email": "ann@example.com"},
            timeout=8,  # under the SMTP client's own 10 s: the mail is not being awaited
        )
        assert answer.status_code == 202
        assert smtp.messages == []
        smtp.release()
        deadline = time.monotonic() + 30
        while not smtp.messages:
            assert time.monotonic() < deadline, "the reset mail never came"
            time.sleep(0.05)
        assert link_token(smtp, "reset")
    finally:
        smtp.release()
        server.terminate()
        server.wait(timeout=15)


def test_a_new_password_spends_every_other_reset_link(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """A reset link asked for earlier (maybe by someone reading the mailbox) must not
    outlive the password it was meant to replace: a reset or a change spends them all."""
    signup(client)
    links = []
    for _ in range(3):
        asked = client.post("/v1/auth/reset-request", json={"email": "ann@example.com"})
        assert asked.status_code == 202
        links.append(link_token(smtp, "reset"))
    done = client.post("/v1/auth/reset", json={"token": links[1], "password": "brand new secret 1"})
    assert done.status_code == 204
    older = client.post("/v1/auth/reset", json={"token": links[0], "password": "attacker's one 1"})
    assert older.status_code == 401
    later = client.post("/v1/auth/reset", json={"token": links[2], "password": "attacker's one 2"})
    assert later.status_code == 401
    client.post("/v1/auth/reset-request", json={"email": "ann@example.com"})
    pending = link_token(smtp, "reset")
    login = client.post(
        "/v1/auth/login", json={"email": "ann@example.com", "password": "brand new secret 1"}
    )
    changed = client.post(
        "/v1/auth/password",
        headers=bearer(login.json()["access_token"]),
        json={"current_password": "brand new secret 1", "new_password": "my own choice 22"},
    )
    assert changed.status_code == 204
    stale = client.post("/v1/auth/reset", json={"token": pending, "password": "attacker's one 3"})
    assert stale.status_code == 401


def test_invitation_by_mail_roles_and_removal(client: TestClient, smtp: SmtpStandIn) -> None:
    owner = signup(client)
    auth = bearer(owner["access_token"])
    invited = client.post(
        "/v1/invitations", headers=auth, json={"email": "bo@x.io", "role": "viewer"}
    )
    assert invited.status_code == 201, invited.text
    token = link_token(smtp, "invite")
    assert client.post("/v1/invitations/accept", json={"token": token}).status_code == 422
    joined = client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert joined.status_code == 200, joined.text
    bo = joined.json()
    assert bo["role"] == "viewer" and bo["tenant_id"] == owner["tenant_id"]
    # a viewer reads but may not act or configure
    assert client.get("/v1/incidents", headers=bearer(bo["access_token"])).status_code == 200
    assert (
        client.put(
            "/v1/topology", headers=bearer(bo["access_token"]), json={"dependencies": {}}
        ).status_code
        == 403
    )
    users = client.get("/v1/users", headers=auth).json()["items"]
    assert {u["email"]: u["role"] for u in users} == {
        "ann@example.com": "owner",
        "bo@x.io": "viewer",
    }
    promoted = client.patch(f"/v1/users/{bo['user_id']}", headers=auth, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    # an admin may not touch an owner
    bo_auth = bearer(bo["access_token"])
    assert client.delete(f"/v1/users/{owner['user_id']}", headers=bo_auth).status_code == 403
    # removed: the access token stops working at once, the refresh token too
    assert client.delete(f"/v1/users/{bo['user_id']}", headers=auth).status_code == 204
    assert client.get("/v1/incidents", headers=bo_auth).status_code == 401
    refresh = client.post("/v1/auth/refresh", json={"refresh_token": bo["refresh_token"]})
    assert refresh.status_code == 401


def test_an_invitation_link_alone_signs_no_existing_account_in(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """Whoever holds the link of an invitation sent to an address that has an account
    joins that account to the team, but gets its tokens (good in every tenant of the
    account, through /v1/auth/switch) only with the account's password."""
    ann = signup(client)
    bo = signup(client, "bo@x.io")
    invite = {"email": "ann@example.com", "role": "member"}
    assert client.post("/v1/invitations", headers=bearer(bo["access_token"]), json=invite)
    token = link_token(smtp, "invite")
    joined = client.post("/v1/invitations/accept", json={"token": token})
    assert joined.status_code == 202, joined.text
    assert joined.json() == {"tenant_id": bo["tenant_id"], "role": "member", "login_required": True}
    assert "access_token" not in joined.text and "refresh_token" not in joined.text
    users = client.get("/v1/users", headers=bearer(bo["access_token"])).json()["items"]
    assert {u["email"] for u in users} == {"bo@x.io", "ann@example.com"}
    assert client.post("/v1/invitations/accept", json={"token": token}).status_code == 401
    # a wrong password is no proof either; the right one signs in
    for password, status in (("not ann's password", 202), (PASSWORD, 200)):
        other = signup(client, f"team-{status}@x.io")
        client.post("/v1/invitations", headers=bearer(other["access_token"]), json=invite)
        answer = client.post(
            "/v1/invitations/accept",
            json={"token": link_token(smtp, "invite"), "password": password},
        )
        assert answer.status_code == status, answer.text
    assert answer.json()["user_id"] == ann["user_id"]
    assert answer.json()["tenant_id"] == other["tenant_id"]


def test_a_pending_invitation_is_revoked_and_its_link_refused(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """A mistyped address or a change of mind: the invitation is withdrawn, and its link
    is answered as an unknown one. An accepted one cannot be (remove the member)."""
    ann = signup(client)
    auth = bearer(ann["access_token"])
    made = client.post("/v1/invitations", headers=auth, json={"email": "bo@x.io", "role": "admin"})
    token = link_token(smtp, "invite")
    assert client.delete(f"/v1/invitations/{made.json()['id']}", headers=auth).status_code == 204
    assert client.get("/v1/invitations", headers=auth).json()["items"] == []
    revoked = client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    unknown = client.post("/v1/invitations/accept", json={"token": "dd0i_x", "password": PASSWORD})
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json() == unknown.json()
    assert client.delete(f"/v1/invitations/{made.json()['id']}", headers=auth).status_code == 404
    audited = client.get("/v1/audit?action=invitation.revoke", headers=auth).json()["items"]
    assert [(e["target_id"], e["detail"]) for e in audited] == [
        (made.json()["id"], {"email": "bo@x.io", "role": "admin"})
    ]
    # accepted: 404, the member stays
    ad = join(client, smtp, auth, "ad@x.io", "admin")
    accepted = client.get("/v1/invitations", headers=auth).json()["items"][0]
    assert client.delete(f"/v1/invitations/{accepted['id']}", headers=auth).status_code == 404
    # an admin may not withdraw an owner's invitation, as they may not make one
    owner_invite = {"email": "co@x.io", "role": "owner"}
    pending = client.post("/v1/invitations", headers=auth, json=owner_invite).json()
    by_admin = client.delete(f"/v1/invitations/{pending['id']}", headers=bearer(ad["access_token"]))
    assert by_admin.status_code == 403
    assert client.delete(f"/v1/invitations/{pending['id']}", headers=auth).status_code == 204


def test_an_admin_cannot_become_owner_through_an_admin_key(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """An admin may create admin-scoped keys; such a key is still no owner, so it may
    neither promote its maker nor demote, remove or invite an owner."""
    owner = signup(client)
    auth = bearer(owner["access_token"])
    invited = client.post(
        "/v1/invitations", headers=auth, json={"email": "ad@x.io", "role": "admin"}
    )
    assert invited.status_code == 201, invited.text
    token = link_token(smtp, "invite")
    admin = client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert admin.status_code == 200, admin.text
    made = client.post(
        "/v1/api-keys",
        headers=bearer(admin.json()["access_token"]),
        json={"name": "mine", "scope": "admin"},
    )
    assert made.status_code == 201, made.text
    key = bearer(made.json()["key"])
    me, boss = admin.json()["user_id"], owner["user_id"]
    assert client.patch(f"/v1/users/{me}", headers=key, json={"role": "owner"}).status_code == 403
    assert (
        client.patch(f"/v1/users/{boss}", headers=key, json={"role": "viewer"}).status_code == 403
    )
    assert client.delete(f"/v1/users/{boss}", headers=key).status_code == 403
    new_owner = {"email": "pal@x.io", "role": "owner"}
    assert client.post("/v1/invitations", headers=key, json=new_owner).status_code == 403
    roles = {u["email"]: u["role"] for u in client.get("/v1/users", headers=auth).json()["items"]}
    assert roles == {"ann@example.com": "owner", "ad@x.io": "admin"}
    # the key still manages everyone but owners
    patched = client.patch(f"/v1/users/{me}", headers=key, json={"role": "member"})
    assert patched.status_code == 200, patched.text


def join(client: TestClient, smtp: SmtpStandIn, auth: dict[str, str], email: str, role: str) -> Any:
    """A new member of ``auth``'s tenant, in ``role``, by invitation; their tokens."""
    invited = client.post("/v1/invitations", headers=auth, json={"email": email, "role": role})
    assert invited.status_code == 201, invited.text
    token = link_token(smtp, "invite")
    joined = client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert joined.status_code == 200, joined.text
    return joined.json()


def test_keys_go_with_the_power_of_whoever_made_them(client: TestClient, smtp: SmtpStandIn) -> None:
    """A key made by a person is revoked when that person may no longer make it:
    removed from the team (all of theirs), or demoted below the roles that manage keys.
    An admin who made an admin key kept the team's full admin powers through it."""
    ann = signup(client)
    auth = bearer(ann["access_token"])
    ad = join(client, smtp, auth, "ad@x.io", "admin")
    co = join(client, smtp, auth, "co@x.io", "owner")
    keys: dict[str, str] = {}
    for maker, name, scope in (
        (ad, "ad-admin", "admin"),
        (ad, "ad-read", "read"),
        (co, "co-admin", "admin"),
        (ann, "ann-write", "write"),
    ):
        made = client.post(
            "/v1/api-keys",
            headers=bearer(maker["access_token"]),
            json={"name": name, "scope": scope},
        )
        assert made.status_code == 201, made.text
        assert made.json()["created_by"] == maker["user_id"]
        keys[name] = made.json()["key"]
    by_key = client.post(
        "/v1/api-keys", headers=bearer(keys["ann-write"]), json={"name": "k", "scope": "read"}
    )
    assert by_key.status_code == 403  # a write key makes no key
    listed = client.get("/v1/api-keys", headers=auth).json()["items"]
    assert {k["name"]: k["created_by_email"] for k in listed} == {
        "ad-admin": "ad@x.io",
        "ad-read": "ad@x.io",
        "co-admin": "co@x.io",
        "ann-write": "ann@example.com",
    }

    def works(name: str) -> bool:
        return client.get("/v1/incidents", headers=bearer(keys[name])).status_code == 200

    # An owner made admin may still make admin keys: theirs stay.
    assert client.patch(f"/v1/users/{co['user_id']}", headers=auth, json={"role": "admin"})
    assert works("co-admin")
    # An admin made a member may make no key: all of theirs go, at once.
    demoted = client.patch(f"/v1/users/{ad['user_id']}", headers=auth, json={"role": "member"})
    assert demoted.status_code == 200, demoted.text
    assert not works("ad-admin") and not works("ad-read")
    assert works("co-admin") and works("ann-write")
    # Removed: every key they made goes.
    assert client.delete(f"/v1/users/{co['user_id']}", headers=auth).status_code == 204
    assert not works("co-admin") and works("ann-write")
    revoked = client.get("/v1/audit?action=api_key.revoke", headers=auth).json()["items"]
    ids = {k["name"]: k["id"] for k in listed}
    assert sorted((e["target_id"], e["detail"]["reason"]) for e in revoked) == sorted(
        [
            (ids["ad-admin"], "creator_demoted"),
            (ids["ad-read"], "creator_demoted"),
            (ids["co-admin"], "creator_removed"),
        ]
    )
    assert all(e["actor"] == "user:ann@example.com" for e in revoked)


def test_a_key_made_with_a_persons_key_goes_with_that_person(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """A key made with an admin key is the key maker's too: the admin's own key went at
    their removal, but one it had made (recorded as nobody's) kept admin powers for
    someone no longer in the team."""
    ann = signup(client)
    auth = bearer(ann["access_token"])
    ad = join(client, smtp, auth, "ad@x.io", "admin")

    def make(headers: dict[str, str], name: str) -> dict[str, Any]:
        made = client.post("/v1/api-keys", headers=headers, json={"name": name, "scope": "admin"})
        assert made.status_code == 201, made.text
        return dict(made.json())

    own = make(bearer(ad["access_token"]), "ad-own")
    child = make(bearer(own["key"]), "ad-child")
    grandchild = make(bearer(child["key"]), "ad-grandchild")
    assert child["created_by"] == grandchild["created_by"] == ad["user_id"]

    assert client.delete(f"/v1/users/{ad['user_id']}", headers=auth).status_code == 204
    for key in (own, child, grandchild):
        assert client.get("/v1/incidents", headers=bearer(key["key"])).status_code == 401
    revoked = client.get("/v1/audit?action=api_key.revoke", headers=auth).json()["items"]
    assert {e["target_id"] for e in revoked} == {own["id"], child["id"], grandchild["id"]}


def test_invitations_go_with_the_power_of_whoever_made_them(
    client: TestClient, smtp: SmtpStandIn
) -> None:
    """A removed admin's pending invitation stayed valid for its week: accepted under
    another address of theirs, it brought them back. Removal withdraws every pending
    invitation its person made (with a key of theirs too); a demotion those the new
    role may not make; the owner's own stay."""
    ann = signup(client)
    auth = bearer(ann["access_token"])
    ad = join(client, smtp, auth, "ad@x.io", "admin")
    co = join(client, smtp, auth, "co@x.io", "owner")

    def invite(headers: dict[str, str], email: str, role: str) -> tuple[str, str]:
        made = client.post("/v1/invitations", headers=headers, json={"email": email, "role": role})
        assert made.status_code == 201, made.text
        return str(made.json()["id"]), link_token(smtp, "invite")

    ad_key = client.post(
        "/v1/api-keys", headers=bearer(ad["access_token"]), json={"name": "k", "scope": "admin"}
    ).json()["key"]
    by_ad = [
        invite(bearer(ad["access_token"]), "ad-again@x.io", "admin"),
        invite(bearer(ad_key), "ad-third@x.io", "member"),
    ]
    co_owner = invite(bearer(co["access_token"]), "boss@x.io", "owner")
    co_admin = invite(bearer(co["access_token"]), "lead@x.io", "admin")
    ann_own = invite(auth, "friend@x.io", "viewer")

    assert client.delete(f"/v1/users/{ad['user_id']}", headers=auth).status_code == 204
    demoted = client.patch(f"/v1/users/{co['user_id']}", headers=auth, json={"role": "admin"})
    assert demoted.status_code == 200, demoted.text

    listed = client.get("/v1/invitations", headers=auth).json()["items"]
    pending = {i["id"] for i in listed if i["accepted_at"] is None}
    assert pending == {co_admin[0], ann_own[0]}
    for _, token in [*by_ad, co_owner]:
        refused = client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
        assert refused.status_code == 401, refused.text
    accepted = client.post(
        "/v1/invitations/accept", json={"token": co_admin[1], "password": PASSWORD}
    )
    assert accepted.status_code == 200, accepted.text
    withdrawn = client.get("/v1/audit?action=invitation.revoke", headers=auth).json()["items"]
    assert {e["target_id"] for e in withdrawn} == {by_ad[0][0], by_ad[1][0], co_owner[0]}
    assert {e["detail"]["reason"] for e in withdrawn} == {"creator_removed", "creator_demoted"}


def _waiting_on_locks(conn: sa.Connection) -> int:
    """Sessions waiting on a lock (PostgreSQL); SQLite's writers wait unseen."""
    if conn.dialect.name != "postgresql":
        return 2
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    return int(conn.execute(sa.text(query)).scalar_one())


def test_two_owners_demoting_each_other_at_once_leave_one(
    runtime: Runtime, settings: Settings
) -> None:
    """The "a tenant keeps an owner" check and the change are one transaction: two
    owners demoting each other at once, released together, leave exactly one owner.
    Checked first and changed after, both saw two owners and both went through."""
    store = runtime.store.accounts()
    tenant = runtime.store.create_tenant("acme")
    owners = [store.create_user(f"o{n}@x.io", "hash").id for n in range(2)]
    for user_id in owners:
        store.add_member(tenant.id, user_id, "owner")
    with pytest.raises(LastOwner):  # sequential: the second is refused
        store.set_role(tenant.id, owners[0], "admin", ())
        store.set_role(tenant.id, owners[1], "admin", ())
    store.set_role(tenant.id, owners[0], "owner", ())
    outcomes: list[str] = []

    def demote(user_id: str) -> None:
        try:
            store.set_role(tenant.id, user_id, "admin", ())
            outcomes.append("demoted")
        except LastOwner:
            outcomes.append("refused")

    engine = sa.create_engine(normalise_database_url(settings.resolved_database_url))
    try:
        with engine.connect() as watch, tenant_connection(settings, tenant.id) as hold:
            m = schema.memberships
            hold.execute(m.update().where(m.c.tenant_id == tenant.id).values(role=m.c.role))
            threads = [threading.Thread(target=demote, args=(u,)) for u in owners]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 5
            while _waiting_on_locks(watch) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)  # both are queued behind the held lock: release them at once
        for thread in threads:
            thread.join(10)
    finally:
        engine.dispose()
    assert sorted(outcomes) == ["demoted", "refused"]
    assert [m.role for m in store.members(tenant.id)].count("owner") == 1


def test_api_keys_scoped_shown_once_revocable(client: TestClient, tenant: TenantHandle) -> None:
    made = client.post("/v1/api-keys", headers=tenant.auth, json={"name": "ci", "scope": "read"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    listed = client.get("/v1/api-keys", headers=tenant.auth).json()["items"]
    assert key not in json.dumps(listed)
    assert {k["name"]: k["scope"] for k in listed} == {"test": "admin", "ci": "read"}
    assert client.get("/v1/incidents", headers=bearer(key)).status_code == 200
    assert (
        client.put("/v1/topology", headers=bearer(key), json={"dependencies": {}}).status_code
        == 403
    )
    used = client.get("/v1/api-keys", headers=tenant.auth).json()["items"]
    assert next(k for k in used if k["name"] == "ci")["last_used_at"] is not None
    key_id = made.json()["id"]
    assert client.delete(f"/v1/api-keys/{key_id}", headers=tenant.auth).status_code == 204
    revoked = client.get("/v1/incidents", headers=bearer(key))
    assert revoked.status_code == 401 and revoked.json()["detail"] == "API key revoked"
    assert client.post("/v1/incidents/x/ack", headers=bearer(key)).status_code == 401
    # The refusal is audited, once a minute per key: its holder cannot flood the log.
    refused = client.get("/v1/audit?action=api_key.refused", headers=tenant.auth).json()["items"]
    assert [(e["actor"], e["target_id"], e["detail"]) for e in refused] == [
        ("key:ci", key_id, {"reason": "revoked", "method": "GET", "path": "/v1/incidents"})
    ]
    past = {"name": "old", "scope": "admin", "expires_at": "2000-01-01T00:00:00Z"}
    refused = client.post("/v1/api-keys", headers=tenant.auth, json=past)
    assert refused.status_code == 422 and "in the past" in refused.text  # could never work
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    made = client.post(
        "/v1/api-keys", headers=tenant.auth, json={**past, "expires_at": soon.isoformat()}
    )
    assert made.status_code == 201, made.text
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
    expired = client.get("/v1/incidents", headers=bearer(made.json()["key"]))
    assert expired.status_code == 401 and expired.json()["detail"] == "API key expired"


def test_cookie_sessions_need_the_csrf_token(client: TestClient) -> None:
    made = signup(client)
    client.cookies.set("dd0c_session", made["access_token"])
    client.cookies.set("dd0c_csrf", "tok-123")
    assert client.get("/v1/me").status_code == 200  # reads need no CSRF token
    body = {"dependencies": {}}
    assert client.put("/v1/topology", json=body).status_code == 403
    wrong = client.put("/v1/topology", json=body, headers={"X-CSRF-Token": "other"})
    assert wrong.status_code == 403
    right = client.put("/v1/topology", json=body, headers={"X-CSRF-Token": "tok-123"})
    assert right.status_code == 200
    client.cookies.clear()
    # bearer requests need no CSRF token
    assert (
        client.put("/v1/topology", json=body, headers=bearer(made["access_token"])).status_code
        == 200
    )


def test_a_form_post_with_the_session_cookie_is_read_not_a_500(client: TestClient) -> None:
    """The CSRF token may come as the ``csrf_token`` field of a form; reading it needed
    python-multipart, which is not installed, and every such post was answered 500."""
    made = signup(client)
    client.cookies.set("dd0c_session", made["access_token"])
    client.cookies.set("dd0c_csrf", "tok-123")
    ack = "/v1/incidents/01JUNKJUNKJUNKJUNKJUNKJUNK/ack"
    assert client.post(ack, data={"csrf_token": "tok-123"}).status_code == 404  # past the check
    assert client.post(ack, data={"csrf_token": "other"}).status_code == 403
    multipart = client.post(ack, files={"csrf_token": (None, "tok-123")})
    assert multipart.status_code == 403  # such a body sends the header
    topology = client.put("/v1/topology", data={"csrf_token": "tok-123", "dependencies": "x"})
    assert topology.status_code == 422


def test_login_throttling(client: TestClient) -> None:
    signup(client)
    wrong = {"email": "ann@example.com", "password": "not the password"}
    for _ in range(10):
        assert client.post("/v1/auth/login", json=wrong).status_code == 401
    blocked = client.post("/v1/auth/login", json={**wrong, "password": PASSWORD})
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_attempts"
    assert int(blocked.headers["Retry-After"]) > 0


def test_new_passwords_from_one_address_are_counted(client: TestClient) -> None:
    """Sign-ups and invitations accepted with a new password each cost an argon2 hash
    that nobody signed in asked for: one client address gets a budget of them, shared
    by the API and the dashboard's forms, and then a 429 that says when to come back."""
    owner = signup(client, "first@example.com")
    limit = 20  # AuthConfig.new_passwords_per_address
    for index in range(1, limit - 1):
        signup(client, f"user{index}@example.com")
    invited = client.post(
        "/v1/invitations",
        headers=bearer(owner["access_token"]),
        json={"email": "late@example.com", "role": "viewer"},
    )
    assert invited.status_code == 201, invited.text
    token = "csrf-of-this-browser"
    form = {
        "csrf_token": token,
        "email": "form@example.com",
        "team_name": "F",
        "password": PASSWORD,
    }
    by_form = client.post(
        "/signup", data=form, headers={"Cookie": f"dd0c_csrf={token}"}, follow_redirects=False
    )
    assert by_form.status_code == 303, by_form.text  # the budget's last
    refused = client.post(
        "/v1/auth/signup",
        json={"email": "one-more@example.com", "password": PASSWORD, "tenant_name": "X"},
    )
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) > 0
    again = client.post(
        "/v1/invitations/accept", json={"token": invited.json()["id"], "password": PASSWORD}
    )
    assert again.status_code == 429
    client.cookies.clear()
    assert (
        client.post(
            "/signup", data=form, headers={"Cookie": f"dd0c_csrf={token}"}, follow_redirects=False
        ).status_code
        == 429
    )
    # logging in is not a new password: the budget does not touch it
    login = {"email": "first@example.com", "password": PASSWORD}
    assert client.post("/v1/auth/login", json=login).status_code == 200


def test_the_api_and_the_login_form_share_one_throttle(client: TestClient) -> None:
    """Guesses through the API count against the dashboard's form too (and the other
    way round), whatever the email's case: neither grants a second budget."""
    signup(client, "cat@example.com")  # Redis outlives a test: an email of its own
    wrong = {"email": "cat@example.com", "password": "not the password"}
    for index in range(5):
        email = "CAT@example.com" if index % 2 else "cat@example.com"
        assert client.post("/v1/auth/login", json={**wrong, "email": email}).status_code == 401
    token = "csrf-of-this-browser"  # the public URL is https: the cookie is Secure

    def by_form(password: str) -> int:
        form = {"csrf_token": token, "email": " Cat@Example.com ", "password": password}
        cookie = {"Cookie": f"dd0c_csrf={token}"}
        return client.post("/login", data=form, headers=cookie, follow_redirects=False).status_code

    for _ in range(5):
        assert by_form("not the password") == 401
    assert by_form(PASSWORD) == 429
    blocked = client.post("/v1/auth/login", json={**wrong, "password": PASSWORD})
    assert blocked.status_code == 429


def _forge(payload: dict[str, Any], key: str, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def test_forged_or_stale_tokens_are_refused(client: TestClient, runtime: Runtime) -> None:
    made = signup(client)
    config = runtime.auth
    now = datetime.now(UTC)
    good = {
        "iss": config.issuer,
        "aud": config.audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "x",
        "sub": made["user_id"],
        "tid": made["tenant_id"],
        "role": "owner",
    }
    assert client.get("/v1/me", headers=bearer(_forge(good, config.jwt_secret))).status_code == 200

    def b64(part: dict[str, Any]) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(part, default=str).encode()).rstrip(b"=").decode()
        )

    claims = {**good, "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 300}
    forged = [
        _forge({**good, "exp": now - timedelta(seconds=1)}, config.jwt_secret),
        _forge({**good, "iss": "someone-else"}, config.jwt_secret),
        _forge({**good, "aud": "another-api"}, config.jwt_secret),
        _forge(good, "not-the-key-" + "y" * 32),
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        # RS256 announced, signed with the HS key as if it were a public key
        f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}."
        + _forge(good, config.jwt_secret).rsplit(".", 1)[1],
    ]
    real = issue_access(config, made["user_id"], made["tenant_id"], "owner", "a-sign-in")
    head, _body, sig = real.split(".")
    tampered = {**claims, "role": "owner", "tid": "another-tenant"}
    forged.append(f"{head}.{b64(tampered)}.{sig}")
    for token in forged:
        answer = client.get("/v1/me", headers=bearer(token))
        assert answer.status_code == 401, token


# --- the permission matrix, generated from the app's routes ---------------------------

#: Routes answered without authentication (webhooks are outside FastAPI's routing).
PUBLIC = re.compile(
    r"^/(health|ready|metrics|docs|openapi|static)|^/v1/auth/(signup|login|"
    r"refresh|logout|reset-request|reset)$|^/v1/invitations/accept$"
    r"|^/v1/slack/(interactions|commands)$|^/(healthz|readyz)$"
)


def _flat(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every route with its full path (included routers are walked)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def _routes(app: Any) -> list[tuple[str, str, str | None]]:
    found = []
    for full_path, route in _flat(app.routes):
        methods = getattr(route, "methods", None)
        dependant = getattr(route, "dependant", None)
        if not methods or dependant is None:
            continue
        if getattr(route.endpoint, "__module__", "").startswith("dd0c_alert.web.dashboard"):
            continue  # HTML pages: login redirects and form checks (tests/dashboard)
        operations = {operation_of(d.call) for d in dependant.dependencies} - {None}
        assert len(operations) <= 1, route.path
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            found.append((method, full_path, next(iter(operations), None)))
    return found


def _path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "01JUNKJUNKJUNKJUNKJUNKJUNK", path)


def test_every_route_is_public_or_checks_one_operation(client: TestClient) -> None:
    routes = _routes(client.app)
    assert len(routes) > 40
    for method, path, operation in routes:
        if operation is None:
            assert PUBLIC.search(path), f"{method} {path} checks no permission"
            continue
        assert operation in TABLE
        answer = client.request(method, _path(path), json={})
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_permission_matrix(client: TestClient, runtime: Runtime, tenant: TenantHandle) -> None:
    store = runtime.store.accounts()
    password_hash = hash_password(PASSWORD)
    callers: dict[str, tuple[str, dict[str, str]]] = {}
    for role in ROLES:
        user = store.create_user(f"{role}@example.com", password_hash)
        store.add_member(tenant.id, user.id, role)
        session = store.issue_refresh(tenant.id, user.id, runtime.auth.refresh_ttl).family_id
        token = issue_access(runtime.auth, user.id, tenant.id, role, session)
        callers[f"role:{role}"] = (role, bearer(token))
    for scope in SCOPES:
        key, _ = store.create_api_key(tenant.id, f"k-{scope}", scope)
        callers[f"scope:{scope}"] = (scope, bearer(key))
    checked = 0
    for method, path, operation in _routes(client.app):
        if operation is None or (method, path) == ("POST", "/v1/auth/password"):
            continue
        rule = TABLE[operation]
        for name, (who, headers) in callers.items():
            allowed = who in (rule.roles if name.startswith("role:") else rule.scopes)
            answer = client.request(method, _path(path), json={}, headers=headers)
            if allowed:
                assert answer.status_code not in (401, 403), (name, method, path, answer.text)
            else:
                assert answer.status_code == 403, (name, method, path, answer.status_code)
            checked += 1
    assert checked > 100
