"""Stamps' token API on the libraries the real server is built on.

Django + Django REST framework + djangorestframework-simplejwt, with only the glue Stamps' page
implies:

* ``POST /api/auth/get-access-token/`` - JSON ``token`` (a DRF token key) and
  ``crm_merchant_id``; the key is checked by DRF's ``TokenAuthentication``, the answer is
  ``AccessToken.for_user(user)`` with a ``merchant_id`` claim: ``{"access_token": ...}``.
* ``POST /api/auth/verify-token/`` - simplejwt's ``JWTAuthentication``; answers the claims.
* ``GET|POST /api/ping`` - accepts DRF's ``Token <key>`` and simplejwt's ``Bearer <jwt>``.

Every error body is the libraries' own (DRF's exception handler, simplejwt's
``token_not_valid``). Under ``/harness/`` are routes the tests use to set up their own accounts;
they are not part of Stamps.

Prints ``ready http://127.0.0.1:PORT`` once it listens; exits when its standard input closes
(so it never outlives the ``cargo xtask conformance`` that started it).
"""

import os
import secrets
import shutil
import socketserver
import sys
import tempfile
import threading
import uuid
from datetime import timedelta

import django
from django.conf import settings

DATA_DIR = tempfile.mkdtemp(prefix="kunci-conformance-stamps-")
SIGNING_KEY = secrets.token_hex(32)
# The key the server signed with before its key was rotated (see /harness/old-key-token).
OLD_SIGNING_KEY = secrets.token_hex(32)

settings.configure(
    DEBUG=False,
    SECRET_KEY=secrets.token_hex(32),
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "rest_framework",
        "rest_framework.authtoken",
    ],
    # As a Django project has it; among other things it redirects a path without its trailing
    # slash (kunci sends the slash, and never follows redirects).
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(DATA_DIR, "db.sqlite3"),
            "OPTIONS": {"timeout": 30},
        }
    },
    REST_FRAMEWORK={
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "UNAUTHENTICATED_USER": None,
    },
    SIMPLE_JWT={
        # The page: "a time-limited authentication credential that expires after 24 hours".
        "ACCESS_TOKEN_LIFETIME": timedelta(hours=24),
        "ALGORITHM": "HS256",
        "SIGNING_KEY": SIGNING_KEY,
    },
)
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework import serializers  # noqa: E402
from rest_framework.authentication import TokenAuthentication  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.permissions import AllowAny, IsAuthenticated  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402
from rest_framework_simplejwt.authentication import JWTAuthentication  # noqa: E402
from rest_framework_simplejwt.backends import TokenBackend  # noqa: E402
from rest_framework_simplejwt.tokens import AccessToken  # noqa: E402


class AccessTokenRequest(serializers.Serializer):
    token = serializers.CharField()
    crm_merchant_id = serializers.IntegerField(min_value=1)


def access_token(user, merchant_id):
    token = AccessToken.for_user(user)
    token["merchant_id"] = merchant_id
    return token


class GetAccessToken(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        body = AccessTokenRequest(data=request.data)
        body.is_valid(raise_exception=True)
        # DRF's own check of a token key: "Invalid token." / "User inactive or deleted."
        user, _ = TokenAuthentication().authenticate_credentials(body.validated_data["token"])
        token = access_token(user, body.validated_data["crm_merchant_id"])
        return Response({"access_token": str(token)})


class VerifyToken(APIView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request):
        return Response(request.auth.payload)


class Ping(APIView):
    authentication_classes = [TokenAuthentication, JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"pong": True, "user_id": str(request.user.pk)})

    post = get


class HarnessAccount(APIView):
    """A new user with a DRF token key (``{"active": false}`` for a deactivated one)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        user = User.objects.create_user(
            username=uuid.uuid4().hex, is_active=bool(request.data.get("active", True))
        )
        token = Token.objects.create(user=user)
        return Response({"token": token.key, "user_id": user.pk})


class HarnessOldKeyToken(APIView):
    """An access token for a user, signed with the key the server used before its rotation."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        user = User.objects.get(pk=request.data["user_id"])
        token = access_token(user, int(request.data["merchant_id"]))
        old = TokenBackend(algorithm="HS256", signing_key=OLD_SIGNING_KEY)
        return Response({"access_token": old.encode(token.payload)})


urlpatterns = [
    path("api/auth/get-access-token/", GetAccessToken.as_view()),
    path("api/auth/verify-token/", VerifyToken.as_view()),
    path("api/ping", Ping.as_view()),
    path("harness/accounts", HarnessAccount.as_view()),
    path("harness/old-key-token", HarnessOldKeyToken.as_view()),
]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        sys.stderr.write("stamps: " + (format % args) + "\n")


def exit_when_stdin_closes():
    sys.stdin.read()
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    os._exit(0)


def main():
    call_command("migrate", verbosity=0, interactive=False)
    server_class = type("ThreadedWSGIServer", (socketserver.ThreadingMixIn, WSGIServer), {})
    server_class.daemon_threads = True
    httpd = server_class(("127.0.0.1", 0), QuietHandler, ipv6=False)
    httpd.set_app(get_wsgi_application())
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"ready http://127.0.0.1:{httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
