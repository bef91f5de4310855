"""KrmPesan's token API on the service the real server is built on: AWS Cognito, here moto's.

moto's Cognito runs in this process (``moto.server.ThreadedMotoServer`` on its own loopback
port); the glue in front of it is what KrmPesan's page implies:

* ``GET /tokens?refresh_token=...&device_key=...`` - Cognito ``InitiateAuth``
  ``REFRESH_TOKEN_AUTH`` (through boto3, as a Lambda behind the real route would), answered with
  the ``AuthenticationResult``. A rejection from Cognito is passed on with its status and its
  own error (``{"__type": "NotAuthorizedException", "message": ...}``).
* ``GET /api/ping`` - a protected resource that accepts ``Authorization: Bearer <IdToken>`` when
  the IdToken verifies against the pool's published keys (moto's JWKS), as API Gateway's Cognito
  authorizer does; otherwise 401 ``{"message": "Unauthorized"}``.

The pool and its app client are made at start. Under ``/harness/`` are routes the tests use to
log a new user in (``InitiateAuth`` ``USER_PASSWORD_AUTH``, which gives the refresh token that
KrmPesan's dashboard would) and to sign a user out everywhere; they are not part of KrmPesan.

Prints ``ready http://127.0.0.1:PORT`` once it listens; exits when its standard input closes.
"""

import os
import secrets
import sys
import threading
import uuid

import boto3
import jwt
from botocore.exceptions import ClientError, ParamValidationError
from flask import Flask, jsonify, request
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

REGION = "ap-southeast-1"

moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
moto_server.start()
MOTO_URL = "http://{}:{}".format(*moto_server.get_host_and_port())

cognito = boto3.client(
    "cognito-idp",
    region_name=REGION,
    endpoint_url=MOTO_URL,
    aws_access_key_id="conformance",
    aws_secret_access_key="conformance",
)
POOL_ID = cognito.create_user_pool(PoolName="krmpesan")["UserPool"]["Id"]
CLIENT_ID = cognito.create_user_pool_client(
    UserPoolId=POOL_ID,
    ClientName="krmpesan-dashboard",
    ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
)["UserPoolClient"]["ClientId"]
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
JWKS = jwt.PyJWKClient(f"{MOTO_URL}/{POOL_ID}/.well-known/jwks.json")

app = Flask(__name__)


def cognito_error(err):
    error = err.response.get("Error", {})
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    return jsonify({"__type": error.get("Code"), "message": error.get("Message")}), status


@app.get("/tokens")
def tokens():
    parameters = {"REFRESH_TOKEN": request.args.get("refresh_token", "")}
    device_key = request.args.get("device_key")
    if device_key:
        parameters["DEVICE_KEY"] = device_key
    try:
        answer = cognito.initiate_auth(
            ClientId=CLIENT_ID, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=parameters
        )
    except ClientError as err:
        return cognito_error(err)
    return jsonify(answer["AuthenticationResult"])


@app.get("/api/ping")
def ping():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme != "Bearer":
            raise jwt.InvalidTokenError("not a bearer token")
        key = JWKS.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token, key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=ISSUER
        )
        if claims.get("token_use") != "id":
            raise jwt.InvalidTokenError("not an IdToken")
    except jwt.PyJWTError:
        return jsonify({"message": "Unauthorized"}), 401
    return jsonify({"pong": True, "username": claims["cognito:username"]})


@app.post("/harness/logins")
def login():
    """A new user of the pool, logged in: its refresh token and a device key."""
    username = str(uuid.uuid4())
    password = "Kc1!" + secrets.token_urlsafe(24)
    cognito.admin_create_user(UserPoolId=POOL_ID, Username=username, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=POOL_ID, Username=username, Password=password, Permanent=True
    )
    result = cognito.initiate_auth(
        ClientId=CLIENT_ID,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )["AuthenticationResult"]
    return jsonify(
        {
            "username": username,
            "refresh_token": result["RefreshToken"],
            "device_key": f"{REGION}_{uuid.uuid4()}",
            "client_id": CLIENT_ID,
        }
    )


@app.post("/harness/sign-out")
def sign_out():
    """Cognito's AdminUserGlobalSignOut: every refresh token of the user is revoked."""
    username = (request.get_json(silent=True) or {}).get("username", "")
    try:
        cognito.admin_user_global_sign_out(UserPoolId=POOL_ID, Username=username)
    except (ClientError, ParamValidationError) as err:
        return jsonify({"message": str(err)}), 400
    return jsonify({"signed_out": username})


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"ready http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
