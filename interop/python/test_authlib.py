"""Authlib's Flask client (the OAuth/OIDC client of many Flask applications; its Django and
Starlette clients share the same code) signs in against wecom-oidc end to end.

A Flask application registers the provider by its discovery URL and has /login and
/auth/callback views written as Authlib's documentation shows; Flask's test client drives them,
and a requests session plays the person's browser between the application, the provider and the
WeCom simulator. Authlib does every protocol step and every validation (state, PKCE, client
authentication, the ID token's signature, iss, aud, exp, nonce and at_hash); the test checks
what it hands back. Run through interop/run.sh, which sets ISSUER, SIMULATOR and ADMIN_TOKEN.
"""

import os
import unittest
from importlib.metadata import version
from urllib.parse import urljoin, urlsplit

import requests
from authlib.integrations.flask_client import OAuth
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, jsonify, redirect, url_for

ISSUER = os.environ["ISSUER"]
SIMULATOR = os.environ["SIMULATOR"]
ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
APP = "http://127.0.0.1:5000"
REDIRECT_URI = f"{APP}/auth/callback"
SCOPE = "openid profile email groups offline_access"


def register_client():
    response = requests.post(
        f"{ISSUER}/admin/clients",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={
            "client_name": "interop: Authlib",
            "redirect_uris": [REDIRECT_URI],
            "post_logout_redirect_uris": [f"{APP}/"],
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def flask_application(client_id, client_secret):
    """An application as Authlib's Flask guide writes one."""
    app = Flask(__name__)
    app.secret_key = os.urandom(16)
    app.config["SERVER_NAME"] = urlsplit(APP).netloc
    oauth = OAuth(app)
    oauth.register(
        name="wecom",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{ISSUER}/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
    )

    @app.route("/login")
    def login():
        return oauth.wecom.authorize_redirect(url_for("callback", _external=True))

    @app.route("/auth/callback")
    def callback():
        token = oauth.wecom.authorize_access_token()
        userinfo = oauth.wecom.userinfo(token=token)
        return jsonify(token=token, id_claims=dict(token["userinfo"]), userinfo=dict(userinfo))

    @app.route("/logout/<path:id_token>")
    def logout(id_token):
        return oauth.wecom.logout_redirect(
            post_logout_redirect_uri=f"{APP}/", id_token_hint=id_token, state="bye"
        )

    @app.route("/")
    def home():
        return redirect("/login")

    return app


class Browser:
    """The person's browser: cookies, and every redirect followed by hand."""

    def __init__(self):
        self.session = requests.Session()

    def redirect_from(self, url):
        response = self.session.get(url, allow_redirects=False, timeout=10)
        assert response.is_redirect, f"expected a redirect from {url}: {response.status_code}"
        return urljoin(url, response.headers["Location"])

    def sign_in(self, authorization_url, member):
        at_wecom = self.redirect_from(authorization_url)
        assert at_wecom.startswith(f"{SIMULATOR}/wwlogin/sso/login?"), at_wecom
        page = self.session.get(at_wecom, timeout=10)
        assert page.status_code == 200 and member in page.text, "the WeCom picker shows"
        path, query = at_wecom.split("?", 1)
        callback = self.redirect_from(f"{path}/approve?{query}&userid={member}")
        assert callback.startswith(f"{ISSUER}/"), callback
        return self.redirect_from(callback)


class AuthlibFlaskClient(unittest.TestCase):
    def test_sign_in_userinfo_refresh_logout(self):
        print(f"Authlib {version('Authlib')} (Flask {version('Flask')})")
        registered = register_client()
        app = flask_application(registered["client_id"], registered["client_secret"])
        rp = app.test_client()
        browser = Browser()

        to_provider = rp.get("/login")
        self.assertEqual(to_provider.status_code, 302)
        authorization_url = to_provider.headers["Location"]
        self.assertTrue(authorization_url.startswith(f"{ISSUER}/authorize?"), authorization_url)
        for parameter in ("state=", "nonce=", "code_challenge_method=S256"):
            self.assertIn(parameter, authorization_url)

        back = browser.sign_in(authorization_url, "ZhangSan")
        self.assertTrue(back.startswith(f"{REDIRECT_URI}?"), back)
        answer = rp.get(back[len(APP):])
        self.assertEqual(answer.status_code, 200, answer.get_data(as_text=True))
        body = answer.get_json()

        for where in ("id_claims", "userinfo"):
            claims = body[where]
            self.assertEqual(claims["sub"], "zhangsan", where)
            self.assertEqual(claims["preferred_username"], "ZhangSan", where)
            self.assertEqual(claims["name"], "张三", where)
            self.assertRegex(claims["email"], r"^[^@]+@[^@]+$", where)
            self.assertIsInstance(claims["groups"], list, where)
            self.assertIn("总部/研发部/平台组", claims["groups"], where)
            self.assertIn("tag:管理员", claims["groups"], where)
        self.assertEqual(body["id_claims"]["iss"], ISSUER)
        self.assertEqual(body["id_claims"]["aud"], registered["client_id"])
        token = body["token"]
        self.assertIn("refresh_token", token, "offline_access gives a refresh token")

        # Refresh with Authlib's requests session, client_secret_basic.
        metadata = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
        session = OAuth2Session(
            registered["client_id"],
            registered["client_secret"],
            token_endpoint_auth_method="client_secret_basic",
        )
        refreshed = session.refresh_token(
            metadata["token_endpoint"], refresh_token=token["refresh_token"]
        )
        self.assertNotEqual(refreshed["access_token"], token["access_token"])
        userinfo = session.get(metadata["userinfo_endpoint"], timeout=10)
        self.assertEqual(userinfo.status_code, 200)
        self.assertEqual(userinfo.json()["sub"], "zhangsan")

        # RP-initiated logout built by Authlib.
        to_logout = rp.get(f"/logout/{token['id_token']}")
        self.assertEqual(to_logout.status_code, 302)
        after = browser.redirect_from(to_logout.headers["Location"])
        self.assertEqual(after, f"{APP}/?state=bye")


if __name__ == "__main__":
    unittest.main(verbosity=2)
