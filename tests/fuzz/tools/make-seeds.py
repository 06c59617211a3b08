#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/). Run it again after
changing it; the seeds are committed, so neither CI nor scripts/fuzz needs Python. Seeds that
hold a literal signature use the fixed test keys in tests/fuzz/keys (via the openssl command)."""
import base64, json, os, subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)
KEYS = os.path.join(FUZZ, "keys")


def put(target, name, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def sign_v1(key, body):
    sig = subprocess.run(["openssl", "dgst", "-sha512", "-sign", os.path.join(KEYS, key)],
                         input=body.encode(), capture_output=True, check=True).stdout
    return base64.b64encode(sig).decode()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign_v2(header, body):
    h = b64u(header.encode())
    data = (h + "." + b64u(body.encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha512", "-sign", os.path.join(KEYS, "fuzz-v2.key")],
                         input=data, capture_output=True, check=True).stdout
    return h + ".." + b64u(sig)


def js(o):
    return json.dumps(o, separators=(",", ":"))


# ---- webhook ----
dev_msg = js({"type": "NCW_DEVICE_MESSAGE", "tenantId": "t", "timestamp": 1700000000000,
              "walletId": "w1", "deviceId": "d1", "physicalDeviceId": "p1",
              "message": {"round": 1, "payload": "AAAA"}})
tx_v1 = js({"type": "NCW_TRANSACTION_STATUS_UPDATED", "tenantId": "t", "timestamp": "1700000000000",
            "walletId": "w1", "data": {"status": "PENDING_SIGNATURE", "id": "tx1"}})
add_dev = js({"type": "NCW_ADD_DEVICE_SETUP_REQUESTED", "data": {"walletId": "w2",
              "deviceId": "d9"}, "timestamp": 1.7e12})
tx_v2 = js({"id": "evt-1", "eventType": "transaction.created", "createdAt": "2026-01-31T12:00:00.123Z",
            "data": {"txStatus": "PENDING_SIGNATURE", "source": {"walletId": "w3"}}})
tx_v2_upd = js({"id": "evt:2", "eventType": "transaction.status.updated", "createdAt": 1769860800000,
                "data": {"status": "COMPLETED", "walletId": "w3"}})
v2_msg = js({"id": "evt-3", "eventType": "NCW_DEVICE_MESSAGE", "data": {"walletId": "w1",
             "deviceId": "d1", "message": {"a": [1, 2, {"b": None}]}}})
put("webhook", "v1-device-message-signed", "@sign\n-\n" + dev_msg)
put("webhook", "v1-tx-pending-signed-b", "@sign-b\n-\n" + tx_v1)
put("webhook", "v1-add-device-literal-sig", sign_v1("fuzz-v1a.key", add_dev) + "\n-\n" + add_dev)
put("webhook", "v1-literal-sig-wrong-body", sign_v1("fuzz-v1a.key", add_dev) + "\n-\n" + add_dev + " ")
put("webhook", "v2-tx-created-signed", "-\n@sign\n" + tx_v2)
put("webhook", "v2-literal-jws", "-\n" + sign_v2('{"alg":"RS512","kid":"fuzz-v2"}', tx_v2_upd) +
    "\n" + tx_v2_upd)
put("webhook", "v2-device-message", "-\n@sign\n" + v2_msg)
put("webhook", "v2-alg-rs256", '-\n@jws {"alg":"RS256","kid":"fuzz-v2"}\n' + tx_v2)
put("webhook", "v2-alg-none", '-\n@jws {"alg":"none","kid":"fuzz-v2"}\n' + tx_v2)
put("webhook", "v2-unknown-kid", '-\n@jws {"alg":"RS512","kid":"fuzz-rs256"}\n' + tx_v2)
put("webhook", "v2-crit", '-\n@jws {"alg":"RS512","kid":"fuzz-v2","crit":["b64"],"b64":false}\n' + tx_v2)
put("webhook", "v2-dup-members", '-\n@jws {"alg":"RS512","alg":"none","kid":"fuzz-v2"}\n' + tx_v2)
put("webhook", "both-headers", "@sign\n@sign\n" + dev_msg)
put("webhook", "v1-garbage", "not base64!!\n-\n" + dev_msg)
put("webhook", "v2-not-detached", "-\nabc.def.ghi\n" + dev_msg)
put("webhook", "v2-bad-b64", "-\n!!..??\n" + dev_msg)
put("webhook", "absent", "-\n-\n{}")
put("webhook", "not-json", "@sign\n-\n{\"type\":")
put("webhook", "empty-body", "@sign\n-\n")
put("webhook", "array-body", "@sign\n-\n[1,2,3]")
put("webhook", "bad-ids", "@sign\n-\n" + js({"type": "NCW_DEVICE_MESSAGE", "walletId": "w 1",
                                               "deviceId": "d/1", "message": 1}))
put("webhook", "nul-in-string", "@sign\n-\n" + '{"type":"NCW_DEVICE_MESSAGE","walletId":"w\\u0000x","deviceId":"d","message":1}')

put("webhook", "regress-nul-after-literal",
    "@sign\n-\n" + '{"type":"NCW_TRANSACTION_STATUS_UPDATED","walletId":"w1","data":{"status":"PENDING_SIGNATURE"},"x":false\0}')
# the envelope scanner (src/webhook/jscan.c) against the jansson reference (event_ref.c)
put("webhook", "scan-escaped-names", "-\n-\n" + '{"t\\u0079pe":"NCW_DEVICE_MESSAGE","wallet\\u0049d":"w\\u002d1",'
    '"data":{"device\\u0049d":"d1","message":{"\\ud83d\\ude00":"\\"}{]["}}}')
put("webhook", "scan-dup-deep-escaped", "-\n-\n" + '{"type":"NCW_CREATED","message":[{"k":1,"\\u006b":2}]}')
put("webhook", "scan-dup-wide", "-\n-\n" + '{"type":"NCW_CREATED","data":{' +
    ",".join('"k%d":%d' % (i, i) for i in range(12)) + ',"k\\u0037":0}}')
put("webhook", "scan-lookalikes", "-\n-\n" + '{"message":{"type":"x","s":"}\\",\\"walletId\\":1"},'
    '"type":"NCW_TRANSACTION_STATUS_UPDATED","data":{"x":{"walletId":"no"},"txStatus":"PENDING_SIGNATURE",'
    '"source":{"walletId":"src"}}}')
put("webhook", "scan-numbers", "-\n-\n" + '{"type":"NCW_CREATED","timestamp":1.5e3,"a":[-0,0.5e-400,'
    '9223372036854775807,-9223372036854775808,1E+2]}')
put("webhook", "scan-too-big", "-\n-\n" + '{"type":"NCW_CREATED","a":[9223372036854775808,1e309]}')
put("webhook", "scan-deep", "-\n-\n" + '{"type":"NCW_CREATED","a":' + "[" * 2046 + "]" * 2046 + "}")
put("webhook", "scan-trailing", "-\n-\n" + '{"type":"NCW_CREATED"} {}')
put("webhook", "scan-utf8", "-\n-\n" + '{"type":"NCW_CREATED","a":"\u00e9\u20ac\U0001f600","b":"\\ud800"}')

# ---- api ----
K = "Authorization: Bearer fuzz-key\nContent-Type: application/json\n"
def req(line, body="", headers=K, store=None):
    h = headers + (("X-Fuzz-Store: " + store + "\n") if store else "")
    return line + "\n" + h + "\n" + body
reg = js({"fcmToken": "fcm-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:1",
          "platform": "android", "physicalDeviceId": "phys-1"})
put("api", "device-put", req("PUT /v1/wallets/w1/devices/d1", reg, store="c"))
put("api", "device-put-refresh", req("PUT /v1/wallets/w1/devices/d1", js({"fcmToken": "t", "platform": "ios", "physicalDeviceId": None})))
put("api", "device-put-bad-platform", req("PUT /v1/wallets/w1/devices/d1", js({"fcmToken": "t", "platform": "windows"})))
put("api", "device-put-space-token", req("PUT /v1/wallets/w1/devices/d1", js({"fcmToken": "a b", "platform": "web"})))
put("api", "device-put-nul-path", req("PUT /v1/wallets/w1/devices/d%00evil", reg))
put("api", "device-put-db-down", req("PUT /v1/wallets/w1/devices/d1", reg, store="d"))
put("api", "device-get", req("GET /v1/wallets/w1/devices/d1"))
put("api", "device-get-missing", req("GET /v1/wallets/w1/devices/d1", store="n"))
put("api", "device-delete", req("DELETE /v1/wallets/w1/devices/d1/"))
put("api", "message-post", req("POST /v1/wallets/w1/devices/d1/messages", js({"payload": {"x": 1}, "ttlSeconds": 60})))
put("api", "message-post-unknown-device", req("POST /v1/wallets/w1/devices/d1/messages", js({"payload": [1]}), store="n"))
put("api", "message-post-ttl-big", req("POST /v1/wallets/w1/devices/d1/messages", js({"payload": 1, "ttlSeconds": 99999999})))
put("api", "wallet-message-post", req("POST /v1/wallets/w1/messages", js({"payload": "hello"})))
put("api", "wallet-message-unavailable", req("POST /v1/wallets/w1/messages", js({"payload": True}), store="u"))
put("api", "messages-get", req("GET /v1/wallets/w1/devices/d1/messages?after=0&limit=10", store="m"))
put("api", "messages-longpoll", req("GET /v1/wallets/w1/devices/d1/messages?wait=5"))
put("api", "messages-bad-query", req("GET /v1/wallets/w1/devices/d1/messages?limit=1001&after=-1"))
put("api", "ack-upto", req("POST /v1/wallets/w1/devices/d1/messages/ack", js({"upTo": "12"})))
put("api", "ack-ids", req("POST /v1/wallets/w1/devices/d1/messages/ack", js({"ids": ["1", 2, "3"]})))
put("api", "ack-both", req("POST /v1/wallets/w1/devices/d1/messages/ack", js({"ids": [1], "upTo": 1})))
put("api", "webhook-v1", req("POST /webhooks/fireblocks", dev_msg,
                             headers="Content-Type: application/json\nFireblocks-Signature: @sign\n"))
put("api", "webhook-v2-duplicate", req("POST /webhooks/fireblocks", tx_v2,
                             headers="Content-Type: application/json; charset=utf-8\nFireblocks-Webhook-Signature: @sign\n", store="p"))
put("api", "webhook-bad-signature", req("POST /webhooks/fireblocks", dev_msg,
                             headers="Content-Type: application/json\nFireblocks-Signature: AAAA\n"))
put("api", "metrics", req("GET /metrics", headers=""))
put("api", "metrics-listener", req("GET /metrics", headers="", store="x"))
put("api", "readyz-down", req("GET /readyz", headers="", store="d"))
put("api", "healthz", req("GET /healthz", headers=""))
put("api", "unauthorized", req("GET /v1/wallets/w1/devices/d1", headers="Authorization: Bearer nope\n"))
put("api", "rate-limited", req("GET /v1/wallets/w1/devices/d1", store="r"))
put("api", "auth-failures", req("GET /v1/wallets/w1/devices/d1", store="a"))
put("api", "wrong-method", req("PATCH /v1/wallets/w1/devices/d1"))
put("api", "not-found", req("GET /nothing"))
put("api", "wrong-content-type", req("PUT /v1/wallets/w1/devices/d1", reg,
                                     headers="Authorization: Bearer fuzz-key\nContent-Type: text/plain\n"))

# regressions: jansson 2.14 accepts a NUL byte after a literal, the store keeps a C string
put("api", "regress-nul-after-literal", req("POST /v1/wallets/w1/messages", '{"payload":true\0}'))
put("api", "regress-webhook-nul-after-literal",
    req("POST /webhooks/fireblocks", '{"type":"NCW_DEVICE_MESSAGE","walletId":"w1","deviceId":"d1","message":{"a":1},"x":true\0}',
        headers="Content-Type: application/json\nFireblocks-Signature: @sign\n"))
# regression: the router left device_id uninitialised on one-"*" routes (wallet-message-post)

# ---- jwks ----
with open(os.path.join(KEYS, "fuzz-jwks.json")) as f:
    jwks = json.load(f)
put("jwks", "fuzz-jwks", js(jwks))
good = jwks["keys"][0]
put("jwks", "one-key-no-use-alg", js({"keys": [{k: v for k, v in good.items() if k not in ("use", "alg")}]}))
put("jwks", "short-modulus", js({"keys": [dict(good, kid="short", n=good["n"][:170])]}))
put("jwks", "exponent-one", js({"keys": [dict(good, kid="e1", e="AQ")]}))
put("jwks", "exponent-even", js({"keys": [dict(good, kid="e2", e="AQAC")]}))
put("jwks", "padded-n", js({"keys": [dict(good, kid="pad", n=good["n"] + "==")]}))
put("jwks", "duplicate-kid", js({"keys": [good, good]}))
put("jwks", "kid-control", js({"keys": [dict(good, kid="a\u0001b")]}))
put("jwks", "empty-keys", '{"keys":[]}')
put("jwks", "keys-object", '{"keys":{}}')
put("jwks", "not-json", '{"keys":[')
put("jwks", "dup-member", '{"keys":[],"keys":[]}')

# ---- oauth_key ----
with open(os.path.join(KEYS, "fuzz-v1b.key")) as f:
    pem = f.read()
sa = {"type": "service_account", "project_id": "fuzz-project", "private_key_id": "k1",
      "private_key": pem, "client_email": "fuzz@fuzz-project.iam.gserviceaccount.com",
      "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}
put("oauth_key", "valid", "-\n" + json.dumps(sa, indent=1))
put("oauth_key", "valid-loopback-override", "http://127.0.0.1:8443/token\n" + js(sa))
put("oauth_key", "override-plain-remote", "http://example.com/token\n" + js(sa))
put("oauth_key", "token-uri-plain-remote", "-\n" + js(dict(sa, token_uri="http://evil.example/token")))
put("oauth_key", "wrong-type", "-\n" + js(dict(sa, type="authorized_user")))
put("oauth_key", "missing-fields", "-\n" + js({"type": "service_account"}))
put("oauth_key", "bad-pem", "-\n" + js(dict(sa, private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")))
put("oauth_key", "not-object", "-\n[]")
put("oauth_key", "not-json", "-\n{\"type\":")

# ---- fcm_classify ----
def gerr(code, status, message, details=()):
    return js({"error": {"code": code, "message": message, "status": status, "details": list(details)}})
FCM = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
put("fcm_classify", "ok", '200\n-\n{"name":"projects/p/messages/0:1234"}')
put("fcm_classify", "unregistered", "404\n-\n" + gerr(404, "NOT_FOUND", "Requested entity was not found.", [{"@type": FCM, "errorCode": "UNREGISTERED"}]))
put("fcm_classify", "bare-404", "404\n-\n<html>not found</html>")
put("fcm_classify", "invalid-token", "400\n-\n" + gerr(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", [{"@type": FCM, "errorCode": "INVALID_ARGUMENT"}, {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "message.token", "description": "bad"}]}]))
put("fcm_classify", "quota", "429\n120\n" + gerr(429, "RESOURCE_EXHAUSTED", "quota", [{"@type": FCM, "errorCode": "QUOTA_EXCEEDED"}]))
put("fcm_classify", "quota-http-date", "429\nWed, 21 Oct 2015 07:28:00 GMT\n")
put("fcm_classify", "unavailable", "503\n  30 \n" + gerr(503, "UNAVAILABLE", "try later"))
put("fcm_classify", "token-expired", "401\n-\n" + gerr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_EXPIRED"}]))
put("fcm_classify", "apns-auth", "401\n-\n" + gerr(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", [{"@type": FCM, "errorCode": "THIRD_PARTY_AUTH_ERROR"}]))
put("fcm_classify", "long-token-in-message", "400\n-\n" + gerr(400, "INVALID_ARGUMENT", "bad token " + "A" * 152 + " here"))
put("fcm_classify", "no-answer", "0\n-\n")
put("fcm_classify", "control-bytes", "500\n-\n" + gerr(500, "INTERNAL", "a\u0001b\u007fc\nd"))

# ---- config ----
put("config", "typical", "# mpcpush\nexport MPCPUSH_DATABASE_URL='postgresql://mp:s3cret-pw@db:5432/mp'\n"
    "MPCPUSH_LISTEN = 0.0.0.0:8080\nMPCPUSH_LOG_LEVEL=debug\nMPCPUSH_MAX_BODY_BYTES=65536\n"
    "MPCPUSH_FCM_URL=\"https://fcm.googleapis.com\"\n")
put("config", "conninfo-password", "MPCPUSH_DATABASE_URL=host=db dbname=mp password=s3cret-pw user=mp\n")
put("config", "conninfo-quoted", "MPCPUSH_DATABASE_URL=host=db password = 'it''s \\' a secret' user=mp\n")
put("config", "uri-query-password", "MPCPUSH_DATABASE_URL=postgresql://mp@db/mp?password=s3cret-pw&sslmode=require\n")
put("config", "bad-values", "MPCPUSH_LISTEN=nowhere\nMPCPUSH_DB_POOL_SIZE=0\nMPCPUSH_LOG_LEVEL=loud\nMPCPUSH_FCM_URL=ftp://x\nUNKNOWN=1\nnot a line\n")
put("config", "env-wins", "MPCPUSH_LISTEN=127.0.0.1:1\n@@env\nMPCPUSH_LISTEN=[::1]:8080\nMPCPUSH_DATABASE_URL=postgres://u:pw-from-env@h/d\nCREDENTIALS_DIRECTORY=/run/credentials/mpcpush\nHOME=/root\n")
# regressions: the masking used to find the first "password" anywhere and mask one value only
put("config", "regress-password-word-in-value",
    "MPCPUSH_DATABASE_URL=host=db dbname=passwords user=mp password=s3cret-pw\n")
put("config", "regress-uri-userinfo-and-query",
    "MPCPUSH_DATABASE_URL=postgresql://mp:pw-one-x@db/mp?sslmode=require&password=pw-two-x\n")
put("config", "regress-escaped-space", "MPCPUSH_DATABASE_URL=password=abc\\ defghi host=db\n")
put("config", "ipv6-metrics", "MPCPUSH_METRICS_LISTEN=[::]:9090\nMPCPUSH_RATE_LIMIT_PER_MINUTE=0\n")

# ---- text ----
def text(case, flag, s):
    return bytes([case, flag]) + (s.encode() if isinstance(s, str) else s)
put("text", "b64url", text(0, 201, "eyJhbGciOiJSUzUxMiJ9"))
put("text", "b64-std-padded", text(0, 200, "QUJD+/8="))
put("text", "b64-noncanonical", text(0, 201, "QR"))
put("text", "retry-seconds", text(1, 0, " 120\r\n"))
put("text", "retry-date", text(1, 0, "Wed, 21 Oct 2026 07:28:00 GMT"))
put("text", "jwks-https", text(2, 0, "https://keys.example.com/.well-known/jwks.json"))
put("text", "jwks-loopback", text(2, 0, "http://127.0.0.1:8080/jwks"))
put("text", "jwks-userinfo", text(2, 0, "http://localhost@evil.example/jwks"))
put("text", "jwks-file", text(2, 0, "/etc/mpcpush/jwks.json"))
put("text", "log-quote", text(3, 40, 'kid="a\\b"\x01\x7f\xc3\xa9'))
put("text", "hostport", text(4, 20, "[::1]:8080"))
put("text", "validators", text(5, 0, "wallet-1.a_b:c"))
put("text", "wakeup-android", text(6, 3, "tok:APA91b-AAAA\nandroid\nw1\nd1\n"))
put("text", "wakeup-ios-alert", text(6, 4, "tok\nios\nw1\nd1\nTitle \xe2\x9c\x93\nBody"))
put("text", "push-url", text(7, 0, "http://127.0.0.2:9/token"))
