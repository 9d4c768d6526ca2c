"""Apache's mod_auth_openidc (Debian's libapache2-mod-auth-openidc: the relying party in front of
applications that leave sign-in to the web server) protects a location with wecom-oidc.

The test registers a client, writes an Apache configuration (discovery, client_secret_basic, PKCE,
scopes with groups and offline_access) into a temporary directory, starts Apache on a free
loopback port, and plays the browser: the protected URL sends it to the provider, on to the WeCom
simulator where a member "scans", back to the module's redirect URI, and to the protected URL.
The module does every protocol step and validation itself (state, nonce, PKCE, the ID token's
signature, iss, aud, exp, at_hash); its session info hook then shows what it kept. Run through
interop/run.sh, which sets ISSUER, SIMULATOR and ADMIN_TOKEN.
"""

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from urllib.parse import urljoin

import requests

ISSUER = os.environ["ISSUER"]
SIMULATOR = os.environ["SIMULATOR"]
ADMIN_TOKEN = os.environ["ADMIN_TOKEN"]
MODULES = "/usr/lib/apache2/modules"

CONFIG = """\
ServerRoot "/usr/lib/apache2"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{dir}/apache.pid"
DefaultRuntimeDir "{dir}"
ErrorLog "{dir}/error.log"
LogLevel warn auth_openidc:info
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule dir_module {modules}/mod_dir.so
LoadModule headers_module {modules}/mod_headers.so
LoadModule auth_openidc_module {modules}/mod_auth_openidc.so
{user}
DocumentRoot "{dir}/htdocs"
DirectoryIndex index.html

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret {client_secret}
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI {app}/protected/redirect_uri
OIDCCryptoPassphrase {passphrase}
OIDCScope "openid profile email groups offline_access"
OIDCPKCEMethod S256
OIDCRemoteUserClaim sub
OIDCInfoHook iat access_token id_token userinfo refresh_token session

<Location /protected>
  AuthType openid-connect
  Require valid-user
  # What an application behind Apache receives: REMOTE_USER and the claims as request headers.
  Header always set X-Remote-User "expr=%{{REMOTE_USER}}"
  Header always set X-Claim-Groups "expr=%{{req:OIDC_CLAIM_groups}}"
  Header always set X-Claim-Email "expr=%{{req:OIDC_CLAIM_email}}"
</Location>
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def module_version():
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-auth-openidc"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"


class ModAuthOpenidc(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wecom-oidc-apache.")
        # Apache's children may run as www-data: they need to reach the runtime directory.
        os.chmod(self.dir, 0o755)
        os.mkdir(f"{self.dir}/htdocs")
        os.mkdir(f"{self.dir}/htdocs/protected")
        with open(f"{self.dir}/htdocs/protected/index.html", "w") as page:
            page.write("protected content\n")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.port = free_port()
        self.app = f"http://127.0.0.1:{self.port}"

    def start_apache(self, registered):
        config = CONFIG.format(
            port=self.port,
            dir=self.dir,
            modules=MODULES,
            user="User www-data\nGroup www-data" if os.geteuid() == 0 else "",
            issuer=ISSUER,
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
            app=self.app,
            passphrase=secrets.token_hex(32),
        )
        path = f"{self.dir}/apache.conf"
        with open(path, "w") as file:
            file.write(config)
        apache = subprocess.Popen(["apache2", "-f", path, "-DFOREGROUND"])

        def stop():
            apache.terminate()
            try:
                apache.wait(timeout=10)
            except subprocess.TimeoutExpired:
                apache.kill()

        self.addCleanup(stop)
        for _ in range(100):
            if apache.poll() is not None:
                self.fail(f"apache2 exited: {self.error_log()}")
            try:
                requests.get(f"{self.app}/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.fail("apache2 did not start")

    def error_log(self):
        try:
            with open(f"{self.dir}/error.log") as log:
                return log.read()[-3000:]
        except OSError:
            return ""

    def test_protected_location(self):
        print(f"mod_auth_openidc {module_version()}")
        response = requests.post(
            f"{ISSUER}/admin/clients",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={
                "client_name": "interop: mod_auth_openidc",
                "redirect_uris": [f"{self.app}/protected/redirect_uri"],
            },
            timeout=10,
        )
        self.assertEqual(response.status_code, 201, response.text)
        registered = response.json()
        self.start_apache(registered)

        browser = requests.Session()

        def redirect_from(url):
            answer = browser.get(url, allow_redirects=False, timeout=10)
            self.assertTrue(
                answer.is_redirect,
                f"{url}: {answer.status_code} {answer.text[:300]}\n{self.error_log()}",
            )
            return urljoin(url, answer.headers["Location"])

        authorize = redirect_from(f"{self.app}/protected/")
        self.assertTrue(authorize.startswith(f"{ISSUER}/authorize?"), authorize)
        for parameter in ("state=", "nonce=", "code_challenge_method=S256"):
            self.assertIn(parameter, authorize)
        at_wecom = redirect_from(authorize)
        self.assertTrue(at_wecom.startswith(f"{SIMULATOR}/wwlogin/sso/login?"), at_wecom)
        path, query = at_wecom.split("?", 1)
        callback = redirect_from(f"{path}/approve?{query}&userid=ZhangSan")
        back = redirect_from(callback)
        self.assertTrue(back.startswith(f"{self.app}/protected/redirect_uri?"), back)

        # The module redeems the code, validates the ID token, reads userinfo, and sends the
        # browser back to the page it asked for.
        original = redirect_from(back)
        self.assertEqual(original, f"{self.app}/protected/", self.error_log())
        page = browser.get(original, allow_redirects=False, timeout=10)
        self.assertEqual(page.status_code, 200, self.error_log())
        self.assertEqual(page.text, "protected content\n")
        self.assertEqual(page.headers["X-Remote-User"], "zhangsan", "OIDCRemoteUserClaim sub")
        self.assertRegex(page.headers["X-Claim-Email"], r"^[^@]+@[^@]+$")
        self.assertIn("tag:", page.headers["X-Claim-Groups"])

        info = browser.get(f"{self.app}/protected/redirect_uri?info=json", timeout=10)
        self.assertEqual(info.status_code, 200, f"{info.text[:300]}\n{self.error_log()}")
        session = info.json()
        for where in ("id_token", "userinfo"):
            claims = session[where]
            self.assertEqual(claims["sub"], "zhangsan", where)
            self.assertEqual(claims["name"], "张三", where)
            self.assertRegex(claims["email"], r"^[^@]+@[^@]+$", where)
            self.assertIsInstance(claims["groups"], list, where)
            self.assertIn("总部/研发部/平台组", claims["groups"], where)
        self.assertEqual(session["id_token"]["iss"], ISSUER)
        self.assertEqual(session["id_token"]["aud"], registered["client_id"])
        self.assertTrue(session.get("refresh_token"), "offline_access gives a refresh token")


if __name__ == "__main__":
    unittest.main(verbosity=2)
